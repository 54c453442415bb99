/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// CPU functors of the meta-upscale op, parallel over TensorFlow's intra-op thread pool.
//
// No per-pixel weights are ever built. The inner loops run over contiguous memory: one row of a
// k x k window of x is k * C_in contiguous values (NHWC), and so is the matching slice of the
// filter once the phase table is transposed to (P_v, P_h, C_out, k, k, C_in) (done once per call
// when each filter serves several pixels; the paper's per-pixel weights at batch 1 are used as
// they are).
// Every output value, input-gradient value and weight-gradient value is reduced by one thread in
// a fixed order, so all three results are deterministic.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "custom_ops/cc/kernels/meta_upscale.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tensorflow {
namespace tfsr {
namespace {

using ::tfsr::MetaUpscaleFirstOutput;
using ::tfsr::MetaUpscalePhase;
using ::tfsr::MetaUpscaleSource;

// Phase tables larger than this are used in place (never transposed or replicated).
constexpr int64_t kMaxScratchBytes = int64_t{256} << 20;

// ---- vectorisable inner loops ----

template <typename T>
inline void Axpy(T* __restrict y, T a, const T* __restrict x, int64_t n) {
#pragma omp simd
  for (int64_t m = 0; m < n; ++m) y[m] += a * x[m];
}

// y += sum_q a[q] * (w + q * stride) for q < count: one pass over y per 4 rows of w.
template <typename T>
inline void AxpyMany(T* __restrict y, const T* a, const T* __restrict w, int64_t stride,
                     int64_t count, int64_t n) {
  int64_t q = 0;
  for (; q + 4 <= count; q += 4) {
    const T a0 = a[q], a1 = a[q + 1], a2 = a[q + 2], a3 = a[q + 3];
    const T* w0 = w + q * stride;
    const T* w1 = w0 + stride;
    const T* w2 = w1 + stride;
    const T* w3 = w2 + stride;
#pragma omp simd
    for (int64_t m = 0; m < n; ++m) y[m] += a0 * w0[m] + a1 * w1[m] + a2 * w2[m] + a3 * w3[m];
  }
  if (count - q == 3) {
    const T a0 = a[q], a1 = a[q + 1], a2 = a[q + 2];
    const T* w0 = w + q * stride;
    const T* w1 = w0 + stride;
    const T* w2 = w1 + stride;
#pragma omp simd
    for (int64_t m = 0; m < n; ++m) y[m] += a0 * w0[m] + a1 * w1[m] + a2 * w2[m];
    return;
  }
  for (; q < count; ++q) Axpy(y, a[q], w + q * stride, n);
}

// y += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3.
template <typename T>
inline void Axpy4(T* __restrict y, T a0, T a1, T a2, T a3, const T* __restrict x0,
                  const T* __restrict x1, const T* __restrict x2, const T* __restrict x3,
                  int64_t n) {
#pragma omp simd
  for (int64_t m = 0; m < n; ++m) y[m] += a0 * x0[m] + a1 * x1[m] + a2 * x2[m] + a3 * x3[m];
}

// acc[q] += dot(x, w + q * stride) for q < count, in blocks sharing the loads of x.
template <typename T>
inline void DotMany(const T* __restrict x, const T* __restrict w, int64_t stride, int64_t count,
                    int64_t n, T* acc) {
  int64_t q = 0;
  for (; q + 4 <= count; q += 4) {
    const T* w0 = w + q * stride;
    const T* w1 = w0 + stride;
    const T* w2 = w1 + stride;
    const T* w3 = w2 + stride;
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t m = 0; m < n; ++m) {
      const T v = x[m];
      s0 += v * w0[m];
      s1 += v * w1[m];
      s2 += v * w2[m];
      s3 += v * w3[m];
    }
    acc[q] += s0;
    acc[q + 1] += s1;
    acc[q + 2] += s2;
    acc[q + 3] += s3;
  }
  if (count - q == 3) {
    const T* w0 = w + q * stride;
    const T* w1 = w0 + stride;
    const T* w2 = w1 + stride;
    T s0 = 0, s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s0, s1, s2)
    for (int64_t m = 0; m < n; ++m) {
      const T v = x[m];
      s0 += v * w0[m];
      s1 += v * w1[m];
      s2 += v * w2[m];
    }
    acc[q] += s0;
    acc[q + 1] += s1;
    acc[q + 2] += s2;
    return;
  }
  for (; q < count; ++q) {
    const T* w0 = w + q * stride;
    T s0 = 0;
#pragma omp simd reduction(+ : s0)
    for (int64_t m = 0; m < n; ++m) s0 += x[m] * w0[m];
    acc[q] += s0;
  }
}

