/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// CPU functor of the 4-D LUT interpolation op, parallel over TensorFlow's intra-op thread pool
// (one shard = a range of points). The arithmetic matches the pure-TF twin
// (tfsr/ops/lut_interp.py) term by term: weights are integers, the five products are added in
// vertex order, and the sum is divided by the interval once, so both give identical floats.

// Fused multiply-adds would round differently from TensorFlow's separate Mul and Add ops.
#pragma GCC optimize("fp-contract=off")

#include <cstdint>

#include "custom_ops/cc/kernels/lut_interp.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tensorflow {
namespace tfsr {

namespace {

// Accumulator type: exact integers for int8 tables, float for float tables.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<int8> {
  using type = int32;
};

template <typename T>
void InterpolateRange(const LutInterpGeometry& g, const int32* index, const T* lut, float* out,
                      int64_t begin, int64_t end) {
  using A = typename Acc<T>::type;
  const int64_t C = g.channels;
  for (int64_t m = begin; m < end; ++m) {
    int64_t vertex[5];
    int32 w[5];
    SimplexVertices(g, index + 4 * m, vertex, w);
    A weight[5];
    for (int k = 0; k < 5; ++k) weight[k] = static_cast<A>(w[k]);
    float* o = out + m * C;
    for (int64_t c = 0; c < C; ++c) {
      A sum = weight[0] * static_cast<A>(lut[vertex[0] * C + c]);
      for (int k = 1; k < 5; ++k) sum += weight[k] * static_cast<A>(lut[vertex[k] * C + c]);
      o[c] = static_cast<float>(sum) / static_cast<float>(g.interval);
    }
  }
}

}  // namespace

template <typename T>
void LutInterp4DFunctor<CPUDevice, T>::operator()(OpKernelContext* ctx,
                                                  const LutInterpGeometry& g, const int32* index,
                                                  const T* lut, float* output) {
  auto work = [&](int64_t begin, int64_t end) {
    InterpolateRange<T>(g, index, lut, output, begin, end);
  };
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  // Cost per point: sorting plus 5 gathers per channel.
  Shard(workers->num_threads, workers->workers, g.points, 40 + 12 * g.channels, work);
}

template struct LutInterp4DFunctor<CPUDevice, int8>;
template struct LutInterp4DFunctor<CPUDevice, float>;

}  // namespace tfsr
}  // namespace tensorflow
