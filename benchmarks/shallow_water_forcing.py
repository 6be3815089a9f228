"""How much the randomised height forcing drives the low-resolution shallow-water flow.

    python benchmarks/shallow_water_forcing.py          # 32 x 16, 6 trajectories, 240 hours (~1 min)

Six initial states of ``ForcedJetPrior`` (seed 1; the last two at the ends of the forcing ranges,
a = 0.1 m/h, sigma = 1 rad and a = 30 m/h, sigma = 4 rad) are run for 240 hours with the forcing
(``ForcedShallowWater``) and without it (``ShallowWater``, the same jets). Printed per trajectory,
as fractions of the spatial standard deviation of h at t = 0: the RMS change of h over the run,
and the time-mean RMS of h's non-zonal part (h minus its zonal mean); also the mass drift
(relative to the area times that deviation).
"""

from __future__ import annotations

import argparse

import numpy as np

from mods.ShallowWater import (
    ForcedJetPrior,
    ForcedShallowWater,
    ShallowWater,
    as_fields,
    mass,
    quadrature_weights,
)


def heights(dyn, X: np.ndarray, hours: int, every: int, Nphi: int, Ntheta: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """h ``(T+1, N, Nphi, Ntheta)`` and the states ``(T+1, N, Nx)`` every ``every`` hours."""
    Nc = 3 * Nphi * Ntheta
    out, E = [X], X.copy()
    for k in range(hours // every):
        E = dyn.advance(E, 1.0, every, t=float(every * k))
        out.append(E)
    return as_fields(np.stack(out)[..., :Nc], Nphi, Ntheta)[..., 2, :, :], np.stack(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--Nphi", type=int, default=32)
    p.add_argument("--Ntheta", type=int, default=16)
    p.add_argument("--hours", type=int, default=240)
    args = p.parse_args()
    Nphi, Ntheta, Nc = args.Nphi, args.Ntheta, 3 * args.Nphi * args.Ntheta
    X0 = ForcedJetPrior(Nphi, Ntheta).sample(6, np.random.default_rng(1))
    X0[-2, -2:], X0[-1, -2:] = [0.1, 1.0], [30.0, 4.0]
    hA, _ = heights(ShallowWater(Nphi, Ntheta), X0[:, :Nc], args.hours, 6, Nphi, Ntheta)
    hB, B = heights(ForcedShallowWater(Nphi, Ntheta), X0, args.hours, 6, Nphi, Ntheta)
    sd0 = hA[0].std(axis=(-2, -1))

    def change(h):
        return np.sqrt(((h[-1] - h[0]) ** 2).mean(axis=(-2, -1))) / sd0

    def non_zonal(h):
        e = h - h.mean(axis=-2, keepdims=True)  # minus the zonal mean (over longitudes)
        return np.sqrt((e**2).mean(axis=(-2, -1))).mean(0) / sd0

    np.set_printoptions(precision=3, suppress=True)
    print(f"{Nphi} x {Ntheta}, {args.hours} h; forcing (a m/h, sigma rad) per trajectory:\n{X0[:, -2:]}")
    print("change of h / sd0:    unforced", change(hA), " forced", change(hB))
    print("non-zonal h / sd0:    unforced", non_zonal(hA), " forced", non_zonal(hB))
    drift = np.abs(mass(B[..., :Nc], Nphi, Ntheta) - mass(B[0, :, :Nc], Nphi, Ntheta)).max()
    area = quadrature_weights(Nphi, Ntheta).sum()
    print(f"largest mass change (forced), relative to area x sd0: {drift / (area * sd0.max()):.2g}")


if __name__ == "__main__":
    main()
