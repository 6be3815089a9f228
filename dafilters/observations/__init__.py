r"""Generic observation operators.

- :class:`LinearObs`: ``y = H x + r`` with a fixed matrix ``H`` ``(Ny, Nx)``.
- :class:`PartialObs`: ``y = x[idx] + r``, where the index set may change with ``ko``
  (missing and moving observations); :func:`IdentityObs` observes everything.
- :class:`FunctionObs`: ``y = f(x[idx]) + r`` for an element-wise nonlinear ``f`` (e.g. arctan).
- :class:`TorchObs`: ``y = h(x) + r`` for any operator written in torch (its likelihood score by
  autograd).
- 2-D fields on an ``n0 x n1`` grid flattened row-major (component ``i * n1 + j`` holds grid point
  ``(i, j)``): :class:`GridMaskObs` (every ``s``-th point in each direction),
  :class:`RandomMaskObs` (a seeded random subset), :class:`CentrePatchObs` (a square in the middle)
  and :class:`AvgPoolObs` (means over non-overlapping ``k x k`` blocks).
- Vorticity fields of 2-D incompressible flow on a periodic square: :class:`VelocityProbesObs`
  (both velocity components at sparse probes, a linear operator built spectrally by
  :func:`velocity_probe_matrix`).

Every operator gives the likelihood score :math:`\nabla_x \log p(y|x) = J_h(x)^T R^{-1}(y - h(x))`
of a batch of states (numpy or torch) through ``grad_loglik(y, X, ko)``: in closed form for the
linear, partial and element-wise operators, by autograd otherwise.

Noise is Gaussian with covariance given as a scalar (``s * I``), a vector (diagonal) or a matrix,
or as a callable ``ko -> covariance`` for time-varying noise.

Modules: :mod:`~dafilters.observations.base` (the base class :class:`~dafilters.hmm.Observation`
and the numpy/torch helpers of likelihood scores), :mod:`~dafilters.observations.basic` (whole
states), :mod:`~dafilters.observations.grid` (2-D grids), :mod:`~dafilters.observations.velocity`
(velocity probes); every public name is importable from here.
"""

from ..public import set_public_module
from .basic import ArctanObs, FunctionObs, IdentityObs, LinearObs, PartialObs, TorchObs, _darctan
from .grid import AvgPoolObs, CentrePatchObs, GridMaskObs, RandomMaskObs, grid_indices
from .velocity import VelocityProbesObs, probe_lattice, velocity_probe_matrix, vorticity_to_velocity

__all__ = ["LinearObs", "PartialObs", "IdentityObs", "FunctionObs", "ArctanObs", "TorchObs",
           "GridMaskObs", "RandomMaskObs", "CentrePatchObs", "AvgPoolObs",
           "VelocityProbesObs", "velocity_probe_matrix", "vorticity_to_velocity", "probe_lattice"]

# Defined in the modules above, identified as members of this package (as before the split; the
# functions an operator holds, _darctan for ArctanObs, are identified too): see dafilters.public.
set_public_module(__name__, LinearObs, PartialObs, IdentityObs, FunctionObs, ArctanObs, TorchObs,
                  _darctan, GridMaskObs, RandomMaskObs, CentrePatchObs, AvgPoolObs, grid_indices,
                  VelocityProbesObs, velocity_probe_matrix, vorticity_to_velocity, probe_lattice)
