/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// Geometry of the Meta-SR meta-upscale op: which low-resolution row feeds output row i, and which
// row of the phase table holds its filter. Plain C++ (no TensorFlow, no CUDA headers), shared by
// the shape function, the CPU and CUDA kernels and the standalone CUDA harness.
//
// The rule, implemented identically in Python (tfsr/ops/meta_upscale.py); change both together:
//   default output size  out = floor(r * in + 1e-6)
//   phase period         P   = the smallest P in [1, out] with |P / r - Q| <= 1e-6 for the
//                               integer Q = round(P / r) >= 1 ("rational" axis, r ~ P / Q);
//                               if there is none, P = out (one phase per output row).
//   source row           s(i) = (i * Q) div P            on a rational axis (exact),
//                               floor(i / r)  (IEEE double)  otherwise;
//   phase of row i       p(i) = i mod P_w, where P_w (the phase table's size on that axis) is P
//                               or out (the paper's per-pixel weights).
// The 1e-6 epsilon of the output size lets a float32-rounded scale (1.3f * 10 = 12.9999995) give
// the intended size only while r * in is below about 16 (the float32 error is about 6e-8 r in):
// 1.3f * 100 gives 129. Pass scales in float64 (the MetaUpscale layer snaps them to p / q). The
// period tolerance recognises float32-rounded scales as the rational p / q intended.

#ifndef TFSR_CUSTOM_OPS_CC_KERNELS_META_UPSCALE_GEOMETRY_H_
#define TFSR_CUSTOM_OPS_CC_KERNELS_META_UPSCALE_GEOMETRY_H_

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#if defined(__CUDACC__)
#define TFSR_HOST_DEVICE __host__ __device__
#else
#define TFSR_HOST_DEVICE
#endif

// One spatial axis. A C struct so that the CUDA launchers can take it through extern "C".
struct TfsrMetaUpscaleAxis {
  int64_t in_size;        // low-resolution size (H or W)
  int64_t out_size;       // output size (H_out or W_out)
  int64_t period;         // the rule's phase period P
  int64_t weight_period;  // the phase table's size on this axis: P or out_size
  int64_t step;           // Q when the axis is rational (scale ~ P / Q), else 0
  double scale;           // the scale r
};

// Everything a kernel needs besides the data pointers.
struct TfsrMetaUpscaleGeometry {
  int64_t batch;   // N
  int64_t in_h;    // H
  int64_t in_w;    // W
  int64_t in_c;    // C_in
  int64_t out_c;   // C_out
  int64_t kernel;  // k (odd)
  int64_t out_h;   // H_out
  int64_t out_w;   // W_out
  TfsrMetaUpscaleAxis rows;
  TfsrMetaUpscaleAxis cols;
};

