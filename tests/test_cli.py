import pytest

from dafilters import cli


def test_run_prints_a_table(capsys):
    cli.main(["run", "mods.LinearGauss", "EnKF('Sqrt', N=10)", "KalmanFilter()", "--seeds", "0", "1",
              "--Ko", "100", "--no-progress"])
    out = capsys.readouterr().out
    assert "LinearGauss" in out and "KalmanFilter" in out and "±" in out


def test_run_saves_and_table_reloads(tmp_path, capsys):
    cli.main(["run", "LinearGauss", "EnKF('DEnKF', N=8)", "--Ko", "60", "--save", str(tmp_path),
              "--no-progress"])
    first = capsys.readouterr().out
    cli.main(["table", str(tmp_path)])
    assert "DEnKF" in capsys.readouterr().out and "DEnKF" in first


@pytest.mark.parametrize("expr, match", [
    ("EnKF('Bad', N=10)", "unknown EnKF update"),
    ("Nope(N=3)", "known filters"),
    ("EnKF(N=1)", "N must be"),
    ("__import__('os')", "known filters"),
    ("3", "not a filter"),
])
def test_bad_filter_expressions(expr, match):
    with pytest.raises(SystemExit, match=match):
        cli.parse_filter(expr)


def test_unknown_model():
    with pytest.raises(SystemExit, match="no model setting module"):
        cli.load_hmm("mods.NoSuchModel.x")


def test_list(capsys):
    cli.main(["list"])
    assert "EnKF" in capsys.readouterr().out


def test_demo_settings_are_valid():
    xps = cli.demo_experiments(seeds=[0])
    assert [x.hmms[0].name for x in xps] == ["Lorenz63.sakov2012", "Lorenz96.sakov2008"]
    assert all(len(x.filters) >= 5 for x in xps)
