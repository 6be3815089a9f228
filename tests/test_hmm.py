import numpy as np
import pytest

import dafilters as daf
from dafilters.hmm import streams
from mods.Lorenz63 import sakov2012
from mods.Lorenz96 import Lorenz96


def test_regular_chronology_matches_dapper_convention():
    tseq = daf.Chronology(0.01, dko=25, Ko=3, BurnIn=0.5)
    np.testing.assert_array_equal(tseq.kko, [25, 50, 75, 100])
    assert tseq.K == 100 and tseq.Ko == 3 and len(tseq.tt) == 101
    np.testing.assert_allclose(tseq.tto, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(tseq.masko, [False, False, True, True])
    assert daf.Chronology(0.01, dko=25, T=1.0).Ko == 3
    assert daf.Chronology(0.01, dko=25, K=100).Ko == 3


def test_irregular_chronology():
    tseq = daf.Chronology(0.1, tto=[0.1, 0.4, 0.5, 1.2])
    np.testing.assert_array_equal(tseq.kko, [1, 4, 5, 12])
    assert tseq.K == 12
    assert daf.Chronology(0.1, kko=[2, 3], K=5).K == 5
    copy = tseq.copy(kko=[3, 6])
    np.testing.assert_array_equal(copy.kko, [3, 6])


@pytest.mark.parametrize("kwargs, match", [
    (dict(dt=0.0, dko=1, Ko=3), "dt must be positive"),
    (dict(dt=0.1, dko=1, Ko=3, T=1.0), "exactly one"),
    (dict(dt=0.1, Ko=3), "dko"),
    (dict(dt=0.1, tto=[0.15]), "multiples of dt"),
    (dict(dt=0.1, kko=[3, 2]), "strictly increasing"),
    (dict(dt=0.1, dko=1, Ko=3, BurnIn=10.0), "BurnIn"),
])
def test_bad_chronology(kwargs, match):
    with pytest.raises(ValueError, match=match):
        daf.Chronology(**kwargs)


def test_simulate_is_seeded_and_shaped():
    hmm = sakov2012.HMM.replace(tseq=dict(Ko=10, BurnIn=0.0))
    xx, yy = hmm.simulate(seed=3)
    assert xx.shape == (hmm.tseq.K + 1, 3) and yy.shape == (11, 3)
    xx2, yy2 = hmm.simulate(seed=3)
    np.testing.assert_array_equal(xx, xx2)
    np.testing.assert_array_equal(yy, yy2)
    assert not np.array_equal(hmm.simulate(seed=4)[0], xx)


def test_observation_noise_statistics():
    hmm = sakov2012.HMM.replace(tseq=dict(Ko=4000))
    xx, yy = hmm.simulate(seed=0)
    resid = yy - xx[hmm.tseq.kko]
    np.testing.assert_allclose(resid.var(0), 2.0, rtol=0.08)
    assert abs(resid.mean()) < 0.05


def test_streams_are_independent():
    a, b, c = streams(0)
    assert len({a.random(), b.random(), c.random()}) == 3
    assert streams(0)[2].random() == streams(0)[2].random()


def test_model_noise_scales_with_sqrt_dt(rng):
    dyn = daf.LinearDynamics(np.eye(2), noise=0.5)
    E = np.zeros((100_000, 2))
    out = dyn.forecast(E, 0.0, 0.2, rng)
    np.testing.assert_allclose(out.var(0), 0.5 * 0.2, rtol=0.03)


def test_time_varying_observations_give_a_list():
    """Missing/moving observations: the observed set changes with ko."""
    Nx = 8
    obs = daf.PartialObs(Nx, idx=lambda ko: np.arange(ko % 3 + 1), noise=1.0)
    hmm = daf.HMM(Lorenz96(Nx), obs, daf.Chronology(0.05, dko=2, Ko=5), daf.GaussPrior(np.zeros(Nx), 1.0))
    xx, yy = hmm.simulate(0)
    assert isinstance(yy, list) and [len(y) for y in yy] == [1, 2, 3, 1, 2, 3]
    stats = daf.EnKF("Sqrt", N=10).assimilate(hmm, xx, yy)
    assert np.isfinite(stats.series["rmse.a"]).all()


def test_prior_size_mismatch():
    with pytest.raises(ValueError, match="prior has size"):
        daf.HMM(Lorenz96(8), daf.IdentityObs(8, 1.0), daf.Chronology(0.05, dko=1, Ko=3),
                daf.GaussPrior(np.zeros(5), 1.0))
