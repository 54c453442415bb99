/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// C interface of the meta-upscale CUDA kernels (meta_upscale_gpu.cu.cc). Free of TensorFlow and
// CUDA headers: the TF GPU functors (meta_upscale_kernels.cc) and the standalone harness
// (custom_ops/harness/) both call these. Pointers are device pointers in the layouts of
// meta_upscale.h; `stream` is a cudaStream_t. Functions return 0 or a cudaError_t code.

#ifndef TFSR_CUSTOM_OPS_CC_KERNELS_META_UPSCALE_GPU_H_
#define TFSR_CUSTOM_OPS_CC_KERNELS_META_UPSCALE_GPU_H_

#include <stddef.h>
#include <stdint.h>

#include "custom_ops/cc/kernels/meta_upscale_geometry.h"

#ifdef __cplusplus
extern "C" {
#endif

// Element types (storage); arithmetic is float32 for half and bfloat16, float64 for double.
enum TfsrDtype { kTfsrFloat32 = 0, kTfsrFloat64 = 1, kTfsrFloat16 = 2, kTfsrBfloat16 = 3 };

// Forward kernels: tiled (x tile in shared memory), phase-major (one phase pair's filters in
// shared memory), naive (one thread per output pixel, everything from global memory); auto picks
// tiled or phase-major from the geometry.
enum TfsrForwardVariant {
  kTfsrForwardAuto = 0,
  kTfsrForwardTiled = 1,
  kTfsrForwardPhaseMajor = 2,
  kTfsrForwardNaive = 3
};

// output = meta_upscale(x, weights) with the auto variant; a kernel whose shared memory or grid
// would not fit falls back to the naive one.
int TfsrMetaUpscaleForwardGpu(const TfsrMetaUpscaleGeometry* g, int dtype, const void* x,
                              const void* weights, void* output, void* stream);

// The same with a chosen TfsrForwardVariant (the harness checks and times each).
int TfsrMetaUpscaleForwardVariantGpu(const TfsrMetaUpscaleGeometry* g, int dtype, int variant,
                                     const void* x, const void* weights, void* output,
                                     void* stream);

// The direct kernel: one thread per output pixel, everything read from global memory.
int TfsrMetaUpscaleForwardNaiveGpu(const TfsrMetaUpscaleGeometry* g, int dtype, const void* x,
                                   const void* weights, void* output, void* stream);

// Bytes of device workspace TfsrMetaUpscaleGradGpu needs (depends on shapes, dtype and mode).
size_t TfsrMetaUpscaleGradWorkspaceBytes(const TfsrMetaUpscaleGeometry* g, int dtype,
                                         int deterministic);

// grad_x (gather form, no atomics) and grad_weights (block reductions; with `deterministic`
// partial sums are written per split and added in a fixed order, otherwise they are added with
// float atomics). `workspace` holds TfsrMetaUpscaleGradWorkspaceBytes bytes, 256-byte aligned.
int TfsrMetaUpscaleGradGpu(const TfsrMetaUpscaleGeometry* g, int dtype, int deterministic,
                           const void* grad_output, const void* x, const void* weights,
                           void* grad_x, void* grad_weights, void* workspace, void* stream);

// One or both halves of TfsrMetaUpscaleGradGpu (`parts`: a TfsrGradPart mask), to time them
// apart; the buffer of a half not asked for is not touched.
enum TfsrGradPart { kTfsrGradInput = 1, kTfsrGradWeights = 2, kTfsrGradBoth = 3 };
int TfsrMetaUpscaleGradPartsGpu(const TfsrMetaUpscaleGeometry* g, int dtype, int deterministic,
                                int parts, const void* grad_output, const void* x,
                                const void* weights, void* grad_x, void* grad_weights,
                                void* workspace, void* stream);

// cudaGetErrorString of a code returned above.
const char* TfsrMetaUpscaleErrorString(int code);

// Host helpers for the harness: the checked geometry (returns 0, or 1 with the message in
// `error`; out_h, out_w: -1 for the default size; w_pv, w_ph: the phase table's sizes, 0 for the
// rule's period, -1 for one per output row / column), and the source / phase index of every
// output index of an axis.
int TfsrMetaUpscaleMakeGeometry(int64_t batch, int64_t in_h, int64_t in_w, int64_t in_c,
                                double scale_v, double scale_h, int64_t out_h, int64_t out_w,
                                int64_t w_pv, int64_t w_ph, int64_t kernel, int64_t out_c,
                                TfsrMetaUpscaleGeometry* g, char* error, int error_len);
void TfsrMetaUpscaleAxisTables(const TfsrMetaUpscaleAxis* axis, int64_t* source, int64_t* phase);

#ifdef __cplusplus
}
#endif

#endif  // TFSR_CUSTOM_OPS_CC_KERNELS_META_UPSCALE_GPU_H_
