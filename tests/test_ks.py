import numpy as np

import dafilters as daf
from mods.KS import KS, bach2025, etdrk4_step, x0
from mods.Lorenz96 import bach2025 as l96_bach


def spun_up():
    u = x0()
    for _ in range(200):
        u = etdrk4_step(u, 32 * np.pi, 0.25)
    return u


def run(u, dt, T):
    for _ in range(int(round(T / dt))):
        u = etdrk4_step(u, 32 * np.pi, dt)
    return u


def test_etdrk4_converges():
    """Errors against a fine-step solution shrink by > 6x per halving of dt (observed order ~3-3.5
    over 5 time units of this chaotic flow)."""
    u = spun_up()
    ref = run(u, 0.25 / 16, 5.0)
    errs = [np.abs(run(u, dt, 5.0) - ref).max() for dt in (0.25, 0.125, 0.0625)]
    assert errs[0] < 0.01
    assert errs[0] / errs[1] > 6 and errs[1] / errs[2] > 6


def test_ks_is_bounded_chaotic_and_batched():
    dyn = KS()
    u = spun_up()
    E = u + 1e-6 * np.random.default_rng(0).standard_normal((4, 128))
    for _ in range(400):
        E = dyn.step(E, 0.0, 0.25)
    assert np.abs(E).max() < 5  # stays on the attractor (|u| ~ 3)
    assert np.abs(E[0] - E[1]).max() > 1e-3  # perturbations grow: chaotic
    np.testing.assert_allclose(dyn.step(E, 0, 0.25)[2], dyn.step(E[2], 0, 0.25), atol=1e-12)
    assert abs(E.mean()) < 1e-8 * 128  # the mean of u is conserved (zero)


def test_mnmef_settings():
    for hmm, Ny, dko in [(l96_bach.HMM, 10, 5), (bach2025.HMM, 16, 4)]:
        assert hmm.obs.Ny(0) == Ny and hmm.tseq.dko == dko and hmm.tseq.Ko == 1499
    hmm = bach2025.build(Ko=300)
    xx, yy = hmm.simulate(0)
    stats = daf.LETKF(N=20, infl=1.05, loc_rad=8).assimilate(hmm, xx, yy, seed=0)
    clim = np.sqrt(np.mean(xx[hmm.tseq.kko][hmm.tseq.masko] ** 2))
    assert stats.averages()["rmse.a"] < 0.85 * clim  # sparse, noisy observations: ~1.0 vs 1.3


def test_ks_says_it_lives_on_a_ring():
    """KS gives no default-geometry note when a localized filter reads its coordinates (it did
    not say domain='ring', so LETKF runs on it warned)."""
    import warnings

    from dafilters.dynamics import DefaultGeometryWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", DefaultGeometryWarning)
        assert KS(Nx=16).coords.shape == (16, 1)
