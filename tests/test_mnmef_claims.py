"""benchmarks/mnmef_claims.py: when a row reads "yes", "no" or "not at this scale"."""

from benchmark_scripts import load_benchmark


def paired(N, mnmef, letkf, diff_se=0.01):
    name = f"LETKF(N={N}, infl=1.0837442562505892, loc_rad=2.783207366725538)"
    return {"N": N, "mnmef": mnmef, "letkf": letkf, "diff": mnmef - letkf, "diff_se": diff_se,
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
