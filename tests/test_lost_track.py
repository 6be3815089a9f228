"""A run that lost track of the truth says so: status ``lost``, its averages kept (trust issue, 8)."""

import numpy as np
import pytest

import dafilters as daf
from dafilters.experiments import Experiments, Results
from dafilters.runs import AVERAGES, run_one
from dafilters.stats import (
    LOST_CLIM_RATIO,
    LOST_MIN_CYCLES,
    LOST_MIN_CYCLES_CLIM,
    LOST_SPREAD_RATIO,
    Gaussian,
    Stats,
    climatological_std,
)
from mods import LinearGauss
from mods.Lorenz63 import sakov2012
from mods.Lorenz96 import sakov2008

BURN = 5
AMP = 2.0  # the synthetic truth runs on a circle of radius AMP: climatological std AMP / sqrt(2)


def synthetic(err, spread: float, n_scored: int, truth: np.ndarray | None = None) -> Stats:
    """Stats of Gaussian estimates ``N(x_t + err_t, spread^2 I)`` of a 2-variable truth, ``BURN``
    cycles of burn-in then ``n_scored`` scored ones. ``err`` is a number (``±err`` on every
    variable, the sign alternating: rmse = |err| exactly) or a callable ``(ko, x) -> estimate``."""
    K = BURN + n_scored
    t = np.arange(K)
    xx = AMP * np.stack([np.sin(0.3 * t), np.cos(0.3 * t)], axis=1) if truth is None else truth
    kko = np.arange(K)
    stats = Stats(xx, kko, kko >= BURN)
    for ko in kko:
        x = xx[ko]
        mu = err(ko, x) if callable(err) else x + (-1) ** ko * err
        for fa in "fa":
            stats.assess(ko, fa, Gaussian(mu, np.full(2, spread**2)))
    return stats


def test_climatological_std_is_the_rms_of_the_per_variable_std():
    X = np.array([[0.0, 0.0], [2.0, 4.0]])  # variances 1 and 4
    assert climatological_std(X) == pytest.approx(np.sqrt(2.5))
    assert np.isnan(climatological_std(np.zeros((0, 2))))


def test_tracking_numbers_are_the_ratios_of_the_scored_means():
    stats = synthetic(0.5, 0.25, 200)
    t = stats.tracking()
    clim = climatological_std(stats.xx[BURN:])
    assert t["n_scored"] == 200 and t["clim_std"] == pytest.approx(clim)
    assert t["rmse_spread_ratio.a"] == pytest.approx(2.0)
    assert t["rmse_clim_ratio.a"] == pytest.approx(0.5 / clim)
    assert stats.lost_track() is None  # 2 x its spread, a quarter of climatology: still tracking


def test_error_far_above_the_spread_is_lost_and_the_averages_do_not_change():
    stats = synthetic(0.5, 0.5 / (LOST_SPREAD_RATIO + 0.5), 50)  # rmse 4.5 x spread, 0.35 x clim
    before = stats.averages()
    why = stats.lost_track()
    assert why is not None and "x spread.a" in why
    assert stats.averages() == before and before["rmse.a"] == pytest.approx(0.5)


def test_the_spread_test_needs_enough_scored_cycles():
    assert synthetic(0.5, 0.01, LOST_MIN_CYCLES - 1).lost_track() is None
    assert synthetic(0.5, 0.01, LOST_MIN_CYCLES).lost_track() is not None


def test_no_spread_is_judged_by_climatology_only():
    # a point estimate (zero variance) never meets the spread test ...
    good = synthetic(0.2, 0.0, 200)
    assert np.isnan(good.tracking()["rmse_spread_ratio.a"]) and good.lost_track() is None
    # ... but at climatology (the time mean as a constant estimate: rmse = clim std) it is lost,
    # given enough cycles to estimate the climatology
    const = synthetic(lambda ko, x: np.zeros(2), 0.0, LOST_MIN_CYCLES_CLIM)
    assert const.tracking()["rmse_clim_ratio.a"] > LOST_CLIM_RATIO
    assert "climatological std" in const.lost_track() and "no spread" in const.lost_track()
    assert synthetic(lambda ko, x: np.zeros(2), 0.0, LOST_MIN_CYCLES_CLIM - 1).lost_track() is None


