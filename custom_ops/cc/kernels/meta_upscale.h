/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// Functors of the meta-upscale op (forward and gradient), one specialisation per device:
// CPU in meta_upscale_cpu.cc, GPU in meta_upscale_kernels.cc (calling the CUDA launchers of
// meta_upscale_gpu.cu.cc through meta_upscale_gpu.h).
//
// Layouts: x (N, H, W, C_in); weights (P_v, P_h, k, k, C_in, C_out); output and its gradient
// (N, H_out, W_out, C_out); all row-major and contiguous.

#ifndef TFSR_CUSTOM_OPS_CC_KERNELS_META_UPSCALE_H_
#define TFSR_CUSTOM_OPS_CC_KERNELS_META_UPSCALE_H_

#define EIGEN_USE_THREADS
#if GOOGLE_CUDA
#define EIGEN_USE_GPU
#endif

#include "custom_ops/cc/kernels/meta_upscale_geometry.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace tensorflow {
namespace tfsr {

using CPUDevice = Eigen::ThreadPoolDevice;
using GPUDevice = Eigen::GpuDevice;

// output = meta_upscale(x, weights). Reports failures through ctx.
template <typename Device, typename T>
struct MetaUpscaleFunctor {
  void operator()(OpKernelContext* ctx, const TfsrMetaUpscaleGeometry& g, const T* x,
                  const T* weights, T* output);
};

// grad_x, grad_weights from grad_output. `deterministic`: reduce the weight gradient in a fixed
// order (the CPU kernel always does).
template <typename Device, typename T>
struct MetaUpscaleGradFunctor {
  void operator()(OpKernelContext* ctx, const TfsrMetaUpscaleGeometry& g, bool deterministic,
                  const T* grad_output, const T* x, const T* weights, T* grad_x, T* grad_weights);
};

template <typename T>
struct MetaUpscaleFunctor<CPUDevice, T> {
  void operator()(OpKernelContext* ctx, const TfsrMetaUpscaleGeometry& g, const T* x,
                  const T* weights, T* output);
};

template <typename T>
struct MetaUpscaleGradFunctor<CPUDevice, T> {
  void operator()(OpKernelContext* ctx, const TfsrMetaUpscaleGeometry& g, bool deterministic,
                  const T* grad_output, const T* x, const T* weights, T* grad_x, T* grad_weights);
};

}  // namespace tfsr
}  // namespace tensorflow

#endif  // TFSR_CUSTOM_OPS_CC_KERNELS_META_UPSCALE_H_
