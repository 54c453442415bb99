/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// CPU functor of Tfsr>LutStage, parallel over image rows on TensorFlow's intra-op thread pool.
//
// The stage rule is the one of tfsr/lut/patterns.py (run_stage), computed in the unrotated frame:
// rotating the image by k quarter turns, sampling it, and rotating the output block back is the
// same as sampling the unrotated image at rotated offsets and writing the block's sub-pixels at
// rotated positions. Symmetric padding commutes with rotation (a coordinate c outside [0, n) reads
// -1 - c or 2n - 1 - c whichever side it is on), so the padding rule is unchanged.
//
// Arithmetic, as in the pure-TF twin (tfsr/lut/lut_stage.py): an RC module adds its window's
// mapped values in window order (row-major in the rotated frame) in float32, divides by the window
// size, and counts the thresholds <= the mean (the level in [0, 255]); interpolation sums are
// exact integers; the ensemble total (an exact multiple of 1 / interval) is divided by 4 P, added
// to the input level, then rounded half away from zero and clipped (middle stage) or clipped and
// divided by 255 (last stage), all in float32.

// Fused multiply-adds would round differently from TensorFlow's separate Mul and Add ops.
#pragma GCC optimize("fp-contract=off")

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "custom_ops/cc/kernels/lut_interp_stage.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tensorflow {
namespace tfsr {

namespace {

// Symmetric padding: valid for c in [-n, 2n - 1].
inline int64_t Reflect(int64_t c, int64_t n) {
  if (c < 0) return -1 - c;
  if (c >= n) return 2 * n - 1 - c;
  return c;
}

// Offset (dr, dc) of the frame rotated k quarter turns counter-clockwise (tf.image.rot90), in the
// unrotated frame.
inline void RotateOffset(int k, int dr, int dc, int* oy, int* ox) {
  switch (k) {
    case 0:
      *oy = dr, *ox = dc;
      break;
    case 1:
      *oy = dc, *ox = -dr;
      break;
    case 2:
      *oy = -dr, *ox = -dc;
      break;
    default:
      *oy = -dc, *ox = dr;
      break;
  }
}

// A set of offsets of one rotation: (oy, ox) pairs, their bounding box and flat offsets.
struct Taps {
  std::vector<int> oy, ox;
  std::vector<int64_t> flat;
  int min_y = 0, max_y = 0, min_x = 0, max_x = 0;

