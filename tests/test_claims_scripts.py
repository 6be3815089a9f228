"""The claims scripts' plans (benchmarks/ensf_shock.py, benchmarks/ssls_paper.py): which setting the
LETKF is tuned and scored in, which rows file a run writes, and how a reduced SSLS is described."""

import argparse

import pytest
from benchmark_scripts import load_benchmark


def test_ensf_plain_setting_tunes_and_scores_without_shocks():
    E = load_benchmark("ensf_shock")
    plain = E.plan("plain", full=True)
    assert "shock" not in plain["hmm"].name and plain["contrast"] is None
    assert plain["name"] == "ensf_plain" and "no shocks" in plain["claim"]
    assert {i for i, _ in plain["grid"]} == set(E.PLAIN_INFL["full"])
    shock = E.plan("shock", full=True)  # the first row's run is unchanged: its own file and grid
    assert "shock" in shock["hmm"].name and "shock" not in shock["contrast"].name
    assert shock["name"] == "ensf_shock" and len(shock["grid"]) == 24
    assert E.plan("plain", full=False)["name"] == "ensf_plain_tiny"
    with pytest.raises(ValueError, match="setting"):
        E.plan("storm", full=True)


def test_ssls_reduction_is_named():
    S = load_benchmark("ssls_paper")
    args = argparse.Namespace(train_steps=None, first_steps=None, langevin_steps=None, step=None)
    assert S.ssls_options(args, S.FULL) == ({}, "")  # the reference's settings: no reduction
    args.train_steps, args.langevin_steps, args.step = 30, 500, 2e-3
    kw, reduced = S.ssls_options(args, S.FULL)
    assert kw == {"train_steps": 30, "langevin_steps": 500, "step": 2e-3}
    assert reduced == "SSLS reduced: train_steps=30 (reference 600), step=0.002 (reference 0.001)"


def test_ssls_rows_file_and_diverged_comparators():
    S = load_benchmark("ssls_paper")
    args = argparse.Namespace(full=True)
    cfg = dict(S.FULL)
    assert S.rows_name(args, cfg, "") == "ssls_paper"  # the full run's file
    assert S.rows_name(args, dict(cfg, sigmas=[0.5], Ns=[50]), "x") == "ssls_paper_reduced_s0.5_N50"
    assert S.finite_mean([1.0, 3.0], "APF") == (2.0, "APF")
    mean, name = S.finite_mean([1.0, float("inf"), 3.0], "APF reg=2")
    assert mean == 2.0 and "diverged on 1 of 3 seeds" in name
    assert S.finite_mean([float("inf")] * 2, "APF")[0] == float("inf")


def test_ssls_reference_apf_is_the_bootstrap_filter_with_the_reference_forecast_noise():
    """The SSLS reference's APF (notebooks/LorenzAuxiliaryParticleFilter.ipynb) adds N(0, 0.5^2 I)
    to every forecast particle and resamples by the likelihood every cycle, without jitter."""
    import numpy as np

    import dafilters as daf
    from mods.Lorenz96 import ssls

    S = load_benchmark("ssls_paper")
    hmm = ssls.reference(sigma=1.0, steps=5)
    flt, fh = S.reference_apf(hmm, 30)
    assert isinstance(flt, daf.PartFilt) and flt.reg == 0 and flt.NER == 1 and flt.resampl == "Multinomial"
    assert fh.obs is hmm.obs and fh.prior is hmm.prior and fh.tseq is hmm.tseq
    E = np.full((20000, hmm.Nx), 8.0)
    dt = hmm.tseq.dt
    step = fh.dyn.forecast(E, 0.0, dt, np.random.default_rng(0)) - hmm.dyn.step(E, 0.0, dt)
    np.testing.assert_allclose(step.var(0), 0.5**2 + ssls.MODEL_NOISE**2 * dt, rtol=0.05)
    # it filters: the twin from hmm, the forecast noise from fh
    xx, yy = hmm.simulate(1)
    assert np.isfinite(flt.assimilate(fh, xx, yy, seed=1).averages()["rmse.a"])
