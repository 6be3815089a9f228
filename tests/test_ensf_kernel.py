"""EnSF's compiled C kernel (all reverse SDE steps of the paired score in one call): its noise
stream, its step against the eager torch step on the same noise, and the fallback."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import dafilters as daf
from dafilters.filters import ensf, ensf_kernel
from dafilters.filters.ensf import elementwise_likelihood, ensf_sample, step_coefficients

LIB = ensf_kernel.load_kernel()
needs_kernel = pytest.mark.skipif(LIB is None, reason=f"EnSF kernel: {ensf_kernel.kernel_status()}")


@needs_kernel
def test_kernel_noise_is_the_documented_stream():
    """The C noise equals the torch statement of the stream (SplitMix64 + Box-Muller, pairs in
    blocks of 32), at an unaligned start and a key above 2^63, to float32 rounding."""
    for e0, key, step in ((0, 1, 0), (37, 2**63 + 5, 3), (10**7 + 1, 2**64 - 1, 499)):
        c = ensf_kernel.kernel_noise(LIB, 5000, e0, key, step).double()
        torch.testing.assert_close(c, ensf_kernel.reference_noise(5000, e0, key, step), atol=5e-6, rtol=0)
    whole = ensf_kernel.kernel_noise(LIB, 1000, 100, 7, 2)
    assert torch.equal(whole[3:103], ensf_kernel.kernel_noise(LIB, 100, 103, 7, 2))  # any cut


@needs_kernel
def test_kernel_noise_statistics():
    """2^20 draws: mean 0, variance 1, normal (Kolmogorov-Smirnov), and uncorrelated with the
    next element, the pair partner (sine of the same pair), the next step and another key."""
    n = 2**20
    a = ensf_kernel.kernel_noise(LIB, n, 0, 12345, 10).double()
    assert abs(float(a.mean())) < 5 / math.sqrt(n)
    assert abs(float(a.var()) - 1) < 5 * math.sqrt(2 / n)
    assert stats.kstest(a[:200_000].numpy(), "norm").pvalue > 1e-3
    assert float(a.abs().max()) < 6.0  # 24-bit uniforms: |xi| <= 5.9
    others = {"next element": (a[:-1], a[1:]),
              "pair partner": (a.view(-1, 32)[:, :16], a.view(-1, 32)[:, 16:]),
              "next step": (a, ensf_kernel.kernel_noise(LIB, n, 0, 12345, 11).double()),
              "other key": (a, ensf_kernel.kernel_noise(LIB, n, 0, 12346, 10).double())}
    for name, (u, v) in others.items():
        r = float(torch.corrcoef(torch.stack([u.reshape(-1), v.reshape(-1)]))[0, 1])
        assert abs(r) < 5 / math.sqrt(u.numel()), name
    # squares too (independence, not only no correlation): Box-Muller's radius is shared by a pair
    r2 = float(torch.corrcoef(torch.stack([others["pair partner"][0].reshape(-1) ** 2,
                                           others["pair partner"][1].reshape(-1) ** 2]))[0, 1])
    assert abs(r2) < 5 / math.sqrt(n / 2)


def _eager(Z, X, y, rinv, arctan, coeffs, clip, key):
    """The reverse steps in eager torch (float64) on the kernel's noise (reference_noise)."""
    Z = Z.double().clone()
    for k, (h, a_x, a_z, decay, a_s, a_xi) in enumerate(coeffs.tolist()):
        zt = torch.atan(Z) if arctan else Z
        lik = rinv * (y.double() - zt) / ((1 + Z * Z) if arctan else 1)
        S = h * lik + a_x * X.double() + a_z * Z
        if clip is not None:
            S = S.clamp(-clip, clip)
        xi = ensf_kernel.reference_noise(Z.numel(), 0, key, k).view_as(Z)
        Z = decay * Z + a_s * S + a_xi * xi
    return Z


@needs_kernel
@pytest.mark.parametrize("arctan,clip", [(True, 1000.0), (True, 2.0), (False, None)])
def test_kernel_steps_equal_the_eager_steps_on_its_noise(arctan, clip):
    """Rows not multiples of the noise block (Nx = 1100), a score clipped often (clip 2), one
    inverse variance per component: the kernel's samples are the eager steps' on the same noise."""
    N, Nx, steps, key = 3, 1100, 20, 99
    g = torch.Generator().manual_seed(0)
    X, Z0 = torch.randn(N, Nx, generator=g), torch.randn(N, Nx, generator=g)
    y = 0.5 * torch.randn(Nx, generator=g)
    rinv = 4.0 if arctan else torch.linspace(1.0, 9.0, Nx)
    coeffs = torch.tensor(step_coefficients(steps, 0.5, 0.025), dtype=torch.float32)
    Z = Z0.clone()
    ensf_kernel.kernel_paired_sde(LIB, Z, X, y, rinv, arctan, coeffs, clip, key, threads=2)
    ref = _eager(Z0, X, y, rinv, arctan, coeffs.double(), clip, key)
    torch.testing.assert_close(Z.double(), ref, atol=2e-4, rtol=1e-4)
    Z1 = Z0.clone()
    ensf_kernel.kernel_paired_sde(LIB, Z1, X, y, rinv, arctan, coeffs, clip, key, threads=1)
    assert torch.equal(Z, Z1)  # the number of threads changes nothing
    with pytest.raises(ValueError, match="float32"):
        ensf_kernel.kernel_paired_sde(LIB, Z0.double(), X, y, rinv, arctan, coeffs, clip, key)


