"""EnSF's fused sampler (component-wise likelihoods at large sizes): the same samples as the
unfused loop, bit for bit, with the same noise streams (both torch paths: ``kernel=False``; the
compiled kernel, with its own noise, is tested in test_ensf_kernel.py)."""

import numpy as np
import pytest
import torch

import dafilters as daf
from dafilters.filters.ensf import SPLIT_NOISE, elementwise_likelihood, ensf_sample
from dafilters.filters.ensf_elementwise import _tiles


def _sample(X, obs, y, fused, **kw):
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    return ensf_sample(X, lambda Z: obs.grad_loglik(y, Z, 0), kw.pop("steps", 6), 0.5, 0.025,
                       generators=gens, lik=elementwise_likelihood(obs, y, 0, X), fused=fused,
                       prefetch_noise=True, kernel=False, **kw)


@pytest.mark.parametrize("kind", ["arctan", "identity"])
def test_fused_sampler_gives_the_same_samples(kind):
    """Two parts on two threads, drawn and stepped tile by tile: equal to the unfused loop."""
    N, Nx = 2, SPLIT_NOISE // 2 + 96
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(N, Nx, generator=g), torch.randn(Nx, generator=g) * 0.5
    obs = daf.ArctanObs(Nx, 0.05**2) if kind == "arctan" else daf.IdentityObs(Nx, np.linspace(0.1, 1, Nx))
    lik = elementwise_likelihood(obs, y, 0, X)
    assert lik is not None and lik.kind == kind
    assert isinstance(lik.rinv, float) == (kind == "arctan")  # one variance: a scalar
    assert torch.equal(_sample(X, obs, y, True), _sample(X, obs, y, False))
    assert torch.equal(_sample(X, obs, y, True, clip=None), _sample(X, obs, y, False, clip=None))


def test_fused_sampler_row_blocks_follow_the_noise_draws():
    """Row blocks, the last one below SPLIT_NOISE (its noise comes from the first generator
    alone, as standard_noise draws it): still the same samples."""
    N, Nx = 5, SPLIT_NOISE // 2
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(N, Nx, generator=g), torch.randn(Nx, generator=g)
    obs = daf.ArctanObs(Nx, 0.01)
    kw = dict(block_elems=SPLIT_NOISE, steps=4)
    assert torch.equal(_sample(X, obs, y, True, **kw), _sample(X, obs, y, False, **kw))


def test_elementwise_likelihood_only_where_the_score_is_componentwise():
    Nx = 50
    X, y = torch.randn(3, Nx), torch.randn(Nx)
    obs = daf.ArctanObs(Nx, 0.1)
    lik = elementwise_likelihood(obs, y, 0, X)
    assert lik.kind == "arctan" and lik.rinv == pytest.approx(10.0)
    assert elementwise_likelihood(daf.ArctanObs(Nx, 0.1, idx=np.arange(0, Nx, 2)), y[::2], 0, X) is None
    assert elementwise_likelihood(daf.IdentityObs(Nx, np.eye(Nx) + 0.1), y, 0, X) is None
    assert elementwise_likelihood(daf.FunctionObs(np.tanh, Nx, 0.1, df=lambda x: 1 - np.tanh(x) ** 2),
                                  y, 0, X) is None


def test_tiles_keep_the_noise_draws_whole():
    assert _tiles(0, 100, 32) == [(0, 32), (32, 64), (64, 100)]  # a last piece of 4 is merged
    assert _tiles(10, 90, 32) == [(10, 42), (42, 74), (74, 90)]
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    whole = torch.empty(1000).normal_(generator=g1)
    tiled = torch.empty(1000)
    for a, b in _tiles(0, 1000, 64):
        tiled[a:b].normal_(generator=g2)
    assert torch.equal(whole, tiled)
