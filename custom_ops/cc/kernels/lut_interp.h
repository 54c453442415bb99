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

// The 4-simplex of the LUT cell holding the query v (four levels in [0, 255]): its 5 vertex rows
// and integer weights (summing to the interval). LSBs are taken in decreasing order, ties lower
// dimension first (any tie order gives the same result: the vertex between tied dimensions gets
// weight 0). Shared by Tfsr>LutInterp4D and Tfsr>LutStage.
inline void SimplexVertices(const LutInterpGeometry& g, const int32 v[4], int64_t vertex[5],
                            int32 weight[5]) {
  const int64_t L = g.side;
  const int64_t stride[4] = {L * L * L, L * L, L, 1};
  const int32 mask = g.interval - 1;
  int64_t base = 0;
  int32 frac[4];
  for (int d = 0; d < 4; ++d) {
    base += static_cast<int64_t>(v[d] >> g.shift) * stride[d];
    frac[d] = v[d] & mask;
  }
  // Rank of each dimension in that order, without branches (random LSBs defeat branch
  // prediction): the dimensions with a larger LSB, or an equal LSB and a lower index, go first.
  int order[4];
  for (int d = 0; d < 4; ++d) {
    int rank = 0;
    for (int e = 0; e < 4; ++e) {
      rank += (frac[e] > frac[d]) | ((frac[e] == frac[d]) & (e < d));
    }
    order[rank] = d;
  }
  vertex[0] = base;
  weight[0] = g.interval - frac[order[0]];
  for (int k = 1; k < 5; ++k) {
    vertex[k] = vertex[k - 1] + stride[order[k - 1]];
    weight[k] = frac[order[k - 1]] - (k < 4 ? frac[order[k]] : 0);
  }
}

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
