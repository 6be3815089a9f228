"""The forcings of :mod:`mods.ShallowWater`: the zonal :class:`Jet` the velocity may relax to (and
the jets of the initial states), and LD-EnSF's migrating height forcing (:class:`Heating`,
:func:`forcing_center`, :func:`height_forcing`) with the ranges of its per-member parameters."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Jet", "jet_profile", "Heating", "forcing_center", "height_forcing", "DAY", "YEAR",
           "DECLINATION", "FORCING_AMPLITUDE", "FORCING_WIDTH"]


@dataclasses.dataclass(frozen=True)
class Jet:
    r"""A zonal jet (Galewsky et al. 2004, eq. 2) of peak speed ``umax`` (m/s) centred at latitude
    ``center`` (degrees) with half-width ``halfwidth`` (degrees):

    .. math:: u_\phi(\varphi) = \frac{u_{max}}{e_n}\exp\Big(\frac{1}{(\varphi - \varphi_0)
              (\varphi - \varphi_1)}\Big),\ \varphi_0 < \varphi < \varphi_1, \quad 0 \text{ elsewhere},

    :math:`\varphi_{0,1}` = centre ∓ half-width, :math:`e_n = \exp(-4/(\varphi_1 - \varphi_0)^2)`
    (so the peak is ``umax``). The defaults are Galewsky's: 80 m/s between 180/7 and 450/7 degrees.
    """

    umax: float = 80.0
    center: float = 45.0
    halfwidth: float = 135.0 / 7.0

    def __post_init__(self):
        if not (self.halfwidth > 0 and abs(self.center) + self.halfwidth <= 90):
            raise ValueError(f"the jet must lie within (-90, 90) degrees with a positive half-width, "
                             f"got {self}")


def jet_profile(lat: np.ndarray, jet: Jet) -> np.ndarray:
    """The jet's eastward velocity (m/s) at latitudes ``lat`` (radians), any shape."""
    lat = np.asarray(lat, dtype=float)
    lat0, lat1 = np.radians(jet.center - jet.halfwidth), np.radians(jet.center + jet.halfwidth)
    inside = (lat > lat0) & (lat < lat1)
    en = np.exp(-4.0 / (lat1 - lat0) ** 2)
    out = np.zeros_like(lat)
    out[inside] = jet.umax / en * np.exp(1.0 / ((lat[inside] - lat0) * (lat[inside] - lat1)))
    return out


#: Length of the forcing's day and year (hours) and its largest declination (radians), as in
#: LD-EnSF's atmospheric data (a 42-day year).
DAY, YEAR, DECLINATION = 24.0, 1008.0, 0.4
#: The ranges of the forcing amplitude (m/hour) and width (radians) that LD-EnSF draws uniformly
#: per trajectory.
FORCING_AMPLITUDE, FORCING_WIDTH = (0.1, 30.0), (1.0, 4.0)


@dataclasses.dataclass(frozen=True)
class Heating:
    r"""The fixed shape of the migrating height forcing of :func:`height_forcing`: its ``day`` and
    ``year`` (hours) and its largest ``declination`` (radians). The amplitude and width are per
    member (the last two state components of :class:`ForcedShallowWater`)."""

    day: float = DAY
    year: float = YEAR
    declination: float = DECLINATION

    def __post_init__(self):
        if not (self.day > 0 and self.year > 0 and abs(self.declination) < np.pi / 2):
            raise ValueError(f"need a positive day and year and |declination| < pi/2, got {self}")


def forcing_center(t: float | np.ndarray, heating: Heating = Heating()) -> tuple[np.ndarray, np.ndarray]:
    r"""Longitude and latitude (radians) of the forcing's centre at time ``t`` (hours):
    :math:`\phi_c = 2\pi t/\mathrm{day}`, :math:`\varphi_c = \delta \sin(2\pi t/\mathrm{year})`
    (the "sun" circles the globe eastward once a day, its latitude swings by :math:`\pm\delta`
    over a year)."""
    t = np.asarray(t, dtype=float)
    return 2 * np.pi * t / heating.day, heating.declination * np.sin(2 * np.pi * t / heating.year)


def height_forcing(phi: np.ndarray, lat: np.ndarray, t: float, amplitude: float, width: float,
                   heating: Heating = Heating()) -> np.ndarray:
    r"""The height source (m/hour) of LD-EnSF's atmospheric data at longitudes ``phi`` and
    latitudes ``lat`` (radians, broadcast together) and time ``t`` (hours):

    .. math:: F_h = a\cos(\phi - \phi_c(t))\,\exp\big(-(\varphi - \varphi_c(t))^2/\sigma^2\big),

    :math:`(\phi_c, \varphi_c)` from :func:`forcing_center`, amplitude :math:`a` = ``amplitude``,
    width :math:`\sigma` = ``width``. Mass is added on the day side and removed on the night
    side: the zonal factor has zero mean, so :math:`\int F_h\, dA = 0`."""
    lon_c, lat_c = forcing_center(t, heating)
    return amplitude * np.cos(np.asarray(phi) - lon_c) * np.exp(-((np.asarray(lat) - lat_c) / width) ** 2)
