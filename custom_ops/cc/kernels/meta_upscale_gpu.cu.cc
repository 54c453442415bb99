/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// CUDA kernels of the meta-upscale op. Plain CUDA, no TensorFlow headers: the TF GPU functors
// call the extern "C" launchers below, and so does the standalone harness (custom_ops/harness/),
// which is how the kernels are tested and timed on a GPU machine without TensorFlow.
//
// forward   : two kernels, no atomics, each thread computing 2 pixels x 4 output channels.
//             Tiled: output tiles of 16 x 16 pixels; the x window of a tile is staged in shared
//             memory (C_in in chunks, padded to avoid bank conflicts). Phase-major: one block per
//             phase pair, its filters in shared memory. LaunchForward picks phase-major for
//             float32 with C_in a multiple of 4 and for long periods (x3.7: 37 phases per axis,
//             where a tile reads a different filter for each pixel), tiled otherwise.
// grad_x    : gather form, one thread per input value summing the outputs whose window covers
//             it; no atomics.
// grad_w    : one block per (phase pair, 2048 weights, split of the pixels of that phase): pixel
//             patches staged in shared memory, each thread reduces 8 weights over its split.
//             Splits are combined in a fixed order (deterministic) or with atomics.

#if GOOGLE_CUDA

#include "custom_ops/cc/kernels/meta_upscale_gpu.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

