import numpy as np

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


def test_forecast_takes_the_exact_advance_without_model_noise(monkeypatch):
    """The driver's default forecast calls dyn.advance once per cycle where the model says it
    equals its steps (Lorenz-63): the runs are the same bit for bit; with model noise it steps."""
    import dafilters as daf
    from mods.Lorenz63 import Lorenz63, Lorenz63Dynamics, sakov2012

    hmm = sakov2012.HMM.replace(tseq=dict(Ko=60, BurnIn=1.0))
    xx, yy = hmm.simulate(2)
    calls = []
    advance = Lorenz63Dynamics.advance
    monkeypatch.setattr(Lorenz63Dynamics, "advance", lambda self, *a: calls.append(a) or advance(self, *a))
    runs = {}
    for exact in (True, False):
        monkeypatch.setattr(Lorenz63Dynamics, "advance_exact", exact)
        for upd in ("Sqrt", "PertObs"):
            runs[exact, upd] = daf.EnKF(upd, N=10, infl=1.02).assimilate(hmm, xx, yy, seed=2, keep=("mean",))
        assert bool(calls) == exact
        calls.clear()
    for upd in ("Sqrt", "PertObs"):
        np.testing.assert_array_equal(runs[True, upd].keep["mean.a"], runs[False, upd].keep["mean.a"])
    monkeypatch.setattr(Lorenz63Dynamics, "advance_exact", True)
    noisy = hmm.replace(dyn=Lorenz63(noise=0.1))
    daf.EnKF("Sqrt", N=10).assimilate(noisy, *noisy.simulate(2), seed=2)
    assert not calls