// ---- geometry tables ----

struct AxisTables {
  std::vector<int64_t> source;  // (out_size,)
  std::vector<int64_t> phase;   // (out_size,)
  std::vector<int64_t> first;   // first[s + pad] = MetaUpscaleFirstOutput(s), s in [-pad, in + pad]

  int64_t pad = 0;
  // Output indices whose source lies in [s0, s1].
  int64_t Begin(int64_t s0) const { return first[std::max<int64_t>(s0 + pad, 0)]; }
  int64_t End(int64_t s1) const {
    const int64_t idx = s1 + 1 + pad;
    return idx >= static_cast<int64_t>(first.size()) ? source.size() : first[idx];
  }
};

AxisTables MakeTables(const TfsrMetaUpscaleAxis& a, int64_t half) {
  AxisTables t;
  t.source.resize(a.out_size);
  t.phase.resize(a.out_size);
  for (int64_t i = 0; i < a.out_size; ++i) {
    t.source[i] = MetaUpscaleSource(a, i);
    t.phase[i] = MetaUpscalePhase(a, i);
  }
  t.pad = half + 1;
  t.first.resize(a.in_size + 2 * t.pad + 1);
  for (int64_t s = -t.pad; s <= a.in_size + t.pad; ++s) {
    t.first[s + t.pad] = MetaUpscaleFirstOutput(a, s);
  }
  return t;
}

// Columns [b_min, b_max] of the k-wide window centred on source column `src` that fall inside
// [0, width); empty when b_min > b_max.
inline void ValidTaps(int64_t src, int64_t half, int64_t k, int64_t width, int64_t* b_min,
                      int64_t* b_max) {
  *b_min = std::max<int64_t>(0, half - src);
  *b_max = std::min<int64_t>(k - 1, width - 1 - src + half);
}

// How the phase table is read: element (phase pair, o, a, b, c) lives at
// pair * elems + o * o_stride + ((a * k + b) * C_in + c) * c_stride.
struct WeightLayout {
  bool dot;          // c_stride == 1: C_in is contiguous (transposed table, or C_out == 1)
  int64_t o_stride;  // k * k * C_in when dot, 1 otherwise
  int64_t c_stride;  // 1 when dot, C_out otherwise
};

WeightLayout ChooseLayout(const TfsrMetaUpscaleGeometry& g, int64_t bytes_per_elem,
                          bool* transpose) {
  const int64_t elems = g.kernel * g.kernel * g.in_c * g.out_c;
  const int64_t table = g.rows.weight_period * g.cols.weight_period * elems;
  // Transposing costs a pass over the table: worth it when each filter serves several pixels
  // (not for the paper's per-pixel weights at batch 1), and only for tables of bounded size.
  const int64_t uses = g.batch * g.out_h * g.out_w / (g.rows.weight_period * g.cols.weight_period);
  *transpose = g.out_c > 1 && uses >= 4 && table * bytes_per_elem <= kMaxScratchBytes;
  if (*transpose || g.out_c == 1) return {true, g.kernel * g.kernel * g.in_c, 1};
  return {false, 1, g.out_c};
}

