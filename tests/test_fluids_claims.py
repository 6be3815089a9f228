"""The LD-EnSF claims rows of benchmarks/fluids.py: the verdict from the paired per-seed differences
of the relative RMSE and the per-analysis cost, and rows that the claims table accepts."""


import pytest
from benchmark_scripts import load_benchmark

F = load_benchmark("fluids")
C = load_benchmark("claims")
COST = {"LDEnSF": [0.01, 0.012, 0.011], "EnSF": [0.3, 0.32, 0.31], "LETKF": [0.2, 0.2, 0.2]}
FLOOR = [0.10, 0.12, 0.11]


def rows_for(ld, en, cost=COST, below=True):
    rel = {"LDEnSF": ld, "EnSF": en, "LETKF": [0.05, 0.06, 0.07]}
    return F.claim_rows(rel, cost, FLOOR, setting="test", N=20, below_reference=below)


def test_below_or_within_paired_se_and_cheaper_holds():
    rows, s = rows_for([0.30, 0.40, 0.50], [0.31, 0.40, 0.52])  # below EnSF on average
    assert s["holds"] == "yes" and [r["holds"] for r in rows] == ["yes", "yes"]
    # above EnSF by less than the paired SE: differences 0.02, -0.01, 0.0 -> mean 0.0033, SE 0.0088
    rows, s = rows_for([0.33, 0.39, 0.52], [0.31, 0.40, 0.52])
    assert s["diff"] > 0 and s["diff"] <= s["diff_se"] and s["holds"] == "yes"
    acc, cost = rows
    assert acc["ours"] == pytest.approx(0.4133, abs=1e-3) and acc["comparator"] == pytest.approx(0.41)
    assert acc["classical"] == pytest.approx(0.06) and acc["classical_name"] == "LETKF"
    assert "floor" in acc["setting"] and "0.11" in acc["setting"]
    assert cost["ours"] == pytest.approx(0.011) and cost["comparator"] == pytest.approx(0.31)
    assert s["cost_ratio"] == pytest.approx(0.31 / 0.011)
    for r in rows:  # accepted by the claims table once command and date are added
        C.check_row({"command": "python benchmarks/fluids.py", "date": "2026-11-29", **r})


def test_a_clear_miss_is_not_at_this_scale_below_the_reference_budget_else_no():
    ld, en = [0.60, 0.70, 0.65], [0.40, 0.41, 0.42]
    rows, s = rows_for(ld, en, below=True)
    assert not s["accurate"] and s["cheaper"]
    assert [r["holds"] for r in rows] == ["not at this scale", "yes"]
    rows, _ = rows_for(ld, en, below=False)
    assert rows[0]["holds"] == "no"


def test_accurate_but_not_cheaper_does_not_hold():
    dear = dict(COST, LDEnSF=[0.5, 0.6, 0.55])
    rows, s = rows_for([0.30, 0.40, 0.50], [0.31, 0.40, 0.52], cost=dear, below=False)
    assert s["accurate"] and not s["cheaper"]
    assert [r["holds"] for r in rows] == ["no", "no"]


def test_one_seed_has_no_standard_error():
    with pytest.raises(ValueError, match="2 seeds"):
        F.claim_rows({k: [0.3] for k in COST}, {k: [0.1] for k in COST}, [0.1], setting="t", N=20,
                     below_reference=True)


def test_the_letkf_is_tuned_on_seeds_apart_from_the_scoring_seeds():
    """The classical comparator is tuned on other seeds than those it is scored on."""
    from types import SimpleNamespace

    args = SimpleNamespace(tune_seeds=[1, 100], seeds=[1, 2], N=20, trials=2)
    with pytest.raises(SystemExit, match="overlap"):
        F.tune_letkf(None, args)


def test_shallow_water_relative_errors_jointly_and_per_field():
    """benchmarks/shallow_water_ldensf.py: the reference's relative RMSE over the three fields
    together and per field, after the burn-in only; the rows carry its metric."""
    from types import SimpleNamespace

    import numpy as np
    from conftest import require_extra

    require_extra("atmos", "dedalus", "mpi4py")
    S = load_benchmark("shallow_water_ldensf")
    P = 4
    hmm = SimpleNamespace(Nx=3 * P + 2, dyn=SimpleNamespace(n_params=2),
                          tseq=SimpleNamespace(masko=np.array([False, True, True]), kko=np.array([1, 2, 3])))
    xx = np.zeros((4, 3 * P + 2))
    xx[:, :P], xx[:, P:2 * P], xx[:, 2 * P:3 * P] = 10.0, 1.0, 100.0
    err = np.r_[np.full(P, 1.0), np.full(P, 1.0), np.full(P, 10.0), 5.0, 5.0]  # parameters ignored
    means = {0: xx[1] + 99.0, 1: xx[2] + err, 2: xx[3] + err}  # ko 0 is in the burn-in
    out = S.field_errors(means, xx, hmm)
    assert out["u_phi"] == pytest.approx(0.1) and out["u_theta"] == pytest.approx(1.0)
    assert out["h"] == pytest.approx(0.1)
    assert out["joint"] == pytest.approx(np.sqrt((1 + 1 + 100) / (100 + 1 + 10_000)))
    rel = {k: [0.01, 0.02] for k in COST}
    rows, _ = F.claim_rows(rel, {k: v[:2] for k, v in COST.items()}, [0.1, 0.1], setting="sw", N=20,
                           below_reference=True, metric=S.METRIC, paper=S.PAPER_CLAIM)
    assert rows[0]["metric"] == S.METRIC and "atmospheric" in rows[0]["paper"]
