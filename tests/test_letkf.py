import numpy as np
import pytest

import dafilters as daf
from dafilters.filters.enkf import sqrt_update
from dafilters.filters.letkf import letkf_update
from dafilters.gaussian import Covariance
from dafilters.stats import agrees
from mods.Lorenz96 import sakov2008


def test_infinite_radius_is_the_global_etkf_update(rng):
    E = rng.standard_normal((12, 30))
    H = np.eye(30)[::3]
    y = rng.standard_normal(10)
    R = np.full(10, 0.5)
    idx = np.tile(np.arange(10), (30, 1))
    Ea = letkf_update(E, E @ H.T, y, R, idx, np.ones((30, 10)))
    np.testing.assert_allclose(Ea, sqrt_update(E, E @ H.T, y, Covariance(R)), atol=1e-12)


def test_infinite_radius_filter_equals_etkf():
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=100, BurnIn=0.0))
    xx, yy = hmm.simulate(1)
    a = daf.LETKF(N=15, loc_rad=np.inf, infl=1.02).assimilate(hmm, xx, yy, seed=1, keep=("mean",))
    b = daf.EnKF("Sqrt", N=15, infl=1.02).assimilate(hmm, xx, yy, seed=1, keep=("mean",))
    np.testing.assert_allclose(a.keep["mean.a"], b.keep["mean.a"], atol=1e-9)


def test_no_observations_nearby_means_no_update(rng):
    E = rng.standard_normal((5, 4))
    idx = np.zeros((4, 1), int)
    coeff = np.zeros((4, 1))
    Ea = letkf_update(E, E[:, :1], np.array([3.0]), np.array([1.0]), idx, coeff)
    np.testing.assert_allclose(Ea, E, atol=1e-12)


@pytest.mark.parametrize("flt, ref, ref_ci", [
    (daf.LETKF(N=20, infl=1.04, loc_rad=4), 0.217, 0.002),
    (daf.LETKF(N=7, infl=1.04, loc_rad=4, rot=True), 0.219, 0.002),
])
def test_letkf_reproduces_dapper_figures(flt, ref, ref_ci):
    """docs/design.md, Reference figures (DAPPER's runs): L96 sakov2008, 5000 cycles."""
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=5000))
    res = daf.Experiments(hmm, flt, seeds=[3000]).run(progress=False).frame().iloc[0]
    assert agrees(res["rmse.a"], res["rmse.a.ci"], ref, ref_ci), (res["rmse.a"], res["rmse.a.ci"])


def test_localization_helps_small_ensembles():
    hmm = sakov2008.HMM.replace(tseq=dict(Ko=600))
    xx, yy = hmm.simulate(2)
    loc = daf.LETKF(N=10, infl=1.04, loc_rad=3).assimilate(hmm, xx, yy, seed=2).averages()["rmse.a"]
    glob = daf.LETKF(N=10, infl=1.04, loc_rad=np.inf).assimilate(hmm, xx, yy, seed=2).averages()["rmse.a"]
    assert loc < 0.3 < glob


def test_bad_letkf_settings_and_inputs():
    with pytest.raises(ValueError, match="unknown taper"):
        daf.LETKF(taper="Box")
    with pytest.raises(ValueError, match="loc_rad must be positive"):
        daf.LETKF(loc_rad=0)
    hmm = sakov2008.HMM.replace(obs=daf.LinearObs(np.eye(40), noise=1.0), tseq=dict(Ko=450))
    xx, yy = hmm.simulate(0)
    with pytest.raises(NotImplementedError, match="cannot be localized"):
        daf.LETKF().assimilate(hmm, xx, yy)


