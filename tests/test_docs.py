"""The documentation site: every public name in the API reference, every page in the navigation,
benchmark figures linked from the pages, and the strict build itself (``make docs`` in CI)."""

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import dafilters

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages(nav):
    for item in nav:
        if isinstance(item, str):
            yield item
        else:
            for value in item.values():
                yield from ([value] if isinstance(value, str) else nav_pages(value))


def test_every_public_name_is_documented():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= {m.rsplit(".", 1)[-1] for m in re.findall(r"^::: ([\w.]+)", page.read_text(), re.M)}
    missing = [n for n in dafilters.__all__ if n not in documented]
    assert not missing, f"public names missing from docs/api/*.md: {missing}"
    for name in ("GaussRV", "Diverged", "TuneResult"):
        assert inspect.getdoc(getattr(dafilters, name))


def test_every_page_is_in_the_navigation():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    pages = set(nav_pages(config["nav"]))
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk <= pages and pages <= on_disk


def test_links_to_benchmark_figures_are_pointed_at_the_copies():
    hooks = load_hooks()
    text = "![a](../benchmarks/plots/multimodal/l96.png) [b](../benchmarks/README.md) [c](x.md)"
    assert hooks.rewrite_links(text, "multimodal.md") == (
        "![a](benchmarks/plots/multimodal/l96.png) [b](../benchmarks/README.md) [c](x.md)")
    assert hooks.rewrite_links("![a](../../benchmarks/plots/x.png 'title')", "api/p.md") == (
        "![a](../benchmarks/plots/x.png 'title')")
    for target in re.findall(r"\]\(((?:\.\./)+benchmarks/plots/[^)\s]+)", "".join(
            p.read_text() for p in DOCS.rglob("*.md"))):
        assert (DOCS / target).resolve().is_file(), target


def test_docstring_markup_becomes_markdown():
    hooks = load_hooks()
    text = ("See :class:`~dafilters.hmm.HMM` and :func:`dafilters.tune`, :math:`x^2`.\n\n"
            ".. math::\n    a = b\n\n>>> f(1)\n2\n\nExamples::\n\n    code")
    assert hooks.markdown_docstring(text) == (
        "See `HMM` and `dafilters.tune`, \\(x^2\\).\n\n$$\na = b\n$$\n\n"
        "```python\n>>> f(1)\n2\n```\n\nExamples:\n\n    code")


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocstrings", reason="needs the docs extra (make venv EXTRAS=docs)")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "benchmarks" / "plots" / "multimodal" / "l96.png").is_file()
    assert "GaussRV" in (tmp_path / "site" / "api" / "models" / "index.html").read_text()
