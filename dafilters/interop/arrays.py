"""Observation sequences from other libraries as the arrays the filters take.

DAPPER's ``HiddenMarkovModel.simulate`` returns ``yy`` as a 1-D object array of ``Ko + 1``
observation vectors; the filters take a ``(Ko+1, Ny)`` float array (or a list of 1-D arrays when
``Ny`` changes with ``ko``). :func:`as_observations` converts the first into the second and leaves
everything else as it is.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_observations"]


def as_observations(yy):
    """``yy`` with an object array of observation vectors (DAPPER's ``simulate()`` output) turned
    into a ``(Ko+1, Ny)`` float array, or a list of 1-D float arrays if their sizes differ.

    Anything that is not an object array is returned unchanged (the filters check it).

    Raises:
        TypeError: naming the first entry that is missing (``None``, as DAPPER leaves an
            observation it never drew) or not numeric.
    """
    if not (isinstance(yy, np.ndarray) and yy.dtype.kind == "O"):
        return yy
    if yy.ndim == 2:  # an object matrix of numbers
        try:
            return yy.astype(float)
        except (TypeError, ValueError) as err:
            raise TypeError(f"observations yy: an object array of shape {yy.shape} whose entries "
                            f"are not all numbers ({err})") from None
    if yy.ndim != 1:
        raise TypeError(f"observations yy: an object array must be 1-D (one vector per "
                        f"observation time, as DAPPER's simulate() gives), got shape {yy.shape}")
    out = []
    for ko, y in enumerate(yy):
        if y is None:
            raise TypeError(f"observation yy[{ko}] is None (an observation time without an "
                            "observation vector)")
        try:
            out.append(np.asarray(y, dtype=float))
        except (TypeError, ValueError) as err:
            raise TypeError(f"observation yy[{ko}] is not numeric: {y!r:.60} ({err})") from None
    if len({y.shape for y in out}) == 1:
        return np.stack(out) if out else np.empty((0, 0))
    return out
