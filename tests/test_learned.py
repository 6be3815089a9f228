"""Training infrastructure: data sets, the training loop, fit/save/load, Experiments integration."""

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import dafilters as daf
from dafilters.filters.base import Filter
from dafilters.filters.enkf import sqrt_update
from dafilters.filters.learned import LearnedFilter
from dafilters.nn.data import simulate_trajectories, split, time_split, windows
from dafilters.nn.training import TrainConfig, fit_in_stages, fit_model
from mods import LinearGauss


class ShiftLoss:
    """Squared error of the network's prediction of the truth from the observation."""

    def __init__(self, net):
        self.net = net

    def __call__(self, batch):
        return ((self.net(batch[1]) - batch[0]) ** 2).mean()


@dataclass
class LearnedShift(LearnedFilter):
    """Test fixture: an ETKF whose analysis mean is corrected by a learned linear map of the
    innovation, trained by regression onto the truth (a small but real supervised problem)."""

    N: int = 20
    device: str = "cpu"
    TRAINING = TrainConfig(n_traj=4, epochs=30, lr=0.05, patience=5, progress=False)

    def build(self, spec):
        torch.manual_seed(0)
        return {"corr": torch.nn.Linear(spec["Ny"], spec["Nx"], dtype=torch.float64)}

    def learn(self, hmm, progress=None, cache_dir=None):
        xx, yy = simulate_trajectories(hmm, self.training.n_traj)
        x = torch.as_tensor(xx[:, hmm.tseq.kko].reshape(-1, hmm.Nx))
        y = torch.as_tensor(yy.reshape(-1, yy.shape[-1]))
        net = self.nets["corr"]
        hist = fit_model([net], ShiftLoss(net), (x, y), config=self.training)
        return {"val": hist.val[-1]}

    def initialize(self, ctx):
        return ctx.hmm.prior.sample(self.N, ctx.rng)

    def analysis(self, E, y, ko, ctx):
        E = sqrt_update(E, ctx.hmm.obs(E, ko), y, ctx.hmm.obs.noise(ko))
        with torch.no_grad():
            target = self.nets["corr"](torch.as_tensor(y)).numpy()
        return E + 0.5 * (target - E.mean(0))


HMM = LinearGauss.build(Ko=150)