def test_a_spread_that_owns_up_to_a_climatological_error_is_not_lost():
    clim = AMP / np.sqrt(2)
    assert synthetic(lambda ko, x: np.zeros(2), clim, 200).lost_track() is None  # Climatology-like
    # the same error with a spread a third of it: lost by the climatology test (3 < 4: not the other)
    why = synthetic(lambda ko, x: np.zeros(2), clim / 3, 200).lost_track()
    assert why is not None and "climatological std" in why


def test_constant_truth_and_divergence_are_not_judged():
    flat = synthetic(0.3, 0.0, 200, truth=np.ones((BURN + 200, 2)))
    assert np.isnan(flat.tracking()["rmse_clim_ratio.a"]) and flat.lost_track() is None
    stats = synthetic(0.5, 0.01, 50)
    stats.diverged_at = 10
    t = stats.tracking()
    assert np.isnan(t["rmse_spread_ratio.a"]) and np.isnan(t["rmse_clim_ratio.a"])
    assert stats.lost_track() is None


L63 = sakov2012.HMM.replace(tseq=dict(Ko=300))  # 237 scored cycles
L96 = sakov2008.HMM.replace(tseq=dict(Ko=300, BurnIn=5.0))  # 201 scored cycles


@pytest.mark.parametrize("hmm, flt", [
    (L63, daf.KalmanFilter()),  # extended KF on Lorenz-63: rmse 8.8, spread 0.36
    (L96, daf.EnKF("Sqrt", N=15)),  # N < 16 unstable directions, no inflation: rmse 3.4, spread 0.17
], ids=["ExtKF-L63", "EnKF15-L96"])
def test_filters_that_lost_track_say_so(hmm, flt):
    xx, yy = hmm.simulate(0)
    record, series = run_one(hmm, flt, 0, xx, yy)
    assert record["status"] == "lost" and record["error"].startswith("lost track")
    assert record["rmse_spread_ratio.a"] > 15 and record["rmse_clim_ratio.a"] > 0.9
    mask = hmm.tseq.masko  # the averages are those of an ok run
    assert record["rmse.a"] == pytest.approx(np.mean(series["rmse.a"][mask]))
    assert all(np.isfinite(record[m]) for m in AVERAGES)


@pytest.mark.parametrize("hmm, flt", [
    (L96, daf.EnKF("Sqrt", N=40, infl=1.01)),
    (L63, daf.EnKF("Sqrt", N=10, infl=1.02, rot=True)),
    (LinearGauss.build(Ko=300), daf.KalmanFilter()),  # exact: rmse/clim 0.4-0.5, rmse = spread
    (L63, daf.Climatology()),  # at climatology by construction, and its spread says so
], ids=["EnKF40-L96", "EnKF10-L63", "KF-LinearGauss", "Climatology-L63"])
def test_filters_that_track_are_ok(hmm, flt):
    xx, yy = hmm.simulate(0)
    record, _ = run_one(hmm, flt, 0, xx, yy)
    assert record["status"] == "ok" and record["error"] is None
    assert record["rmse_spread_ratio.a"] < 1.5 and np.isfinite(record["rmse_clim_ratio.a"])


def _record(seed: int, status: str, rmse: float) -> dict:
    record = {"hmm": "H", "filter": "F", "name": "F()", "params": {}, "seed": seed,
              "status": status, "error": None, "s_per_cycle": 1e-3}
    record.update({m: rmse for m in AVERAGES})
    record.update({m + ".ci": 0.1 for m in AVERAGES})
    return record


def test_frame_counts_lost_runs_and_still_averages_them():
    res = Results([_record(0, "ok", 1.0), _record(1, "lost", 4.0), _record(2, "diverged", np.nan)])
    row = res.frame().iloc[0]
    assert row["rmse.a"] == pytest.approx(2.5)  # ok and lost runs averaged; diverged ones not
    assert (row["ok"], row["lost"], row["diverged"], row["failed"]) == (2, 1, 1, 0)
    assert row["status"] == "1/3 lost, 1/3 diverged"
    assert "1/3 lost, 1/3 diverged" in res.table(print_it=False)


def test_an_experiment_table_says_lost():
    res = Experiments(L96, [daf.EnKF("Sqrt", N=15), daf.EnKF("Sqrt", N=40, infl=1.01)],
                      seeds=[0]).run(progress=False)
    assert res.frame()["status"].tolist() == ["1/1 lost", "ok"]
    assert "1/1 lost" in res.table(print_it=False)
