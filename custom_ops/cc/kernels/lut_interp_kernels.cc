/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// OpKernel of Tfsr>LutInterp4D: input checks, output allocation and registration. The
// arithmetic is in the functor (lut_interp_cpu.cc).

#include <cstdint>

#include "custom_ops/cc/kernels/lut_interp.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace tensorflow {
namespace tfsr {

template <typename Device, typename T>
class LutInterp4DOp : public OpKernel {
 public:
  explicit LutInterp4DOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("interval", &interval_));
    OP_REQUIRES(ctx, interval_ >= 4 && interval_ <= 128 && (interval_ & (interval_ - 1)) == 0,
                absl::InvalidArgumentError(absl::StrCat(
                    "interval must be a power of two in [4, 128], got ", interval_)));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& index = ctx->input(0);
    const Tensor& lut = ctx->input(1);
    OP_REQUIRES(ctx, index.dims() >= 1 && index.dim_size(index.dims() - 1) == 4,
                absl::InvalidArgumentError(absl::StrCat(
                    "index must have shape (..., 4), got ", index.shape().DebugString())));
    LutInterpGeometry g;
    g.interval = interval_;
    g.shift = 0;
    while ((1 << g.shift) < interval_) ++g.shift;
    g.side = 256 / interval_ + 1;
    const int64_t rows = static_cast<int64_t>(g.side) * g.side * g.side * g.side;
    OP_REQUIRES(ctx, lut.dims() == 2 && lut.dim_size(0) == rows,
                absl::InvalidArgumentError(absl::StrCat(
                    "lut must have shape (", rows, ", C) for interval ", interval_, " (", g.side,
                    "^4 sample points), got ", lut.shape().DebugString())));
    g.points = index.NumElements() / 4;
    g.channels = lut.dim_size(1);
    const auto flat = index.flat<int32>();
    for (int64_t i = 0; i < flat.size(); ++i) {
      OP_REQUIRES(ctx, flat(i) >= 0 && flat(i) <= 255,
                  absl::InvalidArgumentError(absl::StrCat(
                      "index values must be 8-bit levels in [0, 255], got ", flat(i))));
    }
    TensorShape out_shape = index.shape();
    out_shape.set_dim(index.dims() - 1, g.channels);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, out_shape, &out));
    if (out->NumElements() == 0) return;
    LutInterp4DFunctor<Device, T>()(ctx, g, flat.data(), lut.flat<T>().data(),
                                    out->flat<float>().data());
  }

 private:
  int interval_ = 16;
};

#define REGISTER_CPU(T)                                                                       \
  REGISTER_KERNEL_BUILDER(Name("Tfsr>LutInterp4D").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          LutInterp4DOp<CPUDevice, T>);

REGISTER_CPU(int8);
REGISTER_CPU(float);
#undef REGISTER_CPU

}  // namespace tfsr
}  // namespace tensorflow
