"""Golden figures of the learned filters: tiny trainings and short runs whose losses and rmse must
not change when the code is reorganised (recorded on the code before the restructuring of the
learned filters; regenerate only for a deliberate change of the algorithm, and say so in the
commit: ``python tests/test_learned_golden.py --write``).

Each case trains with fixed seeds on one torch thread (bitwise reproducible), then runs a short
twin experiment; the figures are compared to 1e-6 relative.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN = Path(__file__).with_name("data") / "learned_golden.json"


def _mnmef():
    from dafilters.filters.mnmef import MNMEF
    from mods.Lorenz96 import bach2025

    hmm = bach2025.build(sigma=1.0, Ko=119)
    flt = MNMEF(N=8, training=dict(n_traj=1, window=6, warmup=2, stride=6, epochs=2, batch_size=4,
                                   d_model=16, heads=2, minutes=60.0))
    return hmm, flt, {}


def _sda():
    from dafilters.filters.sda import SDA
    from mods.Lorenz63 import rozet2023

    hmm = rozet2023.build(Ko=39, burn_in_cycles=5, regime="deterministic")  # the recorded setting
    # the former sampler and schedule (the defaults follow the reference since issue 17)
    flt = SDA(N=8, k=2, window_steps=9, steps=8, corrector="batch", clip=5.0,
              training=dict(n_traj=1, epochs=3, batch_size=128, width=32, depth=2, lr_stages=2,
                            minutes=60.0, schedule="sin"))
    return hmm, flt, {}


def _slams():
    from dafilters.filters.slams import SLAMS
    from mods.Lorenz96 import qu2024

    hmm = qu2024.build(Nx=12, Ko=29)
    # the former sampler, schedule and background scheme (the defaults changed in issue 17)
    flt = SLAMS(N=6, k=1, window=3, steps=4, corrector="batch", clip=5.0, background="every",
                training=dict(latent_dim=8, ae_width=32, width=32, depth=2, n_traj=2, epochs=2,
                              batch_size=128, minutes=60.0, schedule="sin", p_clim=0.0))
    return hmm, flt, {}


def _ldensf():
    pytest.importorskip("jax_cfd")
    from dafilters.filters.ldensf import LDEnSF
    from mods.Kolmogorov import xiao2026

    hmm = xiao2026.build(n=16, Ko=7, dko=4)
    flt = LDEnSF(N=6, steps=10,
                 training=dict(latent_dim=6, n_basis=12, kmax=3, width=24, enc_width=24, lstm_hidden=12,
                               history=3, n_traj=3, rollout=2, epochs=3, lstm_epochs=3, batch_size=16,
                               minutes=60.0))
    return hmm, flt, {}


CASES = {"MNMEF": _mnmef, "SDA": _sda, "SLAMS": _slams, "LDEnSF": _ldensf}


def losses_of(log: dict, prefix: str = "") -> dict[str, list[float]]:
    """The loss curves in a training summary: every list of numbers whose key names a loss, in
    nested summaries too (keys joined by dots)."""
    out = {}
    for k, vals in sorted(log.items()):
        if isinstance(vals, dict):
            out.update(losses_of(vals, f"{prefix}{k}."))
        elif ("loss" in k and isinstance(vals, (list, tuple)) and vals
              and all(isinstance(v, (int, float)) for v in vals)):
            out[prefix + k] = [float(v) for v in vals]
    return out


def figures(name: str, tmp: Path) -> dict:
    """Train case ``name`` on one thread with fixed seeds, run seed 3; losses and rmse.a."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        hmm, flt, kw = CASES[name]()
        torch.manual_seed(0)
        flt.fit(hmm, progress=False, cache_dir=tmp, **kw)
        log = flt.training_log
        stats = flt.assimilate(hmm, *hmm.simulate(3), seed=3)
    finally:
        torch.set_num_threads(threads)
    return {"losses": losses_of(log), "rmse.a": float(stats.averages()["rmse.a"])}


@pytest.mark.parametrize("name", list(CASES))
def test_learned_filters_train_and_run_as_before(name, tmp_path):
    expected = json.loads(GOLDEN.read_text())[name]
    got = figures(name, tmp_path)
    assert got["losses"].keys() == expected["losses"].keys()
    for key, curve in expected["losses"].items():
        np.testing.assert_allclose(got["losses"][key], curve, rtol=1e-6, err_msg=f"{name} {key}")
    assert got["rmse.a"] == pytest.approx(expected["rmse.a"], rel=1e-6)


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    out = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as d:
            out[case] = figures(case, Path(d))
        print(case, out[case]["rmse.a"], {k: len(v) for k, v in out[case]["losses"].items()})
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(out, indent=1) + "\n")
