"""mods.ShallowWater: Dedalus's rotating shallow water on the sphere as a dafilters Dynamics, and
the xiao2026 setting (tiny grids, few steps)."""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import require_extra

require_extra("atmos", "dedalus", "mpi4py")

from mods.ShallowWater import (  # noqa: E402
    FIELDS,
    FORCING_AMPLITUDE,
    FORCING_WIDTH,
    RADIUS,
    ForcedJetPrior,
    ForcedShallowWater,
    Heating,
    Jet,
    JetPrior,
    ShallowWater,
    as_fields,
    balanced_state,
    forcing_center,
    grid,
    height_forcing,
    jet_profile,
    mass,
    quadrature_weights,
    subgrid_indices,
)

Nphi, Ntheta = 16, 8
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def dyn():
    return ShallowWater(Nphi, Ntheta)


@pytest.fixture(scope="module")
def x0():
    return balanced_state(Nphi, Ntheta)


def test_layout_and_grid(dyn):
    Nc = Nphi * Ntheta
    assert dyn.Nx == 3 * Nc and dyn.coords.shape == (3 * Nc, 3) and dyn.domain is None
    phi, theta = grid(Nphi, Ntheta)
    assert np.all(np.diff(theta) < 0)  # j = 0 nearest the south pole
    np.testing.assert_allclose(np.linalg.norm(dyn.coords, axis=1), RADIUS / 1e3)
    # component f * Nc + i * Ntheta + j sits at (phi_i, theta_j) for every field f
    i, j = 3, 5
    for f in range(3):
        np.testing.assert_allclose(dyn.lonlat[f * Nc + i * Ntheta + j],
                                   [np.degrees(phi[i]), 90 - np.degrees(theta[j])])
    E = np.arange(2 * 3 * Nc, dtype=float).reshape(2, -1)
    assert as_fields(E, Nphi, Ntheta)[1, 2, i, j] == E[1, 2 * Nc + i * Ntheta + j]
    idx = subgrid_indices(Nphi, Ntheta, (4, 2), ("u_phi", "h"))
    assert len(idx) == 2 * 4 * 4 and idx[0] == 0 and idx[16] == 2 * Nc
    with pytest.raises(ValueError, match="fields"):
        subgrid_indices(Nphi, Ntheta, 2, "v")
    with pytest.raises(ValueError, match="Nphi"):
        ShallowWater(15, 8)
    with pytest.raises(ValueError, match="size"):
        dyn.step(np.zeros((2, 10)), 0.0, 1.0)
    # sphere area from the quadrature weights
    np.testing.assert_allclose(quadrature_weights(Nphi, Ntheta).sum(), 4 * np.pi * RADIUS**2, rtol=1e-12)


def test_balanced_jet(x0):
    F = as_fields(x0, Nphi, Ntheta)
    _, theta = grid(Nphi, Ntheta)
    np.testing.assert_allclose(F[0], np.broadcast_to(jet_profile(np.pi / 2 - theta, Jet()), (Nphi, Ntheta)))
    assert np.all(F[1] == 0)
    assert F[2].min() < -300  # the height drops poleward of the jet (geostrophic balance)


def test_steps_finite_changing_and_mass_conserved(dyn, x0):
    rng = np.random.default_rng(0)
    E0 = np.stack([x0, x0 + rng.normal(0, 1.0, x0.size)])
    E = dyn.advance(E0, 1.0, 6)
    assert E.shape == E0.shape and np.all(np.isfinite(E))
    assert np.abs(E - E0).max() > 1.0
    # members are independent of their order and of how the steps are grouped
    np.testing.assert_allclose(dyn.advance(E0[::-1], 1.0, 6), E[::-1], rtol=0, atol=1e-9)
    E1 = E0
    for k in range(6):
        E1 = dyn.step(E1, k, 1.0)
    np.testing.assert_allclose(E1, E, rtol=0, atol=1e-8)
    # mass: integral of h, exactly conserved by the scheme up to round-off (the first step
    # projects the noisy member on the resolved harmonics, which keeps the l = 0 mode)
    w = quadrature_weights(Nphi, Ntheta)
    scale = np.einsum("nij,ij->n", np.abs(as_fields(E0, Nphi, Ntheta)[:, 2]), w).max()
    np.testing.assert_allclose(mass(E, Nphi, Ntheta), mass(E0, Nphi, Ntheta), rtol=0, atol=1e-10 * scale)


