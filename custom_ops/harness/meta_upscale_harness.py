"""Standalone test and timing harness for the meta-upscale CUDA kernels (no TensorFlow).

For a GPU machine with nvcc, PyTorch (device buffers, timing baseline) and NumPy, but no
TensorFlow. It builds ``meta_upscale_gpu.cu.cc`` with nvcc (``make -C custom_ops/harness``), calls
its extern "C" launchers through ctypes on torch CUDA buffers, and checks them against a NumPy
float64 reference (:func:`reference_forward`, :func:`reference_backward`, which the TF test suite
also checks against the op's pure-TF twin).

    python custom_ops/harness/meta_upscale_harness.py check           # forward + backward, all dtypes
    python custom_ops/harness/meta_upscale_harness.py time            # vs torch im2col+bmm and naive
    python custom_ops/harness/meta_upscale_harness.py time --out 1080 1920 --scale 2.5 --batch 1

Without a GPU, ``emulate`` runs the same checks on the CPU: the same kernel source compiled with
g++ against ``cuda_emulation.h`` (blocks in turn, threads as fibers meeting at __syncthreads),
on NumPy buffers (a few minutes for every case and dtype; ``--cases 0 1 --dtypes float32``
for a quick one). It proves indexing, shared-memory layout and the reduction modes, not speed
or races. The NumPy side imports without a GPU (``import custom_ops.harness.meta_upscale_harness``).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import itertools
import json
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIBRARY = os.path.join(ROOT, "custom_ops", "build", "harness", "libtfsr_meta_upscale.so")
EMULATED_LIBRARY = os.path.join(
    ROOT, "custom_ops", "build", "harness", "libtfsr_meta_upscale_emulated.so"
)

DTYPE_CODES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}
# TfsrForwardVariant (meta_upscale_gpu.h).
FORWARD_VARIANTS = {"auto": 0, "tiled": 1, "phase": 2, "naive": 3}
# Output sizes (rows, cols) timed by default: 135p to 4K.
OUTPUT_SIZES = ((135, 240), (540, 960), (1080, 1920), (2160, 3840))
# Tolerances vs the float64 reference, relative to the largest |reference| value.
TOLERANCE = {"float32": 1e-5, "float64": 1e-12, "float16": 4e-3, "bfloat16": 3e-2}


# ---------------------------------------------------------------------------------------------
# NumPy reference (float64, per-pixel weights materialised: small shapes only).


def _window_index(source: np.ndarray, k: int, size: int) -> np.ndarray:
    """(out, k) indices into an array padded with one zero entry at 0 (0 = outside)."""
    pos = source[:, None] + np.arange(k) - k // 2
    return np.where((pos >= 0) & (pos < size), pos + 1, 0)


def _patches(x, source_v, source_h, k):
    xp = np.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0)))
    ri = _window_index(source_v, k, x.shape[1])  # (H_out, k)
    ci = _window_index(source_h, k, x.shape[2])  # (W_out, k)
    return xp[:, ri][:, :, :, ci], ri, ci  # (N, H_out, k, W_out, k, C_in)


def reference_forward(x, weights, source_v, phase_v, source_h, phase_h) -> np.ndarray:
    """out[n,i,j,o] = sum x[n, s_v(i)+a-k//2, s_h(j)+b-k//2, c] w[p_v(i), p_h(j), a, b, c, o]."""
    x = np.asarray(x, np.float64)
    weights = np.asarray(weights, np.float64)
    k = weights.shape[2]
    patches, _, _ = _patches(x, source_v, source_h, k)
    per_pixel = weights[phase_v][:, phase_h]  # (H_out, W_out, k, k, C_in, C_out)
    return np.einsum("niajbc,ijabco->nijo", patches, per_pixel)


def reference_backward(x, weights, grad_out, source_v, phase_v, source_h, phase_h):
    """(grad_x, grad_weights) of sum(reference_forward(...) * grad_out)."""
    x = np.asarray(x, np.float64)
    weights = np.asarray(weights, np.float64)
    grad_out = np.asarray(grad_out, np.float64)
    k = weights.shape[2]
    patches, ri, ci = _patches(x, source_v, source_h, k)
    per_pixel = weights[phase_v][:, phase_h]
    grad_patches = np.einsum("nijo,ijabco->niajbc", grad_out, per_pixel)
    n, h, w, c = x.shape
    grad_xp = np.zeros((n, h + 1, w + 1, c))
    rows = ri[:, :, None, None]  # (H_out, k, 1, 1)
    cols = ci[None, None, :, :]  # (1, 1, W_out, k)
    np.add.at(grad_xp, (slice(None), rows, cols), grad_patches)  # (N, H_out, k, W_out, k, C_in)
    grad_per_pixel = np.einsum("niajbc,nijo->ijabco", patches, grad_out)
    grad_w = np.zeros_like(weights)
    np.add.at(grad_w, (phase_v[:, None], phase_h[None, :]), grad_per_pixel)
    return grad_xp[:, 1:, 1:, :], grad_w


# ---------------------------------------------------------------------------------------------
# ctypes binding.


class Axis(ctypes.Structure):
    _fields_ = [
        ("in_size", ctypes.c_int64),
        ("out_size", ctypes.c_int64),
        ("period", ctypes.c_int64),
        ("weight_period", ctypes.c_int64),
        ("step", ctypes.c_int64),
        ("scale", ctypes.c_double),
    ]


class Geometry(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_int64)
        for name in ("batch", "in_h", "in_w", "in_c", "out_c", "kernel", "out_h", "out_w")
    ] + [("rows", Axis), ("cols", Axis)]