def naive_local_etkf(E, Eo, y, R_diag, idx, coeff, batch):
    """One ETKF per local domain, in a Python loop (the reference for the batched update)."""
    N, Nx = E.shape
    mu, A = E.mean(0), E - E.mean(0)
    Y = (Eo - Eo.mean(0)) / np.sqrt(R_diag)
    dy = (y - Eo.mean(0)) / np.sqrt(R_diag)
    out = np.empty_like(E)
    for b in range(idx.shape[0]):
        pts = np.arange(b * batch, min((b + 1) * batch, Nx))
        rho = coeff[b]
        S = Y[:, idx[b]] * np.sqrt(rho)
        Ginv = np.linalg.inv(S @ S.T + (N - 1) * np.eye(N))
        w = Ginv @ S @ (dy[idx[b]] * np.sqrt(rho))
        d, V = np.linalg.eigh(Ginv)
        T = np.sqrt(N - 1) * V @ np.diag(np.sqrt(d)) @ V.T
        out[:, pts] = mu[pts] + (w[:, None] + T).T @ A[:, pts]
    return out


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_batched_update_equals_a_loop_over_local_domains(rng, batch):
    from dafilters.localization import local_observations

    N, Nx = 8, 40
    E = rng.standard_normal((N, Nx))
    coords = np.arange(Nx, dtype=float)[:, None]
    where = coords[::2]
    idx, coeff = local_observations(coords, where, (40,), radius=3.0, batch=batch)
    assert idx.shape[0] == -(-Nx // batch)
    Eo, y, R = E[:, ::2], rng.standard_normal(20), np.full(20, 0.7)
    np.testing.assert_allclose(letkf_update(E, Eo, y, R, idx, coeff, batch),
                               naive_local_etkf(E, Eo, y, R, idx, coeff, batch), atol=1e-12)


def test_batch_distances_are_the_mean_over_the_batch():
    from dafilters.localization import local_observations, taper

    coords = np.arange(10, dtype=float)[:, None]
    idx, coeff = local_observations(coords, coords[[0, 5]], (10,), radius=2.0, batch=2)
    # domain {4, 5}: distances to obs 0 are 4 and 5 (mean 4.5), to obs 5 are 1 and 0 (mean 0.5)
    row = dict(zip(idx[2][coeff[2] > 0], coeff[2][coeff[2] > 0]))
    assert row[1] == pytest.approx(taper(np.array(0.5), 2.0))
    assert row[0] == pytest.approx(taper(np.array(4.5), 2.0))
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        daf.LETKF(batch=0)


def test_threaded_local_analyses_give_the_same_analysis(rng):
    from dafilters.localization import local_observations
    from dafilters.spd import THREADED_MIN

    N, Nx = 6, 2 * THREADED_MIN
    E = rng.standard_normal((N, Nx))
    coords = np.arange(Nx, dtype=float)[:, None]
    idx, coeff = local_observations(coords, coords[::3], (Nx,), radius=2.0)
    Ny = len(coords[::3])
    args = (E, E[:, ::3], rng.standard_normal(Ny), np.ones(Ny), idx, coeff)
    np.testing.assert_array_equal(letkf_update(*args, threads=1), letkf_update(*args, threads=2))


def _psd_stack(rng, b, N, L, scale):
    """``b`` matrices ``S S^T`` with ``S`` ``(N, L)`` of centred rows (like the LETKF's)."""
    S = rng.standard_normal((b, N, L)) * scale
    S -= S.mean(axis=1, keepdims=True)
    return S @ np.transpose(S, (0, 2, 1))


@pytest.mark.parametrize("N", [3, 7, 20, 40, 80])
def test_polynomial_inverse_square_root_is_exact_to_round_off(rng, N):
    from dafilters.filters.letkf import inv_sqrt_shift_poly

    for scale in (0.0, 1e-6, 1e-3, 0.01, 0.03, 0.06, 0.1):
        C = _psd_stack(rng, 32, N, 30, scale)
        out = inv_sqrt_shift_poly(C)
        f = np.sqrt((C * C).sum(axis=(1, 2))).max()
        if f > 2:  # beyond the polynomial's range
            assert out is None
            continue
        Z, s = out
        d, V = np.linalg.eigh(C + np.eye(N))
        ref = (V / np.sqrt(d)[:, None, :]) @ np.transpose(V, (0, 2, 1))
        np.testing.assert_allclose(s * Z, ref, rtol=0, atol=5e-15)


def test_polynomial_coefficients_are_within_round_off_on_their_interval():
    """Every tabulated polynomial approximates (1 - x)^(-1/2) on [-rho, rho] to float64 round-off,
    and its Chebyshev coefficients (closed form) agree with an interpolation's."""
    from numpy.polynomial import chebyshev

    from dafilters.filters import letkf

    for level in (0, 3, 8, 20, 60, 200):
        rho = letkf.POLY_R_MAX * 2.0 ** (-level / letkf.POLY_LEVELS)
        m, s, q = letkf._poly_coefficients(level)
        assert m.shape == (q, s)
        x = np.linspace(-rho, rho, 4001)
        exact = (1 - x.astype(np.longdouble)) ** -0.5
        err = np.abs(np.polynomial.polynomial.polyval(x, m.ravel()) - exact) / exact
        assert float(err.max()) < 1e-15
        c = letkf._chebyshev_coefficients(rho, 12)
        ref = chebyshev.chebinterpolate(lambda u, rho=rho: (1 - rho * u) ** -0.5, 40)[:12]
        np.testing.assert_allclose(c, ref, rtol=0, atol=2e-15)


def test_update_equals_the_newton_schulz_form_to_round_off(rng, monkeypatch):
    """The analysis with the polynomial equals the form before it (Newton-Schulz or eigh from
    dafilters.spd for every local matrix) to round-off, also with inflation folded in."""
    from dafilters.filters import letkf
    from dafilters.filters.enkf import post_process
    from dafilters.localization import local_observations

    N, Nx = 20, 80
    coords = np.arange(Nx, dtype=float)[:, None]
    idx, coeff = local_observations(coords, coords, (Nx,), radius=4.0, batch=2)
    for spread in (0.05, 0.3, 1.0, 3.0):  # the last has local norms beyond the polynomial's range
        E = rng.standard_normal(Nx) + spread * rng.standard_normal((N, Nx))
        args = (E, E + 0.1, rng.standard_normal(Nx), np.full(Nx, 0.5), idx, coeff, 2)
        new = letkf_update(*args, infl=1.05)
        monkeypatch.setattr(letkf, "USE_POLY", False)
        old = post_process(letkf_update(*args), 1.05, False, None)
        monkeypatch.setattr(letkf, "USE_POLY", True)
        np.testing.assert_allclose(new, old, rtol=0, atol=1e-13 * max(1.0, spread))