  void Add(int y, int x, int64_t width) {
    if (oy.empty()) min_y = max_y = y, min_x = max_x = x;
    min_y = std::min(min_y, y), max_y = std::max(max_y, y);
    min_x = std::min(min_x, x), max_x = std::max(max_x, x);
    oy.push_back(y), ox.push_back(x), flat.push_back(y * width + x);
  }
  bool Inside(int64_t y, int64_t x, int64_t h, int64_t w) const {
    return y + min_y >= 0 && y + max_y < h && x + min_x >= 0 && x + max_x < w;
  }
  // The plane's values at the taps around (y, x), symmetric padding at the borders.
  template <typename V>
  void Read(const uint8* plane, int64_t y, int64_t x, int64_t h, int64_t w, V* out) const {
    const int n = static_cast<int>(oy.size());
    if (Inside(y, x, h, w)) {
      const uint8* at = plane + y * w + x;
      for (int i = 0; i < n; ++i) out[i] = at[flat[i]];
    } else {
      for (int i = 0; i < n; ++i) out[i] = plane[Reflect(y + oy[i], h) * w + Reflect(x + ox[i], w)];
    }
  }
};

// RC module of pattern p in rotation k on rows [begin, end) of the (N * H) rows.
void RcRows(const LutStageGeometry& g, const LutStageTables& t, const Taps& taps, int p,
            const uint8* image, uint8* rc_plane, int64_t begin, int64_t end) {
  const int64_t h = g.height, w = g.width;
  const int n_taps = static_cast<int>(taps.oy.size());
  const float* table = t.rc_tables[p];
  const float count = static_cast<float>(n_taps);
  std::vector<int> v(n_taps);
  auto quantize = [&](float sum) {
    const float mean = sum / count;
    return static_cast<uint8>(
        std::upper_bound(t.thresholds, t.thresholds + kRcThresholds, mean) - t.thresholds);
  };
  // Interior pixels in groups of kLanes: independent sums (each still in window order) that the
  // CPU can overlap.
  constexpr int kLanes = 8;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / h, y = row % h;
    const uint8* plane = image + n * h * w;
    uint8* out = rc_plane + row * w;
    int64_t x = 0;
    while (x < w) {
      if (x + kLanes <= w && taps.Inside(y, x, h, w) && taps.Inside(y, x + kLanes - 1, h, w)) {
        const uint8* at = plane + y * w + x;
        float sum[kLanes];
        const uint8* a0 = at + taps.flat[0];
        for (int j = 0; j < kLanes; ++j) sum[j] = table[a0[j]];
        for (int i = 1; i < n_taps; ++i) {
          const float* ti = table + i * kRcLevels;
          const uint8* ai = at + taps.flat[i];
          for (int j = 0; j < kLanes; ++j) sum[j] += ti[ai[j]];
        }
        for (int j = 0; j < kLanes; ++j) out[x + j] = quantize(sum[j]);
        x += kLanes;
        continue;
      }
      taps.Read(plane, y, x, h, w, v.data());
      float sum = table[v[0]];
      for (int i = 1; i < n_taps; ++i) sum += table[i * kRcLevels + v[i]];
      out[x] = quantize(sum);
      ++x;
    }
  }
}

// The ensemble of every pattern and rotation on rows [begin, end), written as scale x scale
// output blocks.
template <int kChannels>  // 0: g.interp.channels at run time
void EnsembleRows(const LutStageGeometry& g, const LutStageTables& t,
                  const std::vector<Taps>& pattern_taps, const std::vector<int>& subpixel,
                  const uint8* image, const uint8* rc_scratch, uint8* out_levels,
                  float* out_unit, int64_t begin, int64_t end) {
  const int64_t h = g.height, w = g.width, plane_size = h * w;
  const int s = g.scale;
  const int64_t C = kChannels > 0 ? kChannels : g.interp.channels;
  const int64_t out_w = w * s;
  const float interval = static_cast<float>(g.interp.interval);
  const float members = static_cast<float>(kLutRotations * g.patterns);
  const bool rc = !g.windows.empty();
  std::vector<int32> acc(C), part(C);
  const int members_count = g.patterns * kLutRotations;
  std::vector<int64_t[5]> vertex(members_count);
  std::vector<int32[5]> weight(members_count);
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / h, y = row % h;
    const uint8* level = image + row * w;
    for (int64_t x = 0; x < w; ++x) {
      std::fill(acc.begin(), acc.end(), 0);
      // All members' simplices first, prefetching their table rows (random reads in tables of
      // up to 1.3 MB), then the weighted sums.
      for (int member = 0; member < members_count; ++member) {
        const uint8* plane =
            rc ? rc_scratch + (member * g.batch + n) * plane_size : image + n * plane_size;
        int32 v[4];
        pattern_taps[member].Read(plane, y, x, h, w, v);
        SimplexVertices(g.interp, v, vertex[member], weight[member]);
        const int8* lut = t.luts[member / kLutRotations];
        for (int i = 0; i < 5; ++i) __builtin_prefetch(lut + vertex[member][i] * C);
      }
      for (int member = 0; member < members_count; ++member) {
        const int8* lut = t.luts[member / kLutRotations];
        const int64_t* vx = vertex[member];
        const int32* wt = weight[member];
        const int8* row0 = lut + vx[0] * C;
        for (int64_t c = 0; c < C; ++c) part[c] = wt[0] * static_cast<int32>(row0[c]);
        for (int i = 1; i < 5; ++i) {
          const int8* row_i = lut + vx[i] * C;
          for (int64_t c = 0; c < C; ++c) part[c] += wt[i] * static_cast<int32>(row_i[c]);
        }
        const int* place = subpixel.data() + (member % kLutRotations) * C;
        for (int64_t c = 0; c < C; ++c) acc[place[c]] += part[c];
      }
      const float base = static_cast<float>(level[x]);
      for (int a = 0; a < s; ++a) {
        const int64_t o = (n * h * s + y * s + a) * out_w + x * s;
        for (int b = 0; b < s; ++b) {
          const float total = static_cast<float>(acc[a * s + b]) / interval;  // exact
          const float value = base + total / members;
          if (out_levels != nullptr) {
            const float rounded = value >= 0.0f ? std::floor(value + 0.5f)
                                                : -std::floor(-value + 0.5f);
            out_levels[o + b] = static_cast<uint8>(std::min(std::max(rounded, 0.0f), 255.0f));
          } else {
            out_unit[o + b] = std::min(std::max(value, 0.0f), 255.0f) / 255.0f;
          }
        }
      }
    }
  }
}

}  // namespace

