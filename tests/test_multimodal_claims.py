"""The SLAMS claims rows of benchmarks/multimodal.py, built from per-seed results, and the block-mean
observation's identity, which must not change when its operator matrix is formed."""


import numpy as np
import pytest
from benchmark_scripts import load_benchmark

from dafilters.multimodal import BlockMeanObs


def results(slams_both, slams_sparse, slams_coarse, sda, letkf, cost=(0.1, 2.0)):
    """Per-seed results as part() collects them (rmse.a and seconds per analysis)."""
    def rs(values, s):
        return [{"rmse.a": v, "s_analysis": s + 0.001 * i} for i, v in enumerate(values)]
    return {("sparse+coarse", "SLAMS"): rs(slams_both, cost[0]),
            ("sparse", "SLAMS"): rs(slams_sparse, cost[0]), ("coarse", "SLAMS"): rs(slams_coarse, cost[0]),
            ("sparse+coarse", "SDA (pixel)"): rs(sda, cost[1]), ("sparse+coarse", "LETKF"): rs(letkf, 0.001)}


def test_rows_judge_the_paired_differences():
    M = load_benchmark("multimodal")
    res = results([2.0, 2.1, 1.9, 2.0], [2.8, 2.9, 2.7, 2.8], [3.6, 3.7, 3.5, 3.6], [3.8, 3.7, 3.9, 3.8],
                  [0.6, 0.6, 0.6, 0.6])
    rows = M.claim_rows(res, ("sparse", "coarse"), "L96", 20, "LETKF infl=1.05 loc_rad=4 N=20 (tuned)")
    acc, cost, modes = rows
    assert acc["metric"] == "rmse.a" and cost["metric"].startswith("seconds per analysis")
    assert acc["ours"] == pytest.approx(2.0) and acc["comparator"] == pytest.approx(3.8)
    assert acc["ours_se"] == pytest.approx(np.std([2.0, 2.1, 1.9, 2.0], ddof=1) / 2)
    assert acc["classical"] == pytest.approx(0.6) and acc["holds"] == "yes" and cost["holds"] == "yes"
    assert modes["comparator_name"].startswith("SLAMS [sparse]") and modes["comparator"] == pytest.approx(2.8)
    assert modes["holds"] == "yes" and all(r["method"] == "SLAMS" for r in rows)
    import claims

    for r in rows:  # valid rows of the claims table
        claims.check_row(r | {"command": "x", "date": "d"})


def test_rows_do_not_hold_within_noise_or_at_higher_cost():
    M = load_benchmark("multimodal")
    # SLAMS below SDA on average but by less than twice the paired SE; slower than SDA
    res = results([2.0, 3.0, 2.0, 3.0], [2.5, 2.5, 2.5, 2.5], [3.0] * 4, [2.6, 2.9, 2.4, 2.9], [1.0] * 4,
                  cost=(2.0, 0.1))
    acc, cost, modes = M.claim_rows(res, ("sparse", "coarse"), "L96", 20, "LETKF")
    assert acc["ours"] < acc["comparator"] and acc["holds"] == "no"
    assert cost["holds"] == "no" and modes["holds"] == "no"
    tiny = M.claim_rows(res, ("sparse", "coarse"), "L96", 20, "LETKF", scaled=False)
    assert {r["holds"] for r in tiny} == {"not at this scale"}


def test_block_mean_identity_ignores_its_cached_operator():
    obs = BlockMeanObs(12, 4, 0.5)
    before = obs.identity()
    obs.linear(np.zeros(12), 0)  # forms and caches H
    assert obs.identity() == before


def test_cost_row_names_the_torch_threads_it_ran_on():
    """The seconds-per-analysis row said "1 torch thread" whatever --threads was."""
    import torch

    M = load_benchmark("multimodal")
    res = results([2.0, 2.1, 1.9, 2.0], [2.8] * 4, [3.6] * 4, [3.8] * 4, [0.6] * 4)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cost = M.claim_rows(res, ("sparse", "coarse"), "L96", 20, "LETKF")[1]
    finally:
        torch.set_num_threads(old)
    assert cost["metric"] == "seconds per analysis (the analysis hook alone, 2 torch thread(s))"
