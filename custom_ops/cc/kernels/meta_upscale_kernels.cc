/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// OpKernels of Tfsr>MetaUpscale and Tfsr>MetaUpscaleGrad: input checks, output allocation and
// registration. The arithmetic is in the functors (meta_upscale_cpu.cc; the GPU functors below
// call the CUDA launchers of meta_upscale_gpu.cu.cc).

#include <cstdint>
#include <string>

#include "custom_ops/cc/kernels/meta_upscale.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/util/determinism.h"

#if GOOGLE_CUDA
#include "custom_ops/cc/kernels/meta_upscale_gpu.h"
#endif

namespace tensorflow {
namespace tfsr {

namespace {

// Checks the inputs shared by both ops and fills the geometry. `out_h`, `out_w`: -1 = default.
void MakeGeometry(OpKernelContext* ctx, const Tensor& x, const Tensor& w, const Tensor& scales,
                  int64_t out_h, int64_t out_w, TfsrMetaUpscaleGeometry* g) {
  OP_REQUIRES(ctx, x.dims() == 4,
              absl::InvalidArgumentError(absl::StrCat("x must be 4-D (N, H, W, C_in), got shape ",
                                                      x.shape().DebugString())));
  OP_REQUIRES(ctx, w.dims() == 6,
              absl::InvalidArgumentError(
                  absl::StrCat("weights must be 6-D (P_v, P_h, k, k, C_in, C_out), got shape ",
                               w.shape().DebugString())));
  OP_REQUIRES(
      ctx, scales.dims() == 1 && scales.NumElements() == 2,
      absl::InvalidArgumentError(absl::StrCat("scales must have shape [2] (scale_v, scale_h), got ",
                                              scales.shape().DebugString())));
  const auto s = scales.flat<double>();
  const std::string err = ::tfsr::MetaUpscaleMakeGeometry(
      x.dim_size(0), x.dim_size(1), x.dim_size(2), x.dim_size(3), s(0), s(1), out_h, out_w,
      w.dim_size(0), w.dim_size(1), w.dim_size(2), w.dim_size(3), w.dim_size(4), w.dim_size(5), g);
  OP_REQUIRES(ctx, err.empty(), absl::InvalidArgumentError(err));
}

}  // namespace

template <typename Device, typename T>
class MetaUpscaleOp : public OpKernel {
 public:
  explicit MetaUpscaleOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& w = ctx->input(1);
    const Tensor& sizes = ctx->input(3);
    OP_REQUIRES(
        ctx, sizes.dims() == 1 && sizes.NumElements() == 2,
        absl::InvalidArgumentError(absl::StrCat(
            "output_size must have shape [2] (H_out, W_out), got ", sizes.shape().DebugString())));
    const auto size = sizes.flat<int32>();
    TfsrMetaUpscaleGeometry g;
    MakeGeometry(ctx, x, w, ctx->input(2), size(0), size(1), &g);
    if (!ctx->status().ok()) return;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(
        ctx, ctx->allocate_output(0, TensorShape({g.batch, g.out_h, g.out_w, g.out_c}), &out));
    if (out->NumElements() == 0) return;
    MetaUpscaleFunctor<Device, T>()(ctx, g, x.flat<T>().data(), w.flat<T>().data(),
                                    out->flat<T>().data());
  }
};

template <typename Device, typename T>
class MetaUpscaleGradOp : public OpKernel {
 public:
  explicit MetaUpscaleGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("deterministic", &deterministic_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad_out = ctx->input(0);
    const Tensor& x = ctx->input(1);
    const Tensor& w = ctx->input(2);
    OP_REQUIRES(ctx, grad_out.dims() == 4,
                absl::InvalidArgumentError(
                    absl::StrCat("grad_output must be 4-D (N, H_out, W_out, C_out), got shape ",
                                 grad_out.shape().DebugString())));
    TfsrMetaUpscaleGeometry g;
    MakeGeometry(ctx, x, w, ctx->input(3), grad_out.dim_size(1), grad_out.dim_size(2), &g);
    if (!ctx->status().ok()) return;
    OP_REQUIRES(ctx, grad_out.dim_size(0) == g.batch && grad_out.dim_size(3) == g.out_c,
                absl::InvalidArgumentError(absl::StrCat(
                    "grad_output has shape ", grad_out.shape().DebugString(),
                    " but the forward output has batch ", g.batch, " and C_out ", g.out_c)));
    Tensor* grad_x = nullptr;
    Tensor* grad_w = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &grad_x));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, w.shape(), &grad_w));
    MetaUpscaleGradFunctor<Device, T>()(
        ctx, g, deterministic_ || OpDeterminismRequired(), grad_out.flat<T>().data(),
        x.flat<T>().data(), w.flat<T>().data(), grad_x->flat<T>().data(), grad_w->flat<T>().data());
  }

 private:
  bool deterministic_ = false;
};

