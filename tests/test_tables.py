"""Tables show what tells their rows apart; filter names show their non-default settings."""

import dataclasses

import numpy as np
import pytest

import dafilters as daf
from dafilters import cli
from dafilters.catalog import summary
from dafilters.filters.defaults import same_setting
from dafilters.results import Results
from dafilters.runs import AVERAGES
from dafilters.tables import format_number, format_setting, format_uq


def record(flt: daf.Filter, seed: int = 0, rmse: float = 1.0, status: str = "ok", **extra) -> dict:
    """A finished run's record, without running it (rmse.a = ``rmse``, every ci 0.01)."""
    r = {"hmm": "L63", "hmm_id": "abc", "filter": type(flt).__name__, "name": flt.name,
         "params": flt.params(), "seed": seed, "status": status, "error": None,
         "s_per_cycle": 2e-3}
    r.update({m: rmse for m in AVERAGES})
    r.update({m + ".ci": 0.01 for m in AVERAGES})
    return r | extra


def table_of(*flts: daf.Filter, **kwargs) -> str:
    return Results([record(f, rmse=1 + i) for i, f in enumerate(flts)]).table(print_it=False, **kwargs)


def test_names_show_the_variant_the_size_and_non_default_settings_only():
    assert daf.EnKF("Sqrt", N=10).name == "EnKF(upd_a='Sqrt', N=10)"
    assert (daf.EnKF("PertObs", N=10, infl=1.02, rot=False).name
            == "EnKF(upd_a='PertObs', N=10, infl=1.02)")
    assert daf.Climatology().name == "Climatology()"
    assert daf.EnKF("Sqrt", N=20, infl=1.0000001).name == "EnKF(upd_a='Sqrt', N=20, infl=1.0000001)"


def test_different_settings_never_share_a_name():
    grid = daf.Experiments.grid(daf.EnKF, upd_a=["PertObs", "DEnKF"], N=[10, 20], infl=[1.0, 1.02],
                                rot=[False, True], loc_rad=[None, 2.0], taper=["GC", "Step"])
    assert len({f.name for f in grid}) == len(grid) == 64
    assert cli.parse_filter(daf.EnKF("DEnKF", N=20, infl=1.02).name) == daf.EnKF("DEnKF", N=20, infl=1.02)


def test_same_setting():
    assert same_setting(1, 1.0) and same_setting((1, 2), [1, 2]) and same_setting(None, None)
    assert not same_setting(True, 1) and not same_setting("GC", None) and not same_setting(1, "1")
    assert same_setting(np.ones(3), np.ones(3)) and not same_setting(np.ones(3), np.ones(4))
    assert same_setting({"a": 1}, {"a": 1.0}) and not same_setting({"a": 1}, {"b": 1})


def test_number_formats():
    assert format_number(8.533) == "8.53" and format_number(0.0012345) == "0.00123"
    assert format_number(1234.5) == "1234" and format_number(0) == "0" and format_number(np.nan) == "nan"
    assert format_uq(0.644, 0.0041) == "0.644 ± 0.004" and format_uq(8.533, np.nan) == "8.53"
    assert format_uq(0.500892, 3e-8) == "0.501"  # a ci below the 6 decimals shown is no ci
    assert format_setting(1.031234) == "1.031" and format_setting(1.031234, exact=True) == "1.031234"
    assert format_setting(None) == "" and format_setting(10) == "10"


def test_only_columns_that_vary_and_a_line_for_common_settings():
    text = table_of(daf.Climatology(), daf.EnKF("PertObs", N=20, infl=1.02),
                    daf.EnKF("PertObs", N=40, infl=1.02), daf.PartFilt(N=100, NER=0.3))
    title, common, head = text.splitlines()[:3]
    assert title == "L63: 1 seed, all ok"
    assert common == "common settings: upd_a=PertObs, infl=1.02"  # N varies: a column
    assert head.split() == ["filter", "N", "NER", "rmse.a", "spread.a", "crps.a", "rmse.f", "ms/cycle"]
    for noise in ("taper", "rot", "nuj", "resampl", "loc_rad", "seeds ok", "status"):
        assert noise not in text
    assert "2.00 ± 0.01" in text and "2.00" in text.splitlines()[-1].split()[-1]  # ms/cycle


