import subprocess
import sys

import matplotlib
import numpy as np
import optuna
import pytest

import dafilters as daf
from dafilters import cli
from dafilters.plots import (
    grid_shape,
    plot_fields,
    plot_rank_hist,
    plot_results,
    plot_series,
    plot_snapshots,
    plot_study,
)
from dafilters.plots.study import clip_limit
from mods.Kolmogorov import grid_coords
from mods.Lorenz96 import sakov2008

HMM = sakov2008.HMM.replace(tseq=dict(Ko=250, BurnIn=5.0))


def is_png(path):
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small grid over N and infl, with a baseline, run once and saved: (results, folder)."""
    folder = tmp_path_factory.mktemp("runs")
    grid = daf.Experiments.grid(daf.EnKF, upd_a="Sqrt", N=[20, 40], infl=[1.02, 1.05])
    res = daf.Experiments(HMM, grid + [daf.OptInterp()], seeds=[1], save_to=folder).run(progress=False)
    return res, folder


def test_importing_the_plots_keeps_the_users_backend():
    code = "import matplotlib; matplotlib.use('svg'); import dafilters.plots; print(matplotlib.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"


def test_plot_results_against_N(saved, tmp_path):
    res, _ = saved
    backend = matplotlib.get_backend()
    path = plot_results(res, tmp_path / "rmse.png", x="N", best_over="infl")
    assert is_png(path)
    assert is_png(plot_results(res, tmp_path / "log.png", x="infl", logx=True, logy=True))
    assert matplotlib.get_backend() == backend  # drawn on its own canvas, no pyplot figure
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
    with pytest.raises(ValueError, match="no setting 'loc_rad'"):
        plot_results(res, tmp_path / "x.png", x="loc_rad")


def test_titles_and_legends_name_what_varies(saved, tmp_path):
    from dafilters.plots.common import hmm_title, legend_settings, row_label

    res, _ = saved
    rows = res.frame()
    columns, common = legend_settings(res, rows)
    assert columns == ["N", "infl"] and common == {"upd_a": "Sqrt"}  # constant settings: the title
    assert row_label(rows.iloc[0], columns) == "EnKF(N=20, infl=1.02)"
    assert row_label(rows.iloc[-1], columns) == "OptInterp"
    assert hmm_title(HMM.name, common, ["EnKF"], "seed 1") == f"{HMM.name}: EnKF, upd_a=Sqrt (seed 1)"


def test_plot_series_and_rank_histograms_in_memory_and_saved(saved, tmp_path):
    res, folder = saved
    for r, tag in ((res, "mem"), (daf.Results.load(folder), "disk")):
        assert is_png(plot_series(r, tmp_path / f"time_{tag}.png"))
        assert is_png(plot_series(r, tmp_path / f"f_{tag}.png", metrics=["rmse.f"], seed=1, logy=True))
        assert is_png(plot_rank_hist(r, tmp_path / f"rank_{tag}.png", stage="f"))
    with pytest.raises(ValueError, match="no series"):
        plot_series(res, tmp_path / "x.png", metrics=["nothing.a"])
    short = HMM.replace(tseq=dict(Ko=20, BurnIn=0.1))
    baseline = daf.Experiments(short, [daf.OptInterp()], seeds=[0]).run(progress=False)
    with pytest.raises(ValueError, match="no rank histograms"):
        plot_rank_hist(baseline, tmp_path / "x.png")


def small_2d_hmm(n=6):
    """A damped field on an n x n periodic grid (positions row-major, as Kolmogorov's)."""
    dyn = daf.Dynamics(n * n, model=lambda E, t, dt: 0.9 * E, noise=0.5, coords=grid_coords(n),
                       domain=(2 * np.pi, 2 * np.pi))
    return daf.HMM(dyn, daf.IdentityObs(n * n, 0.1), daf.Chronology(0.1, dko=1, Ko=6),
                   daf.GaussPrior(np.zeros(n * n), 1.0), name="Field2D")


def test_field_snapshots_of_2d_and_1d_models(tmp_path):
    hmm = small_2d_hmm()
    assert grid_shape(hmm) == (6, 6) and grid_shape(HMM) is None
    path = plot_snapshots(hmm, daf.EnKF("Sqrt", N=10), tmp_path / "f.png", ko=[0, 6])
    assert is_png(path)
    short = HMM.replace(tseq=dict(Ko=10, BurnIn=0.1))
    assert is_png(plot_snapshots(short, daf.OptInterp(), tmp_path / "l96.png"))
    with pytest.raises(ValueError, match="outside 0..Ko"):
        plot_snapshots(hmm, daf.OptInterp(), tmp_path / "x.png", ko=[7])
    with pytest.raises(ValueError, match="needs 40 variables"):
        plot_fields({"truth": np.zeros(36)}, tmp_path / "x.png", shape=(5, 8))


def test_plot_study_clips_outliers(tmp_path):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("infl", 1, 2, log=True) - 1.2) ** 2
                   + t.suggest_float("loc_rad", 1, 5) + (1e3 if t.number == 3 else 0.0), n_trials=8)
    paths = plot_study(study, tmp_path)
    assert [p.name for p in paths] == ["study_history.png", "study_importance.png", "study_contour.png"]
    assert all(is_png(p) for p in paths)
    values = np.array([t.value for t in study.trials])
    assert values.max() > clip_limit(values) >= np.sort(values)[-2]  # only the outlier is clipped
    with pytest.raises(ValueError, match="no completed trial"):
        plot_study(optuna.create_study(), tmp_path)


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


def test_cli_plot_kinds_and_snapshots(saved, tmp_path, capsys):
    _, folder = saved
    cli.main(["plot", str(folder), "--kind", "setting", "time", "rank", "--x", "infl", "--no-log-x",
              "--png", str(tmp_path / "figs" / "out.png")])
    for kind in ("setting", "time", "rank"):
        assert is_png(tmp_path / "figs" / f"out-{kind}.png")
    cli.main(["plot", "--model", "mods.Lorenz96.sakov2008", "--filter", "EnKF('Sqrt', N=20)",
              "--Ko", "10", "--ko", "2", "10", "--grid", "5", "8", "--png", str(tmp_path / "s.png")])
    assert is_png(tmp_path / "s.png")
    assert "saved" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="needs a folder of saved runs"):
        cli.main(["plot"])
    with pytest.raises(SystemExit, match="no series"):
        cli.main(["plot", str(folder), "--kind", "time", "--series", "nothing.a",
                  "--png", str(tmp_path / "x.png")])
