"""Filters: one :class:`Filter` interface for classical and learned methods."""

from .base import Context, Filter
from .baseline import Climatology, KalmanFilter, OptInterp
from .enkf import EnKF
from .letkf import LETKF
from .particle import APF, PartFilt

__all__ = [
    "Filter", "Context", "Climatology", "OptInterp", "KalmanFilter", "EnKF", "LETKF", "PartFilt", "APF",
]
