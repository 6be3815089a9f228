"""MNMEF training throughput: assimilation cycles per second, forward and backward.

A *cycle* is one forecast and analysis of one N-member ensemble (one window at one observation
time); a training step over ``B`` windows of ``window`` cycles processes ``B * window`` cycles.
The figure is ``B * window / (seconds per optimiser step)``, the step being the training's own
(the unrolled :class:`~dafilters.filters.mnmef.learn.WindowLoss`, its backward pass, gradient
clipping and Adam), on ensembles drawn around simulated truths (L96-40, ``mods.Lorenz96.bach2025``).
The spin-up (no gradients) is timed separately, in cycles per second too.

    python benchmarks/mnmef_throughput.py                      # the configurations of CONFIGS
    python benchmarks/mnmef_throughput.py --configs before fast --threads 1 --steps 5
    python benchmarks/mnmef_throughput.py --configs before fast-compiled --threads 2 --clock wall

With ``--clock cpu`` (the default) the figure is cycles per CPU second of this process, the
work one core does whatever else runs; with ``--clock wall`` it is cycles per elapsed second,
which with ``--threads`` > 1 on an otherwise idle machine shows what the batched step gains from
more cores (a step over a few windows has operations too small for torch to split them).

The code before issue 18 (git 611ebf7, which has no ``form``) is measured by the same script with
that tree first on the path (``git archive 611ebf7 | tar -x -C /tmp/orig; PYTHONPATH=/tmp/orig
python benchmarks/mnmef_throughput.py --configs before``). Configurations ending in ``-compiled``
run the forecast through ``torch.compile`` (``fit(hmm, compile=True)``); their compilation time
is the ``first step`` column (the untimed first step, wall seconds).

Each configuration is a set of MNMEF and training settings; they all run in the same process,
one after the other, so their figures compare on the same machine load.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import dafilters as daf
from dafilters.filters.mnmef.learn import Cycle, WindowLoss, model_forecast, spun_up_ensembles
from dafilters.filters.mnmef.update import TorchObs
from dafilters.nn.config import CLOCKS  # what a second is (``--clock``): the trainings' clocks
from dafilters.nn.data import simulate_trajectories
from mods.Lorenz96 import bach2025

#: name -> (MNMEF keyword arguments, training changes[, compile the forecast])
CONFIGS = {
    # the defaults before issue 18: 16 windows of 20 cycles a step, truncation every 5 cycles
    "before": ({}, {"batch_size": 16, "window": 20, "detach_every": 5}),
    # the same settings with the reference's analysis and truncation every cycle
    "reference-b16": ({"form": "reference"}, {"batch_size": 16, "window": 20, "detach_every": 1}),
    # many windows through one batched step
    "fast": ({"form": "reference"}, {"batch_size": 256, "window": 20, "detach_every": 1}),
    "fast-increment": ({"form": "increment"}, {"batch_size": 256, "window": 20, "detach_every": 5}),
    "fast-w60": ({"form": "reference"}, {"batch_size": 128, "window": 60, "detach_every": 1}),
    # half the width: the networks dominate the cost
    "fast-d32": ({"form": "reference"}, {"batch_size": 256, "window": 20, "detach_every": 1, "d_model": 32}),
    # the forecast compiled
    "fast-compiled": ({"form": "reference"}, {"batch_size": 256, "window": 20, "detach_every": 1}, True),
    "fast-d32-compiled": ({"form": "reference"},
                          {"batch_size": 256, "window": 20, "detach_every": 1, "d_model": 32}, True),
    # the truncation that trained better at one CPU budget (mnmef_truncation.py)
    "fast-detach5-compiled": ({"form": "reference"}, {"batch_size": 256, "window": 20, "detach_every": 5},
                              True),
}


def setup(hmm, N: int, flt_kw: dict, train_kw: dict, compile: bool = False):
    flt = daf.MNMEF(N=N, **flt_kw, training=train_kw)
    flt.spec = flt.spec_for(hmm)
    flt.nets = flt.build(flt.spec)
    cfg = flt.training
    bxy, byy, r_std = flt.observation_layout(hmm, 0)
    forecast = model_forecast(hmm, compile) if compile else model_forecast(hmm)
    form = {"form": flt.form} if hasattr(flt, "form") else {}  # the code before issue 18 has none
    cycle = Cycle(flt.nets, forecast, TorchObs(hmm.obs, 0), r_std, bxy, byy, flt.spec["scale"], **form)
    return flt, cfg, cycle


def measure(hmm, truth: torch.Tensor, ys: torch.Tensor, N: int, flt_kw: dict, train_kw: dict,
            steps: int, compile: bool = False, clock=time.process_time) -> dict:
    """Cycles per second of ``clock`` of training steps (after one untimed warm-up step, whose
    wall time is ``first_s``) and of the spin-up."""
    flt, cfg, cycle = setup(hmm, N, flt_kw, train_kw, compile)
    gen = torch.Generator().manual_seed(0)
    B, W = cfg.batch_size, cfg.window
    loss = WindowLoss(cycle, cfg, gen)
    params = [p for m in flt.nets.values() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-4)
    starts = torch.randint(0, truth.shape[1] - W - 1, (steps + 1, B), generator=gen)
    rows = torch.randint(0, truth.shape[0], (steps + 1, B), generator=gen)

    def batch(i):
        idx = starts[i][:, None] + torch.arange(W + 1)
        X, Y = truth[rows[i][:, None], idx], ys[rows[i][:, None], idx]
        return X, Y, X[:, 0, None] + torch.randn(B, N, X.shape[-1], generator=gen)

    times, wall = [], time.perf_counter()
    for i in range(steps + 1):
        b = batch(i)
        if i == 1:
            first_s = time.perf_counter() - wall
        t0 = clock()
        opt.zero_grad()
        value = loss(b)
        value.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        times.append(clock() - t0)
    step_s = float(np.median(times[1:]))
    n_spin = min(truth.shape[0], 64)
    t0 = clock()
    spun_up_ensembles(cycle, truth[:n_spin, :101], ys[:n_spin, :101], N, 1.0, gen)
    spin = n_spin * 100 / (clock() - t0)
    return {"batch": B, "window": W, "step_s": step_s, "cycles_per_s": B * W / step_s,
            "spinup_cycles_per_s": spin, "first_s": first_s}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--N", type=int, default=20)
    p.add_argument("--steps", type=int, default=5, help="timed training steps per configuration")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", default="cpu", choices=sorted(CLOCKS), help="what a second is: this "
                   "process's CPU time (default) or elapsed time")
    p.add_argument("--repeat", type=int, default=1, help="measure the configurations this many times, "
                   "interleaved (the machine's load varies), and report the best")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    hmm = bach2025.build(sigma=1.0, Ko=399)
    xx, yy = simulate_trajectories(hmm, 64, seed=7)
    truth = torch.as_tensor(xx[:, hmm.tseq.kko], dtype=torch.float32)
    ys = torch.as_tensor(yy, dtype=torch.float32)
    print(f"# {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), N={args.N}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print("cycles per CPU second of this process (time.process_time: one thread, so the load of "
          "other processes slows it less than the wall clock)" if args.clock == "cpu" else
          "cycles per elapsed second (time.perf_counter: run it on an otherwise idle machine)")
    best = {}
    for _ in range(args.repeat):
        for name in args.configs:
            flt_kw, train_kw, *compile = CONFIGS[name]
            r = measure(hmm, truth, ys, args.N, flt_kw, train_kw, args.steps, *(compile or [False]),
                        clock=CLOCKS[args.clock])
            if name not in best or r["cycles_per_s"] > best[name]["cycles_per_s"]:
                best[name] = r
    base = None
    for name, r in best.items():
        base = base or r["cycles_per_s"]
        print(f"{name:16s} batch {r['batch']:4d} x window {r['window']:3d}: {r['step_s']:7.3f} s/step, "
              f"{r['cycles_per_s']:8.0f} cycles/s ({r['cycles_per_s'] / base:5.1f}x), spin-up "
              f"{r['spinup_cycles_per_s']:7.0f} cycles/s, first step {r['first_s']:5.1f} s", flush=True)


if __name__ == "__main__":
    main()