void LutStageFunctor<CPUDevice>::operator()(OpKernelContext* ctx, const LutStageGeometry& g,
                                            const LutStageTables& t, const uint8* image,
                                            uint8* rc_scratch, uint8* out_levels,
                                            float* out_unit) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const int64_t rows = g.batch * g.height;
  const int s = g.scale;
  const bool rc = !g.windows.empty();
  std::vector<Taps> pattern_taps(g.patterns * kLutRotations);
  std::vector<Taps> rc_taps(rc ? g.patterns * kLutRotations : 0);
  for (int p = 0; p < g.patterns; ++p) {
    for (int k = 0; k < kLutRotations; ++k) {
      const int member = p * kLutRotations + k;
      int oy, ox;
      for (int i = 0; i < 4; ++i) {
        RotateOffset(k, g.offsets[8 * p + 2 * i], g.offsets[8 * p + 2 * i + 1], &oy, &ox);
        pattern_taps[member].Add(oy, ox, g.width);
      }
      if (!rc) continue;
      const int window = g.windows[p], r = window / 2;
      for (int a = 0; a < window; ++a) {
        for (int b = 0; b < window; ++b) {
          RotateOffset(k, a - r, b - r, &oy, &ox);
          rc_taps[member].Add(oy, ox, g.width);
        }
      }
    }
  }
  // Sub-pixel (u, v) of a block in the frame rotated k times lands at (a, b) of the output block.
  std::vector<int> subpixel(kLutRotations * s * s);
  for (int k = 0; k < kLutRotations; ++k) {
    for (int u = 0; u < s; ++u) {
      for (int v = 0; v < s; ++v) {
        int a = u, b = v;
        if (k == 1) a = v, b = s - 1 - u;
        if (k == 2) a = s - 1 - u, b = s - 1 - v;
        if (k == 3) a = s - 1 - v, b = u;
        subpixel[k * s * s + u * s + v] = a * s + b;
      }
    }
  }
  if (rc) {
    int64_t rc_taps_per_pixel = 0;
    for (const Taps& taps : rc_taps) rc_taps_per_pixel += taps.oy.size();
    Shard(workers->num_threads, workers->workers, rows, g.width * (8 + 6 * rc_taps_per_pixel),
          [&](int64_t begin, int64_t end) {
            for (int member = 0; member < g.patterns * kLutRotations; ++member) {
              uint8* plane = rc_scratch + member * rows * g.width;
              RcRows(g, t, rc_taps[member], member / kLutRotations, image, plane, begin, end);
            }
          });
  }
  const int64_t per_pixel = g.patterns * kLutRotations * (60 + 12 * g.interp.channels);
  Shard(workers->num_threads, workers->workers, rows, g.width * per_pixel,
        [&](int64_t begin, int64_t end) {
          switch (g.interp.channels) {
            case 1:
              EnsembleRows<1>(g, t, pattern_taps, subpixel, image, rc_scratch, out_levels,
                              out_unit, begin, end);
              break;
            case 4:
              EnsembleRows<4>(g, t, pattern_taps, subpixel, image, rc_scratch, out_levels,
                              out_unit, begin, end);
              break;
            case 16:
              EnsembleRows<16>(g, t, pattern_taps, subpixel, image, rc_scratch, out_levels,
                               out_unit, begin, end);
              break;
            default:
              EnsembleRows<0>(g, t, pattern_taps, subpixel, image, rc_scratch, out_levels,
                              out_unit, begin, end);
          }
        });
}

}  // namespace tfsr
}  // namespace tensorflow
