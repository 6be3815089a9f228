"""dafilters: classical and learned data-assimilation filters compared on equal terms.

The three nouns: an :class:`HMM` (dynamics, observations, prior, time sequence), a
:class:`Filter`, and :class:`Experiments` that run filters on HMMs over seeds and tabulate them.
"""

from .experiments import Experiments, Results
from .filters import APF, LETKF, Climatology, Context, EnKF, Filter, KalmanFilter, OptInterp, PartFilt
from .gaussian import Covariance, GaussRV
from .hmm import HMM, Chronology, Dynamics, GaussPrior, LinearDynamics, Observation, Prior
from .interop import from_dapper
from .interop.dapper_method import DapperMethod
from .multimodal import BlockMeanObs, Modality, MultiObs
from .observations import (
    ArctanObs,
    AvgPoolObs,
    CentrePatchObs,
    FunctionObs,
    GridMaskObs,
    IdentityObs,
    LinearObs,
    PartialObs,
    RandomMaskObs,
    TorchObs,
    VelocityProbesObs,
)
from .stats import Diverged, Gaussian, Stats
from .tuning import Tuned, TuneResult, tune

__version__ = "0.1.0"

__all__ = [
    "HMM", "Chronology", "Dynamics", "LinearDynamics", "Observation", "Prior", "GaussPrior",
    "Covariance", "GaussRV",
    "LinearObs", "PartialObs", "IdentityObs", "FunctionObs", "ArctanObs",
    "GridMaskObs", "RandomMaskObs", "CentrePatchObs", "AvgPoolObs", "VelocityProbesObs",
    "Filter", "Context", "Climatology", "OptInterp", "KalmanFilter", "EnKF", "LETKF", "PartFilt", "APF",
    "Stats", "Gaussian", "Diverged",
    "Experiments", "Results",
    "tune", "Tuned", "TuneResult",
]
__all__ += ["TorchObs"]
__all__ += ["MultiObs", "Modality", "BlockMeanObs"]
__all__ += ["from_dapper", "DapperMethod"]

#: Torch-based filters, imported on first access (``import dafilters`` does not import torch).
_LAZY_FILTERS = ("EnSF", "SSLS", "MNMEF", "SDA", "LDEnSF", "SLAMS")
__all__ += list(_LAZY_FILTERS)


def __getattr__(name: str):
    if name in _LAZY_FILTERS:
        from . import filters

        return getattr(filters, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
