r"""EnSF's paired-score reverse SDE as one compiled C kernel (optional; found at run time).

With the paired prior score and a likelihood that acts component by component
(:class:`~dafilters.filters.ensf.ElementwiseLikelihood`), each element of the samples follows its
own trajectory: the reverse step of element :math:`e` at step :math:`k`,

.. math::
    s = \mathrm{clip}\big(h_k\, \ell(z_e) + a_k x_e - b_k z_e\big),\qquad
    z_e \leftarrow d_k z_e + c_k s + \sigma_k \xi_{k,e},

needs only :math:`z_e`, :math:`x_e`, :math:`y_e` and the noise :math:`\xi_{k,e}`. The kernel
therefore takes *all* the steps of a chunk of 1024 elements while it sits in the core's L1
cache (memory is read and written once per analysis, not once per step), and draws the noise in
the kernel from a counter-based stream, so that the draws do not depend on the order in which
elements are processed:

.. math::
    u = \mathrm{SplitMix64}\big(\kappa + (2^{40} k + p + 1)\,\gamma\big),\qquad
    \xi_{k,e} = \sqrt{-2 \log u_1}\, \cos(2\pi u_2 - \tfrac{\pi}{2} [\,e \bmod 32 \ge 16\,]),

with :math:`u_1 = (\lfloor u / 2^{40} \rfloor + \tfrac12)\, 2^{-24}`, :math:`u_2 = (u \bmod
2^{24})\, 2^{-24}`, :math:`\gamma` the golden-ratio increment of SplitMix64, :math:`\kappa` a
key drawn from the filter's torch generator once per analysis and :math:`p = 16 \lfloor e/32
\rfloor + (e \bmod 16)` the Box–Muller pair of element :math:`e` (a pair's cosine goes to the
first half of a block of 32 elements, its sine to the second). These are the states
:math:`2^{40} k + p` of one SplitMix64 sequence, so every (step, pair) has its own draw.
:func:`reference_noise` computes the same numbers in torch.

The C source is compiled once per machine with the system's C compiler (``CC``, else ``cc`` or
``gcc``; ``-O3 -march=native -ffast-math -fopenmp-simd``, so that glibc's vector ``logf``,
``cosf`` and ``atanf`` are used) into ``$XDG_CACHE_HOME/dafilters`` (default ``~/.cache``), and
loaded with :mod:`ctypes`. Without a compiler, or if compiling fails, :func:`load_kernel`
returns ``None`` and EnSF takes its torch path; ``DAFILTERS_ENSF_KERNEL=0`` switches the kernel
off. The samples differ from the torch path's (another noise stream, the same algorithm).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

__all__ = ["C_SOURCE", "load_kernel", "kernel_status", "reference_noise", "kernel_noise",
           "kernel_paired_sde", "segments"]

#: Elements per block of the noise (a Box-Muller pair's cosine in the first half, its sine in
#: the second).
BLOCK = 32
#: Elements per task handed to a thread (a piece of one member's row).
SEGMENT = 2**18
GAMMA = 0x9E3779B97F4A7C15

C_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>

#define HALF 16
#define BLK 32
#define CH 1024
static const uint64_t GAMMA = 0x9e3779b97f4a7c15ULL;

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void block_normals(uint64_t key, int64_t k, int64_t b, float *out) {
    uint64_t base = key + (((uint64_t)k << 40) + (uint64_t)b * HALF + 1) * GAMMA;
    for (int l = 0; l < HALF; l++) {
        uint64_t h = mix64(base + (uint64_t)l * GAMMA);
        float u1 = ((float)(h >> 40) + 0.5f) * 0x1p-24f;
        float u2 = (float)(h & 0xFFFFFF) * 0x1p-24f;
        float r = sqrtf(-2.0f * logf(u1));
        float th = 6.2831853071795864f * u2;
        out[l] = r * cosf(th);
        out[l + HALF] = r * cosf(th - 1.5707963267948966f);
    }
}

void ensf_noise(float *out, int64_t n, int64_t e0, uint64_t key, int64_t k) {
    float tmp[BLK];
    int64_t e = e0, end = e0 + n;
    while (e < end) {
        int64_t b = e / BLK, off = e - b * BLK, m = BLK - off;
        if (m > end - e) m = end - e;
        if (off == 0 && m == BLK) {
            block_normals(key, k, b, out + (e - e0));
        } else {
            block_normals(key, k, b, tmp);
            memcpy(out + (e - e0), tmp + off, (size_t)m * sizeof(float));
        }
        e += m;
    }
}

/* coef: steps x 6 (h, a_x, a_z, decay, a_s, a_xi); clip <= 0: none; rinv NULL: rinv0 */
void ensf_paired_sde(float *Z, const float *X, const float *y, const float *rinv, float rinv0,
                     int64_t n, int64_t e0, const float *coef, int64_t steps, uint64_t key,
                     int arctan, float clip) {
    float xi[CH];
    for (int64_t c0 = 0; c0 < n; c0 += CH) {
        int64_t m = n - c0 < CH ? n - c0 : CH;
        float *z = Z + c0;
        const float *x = X + c0, *yy = y + c0, *ri = rinv ? rinv + c0 : 0;
        for (int64_t k = 0; k < steps; k++) {
            const float *c = coef + 6 * k;
            const float h = c[0], ax = c[1], az = c[2], decay = c[3], as = c[4], axi = c[5];
            ensf_noise(xi, m, e0 + c0, key, k);
            if (arctan) {
                for (int64_t j = 0; j < m; j++) {
                    float zj = z[j], r = ri ? ri[j] : rinv0;
                    float s = h * (r * (yy[j] - atanf(zj)) / (1.0f + zj * zj)) + ax * x[j] + az * zj;
                    if (clip > 0) s = fminf(fmaxf(s, -clip), clip);
                    z[j] = decay * zj + as * s + axi * xi[j];
                }
            } else {
                for (int64_t j = 0; j < m; j++) {
                    float zj = z[j], r = ri ? ri[j] : rinv0;
                    float s = h * (r * (yy[j] - zj)) + ax * x[j] + az * zj;
                    if (clip > 0) s = fminf(fmaxf(s, -clip), clip);
                    z[j] = decay * zj + as * s + axi * xi[j];
                }
            }
        }
    }
}
"""

FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-fPIC"]
#: 512-bit vectors where the processor has them (gcc prefers 256-bit ones for some AVX-512
#: processors; with those the kernel took 25% more CPU on the machine of benchmarks/README.md,
#: whose default is 512). x86 only.
X86_FLAGS = ["-mprefer-vector-width=512"]

_LOCK = threading.Lock()
_STATE: dict = {}


def _cpu_signature() -> str:
    """The processor's identity and instruction-set flags (``-march=native`` code is only valid
    on such a processor)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() or platform.machine()


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dafilters"


def _private(path: Path) -> bool:
    """Whether ``path`` exists and neither it nor its folder can be changed by anybody but this
    process's user (owned by the user, not writable by group or others). A cached library is
    loaded only then: loading it runs its code, so a file another user could have replaced is
    never loaded (the kernel is compiled into a fresh private folder instead)."""
    if not hasattr(os, "getuid"):
        return False
    try:
        for p in (path, path.parent):
            st = p.stat()
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True


def _compile(compiler: str) -> Path:
    """Compile :data:`C_SOURCE` into the cache (once per source, flags, compiler and processor;
    written to a temporary name and renamed, so concurrent processes never load half a file)."""
    flags = FLAGS + (X86_FLAGS if platform.machine().lower() in ("x86_64", "amd64") else [])
    tag = hashlib.sha256("\0".join([C_SOURCE, " ".join(flags), compiler, _cpu_signature()])
                         .encode()).hexdigest()[:16]
    target = _cache_dir() / f"ensf_kernel_{tag}.so"
    if _private(target):
        return target
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        pass
    if not _private(target.parent):  # another user could swap the library: build a private copy
        target = Path(tempfile.mkdtemp(prefix="dafilters-ensf-")) / target.name
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, obj, lib = (Path(tmp) / f"ensf_kernel.{ext}" for ext in ("c", "o", "so"))
        src.write_text(C_SOURCE)
        # compiled and linked apart: linking with -ffast-math would add gcc's crtfastmath, which
        # sets flush-to-zero for the whole process when the library loads
        for cmd in ([compiler, *flags, "-c", str(src), "-o", str(obj)],
                    [compiler, "-shared", str(obj), "-o", str(lib), "-lm", "-lmvec"]):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if out.returncode != 0 and "-lmvec" in cmd:  # no glibc vector maths: scalar calls
                out = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                raise RuntimeError(f"{compiler} failed: {out.stderr.strip()[-500:]}")
        os.replace(lib, target)
    return target


def load_kernel() -> ctypes.CDLL | None:
    """The compiled kernel (compiled on first use and cached on disk), or ``None`` where it is
    switched off (``DAFILTERS_ENSF_KERNEL=0``), there is no C compiler or compiling failed
    (:func:`kernel_status` says why)."""
    with _LOCK:
        if "lib" in _STATE:
            return _STATE["lib"]
        lib, why = None, "loaded"
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if os.environ.get("DAFILTERS_ENSF_KERNEL", "1") == "0":
            why = "switched off by DAFILTERS_ENSF_KERNEL=0"
        elif platform.system() == "Windows" or not compiler:
            why = "no C compiler found (CC, cc, gcc)"
        else:
            try:
                lib = ctypes.CDLL(str(_compile(compiler)))
                P, I64 = ctypes.c_void_p, ctypes.c_int64
                lib.ensf_noise.argtypes = [P, I64, I64, ctypes.c_uint64, I64]
                lib.ensf_noise.restype = None
                lib.ensf_paired_sde.argtypes = [P, P, P, P, ctypes.c_float, I64, I64, P, I64,
                                                ctypes.c_uint64, ctypes.c_int, ctypes.c_float]
                lib.ensf_paired_sde.restype = None
            except (OSError, RuntimeError, subprocess.SubprocessError) as err:
                lib, why = None, f"not compiled: {err}"
        _STATE.update(lib=lib, why=why)
        return lib


def kernel_status() -> str:
    """Why :func:`load_kernel` gave what it gave (``'loaded'`` when it works)."""
    load_kernel()
    return _STATE["why"]


def _mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output function on int64 tensors (uint64 arithmetic in two's complement)."""
    def srl(v: torch.Tensor, s: int) -> torch.Tensor:  # logical right shift
        return (v >> s) & ((1 << (64 - s)) - 1)

    def signed(c: int) -> int:
        return c - (1 << 64) if c >= 1 << 63 else c

    z = (z ^ srl(z, 30)) * signed(0xBF58476D1CE4E5B9)
    z = (z ^ srl(z, 27)) * signed(0x94D049BB133111EB)
    return z ^ srl(z, 31)


