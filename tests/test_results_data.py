"""Results as an xarray Dataset, written to and read back from netCDF (also by `dafilters export`)."""

import numpy as np
import pytest
import xarray as xr

import dafilters as daf
from dafilters import cli
from dafilters.results import Results
from dafilters.results_data import _as_netcdf
from dafilters.store import BadRecordWarning, load_series
from mods import LinearGauss

HMM = LinearGauss.build(Ko=20, BurnIn=5.0)  # 16 scored cycles
FILTERS = [daf.KalmanFilter(), daf.EnKF("Sqrt", N=10), daf.EnKF("PertObs", N=10, infl=1.02)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resdata-runs")
    res = daf.Experiments(HMM, FILTERS, seeds=[0, 1], save_to=folder).run(progress=False)
    return folder, res


def read_nc(path) -> xr.Dataset:
    return xr.load_dataset(path, engine="scipy")


def test_dataset_layout(saved):
    _, res = saved
    ds = res.to_xarray()
    assert dict(ds.sizes) == {"run": 3, "seed": 2, "ko": HMM.tseq.Ko + 1}
    assert list(ds["filter"].values) == ["KalmanFilter", "EnKF", "EnKF"]
    assert list(ds["name"].values) == [f.name for f in FILTERS]
    assert list(ds["upd_a"].values) == ["", "Sqrt", "PertObs"] and np.isnan(ds["infl"].values[0])
    assert ds["rmse.a"].dims == ("run", "seed", "ko") and ds["rmse.a.mean"].dims == ("run", "seed")
    np.testing.assert_array_equal(ds["time"].values[1], HMM.tseq.tto)
    np.testing.assert_array_equal(ds["scored"].values[2], HMM.tseq.masko)
    frame = res.frame()
    np.testing.assert_allclose(ds["rmse.a.mean"].mean("seed"), frame["rmse.a"])
    for r in res.records:  # each series averages, over the scored cycles, to its record's mean
        run = ds.sel(seed=r["seed"]).isel(run=[f.name for f in FILTERS].index(r["name"]))
        assert float(run["rmse.a"][run["scored"]].mean()) == pytest.approx(r["rmse.a"])
        assert str(run["status"].values) == "ok"


def test_saved_and_in_memory_runs_give_one_dataset(saved):
    folder, res = saved
    loaded = Results.load(folder).to_xarray()
    xr.testing.assert_identical(loaded, res.to_xarray())
    again = daf.Experiments(HMM, FILTERS, seeds=[0, 1], save_to=folder).run(progress=False)
    xr.testing.assert_identical(again.to_xarray(), loaded)  # resumed: series read from the files


def test_netcdf_round_trip(saved, tmp_path):
    ds = saved[1].to_xarray()
    ds.to_netcdf(tmp_path / "runs.nc")
    back = read_nc(tmp_path / "runs.nc")
    xr.testing.assert_equal(back, ds)
    assert back["tuned"].dtype == bool and back.attrs["title"] == "dafilters runs"


def test_export_command_end_to_end(saved, tmp_path, capsys):
    folder, res = saved
    cli.main(["export", str(folder), str(tmp_path / "out.nc")])
    assert "3 filter settings x 2 seeds x 21 cycles" in capsys.readouterr().out
    xr.testing.assert_equal(read_nc(tmp_path / "out.nc"), res.to_xarray())
    with pytest.raises(SystemExit, match="no saved runs"):
        cli.main(["export", str(tmp_path / "nothing"), str(tmp_path / "x.nc")])
    with pytest.raises(SystemExit, match="cannot write"):
        cli.main(["export", str(folder), str(tmp_path / "no" / "such" / "dir" / "x.nc")])


def test_hmms_of_other_lengths_are_padded_and_missing_seeds_are_nan():
    short = LinearGauss.build(Ko=10, BurnIn=5.0)
    a = daf.Experiments([HMM, short], daf.KalmanFilter(), seeds=[0]).run(progress=False)
    b = daf.Experiments(HMM, daf.EnKF("Sqrt", N=10), seeds=[3]).run(progress=False)
    ds = Results(a.records + b.records, a.series + b.series).to_xarray()
    assert dict(ds.sizes) == {"run": 3, "seed": 2, "ko": 21}
    assert np.isnan(ds["time"].values[1, 11:]).all() and not ds["scored"].values[1, 11:].any()
    short_run = ds["rmse.a"].values[1, 0]
    assert np.isnan(short_run[11:]).all() and np.isfinite(short_run[:11]).all()
    assert list(ds["status"].values[2]) == ["", "ok"] and np.isnan(ds["rmse.a.mean"].values[2, 0])


def test_failed_runs_and_records_without_series(saved, tmp_path):
    _, res = saved
    ds = Results(res.records).to_xarray()  # records only: averages, no series
    assert np.isnan(ds["rmse.a"].values).all() and np.isfinite(ds["rmse.a.mean"].values).all()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.warns(BadRecordWarning, match="bad.npz"):
        assert load_series(bad) is None
    assert load_series(tmp_path / "none.npz") is None


def test_settings_become_netcdf_types():
    assert _as_netcdf([1, 2]).dtype == np.int64 and _as_netcdf([True, False]).dtype == bool
    assert np.isnan(_as_netcdf([None, 2.5])[0]) and _as_netcdf([2**40, 1]).dtype == float
    assert list(_as_netcdf(["GC", None])) == ["GC", ""]
    assert list(_as_netcdf([{"a": 1}, [1, 2], True, None])) == ['{"a": 1}', "[1, 2]", "True", ""]


def test_a_setting_named_like_a_variable_is_renamed(saved):
    _, res = saved
    records = [r | {"params": r["params"] | {"status": 1, "ko": 2}} for r in res.records]
    ds = Results(records, res.series).to_xarray()
    assert ds["param.status"].dims == ("run",) and ds["param.ko"].dims == ("run",)
    assert ds["status"].dims == ("run", "seed")
