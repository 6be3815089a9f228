"""The claims table's collector (benchmarks/claims.py): rows are checked, merged and written."""

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.spec_from_file_location(
    "claims", Path(__file__).parents[1] / "benchmarks" / "claims.py")
claims = importlib.util.module_from_spec(spec)
spec.loader.exec_module(claims)


def row(**changes):
    base = dict(method="SDA", claim="filter within 1.25x of the best classical", setting="L63 rozet2023",
                N=32, metric="rmse.a", paper="n/a", ours=0.4, ours_se=0.03,
                comparator_name="PartFilt", comparator=0.35, classical_name="EnKF", classical=0.38,
                holds="no")
    return base | changes


def test_rows_are_checked():
    with pytest.raises(ValueError, match="method"):
        claims.check_row(row(method="Foo") | {"command": "x", "date": "d"})
    with pytest.raises(ValueError, match="holds"):
        claims.check_row(row(holds="maybe") | {"command": "x", "date": "d"})
    with pytest.raises(ValueError, match="missing"):
        claims.check_row({"method": "SDA"})
    with pytest.raises(ValueError, match="finite"):
        claims.check_row(row(ours=float("nan")) | {"command": "x", "date": "d"})


def test_between_seed_standard_error():
    mu, se = claims.mean_se([1.0, 2.0, 3.0, 4.0])
    assert mu == 2.5 and se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    with pytest.raises(ValueError):
        claims.mean_se([1.0])


def test_rows_written_collected_and_tabulated(tmp_path):
    claims.write_rows("sda", [row(), row(method="MNMEF", N=10, holds="yes")], folder=tmp_path)
    rows = claims.collect(tmp_path)
    assert [r["method"] for r in rows] == ["SDA", "MNMEF"]  # the order of methods
    assert rows[0]["command"].startswith("python ") and rows[0]["date"]
    out = tmp_path / "claims.csv"
    claims.write_csv(rows, out)
    with out.open() as f:
        back = list(csv.DictReader(f))
    assert list(back[0]) == list(claims.COLUMNS) and float(back[1]["ours"]) == 0.4
    assert "| SDA |" in claims.markdown(rows)
