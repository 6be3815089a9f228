"""Inverse square roots of stacks of I + C (dafilters.spd): Newton–Schulz against eigh."""

import numpy as np
import pytest

from dafilters.spd import BLOCK, inv_sqrt_psd_shift, newton_schulz_iterations


def _stack(rng, B, N, scales):
    """``B`` matrices ``I + S S^T`` with ``S`` ``(N, 2N)`` scaled by the entries of ``scales``."""
    S = rng.standard_normal((B, N, 2 * N)) * np.asarray(scales)[:, None, None]
    return np.eye(N) + S @ np.transpose(S, (0, 2, 1))


def _reference(M):
    d, V = np.linalg.eigh(M)
    return (V / np.sqrt(d)[:, None, :]) @ np.transpose(V, (0, 2, 1))


@pytest.mark.parametrize("scale", [0.0, 1e-3, 0.05, 0.2, 1.0, 30.0])
def test_inverse_square_root_is_exact_to_round_off(rng, scale):
    M = _stack(rng, 70, 12, np.full(70, scale))
    Z = inv_sqrt_psd_shift(M)
    np.testing.assert_allclose(Z, _reference(M), atol=1e-13 * max(1.0, 1 / np.sqrt(1 + scale)))
    np.testing.assert_allclose(Z, np.transpose(Z, (0, 2, 1)), atol=1e-14)  # symmetric
    np.testing.assert_allclose(Z @ M @ Z, np.broadcast_to(np.eye(12), M.shape), atol=1e-12)


def test_mixed_blocks_use_eigh_where_the_iteration_would_be_slow(rng):
    scales = np.where(np.arange(3 * BLOCK) % 5 == 0, 50.0, 0.1)  # ill-conditioned ones in every block
    M = _stack(rng, len(scales), 8, scales)
    f = np.linalg.norm(M - np.eye(8), axis=(1, 2))
    k = newton_schulz_iterations(f, max_iter=8)
    assert (k[scales > 1] > 8).all() and (k[scales < 1] <= 8).all()
    np.testing.assert_allclose(inv_sqrt_psd_shift(M), _reference(M), atol=1e-13)
    np.testing.assert_allclose(inv_sqrt_psd_shift(M, max_iter=0), _reference(M), atol=1e-13)


def test_iteration_counts_follow_the_error_recursion():
    f = np.geomspace(1e-6, 1e6, 400)
    k = newton_schulz_iterations(f)
    assert (np.diff(k) >= 0).all() and k[0] >= 1
    for fi, ki in zip(f[::37], k[::37]):
        e = fi / (2 + fi)  # the slow end of the scaled spectrum
        for _ in range(ki):
            e = (3 * e**2 + e**3) / 4
        assert e <= 1e-15
    assert newton_schulz_iterations(0.0) == 0


def test_threads_do_not_change_the_result(rng):
    M = _stack(rng, 600, 10, rng.uniform(0, 2, 600))
    np.testing.assert_array_equal(inv_sqrt_psd_shift(M, threads=1), inv_sqrt_psd_shift(M, threads=2))


def test_bad_shape_is_named():
    with pytest.raises(ValueError, match=r"stack of square matrices"):
        inv_sqrt_psd_shift(np.eye(3))


def test_large_matrices_are_decomposed(rng):
    from dafilters.spd import NS_MAX_N

    N = NS_MAX_N + 2
    M = _stack(rng, 5, N, np.full(5, 0.01))
    np.testing.assert_allclose(inv_sqrt_psd_shift(M), _reference(M), atol=1e-13)
