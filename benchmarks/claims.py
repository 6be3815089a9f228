"""The claims table: one row per headline claim of a learned filter's paper, reproduced (or not) in
the paper's own setting beside tuned classical filters, collected into ``benchmarks/claims.csv``.

Per-method benchmark scripts write their rows with :func:`write_rows` (as JSON files in
``benchmarks/claims/``, one per script part, each row carrying the command that produced it and its
date); this script checks them and merges them into the CSV, and prints the table in Markdown for
the "Claims" section of ``benchmarks/README.md``::

    python benchmarks/claims.py            # merge benchmarks/claims/*.json into claims.csv, print

Columns (see the claims issue): ``method`` (the class name: SDA, SLAMS, MNMEF, SSLS, LDEnSF, EnSF),
``claim``, ``setting``, ``N``, ``metric``, ``paper`` (the paper's or its reference code's figure,
and where it comes from), ``ours`` and ``ours_se`` (mean over seeds and the between-seed standard
error), ``comparator_name`` and ``comparator`` (what the claim is about, e.g. pixel-space SDA, the
APF), ``classical_name`` and ``classical`` (the best tuned classical filter of the same run),
``holds`` (yes / no / not at this scale), ``command``, ``date``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROWS_DIR = HERE / "claims"
CSV = HERE / "claims.csv"
COLUMNS = ("method", "claim", "setting", "N", "metric", "paper", "ours", "ours_se", "comparator_name",
           "comparator", "classical_name", "classical", "holds", "command", "date")
METHODS = ("SDA", "SLAMS", "MNMEF", "SSLS", "LDEnSF", "EnSF")
HOLDS = ("yes", "no", "not at this scale")
NUMBERS = ("ours", "ours_se", "comparator", "classical")


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean over seeds and its between-seed standard error ``std(ddof=1) / sqrt(n)``."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        raise ValueError("a standard error over seeds needs at least 2 seeds")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))


def check_row(row: dict) -> dict:
    """The row with its fields checked (``ValueError`` naming the problem) and numbers as floats."""
    missing = [c for c in COLUMNS if c not in row]
    extra = [c for c in row if c not in COLUMNS]
    if missing or extra:
        raise ValueError(f"claims row: missing {missing}, unknown {extra}")
    if row["method"] not in METHODS:
        raise ValueError(f"claims row: method {row['method']!r} is not one of {METHODS}")
    if row["holds"] not in HOLDS:
        raise ValueError(f"claims row: holds {row['holds']!r} is not one of {HOLDS}")
    out = dict(row)
    for c in NUMBERS:
        value = row[c]
        out[c] = float("nan") if value in (None, "") else float(value)
    if not math.isfinite(out["ours"]) or not (out["ours_se"] >= 0):
        raise ValueError(f"claims row {row['method']} {row['claim']!r}: ours and ours_se must be "
                         "finite (a standard error over seeds)")
    if not row["command"] or not row["date"]:
        raise ValueError(f"claims row {row['method']} {row['claim']!r}: the command and date are required")
    return out


def this_command() -> str:
    """The command line of the running script, as a shell would take it."""
    return "python " + " ".join(shlex.quote(a) for a in [_relative(sys.argv[0]), *sys.argv[1:]])


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(HERE.parent))
    except ValueError:
        return path


def write_rows(name: str, rows: Iterable[dict], folder: Path = ROWS_DIR) -> Path:
    """Write the rows of one script part to ``folder/<name>.json`` (``command`` and ``date``
    default to this process's command line and today)."""
    today = datetime.date.today().isoformat()
    rows = [check_row({"command": this_command(), "date": today, **r}) for r in rows]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(rows, indent=1, allow_nan=True) + "\n")
    return path


def collect(folder: Path = ROWS_DIR) -> list[dict]:
    """Every row of ``folder/*.json``, checked, in the order method, claim, setting, N."""
    rows = [check_row(r) for p in sorted(folder.glob("*.json")) for r in json.loads(p.read_text())]
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(rows, key=lambda r: (order[r["method"]], r["claim"], r["setting"], str(r["N"])))


def write_csv(rows: Sequence[dict], path: Path = CSV) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _fmt(x: float, se: float | None = None) -> str:
    if not math.isfinite(x):
        return ""
    return f"{x:.3g}" if se is None else f"{x:.3g} ± {se:.2g}"


def markdown(rows: Sequence[dict]) -> str:
    """The table for the README (commands left out: they are in the CSV)."""
    head = ["method", "claim", "setting", "N", "metric", "paper", "ours", "comparator", "best classical",
            "holds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], r["claim"], r["setting"], str(r["N"]), r["metric"], r["paper"],
                 _fmt(r["ours"], r["ours_se"]), f"{r['comparator_name']} {_fmt(r['comparator'])}".strip(),
                 f"{r['classical_name']} {_fmt(r['classical'])}".strip(), r["holds"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=str(ROWS_DIR), help="folder of the per-script row files")
    p.add_argument("--csv", default=str(CSV), help="the table to write")
    args = p.parse_args(argv)
    rows = collect(Path(args.rows))
    write_csv(rows, Path(args.csv))
    print(markdown(rows))
    print(f"\n{len(rows)} rows written to {args.csv}", file=sys.stderr)


if __name__ == "__main__":
    main()
