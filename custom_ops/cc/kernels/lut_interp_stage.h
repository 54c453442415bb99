/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// Functor of Tfsr>LutStage: one whole stage of a LUT super-resolution model (SR-LUT, MuLUT,
// RC-LUT) on an 8-bit image. Layouts: image (N, H, W) uint8 levels; luts[p] (L^4, scale^2) int8;
// rc_tables[p] (window_p^2, 256) float32; output (N, scale*H, scale*W), uint8 levels (a middle
// stage) or float32 in [0, 1] (the last stage). Row-major and contiguous.

#ifndef TFSR_CUSTOM_OPS_CC_KERNELS_LUT_INTERP_STAGE_H_
#define TFSR_CUSTOM_OPS_CC_KERNELS_LUT_INTERP_STAGE_H_

#include <cstdint>
#include <vector>

#include "custom_ops/cc/kernels/lut_interp.h"

namespace tensorflow {
namespace tfsr {

constexpr int kLutRotations = 4;
constexpr int kRcLevels = 256;
constexpr int kRcThresholds = 255;

struct LutStageGeometry {
  LutInterpGeometry interp;  // interval, shift, side; channels = scale^2
  int64_t batch = 0;         // N
  int64_t height = 0;        // H
  int64_t width = 0;         // W
  int scale = 1;
  int patterns = 0;  // P
  // Tap offsets (row, column) of every pattern in the unrotated frame: 8 ints per pattern.
  std::vector<int> offsets;
  // RC window side of every pattern; empty: no RC module in this stage.
  std::vector<int> windows;
};

struct LutStageTables {
  std::vector<const int8*> luts;        // P tables
  std::vector<const float*> rc_tables;  // P tables, or none
  const float* thresholds = nullptr;    // (255,) increasing: RC mean -> level
};

template <typename Device>
struct LutStageFunctor {
  // rc_scratch: P * 4 * N * H * W bytes when the stage has RC modules (else unused);
  // exactly one of out_levels / out_unit is non-null.
  void operator()(OpKernelContext* ctx, const LutStageGeometry& g, const LutStageTables& t,
                  const uint8* image, uint8* rc_scratch, uint8* out_levels, float* out_unit);
};

template <>
struct LutStageFunctor<CPUDevice> {
  void operator()(OpKernelContext* ctx, const LutStageGeometry& g, const LutStageTables& t,
                  const uint8* image, uint8* rc_scratch, uint8* out_levels, float* out_unit);
};

}  // namespace tfsr
}  // namespace tensorflow

#endif  // TFSR_CUSTOM_OPS_CC_KERNELS_LUT_INTERP_STAGE_H_
