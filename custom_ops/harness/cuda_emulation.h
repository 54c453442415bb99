/* Copyright 2026 The tfsr Authors. Licensed under the Apache License, Version 2.0. */

// Just enough of CUDA to run the meta-upscale kernels on a CPU, for machines without a GPU:
// every block runs in turn, its threads as fibers that meet at __syncthreads(); __shared__
// variables become statics (blocks never overlap). Blind to races and to the memory model, but it
// executes the kernels' real indexing, shared-memory layout and barrier structure. Used by
// `meta_upscale_harness.py emulate` (g++ -std=c++20), never by nvcc.

#ifndef TFSR_CUSTOM_OPS_HARNESS_CUDA_EMULATION_H_
#define TFSR_CUSTOM_OPS_HARNESS_CUDA_EMULATION_H_

#include <ucontext.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline dim3 threadIdx, blockIdx, blockDim, gridDim;
inline std::vector<unsigned char> tfsr_emu_dynamic_smem;

// Each CUDA thread of a block is a fiber (ucontext) on the one host thread; __syncthreads()
// switches back to the scheduler, which runs every fiber up to its next barrier in turn.
struct TfsrEmuFiber {
  ucontext_t context;
  std::vector<char> stack;
  bool done = false;
  int barriers = 0;  // __syncthreads() calls: must be equal across a block
};
inline ucontext_t tfsr_emu_scheduler;
inline std::vector<TfsrEmuFiber> tfsr_emu_fibers;
inline unsigned tfsr_emu_current = 0;
inline const std::function<void()>* tfsr_emu_body = nullptr;

inline void __syncthreads() {
  ++tfsr_emu_fibers[tfsr_emu_current].barriers;
  swapcontext(&tfsr_emu_fibers[tfsr_emu_current].context, &tfsr_emu_scheduler);
}

inline void TfsrEmuFiberMain() {
  (*tfsr_emu_body)();
  tfsr_emu_fibers[tfsr_emu_current].done = true;  // then back to the scheduler (uc_link)
}

typedef void* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorLaunchFailure = 4 };
inline cudaError_t tfsr_emu_last_error = cudaSuccess;
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = tfsr_emu_last_error;
  tfsr_emu_last_error = cudaSuccess;
  return e;
}
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "error";
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) {
  std::memset(p, v, n);
  return cudaSuccess;
}

inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }

template <typename T>
inline T atomicAdd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_add(value);
}

struct alignas(16) float4 {
  float x, y, z, w;
};

// float16: GCC's _Float16 (round to nearest even); bfloat16: the top 16 bits of a float.
struct __half {
  _Float16 v;
};
inline float __half2float(__half h) { return static_cast<float>(h.v); }
inline __half __float2half_rn(float f) { return __half{static_cast<_Float16>(f)}; }

struct __nv_bfloat16 {
  uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 b) {
  uint32_t u = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return __nv_bfloat16{0x7fc0};
  u += 0x7fff + ((u >> 16) & 1);
  return __nv_bfloat16{static_cast<uint16_t>(u >> 16)};
}

// kernel<<<grid, block, smem, stream>>>(args) becomes TfsrEmuLaunch(grid, block, smem, lambda).
// Without opting in, a block has 48 KB of shared memory, static arrays and the dynamic buffer
// together; a launch asking for more fails. The emulation cannot see the static arrays, so it
// counts the largest the kernels declare (four index arrays of 16 int64: 512 B) for each launch.
constexpr size_t kTfsrEmuSmemPerBlock = 48 * 1024;
constexpr size_t kTfsrEmuStaticSmem = 512;

inline void TfsrEmuLaunch(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  constexpr size_t kStack = 256 * 1024;
  if (smem + kTfsrEmuStaticSmem > kTfsrEmuSmemPerBlock) {
    tfsr_emu_last_error = cudaErrorInvalidValue;  // as a GPU: the launch fails, nothing runs
    return;
  }
  gridDim = grid;
  blockDim = block;
  tfsr_emu_body = &body;
  tfsr_emu_dynamic_smem.assign(smem + 16, 0xAB);  // garbage, as on a GPU
  const unsigned threads = block.x * block.y * block.z;
  tfsr_emu_fibers.resize(threads);
  for (unsigned bz = 0; bz < grid.z; ++bz) {
    for (unsigned by = 0; by < grid.y; ++by) {
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = dim3(bx, by, bz);
        for (auto& f : tfsr_emu_fibers) {
          f.stack.resize(kStack);
          f.done = false;
          f.barriers = 0;
          getcontext(&f.context);
          f.context.uc_stack.ss_sp = f.stack.data();
          f.context.uc_stack.ss_size = kStack;
          f.context.uc_link = &tfsr_emu_scheduler;
          makecontext(&f.context, TfsrEmuFiberMain, 0);
        }
        for (bool running = true; running;) {
          running = false;
          for (unsigned t = 0; t < threads; ++t) {
            if (tfsr_emu_fibers[t].done) continue;
            tfsr_emu_current = t;
            threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            swapcontext(&tfsr_emu_scheduler, &tfsr_emu_fibers[t].context);
            running = true;
          }
        }
        for (const auto& f : tfsr_emu_fibers) {
          if (f.barriers != tfsr_emu_fibers[0].barriers) {
            std::fprintf(stderr, "emulation: threads of block (%u,%u,%u) met %d and %d barriers\n",
                         bx, by, bz, tfsr_emu_fibers[0].barriers, f.barriers);
            std::abort();
          }
        }
      }
    }
  }
}
inline void TfsrEmuLaunch(dim3 grid, dim3 block, const std::function<void()>& body) {
  TfsrEmuLaunch(grid, block, 0, body);
}

#endif  // TFSR_CUSTOM_OPS_HARNESS_CUDA_EMULATION_H_
