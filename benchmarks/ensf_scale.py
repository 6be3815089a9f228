"""EnSF (and LETKF) at scale on the EnSF Lorenz-96 setting: seconds per analysis and peak memory.

    python benchmarks/ensf_scale.py                          # Nx = 10^3, 10^4, 10^5; 20 analyses
    python benchmarks/ensf_scale.py --sizes 1000000 --cycles 10 --methods EnSF
    python benchmarks/ensf_scale.py --markdown               # a table for benchmarks/README.md
    python benchmarks/ensf_scale.py --bandwidth              # the machine's memory bandwidth
    python benchmarks/ensf_scale.py --sampler 100000         # EnSF's samplers: kernel, unfused, fused

Setting: ``mods.Lorenz96.bao2024.build(Nx)`` (RK4 dt 0.01, arctan of every variable every 10
steps, sigma_y 0.05, truth and initial ensemble from N(0, I)). EnSF: N=20, 500 reverse steps
(float32, paired prior score, the tuned eps_a 0.5 / eps_b 0.025). LETKF: N=20 with the
settings given by ``--letkf`` (tuned at Nx=100 by ``benchmarks/score_filters.py``).

Each (method, Nx) runs in its own process, so the peak resident memory (``ru_maxrss``) is that of
the run alone. The run streams the truth (the driver's ``Filter.assimilate`` keeps the whole
truth trajectory, 8 GB at Nx=10^6 over 1000 steps) but calls the same filter hooks
(``initialize``, ``forecast``, ``analysis``) as the driver. "s/analysis" is the mean wall time of
the analysis hook after the first cycle, "CPU s/analysis" the process's CPU time in it (all
threads; on a shared machine the wall time is this over the share of the cores the process got);
"s/forecast" that of the model forecast (numpy, float64). EnSF takes its compiled kernel where it
loads (``--kernel off``: the torch path).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bandwidth(mib: int = 256, repeats: int = 5) -> list[dict]:
    """Memory bandwidth in GB/s (bytes read + written per second) of torch float32 copy
    (``a = b``) and triad (``a = b + s c``) over arrays of ``mib`` MiB, on one and on two threads
    (the best of ``repeats``); and the same on 4 MiB arrays (one row of the EnSF at Nx = 10^6,
    which fits in the last-level cache)."""
    import torch

    out = []
    for size in (mib, 4):
        n = size * 2**20 // 4
        b, c = torch.rand(n), torch.rand(n)
        a = torch.empty(n)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name, fn, nbytes in (("copy", lambda a=a, b=b: a.copy_(b), 8 * n),
                                     ("triad", lambda a=a, b=b, c=c: torch.add(b, c, alpha=0.5, out=a),
                                      12 * n)):
                reps = max(1, 256 // size)
                fn()
                best = np.inf
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        fn()
                    best = min(best, (time.perf_counter() - t0) / reps)
                out.append({"MiB": size, "threads": threads, "kernel": name, "GB/s": nbytes / best / 1e9})
    return out


#: Bytes read and written per element and reverse step, outside the cache: unfused, the 15
#: element-wise operations of the score and the step each read one or two arrays of a row block
#: and write one (4 bytes a float32), plus the noise written; fused, Z read and written, X and y
#: read (the noise, the score and the scratch stay in a tile of the core's cache); the compiled
#: kernel takes all the steps of 1024 elements in L1 and draws the noise there, so Z is read and
#: written, X and y read once per analysis: 16 B over all the steps.
BYTES_PER_ELEMENT_STEP = {"unfused": 88 + 64, "fused": 16, "kernel": 16}
PER_ANALYSIS = {"kernel"}


def sampler_ab(Nx: int, N: int = 20, steps: int = 500, repeats: int = 2, seed: int = 0) -> list[dict]:
    """EnSF's reverse SDE on the bao2024 setting's arctan likelihood at size ``Nx``, timed with
    the compiled kernel (where it loads), the fused sampler and the unfused loop (the same
    inputs and generators, alternated ``repeats`` times; the fused and unfused samples are
    compared, and the kernel's, from its own noise stream, by their mean and spread)."""
    import torch

    import dafilters as daf
    from dafilters.filters.ensf import elementwise_likelihood, ensf_sample
    from dafilters.filters.ensf_kernel import load_kernel

    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, Nx, generator=g)
    obs = daf.ArctanObs(Nx, 0.05**2)
    y = torch.atan(torch.randn(Nx, generator=g)) + 0.05 * torch.randn(Nx, generator=g)
    lik = elementwise_likelihood(obs, y, 0, X)
    modes = (["kernel"] if load_kernel() is not None else []) + ["unfused", "fused"]
    times, out = {m: [] for m in modes}, {}
    for _ in range(repeats):
        for mode in modes:
            gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
            t0, c0 = time.perf_counter(), time.process_time()
            out[mode] = ensf_sample(X, lambda Z: obs.grad_loglik(y, Z, 0), steps, 0.5, 0.025, clip=1000.0,
                                    generators=gens, lik=lik, fused=mode == "fused", kernel=mode == "kernel")
            times[mode].append((time.perf_counter() - t0, time.process_time() - c0))
    rows = []
    for mode, tt in times.items():
        wall, cpu = min(tt)
        moved = BYTES_PER_ELEMENT_STEP[mode] * N * Nx / (steps if mode in PER_ANALYSIS else 1)
        rows.append({"sampler": mode, "Nx": Nx, "N": N, "steps": steps, "s": wall, "cpu_s": cpu,
                     "ns_cpu_per_element_step": 1e9 * cpu / (N * Nx * steps),
                     "ms_per_step": 1e3 * wall / steps, "MB_per_step": moved / 1e6,
                     "GB/s": moved * steps / wall / 1e9, "load_avg": os.getloadavg()[0],
                     "mean": float(out[mode].mean()), "std": float(out[mode].std()),
                     "same_samples_as_unfused": bool(torch.equal(out[mode], out["unfused"]))})
    return rows


