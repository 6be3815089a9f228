import dataclasses
import json

import numpy as np
import pytest

import dafilters as daf
from dafilters.experiments import Experiments, Results, format_uq
from dafilters.filters.base import Filter
from mods import LinearGauss

HMM = LinearGauss.build(Ko=200)


class Exploding(daf.EnKF):
    """An EnKF whose analysis blows up after a few cycles (a diverging filter)."""

    def analysis(self, E, y, ko, ctx):
        return super().analysis(E, y, ko, ctx) * (1e3 if ko > 5 else 1)


class Crashing(Filter):
    def initialize(self, ctx):
        raise RuntimeError("boom")


def test_grid_is_a_cartesian_product():
    grid = Experiments.grid(daf.EnKF, upd_a="Sqrt", N=[10, 20], infl=[1.0, 1.02])
    assert [(f.N, f.infl) for f in grid] == [(10, 1.0), (10, 1.02), (20, 1.0), (20, 1.02)]
    assert all(f.upd_a == "Sqrt" for f in grid)


def test_frame_columns_and_seed_average():
    res = Experiments(HMM, [daf.KalmanFilter(), daf.EnKF("Sqrt", N=20)], seeds=[1, 2]).run(progress=False)
    df = res.frame()
    assert len(df) == 2 and len(res.records) == 4
    for col in ["rmse.a", "rmse.a.ci", "spread.a", "crps.a", "rmse.f", "s_per_cycle", "N", "upd_a"]:
        assert col in df.columns
    runs = res.runs()
    kf = runs[runs["filter"] == "KalmanFilter"]
    assert df.loc[0, "rmse.a"] == pytest.approx(kf["rmse.a"].mean())
    assert df.loc[0, "rmse.a.ci"] == pytest.approx(np.sqrt((kf["rmse.a.ci"] ** 2).sum()) / 2)
    assert df.loc[1, "rmse.a"] > df.loc[0, "rmse.a"]  # the KF is optimal
    text = res.table(print_it=False)
    assert "KalmanFilter" in text and "±" in text and "20" in text
    assert "Sqrt" in text  # the EnKF variant is shown even at its default
    assert "rot" not in text and "taper" not in text  # other defaults are not


@dataclasses.dataclass
class Seeded(daf.EnKF):
    """An EnKF with a hyper-parameter called ``seed`` (as learned filters have)."""

    seed: int = 7


def test_a_setting_named_like_a_run_column_does_not_hide_it():
    res = Experiments(HMM, Seeded("Sqrt", N=10), seeds=[1, 2]).run(progress=False)
    runs = res.runs()
    assert runs["seed"].tolist() == [1, 2] and runs["param.seed"].tolist() == [7, 7]


def test_same_truth_for_every_filter():
    res = Experiments(HMM, [daf.KalmanFilter(), daf.KalmanFilter()], seeds=[5]).run(progress=False)
    a, b = res.records
    assert a["rmse.a"] == b["rmse.a"]


def test_diverging_and_crashing_runs_are_recorded(capsys):
    flts = [daf.EnKF("Sqrt", N=10), Exploding("Sqrt", N=10), Crashing()]
    res = Experiments(HMM, flts, seeds=[0, 1]).run(progress=False)
    status = {r["filter"]: r["status"] for r in res.records}
    assert status == {"EnKF": "ok", "Exploding": "diverged", "Crashing": "error"}
    crashed = next(r for r in res.records if r["filter"] == "Crashing")
    assert "RuntimeError: boom" in crashed["error"]
    df = res.frame()
    assert df["status"].tolist() == ["ok", "2/2 diverged", "2/2 failed"]
    assert np.isfinite(df.loc[0, "rmse.a"]) and np.isnan(df.loc[1, "rmse.a"])
    text = res.table(print_it=False)
    assert "2/2 diverged" in text and "EnKF" in text
    assert "boom" in capsys.readouterr().err


def test_save_load_and_resume(tmp_path, monkeypatch):
    flts = [daf.EnKF("Sqrt", N=10), daf.EnKF("DEnKF", N=10)]
    res = Experiments(HMM, flts, seeds=[0, 1], save_to=tmp_path).run(progress=False)
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 4 and len(list(tmp_path.glob("*.npz"))) == 4
    assert not list(tmp_path.glob(".tmp-*"))
    loaded = Results.load(tmp_path)
    assert sorted(r["rmse.a"] for r in loaded.records) == sorted(r["rmse.a"] for r in res.records)
    series = np.load(files[0].with_suffix(".npz"))
    assert series["rmse.a"].shape == (HMM.tseq.Ko + 1,)

    # a re-run (with one more filter) runs only what is missing
    calls = []
    orig = daf.EnKF.assimilate

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(daf.EnKF, "assimilate", counting)
    more = flts + [daf.EnKF("PertObs", N=10)]
    res2 = Experiments(HMM, more, seeds=[0, 1], save_to=tmp_path).run(progress=False)
    assert len(calls) == 2 and all("PertObs" in c for c in calls)
    assert len(res2.records) == 6


def test_saved_record_is_plain_json(tmp_path):
    Experiments(HMM, daf.EnKF("Sqrt", N=10), seeds=[0], save_to=tmp_path).run(progress=False)
    record = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert record["params"] == {"upd_a": "Sqrt", "N": 10, "infl": 1.0, "rot": False,
                                "loc_rad": None, "taper": "GC"}
    assert len(record["rank_hist.a"]) == 11


def test_bad_experiment_arguments():
    with pytest.raises(TypeError, match="not a Filter"):
        Experiments(HMM, ["EnKF"])
    with pytest.raises(ValueError, match="at least one"):
        Experiments(HMM, [], seeds=[0])
    with pytest.raises(FileNotFoundError):
        Results.load("/nonexistent-folder")


def test_format_uq():
    assert format_uq(0.18234, 0.0031) == "0.182 ± 0.003"
    assert format_uq(1.5, 0.2) == "1.5 ± 0.2"
    assert format_uq(2.0, np.nan) == "2.00" and format_uq(8.533, 0.0) == "8.53"
    assert format_uq(np.nan, 0.1) == "nan"
