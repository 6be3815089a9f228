r"""LD-EnSF: the ensemble score filter run in the latent space of a learned latent dynamics model.

After Xiao, Si & Chen (2026), "LD-EnSF: Synergizing latent dynamics with ensemble score filters
for fast data assimilation with sparse observations", ICLR 2026.

A state is ``C`` fields on points :math:`x_1..x_P` of a 2-D domain (field 0 at every point, then
field 1, ...) followed by ``n_params`` parameters :math:`\mu` that are constant in time
(``Dynamics.n_params``, 0 if absent): e.g. ``(vorticity (n*n), log Re)`` in
:mod:`mods.Kolmogorov.xiao2026` (one field on ``Dynamics.coords``, periodic with the lengths
``Dynamics.domain``), or ``(u_phi, u_theta, h, a, sigma)`` in :mod:`mods.ShallowWater.xiao2026`
(three fields on the longitude-colatitude grid, given by the model's ``field_points()``;
:func:`field_layout`). Each field is standardised with its own two scalars, the parameters with
per-parameter statistics of the prior (:math:`\tilde\omega`, :math:`p`).

**Latent dynamics network.** A latent state :math:`z \in \mathbb R^{d}` evolves by the latent ODE

.. math:: \frac{dz}{d\tau} = f_\theta(z, p),

integrated by ``substeps`` classical RK4 steps per observation interval (:math:`\tau` counts
observation intervals). The decoder maps a latent state and the periodic Fourier features
:math:`\gamma(x) = (\sin\kappa\cdot x, \cos\kappa\cdot x)_{\kappa}` (integer wave vectors up to
``kmax`` per axis, scaled by :math:`2\pi/L`) of *any* point to the field there,

.. math:: \tilde\omega(x) = b(x) + \sum_{j=1}^{r} a_j(z)\, \varphi_j(x),\qquad
          (b, \varphi)(x) = \mathrm{MLP}_\varphi(\gamma(x)),\quad a(z) = \mathrm{MLP}_a(z),

a nonlinear function of :math:`z` on a learned basis of ``n_basis`` functions of the coordinates
(so a whole ensemble is decoded on a grid by one ``(N, r) x (r, P)`` product once the basis is
evaluated there). With ``C`` fields the trunk gives each field its own :math:`b_c` and
:math:`\varphi_{c,j}` and the coefficients :math:`a(z)` are shared (the reference's
``atmospheric_modeling`` decoder outputs the three fields of a point together). An encoder
:math:`E_\psi(\tilde\omega)` (an MLP of the field on the grid) gives
the latent state of a field: the initial latent states of training windows and of the initial
ensemble.

**Stage 1** (latent dynamics). On windows of ``rollout + 1`` consecutive observation times of
simulated trajectories, with :math:`z_0 = E(\tilde\omega_0)` and :math:`\hat z_k` the ODE's
rollout, minimise (on a random subset of ``points`` field points per batch)

.. math:: \textstyle\sum_k \lVert D(\hat z_k) - \tilde\omega_k\rVert^2
          + \lVert D(E(\tilde\omega_k)) - \tilde\omega_k\rVert^2
          + \lambda\, \lVert \hat z_k - E(\tilde\omega_k)\rVert^2 .

Afterwards the latent coordinates are standardised (:math:`u = (z - \bar z)/s_z`, statistics of
the encoded training states) and the one-interval forecast error of the ODE, :math:`s_q`, is
measured; the analysis space is :math:`(u, p)`, dimension ``latent_dim + n_params``.

**Stage 2** (observation encoder). An LSTM maps the last ``history`` observations (standardised,
left-padded with zeros and a 0/1 channel marking real observations) to :math:`(u, p)` at the
latest observation time; targets are the standardised encodings of the true fields and the
parameters. The RMS of its validation residual per component, :math:`s_y`, is its noise level.

The sizes and the stages' settings are the filter's ``training`` (:class:`LDEnSFTraining`); the
filter itself (:class:`LDEnSF`, :mod:`.filter`) is described in :mod:`.filter`.

One job a module:

- :mod:`.nets`: the networks (:class:`FourierFeatures`, :class:`FieldDecoder`,
  :class:`LatentODE`, :class:`LatentDynamics`, :class:`ObsLSTM`);
- :mod:`.latent`: the latent space (encoding and decoding of states, the latent forecast, the
  likelihood score, the LSTM's input, :class:`LatentEnsemble`), pure functions;
- :mod:`.config`: :class:`LDEnSFTraining`, how LD-EnSF is trained (torch-free);
- :mod:`.learn`: the training (stage 1 and stage 2 through the shared trainer);
- :mod:`.filter`: the :class:`LDEnSF` filter (settings, networks, filter hooks).
"""

from .config import LDEnSFTraining
from .filter import LDEnSF
from .latent import (
    LatentEnsemble,
    decode_states,
    encode_states,
    field_layout,
    history_tensor,
    implicit_latent_sample,
    latent_score,
    latent_step,
)
from .learn import learn_ldensf
from .nets import FieldDecoder, FourierFeatures, LatentDynamics, LatentODE, ObsLSTM

__all__ = ["LDEnSF", "LDEnSFTraining", "FourierFeatures", "FieldDecoder", "LatentODE",
           "LatentDynamics", "ObsLSTM", "LatentEnsemble", "latent_score", "history_tensor",
           "encode_states", "decode_states", "field_layout", "latent_step", "learn_ldensf",
           "implicit_latent_sample"]
