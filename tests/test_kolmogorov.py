"""mods.Kolmogorov: jax-cfd's pseudo-spectral Kolmogorov flow as a dafilters Dynamics, and the
rozet2023 setting (tiny grids, few steps)."""

import numpy as np
import pytest
from conftest import require_extra

jax = require_extra("kolmogorov", "jax", "jax_cfd")

from mods.Kolmogorov import (  # noqa: E402
    Kolmogorov,
    L,
    as_fields,
    grid_coords,
    precision_context,
    random_vorticity,
    spun_up_state,
)

n = 16
dt = 0.01


@pytest.fixture(scope="module")
def dyn():
    return Kolmogorov(n)


@pytest.fixture(scope="module")
def state():
    """A zero-mean state with some flow in it (a short spin-up)."""
    return spun_up_state(n, T=2.0)


def test_layout(dyn):
    assert dyn.Nx == n * n and dyn.coords.shape == (n * n, 2)
    assert dyn.domain == (L, L)
    np.testing.assert_allclose(dyn.coords[3 * n + 5], [3 * L / n, 5 * L / n])
    np.testing.assert_array_equal(dyn.coords, grid_coords(n))
    E = np.arange(2 * n * n, dtype=float).reshape(2, n * n)
    assert as_fields(E)[1, 3, 5] == E[1, 3 * n + 5]


def test_vorticity_stays_zero_mean(dyn, rng):
    E = spun_up_state(n, T=2.0) + rng.standard_normal((3, n * n)) + 2.0  # not zero-mean
    for k in range(5):
        E = dyn.step(E, k * dt, dt)
        assert E.dtype == np.float64 and E.shape == (3, n * n) and E.flags.writeable
        np.testing.assert_allclose(E.mean(axis=1), 0.0, atol=1e-12)


def test_matches_jax_cfd_directly(dyn, state):
    """Our steps equal jax-cfd's own pseudo-spectral trajectory in float64."""
    import jax.numpy as jnp
    from jax_cfd.base import forcings, funcutils, grids
    from jax_cfd.spectral import equations, time_stepping

    K = 10
    with precision_context("float64"):
        grid = grids.Grid((n, n), domain=((0, 2 * jnp.pi), (0, 2 * jnp.pi)))
        eq = equations.NavierStokes2D(
            1e-3, grid, drag=0.1, smooth=True,
            forcing_fn=lambda g: forcings.kolmogorov_forcing(g, k=4, offsets=((0, 0), (0, 0))))
        step = time_stepping.crank_nicolson_rk4(eq, dt)
        w_hat = jnp.fft.rfftn(jnp.asarray(as_fields(state)))
        assert w_hat.dtype == jnp.complex128
        _, traj = funcutils.trajectory(step, K)(w_hat)
        ref = np.asarray(jnp.fft.irfftn(traj, axes=(1, 2))).reshape(K, n * n)
    ours = []
    x = state
    for k in range(K):
        x = dyn.step(x, k * dt, dt)
        ours.append(x)
    rel = np.linalg.norm(np.array(ours) - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 1e-10, rel
    np.testing.assert_allclose(dyn.advance(state, dt, K), ours[-1], rtol=0, atol=1e-11)


def test_float32_matches_float64(state):
    x32 = Kolmogorov(n, precision="float32").advance(state, dt, 5)
    x64 = Kolmogorov(n).advance(state, dt, 5)
    assert x32.dtype == np.float64
    assert np.linalg.norm(x32 - x64) / np.linalg.norm(x64) < 1e-5


def test_ensemble_step_equals_member_steps(dyn, state, rng):
    E = state + 0.5 * rng.standard_normal((4, n * n))
    together = dyn.step(E, 0.0, dt)
    alone = np.stack([dyn.step(e, 0.0, dt) for e in E])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-12)
    assert dyn.step(E[0], 0.0, dt).shape == (n * n,)


def test_compiled_once_per_setting(dyn, state):
    from mods.Kolmogorov import advance_fn

    dyn.step(state[None], 0.0, dt)
    before = advance_fn.cache_info()
    Kolmogorov(n).step(state[None], 0.0, dt)
    after = advance_fn.cache_info()
    assert after.misses == before.misses and after.hits > before.hits


def test_random_and_spun_up_states():
    w = random_vorticity(n, seed=3)
    np.testing.assert_array_equal(w, random_vorticity(n, seed=3))
    assert abs(w.mean()) < 1e-12 and np.isclose(w.std(), 1.0)
    x = spun_up_state(n, T=1.0)
    assert x is spun_up_state(n, T=1.0) and not x.flags.writeable
    assert np.all(np.isfinite(x)) and abs(x.mean()) < 1e-12


def test_rozet2023_simulates():
    from mods.Kolmogorov import rozet2023

    hmm = rozet2023.build(n=n, every=4, Ko=2)
    assert hmm.tseq.dt * hmm.tseq.dko == pytest.approx(0.2)
    xx, yy = hmm.simulate(0)
    assert xx.shape == (hmm.tseq.K + 1, n * n) and yy.shape == (3, (n // 4) ** 2)
    assert np.all(np.isfinite(xx)) and np.all(np.isfinite(yy))
    obs_idx = hmm.obs.indices(0)
    assert np.abs(yy - xx[hmm.tseq.kko][:, obs_idx]).max() < 1.0  # sigma_y = 0.1


def test_localized_filter_runs_on_the_grid():
    """LETKF finds the observations near each grid point through coords, domain and locations."""
    import dafilters as daf
    from dafilters.observations import AvgPoolObs
    from mods.Kolmogorov import rozet2023

    hmm = rozet2023.build(n=n, every=4, Ko=3)
    for obs in (hmm.obs, AvgPoolObs(n, 4, noise=0.01)):
        h = hmm.replace(obs=obs)
        xx, yy = h.simulate(1)
        stats = daf.LETKF(N=8, infl=1.05, loc_rad=1.0).assimilate(h, xx, yy, seed=1)
        assert np.all(np.isfinite(stats.series["rmse.a"]))


def test_refuses_to_run_in_a_forked_child(dyn, state, monkeypatch):
    """jax deadlocks in a process forked after it started: the model raises instead."""
    import os
    import pickle

    dyn.step(state, 0.0, dt)
    monkeypatch.setattr(dyn, "_jax_pid", os.getpid() + 1)  # as seen from a forked child
    with pytest.raises(RuntimeError, match="forked"):
        dyn.step(state, 0.0, dt)
    copy = pickle.loads(pickle.dumps(dyn))  # as sent to a spawned worker: starts afresh
    assert np.all(np.isfinite(copy.step(state, 0.0, dt))) and copy._jax_pid == os.getpid()


def test_process_pool_runs_the_model_and_reproduces_serial():
    """With jax started here, Experiments' workers come from a fork server (no deadlock) and give
    the serial table."""
    import dafilters as daf
    from mods.Kolmogorov import rozet2023

    hmm = rozet2023.build(n=16, every=4, Ko=3, dko=5)
    flt = daf.LETKF(N=6, infl=1.05, loc_rad=1.0)
    serial = daf.Experiments(hmm, flt, seeds=[0, 1]).run(progress=False).frame()
    pooled = daf.Experiments(hmm, flt, seeds=[0, 1]).run(progress=False, workers=2).frame()
    assert serial["status"].iloc[0] == "ok"
    np.testing.assert_allclose(pooled["rmse.a"], serial["rmse.a"], rtol=1e-12)
