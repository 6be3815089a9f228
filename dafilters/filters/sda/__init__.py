r"""Score-based data assimilation (SDA): a learned trajectory prior, observations at sampling time.

After Rozet & Louppe (2023), "Score-based data assimilation", arXiv 2306.10574. A denoiser of
short windows of ``2k+1`` consecutive (standardised) model states is trained by denoising score
matching; a trajectory's denoiser is composed from it, and each analysis samples the last
``window_steps`` model steps given the observations inside them with a guided
predictor-corrector sampler, returning the last state of each sample.

One job a module:

- :mod:`.nets`: the denoisers (:class:`LocalDenoiser`, an MLP; :class:`GridDenoiser`, a CNN on a
  periodic grid);
- :mod:`.diffusion`: the mathematics, pure functions shared with SLAMS (schedule, denoising loss,
  composition of windows, guided sampler, standardisation); the schedule and the sampler follow
  the reference implementation (francois-rozet/sda), the former ones remain as options;
- :mod:`.config`: :class:`SDATraining`, how SDA is trained (torch-free);
- :mod:`.learn`: the training (:func:`fit_denoiser`, shared with SLAMS);
- :mod:`.filter`: the :class:`SDA` filter (settings, networks, likelihood, filter hooks).
"""

from .config import SDATraining
from .diffusion import (
    CORRECTORS,
    ETA,
    MU_MIN,
    SCHEDULES,
    check_sampler,
    check_window,
    compose_windows,
    denoising_loss,
    dsm_loss,
    dsm_objective,
    guided_sample,
    langevin_step_size,
    posterior_eps,
    schedule,
    standardisation,
)
from .filter import SDA
from .learn import fit_denoiser
from .nets import GridDenoiser, LocalDenoiser, field_grid, make_denoiser

__all__ = ["SDA", "SDATraining", "LocalDenoiser", "GridDenoiser", "field_grid", "make_denoiser",
           "MU_MIN", "ETA", "SCHEDULES", "CORRECTORS", "schedule", "compose_windows", "guided_sample",
           "langevin_step_size", "posterior_eps", "denoising_loss", "dsm_objective", "dsm_loss",
           "standardisation", "check_window", "check_sampler", "fit_denoiser"]