def build(arch: str = "native") -> str:
    """The harness library built with nvcc (custom_ops/harness/Makefile) for `arch`."""
    subprocess.run(["make", "-C", HERE, f"ARCH={arch}"], check=True)
    return LIBRARY


def build_emulated() -> str:
    """The kernels compiled for the CPU (cuda_emulation.h): a check without a GPU."""
    src = os.path.join(ROOT, "custom_ops", "cc", "kernels", "meta_upscale_gpu.cu.cc")
    with open(src) as f:
        code = f.read()
    code = re.sub(r"#include <cuda\w*\.h>\n", "", code)
    code = code.replace(
        "extern __shared__ __align__(16) unsigned char smem_raw[];",
        "unsigned char* smem_raw = tfsr_emu_dynamic_smem.data();",
    )

    def launch(m):  # name<<<grid, block, smem, stream>>>(args); -> TfsrEmuLaunch(...)
        config = _split_top_level(m.group(2))[:3]
        return f"TfsrEmuLaunch({', '.join(config)}, [&]() {{ {m.group(1)}({m.group(3)}); }});"

    code = re.sub(r"(\w+<[\w, ]+>)\s*<<<(.*?)>>>\((.*?)\);", launch, code, flags=re.S)
    if "<<<" in code:
        raise RuntimeError("a kernel launch was not translated for the emulation")
    out_dir = os.path.dirname(EMULATED_LIBRARY)
    os.makedirs(out_dir, exist_ok=True)
    unit = os.path.join(out_dir, "meta_upscale_gpu_emulated.cc")
    with open(unit, "w") as f:
        f.write('#include "custom_ops/harness/cuda_emulation.h"\n#define GOOGLE_CUDA 1\n' + code)
    cmd = ["g++", "-std=c++20", "-O1", "-g", "-shared", "-fPIC", f"-I{ROOT}"]
    subprocess.run([*cmd, unit, "-o", EMULATED_LIBRARY], check=True)
    return EMULATED_LIBRARY


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "(<[":
            depth += 1
        elif ch in ")>]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [*parts, current.strip()]


