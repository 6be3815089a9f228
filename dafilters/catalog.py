"""What can be named on the command line, described in one line each: filters and model settings.

Descriptions are the first sentence of a docstring (:func:`summary`); model settings are found by
reading the source files of :mod:`mods` (:func:`model_settings`), without importing them.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

__all__ = ["summary", "model_settings"]


def summary(doc: str | None, width: int = 100) -> str:
    """A one-line description from a docstring: its first sentence, without parenthetical
    remarks if it is longer than ``width``, and cut at a word (``...``) if it still is."""
    para = " ".join((doc or "").strip().split("\n\n")[0].split())
    para = re.sub(r":\w+:`~?([^`]+)`", r"\1", para)  # reST roles and literals as plain text
    para = re.sub(r"``([^`]+)``", r"\1", para)
    line = re.split(r"(?<=[.!?])\s+(?=[A-Z])", para)[0]
    if len(line) > width:
        line = re.sub(r"\s*\([^()]*\)", "", line)
    if len(line) > width:
        line = line[: width - 3].rsplit(" ", 1)[0].rstrip(",;:") + "..."
    return line


def model_settings() -> dict[str, str]:
    """The model settings of :mod:`mods` (modules defining ``HMM``) and their docstrings, read
    from the source files (nothing is imported: some need jax or Dedalus), sorted by name."""
    spec = importlib.util.find_spec("mods")
    if spec is None or not spec.submodule_search_locations:
        return {}
    out = {}
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, ValueError):
                continue
            if any(isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
                    isinstance(t, ast.Name) and t.id == "HMM"
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))
                   for node in tree.body):
                parts = path.relative_to(root).with_suffix("").parts
                name = ".".join(("mods",) + (parts[:-1] if parts[-1] == "__init__" else parts))
                out[name] = ast.get_docstring(tree) or ""
    return dict(sorted(out.items()))