def test_forced_jet_runs():
    dyn = ShallowWater(Nphi, Ntheta, forcing=Jet(umax=60.0), tau=3.0)
    x = dyn.advance(np.zeros(dyn.Nx), 1.0, 4)
    assert np.all(np.isfinite(x)) and as_fields(x, Nphi, Ntheta)[0].max() > 1.0  # the forcing spins up a jet
    assert abs(mass(x, Nphi, Ntheta)) < 1e-6 * RADIUS**2


def test_prior_is_seeded():
    P = JetPrior(Nphi, Ntheta)
    A, B = P.sample(3, np.random.default_rng(1)), P.sample(3, np.random.default_rng(1))
    np.testing.assert_array_equal(A, B)
    assert A.shape == (3, P.Nx) and A.std(0).max() > 1.0


def test_height_forcing_formula():
    phi, theta = grid(Nphi, Ntheta)
    P, lat = np.meshgrid(phi, np.pi / 2 - theta, indexing="ij")
    lon_c, lat_c = forcing_center(30.0)
    assert np.isclose(lon_c, 2 * np.pi * 30 / 24) and np.isclose(lat_c, 0.4 * np.sin(2 * np.pi * 30 / 1008))
    F = height_forcing(P, lat, 30.0, 20.0, 2.0)
    # a times the zonal cosine times the latitude Gaussian; zero global mean (mass is conserved)
    np.testing.assert_allclose(F, 20 * np.cos(P - lon_c) * np.exp(-((lat - lat_c) / 2) ** 2))
    w = quadrature_weights(Nphi, Ntheta)
    assert abs(np.sum(F * w)) < 1e-12 * np.sum(np.abs(F) * w)
    # the centre circles the globe once a day
    np.testing.assert_allclose(height_forcing(P, lat, 30.0 + 24, 20.0, 2.0, Heating(year=np.inf)),
                               height_forcing(P, lat, 30.0, 20.0, 2.0, Heating(year=np.inf)), atol=1e-12)
    with pytest.raises(ValueError, match="declination"):
        Heating(declination=2.0)


def test_forced_prior_draws_parameters_per_trajectory():
    P = ForcedJetPrior(Nphi, Ntheta)
    A, B = P.sample(4, np.random.default_rng(1)), P.sample(4, np.random.default_rng(1))
    np.testing.assert_array_equal(A, B)
    assert A.shape == (4, 3 * Nphi * Ntheta + 2) == (4, P.Nx)
    a, sigma = A[:, -2], A[:, -1]
    assert np.all((FORCING_AMPLITUDE[0] <= a) & (a <= FORCING_AMPLITUDE[1]))
    assert np.all((FORCING_WIDTH[0] <= sigma) & (sigma <= FORCING_WIDTH[1]))
    assert len(np.unique(a)) == 4 and len(np.unique(sigma)) == 4
    # the jets are JetPrior's draws (drawn first), another seed gives other parameters
    np.testing.assert_array_equal(A[:, :-2], JetPrior(Nphi, Ntheta).sample(4, np.random.default_rng(1)))
    assert not np.any(np.isin(a, P.sample(4, np.random.default_rng(2))[:, -2]))
    with pytest.raises(ValueError, match="forcing_width"):
        ForcedJetPrior(Nphi, Ntheta, forcing_width=(0.0, 1.0))


@pytest.fixture(scope="module")
def forced():
    return ForcedShallowWater(Nphi, Ntheta)