def load(path: str = LIBRARY) -> ctypes.CDLL:
    """The harness (or emulated) library with the launchers' signatures declared."""
    lib = ctypes.CDLL(path)
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    g = ctypes.POINTER(Geometry)
    lib.TfsrMetaUpscaleForwardGpu.argtypes = [g, i32, p, p, p, p]
    lib.TfsrMetaUpscaleForwardNaiveGpu.argtypes = [g, i32, p, p, p, p]
    lib.TfsrMetaUpscaleForwardVariantGpu.argtypes = [g, i32, i32, p, p, p, p]
    lib.TfsrMetaUpscaleGradWorkspaceBytes.argtypes = [g, i32, i32]
    lib.TfsrMetaUpscaleGradWorkspaceBytes.restype = ctypes.c_size_t
    lib.TfsrMetaUpscaleGradGpu.argtypes = [g, i32, i32, p, p, p, p, p, p, p]
    lib.TfsrMetaUpscaleGradPartsGpu.argtypes = [g, i32, i32, i32, p, p, p, p, p, p, p]
    lib.TfsrMetaUpscaleErrorString.restype = ctypes.c_char_p
    double = ctypes.c_double
    lib.TfsrMetaUpscaleMakeGeometry.argtypes = [i64] * 4 + [double] * 2 + [i64] * 6 + [g, p, i32]
    lib.TfsrMetaUpscaleAxisTables.argtypes = [ctypes.POINTER(Axis), p, p]
    lib.TfsrMetaUpscaleAxisTables.restype = None
    return lib


def make_geometry(lib, x_shape, scale_v, scale_h, out=(-1, -1), per_pixel=False, k=3, out_c=3):
    """Checked geometry from the C++ rule: phase tables of the rule's period, or per-pixel."""
    n, h, w, c = x_shape
    g = Geometry()
    err = ctypes.create_string_buffer(512)
    periods = (-1, -1) if per_pixel else (0, 0)
    rc = lib.TfsrMetaUpscaleMakeGeometry(
        n, h, w, c, scale_v, scale_h, out[0], out[1], *periods, k, out_c, g, err, 512
    )
    if rc != 0:
        raise ValueError(err.value.decode())
    return g


def axis_tables(lib, axis: Axis):
    source = np.zeros(axis.out_size, np.int64)
    phase = np.zeros(axis.out_size, np.int64)
    lib.TfsrMetaUpscaleAxisTables(
        ctypes.byref(axis),
        source.ctypes.data_as(ctypes.c_void_p),
        phase.ctypes.data_as(ctypes.c_void_p),
    )
    return source, phase


# ---------------------------------------------------------------------------------------------
# Running the launchers: on a GPU with torch buffers, or on host memory (the CPU emulation).


