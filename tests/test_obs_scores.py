"""Likelihood scores of the observation operators: closed form against autograd and finite
differences, numpy against torch, batches of any leading shape."""

import numpy as np
import pytest
import torch

import dafilters as daf
from dafilters.hmm import autograd_grad_loglik
from dafilters.observations import TorchObs

Nx = 7


def operators():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((4, 4))
    return {
        "identity": daf.IdentityObs(Nx, 0.5),
        "partial": daf.PartialObs(Nx, [0, 2, 5], np.array([0.5, 1.0, 2.0])),
        "partial-duplicates": daf.PartialObs(Nx, [1, 1, 6], 0.3),
        "partial-full-R": daf.PartialObs(Nx, [0, 3, 4, 6], A @ A.T + np.eye(4)),
        "time-varying": daf.PartialObs(Nx, lambda ko: np.arange(ko % 3, Nx, 2), 0.7),
        "arctan": daf.ArctanObs(Nx, 0.05**2),
        "arctan-partial": daf.ArctanObs(Nx, 0.2, idx=[1, 4]),
        "linear": daf.LinearObs(rng.standard_normal((3, Nx)), np.array([1.0, 0.5, 2.0])),
        "tanh-no-df": daf.FunctionObs(np.tanh, Nx, 0.1, idx=[0, 1, 2]),
    }


def observation(obs, ko, rng):
    return rng.standard_normal(obs.Ny(ko))


@pytest.mark.parametrize("name", list(operators()))
def test_analytic_score_matches_autograd(name):
    obs = operators()[name]
    rng = np.random.default_rng(0)
    for ko in (0, 1):
        y = observation(obs, ko, rng)
        X = 2 * rng.standard_normal((5, Nx))
        G = obs.grad_loglik(y, X, ko)
        assert isinstance(G, np.ndarray) and G.shape == X.shape
        np.testing.assert_allclose(G, autograd_grad_loglik(obs, y, X, ko), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(operators()))
def test_score_is_gradient_of_loglik(name):
    """Central finite differences of ``loglik`` agree with the score."""
    obs = operators()[name]
    rng = np.random.default_rng(1)
    y = observation(obs, 2, rng)
    x = rng.standard_normal(Nx)
    g = obs.grad_loglik(y, x[None], 2)[0]
    h = 1e-6
    fd = np.array([(obs.loglik(y, (x + h * e)[None], 2) - obs.loglik(y, (x - h * e)[None], 2))[0] / (2 * h)
                   for e in np.eye(Nx)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["identity", "partial", "partial-duplicates", "arctan-partial", "linear"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_scores_match_numpy(name, dtype):
    obs = operators()[name]
    rng = np.random.default_rng(2)
    y = observation(obs, 0, rng)
    X = rng.standard_normal((2, 3, Nx))  # any leading batch shape
    G = obs.grad_loglik(torch.as_tensor(y, dtype=dtype), torch.as_tensor(X, dtype=dtype), 0)
    assert isinstance(G, torch.Tensor) and G.dtype == dtype and G.shape == X.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(G.numpy(), obs.grad_loglik(y, X, 0), rtol=tol, atol=tol)


def test_torch_obs_autograd_and_jacobian():
    """A nonlinear operator written in torch (a quadratic interaction of neighbours): its score
    by autograd equals the hand-derived one, and its Jacobian from ``linear`` is right."""
    def h(X):
        return X[..., :-1] * X[..., 1:] + torch.sin(X[..., :-1])

    obs = TorchObs(h, Ny=Nx - 1, noise=0.3)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((4, Nx))
    y = rng.standard_normal(Nx - 1)
    np.testing.assert_allclose(obs(X, 0), X[:, :-1] * X[:, 1:] + np.sin(X[:, :-1]))
    v = (y - obs(X, 0)) / 0.3
    expect = np.zeros_like(X)
    expect[:, :-1] += v * (X[:, 1:] + np.cos(X[:, :-1]))
    expect[:, 1:] += v * X[:, :-1]
    np.testing.assert_allclose(obs.grad_loglik(y, X, 0), expect, rtol=1e-12)
    Gt = obs.grad_loglik(torch.tensor(y), torch.tensor(X), 0)
    np.testing.assert_allclose(Gt.numpy(), expect, rtol=1e-12)
    J = obs.linear(X[0], 0)
    fd = np.array([(obs(X[0] + 1e-6 * e, 0) - obs(X[0] - 1e-6 * e, 0)) / 2e-6 for e in np.eye(Nx)]).T
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8)


def test_missing_torch_operator_is_a_clear_error():
    class NumpyOnly(daf.Observation):
        def Ny(self, ko):
            return 2

        def h(self, E, ko):
            return E[..., :2] ** 2

        def noise(self, ko):
            return daf.Covariance(1.0, 2)

    with pytest.raises(NotImplementedError, match="h_torch"):
        NumpyOnly().grad_loglik(np.zeros(2), np.ones((3, 4)), 0)
    with pytest.raises(NotImplementedError, match="f_torch"):
        daf.FunctionObs(lambda x: x**3, Nx, 1.0).grad_loglik(np.zeros(Nx), np.ones((2, Nx)), 0)


def test_scores_do_not_touch_the_states():
    obs = daf.ArctanObs(Nx, 0.1)
    X = torch.randn(3, Nx, generator=torch.Generator().manual_seed(0))
    X0 = X.clone()
    obs.grad_loglik(torch.zeros(Nx), X, 0)
    assert torch.equal(X, X0)