namespace tfsr {
namespace gpu {
namespace {

using Geometry = TfsrMetaUpscaleGeometry;
using Axis = TfsrMetaUpscaleAxis;

constexpr int kTile = 16;                          // forward output tile (pixels per side)
constexpr int kThreadsX = 16, kThreadsY = 8;       // forward block; 2 tile rows per thread
constexpr int kOutBlock = 4;                       // forward output channels per thread
constexpr int kGwThreads = 256, kGwPerThread = 8;  // grad_w block and weights per thread
constexpr int kMaxPixelBatch = 16;                 // grad_w pixels staged at once
// A block may use 48 KB of shared memory without opting in (cudaFuncSetAttribute), static
// arrays and the dynamic buffer together: each tiled kernel's dynamic budget is what its static
// index arrays leave.
constexpr int64_t kSmemPerBlock = 48 * 1024;
constexpr int64_t kForwardSmemBudget = kSmemPerBlock - 4 * kTile * int64_t(sizeof(int64_t));
constexpr int64_t kGradWSmemBudget = kSmemPerBlock - 4 * kMaxPixelBatch * int64_t(sizeof(int64_t));
constexpr int64_t kMaxWorkspace = int64_t{256} << 20;
constexpr int64_t kTargetBlocks = 1024;  // grad_w: aim for this many blocks (shape-only rule)
constexpr int kThreads1D = 256;
constexpr int kMaxColumnSpan = 40;  // grad_x: column filter offsets cached per thread

// ---- element types: storage T, arithmetic Acc<T> ----

template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};
template <typename T>
using Acc = typename AccOf<T>::type;

template <typename T>
__device__ __forceinline__ Acc<T> ToAcc(T v) {
  return static_cast<Acc<T>>(v);
}
template <>
__device__ __forceinline__ float ToAcc<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float ToAcc<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T FromAcc(Acc<T> v) {
  return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __half FromAcc<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromAcc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ int64_t Source(const Axis& a, int64_t i) {
  return ::tfsr::MetaUpscaleSource(a, i);
}
__device__ __forceinline__ int64_t Phase(const Axis& a, int64_t i) {
  return ::tfsr::MetaUpscalePhase(a, i);
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

unsigned int Blocks1D(int64_t total) {
  return static_cast<unsigned int>(
      std::max<int64_t>(1, std::min<int64_t>(CeilDiv(total, kThreads1D), 1 << 20)));
}

// ---- forward ----

// Largest source span of a tile of `tile` consecutive outputs, over all tiles of the axis.
int64_t MaxTileSpan(const Axis& a, int64_t tile) {
  int64_t span = 0;
  for (int64_t i0 = 0; i0 < a.out_size; i0 += tile) {
    const int64_t last = std::min(i0 + tile, a.out_size) - 1;
    span = std::max(span, ::tfsr::MetaUpscaleSource(a, last) - ::tfsr::MetaUpscaleSource(a, i0));
  }
  return span;
}

// Shared memory: (region rows) x (region cols) x `chunk` channels, pixel stride `chunk + 1`
// (odd, so that neighbouring threads reading neighbouring pixels hit different banks).
template <typename T>
__global__ void __launch_bounds__(kThreadsX* kThreadsY)
    ForwardTiledKernel(const Geometry g, const T* __restrict__ x, const T* __restrict__ w,
                       T* __restrict__ out, int chunk) {
  using A = Acc<T>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* xs = reinterpret_cast<A*>(smem_raw);
  __shared__ int64_t src_r[kTile], src_c[kTile], ph_r[kTile], ph_c[kTile];

  const int64_t k = g.kernel, half = k / 2, ci = g.in_c, co = g.out_c;
  const int64_t H = g.in_h, W = g.in_w, Ho = g.out_h, Wo = g.out_w;
  const int64_t Ph = g.cols.weight_period;
  const int o_blocks = static_cast<int>((co + kOutBlock - 1) / kOutBlock);
  const int64_t n = blockIdx.z / o_blocks;
  const int64_t o0 = static_cast<int64_t>(blockIdx.z % o_blocks) * kOutBlock;
  const int n_out = static_cast<int>(min(static_cast<int64_t>(kOutBlock), co - o0));
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int tid = threadIdx.y * kThreadsX + threadIdx.x;
  const int nthreads = kThreadsX * kThreadsY;

  if (tid < kTile) {
    const int64_t i = min(i0 + tid, Ho - 1);
    src_r[tid] = Source(g.rows, i);
    ph_r[tid] = Phase(g.rows, i);
  } else if (tid < 2 * kTile) {
    const int t = tid - kTile;
    const int64_t j = min(j0 + t, Wo - 1);
    src_c[t] = Source(g.cols, j);
    ph_c[t] = Phase(g.cols, j);
  }
  __syncthreads();

  const int64_t row0 = src_r[0] - half, col0 = src_c[0] - half;
  const int rh = static_cast<int>(src_r[kTile - 1] - src_r[0] + k);
  const int rw = static_cast<int>(src_c[kTile - 1] - src_c[0] + k);
  const int cstride = chunk > 1 ? chunk + 1 : 1;

  A acc[2][kOutBlock];
#pragma unroll
  for (int p = 0; p < 2; ++p) {
#pragma unroll
    for (int q = 0; q < kOutBlock; ++q) acc[p][q] = A(0);
  }

  for (int64_t c0 = 0; c0 < ci; c0 += chunk) {
    const int cc = static_cast<int>(min(static_cast<int64_t>(chunk), ci - c0));
    const int total = rh * rw * chunk;
    for (int e = tid; e < total; e += nthreads) {
      const int c = e % chunk;
      const int pix = e / chunk;
      const int64_t r = row0 + pix / rw, col = col0 + pix % rw;
      A v = A(0);
      if (c < cc && r >= 0 && r < H && col >= 0 && col < W) {
        v = ToAcc<T>(x[((n * H + r) * W + col) * ci + c0 + c]);
      }
      xs[pix * cstride + c] = v;
    }
    __syncthreads();

#pragma unroll
    for (int p = 0; p < 2; ++p) {
      const int ti = threadIdx.y + p * kThreadsY;
      const int tj = threadIdx.x;
      if (i0 + ti < Ho && j0 + tj < Wo) {
        const int rl0 = static_cast<int>(src_r[ti] - src_r[0]);
        const int cl0 = static_cast<int>(src_c[tj] - src_c[0]);
        const T* wp = w + ((ph_r[ti] * Ph + ph_c[tj]) * k * k * ci + c0) * co + o0;
        for (int a = 0; a < k; ++a) {
          for (int b = 0; b < k; ++b) {
            const A* xr = xs + ((rl0 + a) * rw + cl0 + b) * cstride;
            const T* wab = wp + (a * k + b) * ci * co;
            for (int c = 0; c < cc; ++c) {
              const A xv = xr[c];
              const T* wc = wab + c * co;
#pragma unroll
              for (int q = 0; q < kOutBlock; ++q) {
                if (q < n_out) acc[p][q] += xv * ToAcc<T>(wc[q]);
              }
            }
          }
        }
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int p = 0; p < 2; ++p) {
    const int64_t i = i0 + threadIdx.y + p * kThreadsY;
    const int64_t j = j0 + threadIdx.x;
    if (i < Ho && j < Wo) {
      T* o = out + ((n * Ho + i) * Wo + j) * co + o0;
#pragma unroll
      for (int q = 0; q < kOutBlock; ++q) {
        if (q < n_out) o[q] = FromAcc<T>(acc[p][q]);
      }
    }
  }
}

// One thread per output pixel, all reads from global memory (fallback and timing reference).
template <typename T>
__global__ void ForwardNaiveKernel(const Geometry g, const T* __restrict__ x,
                                   const T* __restrict__ w, T* __restrict__ out) {
  using A = Acc<T>;
  const int64_t k = g.kernel, half = k / 2, ci = g.in_c, co = g.out_c;
  const int64_t H = g.in_h, W = g.in_w, Ho = g.out_h, Wo = g.out_w;
  const int64_t Ph = g.cols.weight_period;
  const int64_t total = g.batch * Ho * Wo;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = t % Wo, i = (t / Wo) % Ho, n = t / (Wo * Ho);
    const int64_t sv = Source(g.rows, i), sh = Source(g.cols, j);
    const T* wp = w + (Phase(g.rows, i) * Ph + Phase(g.cols, j)) * k * k * ci * co;
    for (int64_t o = 0; o < co; ++o) {
      A acc = A(0);
      for (int64_t a = 0; a < k; ++a) {
        const int64_t r = sv + a - half;
        if (r < 0 || r >= H) continue;
        for (int64_t b = 0; b < k; ++b) {
          const int64_t col = sh + b - half;
          if (col < 0 || col >= W) continue;
          const T* xp = x + ((n * H + r) * W + col) * ci;
          const T* wab = wp + (a * k + b) * ci * co + o;
          for (int64_t c = 0; c < ci; ++c) acc += ToAcc<T>(xp[c]) * ToAcc<T>(wab[c * co]);
        }
      }
      out[t * co + o] = FromAcc<T>(acc);
    }
  }
}

template <typename T>
int LaunchForwardNaive(const Geometry& g, const T* x, const T* w, T* out, cudaStream_t stream) {
  const int64_t total = g.batch * g.out_h * g.out_w;
  if (total == 0) return 0;
  ForwardNaiveKernel<T><<<Blocks1D(total), kThreads1D, 0, stream>>>(g, x, w, out);
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int LaunchForwardTiled(const Geometry& g, const T* x, const T* w, T* out, cudaStream_t stream) {
  using A = Acc<T>;
  if (g.batch * g.out_h * g.out_w == 0) return 0;
  const int64_t rh = MaxTileSpan(g.rows, kTile) + g.kernel;
  const int64_t rw = MaxTileSpan(g.cols, kTile) + g.kernel;
  int64_t chunk = 16;
  while (chunk > 1 && chunk / 2 >= g.in_c) chunk /= 2;  // no wider than C_in needs
  auto smem = [&](int64_t c) { return rh * rw * (c > 1 ? c + 1 : 1) * int64_t(sizeof(A)); };
  while (chunk > 1 && smem(chunk) > kForwardSmemBudget) chunk /= 2;
  const int64_t o_blocks = CeilDiv(g.out_c, kOutBlock);
  const int64_t grid_x = CeilDiv(g.out_w, kTile), grid_y = CeilDiv(g.out_h, kTile);
  const int64_t grid_z = g.batch * o_blocks;
  if (smem(chunk) > kForwardSmemBudget || grid_y > 65535 || grid_z > 65535 || grid_x > 0x7fffffff) {
    return LaunchForwardNaive(g, x, w, out, stream);
  }
  const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y),
                  static_cast<unsigned>(grid_z));
  const dim3 block(kThreadsX, kThreadsY);
  ForwardTiledKernel<T><<<grid, block, static_cast<size_t>(smem(chunk)), stream>>>(
      g, x, w, out, static_cast<int>(chunk));
  return static_cast<int>(cudaGetLastError());
}

// Phase-major forward: one block per (phase pair, 2 x 128 of the pixels that use it). The
// pair's filters are staged in shared memory and every thread reads them at the same address
// (a broadcast); each thread sums 2 pixels x 4 output channels, reading x from global memory
// (the window of one pixel is contiguous in C_in, read 4 channels at a time for float32 when
// C_in allows; neighbouring pixels overlap through L1/L2).
// The tiled kernel above reads a different filter per pixel when a 16 x 16 tile holds many
// phase pairs (x3.7: 37 phases per axis), which is where this one wins.
constexpr int kPhaseThreads = 128, kPhasePixels = 2;
// Phase pairs in a 16 x 16 tile from which phase-major is the faster forward kernel: without
// 4-channel loads, and with them for C_out 1 (harness timings on an H100, C_in 64: README,
// "Meta-upscale CUDA kernels"; with them and C_out >= 2 it was as fast or faster at every period).
constexpr int64_t kPhaseMajorMinTilePairs = 64, kPhaseMajorMinTilePairsVec4 = 16;
// Pixels per phase pair from which phase-major is used: at 28 (135 x 240 at x3.7, a block a
// ninth full) it was still 3.5x faster than tiled; with per-pixel weights (1) it would not be.
constexpr int64_t kPhaseMajorMinPixels = 16;

// Pixels of one phase pair: the (row, column) periods of the axes, m_r x m_c.
int64_t PeriodsOf(const Axis& a) { return CeilDiv(a.out_size, a.weight_period); }

template <typename T>
__global__ void __launch_bounds__(kPhaseThreads)
    ForwardPhaseKernel(const Geometry g, const T* __restrict__ x, const T* __restrict__ w,
                       T* __restrict__ out, int chunk, bool vec4) {
  using A = Acc<T>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* ws = reinterpret_cast<A*>(smem_raw);  // (k * k, chunk, kOutBlock), zero past C_out

  const int64_t k = g.kernel, half = k / 2, ci = g.in_c, co = g.out_c;
  const int64_t H = g.in_h, W = g.in_w, Ho = g.out_h, Wo = g.out_w;
  const int64_t Pv = g.rows.weight_period, Ph = g.cols.weight_period;
  const int64_t Mc = (Wo + Ph - 1) / Ph;
  const int o_blocks = static_cast<int>((co + kOutBlock - 1) / kOutBlock);
  const int64_t n = blockIdx.z / o_blocks;
  const int64_t o0 = static_cast<int64_t>(blockIdx.z % o_blocks) * kOutBlock;
  const int n_out = static_cast<int>(min(static_cast<int64_t>(kOutBlock), co - o0));
  // Consecutive blocks take every phase pair of one stretch of the image before the next, so
  // that the x they read is still in L2 (pair-major order re-read all of x once per pair).
  const int64_t pairs = Pv * Ph;
  const int64_t pair = blockIdx.x % pairs, tile = blockIdx.x / pairs;
  const int64_t pr = pair / Ph, pc = pair % Ph;
  const int tid = threadIdx.x;

  int64_t ii[kPhasePixels], jj[kPhasePixels], sr[kPhasePixels], sc[kPhasePixels];
  bool valid[kPhasePixels];
#pragma unroll
  for (int p = 0; p < kPhasePixels; ++p) {
    const int64_t t = (tile * kPhasePixels + p) * kPhaseThreads + tid;
    ii[p] = pr + Pv * (t / Mc);
    jj[p] = pc + Ph * (t % Mc);
    valid[p] = ii[p] < Ho && jj[p] < Wo;
    sr[p] = valid[p] ? Source(g.rows, ii[p]) : 0;
    sc[p] = valid[p] ? Source(g.cols, jj[p]) : 0;
  }

  A acc[kPhasePixels][kOutBlock];
#pragma unroll
  for (int p = 0; p < kPhasePixels; ++p) {
#pragma unroll
    for (int q = 0; q < kOutBlock; ++q) acc[p][q] = A(0);
  }

  const T* wp = w + pair * k * k * ci * co + o0;
  for (int64_t c0 = 0; c0 < ci; c0 += chunk) {
    const int cc = static_cast<int>(min(static_cast<int64_t>(chunk), ci - c0));
    const int total = static_cast<int>(k * k) * cc * kOutBlock;
    for (int e = tid; e < total; e += kPhaseThreads) {
      const int q = e % kOutBlock;
      const int c = (e / kOutBlock) % cc;
      const int tap = e / (kOutBlock * cc);
      ws[e] = q < n_out ? ToAcc<T>(wp[(tap * ci + c0 + c) * co + q]) : A(0);
    }
    __syncthreads();

    for (int a = 0; a < k; ++a) {
      for (int b = 0; b < k; ++b) {
        const A* wt = ws + (a * k + b) * cc * kOutBlock;
#pragma unroll
        for (int p = 0; p < kPhasePixels; ++p) {
          const int64_t r = sr[p] + a - half, col = sc[p] + b - half;
          if (!valid[p] || r < 0 || r >= H || col < 0 || col >= W) continue;
          const T* xp = x + ((n * H + r) * W + col) * ci + c0;
          if constexpr (std::is_same<T, float>::value) {
            if (vec4) {  // 4 channels per load: C_in, the chunk and x are 16-byte aligned
              const float4* xp4 = reinterpret_cast<const float4*>(xp);
              for (int c4 = 0; c4 < cc / 4; ++c4) {
                const float4 v = xp4[c4];
                const float* wc = wt + c4 * 4 * kOutBlock;
#pragma unroll
                for (int q = 0; q < kOutBlock; ++q) {
                  acc[p][q] += v.x * wc[q] + v.y * wc[kOutBlock + q] +
                               v.z * wc[2 * kOutBlock + q] + v.w * wc[3 * kOutBlock + q];
                }
              }
              continue;
            }
          }
          for (int c = 0; c < cc; ++c) {
            const A xv = ToAcc<T>(xp[c]);
#pragma unroll
            for (int q = 0; q < kOutBlock; ++q) acc[p][q] += xv * wt[c * kOutBlock + q];
          }
        }
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int p = 0; p < kPhasePixels; ++p) {
    if (!valid[p]) continue;
    T* o = out + ((n * Ho + ii[p]) * Wo + jj[p]) * co + o0;
#pragma unroll
    for (int q = 0; q < kOutBlock; ++q) {
      if (q < n_out) o[q] = FromAcc<T>(acc[p][q]);
    }
  }
}

// Launch parameters of the phase-major kernel; `fits` is false where its shared memory (huge k)
// or grid would not.
struct PhasePlan {
  int64_t chunk, tiles, grid_x, grid_z, smem_bytes;
  bool vec4, fits;
};

template <typename T>
PhasePlan PlanPhase(const Geometry& g, const T* x) {
  PhasePlan plan;
  const int64_t per_channel = g.kernel * g.kernel * kOutBlock * int64_t(sizeof(Acc<T>));
  plan.chunk = std::min<int64_t>(g.in_c, kForwardSmemBudget / per_channel);
  plan.vec4 = std::is_same<T, float>::value && g.in_c % 4 == 0 && plan.chunk >= 4 &&
              reinterpret_cast<uintptr_t>(x) % 16 == 0;
  if (plan.vec4) plan.chunk -= plan.chunk % 4;
  plan.smem_bytes = plan.chunk * per_channel;
  const int64_t pixels = PeriodsOf(g.rows) * PeriodsOf(g.cols);
  plan.tiles = CeilDiv(pixels, kPhaseThreads * kPhasePixels);
  plan.grid_x = g.rows.weight_period * g.cols.weight_period * plan.tiles;
  plan.grid_z = g.batch * CeilDiv(g.out_c, kOutBlock);
  plan.fits = plan.chunk >= 1 && plan.grid_x <= 0x7fffffff && plan.grid_z <= 65535;
  return plan;
}

template <typename T>
int LaunchForwardPhase(const Geometry& g, const PhasePlan& plan, const T* x, const T* w, T* out,
                       cudaStream_t stream) {
  if (g.batch * g.out_h * g.out_w == 0) return 0;
  if (!plan.fits) return LaunchForwardNaive(g, x, w, out, stream);
  const dim3 grid(static_cast<unsigned>(plan.grid_x), 1, static_cast<unsigned>(plan.grid_z));
  ForwardPhaseKernel<T><<<grid, kPhaseThreads, static_cast<size_t>(plan.smem_bytes), stream>>>(
      g, x, w, out, static_cast<int>(plan.chunk), plan.vec4);
  return static_cast<int>(cudaGetLastError());
}

// Phase-major where it can launch, every phase pair has a few pixels to share its filters, and
// either x is read 4 channels at a time (except C_out 1 at period 2, where tiled was 5 to 9%
// faster) or a 16 x 16 tile would hold many phase pairs; tiled otherwise.
bool PreferPhaseMajor(const Geometry& g, const PhasePlan& plan) {
  const int64_t tile_pairs =
      std::min<int64_t>(g.rows.weight_period, kTile) * std::min<int64_t>(g.cols.weight_period, kTile);
  const int64_t pixels = PeriodsOf(g.rows) * PeriodsOf(g.cols);
  const bool fast_reads = plan.vec4 && (g.out_c > 1 || tile_pairs >= kPhaseMajorMinTilePairsVec4);
  return plan.fits && pixels >= kPhaseMajorMinPixels &&
         (fast_reads || tile_pairs >= kPhaseMajorMinTilePairs);
}

template <typename T>
int LaunchForward(const Geometry& g, int variant, const T* x, const T* w, T* out,
                  cudaStream_t stream) {
  switch (variant) {
    case kTfsrForwardAuto: {
      const PhasePlan plan = PlanPhase(g, x);
      return PreferPhaseMajor(g, plan) ? LaunchForwardPhase(g, plan, x, w, out, stream)
                                       : LaunchForwardTiled(g, x, w, out, stream);
    }
    case kTfsrForwardTiled:
      return LaunchForwardTiled(g, x, w, out, stream);
    case kTfsrForwardPhaseMajor:
      return LaunchForwardPhase(g, PlanPhase(g, x), x, w, out, stream);
    case kTfsrForwardNaive:
      return LaunchForwardNaive(g, x, w, out, stream);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

// ---- grad_x: gather form ----

template <typename T>
__global__ void GradInputKernel(const Geometry g, const T* __restrict__ grad_out,
                                const T* __restrict__ w, T* __restrict__ grad_x) {
  using A = Acc<T>;
  const int64_t k = g.kernel, half = k / 2, ci = g.in_c, co = g.out_c;
  const int64_t H = g.in_h, W = g.in_w, Ho = g.out_h, Wo = g.out_w;
  const int64_t Ph = g.cols.weight_period;
  const int64_t total = g.batch * H * W * ci;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = t % ci;
    const int64_t xc = (t / ci) % W;
    const int64_t y = (t / (ci * W)) % H;
    const int64_t n = t / (ci * W * H);
    const int64_t i_begin = ::tfsr::MetaUpscaleFirstOutput(g.rows, y - half);
    const int64_t i_end = ::tfsr::MetaUpscaleFirstOutput(g.rows, y + half + 1);
    const int64_t j_begin = ::tfsr::MetaUpscaleFirstOutput(g.cols, xc - half);
    const int64_t j_end = ::tfsr::MetaUpscaleFirstOutput(g.cols, xc + half + 1);
    // Offsets of the columns' filters (phase and tap b), computed once, not once per row.
    int64_t col_offset[kMaxColumnSpan];
    const bool cached = j_end - j_begin <= kMaxColumnSpan;
    if (cached) {
      for (int64_t j = j_begin; j < j_end; ++j) {
        col_offset[j - j_begin] = (Phase(g.cols, j) * k * k + xc - Source(g.cols, j) + half) * ci;
      }
    }
    A acc = A(0);
    for (int64_t i = i_begin; i < i_end; ++i) {
      const int64_t a = y - Source(g.rows, i) + half;
      // Filter (p_v(i), 0, a, 0, c, 0): columns add (p_h * k * k + b) * C_in * C_out.
      const T* w_row = w + ((Phase(g.rows, i) * Ph * k * k + a * k) * ci + c) * co;
      const T* go_row = grad_out + ((n * Ho + i) * Wo) * co;
      for (int64_t j = j_begin; j < j_end; ++j) {
        const int64_t offset =
            cached ? col_offset[j - j_begin]
                   : (Phase(g.cols, j) * k * k + xc - Source(g.cols, j) + half) * ci;
        const T* go = go_row + j * co;
        const T* wp = w_row + offset * co;
        for (int64_t o = 0; o < co; ++o) acc += ToAcc<T>(go[o]) * ToAcc<T>(wp[o]);
      }
    }
    grad_x[t] = FromAcc<T>(acc);
  }
}

// ---- grad_w ----

enum class GwMode { kDirect, kPartials, kAtomicOut, kAtomicWorkspace };

struct GradWPlan {
  bool tiled = false;
  int pixel_batch = 0;
  int64_t weight_chunks = 0;
  int64_t splits = 1;
  GwMode mode = GwMode::kDirect;
  size_t workspace_bytes = 0;
};

GradWPlan PlanGradW(const Geometry& g, int64_t acc_size, int64_t storage_size, bool deterministic) {
  GradWPlan plan;
  const int64_t patch = g.kernel * g.kernel * g.in_c;
  const int64_t elems = patch * g.out_c;
  const int64_t pairs = g.rows.weight_period * g.cols.weight_period;
  const int64_t table = pairs * elems;
  const int64_t pixel_bytes = (patch + g.out_c) * acc_size;
  plan.pixel_batch = static_cast<int>(std::min<int64_t>(kMaxPixelBatch, kGradWSmemBudget / pixel_bytes));
  plan.weight_chunks = CeilDiv(elems, int64_t{kGwThreads} * kGwPerThread);
  plan.tiled = plan.pixel_batch >= 1 && pairs <= 0x7fffffff && plan.weight_chunks <= 65535;
  if (!plan.tiled) return plan;  // direct kernel, one thread per weight: no workspace
  const int64_t max_pixels =
      g.batch * CeilDiv(g.out_h, g.rows.weight_period) * CeilDiv(g.out_w, g.cols.weight_period);
  int64_t splits = CeilDiv(kTargetBlocks, pairs * plan.weight_chunks);
  splits = std::min(splits, std::max<int64_t>(1, max_pixels / 64));
  splits = std::min<int64_t>(splits, 65535);
  if (deterministic) {
    splits = std::min(splits, std::max<int64_t>(1, kMaxWorkspace / (table * acc_size)));
  }
  plan.splits = std::max<int64_t>(1, splits);
  if (plan.splits == 1) {
    plan.mode = GwMode::kDirect;
  } else if (deterministic) {
    plan.mode = GwMode::kPartials;
    plan.workspace_bytes = static_cast<size_t>(plan.splits * table * acc_size);
  } else if (acc_size == storage_size) {
    plan.mode = GwMode::kAtomicOut;
  } else {
    plan.mode = GwMode::kAtomicWorkspace;
    plan.workspace_bytes = static_cast<size_t>(table * acc_size);
  }
  return plan;
}

template <typename T, GwMode kMode>
__global__ void __launch_bounds__(kGwThreads)
    GradWeightsKernel(const Geometry g, const T* __restrict__ grad_out, const T* __restrict__ x,
                      T* __restrict__ grad_w, Acc<T>* __restrict__ workspace, int64_t splits,
                      int pixel_batch) {
  using A = Acc<T>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ int64_t pix_n[kMaxPixelBatch], pix_r0[kMaxPixelBatch], pix_c0[kMaxPixelBatch],
      pix_go[kMaxPixelBatch];

  const int64_t k = g.kernel, half = k / 2, ci = g.in_c, co = g.out_c;
  const int64_t H = g.in_h, W = g.in_w, Ho = g.out_h, Wo = g.out_w;
  const int64_t Pv = g.rows.weight_period, Ph = g.cols.weight_period;
  const int64_t patch = k * k * ci;
  const int64_t elems = patch * co;
  const int64_t table = Pv * Ph * elems;
  A* patches = reinterpret_cast<A*>(smem_raw);  // (pixel_batch, patch)
  A* gos = patches + pixel_batch * patch;       // (pixel_batch, co)

  const int64_t pair = blockIdx.x;
  const int64_t pv = pair / Ph, ph = pair % Ph;
  const int64_t split = blockIdx.z;
  const int tid = threadIdx.x;
  const int64_t e_base = static_cast<int64_t>(blockIdx.y) * kGwThreads * kGwPerThread + tid;

  int xi[kGwPerThread], oi[kGwPerThread];
  A acc[kGwPerThread];
#pragma unroll
  for (int q = 0; q < kGwPerThread; ++q) {
    const int64_t e = e_base + q * kGwThreads;
    xi[q] = e < elems ? static_cast<int>(e / co) : -1;
    oi[q] = e < elems ? static_cast<int>(e % co) : 0;
    acc[q] = A(0);
  }

  const int64_t rows_n = (Ho - 1 - pv) / Pv + 1;  // outputs with this row phase, per image
  const int64_t cols_n = (Wo - 1 - ph) / Ph + 1;
  const int64_t per_image = rows_n * cols_n;
  const int64_t total = g.batch * per_image;
  const int64_t m_begin = total * split / splits, m_end = total * (split + 1) / splits;

  for (int64_t m0 = m_begin; m0 < m_end; m0 += pixel_batch) {
    const int nb = static_cast<int>(min(static_cast<int64_t>(pixel_batch), m_end - m0));
    if (tid < nb) {
      const int64_t m = m0 + tid;
      const int64_t n = m / per_image, rem = m % per_image;
      const int64_t i = pv + (rem / cols_n) * Pv, j = ph + (rem % cols_n) * Ph;
      pix_n[tid] = n;
      pix_r0[tid] = Source(g.rows, i) - half;
      pix_c0[tid] = Source(g.cols, j) - half;
      pix_go[tid] = ((n * Ho + i) * Wo + j) * co;
    }
    __syncthreads();
    for (int64_t u = tid; u < nb * patch; u += kGwThreads) {
      const int64_t p = u / patch, rr = u % patch;
      const int64_t c = rr % ci, ab = rr / ci;
      const int64_t r = pix_r0[p] + ab / k, col = pix_c0[p] + ab % k;
      A v = A(0);
      if (r >= 0 && r < H && col >= 0 && col < W) {
        v = ToAcc<T>(x[((pix_n[p] * H + r) * W + col) * ci + c]);
      }
      patches[u] = v;
    }
    for (int64_t u = tid; u < nb * co; u += kGwThreads) {
      gos[u] = ToAcc<T>(grad_out[pix_go[u / co] + u % co]);
    }
    __syncthreads();
    for (int p = 0; p < nb; ++p) {
      const A* pp = patches + p * patch;
      const A* gp = gos + p * co;
#pragma unroll
      for (int q = 0; q < kGwPerThread; ++q) {
        if (xi[q] >= 0) acc[q] += pp[xi[q]] * gp[oi[q]];
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int q = 0; q < kGwPerThread; ++q) {
    if (xi[q] < 0) continue;
    const int64_t idx = pair * elems + e_base + q * kGwThreads;
    if constexpr (kMode == GwMode::kDirect) {
      grad_w[idx] = FromAcc<T>(acc[q]);
    } else if constexpr (kMode == GwMode::kPartials) {
      workspace[split * table + idx] = acc[q];
    } else if constexpr (kMode == GwMode::kAtomicOut) {
      if constexpr (std::is_same<T, A>::value) atomicAdd(grad_w + idx, acc[q]);
    } else {
      atomicAdd(workspace + idx, acc[q]);
    }
  }
}

// grad_w[e] = sum over splits of workspace[s][e], in split order.
template <typename T>
__global__ void SumSplitsKernel(int64_t table, int64_t splits, const Acc<T>* __restrict__ ws,
                                T* __restrict__ grad_w) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < table;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Acc<T> s = ws[e];
    for (int64_t p = 1; p < splits; ++p) s += ws[p * table + e];
    grad_w[e] = FromAcc<T>(s);
  }
}

// Direct fallback: one thread per weight, reducing over every pixel of its phase pair in order.
template <typename T>
__global__ void GradWeightsNaiveKernel(const Geometry g, const T* __restrict__ grad_out,
                                       const T* __restrict__ x, T* __restrict__ grad_w) {
  using A = Acc<T>;
  const int64_t k = g.kernel, half = k / 2, ci = g.in_c, co = g.out_c;
  const int64_t H = g.in_h, W = g.in_w, Ho = g.out_h, Wo = g.out_w;
  const int64_t Pv = g.rows.weight_period, Ph = g.cols.weight_period;
  const int64_t elems = k * k * ci * co;
  const int64_t table = Pv * Ph * elems;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < table;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t % co, c = (t / co) % ci, b = (t / (co * ci)) % k;
    const int64_t a = (t / (co * ci * k)) % k, pair = t / elems;
    const int64_t pv = pair / Ph, ph = pair % Ph;
    A acc = A(0);
    for (int64_t n = 0; n < g.batch; ++n) {
      for (int64_t i = pv; i < Ho; i += Pv) {
        const int64_t r = Source(g.rows, i) + a - half;
        if (r < 0 || r >= H) continue;
        for (int64_t j = ph; j < Wo; j += Ph) {
          const int64_t col = Source(g.cols, j) + b - half;
          if (col < 0 || col >= W) continue;
          acc += ToAcc<T>(x[((n * H + r) * W + col) * ci + c]) *
                 ToAcc<T>(grad_out[((n * Ho + i) * Wo + j) * co + o]);
        }
      }
    }
    grad_w[t] = FromAcc<T>(acc);
  }
}

template <typename T, GwMode kMode>
void LaunchGradWeightsTiled(const Geometry& g, const GradWPlan& plan, const T* grad_out, const T* x,
                            T* grad_w, Acc<T>* ws, cudaStream_t stream) {
  const int64_t patch = g.kernel * g.kernel * g.in_c;
  const size_t smem = static_cast<size_t>(plan.pixel_batch * (patch + g.out_c)) * sizeof(Acc<T>);
  const dim3 grid(static_cast<unsigned>(g.rows.weight_period * g.cols.weight_period),
                  static_cast<unsigned>(plan.weight_chunks), static_cast<unsigned>(plan.splits));
  GradWeightsKernel<T, kMode><<<grid, kGwThreads, smem, stream>>>(g, grad_out, x, grad_w, ws,
                                                                  plan.splits, plan.pixel_batch);
}

template <typename T>
int LaunchGrad(const Geometry& g, bool deterministic, int parts, const T* grad_out, const T* x,
               const T* w, T* grad_x, T* grad_w, void* workspace, cudaStream_t stream) {
  using A = Acc<T>;
  const int64_t in_total = g.batch * g.in_h * g.in_w * g.in_c;
  const int64_t table =
      g.rows.weight_period * g.cols.weight_period * g.kernel * g.kernel * g.in_c * g.out_c;
  if ((parts & ~kTfsrGradBoth) != 0) return static_cast<int>(cudaErrorInvalidValue);
  if ((parts & kTfsrGradInput) && in_total > 0) {
    GradInputKernel<T><<<Blocks1D(in_total), kThreads1D, 0, stream>>>(g, grad_out, w, grad_x);
  }
  if (!(parts & kTfsrGradWeights)) return static_cast<int>(cudaGetLastError());
  const GradWPlan plan = PlanGradW(g, sizeof(A), sizeof(T), deterministic);
  A* ws = static_cast<A*>(workspace);
  if (!plan.tiled) {
    GradWeightsNaiveKernel<T><<<Blocks1D(table), kThreads1D, 0, stream>>>(g, grad_out, x, grad_w);
    return static_cast<int>(cudaGetLastError());
  }
  cudaError_t err = cudaSuccess;
  switch (plan.mode) {
    case GwMode::kDirect:
      LaunchGradWeightsTiled<T, GwMode::kDirect>(g, plan, grad_out, x, grad_w, ws, stream);
      break;
    case GwMode::kPartials:
      LaunchGradWeightsTiled<T, GwMode::kPartials>(g, plan, grad_out, x, grad_w, ws, stream);
      if ((err = cudaGetLastError()) != cudaSuccess) return static_cast<int>(err);
      SumSplitsKernel<T>
          <<<Blocks1D(table), kThreads1D, 0, stream>>>(table, plan.splits, ws, grad_w);
      break;
    case GwMode::kAtomicOut:
      if ((err = cudaMemsetAsync(grad_w, 0, table * sizeof(T), stream)) != cudaSuccess) {
        return static_cast<int>(err);
      }
      LaunchGradWeightsTiled<T, GwMode::kAtomicOut>(g, plan, grad_out, x, grad_w, ws, stream);
      break;
    case GwMode::kAtomicWorkspace:
      if ((err = cudaMemsetAsync(ws, 0, table * sizeof(A), stream)) != cudaSuccess) {
        return static_cast<int>(err);
      }
      LaunchGradWeightsTiled<T, GwMode::kAtomicWorkspace>(g, plan, grad_out, x, grad_w, ws, stream);
      if ((err = cudaGetLastError()) != cudaSuccess) return static_cast<int>(err);
      SumSplitsKernel<T><<<Blocks1D(table), kThreads1D, 0, stream>>>(table, 1, ws, grad_w);
      break;
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename Fn>
int Dispatch(int dtype, Fn&& fn) {
  switch (dtype) {
    case kTfsrFloat32:
      return fn(float());
    case kTfsrFloat64:
      return fn(double());
    case kTfsrFloat16:
      return fn(__half());
    case kTfsrBfloat16:
      return fn(__nv_bfloat16());
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

size_t AccSize(int dtype) { return dtype == kTfsrFloat64 ? sizeof(double) : sizeof(float); }
size_t StorageSize(int dtype) { return dtype == kTfsrFloat64 ? 8 : dtype == kTfsrFloat32 ? 4 : 2; }

}  // namespace
}  // namespace gpu
}  // namespace tfsr

extern "C" {

int TfsrMetaUpscaleForwardGpu(const TfsrMetaUpscaleGeometry* g, int dtype, const void* x,
                              const void* weights, void* output, void* stream) {
  return TfsrMetaUpscaleForwardVariantGpu(g, dtype, kTfsrForwardAuto, x, weights, output, stream);
}

int TfsrMetaUpscaleForwardNaiveGpu(const TfsrMetaUpscaleGeometry* g, int dtype, const void* x,
                                   const void* weights, void* output, void* stream) {
  return TfsrMetaUpscaleForwardVariantGpu(g, dtype, kTfsrForwardNaive, x, weights, output, stream);
}

int TfsrMetaUpscaleForwardVariantGpu(const TfsrMetaUpscaleGeometry* g, int dtype, int variant,
                                     const void* x, const void* weights, void* output,
                                     void* stream) {
  return tfsr::gpu::Dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    return tfsr::gpu::LaunchForward<T>(*g, variant, static_cast<const T*>(x),
                                       static_cast<const T*>(weights), static_cast<T*>(output),
                                       static_cast<cudaStream_t>(stream));
  });
}

size_t TfsrMetaUpscaleGradWorkspaceBytes(const TfsrMetaUpscaleGeometry* g, int dtype,
                                         int deterministic) {
  return tfsr::gpu::PlanGradW(*g, tfsr::gpu::AccSize(dtype), tfsr::gpu::StorageSize(dtype),
                              deterministic != 0)
      .workspace_bytes;
}

int TfsrMetaUpscaleGradGpu(const TfsrMetaUpscaleGeometry* g, int dtype, int deterministic,
                           const void* grad_output, const void* x, const void* weights,
                           void* grad_x, void* grad_weights, void* workspace, void* stream) {
  return TfsrMetaUpscaleGradPartsGpu(g, dtype, deterministic, kTfsrGradBoth, grad_output, x,
                                     weights, grad_x, grad_weights, workspace, stream);
}

int TfsrMetaUpscaleGradPartsGpu(const TfsrMetaUpscaleGeometry* g, int dtype, int deterministic,
                                int parts, const void* grad_output, const void* x,
                                const void* weights, void* grad_x, void* grad_weights,
                                void* workspace, void* stream) {
  return tfsr::gpu::Dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    return tfsr::gpu::LaunchGrad<T>(*g, deterministic != 0, parts,
                                    static_cast<const T*>(grad_output), static_cast<const T*>(x),
                                    static_cast<const T*>(weights), static_cast<T*>(grad_x),
                                    static_cast<T*>(grad_weights), workspace,
                                    static_cast<cudaStream_t>(stream));
  });
}

const char* TfsrMetaUpscaleErrorString(int code) {
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

int TfsrMetaUpscaleMakeGeometry(int64_t batch, int64_t in_h, int64_t in_w, int64_t in_c,
                                double scale_v, double scale_h, int64_t out_h, int64_t out_w,
                                int64_t w_pv, int64_t w_ph, int64_t kernel, int64_t out_c,
                                TfsrMetaUpscaleGeometry* g, char* error, int error_len) {
  std::string err = tfsr::MetaUpscaleCheckScale("scale_v", scale_v);
  if (err.empty()) err = tfsr::MetaUpscaleCheckScale("scale_h", scale_h);
  int64_t ho = 0, wo = 0;
  if (err.empty()) err = tfsr::MetaUpscaleOutputSize("height", scale_v, in_h, out_h, &ho);
  if (err.empty()) err = tfsr::MetaUpscaleOutputSize("width", scale_h, in_w, out_w, &wo);
  if (err.empty()) {
    if (w_pv == 0) w_pv = tfsr::MetaUpscaleMakeAxis(scale_v, in_h, ho).period;
    if (w_pv == -1) w_pv = ho;
    if (w_ph == 0) w_ph = tfsr::MetaUpscaleMakeAxis(scale_h, in_w, wo).period;
    if (w_ph == -1) w_ph = wo;
    err = tfsr::MetaUpscaleMakeGeometry(batch, in_h, in_w, in_c, scale_v, scale_h, out_h, out_w,
                                        w_pv, w_ph, kernel, kernel, in_c, out_c, g);
  }
  if (err.empty()) return 0;
  if (error != nullptr && error_len > 0) {
    std::strncpy(error, err.c_str(), static_cast<size_t>(error_len - 1));
    error[error_len - 1] = '\0';
  }
  return 1;
}

void TfsrMetaUpscaleAxisTables(const TfsrMetaUpscaleAxis* axis, int64_t* source, int64_t* phase) {
  for (int64_t i = 0; i < axis->out_size; ++i) {
    source[i] = tfsr::MetaUpscaleSource(*axis, i);
    phase[i] = tfsr::MetaUpscalePhase(*axis, i);
  }
}

}  // extern "C"

#endif  // GOOGLE_CUDA
