/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// Registration and shape function of the 4-D look-up-table interpolation op (SR-LUT / MuLUT /
// RC-LUT inference). Kernels live in custom_ops/cc/kernels/lut_interp_*.

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace tfsr {

using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

namespace {

absl::Status LutInterp4DShape(InferenceContext* c) {
  ShapeHandle index, lut, batch;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &index));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &lut));
  DimensionHandle unused;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(index, -1), 4, &unused));
  TF_RETURN_IF_ERROR(c->Subshape(index, 0, -1, &batch));
  ShapeHandle out;
  TF_RETURN_IF_ERROR(c->Concatenate(batch, c->Vector(c->Dim(lut, 1)), &out));
  c->set_output(0, out);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("Tfsr>LutInterp4D")
    .Input("index: int32")
    .Input("lut: T")
    .Output("output: float")
    .Attr("T: {int8, float}")
    .Attr("interval: int = 16")
    .SetShapeFn(LutInterp4DShape)
    .Doc(R"doc(
4-simplex interpolation in a 4-D look-up table sampled every `interval` levels (SR-LUT).

index: (..., 4) 8-bit values in [0, 255].
lut: (L^4, C) with L = 256 / interval + 1; row ((a * L + b) * L + c) * L + d holds the
  outputs at the sample point (a, b, c, d) (sample v = min(v * interval, 255)).
output: (..., C) float32. Each value is split into MSB (v / interval) and LSB (v % interval); the
  LSBs sorted in decreasing order pick one of 24 simplices, whose 5 vertices are weighted by
  integer weights summing to `interval`; output = sum(weight * lut[vertex]) / interval.
)doc");

}  // namespace tfsr
}  // namespace tensorflow
