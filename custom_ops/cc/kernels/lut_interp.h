/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// Functor of the 4-D LUT interpolation op. Layouts: index (M, 4) int32 in [0, 255];
// lut (L^4, C); output (M, C) float32; row-major and contiguous.

#ifndef TFSR_CUSTOM_OPS_CC_KERNELS_LUT_INTERP_H_
#define TFSR_CUSTOM_OPS_CC_KERNELS_LUT_INTERP_H_

#define EIGEN_USE_THREADS

#include <cstdint>

#include "tensorflow/core/framework/op_kernel.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace tensorflow {
namespace tfsr {

using CPUDevice = Eigen::ThreadPoolDevice;

struct LutInterpGeometry {
  int64_t points = 0;    // M
  int64_t channels = 0;  // C
  int interval = 16;
  int shift = 4;  // log2(interval)
  int side = 17;  // L
};

template <typename Device, typename T>
struct LutInterp4DFunctor {
  void operator()(OpKernelContext* ctx, const LutInterpGeometry& g, const int32* index,
                  const T* lut, float* output);
};

template <typename T>
struct LutInterp4DFunctor<CPUDevice, T> {
  void operator()(OpKernelContext* ctx, const LutInterpGeometry& g, const int32* index,
                  const T* lut, float* output);
};

}  // namespace tfsr
}  // namespace tensorflow

#endif  // TFSR_CUSTOM_OPS_CC_KERNELS_LUT_INTERP_H_
