"""MNMEF: a perturbed-observation EnKF whose inflation, localization and increments are learned.

After Bach, Colonius, Hoffmann, ... (2025), "Learning enhanced ensemble filters", arXiv 2504.17836.

- :mod:`.update`: the analysis (set summary, inflation, localized gain, learned corrections) as
  pure functions on tensors; its docstring has the maths.
- :mod:`.nets`: the networks (:class:`SetSummary`, :class:`MNMEFHeads`).
- :mod:`.config`: :class:`MNMEFTraining`, how MNMEF is trained (torch-free).
- :mod:`.learn`: the training, unrolled on spun-up windows of simulated trajectories.
- :mod:`.filter`: the :class:`MNMEF` filter (hyper-parameters and filter hooks).
"""

from .config import MNMEFTraining
from .filter import MNMEF
from .learn import Cycle, ModelForecast, spun_up_ensembles
from .nets import MNMEFHeads, SetSummary
from .update import TorchObs, distance_bins, mnmef_update

__all__ = ["MNMEF", "MNMEFTraining", "SetSummary", "MNMEFHeads", "mnmef_update", "distance_bins",
           "spun_up_ensembles", "Cycle", "ModelForecast", "TorchObs"]
