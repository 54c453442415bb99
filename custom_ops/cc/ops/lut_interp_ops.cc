/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// Registration and shape function of the 4-D look-up-table interpolation op (SR-LUT / MuLUT /
// RC-LUT inference): Tfsr>LutInterp4D (one interpolation per point) and Tfsr>LutStage (a whole
// stage on an 8-bit image). Kernels live in custom_ops/cc/kernels/lut_interp_*.

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

absl::Status LutStageShape(InferenceContext* c) {
  ShapeHandle image;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &image));
  DimensionHandle unused;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(image, 3), 1, &unused));
  int scale;
  TF_RETURN_IF_ERROR(c->GetAttr("scale", &scale));
  DimensionHandle height, width;
  TF_RETURN_IF_ERROR(c->Multiply(c->Dim(image, 1), scale, &height));
  TF_RETURN_IF_ERROR(c->Multiply(c->Dim(image, 2), scale, &width));
  c->set_output(0, c->MakeShape({c->Dim(image, 0), height, width, c->MakeDim(1)}));
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

REGISTER_OP("Tfsr>LutStage")
    .Input("image: uint8")
    .Input("luts: num_patterns * int8")
    .Input("rc_tables: num_rc * float")
    .Input("rc_thresholds: float")
    .Output("output: out_type")
    .Attr("num_patterns: int >= 1")
    .Attr("num_rc: int >= 0")
    .Attr("offsets: list(int)")
    .Attr("windows: list(int) = []")
    .Attr("scale: int = 1")
    .Attr("interval: int = 16")
    .Attr("out_type: {uint8, float}")
    .SetShapeFn(LutStageShape)
    .Doc(R"doc(
One stage of a LUT super-resolution model (SR-LUT / MuLUT / RC-LUT) on an 8-bit image, fused:
for every pixel, every pattern and each of the 4 rotations (tf.image.rot90 k = 0..3), the
pattern's 4 taps (symmetric padding) index 4-simplex interpolation in the pattern's table;
with RC modules the taps are read from the RC image of that rotation (window mean of per-position
1-D tables, quantised by counting rc_thresholds <= mean). The scale x scale blocks, rotated back,
are averaged over the 4 * num_patterns members and added to the nearest upscale of the input.

image: (N, H, W, 1) levels.
luts: num_patterns tables (L^4, scale^2), L = 256 / interval + 1 (see Tfsr>LutInterp4D).
rc_tables: num_rc (0 or num_patterns) tables (windows[p]^2, 256): the RC 1-D mappings.
rc_thresholds: (255,) non-decreasing: an RC mean m gives level #{j : rc_thresholds[j] <= m}.
output: (N, scale * H, scale * W, 1): uint8 levels (rounded half away from zero, clipped), or
  float32 y / 255 clipped to [0, 1] (out_type float: the last stage).
offsets: 4 (row, column) taps per pattern, 8 ints per pattern, in the unrotated frame.
windows: RC window side per pattern (odd); empty without RC modules.
)doc");

}  // namespace tfsr
}  // namespace tensorflow
