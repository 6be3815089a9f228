"""Saved runs: bad files are reported and recomputed, unsaveable settings and unwritable folders
are refused before anything runs, files follow the umask."""

import dataclasses
import json
import os
import stat
import tempfile

import numpy as np
import pytest

import dafilters as daf
from dafilters.cli import main
from dafilters.experiments import Experiments, Results
from mods import LinearGauss

HMM = LinearGauss.build(Ko=30)
FILTERS = [daf.EnKF("Sqrt", N=10), daf.EnKF("DEnKF", N=10)]


@pytest.fixture
def calls(monkeypatch):
    """The names of the filters run (EnKF.assimilate calls) from now on."""
    names = []
    orig = daf.EnKF.assimilate

    def counting(self, *args, **kwargs):
        names.append(self.name)
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(daf.EnKF, "assimilate", counting)
    return names


def saved(folder, seeds=(0, 1)):
    """Run FILTERS on ``seeds`` saving to ``folder``; the records and the run files."""
    res = Experiments(HMM, FILTERS, seeds=seeds, save_to=folder).run(progress=False)
    return res, sorted(folder.glob("*.json"))


def rmse(records):
    return sorted(r["rmse.a"] for r in records)


BAD_CONTENTS = {
    "corrupt": lambda text: "\x00\x01 not json",
    "truncated": lambda text: text[: len(text) // 2],
    "incomplete": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "status"}),
    "not an object": lambda text: "[1, 2]",
}


@pytest.mark.parametrize("kind", BAD_CONTENTS)
def test_bad_saved_record_is_reported_moved_aside_and_recomputed(tmp_path, calls, kind):
    res, files = saved(tmp_path)
    bad = files[1]
    bad.write_text(BAD_CONTENTS[kind](bad.read_text()))
    calls.clear()
    with pytest.warns(UserWarning, match=bad.name):
        again, _ = saved(tmp_path)
    assert len(calls) == 1  # only the bad run is computed again
    assert rmse(again.records) == rmse(res.records)
    assert (tmp_path / (bad.name + ".corrupt")).exists()
    assert json.loads(bad.read_text())["status"] == "ok"  # saved anew


def test_results_load_skips_bad_records_and_ignores_other_files(tmp_path):
    res, files = saved(tmp_path)
    lost = json.loads(files[0].read_text())["rmse.a"]
    files[0].write_text(files[0].read_text()[:50])  # truncated
    (tmp_path / ".tmp-abc123.json").write_text("{\"hmm\": ")  # a write cut short
    (tmp_path / "tuned-0123abcd.json").write_text(json.dumps({"params": {"infl": 1.1}, "value": 0.3}))
    (tmp_path / "notes.json").write_text(json.dumps({"author": "me"}))  # a stray file
    with pytest.warns(UserWarning) as caught:
        loaded = Results.load(tmp_path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and files[0].name in messages[0]
    assert len(loaded.records) == 3
    expected = rmse(res.records)
    expected.remove(lost)
    assert rmse(loaded.records) == expected
    loaded.table(print_it=False)


def test_cli_table_names_a_corrupt_file_and_prints_the_rest(tmp_path, capsys):
    _, files = saved(tmp_path)
    files[0].write_text("{")
    main(["table", str(tmp_path)])
    out, err = capsys.readouterr()
    assert files[0].name in err and "EnKF" in out and "1/1" in out  # 3 runs of 4 read
    with pytest.raises(SystemExit, match="no saved runs"):
        main(["table", str(tmp_path / "empty")])


def test_unwritable_save_to_fails_before_the_first_run(tmp_path, calls, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="a-file"):
        Experiments(HMM, FILTERS, seeds=[0], save_to=blocker / "runs").run(progress=False)
    assert calls == []
    # a folder where files cannot be created (as root, chmod would not stop the writes)
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", refuse)
        with pytest.raises(PermissionError, match=f"cannot save runs in {tmp_path / 'ro'}"):
            Experiments(HMM, FILTERS, seeds=[0], save_to=tmp_path / "ro").run(progress=False)
    assert calls == []
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="locked"):
            Experiments(HMM, FILTERS, seeds=[0], save_to=locked).run(progress=False)
        assert calls == []


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_saved_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        _, files = saved(tmp_path, seeds=[0])
    finally:
        os.umask(old)
    for path in files + sorted(tmp_path.glob("*.npz")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name


@dataclasses.dataclass
class WithObject(daf.EnKF):
    """An EnKF with a setting holding an object (not JSON)."""

    helper: object = None


def test_settings_that_cannot_be_saved_are_refused_before_running(tmp_path, calls):
    flts = [daf.EnKF("Sqrt", N=10), WithObject("Sqrt", N=10, helper=np.random.default_rng(0))]
    with pytest.raises(TypeError, match=r"WithObject\(.*helper=Generator.*JSON"):
        Experiments(HMM, flts, seeds=[0], save_to=tmp_path).run(progress=False)
    assert calls == [] and not list(tmp_path.glob("*.json"))
    # without save_to nothing is saved, so such settings are fine
    res = Experiments(HMM, flts, seeds=[0]).run(progress=False)
    assert [r["status"] for r in res.records] == ["ok", "ok"]


def test_corrupt_tuning_result_is_tuned_again(tmp_path):
    entry = daf.Tuned(daf.EnKF("Sqrt", N=10), n_trials=2, tune_seeds=[11],
                      space={"infl": ("log", 1.0, 1.1)})
    Experiments(HMM, [entry], seeds=[0], save_to=tmp_path).run(progress=False)
    (tuned,) = tmp_path.glob("tuned-*.json")
    tuned.write_text('{"params": {"infl": 1.0')  # truncated
    with pytest.warns(UserWarning, match=tuned.name):
        res = Experiments(HMM, [entry], seeds=[0], save_to=tmp_path).run(progress=False)
    assert res.records[0]["status"] == "ok" and json.loads(tuned.read_text())["params"]
    assert (tmp_path / (tuned.name + ".corrupt")).exists()


def test_corrupt_model_file_is_trained_again(tmp_path):
    from test_learned import HMM as LINEAR
    from test_learned import LearnedShift

    entry = LearnedShift(N=10, training={"epochs": 2})
    Experiments(LINEAR, [entry], seeds=[0], save_to=tmp_path).run(progress=False)
    (model,) = (tmp_path / "models").glob("*.pt")
    model.write_bytes(b"not a model")
    with pytest.warns(UserWarning, match=model.name):
        res = Experiments(LINEAR, [LearnedShift(N=10, training={"epochs": 2})], seeds=[1],
                          save_to=tmp_path).run(progress=False)
    assert res.records[0]["status"] == "ok" and daf.Filter.load(model).trained
