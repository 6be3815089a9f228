"""A model or backend whose optional extra is missing raises one clear error: the extra, how to
install it, and the system packages it needs (simulated by hiding the modules)."""

import sys

import pytest
from conftest import require_extra

from dafilters.extras import EXTRAS, MissingExtra, import_extra


def test_import_extra_returns_the_module():
    import json

    assert import_extra("json", "dapper") is json


def test_missing_kolmogorov_extra_names_it_and_the_command(monkeypatch):
    import mods.Kolmogorov as K

    for name in ("jax", "jax_cfd"):
        monkeypatch.setitem(sys.modules, name, None)  # as if jax were not installed
    with pytest.raises(ImportError) as info:
        K.precision_context("float64")
    err = info.value
    assert isinstance(err, MissingExtra) and err.extra == "kolmogorov"
    msg = str(err)
    assert msg.startswith("mods.Kolmogorov needs the optional extra 'kolmogorov'")
    assert "jax" in msg
    assert "make venv EXTRAS=kolmogorov" in msg
    assert "pip install -c constraints.txt -e '.[kolmogorov]'" in msg
    assert "system packages" not in msg  # jax and jax-cfd come as wheels


def test_missing_atmos_extra_names_the_system_packages(monkeypatch):
    import mods.ShallowWater as SW

    for name in ("dedalus", "dedalus.public"):
        monkeypatch.setitem(sys.modules, name, None)  # as if Dedalus had not been built
    with pytest.raises(MissingExtra) as info:
        SW._dedalus()
    msg = str(info.value)
    assert msg.startswith("mods.ShallowWater needs the optional extra 'atmos'")
    assert "make venv EXTRAS=atmos" in msg
    assert "sudo apt-get install libopenmpi-dev openmpi-bin libfftw3-dev libfftw3-mpi-dev gcc" in msg
    assert "README" in msg


def test_every_extra_is_declared_in_setup_cfg():
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    declared = set(cfg["options.extras_require"])
    assert set(EXTRAS) <= declared
    everything = cfg["options.extras_require"]["all"]
    for extra in EXTRAS:
        assert f"%({extra})s" in everything, f"the 'all' extra misses {extra}"


def test_require_extra_skips_with_the_extra_named(monkeypatch):
    monkeypatch.delenv("DAFILTERS_REQUIRE_EXTRAS", raising=False)
    monkeypatch.setitem(sys.modules, "jax_cfd", None)
    with pytest.raises(pytest.skip.Exception, match="needs the optional extra 'kolmogorov'"):
        require_extra("kolmogorov", "jax_cfd")


def test_require_extra_fails_where_extras_are_required(monkeypatch):
    monkeypatch.setenv("DAFILTERS_REQUIRE_EXTRAS", "1")
    monkeypatch.setitem(sys.modules, "dedalus", None)
    with pytest.raises(pytest.fail.Exception, match="needs the optional extra 'atmos'.*libfftw3-dev"):
        require_extra("atmos", "dedalus")
    monkeypatch.setenv("DAFILTERS_REQUIRE_EXTRAS", "dapper")  # a list: only those are required
    with pytest.raises(pytest.skip.Exception):
        require_extra("atmos", "dedalus")
    with pytest.raises(pytest.skip.Exception, match="no no-such-launcher on the PATH"):
        require_extra("atmos", commands=("no-such-launcher",))


def test_missing_mpi_extra_for_the_mpi_backend(monkeypatch):
    from dafilters.parallel import check_mpi

    for name in ("mpi4py", "mpi4py.MPI", "mpi4py.futures", "mpi4py.futures._core"):
        monkeypatch.setitem(sys.modules, name, None)  # as if mpi4py were not installed
    with pytest.raises(MissingExtra) as info:
        check_mpi()
    msg = str(info.value)
    assert msg.startswith("backend='mpi' needs the optional extra 'mpi'")
    assert "make venv EXTRAS=mpi" in msg and "libopenmpi-dev openmpi-bin" in msg
