import numpy as np
import pytest
from scipy.stats import norm

from dafilters.stats import (
    Diverged,
    Gaussian,
    Stats,
    ar1_variance_factor,
    ensemble_metrics,
    gaussian_metrics,
    mean_with_ci,
)


def test_ensemble_metrics_against_brute_force(rng):
    N, Nx = 7, 5
    E = rng.standard_normal((N, Nx))
    x = rng.standard_normal(Nx)
    rmse, spread, crps, ranks = ensemble_metrics(E, x)
    assert rmse == pytest.approx(np.sqrt(np.mean((E.mean(0) - x) ** 2)))
    assert spread == pytest.approx(np.sqrt(np.mean(E.var(0, ddof=1))))
    pair = np.abs(E[:, None, :] - E[None, :, :]).mean((0, 1))
    brute = np.mean(np.abs(E - x).mean(0) - 0.5 * pair)
    assert crps == pytest.approx(brute)
    np.testing.assert_array_equal(ranks, (E < x).sum(0))


def test_gaussian_crps_closed_form(rng):
    mu, sig, x = 0.3, 1.7, -0.4
    samples = mu + sig * rng.standard_normal((200_000, 1))
    _, _, crps_ens, _ = ensemble_metrics(samples, np.array([x]))
    _, _, crps = gaussian_metrics(np.array([mu]), np.array([sig**2]), np.array([x]))
    z = (x - mu) / sig
    exact = sig * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
    assert crps == pytest.approx(exact)
    assert crps_ens == pytest.approx(exact, rel=0.01)


def test_ci_of_iid_series(rng):
    x = rng.standard_normal(20_000)
    mu, ci = mean_with_ci(x)
    assert ci == pytest.approx(1 / np.sqrt(len(x)), rel=0.15)


def test_ci_accounts_for_autocorrelation(rng):
    """For AR(1) with a=0.9 the standard error of the mean is sqrt((1+a)/(1-a)) ~ 4.4x the iid one;
    over many replicates, |mean| < 2 ci about 95% of the time."""
    a, n, hits, ratios = 0.9, 4000, 0, []
    for _ in range(100):
        e = rng.standard_normal(n)
        x = np.empty(n)
        x[0] = e[0] / np.sqrt(1 - a**2)
        for k in range(1, n):
            x[k] = a * x[k - 1] + e[k]
        mu, ci = mean_with_ci(x)
        hits += abs(mu) < 2 * ci
        ratios.append(ci / (x.std() / np.sqrt(n)))
    assert np.median(ratios) == pytest.approx(np.sqrt((1 + a) / (1 - a)), rel=0.15)
    assert 88 <= hits <= 100


def test_short_and_constant_series():
    assert np.isnan(mean_with_ci(np.ones(3))[1])
    assert mean_with_ci(np.ones(10)) == (1.0, 0.0)


def test_stats_record_and_average(rng):
    xx = rng.standard_normal((11, 3))
    kko = np.arange(1, 11)
    stats = Stats(xx, kko, kko > 2, N=5)
    for ko in range(10):
        stats.assess(ko, "f", xx[kko[ko]] + rng.standard_normal((5, 3)))
        stats.assess(ko, "a", Gaussian(xx[kko[ko]], np.ones(3)))
    avg = stats.averages()
    assert avg["rmse.a"] == 0.0 and avg["spread.a"] == 1.0
    assert stats.rank_hist["f"].sum() == 8 * 3  # burn-in skipped
    assert stats.rank_hist["a"].sum() == 0  # Gaussian estimates have no ranks


def test_divergence_is_detected():
    xx = np.zeros((4, 2))
    stats = Stats(xx, np.arange(1, 4), np.ones(3, bool), N=2)
    with pytest.raises(Diverged):
        stats.assess(1, "f", np.array([[np.nan, 0.0], [0.0, 0.0]]))
    assert stats.diverged_at == 1
    assert np.isnan(stats.averages()["rmse.a"])
    with pytest.raises(Diverged):
        Stats(xx, np.arange(1, 4), np.ones(3, bool), N=2).assess(0, "a", np.full((2, 2), 1e9))


def test_unknown_keep():
    with pytest.raises(ValueError, match="unknown series"):
        Stats(np.zeros((2, 2)), np.array([1]), np.array([True]), keep=("median",))



def test_variance_factor_near_one_is_the_series_sum():
    """As a -> 1 the closed form of the AR(1) variance factor cancels catastrophically (at
    a = 1 - 1e-9 it was negative: a NaN standard error); the factor must equal the series and
    tend to n."""
    for a, n in ((1 - 1e-9, 400), (0.9995, 3000), (0.9, 4000), (0.3, 50)):
        k = np.arange(1, n)
        direct = 1 + 2 / n * np.sum((n - k) * a**k)
        assert ar1_variance_factor(a, n) == pytest.approx(direct, rel=1e-9)
    assert ar1_variance_factor(1 - 1e-9, 400) == pytest.approx(400, rel=1e-5)