@needs_kernel
def test_loading_the_kernel_keeps_subnormal_numbers():
    """The library is linked without gcc's fast-math start file, which would set flush-to-zero
    (and denormals-are-zero) for the whole process."""
    assert (np.array([5e-324]) * 1.0)[0] > 0 and (np.array([2.5e-308]) / 4)[0] > 0
    assert float((torch.tensor([1e-40]) * 1.0)[0]) > 0


def test_segments_cover_every_element_within_rows():
    segs = ensf_kernel.segments(3, 1000, size=256)
    assert segs[0] == (0, 256) and segs[3] == (768, 1000) and segs[4] == (1000, 1256)
    covered = np.concatenate([np.arange(a, b) for a, b in segs])
    assert np.array_equal(covered, np.arange(3000))
    assert all(a // 1000 == (b - 1) // 1000 for a, b in segs)


def _sample(X, obs, y, **kw):
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    return ensf_sample(X, lambda Z: obs.grad_loglik(y, Z, 0), kw.pop("steps", 100), 0.5, 0.025,
                       generators=gens, lik=elementwise_likelihood(obs, y, 0, X), **kw)


@needs_kernel
def test_kernel_path_samples_the_same_distribution_as_the_torch_path():
    """Many members on a few components: per-component sample means and variances of the
    kernel path and the torch path agree within their Monte Carlo error."""
    N, Nx = 4000, 8
    g = torch.Generator().manual_seed(5)
    X = 1.0 + 0.7 * torch.randn(N, Nx, generator=g)
    obs = daf.ArctanObs(Nx, 0.3**2)
    y = torch.atan(torch.linspace(-1.5, 2.0, Nx))
    a, b = _sample(X, obs, y, kernel=True), _sample(X, obs, y, kernel=False)
    assert not torch.equal(a, b)
    se = (a.var(0) / N + b.var(0) / N).sqrt()
    assert ((a.mean(0) - b.mean(0)).abs() < 4.5 * se).all()
    assert ((a.var(0) / b.var(0) - 1).abs() < 4.5 * math.sqrt(4 / N)).all()
    assert torch.equal(a, _sample(X, obs, y, kernel=True))  # seeded: repeats


@needs_kernel
def test_the_kernel_is_the_default_unless_the_fused_sampler_is_asked_for():
    Nx = 300
    g = torch.Generator().manual_seed(7)
    X, y = torch.randn(4, Nx, generator=g), torch.randn(Nx, generator=g)
    obs = daf.ArctanObs(Nx, 0.1)
    torch_path = _sample(X, obs, y, kernel=False, steps=5)
    assert torch.equal(_sample(X, obs, y, fused=True, steps=5), torch_path)
    default = _sample(X, obs, y, steps=5)
    assert torch.equal(default, _sample(X, obs, y, kernel=True, steps=5))
    assert not torch.equal(default, torch_path)


def test_without_the_kernel_the_torch_path_runs(monkeypatch):
    """No compiler (or DAFILTERS_ENSF_KERNEL=0): load_kernel gives None and says why, and the
    sampler gives the torch path's samples; float64 and the mixture score never take the kernel."""
    Nx = 300
    g = torch.Generator().manual_seed(6)
    X, y = torch.randn(4, Nx, generator=g), torch.randn(Nx, generator=g)
    obs = daf.ArctanObs(Nx, 0.1)
    torch_path = _sample(X, obs, y, kernel=False, steps=10)
    monkeypatch.setattr(ensf_kernel, "_STATE", {})
    monkeypatch.setenv("DAFILTERS_ENSF_KERNEL", "0")
    assert ensf_kernel.load_kernel() is None and "switched off" in ensf_kernel.kernel_status()
    assert torch.equal(_sample(X, obs, y, kernel=True, steps=10), torch_path)
    monkeypatch.setattr(ensf_kernel, "_STATE", {})
    monkeypatch.delenv("DAFILTERS_ENSF_KERNEL")
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert ensf_kernel.load_kernel() is None and "not compiled" in ensf_kernel.kernel_status()
    monkeypatch.setattr(ensf_kernel, "_STATE", {})  # the next test loads the real kernel again
    X64, y64 = X.double(), y.double()
    assert torch.equal(_sample(X64, obs, y64, kernel=True, steps=10),
                       _sample(X64, obs, y64, kernel=False, steps=10))
    assert ensf.KERNEL is True


@needs_kernel
def test_a_cached_library_others_could_replace_is_not_loaded(tmp_path, monkeypatch):
    """Loading a library runs its code: a cached kernel (or its folder) writable by group or
    others is never used; the kernel is rebuilt (in place, or in a fresh private folder)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    compiler = ensf_kernel.shutil.which("cc") or ensf_kernel.shutil.which("gcc")
    lib = ensf_kernel._compile(compiler)
    assert lib.parent == tmp_path / "dafilters" and ensf_kernel._private(lib)
    assert ensf_kernel._compile(compiler) == lib  # cached: reused
    lib.write_bytes(b"not a library")
    lib.chmod(0o666)
    assert not ensf_kernel._private(lib)
    again = ensf_kernel._compile(compiler)
    assert again == lib and ensf_kernel._private(again) and again.read_bytes() != b"not a library"
    lib.parent.chmod(0o777)  # a folder anybody can write to: build elsewhere
    elsewhere = ensf_kernel._compile(compiler)
    assert elsewhere.parent != lib.parent and ensf_kernel._private(elsewhere)
