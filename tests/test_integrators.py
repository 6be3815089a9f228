import numpy as np
import pytest

from dafilters.integrators import rk4, rk4_jacobian, rk4_steps
from mods.Lorenz63 import d2x_dtdx
from mods.Lorenz63 import dxdt as l63
from mods.Lorenz96 import jacobian as l96_jac
from mods.Lorenz96 import tendency as l96


def test_rk4_is_fourth_order():
    """Error on x' = -x over [0, 1] shrinks by ~2^4 when dt halves."""
    errs = []
    for n in (10, 20):
        x = rk4_steps(lambda x, t: -x, np.array([1.0]), 0.0, 1.0, n)
        errs.append(abs(x[0] - np.exp(-1)))
    assert 14 < errs[0] / errs[1] < 18


def test_rk4_acts_on_ensembles(rng):
    E = rng.standard_normal((5, 40)) + 8
    out = rk4(lambda x, t: l96(x), E, 0.0, 0.05)
    for n in range(5):
        np.testing.assert_allclose(out[n], rk4(lambda x, t: l96(x), E[n], 0.0, 0.05))


def finite_difference(f, x, eps=1e-6):
    return np.stack([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(len(x))], axis=1)


def test_rk4_jacobian_lorenz63(rng):
    x = np.array([1.509, -1.531, 25.46])
    f = lambda z, t=0: l63(z)  # noqa: E731
    M = rk4_jacobian(f, d2x_dtdx, x, 0.0, 0.01)
    np.testing.assert_allclose(M, finite_difference(lambda z: rk4(f, z, 0.0, 0.01), x), atol=1e-7)


def test_rk4_jacobian_lorenz96(rng):
    x = 8 + rng.standard_normal(10)
    f = lambda z, t=0: l96(z)  # noqa: E731
    np.testing.assert_allclose(l96_jac(x), finite_difference(l96, x), atol=1e-7)
    M = rk4_jacobian(f, l96_jac, x, 0.0, 0.05)
    np.testing.assert_allclose(M, finite_difference(lambda z: rk4(f, z, 0.0, 0.05), x), atol=1e-7)


def test_lorenz63_advance_equals_its_steps_bit_for_bit(rng):
    from mods.Lorenz63 import BY_VARIABLE_FROM, advance, step, x0

    for E in (x0 + rng.standard_normal((10, 3)), x0 + rng.standard_normal(3),
              x0 + rng.standard_normal((BY_VARIABLE_FROM, 3))):
        ref = E
        for _ in range(25):
            ref = step(ref, 0.0, 0.01)
        np.testing.assert_array_equal(advance(E, 0.01, 25), ref)


def test_lorenz63_fused_advance_equals_rk4_to_round_off(rng):
    """The fused RK4 (8 numpy calls a step) is the generic rk4 with dxdt, up to round-off: over
    one step and over a cycle of 25, for small and large ensembles."""
    from mods.Lorenz63 import advance_fused, x0

    for N in (1, 2, 10, 64, 300):
        E = x0 + 3 * rng.standard_normal((N, 3))
        ref = E
        for n in range(25):
            ref = rk4(lambda z, t: l63(z), ref, 0.0, 0.01)
            if n == 0:
                np.testing.assert_allclose(advance_fused(E, 0.01, 1), ref, rtol=1e-15, atol=1e-14)
        out = advance_fused(E, 0.01, 25)
        np.testing.assert_allclose(out, ref, rtol=1e-14, atol=1e-13)
        assert out.flags.c_contiguous and out.shape == (N, 3)
        assert not np.array_equal(advance_fused(E, 0.02, 25), out)  # dt is used, not a cached one
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        advance_fused(x0, 0.01, 1)


def test_lorenz63_forecast_advance_is_fused_below_its_threshold(rng):
    from mods.Lorenz63 import FUSED_BELOW, Lorenz63, advance, advance_fused, x0

    dyn = Lorenz63()
    for N in (10, FUSED_BELOW - 1, FUSED_BELOW):
        E = x0 + rng.standard_normal((N, 3))
        fast = advance_fused(E, 0.01, 5) if N < FUSED_BELOW else advance(E, 0.01, 5)
        np.testing.assert_array_equal(dyn.forecast_advance(E, 0.01, 5), fast)
    np.testing.assert_array_equal(dyn.forecast_advance(x0, 0.01, 5), advance(x0, 0.01, 5))


def test_forecast_takes_the_model_shortcut_without_model_noise(monkeypatch):
    """The driver's default forecast calls dyn.forecast_advance once per cycle without model
    noise: Lorenz-63's fused RK4, whose runs equal those that step (to round-off over 60 cycles;
    the PertObs runs synchronise to the observations); with model noise it steps. A model without
    a shortcut (the Dynamics default: advance where advance_exact, else None) steps."""
    import dafilters as daf
    from mods.Lorenz63 import Lorenz63, Lorenz63Dynamics, sakov2012

    hmm = sakov2012.HMM.replace(tseq=dict(Ko=60, BurnIn=1.0))
    xx, yy = hmm.simulate(2)
    calls = []
    shortcut = Lorenz63Dynamics.forecast_advance
    runs = {}
    for fused in (True, False):
        monkeypatch.setattr(Lorenz63Dynamics, "forecast_advance",
                            lambda self, *a, on=fused: calls.append(a) or shortcut(self, *a) if on else None)
        for upd in ("Sqrt", "PertObs"):
            runs[fused, upd] = daf.EnKF(upd, N=10, infl=1.02).assimilate(hmm, xx, yy, seed=2, keep=("mean",))
        assert len(calls) == (61 * 2 if fused else 0)
        calls.clear()
    for upd in ("Sqrt", "PertObs"):
        np.testing.assert_allclose(runs[True, upd].keep["mean.a"], runs[False, upd].keep["mean.a"],
                                   rtol=0, atol=1e-9)
    monkeypatch.setattr(Lorenz63Dynamics, "forecast_advance",
                        lambda self, *a: calls.append(a) or shortcut(self, *a))
    noisy = hmm.replace(dyn=Lorenz63(noise=0.1))
    daf.EnKF("Sqrt", N=10).assimilate(noisy, *noisy.simulate(2), seed=2)
    assert not calls


def test_dynamics_forecast_advance_default():
    from dafilters.hmm import Dynamics

    class Exact(Dynamics):
        advance_exact = True

    E = np.ones((2, 3))
    assert Dynamics(3, model=lambda E, t, dt: 2 * E).forecast_advance(E, 0.1, 3) is None
    np.testing.assert_array_equal(Exact(3, model=lambda E, t, dt: 2 * E).forecast_advance(E, 0.1, 3), 8 * E)