def test_trajectories_are_seeded_and_cached(tmp_path):
    xx, yy = simulate_trajectories(HMM, 3, seed=1, cache_dir=tmp_path)
    assert xx.shape == (3, HMM.tseq.K + 1, 5) and yy.shape == (3, HMM.tseq.Ko + 1, 3)
    assert len(list(tmp_path.glob("trajectories-*.npz"))) == 1
    xx2, _ = simulate_trajectories(HMM, 3, seed=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(xx, xx2)
    assert not np.allclose(xx[0], xx[1])
    with pytest.raises(ValueError, match="n_traj"):
        simulate_trajectories(HMM, 0)


def test_windows_and_split(rng):
    series = np.arange(2 * 6 * 3).reshape(2, 6, 3)
    w = windows(series, 3, stride=2)
    assert w.shape == (4, 3, 3)
    np.testing.assert_array_equal(w[1], series[0, 2:5])
    with pytest.raises(ValueError, match="window length"):
        windows(series, 7)
    tr, va = split(10, 0.2, rng)
    assert len(va) == 2 and sorted(np.r_[tr, va]) == list(range(10))


def test_time_split_keeps_validation_windows_apart():
    starts = np.tile(np.arange(0, 17, 2), 2)  # windows of 4 times on 2 trajectories of 20 times
    tr, va = time_split(starts, 4, 20, 0.2)  # validation block: times 16..19
    assert starts[va].tolist() == [16, 16] and set(starts[tr]) == {0, 2, 4, 6, 8, 10, 12}
    assert (starts[tr] + 4 <= 16).all()  # no training window reaches into the validation block
    with pytest.raises(ValueError, match="one side would be empty"):
        time_split(starts, 4, 20, 0.01)


def test_training_loop_learns_early_stops_and_checkpoints(tmp_path):
    torch.manual_seed(0)  # the network's initialisation (the order of tests must not matter)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(400, 3, generator=g)
    Y = X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.01 * torch.randn(400, 1, generator=g)
    net = torch.nn.Linear(3, 1)
    loss = lambda b: ((net(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    ckpt = tmp_path / "best.pt"
    hist = fit_model([net], loss, (X[:300], Y[:300]), (X[300:], Y[300:]),
                     TrainConfig(epochs=300, lr=0.05, patience=10, checkpoint=ckpt, progress=False))
    assert hist.val[hist.best_epoch] < 3e-3 and hist.val[0] > 100 * hist.val[hist.best_epoch]
    assert "early stop" in hist.stopped and ckpt.exists()
    assert float(loss((X[300:], Y[300:])).detach()) == pytest.approx(hist.val[hist.best_epoch], rel=1e-5)
    with pytest.raises(ValueError, match="nothing to train"):
        fit_model([torch.nn.Identity()], loss, (X, Y))


def test_training_in_learning_rate_stages():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(200, 3, generator=g)
    Y = X @ torch.tensor([[1.0], [-2.0], [0.5]])
    net = torch.nn.Linear(3, 1)
    loss = lambda b: ((net(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    cfg = TrainConfig(epochs=4, lr=0.05, patience=0, progress=False)
    hist = fit_in_stages([net], loss, (X[:150], Y[:150]), (X[150:], Y[150:]), cfg, 2, 60.0)
    assert len(hist.train) == len(hist.val) == 8 and hist.stopped == "4 epochs; 4 epochs"
    assert hist.val[-1] < hist.val[0]
    assert hist.val[hist.best_epoch] == min(hist.val)
    assert float(loss((X[150:], Y[150:]))) == pytest.approx(min(hist.val), rel=1e-5)  # best state kept
    with pytest.raises(ValueError, match="at least one training stage"):
        fit_in_stages([net], loss, (X, Y), None, cfg, 0, 60.0)


def test_a_cpu_clock_budget_counts_cpu_time_not_wall_time(monkeypatch):
    """With ``clock="cpu"`` the budget reads the process's CPU time: a training whose CPU clock
    runs out stops after its first epoch however little wall time passed, and the wall clock
    alone stops nothing (both clocks are replaced by fakes here)."""
    from dafilters.nn import config as nn_config

    ticks = {"cpu": 0.0}

    def fake_cpu():
        ticks["cpu"] += 10.0  # every reading: 10 s more CPU time
        return ticks["cpu"]

    monkeypatch.setitem(nn_config.CLOCKS, "cpu", fake_cpu)
    monkeypatch.setitem(nn_config.CLOCKS, "wall", lambda: 0.0)  # wall time stands still
    torch.manual_seed(0)
    X = torch.randn(64, 3, generator=torch.Generator().manual_seed(2))
    net = torch.nn.Linear(3, 1)
    loss = lambda b: ((net(b[0]) - b[0].sum(1, keepdim=True)) ** 2).mean()  # noqa: E731
    base = dict(epochs=5, patience=0, progress=False, max_seconds=5.0)
    on_cpu = fit_model([net], loss, (X,), config=TrainConfig(clock="cpu", **base))
    assert on_cpu.stopped == "time limit after epoch 0 (best 0)" and on_cpu.seconds >= 10.0
    on_wall = fit_model([net], loss, (X,), config=TrainConfig(**base))
    assert on_wall.stopped == "5 epochs" and on_wall.seconds == 0.0
    staged = fit_in_stages([net], loss, (X,), None, TrainConfig(clock="cpu", **base), 2, 15.0)
    assert len(staged.train) == 1 and staged.seconds > 0  # the CPU budget was spent in stage 1
    with pytest.raises(ValueError, match="training clock must be one of"):
        TrainConfig(clock="gpu").check()


def test_fit_save_load_assimilate(tmp_path):
    flt = LearnedShift(N=20).fit(HMM)
    assert flt.training_log["seconds"] > 0 and flt.training_log["device"] == "cpu"
    xx, yy = HMM.simulate(3)
    a = flt.assimilate(HMM, xx, yy, seed=3).averages()["rmse.a"]
    flt.save(tmp_path / "f.pt")
    loaded = Filter.load(tmp_path / "f.pt")
    assert type(loaded) is LearnedShift and loaded.N == 20 and loaded.spec == flt.spec
    assert loaded.assimilate(HMM, xx, yy, seed=3).averages()["rmse.a"] == a
    # keyed to the HMM: a different state size is refused with a clear message
    other = LinearGauss.build(Nx=7, Ko=20)
    x7, y7 = other.simulate(0)
    with pytest.raises(ValueError, match="trained for LinearGauss\\(Nx=5\\) with Nx=5.*has Nx=7"):
        loaded.assimilate(other, x7, y7)
    with pytest.raises(RuntimeError, match="not trained"):
        LearnedShift().assimilate(HMM, xx, yy)
    with pytest.raises(ValueError, match="not a saved dafilters"):
        torch.save({"x": 1}, tmp_path / "junk.pt")
        Filter.load(tmp_path / "junk.pt")


def test_fit_cached_trains_once_then_reads(tmp_path):
    path = tmp_path / "models" / "shift.pt"
    a = LearnedShift(N=20, training={"n_traj": 2}).fit_cached(HMM, path)
    assert path.exists() and a.matches(HMM)
    b = LearnedShift(N=20, training={"n_traj": 2}).fit_cached(HMM, path)  # read back, not trained again
    assert b is not a and b.training_log == a.training_log and b.spec == a.spec
    # other settings: trained, file replaced
    c = LearnedShift(N=10, training={"n_traj": 2}).fit_cached(HMM, path)
    assert c.N == 10 and Filter.load(path).N == 10
    other = LinearGauss.build(Nx=7, Ko=20)
    other_flt = LearnedShift(N=10, training={"n_traj": 2}).fit_cached(other, path)
    assert other_flt.matches(other)  # other HMM: trained


def test_experiments_train_once_and_reuse(tmp_path, monkeypatch):
    calls = []
    orig = LearnedShift.learn

    def counting(self, hmm, **kw):
        calls.append(hmm.name)
        return orig(self, hmm, **kw)

    monkeypatch.setattr(LearnedShift, "learn", counting)
    entry = LearnedShift(N=20)
    xps = daf.Experiments(HMM, [entry, daf.EnKF("Sqrt", N=20)], seeds=[0, 1], save_to=tmp_path)
    res = xps.run(progress=False)
    assert calls == [HMM.name] and not entry.trained  # trained a copy, once for both seeds
    learned = [r for r in res.records if r["filter"] == "LearnedShift"]
    assert all(r["train_s"] > 0 for r in learned)
    # the training settings are recorded beside each run, not as columns
    assert all(r["training"]["n_traj"] == 4 and "training" not in r["params"] for r in learned)
    assert len(list((tmp_path / "models").glob("LearnedShift-*.pt"))) == 1
    # another table with the same filter loads the saved model instead of training again
    daf.Experiments(HMM, [entry], seeds=[5], save_to=tmp_path).run(progress=False)
    assert calls == [HMM.name]


def test_a_step_with_a_loss_or_gradient_that_is_not_finite_is_skipped_not_fatal():
    """An unrolled filter that blows up on one batch (loss nan, or a finite loss with a nan
    gradient) used to end the whole training with FloatingPointError; now that step is skipped,
    the weights stay finite and the skips are counted. An epoch without one finite step still
    raises, naming the cause."""
    torch.manual_seed(0)
    X = torch.randn(64, 3, generator=torch.Generator().manual_seed(3))
    net = torch.nn.Linear(3, 1)
    calls = {"n": 0}

    def loss(b):
        calls["n"] += 1
        err = ((net(b[0]) - b[0].sum(1, keepdim=True)) ** 2).mean()
        if calls["n"] == 2:
            return err * float("nan")  # a nan loss
        if calls["n"] == 3:
            return err + torch.sqrt(0.0 * net.weight.sum())  # a finite loss, a nan gradient
        return err

    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, patience=0, progress=False)
    hist = fit_model([net], loss, (X,), config=cfg)
    assert hist.skipped == 2 and hist.as_log()["skipped_steps"] == 2 and len(hist.train) == 3
    assert all(torch.isfinite(p).all() for p in net.parameters()) and hist.train[-1] < hist.train[0]
    with pytest.raises(FloatingPointError, match="every one of the 4 steps of epoch 0.*not finite"):
        fit_model([net], lambda b: net(b[0]).sum() * float("nan"), (X,), config=cfg)


def test_the_time_budget_is_checked_after_every_step_not_every_epoch(monkeypatch):
    """A budget that runs out mid-epoch stops the training after that step (it used to run the
    epoch to its end: at N = 100 on 36096 windows, minutes over the budget). Each training step
    here advances a fake clock by one second: a 2.5 s budget takes 3 of an epoch's 4 steps."""
    from dafilters.nn import config as nn_config

    clock = {"t": 0.0}
    monkeypatch.setitem(nn_config.CLOCKS, "cpu", lambda: clock["t"])
    torch.manual_seed(0)
    X = torch.randn(64, 3, generator=torch.Generator().manual_seed(4))
    net = torch.nn.Linear(3, 1)
    steps = []

    def loss(b):
        if torch.is_grad_enabled():  # a training step, not the validation
            clock["t"] += 1.0
            steps.append(clock["t"])
        return ((net(b[0]) - b[0].sum(1, keepdim=True)) ** 2).mean()

    cfg = TrainConfig(epochs=5, batch_size=16, patience=0, progress=False, clock="cpu", max_seconds=2.5)
    hist = fit_model([net], loss, (X,), config=cfg)
    assert len(steps) == 3 and len(hist.train) == 1 and hist.stopped == "time limit in epoch 0 (best 0)"
    clock["t"], steps[:] = 0.0, []
    whole = fit_model([net], loss, (X,), config=dataclasses.replace(cfg, max_seconds=4.5))
    assert len(steps) == 5 and whole.stopped == "time limit in epoch 1 (best 1)"


def test_saved_runs_of_a_trained_filter_are_keyed_on_its_weights(tmp_path):
    """Two trained models with the same settings but other weights (e.g. one fine-tuned from a
    pretrained model, one trained from scratch) used to share their run keys, so the runs saved
    for the first were returned for the second. Now the weights are part of the key: the second
    runs, and the first's saved runs are still found."""
    from dafilters.experiments import run_key

    a = LearnedShift(N=20, training={"n_traj": 2}).fit(HMM)
    b = copy.deepcopy(a)
    with torch.no_grad():
        b.nets["corr"].bias.add_(3.0)  # a different model, the same settings
    assert a.name == b.name and run_key(HMM, a, 1) != run_key(HMM, b, 1)
    assert run_key(HMM, a, 1) == run_key(HMM, copy.deepcopy(a), 1)
    ra = daf.Experiments(HMM, [a], seeds=[1], save_to=tmp_path).run(progress=False).frame()
    rb = daf.Experiments(HMM, [b], seeds=[1], save_to=tmp_path).run(progress=False).frame()
    assert rb["rmse.a"].iloc[0] > ra["rmse.a"].iloc[0] + 0.5  # b's own (worse) run, not a's
    again = daf.Experiments(HMM, [a], seeds=[1], save_to=tmp_path).run(progress=False).frame()
    assert again["rmse.a"].iloc[0] == ra["rmse.a"].iloc[0] and len(list(tmp_path.glob("*.json"))) == 2
