"""Interoperability with other data-assimilation libraries.

DAPPER (the ``dapper`` extra): :func:`from_dapper` turns a ``dapper.mods`` HMM into a dafilters
:class:`~dafilters.hmm.HMM`; :class:`~dafilters.interop.dapper_method.DapperMethod` runs one of
DAPPER's methods as a row of a table; :func:`as_observations` accepts DAPPER's ``yy``. DAPPER is
imported only when one of them is used.
"""

from __future__ import annotations

from .arrays import as_observations
from .dapper_models import DapperDynamics, DapperObservation, DapperPrior, from_dapper, to_dapper

__all__ = ["as_observations", "from_dapper", "to_dapper", "DapperDynamics", "DapperObservation",
           "DapperPrior", "DapperMethod"]


def __getattr__(name: str):
    if name == "DapperMethod":  # imports the filters, which import this package
        from .dapper_method import DapperMethod

        return DapperMethod
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
