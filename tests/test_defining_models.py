"""Defining a model: a user's own package outside ``mods``, priors, scales, geometry, L96's Force."""

import pickle
import sys
import textwrap
import warnings

import numpy as np
import pytest

import dafilters as daf
import mods.Lorenz96 as L96
from dafilters import cli
from dafilters.dynamics import DefaultGeometryWarning
from dafilters.identity import content_hash
from mods.Lorenz96 import sakov2008

SETTING = '''
"""A toy setting of a user's package."""
import numpy as np
from dafilters import HMM as _HMM, Chronology, GaussPrior, PartialObs
from . import Damped

HMM = _HMM(dyn=Damped(), obs=PartialObs(2, [0], noise=0.1),
           tseq=Chronology(0.05, dko=2, Ko=40, BurnIn=0.5),
           prior=GaussPrior(np.array([1.0, 0.0]), 0.5), name="{pkg}.toy")
'''
MODEL = '''
"""A damped oscillator (a user's model, outside mods)."""
from dafilters import Dynamics
from dafilters.integrators import rk4

def dxdt(x, t=0.0):
    return np.stack([x[..., 1], -x[..., 0] - 0.1 * x[..., 1]], axis=-1)

def step(E, t, dt):
    return rk4(dxdt, E, t, dt)

def Damped(noise=0.01):
    return Dynamics(2, model=step, noise=noise, domain=None)

import numpy as np
'''


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A package ``usermodels_<id>`` written into ``tmp_path``, the current folder, which is not
    on ``sys.path`` (as for the ``dafilters`` command); imports are undone afterwards."""
    pkg = f"usermodels_{tmp_path.name.replace('-', '_')}"
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text(textwrap.dedent(MODEL))
    (tmp_path / pkg / "toy.py").write_text(textwrap.dedent(SETTING).replace("{pkg}", pkg))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield pkg
    for name in [m for m in sys.modules if m.startswith(pkg)]:
        del sys.modules[name]


def test_a_users_package_runs_like_mods(user_package, tmp_path, capsys):
    cli.main(["run", f"{user_package}.toy", "EnKF('Sqrt', N=10)", "--seeds", "0", "1",
              "--workers", "2", "--save", str(tmp_path / "out"), "--no-progress"])
    out = capsys.readouterr().out
    assert f"{user_package}.toy" in out and "all ok" in out
    assert cli.load_hmm(f"{user_package}/toy.py").name == f"{user_package}.toy"  # a file path
    with pytest.raises(SystemExit, match="importable module that defines HMM"):
        cli.load_hmm(f"{user_package}.nothing")
    with pytest.raises(SystemExit, match="defines no HMM"):
        cli.load_hmm(user_package)


def test_a_prior_must_set_Nx():
    class NoSize(daf.Prior):
        def sample(self, N, rng):
            return rng.standard_normal((N, 3))

    class Sized(NoSize):
        def __init__(self):
            super().__init__(Nx=3)

    with pytest.raises(AttributeError, match="a Prior subclass must set Nx"):
        _ = NoSize().Nx
    with pytest.raises(TypeError, match="must set Nx"):
        daf.HMM(daf.Dynamics(3, model=lambda E, t, dt: E), daf.IdentityObs(3, 1.0),
                daf.Chronology(0.1, dko=1, Ko=3), NoSize())
    assert Sized().Nx == 3 and pickle.loads(pickle.dumps(daf.GaussPrior(np.zeros(3)))).Nx == 3


def test_linear_dynamics_is_per_step_and_noise_per_unit_time(rng):
    with pytest.raises(ValueError, match="square .* one model step"):
        daf.LinearDynamics(np.ones((2, 3)))
    with pytest.raises(ValueError, match="per unit time"):
        daf.LinearDynamics(np.eye(2), noise=np.ones(3))
    with pytest.warns(UserWarning, match=r"spectral radius 1.5 > 1.*expm\(A \* dt\)"):
        daf.LinearDynamics(1.5 * np.eye(2))
    dyn = daf.LinearDynamics(np.eye(1), noise=4.0, domain=None)
    steps = [dyn.forecast(np.zeros((20000, 1)), 0.0, dt, rng).std() for dt in (0.01, 1.0)]
    assert steps == pytest.approx([2 * 0.1, 2.0], rel=0.03)  # sqrt(dt) N(0, Q)


def test_the_default_ring_is_noted_once_per_model_class():
    class Field(daf.Dynamics):
        pass

    dyn = Field(4, model=lambda E, t, dt: E)
    with pytest.warns(DefaultGeometryWarning, match="Field says nothing of where its variables are"):
        assert dyn.coords[:, 0].tolist() == [0, 1, 2, 3] and dyn.domain == (4.0,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _ = Field(4, model=lambda E, t, dt: E).coords  # once per class
        _ = daf.Dynamics(4, domain=None).coords  # said: not periodic
        _ = daf.Dynamics(4, domain="ring").coords  # said: the ring
        _ = L96.Lorenz96(8).coords
    # the note changes no identity
    assert content_hash(daf.Dynamics(4)) == content_hash(daf.Dynamics(4, domain="ring"))


def test_lorenz96_force_is_read_when_a_model_is_built(monkeypatch):
    before = sakov2008.HMM.fingerprint()
    assert L96.Lorenz96().F == 8.0
    monkeypatch.setattr(L96, "Force", 10.0)
    assert L96.Lorenz96().F == 10.0 and L96.Lorenz96(F=9).F == 9.0
    assert L96.Lorenz96().step(np.zeros((1, 8)), 0, 0.01)[0, 0] > 0.09  # x' = F at rest
    assert sakov2008.HMM.fingerprint() == before  # built before: keeps F = 8 ...
    with pytest.warns(UserWarning, match=r"Force is 10, but this Lorenz96 was built with F = 8"):
        sakov2008.HMM.dyn.step(np.zeros((1, 40)), 0.0, 0.05)  # ... and says so
    assert content_hash(L96.Lorenz96(F=10)) == content_hash(L96.Lorenz96())
