"""Inputs are validated where they enter: observation operators of the wrong width, invalid noise
covariances (R, Q), noise() that is not a Covariance, priors of the wrong size, a non-finite truth.
Each of these used to be accepted and to fail later (or never) with a misleading message."""

import numpy as np
import pytest

import dafilters as daf
from dafilters.gaussian import Covariance

NX = 3


def small_hmm(obs=None, prior=None, dyn=None) -> daf.HMM:
    """A 3-variable linear-Gaussian HMM with 6 observation times."""
    return daf.HMM(dyn or daf.LinearDynamics(0.9 * np.eye(NX), noise=0.1),
                   obs or daf.IdentityObs(NX, noise=0.5),
                   daf.Chronology(1.0, dko=1, Ko=5),
                   prior or daf.GaussPrior(np.zeros(NX), 1.0), name="small")


class OneColumnObs(daf.Observation):
    """Claims Ny = 3 but its h gives one column."""

    def Ny(self, ko):
        return NX

    def h(self, E, ko):
        return E[:, :1]

    def noise(self, ko):
        return Covariance(0.5, NX)


class FloatNoiseObs(OneColumnObs):
    """A correct operator whose noise() returns a float."""

    def h(self, E, ko):
        return E

    def noise(self, ko):
        return 0.5


# -- observation operators of the wrong width ----------------------------------------------------
@pytest.mark.parametrize("obs", [daf.FunctionObs(lambda x: x.mean(-1, keepdims=True), NX, noise=0.5),
                                 OneColumnObs()], ids=["FunctionObs", "subclass"])
def test_wrong_width_operator_refused(obs):
    with pytest.raises(ValueError, match=r"h\(x\) of one state has shape \(1,\), expected \(Ny,\) = \(3,\)"):
        small_hmm(obs).simulate(0)
    xx, yy = small_hmm().simulate(0)
    wide = r"maps 2 states .* to shape \(2, 1\) at ko=0, expected \(2, Ny\) = \(2, 3\)"
    with pytest.raises(ValueError, match=wide):
        daf.EnKF("Sqrt", N=10).assimilate(small_hmm(obs), xx, yy)


# -- observation-noise covariances R -------------------------------------------------------------
@pytest.mark.parametrize("noise, message", [
    (0.0, "is zero"),
    (np.zeros(NX), "is zero"),
    (np.array([1.0, 0.0, 1.0]), "zero variance at index 1"),
    (-1.0, "negative variance"),
    (np.ones((NX, NX)), r"singular, not positive definite \(smallest eigenvalue"),
    (np.array([[1.0, 2, 0], [2, 1.0, 0], [0, 0, 1.0]]), r"not positive definite \(smallest eigenvalue -1,"),
    (np.array([[1.0, 0.5, 0], [0.0, 1.0, 0], [0, 0, 1.0]]), "not symmetric"),
])
def test_invalid_R_refused_at_construction(noise, message):
    with pytest.raises(ValueError, match=f"observation noise R of PartialObs: .*{message}"):
        daf.IdentityObs(NX, noise=noise)


def test_invalid_time_varying_R_refused_when_asked_for():
    obs = daf.PartialObs(NX, [0, 1], noise=lambda ko: np.array([1.0, 0.0]) if ko == 2 else 1.0)
    assert obs.noise(1).diag.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="R of PartialObs at ko=2: covariance has zero variance"):
        obs.noise(2)
    semi = daf.PartialObs(NX, [0, 1], noise=lambda ko: Covariance([1.0, 0.0], semidefinite=True))
    with pytest.raises(ValueError, match="zero variance at index 1"):
        semi.noise(0)


def test_singular_noise_from_custom_observation_refused():
    class SemidefiniteNoiseObs(FloatNoiseObs):
        def noise(self, ko):
            return Covariance([1.0, 1.0, 0.0], semidefinite=True)

    with pytest.raises(ValueError, match=r"SemidefiniteNoiseObs.noise\(0\): is singular"):
        small_hmm(SemidefiniteNoiseObs()).simulate(0)


# -- model-noise covariances Q -------------------------------------------------------------------
@pytest.mark.parametrize("noise, message", [
    (np.zeros(NX), "is zero"),
    (np.zeros((NX, NX)), "is zero"),
    (np.array([0.1, -0.1, 0.1]), "negative variance"),
    (np.ones((NX, NX)), "singular"),
])
def test_invalid_Q_refused(noise, message):
    with pytest.raises(ValueError, match=message):
        daf.LinearDynamics(0.9 * np.eye(NX), noise=noise)


