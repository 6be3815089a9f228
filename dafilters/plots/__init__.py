"""Figures of experiment results, tuning studies and model states, saved as PNG.

DAPPER's usual figures, each from the API and from ``dafilters plot`` (see ``docs/plots.md``):

- :func:`plot_results`: a metric (``rmse.a``) against a setting (``N``, ``infl``, ...), one line
  per filter setting, the confidence intervals as error bars, log axes where the values span a
  factor of 4 (``dafilters plot DIR --x N``).
- :func:`plot_series`: rmse and spread (or any per-cycle series) against time, one colour per
  filter setting, the burn-in shaded (``dafilters plot DIR --kind time``).
- :func:`plot_rank_hist`: rank histograms of the truth among the members, one panel per filter
  setting (``dafilters plot DIR --kind rank``).
- :func:`plot_snapshots` and :func:`plot_fields`: the truth, a filter's analysis mean and its
  error at some cycles, as images for 2-D models (:func:`grid_shape`) and curves otherwise
  (``dafilters plot --model M --filter F``).
- :func:`plot_study`: a tuning study's history, parameter importances and the objective over two
  parameters, on a log colour scale with outliers clipped (``dafilters tune ... --plot DIR``).

Titles name the HMM and the settings every line shares; legends name only the settings that
tell the lines apart. Figures are drawn on their own Agg canvas (``matplotlib.figure.Figure``):
importing this package or plotting leaves the user's matplotlib backend and pyplot's figures
alone.
"""

from __future__ import annotations

from .fields import grid_shape, plot_fields, plot_snapshots
from .results import plot_rank_hist, plot_results, plot_series
from .study import plot_study

__all__ = ["plot_results", "plot_series", "plot_rank_hist", "plot_fields", "plot_snapshots",
           "grid_shape", "plot_study"]