def _torch():
    import torch  # noqa: PLC0415 - GPU machine only

    return torch


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _f32_to_bf16(values: np.ndarray) -> np.ndarray:
    u = np.ascontiguousarray(values, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even


class TorchBackend:
    """Device buffers as torch CUDA tensors; the launches go to torch's current stream."""

    def __init__(self):
        self.torch = _torch()
        t = self.torch
        self.dtypes = {
            "float32": t.float32,
            "float64": t.float64,
            "float16": t.float16,
            "bfloat16": t.bfloat16,
        }

    def array(self, values: np.ndarray, dtype: str):
        return self.torch.tensor(values, device="cuda").to(self.dtypes[dtype])

    def empty(self, shape, dtype: str):
        return self.torch.empty(tuple(shape), dtype=self.dtypes[dtype], device="cuda")

    def workspace(self, nbytes: int):
        return self.torch.empty(max(nbytes, 1), dtype=self.torch.uint8, device="cuda")

    def ptr(self, a) -> int:
        return a.data_ptr()

    def numpy(self, a) -> np.ndarray:
        return a.double().cpu().numpy()

    def stream(self):
        return ctypes.c_void_p(self.torch.cuda.current_stream().cuda_stream)

    def equal(self, a, b) -> bool:
        return bool(self.torch.equal(a, b))

    def synchronize(self):
        self.torch.cuda.synchronize()


class HostBackend:
    """Host NumPy buffers, for the CPU emulation of the kernels (bfloat16 stored as uint16)."""

    storage = {"float32": np.float32, "float64": np.float64, "float16": np.float16}

    def array(self, values: np.ndarray, dtype: str):
        if dtype == "bfloat16":
            return _f32_to_bf16(values)
        return np.ascontiguousarray(values, self.storage[dtype])

    def empty(self, shape, dtype: str):
        return np.full(
            tuple(shape),
            0xFFFF if dtype == "bfloat16" else np.nan,
            np.uint16 if dtype == "bfloat16" else self.storage[dtype],
        )

    def workspace(self, nbytes: int):
        return np.zeros(max(nbytes, 1), np.uint8)

    def ptr(self, a) -> int:
        return a.ctypes.data

    def numpy(self, a) -> np.ndarray:
        return (_bf16_to_f32(a) if a.dtype == np.uint16 else a).astype(np.float64)

    def stream(self):
        return ctypes.c_void_p(None)

    def equal(self, a, b) -> bool:
        return bool(np.array_equal(a, b, equal_nan=True))

    def synchronize(self):
        pass


def _check(lib, rc):
    if rc != 0:
        raise RuntimeError(f"CUDA error {rc}: {lib.TfsrMetaUpscaleErrorString(rc).decode()}")


def run_forward(lib, backend, g, x, w, dtype, variant="auto", out=None):
    """The forward launcher with one of FORWARD_VARIANTS (into `out` when given)."""
    if out is None:
        out = backend.empty((g.batch, g.out_h, g.out_w, g.out_c), dtype)
    p = backend.ptr
    rc = lib.TfsrMetaUpscaleForwardVariantGpu(
        ctypes.byref(g),
        DTYPE_CODES[dtype],
        FORWARD_VARIANTS[variant],
        p(x),
        p(w),
        p(out),
        backend.stream(),
    )
    _check(lib, rc)
    return out


GRAD_PARTS = {"grad_x": 1, "grad_w": 2, "both": 3}  # TfsrGradPart (meta_upscale_gpu.h)


def run_backward(lib, backend, g, x, w, grad_out, dtype, deterministic, parts="both"):
    """(grad_x, grad_w); with `parts` one of them only (the other is left unwritten)."""
    gx = backend.empty((g.batch, g.in_h, g.in_w, g.in_c), dtype)
    gw = backend.empty(
        (g.rows.weight_period, g.cols.weight_period, g.kernel, g.kernel, g.in_c, g.out_c), dtype
    )
    nbytes = lib.TfsrMetaUpscaleGradWorkspaceBytes(
        ctypes.byref(g), DTYPE_CODES[dtype], int(deterministic)
    )
    ws = backend.workspace(nbytes)
    p = backend.ptr
    rc = lib.TfsrMetaUpscaleGradPartsGpu(
        ctypes.byref(g),
        DTYPE_CODES[dtype],
        int(deterministic),
        GRAD_PARTS[parts],
        p(grad_out),
        p(x),
        p(w),
        p(gx),
        p(gw),
        p(ws),
        backend.stream(),
    )
    _check(lib, rc)
    return gx, gw


def _rel_err(got, ref):
    if not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


CHECK_CASES = [
    # (N, H, W, C_in, C_out, k, scale_v, scale_h, out, per_pixel)
    (1, 5, 6, 3, 3, 3, 2.0, 2.0, (-1, -1), False),
    (2, 7, 9, 16, 3, 3, 2.5, 2.5, (-1, -1), False),
    (1, 10, 10, 8, 1, 3, 1.3, 1.3, (-1, -1), False),
    (2, 6, 11, 5, 7, 5, 3.7, 1.5, (-1, -1), False),
    (1, 9, 7, 64, 3, 3, 4.0, 4.0, (-1, -1), False),
    (1, 8, 8, 4, 3, 3, np.pi, 2.0, (-1, -1), False),
    (1, 6, 6, 4, 2, 3, 2.5, 2.5, (17, 13), False),  # explicit size beyond the default
    (1, 4, 5, 6, 3, 3, 2.0, 3.0, (-1, -1), True),  # per-pixel weights
    (3, 12, 10, 20, 5, 1, 1.0, 1.0, (-1, -1), False),
    (1, 40, 33, 32, 3, 3, 0.5, 0.75, (-1, -1), False),  # downscaling
    (2, 20, 30, 64, 12, 3, 8.0, 2.5, (-1, -1), False),
    (1, 3, 3, 300, 2, 7, 1.5, 1.5, (-1, -1), False),  # large patch: direct grad_w kernel
    (1, 2, 40, 2, 2, 3, 1.0, 0.3, (-1, -1), False),  # strong downscaling: wide tiles, naive path
    # grad_w staging 16 pixels of 85 * 9 + 3 floats would need exactly 48 KB of dynamic shared
    # memory, too much beside the kernel's static arrays.
    (1, 5, 5, 85, 3, 3, 2.0, 2.0, (-1, -1), False),
    # Phase-major forward: 1,440 pixels per phase pair, several blocks each.
    (1, 40, 36, 8, 3, 3, 2.0, 2.0, (-1, -1), False),
    # Phase-major forward with (nearly) all of the shared memory: one chunk of 340 channels.
    (1, 6, 7, 344, 2, 3, 2.5, 2.5, (-1, -1), False),
]


def check(lib, backend, dtypes=tuple(DTYPE_CODES), cases=CHECK_CASES, seed=0) -> bool:
    """Every launcher on every case and dtype vs the NumPy reference; prints one line each."""
    rng = np.random.default_rng(seed)
    ok = True
    for case, dtype in itertools.product(cases, dtypes):
        n, h, w, ci, co, k, sv, sh, out, per_pixel = case
        g = make_geometry(lib, (n, h, w, ci), sv, sh, out, per_pixel, k, co)
        src_v, ph_v = axis_tables(lib, g.rows)
        src_h, ph_h = axis_tables(lib, g.cols)
        x = backend.array(rng.standard_normal((n, h, w, ci)), dtype)
        wt = backend.array(
            rng.standard_normal((g.rows.weight_period, g.cols.weight_period, k, k, ci, co)), dtype
        )
        go = backend.array(rng.standard_normal((n, g.out_h, g.out_w, co)), dtype)
        # The reference sees the inputs as rounded to the storage type.
        x64, w64, go64 = (backend.numpy(a) for a in (x, wt, go))
        ref = reference_forward(x64, w64, src_v, ph_v, src_h, ph_h)
        ref_gx, ref_gw = reference_backward(x64, w64, go64, src_v, ph_v, src_h, ph_h)
        results = {
            ("forward" if variant == "auto" else f"forward_{variant}"): _rel_err(
                backend.numpy(run_forward(lib, backend, g, x, wt, dtype, variant)), ref
            )
            for variant in FORWARD_VARIANTS
        }
        mismatch = False
        for det in (False, True):
            gx, gw = run_backward(lib, backend, g, x, wt, go, dtype, det)
            suffix = "_det" if det else ""
            results["grad_x" + suffix] = _rel_err(backend.numpy(gx), ref_gx)
            results["grad_w" + suffix] = _rel_err(backend.numpy(gw), ref_gw)
            if det:  # repeatable, and each half alone gives the same values
                gx2, gw2 = run_backward(lib, backend, g, x, wt, go, dtype, True)
                gx3, _ = run_backward(lib, backend, g, x, wt, go, dtype, True, "grad_x")
                _, gw3 = run_backward(lib, backend, g, x, wt, go, dtype, True, "grad_w")
                mismatch = not all(
                    backend.equal(a, b) for a, b in ((gx, gx2), (gw, gw2), (gx, gx3), (gw, gw3))
                )
        backend.synchronize()
        # Half types summing many terms: allow more.
        tol = TOLERANCE[dtype] * (
            10 if dtype in ("float16", "bfloat16") and ci * k * k > 500 else 1
        )
        worst = max(results.values())
        passed = worst <= tol and not mismatch
        ok &= passed
        print(
            f"{'ok  ' if passed else 'FAIL'} {dtype:8s} N{n} {h}x{w}x{ci}->{g.out_h}x{g.out_w}x{co} "
            f"k{k} r=({sv:.4g},{sh:.4g}) P=({g.rows.weight_period},{g.cols.weight_period}) "
            + " ".join(f"{key}={v:.2g}" for key, v in results.items())
            + (" DETERMINISTIC OR SPLIT RUNS DIFFER" if mismatch else ""),
            flush=True,
        )
    return ok


# ---------------------------------------------------------------------------------------------
# Timing.


def torch_im2col_bmm(x, w_phase, src_v, ph_v, src_h, ph_h):
    """The published approach: per-pixel filters (H_out*W_out, k*k*C_in, C_out) and bmm."""
    torch = _torch()
    n, h, wd, c = x.shape
    k = w_phase.shape[2]
    xp = torch.nn.functional.pad(x, (0, 0, 1, 0, 1, 0))
    ri = torch.as_tensor(_window_index(src_v, k, h), device=x.device)
    ci = torch.as_tensor(_window_index(src_h, k, wd), device=x.device)
    patches = xp[:, ri][:, :, :, ci]  # (N, H_out, k, W_out, k, C)
    ho, wo = len(src_v), len(src_h)
    patches = patches.permute(1, 3, 0, 2, 4, 5).reshape(ho * wo, n, k * k * c)
    pv = torch.as_tensor(ph_v, device=x.device)
    ph = torch.as_tensor(ph_h, device=x.device)
    per_pixel = w_phase[pv][:, ph].reshape(ho * wo, k * k * c, -1)
    out = torch.bmm(patches, per_pixel)  # (H_out*W_out, N, C_out)
    return out.reshape(ho, wo, n, -1).permute(2, 0, 1, 3)


def _time_ms(fn, repeats=20, warmup=3):
    torch = _torch()
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def time_cases(lib, out_sizes, scales, batch, ci, co, k, dtype, with_torch=True, peak_tflops=None):
    """One row per output size and scale: ours (forward, backward, deterministic backward), the
    naive kernel and torch's im2col + bmm, in milliseconds (median of CUDA-event timings), and
    achieved TFLOP/s, as a fraction of `peak_tflops` when given."""
    backend = TorchBackend()
    torch = backend.torch
    tdt = backend.dtypes[dtype]
    rows = []
    for (ho, wo), scale in itertools.product(out_sizes, scales):
        h, w = int(np.ceil(ho / scale)), int(np.ceil(wo / scale))
        g = make_geometry(lib, (batch, h, w, ci), scale, scale, (ho, wo), False, k, co)
        src_v, ph_v = axis_tables(lib, g.rows)
        src_h, ph_h = axis_tables(lib, g.cols)
        x = torch.randn(batch, h, w, ci, device="cuda", dtype=tdt)
        wt = torch.randn(
            g.rows.weight_period, g.cols.weight_period, k, k, ci, co, device="cuda", dtype=tdt
        )
        go = torch.randn(batch, ho, wo, co, device="cuda", dtype=tdt)
        row = {"out": f"{ho}x{wo}", "scale": scale, "P": g.rows.weight_period}
        out = backend.empty((batch, ho, wo, co), dtype)  # allocated outside the timings
        fwd = functools.partial(run_forward, lib, backend, g, x, wt, dtype, out=out)
        for variant in FORWARD_VARIANTS:  # every kernel warm before the first timing
            fwd(variant=variant)
        row["ours_fwd_ms"] = _time_ms(fwd)
        row["tiled_fwd_ms"] = _time_ms(functools.partial(fwd, variant="tiled"))
        row["phase_fwd_ms"] = _time_ms(functools.partial(fwd, variant="phase"))
        row["naive_fwd_ms"] = _time_ms(functools.partial(fwd, variant="naive"), repeats=5)
        row["naive_speedup"] = row["naive_fwd_ms"] / row["ours_fwd_ms"]
        bwd = functools.partial(run_backward, lib, backend, g, x, wt, go, dtype)
        row["ours_bwd_ms"] = _time_ms(functools.partial(bwd, False))
        row["ours_bwd_det_ms"] = _time_ms(functools.partial(bwd, True))
        row["grad_x_ms"] = _time_ms(functools.partial(bwd, False, parts="grad_x"))
        row["grad_w_ms"] = _time_ms(functools.partial(bwd, False, parts="grad_w"))
        # Multiply-adds of the forward pass; the backward pass does twice as many (grad_x, grad_w).
        flops = 2.0 * batch * ho * wo * k * k * ci * co
        row["fwd_tflops"] = flops / row["ours_fwd_ms"] / 1e9
        row["bwd_tflops"] = 2 * flops / row["ours_bwd_ms"] / 1e9
        if peak_tflops:
            row["fwd_peak_fraction"] = row["fwd_tflops"] / peak_tflops
            row["bwd_peak_fraction"] = row["bwd_tflops"] / peak_tflops
        if with_torch:
            baseline = functools.partial(torch_im2col_bmm, x, wt, src_v, ph_v, src_h, ph_h)
            try:
                row["torch_fwd_ms"] = _time_ms(baseline, repeats=5)
                row["torch_speedup"] = row["torch_fwd_ms"] / row["ours_fwd_ms"]
            except torch.cuda.OutOfMemoryError:
                row["torch_fwd_ms"] = "OOM"
            torch.cuda.empty_cache()
        rows.append(row)
        print(
            "  ".join(
                f"{key}={v:.4g}" if isinstance(v, float) else f"{key}={v}" for key, v in row.items()
            )
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the harness library with nvcc")
    p_check = sub.add_parser("check", help="forward and backward vs the NumPy reference")
    p_emulate = sub.add_parser(
        "emulate", help="like check, on the CPU: the kernels built with g++ and cuda_emulation.h"
    )
    for p in (p_check, p_emulate):
        p.add_argument("--dtypes", nargs="+", default=list(DTYPE_CODES))
        p.add_argument("--cases", type=int, nargs="+", help="indices into CHECK_CASES")
    p_time = sub.add_parser("time", help="time ours vs torch im2col+bmm and the naive kernel")
    p_time.add_argument("--out", nargs=2, type=int, action="append", help="H_out W_out (repeat)")
    p_time.add_argument("--scale", type=float, nargs="+", default=[2.0, 2.5, 3.7, 4.0])
    p_time.add_argument("--batch", type=int, default=1)
    p_time.add_argument("--cin", type=int, default=64)
    p_time.add_argument("--cout", type=int, default=3)
    p_time.add_argument("--k", type=int, default=3)
    p_time.add_argument("--dtype", default="float32", choices=list(DTYPE_CODES))
    p_time.add_argument("--no-torch", action="store_true")
    p_time.add_argument(
        "--peak_tflops",
        type=float,
        help="the GPU's peak for --dtype, to report achieved FLOP/s as a fraction of it "
        "(H100 SXM FP32, no tensor cores: 66.9)",
    )
    p_time.add_argument("--json", help="also write the rows (and the GPU's name) to this file")
    for p in (p_check, p_time):
        p.add_argument("--arch", default="native", help="nvcc -arch for the build")
    args = parser.parse_args(argv)
    if args.command == "build":
        build()
        return 0
    if args.command in ("check", "emulate"):
        cases = [CHECK_CASES[i] for i in args.cases] if args.cases else CHECK_CASES
        if args.command == "emulate":
            lib, backend = load(build_emulated()), HostBackend()
        else:
            lib, backend = load(build(args.arch)), TorchBackend()
        return 0 if check(lib, backend, tuple(args.dtypes), cases) else 1
    lib = load(build(args.arch))
    outs = [tuple(o) for o in (args.out or OUTPUT_SIZES)]
    rows = time_cases(
        lib,
        outs,
        args.scale,
        args.batch,
        args.cin,
        args.cout,
        args.k,
        args.dtype,
        not args.no_torch,
        args.peak_tflops,
    )
    if args.json:
        torch = _torch()
        keys = ("batch", "cin", "cout", "k", "dtype", "peak_tflops")
        settings = {key: getattr(args, key) for key in keys}
        record = {"gpu": torch.cuda.get_device_name(), "settings": settings, "rows": rows}
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
