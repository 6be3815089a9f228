"""benchmarks/mnmef_claims.py: when a row reads "yes", "no" or "not at this scale"."""

from benchmark_scripts import load_benchmark


def paired(N, mnmef, letkf, diff_se=0.01):
    name = f"LETKF(N={N}, infl=1.0837442562505892, loc_rad=2.783207366725538)"
    return {"N": N, "mnmef": mnmef, "mnmef_se": 0.02, "letkf": letkf, "letkf_se": 0.02,
            "diff": mnmef - letkf, "diff_se": diff_se,
            "ratio": mnmef / letkf, "statuses": repr({(name, "ok"): 16})}


def test_a_win_needs_a_properly_tuned_letkf():
    m = load_benchmark("mnmef_claims")
    assert m.holds(paired(20, 1.40, 1.58)) == "yes"  # 11% below an LETKF at the published 1.577
    # the same margin over an LETKF 15% above the published figure is not a finding
    assert m.holds(paired(20, 1.60, 1.81)) == "not at this scale"
    assert m.holds(paired(100, 1.37, 1.51), full_budget=False) == "not at this scale"


def test_a_miss_is_no_at_full_budget_and_not_at_this_scale_below_it():
    m = load_benchmark("mnmef_claims")
    assert m.holds(paired(20, 1.60, 1.58)) == "no"
    assert m.holds(paired(20, 1.50, 1.58)) == "no"  # below, but not by 10% at N <= 20
    assert m.holds(paired(40, 1.38, 1.40, diff_se=0.02)) == "no"  # within two standard errors
    assert m.holds(paired(20, 1.60, 1.58), full_budget=False) == "not at this scale"


def test_the_row_names_the_letkf_setting():
    m = load_benchmark("mnmef_claims")
    assert m.letkf_text(paired(10, 2.0, 2.1)) == "LETKF tuned (infl 1.084, loc_rad 2.78)"


def test_processes_running_different_n_merge_their_rows(tmp_path):
    """Each N's paired figures go into one paired.json (replacing that N's earlier ones and any
    of another setting or another training: the graph cut every 5 cycles has the same setting
    text as every cycle, and its N = 5 must not join their rows); the rows are written from all N
    of this setting and training, each with its command."""
    import json
    from types import SimpleNamespace

    m = load_benchmark("mnmef_claims")
    args = SimpleNamespace(minutes=30.0, finetune_minutes=30.0, seeds=list(range(1, 17)), tiny=False,
                           rows_dir=str(tmp_path / "rows"), form="reference", pretrain_N=10, n_traj=128,
                           batch_size=128, detach_every=1, spinup_rounds=2, clock="cpu")
    setting, how = m.setting_text(args, 1499), m.trained_as(args)
    every5 = SimpleNamespace(**{**vars(args), "detach_every": 5})
    other = m.trained_as(every5)
    assert other != how and m.setting_text(every5, 1499) == setting
    (tmp_path / "paired.json").write_text(json.dumps([{**paired(40, 1.2, 1.4), "setting": "older run"}]))
    m.add_paired(tmp_path, {**paired(5, 1.9, 2.6), "setting": setting, "trained_as": other, "command": "d5"})
    for N, mn, cmd in [(20, 1.60, "run A"), (10, 1.70, "run B"), (20, 1.40, "run A again")]:
        m.add_paired(tmp_path, {**paired(N, mn, 1.58), "setting": setting, "trained_as": how, "command": cmd})
    saved = json.loads((tmp_path / "paired.json").read_text())
    assert [(p["N"], p["mnmef"], p["command"]) for p in saved] == [(10, 1.70, "run B"),
                                                                 (20, 1.40, "run A again")]
    m.rows_from_paired(args, tmp_path, 1499)
    rows = json.loads((tmp_path / "rows" / "mnmef.json").read_text())
    assert [(r["N"], r["command"], r["holds"]) for r in rows] == [(10, "run B", "no"),
                                                                (20, "run A again", "yes")]


def test_truncation_table_pairs_each_configuration_with_the_letkf_and_the_first():
    """benchmarks/mnmef_truncation.py: per-seed differences, their SE over the seeds both ran
    (a diverged LETKF seed is left out of that pair only), and configurations parsed strictly."""
    import argparse

    import numpy as np
    import pandas as pd
    import pytest

    m = load_benchmark("mnmef_truncation")
    assert m.parse_config("reference:5") == ("reference", 5)
    with pytest.raises(argparse.ArgumentTypeError, match="form:detach_every"):
        m.parse_config("reference-5")
    rmse = pd.DataFrame({"a": [1.0, 1.2, 1.1], "b": [0.9, 1.0, 1.05], "LETKF": [1.3, np.nan, 1.2]},
                        index=[1, 2, 3])
    rows = {r["name"]: r for r in m.paired_table(rmse, "a", "LETKF")}
    d = np.array([-0.1, -0.2, -0.05])
    assert rows["b"]["vs_base"] == pytest.approx(d.mean())
    assert rows["b"]["vs_base_se"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert rows["b"]["lower_than_base_on"] == 3 and rows["a"]["vs_base"] == 0.0
    assert rows["a"]["vs_letkf"] == pytest.approx(-0.2) and rows["LETKF"]["seeds"] == 2