def test_a_default_is_shown_where_it_is_compared():
    text = table_of(daf.EnKF("Sqrt", N=10, rot=True), daf.EnKF("Sqrt", N=10))
    assert text.splitlines()[1] == "common settings: upd_a=Sqrt, N=10"  # variant and size always
    assert text.splitlines()[2].split()[:2] == ["filter", "rot"]
    assert [line.split()[1] for line in text.splitlines()[4:]] == ["True", "False"]


def test_one_row_shows_its_non_default_settings_as_columns():
    text = table_of(daf.EnKF("DEnKF", N=10, infl=1.05))
    assert text.splitlines()[1].split()[:4] == ["filter", "upd_a", "N", "infl"]


def test_settings_that_round_alike_get_every_digit():
    text = table_of(daf.EnKF("Sqrt", N=10, infl=1.020001), daf.EnKF("Sqrt", N=10, infl=1.02))
    assert "1.020001" in text and "1.02 " in text


def test_seeds_and_status_columns_when_some_run_went_wrong():
    flt = daf.EnKF("Sqrt", N=10)
    res = Results([record(flt, 0), record(flt, 1, status="diverged"), record(daf.Climatology(), 0)])
    text = res.table(print_it=False)
    assert text.splitlines()[0] == "L63" and "seeds ok" in text and "1/2 diverged" in text


def test_unknown_filter_classes_show_their_settings():
    @dataclasses.dataclass
    class Unlisted(daf.EnKF):
        pass

    r = [record(Unlisted("Sqrt", N=10), 0), record(Unlisted("Sqrt", N=10), 0) | {"hmm_id": "x"}]
    for rec in r:
        rec["filter"] = "NoSuchClass"
    assert "upd_a" in Results(r).table(print_it=False)


def test_frame_puts_settings_before_results_and_groups_by_settings():
    old = record(daf.EnKF("Sqrt", N=10, infl=1.02), 0) | {"name": "EnKF(upd_a='Sqrt', N=10, infl=1.02)"}
    res = Results([record(daf.Climatology(), 0), old, record(daf.EnKF("Sqrt", N=10, infl=1.02), 1),
                   record(daf.PartFilt(N=50), 0)])
    df = res.frame()
    cols = list(df.columns)
    assert cols.index("nuj") < cols.index("rmse.a") and cols.index("N") < cols.index("rmse.a")
    assert len(df) == 3 and df.loc[1, "seeds"] == 2  # old and new names of one setting: one row


def test_summary_of_docstrings():
    assert summary("Ensemble Kalman filter.\n\nMore.") == "Ensemble Kalman filter."
    assert summary("A (b) c. D e.") == "A (b) c."
    long = "Words (" + "x " * 60 + ") end. Next."
    assert summary(long, width=40) == "Words end."
    assert summary("See :mod:`dafilters.stats` and ``N``.") == "See dafilters.stats and N."
    assert len(summary("word " * 50, width=30)) <= 30


def test_rounded_name_for_tuned_filters():
    assert (cli.rounded_name(daf.EnKF("Sqrt", N=20, infl=1.0312345))
            == "EnKF(upd_a='Sqrt', N=20, infl=1.031)")


def test_list_shows_filters_and_models_with_descriptions(capsys):
    cli.main(["list"])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert {"EnKF", "Climatology", "mods.Lorenz63.sakov2012", "mods.LinearGauss"} <= set(lines)
    assert all(len(line.split()) > 1 for line in lines.values())  # a description each
    assert "see the module docstring" not in lines["DapperMethod"]


@pytest.mark.parametrize("flag, shown", [(["--progress"], True), (["--no-progress"], False)])
def test_tune_progress_flag(monkeypatch, capsys, flag, shown):
    seen = {}

    def fake_tune(flt, hmm, **kwargs):
        seen["progress"] = kwargs["progress"]
        return daf.TuneResult(daf.EnKF("Sqrt", N=10, infl=1.0312345), 0.123456, None)

    monkeypatch.setattr("dafilters.tuning.tune", fake_tune)
    cli.main(["tune", "LinearGauss", "EnKF('Sqrt', N=10)", "--n-trials", "1", *flag])
    assert seen["progress"] is shown
    assert (capsys.readouterr().out.strip()
            == "best rmse.a = 0.1235 on seeds [0]: EnKF(upd_a='Sqrt', N=10, infl=1.031)")