def test_deterministic_and_semidefinite_Q_accepted(rng):
    assert daf.LinearDynamics(np.eye(NX), noise=None).noise is None
    assert daf.LinearDynamics(np.eye(NX), noise=0).noise is None
    # zero variance on purpose: the last component (a parameter) does not drift
    dyn = daf.LinearDynamics(np.eye(NX), noise=Covariance([1.0, 1.0, 0.0], semidefinite=True))
    E = dyn.forecast(np.zeros((50, NX)), 0.0, 1.0, rng)
    assert np.all(E[:, 2] == 0) and np.all(E[:, :2].std(0) > 0.5)
    with pytest.raises(ValueError, match="singular .* no inverse"):
        _ = dyn.noise.inv


# -- noise() that is not a Covariance ------------------------------------------------------------
def test_noise_not_a_covariance_refused():
    with pytest.raises(TypeError, match=r"FloatNoiseObs.noise\(0\): must be a dafilters.Covariance, got flo"):
        small_hmm(FloatNoiseObs()).simulate(0)
    xx, yy = small_hmm().simulate(0)
    with pytest.raises(TypeError, match=r"FloatNoiseObs.noise\(0\): must be a dafilters.Covariance"):
        daf.EnKF("Sqrt", N=10).assimilate(small_hmm(FloatNoiseObs()), xx, yy)

    class WrongSizeNoiseObs(FloatNoiseObs):
        def noise(self, ko):
            return Covariance(0.5, NX - 1)

    with pytest.raises(ValueError, match=r"WrongSizeNoiseObs.noise\(0\): has size 2, expected 3"):
        daf.EnKF("Sqrt", N=10).assimilate(small_hmm(WrongSizeNoiseObs()), xx, yy)


# -- priors --------------------------------------------------------------------------------------
def test_prior_of_wrong_size_refused():
    with pytest.raises(ValueError, match=r"GaussPrior: covariance C has size 2, expected 3 \(the size of mu"):
        daf.GaussPrior(np.zeros(NX), np.ones(2))
    with pytest.raises(ValueError, match="GaussPrior: mean mu has size 3, expected 4"):
        daf.GaussPrior(np.zeros(NX), 1.0, Nx=4)
    with pytest.raises(ValueError, match=r"GaussPrior: mean mu must be a scalar or 1-D, got shape \(2, 3\)"):
        daf.GaussPrior(np.zeros((2, NX)), 1.0)
    with pytest.raises(ValueError, match="GaussPrior: covariance C: covariance is not positive definite"):
        daf.GaussPrior(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="HMM 'small': prior has size 4 but the dynamics have Nx=3"):
        small_hmm(prior=daf.GaussPrior(np.zeros(4), 1.0))


def test_prior_subclass_without_Nx_refused():
    class NoNx(daf.Prior):
        def sample(self, N, rng):
            return np.zeros((N, NX))

    with pytest.raises(TypeError, match="a Prior subclass must set Nx"):
        small_hmm(prior=NoNx())


def test_singular_prior_accepted_and_sampled(rng):
    """A prior may fix components (zero variance) or be singular: it is sampled, not inverted."""
    assert np.all(daf.GaussPrior(np.ones(NX), 0.0).sample(4, rng) == 1.0)
    X = daf.GaussPrior(np.zeros(2), np.ones((2, 2))).sample(1000, rng)  # x0 = x1 exactly
    np.testing.assert_allclose(X[:, 0], X[:, 1], atol=1e-12)
    assert 0.9 < X[:, 0].std() < 1.1


# -- the truth -----------------------------------------------------------------------------------
def test_non_finite_truth_refused():
    hmm = small_hmm()
    xx, yy = hmm.simulate(0)
    xx[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"truth xx contains NaN or inf, first at time index k=3 \(t=3\)"):
        daf.EnKF("Sqrt", N=10).assimilate(hmm, xx, yy)
    xx[3, 1] = 0.0
    yy[2, 0] = np.inf
    with pytest.raises(ValueError, match=r"observation yy\[2\] contains NaN or inf"):
        daf.EnKF("Sqrt", N=10).assimilate(hmm, xx, yy)


def test_valid_inputs_still_run():
    hmm = small_hmm()
    xx, yy = hmm.simulate(0)
    stats = daf.EnKF("Sqrt", N=10).assimilate(hmm, xx, yy)
    assert not stats.diverged
