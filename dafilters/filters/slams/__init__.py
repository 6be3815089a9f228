r"""SLAMS: score-based latent assimilation with several observation modalities.

After Qu, Nathaniel, Li & Gentine (2024), "Deep generative data assimilation in multimodal
setting" (arXiv 2404.06665), which runs SDA (:mod:`dafilters.filters.sda`) in the latent space
of an autoencoder that reads the background state together with every observation modality.

**Inputs on the state grid.** Each modality :math:`m` (an operator of a
:class:`~dafilters.multimodal.MultiObs`) is regridded onto the state grid,
:math:`g_m = y_m G_m` with :math:`G_m = \mathrm{diag}(|H_m|^T 1)^{-1} H_m^T`
(:func:`~dafilters.multimodal.regrid_matrix`), and comes with its mask :math:`c_m \in \{0,1\}^{N_x}`.
With states standardised by the climatological mean and spread, the encoder input is the stack of
``2 + 2M`` channels on the grid

.. math:: u = \big[\bar x_b,\ s_b,\ g_1 \odot c_1,\ c_1,\ \dots,\ g_M \odot c_M,\ c_M\big],

the background mean and spread (the forecast ensemble's) and each modality with its mask; a
modality that is not observed has :math:`g_m = c_m = 0`.

**Autoencoder** (MLPs for 1-D states, convolutional networks with circular padding and two
stride-2 levels for 2-D fields): a state encoder :math:`z^\star = E_x(x)` and a decoder
:math:`D(z)` form the latent space of states; an observation encoder maps the background and the
modalities into the same space, :math:`(\mu, \log v) = E(u)`: a latent observation of the truth's
latent :math:`z^\star(x)` with its (standardised) variance. Trained on states :math:`x` of simulated
trajectories, with backgrounds :math:`\bar x_b = x + s\,\xi` (:math:`s \sim U(0, s_{\max})`, the
spread channel set to :math:`s`), or with probability ``p_clim`` the climatology (:math:`\bar x_b
= 0`, spread :math:`s_{\max}`), and each modality dropped with probability :math:`p`:

.. math:: \mathcal L = \lVert D(E_x(x)) - x\rVert^2
    + \lambda\,\overline{\Big(\frac{(\mu - [z^\star])^2}{v\,[\varsigma]^2} + \log v\Big)},

with :math:`[\cdot]` stopping gradients and :math:`\varsigma` the batch spread of :math:`z^\star`
per component (the likelihood term is measured in the latent's own scale, so it cannot be made
small by shrinking the latent). :math:`v` knows which modalities were there and how good the
background was. (A single encoder that also had to decode :math:`\mu` to the state was tried
first: the two aims conflict, since an uncertain :math:`\mu` must then decode to a posterior mean
rather than to a state on the attractor.)

**Latent prior.** Latents :math:`z^\star` of trajectories at the observation times are standardised per
component and an SDA denoiser (:class:`~dafilters.filters.sda.LocalDenoiser`) is trained on
windows of :math:`2k+1` consecutive ones by denoising score matching with SDA's cosine schedule.

**Analysis** at observation time ``ko``: encode the modalities present with the forecast mean
and spread, and from the observations alone (a climatological background), :math:`(z^o_{ko},
v_{ko})`; the ``background`` scheme takes the forecast's encoding at one time of the window only
(the current one by default, the others from the observations alone: the forecast already holds
the earlier observations, see :mod:`.filter`); sample latent trajectories of the last ``window``
observation times with SDA's guided sampler (:func:`~dafilters.filters.sda.guided_sample`) under

.. math:: \log p(z^o \mid z_t) \approx \sum_j \log N\big(z^o_j \mid \hat z_0[j],\
    v_j + \gamma(\sigma_t/\mu_t)^2\big)

over the encoded observations :math:`j` inside the window (plus, with ``pixel_guidance``, SDA's
likelihood of the raw modalities through the decoder at the last time); the analysis ensemble is
the decoded last latent state of each sample. The forecast is the model's.

Missing modalities (a :class:`~dafilters.multimodal.MultiObs` whose modality is not sampled at
``ko``, or an HMM with a modality dropped by ``obs.without(name)``) enter as zero channels, as in
training; a modality the model was not trained with is refused with a clear error.

One job a module:

- :mod:`.nets`: the autoencoders and :func:`slams_networks` (with SDA's latent denoiser);
- :mod:`.latent`: encoder inputs from the modalities, the latent likelihood;
- :mod:`.config`: :class:`SLAMSTraining`, how SLAMS is trained (torch-free);
- :mod:`.learn`: the training (autoencoder, then SDA's :func:`~dafilters.filters.sda.fit_denoiser`);
- :mod:`.filter`: the :class:`SLAMS` filter (settings, spec, checks, filter hooks).
"""

from .config import SLAMSTraining
from .filter import SLAMS
from .latent import (
           SINGLE,
           encoder_input,
           latent_loglik,
           modalities_of,
           modality_fields,
           present_parts,
           regrid_maps,
)
from .nets import ConvAutoencoder, MLPAutoencoder, slams_networks

__all__ = ["SLAMS", "SLAMSTraining", "MLPAutoencoder", "ConvAutoencoder", "slams_networks", "SINGLE",
           "modalities_of", "present_parts", "encoder_input", "regrid_maps", "modality_fields",
           "latent_loglik"]
