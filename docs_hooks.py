"""MkDocs hook (``mkdocs.yml``: ``hooks``): benchmark figures in the documentation site.

The pages link the figures kept in git under ``benchmarks/plots/`` by their path from the page
(``../benchmarks/plots/multimodal/l96.png`` from ``docs/multimodal.md``), so the links also work
on GitHub. MkDocs only knows the files under ``docs/``: :func:`on_files` adds every file of
``benchmarks/plots/`` to the site as ``benchmarks/plots/...`` and :func:`on_page_markdown`
rewrites the links that point there, so ``mkdocs build --strict`` resolves them.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

#: The folder of benchmark figures, relative to the repository root (``mkdocs.yml``'s folder).
PLOTS = "benchmarks/plots"
#: Markdown link or image targets (``](target)`` or ``](target "title")``).
_TARGET = re.compile(r"\]\((?P<target>[^)\s]+)(?P<rest>[^)]*)\)")


def _root(config: Any) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def on_files(files: Files, config: Any) -> Files:
    """Add the files under ``benchmarks/plots/`` to the site, at the same path."""
    root = _root(config)
    for path in sorted((root / PLOTS).rglob("*")):
        if path.is_file():
            uri = path.relative_to(root).as_posix()
            files.append(File(uri, src_dir=str(root), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files


def rewrite_links(markdown: str, page_uri: str) -> str:
    """Point links to ``benchmarks/plots/`` outside the docs folder (from the page
    ``page_uri``, relative to ``docs/``) at the copies :func:`on_files` adds."""
    page_dir = posixpath.dirname(page_uri)

    def fix(match: re.Match) -> str:
        target = match["target"]
        if "://" in target or target.startswith(("#", "/")):
            return match[0]
        # the target from the repository root: docs/<page_dir>/<target>
        from_root = posixpath.normpath(posixpath.join("docs", page_dir, target))
        if not from_root.startswith(PLOTS + "/"):
            return match[0]
        new = posixpath.relpath(from_root, page_dir or ".")
        return f"]({new}{match['rest']})"

    return _TARGET.sub(fix, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Rewrite the page's links to benchmark figures (see :func:`rewrite_links`)."""
    return rewrite_links(markdown, page.file.src_uri)


# -- the docstrings' reStructuredText markup, as Markdown (a Griffe extension) --------------------

#: ``:class:`~a.b.C``` and friends: the target (``~``: its last component) as code.
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj|const|ref):`(?P<tilde>~?)(?P<body>[^`]+)`")
_MATH_ROLE = re.compile(r":math:`(?P<body>[^`]+)`")


def _role(match: re.Match) -> str:
    body = match["body"]
    if "<" in body and body.endswith(">"):  # `text <target>`
        return f"`{body[: body.index('<')].strip()}`"
    return f"`{body.rsplit('.', 1)[-1] if match['tilde'] else body}`"


def _blocks(lines: list[str]) -> list[str]:
    """``.. math::`` directives as ``$$`` blocks, ``>>>`` examples as fenced Python, a paragraph
    ending in ``::`` (a literal block follows) as one ending in ``:``."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = line[: len(line) - len(line.lstrip())]
        stripped = line.strip()
        if stripped.startswith(".. math::"):
            body = [stripped[len(".. math::"):].strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                body.append(lines[i].strip())
                i += 1
            out += [f"{indent}$$", *(indent + b for b in body if b), f"{indent}$$", ""]
            continue
        if stripped.startswith(">>>") and not (out and out[-1].strip().startswith("```")):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].strip())
                i += 1
            out += [f"{indent}```python", *(indent + b for b in block), f"{indent}```"]
            continue
        out.append(line[:-1] if stripped.endswith("::") and stripped != "::" else line)
        i += 1
    return out


def markdown_docstring(text: str) -> str:
    """A docstring's reStructuredText roles and blocks as Markdown (see :func:`_blocks`)."""
    text = _MATH_ROLE.sub(lambda m: f"\\({m['body']}\\)", text)
    text = _ROLE.sub(_role, text)
    return "\n".join(_blocks(text.splitlines()))


try:
    import griffe
except ImportError:  # the docs extra is not installed: the MkDocs hooks above still import
    griffe = None

if griffe is not None:
    class SphinxMarkup(griffe.Extension):
        """Rewrite every docstring with :func:`markdown_docstring` before it is rendered."""

        def on_object(self, *, obj: Any, **kwargs: Any) -> None:
            if obj.docstring is not None:
                obj.docstring.value = markdown_docstring(obj.docstring.value)
