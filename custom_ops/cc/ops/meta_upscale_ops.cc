/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// Registration and shape functions of the Meta-SR meta-upscale ops. Kernels live in
// custom_ops/cc/kernels/meta_upscale_*.

#include <cstdint>

#include "custom_ops/cc/kernels/meta_upscale_geometry.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace tfsr {

using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

namespace {

// Output height or width when it can be known before running: from a constant `output_size`,
// or from a constant scale and a known input size. Unknown otherwise.
DimensionHandle OutputDim(InferenceContext* c, const Tensor* scales, const Tensor* sizes, int axis,
                          DimensionHandle in_dim) {
  if (sizes != nullptr && sizes->NumElements() == 2) {
    const int64_t requested = sizes->flat<int32>()(axis);
    if (requested > 0) return c->MakeDim(requested);
    if (requested == -1 && scales != nullptr && scales->NumElements() == 2 &&
        c->ValueKnown(in_dim)) {
      const char* name = axis == 0 ? "height" : "width";
      const double scale = scales->flat<double>()(axis);
      int64_t out = 0;
      // The kernel reports a bad scale; here it only leaves the size unknown.
      if (::tfsr::MetaUpscaleCheckScale(name, scale).empty() &&
          ::tfsr::MetaUpscaleOutputSize(name, scale, c->Value(in_dim), -1, &out).empty()) {
        return c->MakeDim(out);
      }
    }
  }
  return c->UnknownDim();
}

// The weights' kernel (dims 2 and 3) must be square, and of odd size, where known.
absl::Status CheckKernel(InferenceContext* c, ShapeHandle w) {
  const DimensionHandle kh = c->Dim(w, 2), kw = c->Dim(w, 3);
  const bool square = !c->ValueKnown(kh) || !c->ValueKnown(kw) || c->Value(kh) == c->Value(kw);
  const bool odd = (!c->ValueKnown(kh) || c->Value(kh) % 2 == 1) &&
                   (!c->ValueKnown(kw) || c->Value(kw) % 2 == 1);
  if (!square || !odd) {
    return errors::InvalidArgument(
        "weights must hold square kernels of odd size k (dims 2 and 3), got ",
        c->DebugString(kh), " x ", c->DebugString(kw));
  }
  return absl::OkStatus();
}

absl::Status MetaUpscaleShape(InferenceContext* c) {
  ShapeHandle x, w, scales, sizes;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 6, &w));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &scales));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &sizes));
  DimensionHandle unused;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(scales, 0), 2, &unused));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(sizes, 0), 2, &unused));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 3), c->Dim(w, 4), &unused));
  TF_RETURN_IF_ERROR(CheckKernel(c, w));
  const Tensor* scale_t = c->input_tensor(2);
  const Tensor* size_t_ = c->input_tensor(3);
  c->set_output(0, c->MakeShape({c->Dim(x, 0), OutputDim(c, scale_t, size_t_, 0, c->Dim(x, 1)),
                                 OutputDim(c, scale_t, size_t_, 1, c->Dim(x, 2)), c->Dim(w, 5)}));
  return absl::OkStatus();
}

absl::Status MetaUpscaleGradShape(InferenceContext* c) {
  ShapeHandle grad, x, w, scales;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &grad));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 6, &w));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &scales));
  DimensionHandle unused;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(scales, 0), 2, &unused));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(grad, 0), c->Dim(x, 0), &unused));  // N
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, 3), c->Dim(w, 4), &unused));     // C_in
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(grad, 3), c->Dim(w, 5), &unused));  // C_out
  TF_RETURN_IF_ERROR(CheckKernel(c, w));
  c->set_output(0, c->input(1));
  c->set_output(1, c->input(2));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("Tfsr>MetaUpscale")
    .Input("x: T")
    .Input("weights: T")
    .Input("scales: float64")
    .Input("output_size: int32")
    .Output("output: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("deterministic: bool = false")
    .SetShapeFn(MetaUpscaleShape)
    .Doc(R"doc(
Meta-SR meta-upscale with phase-table filters (arXiv 1903.00875).

output[n, i, j, o] = sum_{a, b, c} x[n, s_v(i) + a - k/2, s_h(j) + b - k/2, c] *
                     weights[p_v(i), p_h(j), a, b, c, o], zero padding.

x: (N, H, W, C_in).
weights: (P_v, P_h, k, k, C_in, C_out); P_v is the phase period of scales[0] or H_out
  (per-pixel weights); likewise P_h.
scales: [scale_v, scale_h], finite, in [1e-4, 1e4].
output_size: [H_out, W_out]; -1 on an axis for floor(scale * size + 1e-6).
output: (N, H_out, W_out, C_out).
deterministic: passed on to Tfsr>MetaUpscaleGrad by the registered gradient.
)doc");

REGISTER_OP("Tfsr>MetaUpscaleGrad")
    .Input("grad_output: T")
    .Input("x: T")
    .Input("weights: T")
    .Input("scales: float64")
    .Output("grad_x: T")
    .Output("grad_weights: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("deterministic: bool = false")
    .SetShapeFn(MetaUpscaleGradShape)
    .Doc(R"doc(
Gradients of Tfsr>MetaUpscale with respect to x and weights. The output size is that of
grad_output. With deterministic (or TF op determinism enabled) the weight gradient is reduced
in a fixed order on every device; the CPU kernel always is.
)doc");

}  // namespace tfsr
}  // namespace tensorflow