#define REGISTER_CPU(T)                                                                           \
  REGISTER_KERNEL_BUILDER(Name("Tfsr>MetaUpscale").Device(DEVICE_CPU).TypeConstraint<T>("T"),     \
                          MetaUpscaleOp<CPUDevice, T>);                                           \
  REGISTER_KERNEL_BUILDER(Name("Tfsr>MetaUpscaleGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          MetaUpscaleGradOp<CPUDevice, T>);

REGISTER_CPU(float);
REGISTER_CPU(double);
#undef REGISTER_CPU

#if GOOGLE_CUDA

namespace {

template <typename T>
int DtypeCode();
template <>
int DtypeCode<float>() {
  return kTfsrFloat32;
}
template <>
int DtypeCode<double>() {
  return kTfsrFloat64;
}
template <>
int DtypeCode<Eigen::half>() {
  return kTfsrFloat16;
}
template <>
int DtypeCode<Eigen::bfloat16>() {
  return kTfsrBfloat16;
}

void* StreamOf(OpKernelContext* ctx) {
  return static_cast<void*>(ctx->eigen_device<GPUDevice>().stream());
}

}  // namespace

// Eigen::half and Eigen::bfloat16 have the bit layout of CUDA's __half and __nv_bfloat16.
template <typename T>
struct MetaUpscaleFunctor<GPUDevice, T> {
  void operator()(OpKernelContext* ctx, const TfsrMetaUpscaleGeometry& g, const T* x,
                  const T* weights, T* output) {
    const int err =
        TfsrMetaUpscaleForwardGpu(&g, DtypeCode<T>(), x, weights, output, StreamOf(ctx));
    OP_REQUIRES(ctx, err == 0,
                absl::InternalError(absl::StrCat("Tfsr>MetaUpscale CUDA launch failed: ",
                                                 TfsrMetaUpscaleErrorString(err))));
  }
};

template <typename T>
struct MetaUpscaleGradFunctor<GPUDevice, T> {
  void operator()(OpKernelContext* ctx, const TfsrMetaUpscaleGeometry& g, bool deterministic,
                  const T* grad_output, const T* x, const T* weights, T* grad_x, T* grad_weights) {
    const size_t bytes =
        TfsrMetaUpscaleGradWorkspaceBytes(&g, DtypeCode<T>(), deterministic ? 1 : 0);
    Tensor workspace;
    void* ws = nullptr;
    if (bytes > 0) {
      OP_REQUIRES_OK(
          ctx, ctx->allocate_temp(DT_INT8, TensorShape({static_cast<int64_t>(bytes)}), &workspace));
      ws = workspace.flat<int8>().data();
    }
    const int err = TfsrMetaUpscaleGradGpu(&g, DtypeCode<T>(), deterministic ? 1 : 0, grad_output,
                                           x, weights, grad_x, grad_weights, ws, StreamOf(ctx));
    OP_REQUIRES(ctx, err == 0,
                absl::InternalError(absl::StrCat("Tfsr>MetaUpscaleGrad CUDA launch failed: ",
                                                 TfsrMetaUpscaleErrorString(err))));
  }
};

#define REGISTER_GPU(T)                                                                            \
  REGISTER_KERNEL_BUILDER(Name("Tfsr>MetaUpscale")                                                 \
                              .Device(DEVICE_GPU)                                                  \
                              .TypeConstraint<T>("T")                                              \
                              .HostMemory("scales")                                                \
                              .HostMemory("output_size"),                                          \
                          MetaUpscaleOp<GPUDevice, T>);                                            \
  REGISTER_KERNEL_BUILDER(                                                                         \
      Name("Tfsr>MetaUpscaleGrad").Device(DEVICE_GPU).TypeConstraint<T>("T").HostMemory("scales"), \
      MetaUpscaleGradOp<GPUDevice, T>);

REGISTER_GPU(float);
REGISTER_GPU(double);
REGISTER_GPU(Eigen::half);
REGISTER_GPU(Eigen::bfloat16);
#undef REGISTER_GPU

#endif  // GOOGLE_CUDA

}  // namespace tfsr
}  // namespace tensorflow