// (pairs, k*k*C_in, C_out) <-> (pairs, C_out, k*k*C_in), parallel over phase pairs.
template <typename T>
void TransposeTable(OpKernelContext* ctx, const T* src, T* dst, int64_t pairs, int64_t rows,
                    int64_t cols) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  Shard(workers->num_threads, workers->workers, pairs, rows * cols,
        [&](int64_t begin, int64_t end) {
          for (int64_t p = begin; p < end; ++p) {
            const T* s = src + p * rows * cols;
            T* d = dst + p * rows * cols;
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t c = 0; c < cols; ++c) d[c * rows + r] = s[r * cols + c];
            }
          }
        });
}

}  // namespace

template <typename T>
void MetaUpscaleFunctor<CPUDevice, T>::operator()(OpKernelContext* ctx,
                                                  const TfsrMetaUpscaleGeometry& g, const T* x,
                                                  const T* weights, T* output) {
  const int64_t k = g.kernel, half = k / 2, ci = g.in_c, co = g.out_c;
  const int64_t H = g.in_h, W = g.in_w, Ho = g.out_h, Wo = g.out_w;
  const int64_t Ph = g.cols.weight_period;
  const int64_t elems = k * k * ci * co;
  const int64_t pairs = g.rows.weight_period * Ph;

  bool transpose = false;
  const WeightLayout layout = ChooseLayout(g, sizeof(T), &transpose);
  const T* w = weights;
  Tensor scratch;
  if (transpose) {
    OP_REQUIRES_OK(
        ctx, ctx->allocate_temp(DataTypeToEnum<T>::value, TensorShape({pairs * elems}), &scratch));
    TransposeTable(ctx, weights, scratch.flat<T>().data(), pairs, k * k * ci, co);
    w = scratch.flat<T>().data();
  }
  const AxisTables rows = MakeTables(g.rows, half);
  const AxisTables cols = MakeTables(g.cols, half);

  auto work = [&](int64_t begin, int64_t end) {
    std::vector<T> acc(co);
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t n = unit / Ho, i = unit % Ho;
      const int64_t sv = rows.source[i];
      const T* w_row = w + rows.phase[i] * Ph * elems;
      T* out = output + unit * Wo * co;
      for (int64_t j = 0; j < Wo; ++j) {
        std::fill(acc.begin(), acc.end(), T(0));
        const int64_t sh = cols.source[j];
        int64_t b_min, b_max;
        ValidTaps(sh, half, k, W, &b_min, &b_max);
        const T* wp = w_row + cols.phase[j] * elems;
        for (int64_t a = 0; a < k && b_min <= b_max; ++a) {
          const int64_t r = sv + a - half;
          if (r < 0 || r >= H) continue;
          const T* xs = x + ((n * H + r) * W + (sh - half + b_min)) * ci;
          const int64_t len = (b_max - b_min + 1) * ci;
          const T* ws = wp + (a * k + b_min) * ci * layout.c_stride;
          if (layout.dot) {
            DotMany(xs, ws, layout.o_stride, co, len, acc.data());
          } else {
            for (int64_t m = 0; m < len; ++m) Axpy(acc.data(), xs[m], ws + m * co, co);
          }
        }
        std::copy(acc.begin(), acc.end(), out + j * co);
      }
    }
  };
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  Shard(workers->num_threads, workers->workers, g.batch * Ho, Wo * elems, work);
}