def test_forced_model_keeps_parameters_and_mass(forced, x0):
    Nc = 3 * Nphi * Ntheta
    assert forced.Nx == Nc + 2 and forced.n_params == 2 and forced.coords.shape == (Nc + 2, 3)
    np.testing.assert_array_equal(forced.coords[-2:], 0.0)  # the parameters sit at the sphere's centre
    E0 = np.stack([np.r_[x0, 30.0, 1.5], np.r_[x0, 5.0, 3.0], np.r_[x0, 0.0, 2.0]])
    E = forced.advance(E0, 1.0, 6, t=3.0)
    assert np.all(np.isfinite(E))
    np.testing.assert_array_equal(E[:, -2:], E0[:, -2:])  # constant under the dynamics
    w = quadrature_weights(Nphi, Ntheta)
    scale = np.einsum("ij,ij->", np.abs(as_fields(x0, Nphi, Ntheta)[2]), w)
    np.testing.assert_allclose(mass(E[:, :-2], Nphi, Ntheta), mass(x0, Nphi, Ntheta),
                               rtol=0, atol=1e-10 * scale)
    # different parameters give different trajectories; a = 0 is the unforced model
    dh = lambda A, B: np.abs(as_fields(A[:-2] - B[:-2], Nphi, Ntheta)[2]).max()  # noqa: E731
    assert dh(E[0], E[1]) > 20.0 and dh(E[1], E[2]) > 5.0
    np.testing.assert_allclose(E[2, :-2], ShallowWater(Nphi, Ntheta).advance(x0, 1.0, 6), rtol=0, atol=1e-8)
    # the forcing depends on time: steps from t = 3 are not steps from t = 9; step() passes t on
    assert dh(E[0], forced.advance(E0[0], 1.0, 6, t=9.0)) > 5.0
    E1 = E0
    for k in range(6):
        E1 = forced.step(E1, 3.0 + k, 1.0)
    np.testing.assert_allclose(E1, E, rtol=0, atol=1e-8)
    # members are independent of their order; parameters beyond the bounds are clipped for the step
    np.testing.assert_allclose(forced.advance(E0[::-1], 1.0, 6, t=3.0), E[::-1], rtol=0, atol=1e-9)
    far = E0[:1].copy()
    far[0, -2] = -50.0
    out = forced.advance(far, 1.0, 6, t=3.0)
    assert out[0, -2] == -50.0
    np.testing.assert_allclose(out[0, :-2], E[2, :-2], rtol=0, atol=1e-8)  # clipped to a = 0


def test_xiao2026_simulates():
    from mods.ShallowWater import xiao2026

    hmm = xiao2026.build(Nphi, Ntheta, Ko=2, observe=("h", "u_phi"))
    xx, yy = hmm.simulate(seed=3)
    assert xx.shape == (hmm.tseq.K + 1, 3 * Nphi * Ntheta + 2) and np.all(np.isfinite(xx))
    assert yy.shape == (3, 2 * 4 * 4)
    R = hmm.obs.noise(0)
    np.testing.assert_allclose(R.diag, np.r_[np.full(16, 100.0), np.full(16, 1.0)])
    assert hmm.obs.locations(0, hmm.dyn.coords).shape == (32, 3)
    xx2, yy2 = hmm.simulate(seed=3)
    np.testing.assert_array_equal(xx, xx2)
    assert xiao2026.HMM.Nx == 3 * 32 * 16 + 2 and FIELDS[2] == "h"
    # the truth's forcing parameters: drawn from the prior with the seed, constant in time
    assert np.all(xx[:, -2:] == xx[0, -2:]) and FORCING_AMPLITUDE[0] <= xx[0, -2] <= FORCING_AMPLITUDE[1]
    assert not np.array_equal(hmm.simulate(seed=4)[0][0, -2:], xx[0, -2:])
    unforced = xiao2026.build(Nphi, Ntheta, Ko=1, forced=False)
    assert unforced.Nx == 3 * Nphi * Ntheta and "unforced" in unforced.name


