"""dafilters.smoothing: the particle smoother against the exact Kalman (RTS) smoother of a
linear-Gaussian window, and the Wasserstein / likelihood metrics on known cases."""

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from dafilters.hmm import LinearDynamics
from dafilters.observations import PartialObs
from dafilters.smoothing import emd, log_likelihood, log_transition, particle_smoother, w1_per_state

A = np.array([[0.9, 0.3], [-0.2, 0.95]])
Q = np.array([0.3, 0.1])
R = 0.2
M0, P0 = np.array([1.0, -0.5]), np.diag([1.0, 0.5])
L, OBS = 9, [0, 4, 8]
YS = [np.array([0.4]), np.array([1.5]), np.array([-0.3])]


def rts():
    """Exact smoothing means and variances ``(L, 2)`` of the window."""
    H = np.array([[1.0, 0.0]])
    m, P, ms, Ps, mp, Pp = M0, P0, [], [], [], []
    for i in range(L):
        if i > 0:
            m, P = A @ m, A @ P @ A.T + np.diag(Q)
        mp.append(m)
        Pp.append(P)
        if i in OBS:
            y = YS[OBS.index(i)]
            K = P @ H.T / (H @ P @ H.T + R)
            m, P = m + K @ (y - H @ m), P - K @ H @ P
        ms.append(m)
        Ps.append(P)
    m_s, P_s = [ms[-1]], [Ps[-1]]
    for i in range(L - 2, -1, -1):
        G = Ps[i] @ A.T @ np.linalg.inv(Pp[i + 1])
        m_s.insert(0, ms[i] + G @ (m_s[0] - mp[i + 1]))
        P_s.insert(0, Ps[i] + G @ (P_s[0] - Pp[i + 1]) @ G.T)
    return np.array(m_s), np.array([np.diag(P) for P in P_s])


@pytest.mark.parametrize("method, n_out", [("genealogy", None), ("genealogy", 3000), ("ffbsi", 1500)])
def test_particle_smoother_matches_the_kalman_smoother(method, n_out):
    rng = np.random.default_rng(3)
    M = 20000 if method == "genealogy" else 8000  # ffbsi costs n_out * M per state
    X0 = rng.multivariate_normal(M0, P0, size=M)
    info = {}
    X = particle_smoother(LinearDynamics(A, noise=Q), PartialObs(2, [0], noise=R), X0, YS, OBS, L, rng,
                          n_out=n_out, method=method, info=info)
    assert X.shape == (n_out or M, L, 2)
    mean, var = rts()
    # sampling error: the paths of state i come from info["unique"][i] distinct particles
    n_eff = np.minimum(info["unique"], len(X))[:, None]
    assert info["unique"].min() > 100 and np.isfinite(info["log_evidence"])
    se = np.sqrt(var / n_eff)
    assert np.all(np.abs(X.mean(0) - mean) < 5 * se + 0.01), (X.mean(0) - mean) / se
    assert np.all(np.abs(X.var(0) / var - 1) < 6 * np.sqrt(2 / n_eff) + 0.02)


def test_particle_smoother_log_evidence_matches_kalman():
    # the filter's log p(y) against the exact one of the linear-Gaussian window
    rng = np.random.default_rng(0)
    X0 = rng.multivariate_normal(M0, P0, size=50000)
    info = {}
    particle_smoother(LinearDynamics(A, noise=Q), PartialObs(2, [0], noise=R), X0, YS, OBS, L, rng,
                      n_out=10, info=info)
    m, P, exact = M0, P0, 0.0
    for i in range(L):
        if i > 0:
            m, P = A @ m, A @ P @ A.T + np.diag(Q)
        if i in OBS:
            y, S = YS[OBS.index(i)][0], P[0, 0] + R
            exact += -0.5 * ((y - m[0]) ** 2 / S + np.log(2 * np.pi * S))
            K = P[:, 0] / S
            m, P = m + K * (y - m[0]), P - np.outer(K, P[0])
    assert abs(info["log_evidence"] - exact) < 0.05


def test_particle_smoother_errors():
    rng = np.random.default_rng(0)
    X0 = np.zeros((10, 2))
    obs = PartialObs(2, [0], noise=R)
    with pytest.raises(ValueError, match="model noise"):
        particle_smoother(LinearDynamics(A), obs, X0, YS, OBS, L, rng, method="ffbsi")
    with pytest.raises(ValueError, match="obs_steps"):
        particle_smoother(LinearDynamics(A, noise=Q), obs, X0, YS, [0, 4, 9], L, rng)
    with pytest.raises(ValueError, match="at most"):
        particle_smoother(LinearDynamics(A, noise=Q), obs, X0, YS, OBS, L, rng, n_out=11)


def test_w1_per_state_known_cases():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20000, 3, 2))
    shift = np.array([[0.7, -0.2], [0.0, 1.5], [0.3, 0.3]])
    W = w1_per_state(X, X + shift)
    assert W.shape == (3, 2) and np.allclose(W, np.abs(shift), atol=1e-12)  # a shift: exactly |shift|
    Y = rng.standard_normal((15000, 3, 2)) + shift
    assert np.allclose(w1_per_state(X, Y), np.abs(shift), atol=0.03)
    assert w1_per_state(np.array([0.0, 1.0]), np.array([0.5])) == pytest.approx(0.5)
    a, b = rng.standard_normal(37), rng.exponential(size=11)
    assert w1_per_state(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)


def test_emd_of_a_translation_is_its_length():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 4, 3))
    shift = rng.standard_normal((4, 3))
    assert emd(X, X + shift) == pytest.approx(np.linalg.norm(shift), rel=1e-9)
    assert emd(X, X[::-1]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="equal"):
        emd(X, X[:10])


def test_log_likelihood_and_log_transition():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5, L, 2))
    ll = log_likelihood(X, YS, OBS, np.sqrt(R), idx=[0])
    direct = sum(-0.5 * (X[:, i, 0] - y[0]) ** 2 / R - 0.5 * np.log(2 * np.pi * R) for i, y in zip(OBS, YS))
    assert np.allclose(ll, direct)
    dt = 0.5
    lt = log_transition(LinearDynamics(A, noise=Q), X, dt)
    r = X[:, 1:] - X[:, :-1] @ A.T
    direct = (-0.5 * r**2 / (Q * dt) - 0.5 * np.log(2 * np.pi * Q * dt)).sum(axis=(1, 2))
    assert np.allclose(lt, direct)
