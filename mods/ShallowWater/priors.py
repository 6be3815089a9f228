"""Initial states of :mod:`mods.ShallowWater`: balanced jets with a height bump
(:func:`balanced_state`, :func:`random_jet_state`), forcing parameters
(:func:`random_forcing_params`) and the priors :class:`JetPrior` and :class:`ForcedJetPrior`."""

from __future__ import annotations

import numpy as np

from dafilters.hmm import Prior

from .forcing import FORCING_AMPLITUDE, FORCING_WIDTH, Jet, jet_profile
from .grid import _check_grid, grid
from .sim import _serial_sim

__all__ = ["bump", "balanced_state", "random_jet_state", "JetPrior", "random_forcing_params",
           "ForcedJetPrior"]


def bump(phi: np.ndarray, lat: np.ndarray, amplitude: float = 120.0, lon: float = 0.0,
         lat_c: float = 45.0, alpha: float = 1 / 3, beta: float = 1 / 15) -> np.ndarray:
    r"""Galewsky's height perturbation (m) :math:`\hat h \cos\varphi\, e^{-(\Delta\phi/\alpha)^2}
    e^{-((\varphi_2 - \varphi)/\beta)^2}` centred at longitude ``lon`` and latitude ``lat_c``
    (degrees; :math:`\Delta\phi \in (-\pi, \pi]` the longitude difference); ``phi``, ``lat`` in
    radians, broadcast together."""
    dphi = np.angle(np.exp(1j * (np.asarray(phi) - np.radians(lon))))
    return (amplitude * np.cos(lat) * np.exp(-((dphi / alpha) ** 2))
            * np.exp(-(((np.radians(lat_c) - lat) / beta) ** 2)))


def balanced_state(Nphi: int, Ntheta: int, jet: Jet = Jet(),  # noqa: B008 (a frozen dataclass)
                   perturbation: dict | None = None) -> np.ndarray:
    """A state ``(Nx,)``: the zonal ``jet``, its balanced height (zero mean, from Dedalus's LBVP)
    plus a :func:`bump` with the keyword arguments ``perturbation`` (default: Galewsky's, 120 m at
    45 degrees N, 0 E; ``dict(amplitude=0)`` for none)."""
    Nphi, Ntheta = _check_grid(Nphi, Ntheta)
    phi, theta = grid(Nphi, Ntheta)
    P, lat = np.meshgrid(phi, np.pi / 2 - theta, indexing="ij")
    u_phi = jet_profile(lat, jet)
    h = _serial_sim(Nphi, Ntheta).balanced_height(u_phi)
    h = h + bump(P, lat, **({} if perturbation is None else perturbation))
    return np.concatenate([u_phi.ravel(), np.zeros(Nphi * Ntheta), h.ravel()])


def random_jet_state(Nphi: int, Ntheta: int, rng: np.random.Generator,
                     umax: tuple[float, float] = (60.0, 100.0), center: tuple[float, float] = (40.0, 50.0),
                     amplitude: tuple[float, float] = (60.0, 180.0)) -> np.ndarray:
    """A :func:`balanced_state` with randomised parameters: jet speed and centre latitude, bump
    amplitude uniform in the given ranges, bump longitude uniform in [0, 360), at the jet's centre."""
    jet = Jet(umax=rng.uniform(*umax), center=rng.uniform(*center))
    pert = dict(amplitude=rng.uniform(*amplitude), lon=rng.uniform(0.0, 360.0), lat_c=jet.center)
    return balanced_state(Nphi, Ntheta, jet, pert)


def _check_range(name: str, r: tuple[float, float]) -> tuple[float, float]:
    """A uniform range ``(low, high)`` as floats, checked."""
    if len(r) != 2 or not r[0] <= r[1]:
        raise ValueError(f"{name} must be a range (low, high) with low <= high, got {r!r}")
    return float(r[0]), float(r[1])


class JetPrior(Prior):
    """Initial states of randomised balanced jets (:func:`random_jet_state`), one draw per member:
    jet speed ``umax`` (m/s) and centre latitude ``center`` (degrees), bump ``amplitude`` (m) and
    longitude; each range is ``(low, high)`` of a uniform distribution."""

    def __init__(self, Nphi: int = 32, Ntheta: int = 16, umax: tuple[float, float] = (60.0, 100.0),
                 center: tuple[float, float] = (40.0, 50.0), amplitude: tuple[float, float] = (60.0, 180.0)):
        self.Nphi, self.Ntheta = _check_grid(Nphi, Ntheta)
        self.ranges = {name: _check_range(name, r)
                       for name, r in (("umax", umax), ("center", center), ("amplitude", amplitude))}
        self.Nx = 3 * self.Nphi * self.Ntheta

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([random_jet_state(self.Nphi, self.Ntheta, rng, **self.ranges) for _ in range(N)])


def random_forcing_params(N: int, rng: np.random.Generator,
                          amplitude: tuple[float, float] = FORCING_AMPLITUDE,
                          width: tuple[float, float] = FORCING_WIDTH) -> np.ndarray:
    r"""``N`` draws ``(N, 2)`` of the forcing parameters: amplitude :math:`a \sim U` ``amplitude``
    (m/hour) and width :math:`\sigma \sim U` ``width`` (radians), LD-EnSF's ranges by default."""
    return np.stack([rng.uniform(*amplitude, size=N), rng.uniform(*width, size=N)], axis=1)


class ForcedJetPrior(JetPrior):
    r"""Initial states of :class:`ForcedShallowWater` ``(N, 3 * Nphi * Ntheta + 2)``: a randomised
    balanced jet of :class:`JetPrior` per member, then forcing parameters from
    :func:`random_forcing_params` (amplitude ``forcing_amplitude`` m/hour, width
    ``forcing_width`` radians, uniform). All jets are drawn before all parameters."""

    def __init__(self, Nphi: int = 32, Ntheta: int = 16, umax: tuple[float, float] = (60.0, 100.0),
                 center: tuple[float, float] = (40.0, 50.0), amplitude: tuple[float, float] = (60.0, 180.0),
                 forcing_amplitude: tuple[float, float] = FORCING_AMPLITUDE,
                 forcing_width: tuple[float, float] = FORCING_WIDTH):
        super().__init__(Nphi, Ntheta, umax, center, amplitude)
        self.forcing_ranges = dict(amplitude=_check_range("forcing_amplitude", forcing_amplitude),
                                   width=_check_range("forcing_width", forcing_width))
        if not self.forcing_ranges["width"][0] > 0:
            raise ValueError(f"forcing_width must be positive, got {forcing_width!r}")
        self.Nx = 3 * self.Nphi * self.Ntheta + 2

    def sample(self, N: int, rng: np.random.Generator) -> np.ndarray:
        fields = super().sample(N, rng)
        return np.hstack([fields, random_forcing_params(N, rng, **self.forcing_ranges)])
