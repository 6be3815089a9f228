"""Filters: one :class:`Filter` interface for classical and learned methods."""

from .base import Context, Filter
from .baseline import Climatology, KalmanFilter, OptInterp
from .enkf import EnKF
from .letkf import LETKF
from .particle import APF, PartFilt

__all__ = [
    "Filter", "Context", "Climatology", "OptInterp", "KalmanFilter", "EnKF", "LETKF", "PartFilt", "APF",
]

#: Filters that need torch, imported on first use so that ``import dafilters`` stays light.
_LAZY = {"EnSF": ".ensf", "SSLS": ".ssls", "MNMEF": ".mnmef", "SDA": ".sda", "LDEnSF": ".ldensf",
         "SLAMS": ".slams"}
__all__ += list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