def reference_noise(n: int, e0: int, key: int, step: int) -> torch.Tensor:
    """The kernel's noise for elements ``e0 .. e0 + n - 1`` at reverse step ``step``, computed
    in torch (float64 transform; the kernel's float32 one agrees to a few units in the last
    place). Returns ``(n,)`` float64."""
    e = torch.arange(e0, e0 + n, dtype=torch.int64)
    p = (e // BLOCK) * (BLOCK // 2) + e % (BLOCK // 2)
    g = GAMMA - (1 << 64)
    h = _mix64((key - (1 << 64) if key >= 1 << 63 else key) + ((step << 40) + p + 1) * g)
    u1 = (((h >> 40) & 0xFFFFFF).double() + 0.5) * 2.0**-24
    u2 = (h & 0xFFFFFF).double() * 2.0**-24
    theta = 2 * math.pi * u2 - (e % BLOCK >= BLOCK // 2).double() * (math.pi / 2)
    return torch.sqrt(-2 * torch.log(u1)) * torch.cos(theta)


def kernel_noise(lib: ctypes.CDLL, n: int, e0: int, key: int, step: int) -> torch.Tensor:
    """The kernel's own noise for elements ``e0 .. e0 + n - 1`` at step ``step`` ``(n,)``
    float32."""
    out = torch.empty(n, dtype=torch.float32)
    lib.ensf_noise(out.data_ptr(), n, e0, key, step)
    return out


def segments(N: int, Nx: int, size: int = SEGMENT) -> list[tuple[int, int]]:
    """``(start, stop)`` flat indices of the pieces of an ``(N, Nx)`` array handed to threads:
    each member's row cut at multiples of ``size`` (a multiple of :data:`BLOCK`). Fixed by
    ``(N, Nx)``, never by the number of threads."""
    return [(r * Nx + a, r * Nx + min(a + size, Nx)) for r in range(N) for a in range(0, Nx, size)]


def kernel_paired_sde(lib: ctypes.CDLL, Z: torch.Tensor, X: torch.Tensor, y: torch.Tensor,
                      rinv: torch.Tensor | float, arctan: bool, coeffs: torch.Tensor,
                      clip: float | None, key: int, threads: int = 1) -> None:
    """All reverse SDE steps on ``Z`` in place with the C kernel (see the module docstring).

    Args:
        lib: :func:`load_kernel`'s library. Z, X: samples and forecast members ``(N, Nx)``
            float32, contiguous. y, rinv: observations and inverse error variances ``(Nx,)``
            float32 (``rinv`` may be one float). arctan: ``y = arctan(x) + noise`` (else the
            identity). coeffs: ``(steps, 6)`` float32, per step ``(h, a_x, a_z, decay, a_s,
            a_xi)`` as :func:`~dafilters.filters.ensf.step_coefficients` gives them.
            clip: bound on the score (``None``: none). key: the noise stream's key (64 bits).
            threads: threads sharing the :func:`segments` (the samples do not depend on it).
    """
    for t in (Z, X, y, coeffs) + ((rinv,) if isinstance(rinv, torch.Tensor) else ()):
        if t.dtype != torch.float32 or not t.is_contiguous() or t.device.type != "cpu":
            raise ValueError("the EnSF kernel takes contiguous float32 CPU tensors")
    N, Nx = Z.shape
    steps = coeffs.shape[0]
    c_clip = float(clip) if clip is not None and math.isfinite(clip) else -1.0
    r_ptr, r0 = (rinv.data_ptr(), 0.0) if isinstance(rinv, torch.Tensor) else (None, float(rinv))
    zp, xp, yp, cp = Z.data_ptr(), X.data_ptr(), y.data_ptr(), coeffs.data_ptr()

    segs = segments(N, Nx)
    todo = iter(segs)  # handed out one at a time (a thread slowed by other work takes fewer)
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                a, b = next(todo, (None, None))
            if a is None:
                return
            col = a % Nx
            lib.ensf_paired_sde(zp + 4 * a, xp + 4 * a, yp + 4 * col,
                                None if r_ptr is None else r_ptr + 4 * col, r0, b - a, a, cp,
                                steps, key, int(arctan), c_clip)

    workers = [threading.Thread(target=run) for _ in range(1, max(1, min(threads, len(segs))))]
    for w in workers:
        w.start()
    run()
    for w in workers:
        w.join()
