/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// OpKernel of Tfsr>LutStage: input checks, output allocation and registration. The arithmetic
// is in the functor (lut_interp_stage_cpu.cc).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "custom_ops/cc/kernels/lut_interp_stage.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace tensorflow {
namespace tfsr {

class LutStageOp : public OpKernel {
 public:
  explicit LutStageOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("interval", &interval_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("scale", &scale_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("offsets", &offsets_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("windows", &windows_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_patterns", &patterns_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_rc", &num_rc_));
    OP_REQUIRES(ctx, interval_ >= 4 && interval_ <= 128 && (interval_ & (interval_ - 1)) == 0,
                absl::InvalidArgumentError(absl::StrCat(
                    "interval must be a power of two in [4, 128], got ", interval_)));
    OP_REQUIRES(ctx, scale_ >= 1 && scale_ <= 16,
                absl::InvalidArgumentError(absl::StrCat("scale must be in [1, 16], got ", scale_)));
    OP_REQUIRES(ctx, static_cast<int>(offsets_.size()) == 8 * patterns_,
                absl::InvalidArgumentError(absl::StrCat(
                    "offsets must hold 8 ints (4 taps of (row, column)) per pattern: ",
                    8 * patterns_, " for ", patterns_, " patterns, got ", offsets_.size())));
    OP_REQUIRES(ctx,
                (windows_.empty() && num_rc_ == 0) ||
                    (static_cast<int>(windows_.size()) == patterns_ && num_rc_ == patterns_),
                absl::InvalidArgumentError(absl::StrCat(
                    "a stage with RC modules needs one window and one RC table per pattern (",
                    patterns_, "), got ", windows_.size(), " windows and ", num_rc_,
                    " RC tables; without RC, neither")));
    for (int o : offsets_) {
      OP_REQUIRES(ctx, o >= -kMaxOffset && o <= kMaxOffset,
                  absl::InvalidArgumentError(absl::StrCat("offsets must be in [", -kMaxOffset,
                                                          ", ", kMaxOffset, "], got ", o)));
    }
    for (int w : windows_) {
      OP_REQUIRES(ctx, w >= 1 && w % 2 == 1,
                  absl::InvalidArgumentError(
                      absl::StrCat("RC windows must be positive odd ints, got ", w)));
    }
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& image = ctx->input(0);
    OP_REQUIRES(ctx, image.dims() == 4 && image.dim_size(3) == 1,
                absl::InvalidArgumentError(absl::StrCat(
                    "image must have shape (N, H, W, 1), got ", image.shape().DebugString())));
    OpInputList luts, rc_tables;
    OP_REQUIRES_OK(ctx, ctx->input_list("luts", &luts));
    OP_REQUIRES_OK(ctx, ctx->input_list("rc_tables", &rc_tables));
    const Tensor& thresholds = ctx->input(ctx->num_inputs() - 1);
    LutStageGeometry g;
    g.interp.interval = interval_;
    g.interp.shift = 0;
    while ((1 << g.interp.shift) < interval_) ++g.interp.shift;
    g.interp.side = 256 / interval_ + 1;
    g.interp.channels = static_cast<int64_t>(scale_) * scale_;
    g.batch = image.dim_size(0);
    g.height = image.dim_size(1);
    g.width = image.dim_size(2);
    g.scale = scale_;
    g.patterns = patterns_;
    g.offsets = offsets_;
    g.windows = windows_;
    const int64_t side = g.interp.side;
    const int64_t rows = side * side * side * side;
    LutStageTables t;
    for (int p = 0; p < patterns_; ++p) {
      const Tensor& lut = luts[p];
      OP_REQUIRES(ctx, lut.dims() == 2 && lut.dim_size(0) == rows &&
                           lut.dim_size(1) == g.interp.channels,
                  absl::InvalidArgumentError(absl::StrCat(
                      "luts[", p, "] must have shape (", rows, ", ", g.interp.channels,
                      ") for interval ", interval_, " and scale ", scale_, ", got ",
                      lut.shape().DebugString())));
      t.luts.push_back(lut.flat<int8>().data());
    }
    for (int p = 0; p < num_rc_; ++p) {
      const Tensor& rc = rc_tables[p];
      const int64_t taps = static_cast<int64_t>(windows_[p]) * windows_[p];
      OP_REQUIRES(ctx, rc.dims() == 2 && rc.dim_size(0) == taps && rc.dim_size(1) == kRcLevels,
                  absl::InvalidArgumentError(absl::StrCat(
                      "rc_tables[", p, "] must have shape (", taps, ", ", kRcLevels,
                      ") for window ", windows_[p], ", got ", rc.shape().DebugString())));
      t.rc_tables.push_back(rc.flat<float>().data());
    }
    OP_REQUIRES(ctx, thresholds.dims() == 1 && thresholds.dim_size(0) == kRcThresholds,
                absl::InvalidArgumentError(absl::StrCat("rc_thresholds must have shape (",
                                                        kRcThresholds, "), got ",
                                                        thresholds.shape().DebugString())));
    t.thresholds = thresholds.flat<float>().data();
    for (int i = 1; i < kRcThresholds; ++i) {
      OP_REQUIRES(ctx, t.thresholds[i - 1] <= t.thresholds[i],
                  absl::InvalidArgumentError("rc_thresholds must be non-decreasing"));
    }
    // Symmetric padding reads at most one image size beyond an edge.
    int reach = 0;
    for (int o : offsets_) reach = std::max(reach, o < 0 ? -o : o);
    for (int w : windows_) reach = std::max(reach, w / 2);
    const int64_t extent = std::min(g.height, g.width);
    OP_REQUIRES(ctx, g.batch == 0 || extent >= reach,
                absl::InvalidArgumentError(absl::StrCat(
                    "image height and width must be at least ", reach,
                    " (the patterns' and RC windows' reach) for symmetric padding, got ",
                    image.shape().DebugString())));
    const TensorShape out_shape({g.batch, g.height * scale_, g.width * scale_, 1});
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, out_shape, &out));
    if (out->NumElements() == 0) return;
    Tensor scratch;
    uint8* rc_scratch = nullptr;
    if (num_rc_ > 0) {
      OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_UINT8,
                                             TensorShape({patterns_ * kLutRotations, g.batch,
                                                          g.height, g.width}),
                                             &scratch));
      rc_scratch = scratch.flat<uint8>().data();
    }
    const bool last = out->dtype() == DT_FLOAT;
    LutStageFunctor<CPUDevice>()(ctx, g, t, image.flat<uint8>().data(), rc_scratch,
                                 last ? nullptr : out->flat<uint8>().data(),
                                 last ? out->flat<float>().data() : nullptr);
  }

 private:
  int interval_ = 16;
  int scale_ = 1;
  int patterns_ = 1;
  int num_rc_ = 0;
  // Pattern taps lie within a few pixels; the bound keeps |offset| and its rotations exact.
  static constexpr int kMaxOffset = 1 << 16;
  std::vector<int> offsets_;
  std::vector<int> windows_;
};

REGISTER_KERNEL_BUILDER(Name("Tfsr>LutStage").Device(DEVICE_CPU), LutStageOp);

}  // namespace tfsr
}  // namespace tensorflow
