"""Model files of learned filters: safe loading (nothing in a file runs), exact round trips,
concurrent saves and missing folders."""

import multiprocessing as mp
import pathlib
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from dafilters.filters import registry
from dafilters.filters.base import Filter
from dafilters.filters.learned import LearnedFilter
from dafilters.filters.model_files import FORMAT, dumps_meta, load_filter


@dataclass
class Tiny(LearnedFilter):
    """A learned filter reduced to its persistence: one linear layer, no training."""

    N: int = 3
    sizes: tuple = (2, 3)
    note: str | None = None
    scale: float = 1.5
    device: str = "cpu"

    def build(self, spec):
        return {"lin": torch.nn.Linear(spec["Nx"], spec["Ny"], dtype=torch.float64)}


def make_tiny(**settings) -> Tiny:
    """A 'trained' Tiny whose spec and training summary hold every kind of value saved."""
    flt = Tiny(**settings)
    flt.spec = {"name": "toy", "Nx": 4, "Ny": 2, "grid": None, "domain": (1.0, 2.5),
                "modalities": {"a": 3}, "by_level": {1: "x", (2, 3): [1, 2]}}
    torch.manual_seed(0)
    flt.nets = flt.build(flt.spec)
    flt.training_log = {"seconds": 0.5, "device": "cpu", "val": np.float32(0.25), "epoch": np.int64(7),
                    "ok": np.bool_(True), "losses": [1.0, float("nan"), float("inf")],
                    "resid": np.arange(6, dtype=np.float32).reshape(2, 3), "stages": (1, "two"),
                    "nested": {"__tuple__": "a key that looks like a tag"}}
    return flt


def crafted(path, **fields):
    """A copy of a saved Tiny at ``path`` with some fields of its blob replaced."""
    blob = torch.load(path, weights_only=True)
    blob.update(fields)
    out = path.with_name("crafted.pt")
    torch.save(blob, out)
    return out