def test_training_data_follow_the_time_dependent_forcing():
    """simulate_at_obs advances each interval from its start time (Dynamics.advance's t), as the
    twin experiments do: the forcing moves with time."""
    from dafilters.nn.data import simulate_at_obs
    from mods.ShallowWater import xiao2026

    hmm = xiao2026.build(Nphi, Ntheta, Ko=1, dko=3)
    xx, yy = simulate_at_obs(hmm, 2, seed=3)
    for i in range(2):
        x_ref, y_ref = hmm.simulate(3 * 1_000_003 + 10**6 + i)
        np.testing.assert_allclose(xx[i], x_ref[[0, 3, 6]], rtol=0, atol=1e-8)
        np.testing.assert_allclose(yy[i], y_ref, rtol=0, atol=1e-8)


def test_forced_model_runs_the_dynamics_constructor_once(monkeypatch):
    from dafilters.hmm import Dynamics

    calls = []
    init = Dynamics.__init__
    monkeypatch.setattr(Dynamics, "__init__", lambda self, *a, **k: calls.append(a) or init(self, *a, **k))
    dyn = ForcedShallowWater(Nphi, Ntheta, noise=0)
    assert len(calls) == 1 and dyn.Nx == 3 * Nphi * Ntheta + 2 and dyn.noise is None
    assert np.isnan(dyn.lonlat[-2:]).all() and not dyn.coords[-2:].any()


MPI_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from mpi4py import MPI
    sys.path.insert(0, {root!r})
    from mods.ShallowWater import ShallowWater, JetPrior, ForcedShallowWater, ForcedJetPrior
    X0 = JetPrior({Nphi}, {Ntheta}).sample(2, np.random.default_rng(5))
    dyn = ShallowWater({Nphi}, {Ntheta}, comm=MPI.COMM_WORLD)
    E = dyn.advance(X0, 1.0, 5)
    np.save(sys.argv[1] + f"_{{MPI.COMM_WORLD.rank}}.npy", E)
    X0 = ForcedJetPrior({Nphi}, {Ntheta}).sample(2, np.random.default_rng(5))
    E = ForcedShallowWater({Nphi}, {Ntheta}, comm=MPI.COMM_WORLD).advance(X0, 1.0, 5, t=7.0)
    np.save(sys.argv[1] + f"_forced_{{MPI.COMM_WORLD.rank}}.npy", E)
""")


def test_one_and_two_mpi_ranks_agree(tmp_path):
    """Distributing the grid over 2 ranks changes only the order of some floating-point sums in
    Dedalus's transforms, so the states agree to round-off amplified over 5 steps: the test allows
    1e-10 relative to the field scale (measured: about 2e-18 relative, i.e. a few ulps), and
    both ranks get the same whole state."""
    require_extra("atmos", commands=("mpiexec",))
    exe = shutil.which("mpiexec")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    extra = ["--oversubscribe"] if "Open MPI" in version or "OpenRTE" in version else []
    script = tmp_path / "sw_mpi.py"
    script.write_text(MPI_SCRIPT.format(root=ROOT, Nphi=Nphi, Ntheta=Ntheta))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1")
    out = str(tmp_path / "E")
    proc = subprocess.run([exe, "-n", "2", *extra, sys.executable, str(script), out],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    E0, E1 = np.load(out + "_0.npy"), np.load(out + "_1.npy")
    np.testing.assert_array_equal(E0, E1)
    X0 = JetPrior(Nphi, Ntheta).sample(2, np.random.default_rng(5))
    serial = ShallowWater(Nphi, Ntheta).advance(X0, 1.0, 5)
    np.testing.assert_allclose(E0, serial, rtol=0, atol=1e-10 * np.abs(serial).max())
    # the forced model (time-dependent forcing, parameters per member) distributes alike
    F0, F1 = np.load(out + "_forced_0.npy"), np.load(out + "_forced_1.npy")
    np.testing.assert_array_equal(F0, F1)
    X0 = ForcedJetPrior(Nphi, Ntheta).sample(2, np.random.default_rng(5))
    serial = ForcedShallowWater(Nphi, Ntheta).advance(X0, 1.0, 5, t=7.0)
    np.testing.assert_allclose(F0, serial, rtol=0, atol=1e-10 * np.abs(serial).max())
    assert np.all(F0[:, -2:] == X0[:, -2:])
