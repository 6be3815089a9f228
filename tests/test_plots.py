import subprocess
import sys

import matplotlib
import optuna
import pytest

import dafilters as daf
from dafilters import cli
from dafilters.plots import plot_results, plot_study
from mods.Lorenz96 import sakov2008

HMM = sakov2008.HMM.replace(tseq=dict(Ko=250, BurnIn=5.0))


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_importing_the_plots_keeps_the_users_backend():
    code = "import matplotlib; matplotlib.use('svg'); import dafilters.plots; print(matplotlib.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"


def test_plot_results_against_N(tmp_path):
    grid = daf.Experiments.grid(daf.EnKF, upd_a=["Sqrt", "DEnKF"], N=[20, 30], infl=[1.02, 1.05])
    res = daf.Experiments(HMM, grid, seeds=[1]).run(progress=False)
    backend = matplotlib.get_backend()
    path = plot_results(res, tmp_path / "rmse.png", x="N", best_over="infl")
    assert is_png(path)
    assert matplotlib.get_backend() == backend  # drawn on its own canvas, no pyplot figure
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
    with pytest.raises(ValueError, match="no setting 'loc_rad'"):
        plot_results(res, tmp_path / "x.png", x="loc_rad")


def test_plot_study(tmp_path):
    study = optuna.create_study()
    study.optimize(lambda t: (t.suggest_float("infl", 1, 2) - 1.2) ** 2 + t.suggest_float("loc_rad", 1, 5),
                   n_trials=6)
    paths = plot_study(study, tmp_path)
    assert [p.name for p in paths] == ["study_history.png", "study_importance.png", "study_contour.png"]
    assert all(is_png(p) for p in paths)


def test_cli_tune_with_plots(tmp_path, capsys):
    cli.main(["tune", "mods.Lorenz96.sakov2008", "EnKF('Sqrt', N=20)", "--n-trials", "6", "--Ko", "400",
              "--space", "infl=log:1:1.2", "N=int:18:30", "--plot", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert "best rmse.a" in out and "study_contour.png" in out
    with pytest.raises(SystemExit, match="bad --space"):
        cli.parse_space(["infl=log:1"])
    assert cli.parse_space(["upd_a=cat:Sqrt,DEnKF"]) == {"upd_a": ("cat", ["Sqrt", "DEnKF"])}


def test_cli_plot_and_best_table(tmp_path, capsys):
    flts = ["EnKF('Sqrt', N=20, infl=1.02)", "EnKF('Sqrt', N=20, infl=1.2)",
            "EnKF('Sqrt', N=30, infl=1.02)"]
    cli.main(["run", "mods.Lorenz96.sakov2008", *flts, "--Ko", "400", "--save", str(tmp_path),
              "--no-progress", "--workers", "2"])
    cli.main(["table", str(tmp_path), "--best-over", "infl"])
    table = capsys.readouterr().out.split("Lorenz96.sakov2008")[-1]
    assert "1.2 " not in table
    cli.main(["plot", str(tmp_path), "--best-over", "infl", "--png", str(tmp_path / "n.png")])
    assert is_png(tmp_path / "n.png")