def make_filter(method: str, args) -> object:
    import dafilters as daf

    if method == "EnSF":
        from dafilters.filters import ensf

        ensf.KERNEL = args.kernel == "on"
        return daf.EnSF(N=args.N, steps=args.steps, eps_a=args.eps_a, eps_b=args.eps_b)
    if method == "LETKF":
        infl, loc_rad = (float(v) for v in args.letkf.split(","))
        return daf.LETKF(N=args.N, infl=infl, loc_rad=loc_rad)
    raise ValueError(f"unknown method {method!r}")


def run_one(method: str, Nx: int, args) -> dict:
    """Stream ``args.cycles`` cycles of the setting at size ``Nx``; return timings and errors."""
    import torch

    from dafilters.filters.base import Context
    from dafilters.hmm import streams
    from mods.Lorenz96 import bao2024

    hmm = bao2024.build(Nx=Nx, Ko=max(args.cycles - 1, 0), averaged=1)
    flt = make_filter(method, args)
    rng_x, rng_y, rng_f = streams(args.seed)
    ctx = Context(hmm=hmm, rng=rng_f, seed=args.seed)
    dyn, obs, tseq = hmm.dyn, hmm.obs, hmm.tseq
    x = hmm.prior.sample(1, rng_x)
    t0 = time.perf_counter()
    E = flt.initialize(ctx)
    t_init = time.perf_counter() - t0
    rmse, t_f, t_a, c_a = [], [], [], []
    k = 0
    for ko, kobs in enumerate(tseq.kko):
        for kk in range(k, kobs):
            x = dyn.forecast(x, tseq.tt[kk], tseq.dt, rng_x)
        y = obs.sample(x[0], ko, rng_y)
        t0 = time.perf_counter()
        E = flt.forecast(E, ctx, k, kobs)
        t1, c1 = time.perf_counter(), time.process_time()
        E = flt.analysis(E, y, ko, ctx)
        t2 = time.perf_counter()
        c_a.append(time.process_time() - c1)
        k = kobs
        t_f.append(t1 - t0)
        t_a.append(t2 - t1)
        err = float(np.sqrt(np.mean((E.mean(axis=0) - x[0]) ** 2)))
        rmse.append(err)
        if args.verbose:
            print(f"  {method} Nx={Nx} ko={ko} rmse={err:.3f} analysis {t2 - t1:.2f}s "
                  f"({c_a[-1]:.2f}s CPU) forecast {t1 - t0:.2f}s load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr, flush=True)
        if not np.isfinite(err) or err > 1e3:
            break
    timed = t_a[1:] or t_a
    return {
        "method": method, "Nx": Nx, "N": args.N, "steps": args.steps if method == "EnSF" else None,
        "cycles": len(rmse), "s_analysis": float(np.mean(timed)), "s_analysis_max": float(np.max(t_a)),
        "s_analysis_min": float(np.min(timed)), "cpu_s_analysis": float(np.mean(c_a[1:] or c_a)),
        "load_avg": os.getloadavg()[0], "kernel": getattr(args, "kernel", None) if method == "EnSF" else None,
        "s_forecast": float(np.mean(t_f)), "s_init": t_init,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "rmse_last": rmse[-1], "rmse_max_after_10": float(np.max(rmse[10:])) if len(rmse) > 10 else None,
        "rmse_mean_last_half": float(np.mean(rmse[len(rmse) // 2:])),
        "rmse": rmse, "torch_threads": torch.get_num_threads(), "filter": getattr(flt, "name", str(flt)),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    p.add_argument("--methods", nargs="+", default=["EnSF", "LETKF"])
    p.add_argument("--cycles", type=int, default=20, help="analyses per run")
    p.add_argument("--N", type=int, default=20)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--eps-a", dest="eps_a", type=float, default=0.5)
    p.add_argument("--eps-b", dest="eps_b", type=float, default=0.025)
    p.add_argument("--letkf", default="1.0,2.0", help="LETKF 'infl,loc_rad'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per (method, Nx) run")
    p.add_argument("--max-letkf-gib", type=float, default=12.0,
                   help="skip LETKF where its batched arrays are estimated above this")
    p.add_argument("--out", default=None, help="append JSON lines here")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--bandwidth", action="store_true", help="measure the memory bandwidth and stop")
    p.add_argument("--sampler", type=int, metavar="NX",
                   help="time the kernel, the unfused and the fused sampler at NX and stop")
    p.add_argument("--kernel", choices=("on", "off"), default="on",
                   help="EnSF's compiled C kernel where it loads (ensf.KERNEL), or the torch path")
    p.add_argument("--one", nargs=2, metavar=("METHOD", "NX"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.bandwidth:
        rows = bandwidth()
        for r in rows:
            print(f"{r['MiB']:>4} MiB  {r['threads']} thread(s)  {r['kernel']:<6} {r['GB/s']:6.1f} GB/s")
        return
    if args.sampler:
        import torch

        torch.set_num_threads(2)
        for r in sampler_ab(args.sampler, args.N, args.steps, seed=args.seed):
            print(json.dumps(r), flush=True)
        return

    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args)), flush=True)
        return

    rows = []
    for Nx in args.sizes:
        for method in args.methods:
            if method == "LETKF":
                infl, loc_rad = (float(v) for v in args.letkf.split(","))
                L = 2 * int(np.floor(3.64 * loc_rad)) + 1  # local observations (Gaspari-Cohn support)
                # ensembles and their copies, the local sets (the local analyses work in blocks of
                # letkf.BLOCK domains per thread, a few hundred kB)
                gib = Nx * (8 * args.N + 2 * L) * 8 / 2**30
                if gib > args.max_letkf_gib:
                    rows.append({"method": method, "Nx": Nx, "N": args.N, "status":
                                 f"not run: its batched arrays need about {gib:.0f} GiB"})
                    print(json.dumps(rows[-1]), flush=True)
                    continue
            cmd = [sys.executable, __file__, "--one", method, str(Nx)] + [
                a for a in (argv if argv is not None else sys.argv[1:])
                if a not in ("--markdown",)]
            start = time.perf_counter()
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                if out.returncode != 0:
                    row = {"method": method, "Nx": Nx, "N": args.N,
                           "status": f"failed (exit {out.returncode}): {out.stderr.strip()[-300:]}"}
                else:
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    row["status"] = "ok"
            except subprocess.TimeoutExpired:
                row = {"method": method, "Nx": Nx, "N": args.N,
                       "status": f"timeout after {args.timeout:.0f} s"}
            row["wall_s"] = time.perf_counter() - start
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "rmse"}), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    if args.markdown:
        print(markdown(rows, args))


def markdown(rows: list[dict], args) -> str:
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
             f"{datetime.date.today().isoformat()}; N={args.N}, EnSF {args.steps} reverse steps (float32), "
             f"{args.cycles} analyses per run, seed {args.seed}.", "",
             "| method | Nx | s/analysis | CPU s/analysis | s/forecast | peak RSS (GiB) | rmse last "
             "| max rmse (cycles ≥ 10) | load at end | status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['method']} | {r['Nx']:,} | | | | | | | | {r['status']} |")
            continue
        mx = r.get("rmse_max_after_10")
        cpu, load = r.get("cpu_s_analysis"), r.get("load_avg")
        name = r["method"] + (" (torch path)" if r.get("kernel") == "off" else "")
        lines.append(f"| {name} | {r['Nx']:,} | {r['s_analysis']:.2f} | "
                     f"{'' if cpu is None else f'{cpu:.2f}'} | {r['s_forecast']:.2f} | "
                     f"{r['peak_rss_gib']:.2f} | {r['rmse_last']:.3f} | "
                     f"{'' if mx is None else f'{mx:.3f}'} | {'' if load is None else f'{load:.1f}'} | "
                     f"ok ({r['cycles']} cycles) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