namespace tfsr {

constexpr double kMetaUpscaleOutputSizeEpsilon = 1e-6;
constexpr double kMetaUpscalePeriodTolerance = 1e-6;
constexpr double kMetaUpscaleMinScale = 1e-4;
constexpr double kMetaUpscaleMaxScale = 1e4;
constexpr int64_t kMetaUpscaleMaxSize = int64_t{1} << 20;  // per spatial axis, input and output

// Source (low-resolution) index of output index i, 0 <= i <= out_size.
TFSR_HOST_DEVICE inline int64_t MetaUpscaleSource(const TfsrMetaUpscaleAxis& a, int64_t i) {
  if (a.step > 0) {
    const int64_t num = i * a.step;
    // 32-bit division where it is exact (much cheaper on GPUs); sizes are <= 2^20.
    if (num <= 0x7fffffff) return static_cast<uint32_t>(num) / static_cast<uint32_t>(a.period);
    return num / a.period;
  }
  return static_cast<int64_t>(floor(static_cast<double>(i) / a.scale));
}

// Row (or column) of the phase table used by output index i (i, weight_period <= 2^20).
TFSR_HOST_DEVICE inline int64_t MetaUpscalePhase(const TfsrMetaUpscaleAxis& a, int64_t i) {
  return static_cast<uint32_t>(i) % static_cast<uint32_t>(a.weight_period);
}

// The smallest output index i in [0, out_size] with MetaUpscaleSource(i) >= s (out_size if none).
// Sources are non-decreasing in i, so the outputs whose source lies in [s0, s1] are
// [MetaUpscaleFirstOutput(s0), MetaUpscaleFirstOutput(s1 + 1)).
TFSR_HOST_DEVICE inline int64_t MetaUpscaleFirstOutput(const TfsrMetaUpscaleAxis& a, int64_t s) {
  if (s <= 0) return 0;
  int64_t i;
  if (a.step > 0) {
    i = (s * a.period + a.step - 1) / a.step;  // ceil(s * P / Q)
  } else {
    // floor(s * r) is within one of the answer; start below it and walk up with the exact test.
    const double guess = floor(static_cast<double>(s) * a.scale) - 2.0;
    i = guess > 0.0 ? static_cast<int64_t>(guess) : 0;
    if (i > a.out_size) i = a.out_size;
    while (i < a.out_size && MetaUpscaleSource(a, i) < s) ++i;
  }
  return i < a.out_size ? i : a.out_size;
}

// Host-only helpers below (std::string).

template <typename V>
inline std::string MetaUpscaleStr(const V& v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

// Checks one scale; returns "" or the error.
inline std::string MetaUpscaleCheckScale(const char* name, double scale) {
  if (!std::isfinite(scale) || !(scale >= kMetaUpscaleMinScale) ||
      !(scale <= kMetaUpscaleMaxScale)) {
    return std::string(name) + " must be a finite number in [" +
           MetaUpscaleStr(kMetaUpscaleMinScale) + ", " + MetaUpscaleStr(kMetaUpscaleMaxScale) +
           "], got " + MetaUpscaleStr(scale);
  }
  return "";
}

// Output size along one axis: `requested` if positive, floor(r * in + 1e-6) if -1.
// Returns "" or the error (also for an empty or oversize result).
inline std::string MetaUpscaleOutputSize(const char* name, double scale, int64_t in_size,
                                         int64_t requested, int64_t* out_size) {
  int64_t out;
  if (requested == -1) {
    // volatile: the product must be rounded before the addition (no fused multiply-add), as in
    // the Python twin.
    volatile double product = scale * static_cast<double>(in_size);
    const double size = floor(product + kMetaUpscaleOutputSizeEpsilon);
    if (!(size <= static_cast<double>(kMetaUpscaleMaxSize))) {  // also NaN: no cast below
      return std::string("output ") + name + " floor(" + MetaUpscaleStr(scale) + " * " +
             MetaUpscaleStr(in_size) + ") = " + MetaUpscaleStr(size) + " exceeds the maximum " +
             MetaUpscaleStr(kMetaUpscaleMaxSize);
    }
    out = static_cast<int64_t>(size);
    if (out < 1) {
      return std::string("output ") + name + " floor(" + MetaUpscaleStr(scale) + " * " +
             MetaUpscaleStr(in_size) + ") is 0: the output would be empty";
    }
  } else {
    if (requested < 1 || requested > kMetaUpscaleMaxSize) {
      return std::string("output ") + name + " must be in [1, " +
             MetaUpscaleStr(kMetaUpscaleMaxSize) + "] (or -1 for floor(scale * input size)), got " +
             MetaUpscaleStr(requested);
    }
    out = requested;
  }
  *out_size = out;
  return "";
}

// Fills an axis for a checked scale and output size (period, step); weight_period = period.
inline TfsrMetaUpscaleAxis MetaUpscaleMakeAxis(double scale, int64_t in_size, int64_t out_size) {
  TfsrMetaUpscaleAxis a;
  a.in_size = in_size;
  a.out_size = out_size;
  a.scale = scale;
  a.period = out_size;
  a.step = 0;
  for (int64_t p = 1; p <= out_size; ++p) {
    const double ratio = static_cast<double>(p) / scale;
    const double q = std::nearbyint(ratio);
    if (q >= 1.0 && std::fabs(ratio - q) <= kMetaUpscalePeriodTolerance) {
      a.period = p;
      a.step = static_cast<int64_t>(q);
      break;
    }
  }
  a.weight_period = a.period;
  return a;
}

// Checks the whole call and fills the geometry. `out_h`, `out_w`: -1 for the default size.
// Weight dims: (w_pv, w_ph, w_kh, w_kw, w_cin, w_cout). Returns "" or the error.
inline std::string MetaUpscaleMakeGeometry(int64_t batch, int64_t in_h, int64_t in_w, int64_t in_c,
                                           double scale_v, double scale_h, int64_t out_h,
                                           int64_t out_w, int64_t w_pv, int64_t w_ph, int64_t w_kh,
                                           int64_t w_kw, int64_t w_cin, int64_t w_cout,
                                           TfsrMetaUpscaleGeometry* g) {
  std::string err;
  if (batch < 0) return "batch size must be >= 0, got " + MetaUpscaleStr(batch);
  if (in_h < 1 || in_h > kMetaUpscaleMaxSize || in_w < 1 || in_w > kMetaUpscaleMaxSize) {
    return "input height and width must be in [1, " + MetaUpscaleStr(kMetaUpscaleMaxSize) +
           "], got " + MetaUpscaleStr(in_h) + " x " + MetaUpscaleStr(in_w);
  }
  if (in_c < 1) return "input channels must be >= 1, got " + MetaUpscaleStr(in_c);
  if (w_kh != w_kw || w_kh < 1 || w_kh % 2 == 0) {
    return "weights must hold square kernels of odd size k (dims 2 and 3), got " +
           MetaUpscaleStr(w_kh) + " x " + MetaUpscaleStr(w_kw);
  }
  if (w_cin != in_c) {
    return "weights have " + MetaUpscaleStr(w_cin) + " input channels (dim 4) but the input has " +
           MetaUpscaleStr(in_c);
  }
  if (w_cout < 1)
    return "weights must have >= 1 output channels (dim 5), got " + MetaUpscaleStr(w_cout);
  if (!(err = MetaUpscaleCheckScale("scale_v", scale_v)).empty()) return err;
  if (!(err = MetaUpscaleCheckScale("scale_h", scale_h)).empty()) return err;
  int64_t ho, wo;
  if (!(err = MetaUpscaleOutputSize("height", scale_v, in_h, out_h, &ho)).empty()) return err;
  if (!(err = MetaUpscaleOutputSize("width", scale_h, in_w, out_w, &wo)).empty()) return err;
  // N * H_out * W_out * C_out must fit int64 (TensorShape aborts the process otherwise); the
  // divisions compare without forming the product.
  const int64_t pixels = ho * wo;  // each side <= kMetaUpscaleMaxSize
  if (batch > 0 && w_cout > std::numeric_limits<int64_t>::max() / pixels / batch) {
    return "the output (" + MetaUpscaleStr(batch) + ", " + MetaUpscaleStr(ho) + ", " +
           MetaUpscaleStr(wo) + ", " + MetaUpscaleStr(w_cout) +
           ") has more elements than an int64 counts";
  }
  TfsrMetaUpscaleAxis rows = MetaUpscaleMakeAxis(scale_v, in_h, ho);
  TfsrMetaUpscaleAxis cols = MetaUpscaleMakeAxis(scale_h, in_w, wo);
  if (w_pv != rows.period && w_pv != ho) {
    return "weights have " + MetaUpscaleStr(w_pv) + " row phases (dim 0) but scale_v " +
           MetaUpscaleStr(scale_v) + " with output height " + MetaUpscaleStr(ho) + " needs " +
           MetaUpscaleStr(rows.period) + " (its phase period) or " + MetaUpscaleStr(ho) +
           " (one per output row)";
  }
  if (w_ph != cols.period && w_ph != wo) {
    return "weights have " + MetaUpscaleStr(w_ph) + " column phases (dim 1) but scale_h " +
           MetaUpscaleStr(scale_h) + " with output width " + MetaUpscaleStr(wo) + " needs " +
           MetaUpscaleStr(cols.period) + " (its phase period) or " + MetaUpscaleStr(wo) +
           " (one per output column)";
  }
  rows.weight_period = w_pv;
  cols.weight_period = w_ph;
  g->batch = batch;
  g->in_h = in_h;
  g->in_w = in_w;
  g->in_c = in_c;
  g->out_c = w_cout;
  g->kernel = w_kh;
  g->out_h = ho;
  g->out_w = wo;
  g->rows = rows;
  g->cols = cols;
  return "";
}

}  // namespace tfsr

#endif  // TFSR_CUSTOM_OPS_CC_KERNELS_META_UPSCALE_GEOMETRY_H_
