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