template <typename T>
void MetaUpscaleGradFunctor<CPUDevice, T>::operator()(
    OpKernelContext* ctx, const TfsrMetaUpscaleGeometry& g, bool /*deterministic: always*/,
    const T* grad_output, const T* x, const T* weights, T* grad_x, T* grad_weights) {
  const int64_t k = g.kernel, half = k / 2, ci = g.in_c, co = g.out_c;
  const int64_t N = g.batch, H = g.in_h, W = g.in_w, Ho = g.out_h, Wo = g.out_w;
  const int64_t Pv = g.rows.weight_period, Ph = g.cols.weight_period;
  const int64_t elems = k * k * ci * co;
  const int64_t pairs = Pv * Ph;
  const int64_t table = pairs * elems;
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();

  bool transpose = false;
  const WeightLayout layout = ChooseLayout(g, sizeof(T), &transpose);
  const T* w = weights;
  Tensor scratch;
  if (transpose) {
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_temp(DataTypeToEnum<T>::value, TensorShape({table}), &scratch));
    TransposeTable(ctx, weights, scratch.flat<T>().data(), pairs, k * k * ci, co);
    w = scratch.flat<T>().data();
  }
  const AxisTables rows = MakeTables(g.rows, half);
  const AxisTables cols = MakeTables(g.cols, half);

  // ---- grad_x, gather form: each input pixel sums over the outputs whose window covers it ----
  const double outputs_per_input = static_cast<double>(Ho * Wo) / static_cast<double>(H * W);
  auto grad_x_work = [&](int64_t begin, int64_t end) {
    std::vector<T> acc(ci);
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t n = unit / H, y = unit % H;
      const int64_t i_begin = rows.Begin(y - half), i_end = rows.End(y + half);
      T* gx = grad_x + unit * W * ci;
      for (int64_t xc = 0; xc < W; ++xc) {
        std::fill(acc.begin(), acc.end(), T(0));
        const int64_t j_begin = cols.Begin(xc - half), j_end = cols.End(xc + half);
        for (int64_t i = i_begin; i < i_end; ++i) {
          const int64_t a = y - rows.source[i] + half;
          const T* w_row = w + rows.phase[i] * Ph * elems;
          const T* go_row = grad_output + (n * Ho + i) * Wo * co;
          for (int64_t j = j_begin; j < j_end; ++j) {
            const int64_t b = xc - cols.source[j] + half;
            const T* go = go_row + j * co;
            const T* wp = w_row + cols.phase[j] * elems + (a * k + b) * ci * layout.c_stride;
            if (layout.dot) {
              AxpyMany(acc.data(), go, wp, layout.o_stride, co, ci);
            } else {
              for (int64_t c = 0; c < ci; ++c) {
                T s = 0;
#pragma omp simd reduction(+ : s)
                for (int64_t o = 0; o < co; ++o) s += wp[c * co + o] * go[o];
                acc[c] += s;
              }
            }
          }
        }
        std::copy(acc.begin(), acc.end(), gx + xc * ci);
      }
    }
  };
  Shard(workers->num_threads, workers->workers, N * H,
        static_cast<int64_t>(W * elems * outputs_per_input) + 1, grad_x_work);

  // ---- grad_weights: unit (phase row pv, split s) owns partial[s][pv]; fixed split count ----
  // The number of splits depends on the shapes only (not on the thread count), and the partials
  // are summed in split order, so the result is reproducible.
  const int64_t max_rows_per_phase = N * ((Ho + Pv - 1) / Pv);
  int64_t splits = std::max<int64_t>(1, (64 + Pv - 1) / Pv);
  splits = std::min(splits, std::max<int64_t>(1, max_rows_per_phase));
  splits = std::min<int64_t>(
      splits, std::max<int64_t>(1, kMaxScratchBytes / std::max<int64_t>(1, table * sizeof(T))));
  const bool direct = splits == 1 && !transpose;
  Tensor partial;
  T* acc_w = grad_weights;
  if (!direct) {
    OP_REQUIRES_OK(
        ctx, ctx->allocate_temp(DataTypeToEnum<T>::value, TensorShape({splits * table}), &partial));
    acc_w = partial.flat<T>().data();
  }
  auto grad_w_work = [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t pv = unit / splits, s = unit % splits;
      T* dst = acc_w + s * table + pv * Ph * elems;
      std::fill(dst, dst + Ph * elems, T(0));
      if (pv >= Ho) continue;
      const int64_t per_image = (Ho - 1 - pv) / Pv + 1;
      const int64_t total = N * per_image;
      const int64_t t_begin = total * s / splits, t_end = total * (s + 1) / splits;
      for (int64_t t = t_begin; t < t_end; ++t) {
        const int64_t n = t / per_image, i = pv + (t % per_image) * Pv;
        const int64_t sv = rows.source[i];
        const T* go_row = grad_output + (n * Ho + i) * Wo * co;
        // One pixel (any window): rank-1 updates of its phase's filter.
        auto single = [&](int64_t j) {
          const int64_t sh = cols.source[j];
          int64_t b_min, b_max;
          ValidTaps(sh, half, k, W, &b_min, &b_max);
          if (b_min > b_max) return;
          const T* go = go_row + j * co;
          T* dp = dst + cols.phase[j] * elems;
          for (int64_t a = 0; a < k; ++a) {
            const int64_t r = sv + a - half;
            if (r < 0 || r >= H) continue;
            const T* xs = x + ((n * H + r) * W + (sh - half + b_min)) * ci;
            const int64_t len = (b_max - b_min + 1) * ci;
            T* ds = dp + (a * k + b_min) * ci * layout.c_stride;
            if (layout.dot) {
              for (int64_t o = 0; o < co; ++o) Axpy(ds + o * layout.o_stride, go[o], xs, len);
            } else {
              for (int64_t m = 0; m < len; ++m) Axpy(ds + m * co, xs[m], go, co);
            }
          }
        };
        // Four pixels of one phase whose windows lie inside the image: one pass over the filter.
        auto four = [&](const int64_t* js) {
          T* dp = dst + cols.phase[js[0]] * elems;
          const T* g[4];
          for (int q = 0; q < 4; ++q) g[q] = go_row + js[q] * co;
          for (int64_t a = 0; a < k; ++a) {
            const int64_t r = sv + a - half;
            if (r < 0 || r >= H) continue;
            const T* xr = x + (n * H + r) * W * ci;
            const T* xs[4];
            for (int q = 0; q < 4; ++q) xs[q] = xr + (cols.source[js[q]] - half) * ci;
            T* ds = dp + a * k * ci;
            for (int64_t o = 0; o < co; ++o) {
              Axpy4(ds + o * layout.o_stride, g[0][o], g[1][o], g[2][o], g[3][o], xs[0], xs[1],
                    xs[2], xs[3], k * ci);
            }
          }
        };
        if (!layout.dot) {
          for (int64_t j = 0; j < Wo; ++j) single(j);
          continue;
        }
        for (int64_t ph = 0; ph < std::min(Ph, Wo); ++ph) {
          int64_t batch[4];
          int count = 0;
          for (int64_t j = ph; j < Wo; j += Ph) {
            const int64_t sh = cols.source[j];
            if (sh - half < 0 || sh + half >= W) {
              single(j);
              continue;
            }
            batch[count++] = j;
            if (count == 4) {
              four(batch);
              count = 0;
            }
          }
          for (int q = 0; q < count; ++q) single(batch[q]);
        }
      }
    }
  };
  Shard(workers->num_threads, workers->workers, Pv * splits,
        std::max<int64_t>(1, N * Wo * elems * ((Ho + Pv - 1) / Pv) / splits), grad_w_work);

  if (!direct) {
    // Sum the splits in order and undo the transposition, parallel over phase pairs.
    const int64_t inner = k * k * ci;
    Shard(workers->num_threads, workers->workers, pairs, splits * elems,
          [&](int64_t begin, int64_t end) {
            std::vector<T> sum(elems);
            for (int64_t p = begin; p < end; ++p) {
              std::copy(acc_w + p * elems, acc_w + (p + 1) * elems, sum.begin());
              for (int64_t s = 1; s < splits; ++s) {
                const T* part = acc_w + s * table + p * elems;
                for (int64_t e = 0; e < elems; ++e) sum[e] += part[e];
              }
              T* out = grad_weights + p * elems;
              if (transpose) {
                for (int64_t o = 0; o < co; ++o) {
                  for (int64_t e = 0; e < inner; ++e) out[e * co + o] = sum[o * inner + e];
                }
              } else {
                std::copy(sum.begin(), sum.end(), out);
              }
            }
          });
  }
}

template struct MetaUpscaleFunctor<CPUDevice, float>;
template struct MetaUpscaleFunctor<CPUDevice, double>;
template struct MetaUpscaleGradFunctor<CPUDevice, float>;
template struct MetaUpscaleGradFunctor<CPUDevice, double>;

}  // namespace tfsr
}  // namespace tensorflow