class Payload:
    """Pickles as a call that creates the file ``marker`` (what a malicious file would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_round_trip_keeps_weights_settings_spec_and_training(tmp_path):
    flt = make_tiny(N=5, sizes=(4, 1), note="hi", scale=-0.5)
    flt.save(tmp_path / "t.pt")
    back = Filter.load(tmp_path / "t.pt")
    assert type(back) is Tiny and back.name == flt.name and back.sizes == (4, 1) and back.note == "hi"
    assert back.spec == flt.spec and isinstance(back.spec["domain"], tuple)
    for key in ("seconds", "device", "val", "epoch", "ok", "stages", "nested"):
        assert back.training_log[key] == flt.training_log[key], key
    np.testing.assert_array_equal(back.training_log["losses"], flt.training_log["losses"])
    assert back.training_log["resid"].dtype == np.float32
    np.testing.assert_array_equal(back.training_log["resid"], flt.training_log["resid"])
    for name, net in flt.nets.items():
        for (k, a), (_, b) in zip(net.state_dict().items(), back.nets[name].state_dict().items()):
            assert torch.equal(a, b), k


def test_loading_uses_weights_only(tmp_path, monkeypatch):
    make_tiny().save(tmp_path / "t.pt")
    seen = []
    real = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    Filter.load(tmp_path / "t.pt")
    assert seen == [True]


def test_every_subclass_is_registered_when_defined():
    @dataclass
    class Local(Tiny):
        extra: int = 1

    assert registry.registered_classes()[registry.class_key(Local)] is Local
    assert registry.registered_classes()[registry.class_key(Tiny)] is Tiny


def test_unregistered_class_is_refused_and_its_module_not_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    make_tiny().save(tmp_path / "t.pt")
    for name in ("evil_mod:Tiny", "os:system", "builtins:eval", "dafilters.filters.ensf:EnSF"):
        with pytest.raises(ValueError, match=f"unknown learned filter class '{name}' in .*crafted.pt; "
                                             "known: .*import the module that defines it"):
            Filter.load(crafted(tmp_path / "t.pt", **{"class": name}))
    assert not marker.exists() and "evil_mod" not in sys.modules


def test_pickled_code_in_a_file_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    blob = {"format": FORMAT, "class": registry.class_key(Tiny), "meta": "{}",
            "state": {"lin": Payload(marker)}}
    torch.save(blob, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt is not a dafilters model file that can be read "
                                         "safely.*nothing in it was run"):
        Filter.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_other_files_give_clear_errors(tmp_path):
    make_tiny().save(tmp_path / "t.pt")
    (tmp_path / "text.pt").write_text("not a model")
    with pytest.raises(ValueError, match="text.pt is not a dafilters model file.*not a torch file"):
        Filter.load(tmp_path / "text.pt")
    old = crafted(tmp_path / "t.pt", format="dafilters-learned-filter-1")
    with pytest.raises(ValueError, match="format 'dafilters-learned-filter-1'.*retrain"):
        Filter.load(old)
    with pytest.raises(ValueError, match="field 'meta' is a Tensor, expected str"):
        Filter.load(crafted(tmp_path / "t.pt", meta=torch.zeros(1)))
    with pytest.raises(ValueError, match="crafted.pt: bad metadata"):
        Filter.load(crafted(tmp_path / "t.pt", meta="{not json"))
    bad = dumps_meta({"settings": {"N": 3, "cmd": "x"}, "spec": {}, "training_log": {}})
    with pytest.raises(ValueError, match=r"Tiny has no settings \['cmd'\]"):
        Filter.load(crafted(tmp_path / "t.pt", meta=bad))
    with pytest.raises(ValueError, match="weights 'lin' are not a dict of named tensors"):
        Filter.load(crafted(tmp_path / "t.pt", state={"lin": {"weight": 1}}))
    with pytest.raises(FileNotFoundError, match="no model file"):
        Filter.load(tmp_path / "missing.pt")


def test_unsupported_values_are_refused_when_saving(tmp_path):
    flt = make_tiny()
    flt.training_log["when"] = object()
    with pytest.raises(TypeError, match=r"cannot save Tiny\['training_log'\]\['when'\]: a object"):
        flt.save(tmp_path / "t.pt")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_save_creates_missing_folders(tmp_path):
    make_tiny(N=4).save(tmp_path / "a" / "b" / "t.pt")
    assert load_filter(tmp_path / "a" / "b" / "t.pt").N == 4


def _save_many(args) -> list[str]:
    """Save a Tiny ``n`` times to ``path``; the errors met (none expected)."""
    path, n, N = args
    flt, errors = make_tiny(N=N), []
    for _ in range(n):
        try:
            flt.save(path)
        except Exception as err:  # noqa: BLE001 - reported by the test
            errors.append(f"{type(err).__name__}: {err}")
    return errors


def test_concurrent_saves_to_one_path_all_succeed(tmp_path):
    path = tmp_path / "t.pt"
    with mp.get_context("spawn").Pool(2) as pool:  # spawn: no fork of a process that may hold jax
        errors = pool.map(_save_many, [(path, 20, 3), (path, 20, 4)])
    assert errors == [[], []]
    assert load_filter(path).N in (3, 4)
    assert [p.name for p in path.parent.iterdir()] == ["t.pt"]  # no temporary files left


def test_filter_load_works_in_a_fresh_process(tmp_path):
    """Filter.load needs nothing imported first (the loader registered itself only on import of
    the model-file module, so a fresh process failed with 'no model loader is registered')."""
    import subprocess

    path = tmp_path / "t.pt"
    make_tiny(N=3).save(path)
    code = ("import sys, dafilters as daf; sys.path.insert(0, sys.argv[2]); import test_model_files; "
            "print(daf.Filter.load(sys.argv[1]).N)")
    out = subprocess.run([sys.executable, "-c", code, str(path), str(pathlib.Path(__file__).parent)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
