"""Filter expressions on the command line are parsed, never evaluated; ``plot --png`` makes folders."""

import pytest

import dafilters as daf
from dafilters import cli


def escapes(marker):
    """Expressions that ran code (creating ``marker``) when filter expressions were evaluated."""
    touch = f"__import__('os').system('touch {marker}')"
    return [
        f"EnKF.__init__.__globals__['__builtins__']['__import__']('os').system('touch {marker}')",
        f"EnKF.__init__.__globals__['os'].system('touch {marker}')",
        f"EnKF('Sqrt', N=(lambda: {touch})())",
        "().__class__.__bases__[0].__subclasses__()",
        "[c for c in ()]",
        "EnKF(**{'N': 10})",
        "EnKF(*['Sqrt'])",
        "EnKF('Sqrt', N=len('abcdefghij'))",
        "EnKF('Sqrt', N=EnKF.__name__)",
        "EnKF('Sqrt', N={'a': 1}['a'])",
        "EnKF('Sqrt', N=[n for n in (10,)][0])",
        "EnKF('Sqrt', N=10).replace(N=3)",
        "EnKF",
    ]


@pytest.mark.parametrize("index", range(13))
def test_escapes_are_refused_and_run_nothing(tmp_path, index):
    marker = tmp_path / "escaped"
    expr = escapes(marker)[index]
    with pytest.raises(SystemExit, match="^error: .*(not allowed|not a filter)") as err:
        cli.parse_filter(expr)
    assert expr[:20] in str(err.value) or "EnKF" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("expr, match", [
    ("EnKF.__init__.__globals__['os'].system('x')", "attribute access .EnKF.__init__.__globals__"),
    ("EnKF('Sqrt', N=(lambda: 1)())", "a nested call"),
    ("EnKF('Sqrt', N=(lambda: 1))", "a lambda"),
    ("[c for c in ()]", "a comprehension"),
    ("EnKF(**{'N': 10})", r"\*\*\{'N': 10\} \(keyword unpacking\)"),
    ("EnKF(*['Sqrt'])", "a starred argument"),
    ("EnKF('Sqrt', N=x)", "a name 'x'"),
    ("EnKF('Sqrt', N=10, N=11)", "repeated|given twice"),
    ("EnKF('Sqrt', N=10", "bad filter"),
    ("Nope(N=3)", "unknown filter 'Nope'.*known filters: .*EnKF"),
    ("EnKF('Bad', N=10)", "unknown EnKF update"),
    ("EnKF('Sqrt', N=10, bogus=1)", "bad filter.*bogus"),
    ("3", "not a filter: the literal '3'"),
])
def test_refusals_name_the_problem(expr, match):
    with pytest.raises(SystemExit, match=match):
        cli.parse_filter(expr)


def test_literal_expressions_still_work():
    flt = cli.parse_filter("EnKF('Sqrt', N=10, infl=1.02, rot=True)")
    assert flt == daf.EnKF("Sqrt", N=10, infl=1.02, rot=True)
    assert cli.parse_filter(" EnKF(upd_a='PertObs', N=+12, infl=1e0) ").N == 12
    pf = cli.parse_filter("PartFilt(N=100, reg=2.4, NER=0.3)")
    assert pf.N == 100 and pf.reg == 2.4
    with pytest.raises(SystemExit, match="N must be"):
        cli.parse_filter("EnKF('Sqrt', N=-3)")  # a negative number reaches the class's own check


def test_tuples_none_and_negative_numbers_reach_the_class(monkeypatch):
    seen = {}

    class Probe(daf.Filter):
        def __init__(self, *args, **kwargs):
            seen.update(args=args, kwargs=kwargs)

    monkeypatch.setattr(cli, "filter_classes", lambda: {"Probe": Probe})
    cli.parse_filter("Probe(-1.5, (1, -2), None, sizes=[3, (4,)], opts={'a': True}, x=-7)")
    assert seen == {"args": (-1.5, (1, -2), None),
                    "kwargs": {"sizes": [3, (4,)], "opts": {"a": True}, "x": -7}}


@pytest.mark.parametrize("command", ["run", "tune"])
def test_escape_through_run_and_tune_is_refused(tmp_path, command):
    marker = tmp_path / "escaped"
    extra = ["--n-trials", "1"] if command == "tune" else ["--no-progress"]
    for expr in escapes(marker)[:3]:
        with pytest.raises(SystemExit, match="error: "):
            cli.main([command, "mods.LinearGauss", expr, "--Ko", "10", *extra])
        assert not marker.exists()


def test_plot_creates_missing_folders(tmp_path, capsys):
    runs = tmp_path / "runs"
    cli.main(["run", "mods.LinearGauss", "EnKF('Sqrt', N=6)", "EnKF('Sqrt', N=8)", "--Ko", "30",
              "--save", str(runs), "--no-progress"])
    png = tmp_path / "a" / "b" / "rmse.png"
    cli.main(["plot", str(runs), "--x", "N", "--png", str(png)])
    assert png.read_bytes()[:4] == b"\x89PNG" and f"saved {png}" in capsys.readouterr().out
