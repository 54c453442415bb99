/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// Registration and shape function of the 4-D look-up-table interpolation op (SR-LUT / MuLUT /
// RC-LUT inference): Tfsr>LutInterp4D (one interpolation per point) and Tfsr>LutStage (a whole
// stage on an 8-bit image). Kernels live in custom_ops/cc/kernels/lut_interp_*.

#include <cstdint>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace tfsr {

using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

namespace {

// Rows of a 4-D table sampled every `interval` levels: L^4, L = 256 / interval + 1 (an interval
// that does not divide 256 is the kernel's error to report).
absl::Status TableRows(InferenceContext* c, int64_t* rows) {
  int interval;
  TF_RETURN_IF_ERROR(c->GetAttr("interval", &interval));
  *rows = -1;
  if (interval > 0 && interval <= 128 && 256 % interval == 0) {
    const int64_t side = 256 / interval + 1;
    *rows = side * side * side * side;
  }
  return absl::OkStatus();
}

// `table` is (rows, columns): rows from the interval, columns given (-1: any).
absl::Status CheckTable(InferenceContext* c, ShapeHandle table, int64_t columns,
                        ShapeHandle* out) {
  TF_RETURN_IF_ERROR(c->WithRank(table, 2, out));
  int64_t rows;
  TF_RETURN_IF_ERROR(TableRows(c, &rows));
  DimensionHandle unused;
  if (rows > 0) TF_RETURN_IF_ERROR(c->WithValue(c->Dim(*out, 0), rows, &unused));
  if (columns > 0) TF_RETURN_IF_ERROR(c->WithValue(c->Dim(*out, 1), columns, &unused));
  return absl::OkStatus();
}

absl::Status LutInterp4DShape(InferenceContext* c) {
  ShapeHandle index, lut, batch;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &index));
  TF_RETURN_IF_ERROR(CheckTable(c, c->input(1), -1, &lut));
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
  int scale, num_patterns, num_rc;
  TF_RETURN_IF_ERROR(c->GetAttr("scale", &scale));
  TF_RETURN_IF_ERROR(c->GetAttr("num_patterns", &num_patterns));
  TF_RETURN_IF_ERROR(c->GetAttr("num_rc", &num_rc));
  std::vector<int> windows;
  TF_RETURN_IF_ERROR(c->GetAttr("windows", &windows));
  if (num_rc != 0 && num_rc != num_patterns) {
    return errors::InvalidArgument("num_rc must be 0 or num_patterns (", num_patterns, "), got ",
                                   num_rc);
  }
  if (static_cast<int>(windows.size()) != num_rc) {
    return errors::InvalidArgument("windows must hold one side per RC table (", num_rc,
                                   "), got ", windows.size());
  }
  ShapeHandle table;
  for (int p = 0; p < num_patterns; ++p) {  // luts: (L^4, scale^2) each
    TF_RETURN_IF_ERROR(CheckTable(c, c->input(1 + p), int64_t{scale} * scale, &table));
  }
  for (int p = 0; p < num_rc; ++p) {  // rc_tables: (window^2, 256) each
    TF_RETURN_IF_ERROR(c->WithRank(c->input(1 + num_patterns + p), 2, &table));
    if (windows[p] > 0) {
      TF_RETURN_IF_ERROR(
          c->WithValue(c->Dim(table, 0), int64_t{windows[p]} * windows[p], &unused));
    }
    TF_RETURN_IF_ERROR(c->WithValue(c->Dim(table, 1), 256, &unused));
  }
  ShapeHandle thresholds;  // (255,)
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1 + num_patterns + num_rc), 1, &thresholds));
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(thresholds, 0), 255, &unused));
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
  outputs at the sample point (a, b, c, d) (sample level v * interval; the last, 256, one
  step past the top level).
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
