// routelab native kernels: AVX2/FMA/F16C micro-kernels on a small persistent thread pool, exposed through
// Node-API (C, no extra npm dependency). Weights are read in their stored dtype (BF16 / F16 / F32) straight from
// the JS-owned typed arrays and widened to float32 in registers: nothing is ever copied or widened in memory.
//
// Matrix multiply is x·Wᵀ with both operands K-contiguous, computed as a register-blocked dot-product kernel
// (3 rows of x × 4 rows of W, 12 accumulators of 8 lanes, reduced horizontally at the end). This needs no packing
// of W, which matters for the many small per-expert multiplies of a MoE layer.
#include <node_api.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <linux/futex.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

enum Dtype { F32 = 0, BF16 = 1, F16 = 2 };

// ---------------------------------------------------------------------------------------------------------------
// Thread pool: `threads - 1` workers plus the calling thread (the JS thread, the only caller: one parallel region at
// a time). Every wait — a worker idle between regions, a thread at a phase boundary, the caller waiting for the
// workers still inside its region — spins for a bounded time (kSpinNs, with a pause instruction) and then sleeps on a
// futex, as OpenMP runtimes and OpenBLAS do. Nothing ever waits for a thread to *arrive*: every job takes its tasks
// from a shared counter, a worker joins a region only while it is open, and a phase boundary waits for the phase's
// tasks to be done, not for every thread. So a worker the scheduler has descheduled (other processes busy on the
// cores) costs at most the task it holds, never a whole time slice per barrier; with no worker running at all the
// caller does every task itself. Which thread runs which task never changes a result: each task writes its own
// outputs, computed the same way whichever thread computes them.

constexpr int64_t kSpinNsDefault = 50000;  // 50 µs

inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
inline void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}

int64_t SpinNsFromEnv() {
  const char* v = std::getenv("ROUTELAB_SPIN_US");
  if (!v || !*v) return kSpinNsDefault;
  char* end;
  double us = std::strtod(v, &end);
  return *end == '\0' && us >= 0 && us <= 1e6 ? static_cast<int64_t>(us * 1000) : kSpinNsDefault;
}

class Pool {
 public:
  explicit Pool(int n) : n_(n), spin_ns_(SpinNsFromEnv()) {
    for (int t = 1; t < n_; t++) workers_.emplace_back([this, t] { Loop(t); });
  }
  ~Pool() {
    stop_.store(true, std::memory_order_seq_cst);
    Notify();
    for (auto& w : workers_) w.join();
  }
  int size() const { return n_; }

  // Run job(thread) on the caller and on every worker that gets to join while the caller works; returns when the
  // caller's job is done and every worker that joined has left. `tasks`: how many tasks the job has (≤ 1: run inline,
  // nobody woken).
  void Run(const std::function<void(int)>& job, int tasks) {
    if (n_ == 1 || tasks <= 1) {
      job(0);
      return;
    }
    job_.store(&job, std::memory_order_relaxed);
    uint64_t seq = (state_.load(std::memory_order_relaxed) >> 32) + 1;
    state_.store(seq << 32 | kOpen, std::memory_order_seq_cst);  // publishes job_
    Notify();
    job(0);
    uint64_t s = state_.fetch_and(~kOpen, std::memory_order_seq_cst);  // no one joins from now on
    if (s & kCount) Await([&] { return (state_.load(std::memory_order_acquire) & kCount) == 0; });
    job_.store(nullptr, std::memory_order_relaxed);
  }

  // Wake whoever sleeps in Await (after making its condition true).
  void Notify() {
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) FutexWakeAll(&epoch_);
  }

  // Spin on ready() for at most spin_ns_, then sleep until a Notify makes it true.
  template <class Ready>
  void Await(Ready ready) {
    if (ready()) return;
    int64_t deadline = 0;
    for (int i = 1;; i++) {
      _mm_pause();
      if (ready()) return;
      if ((i & 15) == 0) {
        int64_t now = NowNs();
        if (deadline == 0) deadline = now + spin_ns_;
        else if (now >= deadline) break;
      }
    }
    for (;;) {
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      uint32_t e = epoch_.load(std::memory_order_seq_cst);
      if (ready()) {
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        return;
      }
      FutexWait(&epoch_, e);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
      if (ready()) return;
    }
  }

 private:
  static constexpr uint64_t kCount = 0xffff;  // workers inside the region
  static constexpr uint64_t kOpen = 1 << 16;  // the region still admits workers

  void Loop(int t) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t s;
      Await([&] {
        s = state_.load(std::memory_order_acquire);
        return (s >> 32) != seen || stop_.load(std::memory_order_relaxed);
      });
      if (stop_.load(std::memory_order_acquire)) return;
      seen = s >> 32;
      // Join unless the caller has closed the region (or a newer one began) meanwhile.
      bool joined = false;
      while ((s >> 32) == seen && (s & kOpen)) {
        if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
          joined = true;
          break;
        }
      }
      if (!joined) continue;
      (*job_.load(std::memory_order_relaxed))(t);
      uint64_t before = state_.fetch_sub(1, std::memory_order_seq_cst);
      if ((before & kCount) == 1 && !(before & kOpen)) Notify();  // the caller may be waiting for the last to leave
    }
  }

  int n_;
  int64_t spin_ns_;
  std::vector<std::thread> workers_;
  std::atomic<const std::function<void(int)>*> job_{nullptr};
  std::atomic<uint64_t> state_{0};  // region sequence << 32 | kOpen | workers inside
  std::atomic<bool> stop_{false};
  alignas(64) std::atomic<uint32_t> epoch_{0};  // futex word: bumped by every Notify
  std::atomic<int> sleepers_{0};
};

// A phase of a region: tasks taken from `next`; Wait returns once all `tasks` are done, whichever threads did them.
struct Phase {
  std::atomic<int> next{0};
  std::atomic<int> done{0};
  // Take and run tasks until none is left; then wait for the ones other threads hold.
  template <class Fn>
  void Run(Pool& pool, int tasks, Fn fn) {
    for (int task; (task = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
      fn(task);
      if (done.fetch_add(1, std::memory_order_seq_cst) + 1 == tasks) pool.Notify();
    }
    pool.Await([&] { return done.load(std::memory_order_acquire) >= tasks; });
  }
};

std::mutex g_pool_mutex;
Pool* g_pool = nullptr;
int g_env_count = 0;

// One thread until setThreads says otherwise: how many threads the process may use is decided in one place, by the
// caller (src/backends/cpus.ts: the affinity mask and the cgroup CPU quota).
Pool& GetPool() {
  if (!g_pool) g_pool = new Pool(1);
  return *g_pool;
}

// Below this many floating-point operations a region runs on the caller alone: waking or meeting other threads would
// cost more than the work (a few microseconds of one core).
constexpr double kMinParallelFlops = 1 << 17;

// The tasks worth spreading over threads: 1 (run inline) when the whole region is too small.
inline int Spread(int tasks, double flops) { return flops < kMinParallelFlops ? 1 : tasks; }

// The threads a region of this many flops runs on (Spread's decision), which sizes its blocks.
inline int ThreadsFor(double flops) { return flops < kMinParallelFlops ? 1 : GetPool().size(); }

// ---------------------------------------------------------------------------------------------------------------
// Loads that widen the stored dtype to float32.

template <int D>
inline __m256 Load8(const void* base, size_t i);
template <>
inline __m256 Load8<F32>(const void* base, size_t i) {
  return _mm256_loadu_ps(static_cast<const float*>(base) + i);
}
template <>
inline __m256 Load8<BF16>(const void* base, size_t i) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
template <>
inline __m256 Load8<F16>(const void* base, size_t i) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i)));
}

template <int D>
inline float Load1(const void* base, size_t i);
template <>
inline float Load1<F32>(const void* base, size_t i) { return static_cast<const float*>(base)[i]; }
template <>
inline float Load1<BF16>(const void* base, size_t i) {
  uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(base)[i]) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
template <>
inline float Load1<F16>(const void* base, size_t i) { return _cvtsh_ss(static_cast<const uint16_t*>(base)[i]); }

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// [Σa, Σb, Σc, Σd]
inline __m128 Hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m256 ab = _mm256_hadd_ps(a, b);
  __m256 cd = _mm256_hadd_ps(c, d);
  __m256 abcd = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// ---------------------------------------------------------------------------------------------------------------
// GEMM: C[t, j] (+)= Σ_k A_t[k] · W[n0 + j, k] over a k-slice, for MR rows of A and NR rows of W.

constexpr int kMR = 3;
constexpr int kNR = 4;
constexpr int kKC = 512;   // k-slice: a 3-row panel of A (6 KiB) stays in L1
constexpr int kMB = 48;    // rows of A per task
constexpr int kNB = 128;   // rows of W per task (128 × 512 BF16 = 128 KiB, in L2)

template <int D, int MR, int NR>
inline void Micro(const float* const* a, const void* w, size_t ldw, size_t n0, size_t k0, int kn, float* c,
                  int ldc, bool accumulate) {
  __m256 acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < NR; j++) acc[i][j] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= kn; k += 8) {
    __m256 av[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; i++) av[i] = _mm256_loadu_ps(a[i] + k);
#pragma GCC unroll 4
    for (int j = 0; j < NR; j++) {
      __m256 wv = Load8<D>(w, (n0 + j) * ldw + k0 + k);
#pragma GCC unroll 4
      for (int i = 0; i < MR; i++) acc[i][j] = _mm256_fmadd_ps(av[i], wv, acc[i][j]);
    }
  }
  float r[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; i++) {
    if (NR == 4) {
      _mm_storeu_ps(r[i], Hsum4(acc[i][0], acc[i][NR > 1 ? 1 : 0], acc[i][NR > 2 ? 2 : 0], acc[i][NR > 3 ? 3 : 0]));
    } else {
#pragma GCC unroll 4
      for (int j = 0; j < NR; j++) r[i][j] = Hsum(acc[i][j]);
    }
  }
  for (; k < kn; k++) {
    for (int j = 0; j < NR; j++) {
      float wk = Load1<D>(w, (n0 + j) * ldw + k0 + k);
      for (int i = 0; i < MR; i++) r[i][j] += a[i][k] * wk;
    }
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + r[i][j] : r[i][j];
}

template <int D>
using MicroFn = void (*)(const float* const*, const void*, size_t, size_t, size_t, int, float*, int, bool);

template <int D, int MR>
constexpr MicroFn<D> PickNR(int nr) {
  return nr == 4 ? Micro<D, MR, 4> : nr == 3 ? Micro<D, MR, 3> : nr == 2 ? Micro<D, MR, 2> : Micro<D, MR, 1>;
}

template <int D>
MicroFn<D> PickMicro(int mr, int nr) {
  return mr == 3 ? PickNR<D, 3>(nr) : mr == 2 ? PickNR<D, 2>(nr) : PickNR<D, 1>(nr);
}

// c[0 .. 4) (+)= a · W[n0 + j, k0 : k0 + kn] for j < 4, kn a multiple of 8: Micro<D, 1, 4>'s arithmetic, bit for bit,
// with the four sums stored as one vector (decode's lm_head spends a fifth of its time in Micro's scalar epilogue).
template <int D>
inline void Gemv4(const float* a, const void* w, size_t ldw, size_t n0, size_t k0, int kn, float* c, bool accumulate) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  size_t r0 = n0 * ldw + k0;
  for (int k = 0; k < kn; k += 8) {
    __m256 av = _mm256_loadu_ps(a + k);
    acc0 = _mm256_fmadd_ps(av, Load8<D>(w, r0 + k), acc0);
    acc1 = _mm256_fmadd_ps(av, Load8<D>(w, r0 + ldw + k), acc1);
    acc2 = _mm256_fmadd_ps(av, Load8<D>(w, r0 + 2 * ldw + k), acc2);
    acc3 = _mm256_fmadd_ps(av, Load8<D>(w, r0 + 3 * ldw + k), acc3);
  }
  __m128 r = Hsum4(acc0, acc1, acc2, acc3);
  _mm_storeu_ps(c, accumulate ? _mm_add_ps(_mm_loadu_ps(c), r) : r);
}

// tile[mb × nb] = rows(A)[mb × K] · W[n0 : n0 + nb, :]ᵀ
template <int D>
void GemmTile(const float* const* rows, int mb, const void* w, size_t K, size_t n0, int nb, float* tile, size_t ldc) {
  for (size_t k0 = 0; k0 < K; k0 += kKC) {
    int kn = static_cast<int>(std::min<size_t>(kKC, K - k0));
    bool accumulate = k0 > 0;
    for (int t = 0; t < mb; t += kMR) {
      int mr = std::min(kMR, mb - t);
      const float* ap[kMR];
      for (int i = 0; i < mr; i++) ap[i] = rows[t + i] + k0;
      int j = 0;
      // One row of x is decode's shape (the lm_head, each expert of a token): a kernel called directly, inlined into
      // this loop, with the same arithmetic as through the pointer below.
      if (mr == 1 && kn % 8 == 0)
        for (; j + kNR <= nb; j += kNR) Gemv4<D>(ap[0], w, K, n0 + j, k0, kn, tile + t * ldc + j, accumulate);
      for (; j < nb; j += kNR) {
        int nr = std::min(kNR, nb - j);
        PickMicro<D>(mr, nr)(ap, w, K, n0 + j, k0, kn, tile + t * ldc + j, static_cast<int>(ldc), accumulate);
      }
    }
  }
}

using TileFn = void (*)(const float* const*, int, const void*, size_t, size_t, int, float*, size_t);

TileFn PickTile(int dtype) {
  return dtype == BF16 ? GemmTile<BF16> : dtype == F16 ? GemmTile<F16> : GemmTile<F32>;
}


// ---------------------------------------------------------------------------------------------------------------
// Packed GEMM for many rows: each task owns a block of W rows (output columns). Per k-slice the block is widened
// and transposed once into 16-column panels (a thread-local scratch of nb × kKC floats, never the whole weight);
// a 6×16 outer-product kernel then broadcasts x values straight from the row pointers (no packing of x).

constexpr int kPMR = 6;
constexpr int kPKC = 256;  // 16 × 256 floats = 16 KiB panel in L1
constexpr int kPNB = 128;  // W rows per task
constexpr int kPMC = 120;  // rows of x per sweep (120 × 256 floats = 120 KiB in L2)

inline void Transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// dst[p][k][16] = W[n0 + 16p + j, k0 + k] (zero past row `nEnd`), p over ceil(nb / 16) panels.
template <int D>
void PackW(const void* w, size_t ldw, size_t n0, int nb, size_t k0, int kc, float* dst) {
  int panels = (nb + 15) / 16;
  for (int p = 0; p < panels; p++) {
    float* pd = dst + static_cast<size_t>(p) * kc * 16;
    for (int half = 0; half < 2; half++) {
      int j0 = p * 16 + half * 8;
      int valid = std::max(0, std::min(8, nb - j0));
      int k = 0;
      if (valid == 8) {
        for (; k + 8 <= kc; k += 8) {
          __m256 r[8];
          for (int i = 0; i < 8; i++) r[i] = Load8<D>(w, (n0 + j0 + i) * ldw + k0 + k);
          Transpose8(r);
          for (int i = 0; i < 8; i++) _mm256_storeu_ps(pd + (k + i) * 16 + half * 8, r[i]);
        }
      }
      for (; k < kc; k++)
        for (int i = 0; i < 8; i++) pd[k * 16 + half * 8 + i] = i < valid ? Load1<D>(w, (n0 + j0 + i) * ldw + k0 + k) : 0.0f;
    }
  }
}

// c[MR × 16] (+)= a rows · panel; `ncols` ≤ 16 columns are stored.
template <int MR>
inline void Micro16(const float* const* a, const float* panel, int kc, float* c, size_t ldc, int ncols, bool accumulate) {
  __m256 acc0[MR], acc1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
  for (int k = 0; k < kc; k++) {
    __m256 b0 = _mm256_loadu_ps(panel + k * 16), b1 = _mm256_loadu_ps(panel + k * 16 + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
      __m256 av = _mm256_broadcast_ss(a[i] + k);
      acc0[i] = _mm256_fmadd_ps(av, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(av, b1, acc1[i]);
    }
  }
  if (ncols == 16) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
      float* ci = c + i * ldc;
      if (accumulate) {
        acc0[i] = _mm256_add_ps(acc0[i], _mm256_loadu_ps(ci));
        acc1[i] = _mm256_add_ps(acc1[i], _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, acc0[i]);
      _mm256_storeu_ps(ci + 8, acc1[i]);
    }
  } else {
    alignas(32) float tmp[16];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
      _mm256_store_ps(tmp, acc0[i]);
      _mm256_store_ps(tmp + 8, acc1[i]);
      float* ci = c + i * ldc;
      for (int j = 0; j < ncols; j++) ci[j] = accumulate ? ci[j] + tmp[j] : tmp[j];
    }
  }
}

using Micro16Fn = void (*)(const float* const*, const float*, int, float*, size_t, int, bool);
constexpr Micro16Fn kMicro16[7] = {nullptr, Micro16<1>, Micro16<2>, Micro16<3>, Micro16<4>, Micro16<5>, Micro16<6>};

thread_local std::vector<float> tl_pack;

// c[T × nb] (row stride ldc) = rows(A)[T × K] · W[n0 : n0 + nb, :]ᵀ
template <int D>
void GemmPacked(const float* const* rows, int T, const void* w, size_t K, size_t n0, int nb, float* c, size_t ldc) {
  // The whole W block (nb × K) is widened and transposed once, then swept by 120-row chunks of x; a chunk's
  // output tile (120 × nb) stays in L2 across the k-slices.
  int panels = (nb + 15) / 16;
  size_t need = static_cast<size_t>(panels) * 16 * K;
  if (tl_pack.size() < need) tl_pack.resize(need);
  float* pack = tl_pack.data();
  PackW<D>(w, K, n0, nb, 0, static_cast<int>(K), pack);
  for (int t0 = 0; t0 < T; t0 += kPMC) {
    int tEnd = std::min(T, t0 + kPMC);
    for (size_t k0 = 0; k0 < K; k0 += kPKC) {
      int kc = static_cast<int>(std::min<size_t>(kPKC, K - k0));
      bool accumulate = k0 > 0;
      for (int p = 0; p < panels; p++) {
        int ncols = std::min(16, nb - p * 16);
        const float* panel = pack + static_cast<size_t>(p) * K * 16 + k0 * 16;
        for (int t = t0; t < tEnd; t += kPMR) {
          int mr = std::min(kPMR, tEnd - t);
          const float* ap[kPMR];
          for (int i = 0; i < mr; i++) ap[i] = rows[t + i] + k0;
          kMicro16[mr](ap, panel, kc, c + t * ldc + p * 16, ldc, ncols, accumulate);
        }
      }
    }
  }
}

using PackedFn = void (*)(const float* const*, int, const void*, size_t, size_t, int, float*, size_t);
PackedFn PickPacked(int dtype) {
  return dtype == BF16 ? GemmPacked<BF16> : dtype == F16 ? GemmPacked<F16> : GemmPacked<F32>;
}

// Below this many rows the unpacked dot-product kernel wins (packing W would cost more than it saves).
constexpr int kPackedMinRows = 96;

thread_local std::vector<float> tl_tile_a, tl_tile_b;
thread_local std::vector<const float*> tl_rows;

float* Scratch(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// c[tn × nb] (row stride ldc) = rows[0 .. tn) · W[n0 : n0 + nb, :]ᵀ for tn of a region's rowsN rows, with the kernel
// that suits rowsN: packed from kPackedMinRows rows in all, however the region's rows are split into tasks, so that
// the split never changes which kernel (and so which sums) computes a row.
void GemmPart(int dtype, int rowsN, const float* const* rows, int tn, const void* w, size_t K, size_t n0, int nb, float* c,
              size_t ldc) {
  if (rowsN >= kPackedMinRows) PickPacked(dtype)(rows, tn, w, K, n0, nb, c, ldc);
  else PickTile(dtype)(rows, tn, w, K, n0, nb, c, ldc);
}

void GemmAny(int dtype, const float* const* rows, int tn, const void* w, size_t K, size_t n0, int nb, float* c, size_t ldc) {
  GemmPart(dtype, tn, rows, tn, w, K, n0, nb, c, ldc);
}

// Rows per task when `blocks` column blocks of n rows share `threads` threads: all n when the blocks already give every
// thread work, else chunks (multiples of the 6-row kernel) making about two tasks per thread — a weight of 128 rows is
// one packed block, and a popular expert's hundreds of tokens would otherwise run on one thread.
int RowChunk(int n, int blocks, int threads) {
  if (threads == 1 || blocks >= 2 * threads || n <= kPMR) return n;
  int chunks = std::min((2 * threads + blocks - 1) / blocks, (n + kPMR - 1) / kPMR);
  return ((n + chunks - 1) / chunks + kPMR - 1) / kPMR * kPMR;
}

// Width of a column block: kPNB for the packed kernel, and on one thread, where there is nothing to balance (wider
// blocks read a weight matrix as longer contiguous runs, which the prefetchers need when a decode step's experts come
// from DRAM: measured 15 % faster); for few rows on several threads, narrow enough that every thread gets work. The
// width never changes a result: each output is computed the same way in any block.
int BlockWidth(int rowsN, int N, int threads) {
  if (rowsN >= kPackedMinRows || threads == 1) return kPNB;
  int target = (N + 4 * threads - 1) / (4 * threads);
  return std::min(kPNB, std::max(16, (target + 15) / 16 * 16));
}

// out[T × N] = x[T × K] · W[N × K]ᵀ
void Matmul(const float* x, int T, int K, const void* w, int dtype, int N, float* out) {
  Pool& pool = GetPool();
  std::vector<const float*> rows(T);
  for (int t = 0; t < T; t++) rows[t] = x + static_cast<size_t>(t) * K;
  const int threads = ThreadsFor(2.0 * T * K * N);
  int nbw = BlockWidth(T, N, threads);
  int nBlocks = (N + nbw - 1) / nbw;
  int chunk = RowChunk(T, nBlocks, threads);
  int tasks = nBlocks * ((T + chunk - 1) / chunk);
  std::atomic<int> next{0};
  pool.Run([&](int) {
    for (int task; (task = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
      int n0 = (task % nBlocks) * nbw, t0 = (task / nBlocks) * chunk;
      int nb = std::min(nbw, N - n0), tn = std::min(chunk, T - t0);
      GemmPart(dtype, T, rows.data() + t0, tn, w, K, n0, nb, out + static_cast<size_t>(t0) * N + n0, N);
    }
  }, Spread(tasks, 2.0 * T * K * N));
}

// ---------------------------------------------------------------------------------------------------------------
// Greedy decoding's lm_head: per row of x, the index of the largest entry of x·Wᵀ (times `scale` when it is not 1,
// as Granite divides its logits), without the [T × N] logits ever reaching memory outside a thread's tile. Each
// column block is computed by the same tile kernel as Matmul, so the values compared are Matmul's logits bit for bit.
//
// The answer must be exactly sampling.ts's scan `if (x[i] > x[best]) best = i` from best = 0: the lowest index wins a
// tie, and NaN never wins (nor loses, when it sits at index 0). Blocks are scanned independently and merged in column
// order, which equals the single scan because each block reports the first index of its largest non-NaN entry, and
// that entry replaces the running best only when strictly greater — a NaN at index 0 is never replaced.

struct Best {
  float value;
  int index;  // −1: the block has no entry above −∞ (all −∞ or NaN), so it can never replace the running best
};

// The first index of the block's largest non-NaN entry above −∞: the block's maximum by vector max (whose NaN lanes
// lose, as the operand order below makes them), then its first position (−0 and +0 compare equal, as in the scan).
inline Best BlockBest(const float* v, int n, int offset) {
  __m256 m8 = _mm256_set1_ps(-INFINITY);
  int j = 0;
  for (; j + 8 <= n; j += 8) m8 = _mm256_max_ps(_mm256_loadu_ps(v + j), m8);  // max(NaN, m) = m
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
  float m = _mm_cvtss_f32(m4);
  for (; j < n; j++)
    if (v[j] > m) m = v[j];
  if (!(m > -INFINITY)) return {-INFINITY, -1};
  for (j = 0; v[j] != m; j++) {}
  return {v[j], offset + j};
}

// out[t] = argmax_j (scale ·) (x[t] · W[j])
void MatmulArgmax(const float* x, int T, int K, const void* w, int dtype, int N, float scale, int32_t* out) {
  Pool& pool = GetPool();
  std::vector<const float*> rows(T);
  for (int t = 0; t < T; t++) rows[t] = x + static_cast<size_t>(t) * K;
  int nbw = BlockWidth(T, N, ThreadsFor(2.0 * T * K * N));
  int nBlocks = (N + nbw - 1) / nbw;
  std::vector<Best> blocks(static_cast<size_t>(nBlocks) * T);
  std::vector<float> first(T);  // x[t] · W[0]: the scan's starting best (kept even when NaN)
  std::atomic<int> next{0};
  pool.Run([&](int) {
    float* tile = Scratch(tl_tile_a, static_cast<size_t>(T) * nbw);
    for (int task; (task = next.fetch_add(1, std::memory_order_relaxed)) < nBlocks;) {
      int n0 = task * nbw, nb = std::min(nbw, N - n0);
      GemmAny(dtype, rows.data(), T, w, K, n0, nb, tile, nb);
      for (int t = 0; t < T; t++) {
        float* v = tile + static_cast<size_t>(t) * nb;
        if (scale != 1.0f)
          for (int j = 0; j < nb; j++) v[j] *= scale;
        if (task == 0) first[t] = v[0];
        blocks[static_cast<size_t>(task) * T + t] = BlockBest(v, nb, n0);
      }
    }
  }, Spread(nBlocks, 2.0 * T * K * N));
  for (int t = 0; t < T; t++) {
    Best best{first[t], 0};
    for (int b = 0; b < nBlocks; b++) {
      const Best& c = blocks[static_cast<size_t>(b) * T + t];
      if (c.index >= 0 && c.value > best.value) best = c;
    }
    out[t] = best.index;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Grouped expert FFN. Experts run in index order (so each output row accumulates in the reference's order); inside
// an expert both phases are split into column-block tasks over all threads:
//   A: act[n × I] = silu(x_sel · Wgᵀ) ⊙ (x_sel · Wuᵀ)    B: out[token] += weight · (act · Wdᵀ)  (disjoint columns)

inline float Silu(float g) { return g / (1.0f + std::exp(-g)); }

// Ask for rows [n0, n0 + nb) of a [·, K] weight of the given dtype to be brought into this core's caches.
inline void PrefetchRows(const void* w, int dtype, size_t K, int n0, int nb) {
  size_t bytes = dtype == F32 ? 4 : 2;
  const char* begin = static_cast<const char*>(w) + static_cast<size_t>(n0) * K * bytes;
  const char* end = begin + static_cast<size_t>(nb) * K * bytes;
  for (const char* p = begin; p < end; p += 64) _mm_prefetch(p, _MM_HINT_T0);
}

// Below this many tokens an expert's multiply is too short for the hardware prefetchers to ramp up on its weights,
// which a decode step mostly finds in DRAM: each task then prefetches the same block of the next routed expert.
constexpr int kPrefetchMaxTokens = 8;

void Moe(const float* x, int H, int I, const int32_t* offsets, int E, const int32_t* tokens, const float* weights,
         const void* const* gates, const void* const* ups, const void* const* downs, int dtype, float* out) {
  int maxN = 0;
  for (int e = 0; e < E; e++) maxN = std::max(maxN, offsets[e + 1] - offsets[e]);
  if (maxN == 0) return;
  std::vector<float> act(static_cast<size_t>(maxN) * I);
  std::vector<const float*> xrows(offsets[E]), arows(maxN);
  for (int i = 0; i < offsets[E]; i++) xrows[i] = x + static_cast<size_t>(tokens[i]) * H;
  for (int i = 0; i < maxN; i++) arows[i] = act.data() + static_cast<size_t>(i) * I;
  // Two phases per expert: B reads every row of A's act, and the next expert's A overwrites it.
  std::vector<Phase> phases(2 * E);
  Pool& pool = GetPool();
  // Every routed expert is two phases, each ending in a wait for its tasks: the threads are worth waking only when a
  // phase, not the whole call, is big enough (a decode step's experts, 8 phases of 2·128·128 flops, run on the caller
  // alone, which measured faster than sharing them at 2 threads). Alone, it uses one thread's block widths.
  int routed = 0;
  for (int e = 0; e < E; e++) routed += offsets[e + 1] > offsets[e];
  const double phaseFlops = 6.0 * offsets[E] * H * I / std::max(1, 2 * routed);
  const int threads = ThreadsFor(phaseFlops);
  // A phase's tasks: column blocks of the weight, times row chunks when the blocks are too few for the threads.
  struct Split {
    int width, blocks, chunk, tasks;
  };
  auto split = [&](int n, int N) {
    int width = BlockWidth(n, N, threads), blocks = (N + width - 1) / width, chunk = RowChunk(n, blocks, threads);
    return Split{width, blocks, chunk, blocks * ((n + chunk - 1) / chunk)};
  };
  int maxTasks = 0;
  for (int e = 0; e < E; e++) {
    int n = offsets[e + 1] - offsets[e];
    if (n > 0) maxTasks = std::max({maxTasks, split(n, I).tasks, split(n, H).tasks});
  }
  std::vector<int> nextRouted(E, -1);
  for (int e = E - 1, following = -1; e >= 0; e--) {
    nextRouted[e] = following;
    if (offsets[e + 1] > offsets[e]) following = e;
  }
  pool.Run([&](int) {
    for (int e = 0; e < E; e++) {
      int begin = offsets[e], n = offsets[e + 1] - begin;
      if (n == 0) continue;
      const int32_t* tok = tokens + begin;
      int ahead = n <= kPrefetchMaxTokens ? nextRouted[e] : -1;
      const Split a = split(n, I), b = split(n, H);
      float* g = Scratch(tl_tile_a, static_cast<size_t>(std::max(a.chunk * a.width, b.chunk * b.width)));
      float* u = Scratch(tl_tile_b, static_cast<size_t>(a.chunk) * a.width);
      phases[2 * e].Run(pool, a.tasks, [&](int task) {
        int n0 = (task % a.blocks) * a.width, nb = std::min(a.width, I - n0);
        int r0 = (task / a.blocks) * a.chunk, tn = std::min(a.chunk, n - r0);
        if (ahead >= 0) {
          PrefetchRows(gates[ahead], dtype, H, n0, nb);
          PrefetchRows(ups[ahead], dtype, H, n0, nb);
        }
        GemmPart(dtype, n, xrows.data() + begin + r0, tn, gates[e], H, n0, nb, g, nb);
        GemmPart(dtype, n, xrows.data() + begin + r0, tn, ups[e], H, n0, nb, u, nb);
        for (int i = 0; i < tn; i++) {
          float* dst = act.data() + static_cast<size_t>(r0 + i) * I + n0;
          for (int j = 0; j < nb; j++) dst[j] = Silu(g[i * nb + j]) * u[i * nb + j];
        }
      });
      phases[2 * e + 1].Run(pool, b.tasks, [&](int task) {
        int n0 = (task % b.blocks) * b.width, nb = std::min(b.width, H - n0);
        int r0 = (task / b.blocks) * b.chunk, tn = std::min(b.chunk, n - r0);
        if (ahead >= 0) PrefetchRows(downs[ahead], dtype, I, n0, nb);
        GemmPart(dtype, n, arows.data() + r0, tn, downs[e], I, n0, nb, g, nb);
        for (int i = 0; i < tn; i++) {
          float wt = weights[begin + r0 + i];
          float* dst = out + static_cast<size_t>(tok[r0 + i]) * H + n0;
          for (int j = 0; j < nb; j++) dst[j] += g[i * nb + j] * wt;
        }
      });
    }
  }, Spread(maxTasks, phaseFlops));
}

// ---------------------------------------------------------------------------------------------------------------
// exp over 8 lanes (Cephes polynomial, ~1 ulp on the range attention uses).

inline __m256 Exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
  x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  __m256 x2 = _mm256_mul_ps(x, x);
  y = _mm256_fmadd_ps(y, x2, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// ---------------------------------------------------------------------------------------------------------------
// Token scores straight from the final hidden states x [R, K]: logits = scale · x · Wᵀ [R, V] are formed `blockRows`
// rows at a time into one buffer kept between calls (sized once per shape), and each block's (row, token) pairs are
// scored before the next block overwrites it — the [R × V] logits never exist at once (at a 4,096-token window and a
// 50,304-token vocabulary they would be 824 MB). Per needed row the normaliser logZ = max + log Σ exp(x − max) (exps in
// float lanes, summed in double), then per pair the log-probability and the rank (tokens with a larger logit, plus
// lower ids with an equal one).
//
// A block's logits are bit for bit those of Matmul over all R rows: every output element is one micro-kernel's sum
// whatever the blocking, and the kernel is chosen from R (packed from kPackedMinRows rows), not from the block's rows,
// as Matmul chooses it whenever it has enough column blocks not to split the rows too (V ≥ 2 · threads · kPNB).

double RowLogZ(const float* x, int V) {
  __m256 m8 = _mm256_set1_ps(-INFINITY);
  int v = 0;
  for (; v + 8 <= V; v += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + v));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m8);
  float max = -INFINITY;
  for (float l : lanes) max = std::max(max, l);
  for (int u = v; u < V; u++) max = std::max(max, x[u]);
  if (!std::isfinite(max)) return max;
  const __m256 shift = _mm256_set1_ps(max);
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
  for (v = 0; v + 8 <= V; v += 8) {
    __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + v), shift));
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double sums[4];
  _mm256_store_pd(sums, _mm256_add_pd(lo, hi));
  double sum = sums[0] + sums[1] + sums[2] + sums[3];
  for (; v < V; v++) sum += std::exp(static_cast<double>(x[v]) - max);
  return max + std::log(sum);
}

int TokenRank(const float* x, int V, int t) {
  const float xt = x[t];
  const __m256 target = _mm256_set1_ps(xt);
  int rank = 0, v = 0;
  for (; v + 8 <= V; v += 8) rank += __builtin_popcount(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + v), target, _CMP_GT_OQ)));
  for (; v < V; v++) rank += x[v] > xt;
  for (v = 0; v < t; v++) rank += x[v] == xt;
  return rank;
}

// out[n × V] = rows[0 .. n) · W[V × K]ᵀ, every column block a task, with the kernel `packed` names.
void BlockLogits(const float* const* rows, int n, int K, const void* w, int dtype, int V, bool packed, float* out) {
  Pool& pool = GetPool();
  int nbw = packed ? kPNB : BlockWidth(n, V, ThreadsFor(2.0 * n * K * V));
  int tasks = (V + nbw - 1) / nbw;
  std::atomic<int> next{0};
  pool.Run([&](int) {
    for (int task; (task = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
      int n0 = task * nbw, nb = std::min(nbw, V - n0);
      if (packed) PickPacked(dtype)(rows, n, w, K, n0, nb, out + n0, V);
      else PickTile(dtype)(rows, n, w, K, n0, nb, out + n0, V);
    }
  }, Spread(tasks, 2.0 * n * K * V));
}

void ScoreHidden(const float* x, int R, int K, const void* w, int dtype, int V, float scale, int blockRows,
                 const int32_t* rows, const int32_t* targets, int P, double* logProbs, int32_t* ranks) {
  // Pairs grouped by row (a counting sort): block [r0, r1) owns pairs order[first[r0] .. first[r1]).
  std::vector<int> first(R + 1, 0), order(P);
  for (int i = 0; i < P; i++) first[rows[i] + 1]++;
  for (int r = 0; r < R; r++) first[r + 1] += first[r];
  {
    std::vector<int> fill(first.begin(), first.end() - 1);
    for (int i = 0; i < P; i++) order[fill[rows[i]]++] = i;
  }
  const bool packed = R >= kPackedMinRows;
  const int block = std::min(R, blockRows);
  // [block × V], kept for the next call of the same shape; one per calling (JS) thread, so the pool's workers are
  // handed its address, never the thread_local itself (theirs would be their own, empty one).
  thread_local std::vector<float> buffer;
  if (buffer.size() < static_cast<size_t>(block) * V) buffer.assign(static_cast<size_t>(block) * V, 0.0f);
  float* const logits = buffer.data();
  std::vector<const float*> rowPtr(block);
  std::vector<int> needed(block);
  std::vector<double> logZ(block);
  for (int r0 = 0; r0 < R; r0 += block) {
    const int n = std::min(block, R - r0);
    int nNeeded = 0;
    for (int i = 0; i < n; i++) {
      rowPtr[i] = x + static_cast<size_t>(r0 + i) * K;
      if (first[r0 + i + 1] > first[r0 + i]) needed[nNeeded++] = i;
    }
    if (nNeeded == 0) continue;
    BlockLogits(rowPtr.data(), n, K, w, dtype, V, packed, logits);
    std::atomic<int> next{0};
    GetPool().Run([&](int) {
      for (int j; (j = next.fetch_add(1, std::memory_order_relaxed)) < nNeeded;) {
        float* row = logits + static_cast<size_t>(needed[j]) * V;
        if (scale != 1.0f)
          for (int v = 0; v < V; v++) row[v] *= scale;
        logZ[needed[j]] = RowLogZ(row, V);
      }
    }, Spread(nNeeded, 8.0 * nNeeded * V));
    const int p0 = first[r0], p1 = first[r0 + n];
    next = 0;
    GetPool().Run([&](int) {
      for (int p; (p = p0 + next.fetch_add(1, std::memory_order_relaxed)) < p1;) {
        const int i = order[p], local = rows[i] - r0;
        const float* row = logits + static_cast<size_t>(local) * V;
        logProbs[i] = static_cast<double>(row[targets[i]]) - logZ[local];
        ranks[i] = TokenRank(row, V, targets[i]);
      }
    }, Spread(p1 - p0, 2.0 * (p1 - p0) * V));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Causal GQA attention over packed sequences with KV stores keys [B, capacity, kW] and values [B, capacity, vW]
// (kW = nkv·hd, vW = nkv·vd: value heads may be narrower or wider than query/key heads, as in multi-head latent
// attention). softmax(scale · q·k) over the visible keys: a query at position p sees keys max(0, p − window + 1) … p,
// or every key 0 … p when window ≤ 0. Tasks: (sequence, query head, block of kQB queries), the costliest first.
//
// Each query is computed on its own, in one fixed order — its dot products, then max, exps and their sum, then the
// exp-weighted sum of values over its keys in increasing order, then the division — so its output never depends on
// which other queries share its task, batch or thread. A task walks its keys in blocks of kKB, and every query of the
// task passes over a block while it is in L1: the keys and values are read from L2 once per task rather than once
// per query (at 2,048 positions that was the whole cost of attention).

constexpr int kQB = 16;  // queries per task
constexpr int kKB = 64;  // keys per block (64 keys of a 32-wide head: 8 KiB of keys and 8 of values)

// q · k over hd (a multiple of 8): two accumulators over alternate 8-lane chunks, summed, then Hsum.
inline __m256 DotLanes(const float* qv, const float* kr, int hd) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int d = 0;
  for (; d + 16 <= hd; d += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qv + d), _mm256_loadu_ps(kr + d), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qv + d + 8), _mm256_loadu_ps(kr + d + 8), a1);
  }
  if (d < hd) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qv + d), _mm256_loadu_ps(kr + d), a0);
  return _mm256_add_ps(a0, a1);
}

// The dots of q with keys k0, k0 + ld, k0 + 2ld, k0 + 3ld, each bit for bit Hsum(DotLanes(…)): the four horizontal sums
// share their shuffles, grouped as Hsum groups them ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
inline void Dot4(const float* qv, const float* k0, size_t ld, int hd, float* d) {
  __m256 u0 = DotLanes(qv, k0, hd), u1 = DotLanes(qv, k0 + ld, hd), u2 = DotLanes(qv, k0 + 2 * ld, hd), u3 = DotLanes(qv, k0 + 3 * ld, hd);
  __m256 s01 = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
  __m256 s23 = _mm256_add_ps(_mm256_permute2f128_ps(u2, u3, 0x20), _mm256_permute2f128_ps(u2, u3, 0x31));
  __m256 v = _mm256_add_ps(_mm256_shuffle_ps(s01, s23, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(s01, s23, _MM_SHUFFLE(3, 2, 3, 2)));
  __m256 r = _mm256_add_ps(_mm256_shuffle_ps(v, v, _MM_SHUFFLE(2, 0, 2, 0)), _mm256_shuffle_ps(v, v, _MM_SHUFFLE(3, 1, 3, 1)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, r);
  d[0] = lanes[0], d[1] = lanes[4], d[2] = lanes[1], d[3] = lanes[5];
}

// acc[0 .. 8C) += Σ_{j0 ≤ j < j1} p[j] · v_j[0 .. 8C) in increasing j, held in registers (through memory every key
// would wait on the store of the one before), for one query or, sharing each value load, for two.
template <int C>
inline void WeightedValues(const float* p, int j0, int j1, const float* v, size_t ldv, float* acc) {
  if (j0 >= j1) return;
  __m256 a[C];
#pragma GCC unroll 8
  for (int c = 0; c < C; c++) a[c] = _mm256_loadu_ps(acc + 8 * c);
  for (int j = j0; j < j1; j++) {
    __m256 pj = _mm256_set1_ps(p[j]);
    const float* vr = v + static_cast<size_t>(j) * ldv;
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) a[c] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 8 * c), a[c]);
  }
#pragma GCC unroll 8
  for (int c = 0; c < C; c++) _mm256_storeu_ps(acc + 8 * c, a[c]);
}

template <int C>
inline void WeightedValues2(const float* p, const float* p2, int j0, int j1, const float* v, size_t ldv, float* acc, float* acc2) {
  if (j0 >= j1) return;
  __m256 a[C], b[C];
#pragma GCC unroll 4
  for (int c = 0; c < C; c++) a[c] = _mm256_loadu_ps(acc + 8 * c), b[c] = _mm256_loadu_ps(acc2 + 8 * c);
  for (int j = j0; j < j1; j++) {
    __m256 pj = _mm256_set1_ps(p[j]), qj = _mm256_set1_ps(p2[j]);
    const float* vr = v + static_cast<size_t>(j) * ldv;
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
      __m256 vc = _mm256_loadu_ps(vr + 8 * c);
      a[c] = _mm256_fmadd_ps(pj, vc, a[c]);
      b[c] = _mm256_fmadd_ps(qj, vc, b[c]);
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < C; c++) _mm256_storeu_ps(acc + 8 * c, a[c]), _mm256_storeu_ps(acc2 + 8 * c, b[c]);
}

using WeightedValuesFn = void (*)(const float*, int, int, const float*, size_t, float*);
using WeightedValues2Fn = void (*)(const float*, const float*, int, int, const float*, size_t, float*, float*);
constexpr WeightedValuesFn kWeightedValues[5] = {nullptr, WeightedValues<1>, WeightedValues<2>, WeightedValues<3>, WeightedValues<4>};
constexpr WeightedValues2Fn kWeightedValues2[5] = {nullptr, WeightedValues2<1>, WeightedValues2<2>, WeightedValues2<3>, WeightedValues2<4>};

// acc += Σ_{j ∈ [j0, j1)} p[j] · v_j over all vd (a multiple of 8) columns, 32 at a time.
inline void AddWeightedValues(const float* p, int j0, int j1, const float* v, size_t ldv, int vd, float* acc) {
  for (int d = 0; d < vd; d += 32) kWeightedValues[std::min(4, (vd - d) / 8)](p, j0, j1, v + d, ldv, acc + d);
}

// Two queries' ranges [l1, h1) and [l2, h2) of one key block, each still walked in increasing j: first what only one
// of them has before the keys they share, then the shared keys for both (one load of each value row), then the rest.
inline void AddWeightedValuesPair(const float* p, int l1, int h1, const float* p2, int l2, int h2, const float* v, size_t ldv,
                                  int vd, float* acc, float* acc2) {
  int lo = std::max(l1, l2), hi = std::min(h1, h2);
  if (lo >= hi) {
    AddWeightedValues(p, l1, h1, v, ldv, vd, acc);
    AddWeightedValues(p2, l2, h2, v, ldv, vd, acc2);
    return;
  }
  AddWeightedValues(p, l1, lo, v, ldv, vd, acc);
  AddWeightedValues(p2, l2, lo, v, ldv, vd, acc2);
  for (int d = 0; d < vd; d += 32) kWeightedValues2[std::min(4, (vd - d) / 8)](p, p2, lo, hi, v + d, ldv, acc + d, acc2 + d);
  AddWeightedValues(p, hi, h1, v, ldv, vd, acc);
  AddWeightedValues(p2, hi, h2, v, ldv, vd, acc2);
}

void Attention(const float* q, const float* k, const float* v, float* keys, float* values, int capacity, int kW,
               int vW, const int32_t* starts, const int32_t* past, int B, int nh, int nkv, int hd, int vd, float scale,
               int window, float* out) {
  int qWidth = nh * hd, oWidth = nh * vd, group = nh / nkv;
  for (int b = 0; b < B; b++) {
    size_t kBase = static_cast<size_t>(b) * capacity * kW, vBase = static_cast<size_t>(b) * capacity * vW;
    int len = starts[b + 1] - starts[b];
    std::memcpy(keys + kBase + static_cast<size_t>(past[b]) * kW, k + static_cast<size_t>(starts[b]) * kW,
                static_cast<size_t>(len) * kW * 4);
    std::memcpy(values + vBase + static_cast<size_t>(past[b]) * vW, v + static_cast<size_t>(starts[b]) * vW,
                static_cast<size_t>(len) * vW * 4);
  }
  // Task list, the most visible keys (latest queries, up to the window) first for balance.
  struct Task { int b, h, s0, s1; };
  std::vector<Task> tasks;
  for (int b = 0; b < B; b++) {
    int len = starts[b + 1] - starts[b];
    for (int s0 = 0; s0 < len; s0 += kQB)
      for (int h = 0; h < nh; h++) tasks.push_back({b, h, s0, std::min(len, s0 + kQB)});
  }
  auto cost = [&](const Task& t) {
    int last = past[t.b] + t.s1;
    return window > 0 ? std::min(last, window) : last;
  };
  std::sort(tasks.begin(), tasks.end(), [&](const Task& x, const Task& y) { return cost(x) > cost(y); });
  std::atomic<int> next{0};
  int nTasks = static_cast<int>(tasks.size());
  bool vecK = hd % 8 == 0, vecV = vd % 8 == 0;
  double flops = 0;
  for (const Task& t : tasks) flops += 2.0 * (t.s1 - t.s0) * cost(t) * (hd + vd);
  GetPool().Run([&](int) {
    // Per query of the task: its scores (indexed by key − lo) and its accumulated values.
    const size_t stride = static_cast<size_t>(capacity) + 8;
    float* scores = Scratch(tl_tile_a, kQB * stride);
    float* acc = Scratch(tl_tile_b, static_cast<size_t>(kQB) * vd);
    int first[kQB], end[kQB];
    float mx[kQB], sum[kQB];
    for (int ti; (ti = next.fetch_add(1, std::memory_order_relaxed)) < nTasks;) {
      const Task& task = tasks[ti];
      const int G = task.s1 - task.s0;
      for (int g = 0; g < G; g++) {
        end[g] = past[task.b] + task.s0 + g + 1;  // keys first … end − 1 are visible
        first[g] = window > 0 ? std::max(0, end[g] - window) : 0;
        mx[g] = -INFINITY;
      }
      const int lo = first[0], hi = end[G - 1];
      const float* kFirst = keys + static_cast<size_t>(task.b) * capacity * kW + (task.h / group) * hd;
      const float* vFirst = values + static_cast<size_t>(task.b) * capacity * vW + (task.h / group) * vd;
      auto queryOf = [&](int g) { return q + static_cast<size_t>(starts[task.b] + task.s0 + g) * qWidth + task.h * hd; };
      auto scoresOf = [&](int g) { return scores + g * stride - lo; };  // scoresOf(g)[j] is key j's
      // Scores, block by block of keys, every query of the task over each block.
      for (int b0 = lo; b0 < hi; b0 += kKB) {
        const int b1 = std::min(hi, b0 + kKB);
        for (int g = 0; g < G; g++) {
          const float* qv = queryOf(g);
          float* sc = scoresOf(g);
          int j = std::max(b0, first[g]);
          const int je = std::min(b1, end[g]);
          float m = mx[g];
          if (vecK) {
            for (; j + 4 <= je; j += 4) {
              float d[4];
              Dot4(qv, kFirst + static_cast<size_t>(j) * kW, kW, hd, d);
              for (int i = 0; i < 4; i++) {
                sc[j + i] = d[i] * scale;
                m = std::max(m, sc[j + i]);
              }
            }
          }
          for (; j < je; j++) {
            const float* kr = kFirst + static_cast<size_t>(j) * kW;
            float dot;
            if (vecK) {
              dot = Hsum(DotLanes(qv, kr, hd));
            } else {
              dot = 0;
              for (int d = 0; d < hd; d++) dot += qv[d] * kr[d];
            }
            sc[j] = dot * scale;
            m = std::max(m, sc[j]);
          }
          mx[g] = m;
        }
      }
      // Per query: exps and their sum, in key order.
      for (int g = 0; g < G; g++) {
        float* p = scoresOf(g) + first[g];
        const int n = end[g] - first[g];
        __m256 vmx = _mm256_set1_ps(mx[g]), vsum = _mm256_setzero_ps();
        int j = 0;
        for (; j + 8 <= n; j += 8) {
          __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(p + j), vmx));
          _mm256_storeu_ps(p + j, e);
          vsum = _mm256_add_ps(vsum, e);
        }
        float s = Hsum(vsum);
        for (; j < n; j++) {
          p[j] = std::exp(p[j] - mx[g]);
          s += p[j];
        }
        sum[g] = s;
        std::fill(acc + static_cast<size_t>(g) * vd, acc + static_cast<size_t>(g + 1) * vd, 0.0f);
      }
      // Values weighted by the exps, block by block of keys, queries in pairs over each block.
      for (int b0 = lo; b0 < hi; b0 += kKB) {
        const int b1 = std::min(hi, b0 + kKB);
        auto range = [&](int g, int& l, int& h) { l = std::max(b0, first[g]), h = std::min(b1, end[g]); };
        int g = 0;
        if (vecV) {
          for (; g + 2 <= G; g += 2) {
            int l1, h1, l2, h2;
            range(g, l1, h1), range(g + 1, l2, h2);
            AddWeightedValuesPair(scoresOf(g), l1, h1, scoresOf(g + 1), l2, h2, vFirst, vW, vd, acc + static_cast<size_t>(g) * vd,
                                  acc + static_cast<size_t>(g + 1) * vd);
          }
        }
        for (; g < G; g++) {
          int l, h;
          range(g, l, h);
          float* a = acc + static_cast<size_t>(g) * vd;
          const float* p = scoresOf(g);
          if (vecV) {
            AddWeightedValues(p, l, h, vFirst, vW, vd, a);
          } else {
            for (int j = l; j < h; j++) {
              const float* vr = vFirst + static_cast<size_t>(j) * vW;
              for (int d = 0; d < vd; d++) a[d] += p[j] * vr[d];
            }
          }
        }
      }
      for (int g = 0; g < G; g++) {
        float inv = 1.0f / sum[g];
        float* o = out + static_cast<size_t>(starts[task.b] + task.s0 + g) * oWidth + task.h * vd;
        for (int d = 0; d < vd; d++) o[d] = acc[static_cast<size_t>(g) * vd + d] * inv;
      }
    }
  }, Spread(nTasks, flops));
}

// ---------------------------------------------------------------------------------------------------------------
// RMSNorm over runs of `cols` values: out = w ⊙ (x · 1/sqrt(mean(x²) + eps)), sums of squares in double. Per-head
// norms are the same call with rows · heads rows of one head's width.

template <int D>
void RmsNormT(const float* x, int rows, int cols, const void* w, double eps, float* out) {
  std::atomic<int> next{0};
  // About 16 rows of a 2048-wide hidden state per task; more of the narrow runs of a per-head norm.
  const int perTask = std::max(16, 32768 / std::max(cols, 1));
  int tasks = (rows + perTask - 1) / perTask;
  GetPool().Run([&](int) {
    for (int task; (task = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
      for (int r = task * perTask; r < std::min(rows, (task + 1) * perTask); r++) {
        const float* xr = x + static_cast<size_t>(r) * cols;
        double ss = 0;
        for (int c = 0; c < cols; c++) ss += static_cast<double>(xr[c]) * xr[c];
        float inv = static_cast<float>(1.0 / std::sqrt(static_cast<double>(static_cast<float>(ss / cols)) + eps));
        float* o = out + static_cast<size_t>(r) * cols;
        for (int c = 0; c < cols; c++) o[c] = Load1<D>(w, c) * (xr[c] * inv);
      }
    }
  }, Spread(tasks, 4.0 * rows * cols));
}

// ---------------------------------------------------------------------------------------------------------------
// Node-API glue.

#define NAPI_CALL(env, call)                                                   \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error((env), nullptr, "routelab native: N-API call failed");  \
      return nullptr;                                                          \
    }                                                                          \
  } while (0)

struct Arr {
  void* data = nullptr;
  size_t length = 0;  // elements
  napi_typedarray_type type = napi_float32_array;
};

bool GetArr(napi_env env, napi_value v, Arr* out) {
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &out->type, &out->length, &out->data, &buffer, &offset) != napi_ok) {
    napi_throw_type_error(env, nullptr, "routelab native: expected a typed array");
    return false;
  }
  return true;
}

bool GetInt(napi_env env, napi_value v, int* out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, nullptr, "routelab native: expected an integer");
    return false;
  }
  return true;
}

// Throw a RangeError with the printf-formatted message unless ok.
__attribute__((format(printf, 3, 4))) bool Check(napi_env env, bool ok, const char* format, ...) {
  if (!ok) {
    char message[320];
    va_list args;
    va_start(args, format);
    std::vsnprintf(message, sizeof message, format, args);
    va_end(args);
    napi_throw_range_error(env, nullptr, message);
  }
  return ok;
}

// A typed array of one element type; otherwise a TypeError naming the function and the argument.
bool GetTyped(napi_env env, napi_value v, napi_typedarray_type type, const char* fn, const char* name, Arr* out) {
  if (!GetArr(env, v, out)) return false;
  if (out->type != type) {
    char message[160];
    std::snprintf(message, sizeof message, "routelab native %s: %s must be %s", fn, name,
                  type == napi_float32_array ? "a Float32Array" : type == napi_int32_array ? "an Int32Array" : "typed");
    napi_throw_type_error(env, nullptr, message);
    return false;
  }
  return true;
}

bool GetDouble(napi_env env, napi_value v, double* out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    napi_throw_type_error(env, nullptr, "routelab native: expected a number");
    return false;
  }
  return true;
}

template <size_t N>
bool Args(napi_env env, napi_callback_info info, napi_value (&argv)[N]) {
  size_t argc = N;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != N) {
    napi_throw_type_error(env, nullptr, "routelab native: wrong number of arguments");
    return false;
  }
  return true;
}

size_t ElemSize(int dtype) { return dtype == F32 ? 4 : 2; }

// matmul(x, T, K, w, dtype, N, out)
napi_value JsMatmul(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!Args(env, info, argv)) return nullptr;
  Arr x, w, out;
  int T, K, dtype, N;
  if (!GetArr(env, argv[0], &x) || !GetInt(env, argv[1], &T) || !GetInt(env, argv[2], &K) ||
      !GetArr(env, argv[3], &w) || !GetInt(env, argv[4], &dtype) || !GetInt(env, argv[5], &N) ||
      !GetArr(env, argv[6], &out))
    return nullptr;
  if (!Check(env, x.length >= static_cast<size_t>(T) * K && w.length >= static_cast<size_t>(N) * K &&
                      out.length >= static_cast<size_t>(T) * N && dtype >= 0 && dtype <= 2,
             "routelab native matmul: bad sizes"))
    return nullptr;
  if (T > 0 && N > 0) Matmul(static_cast<float*>(x.data), T, K, w.data, dtype, N, static_cast<float*>(out.data));
  return nullptr;
}

// matmulArgmax(x, T, K, w, dtype, N, scale, out: Int32Array[T])
napi_value JsMatmulArgmax(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!Args(env, info, argv)) return nullptr;
  Arr x, w, out;
  int T, K, dtype, N;
  double scale;
  if (!GetArr(env, argv[0], &x) || !GetInt(env, argv[1], &T) || !GetInt(env, argv[2], &K) ||
      !GetArr(env, argv[3], &w) || !GetInt(env, argv[4], &dtype) || !GetInt(env, argv[5], &N) ||
      !GetDouble(env, argv[6], &scale) || !GetTyped(env, argv[7], napi_int32_array, "matmulArgmax", "out", &out))
    return nullptr;
  if (!Check(env, x.length >= static_cast<size_t>(T) * K && w.length >= static_cast<size_t>(N) * K &&
                      out.length >= static_cast<size_t>(T) && dtype >= 0 && dtype <= 2 && N > 0,
             "routelab native matmulArgmax: bad sizes"))
    return nullptr;
  if (T > 0)
    MatmulArgmax(static_cast<float*>(x.data), T, K, w.data, dtype, N, static_cast<float>(scale),
                 static_cast<int32_t*>(out.data));
  return nullptr;
}

// moe(x, T, H, I, offsets, tokens, weights, gates[], ups[], downs[], dtype, out)
napi_value JsMoe(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  if (!Args(env, info, argv)) return nullptr;
  Arr x, offsets, tokens, weights, out;
  int T, H, I, dtype;
  if (!GetArr(env, argv[0], &x) || !GetInt(env, argv[1], &T) || !GetInt(env, argv[2], &H) ||
      !GetInt(env, argv[3], &I) || !GetArr(env, argv[4], &offsets) || !GetArr(env, argv[5], &tokens) ||
      !GetArr(env, argv[6], &weights) || !GetInt(env, argv[10], &dtype) || !GetArr(env, argv[11], &out))
    return nullptr;
  int E = static_cast<int>(offsets.length) - 1;
  if (!Check(env, E >= 0 && x.length >= static_cast<size_t>(T) * H && out.length >= static_cast<size_t>(T) * H,
             "routelab native moe: bad sizes"))
    return nullptr;
  const int32_t* off = static_cast<const int32_t*>(offsets.data);
  const int32_t* tok = static_cast<const int32_t*>(tokens.data);
  if (!Check(env, off[0] == 0 && static_cast<size_t>(off[E]) <= tokens.length && static_cast<size_t>(off[E]) <= weights.length,
             "routelab native moe: bad plan"))
    return nullptr;
  for (int e = 0; e < E; e++)
    if (!Check(env, off[e + 1] >= off[e], "routelab native moe: offsets must not decrease")) return nullptr;
  for (int i = 0; i < off[E]; i++)
    if (!Check(env, tok[i] >= 0 && tok[i] < T, "routelab native moe: token out of range")) return nullptr;
  std::vector<const void*> ptrs[3];
  for (int m = 0; m < 3; m++) {
    for (int e = 0; e < E; e++) {
      napi_value el;
      NAPI_CALL(env, napi_get_element(env, argv[7 + m], e, &el));
      Arr a;
      if (!GetArr(env, el, &a)) return nullptr;
      if (!Check(env, a.length >= static_cast<size_t>(H) * I, "routelab native moe: expert weight too small"))
        return nullptr;
      ptrs[m].push_back(a.data);
    }
  }
  Moe(static_cast<float*>(x.data), H, I, off, E, tok, static_cast<const float*>(weights.data), ptrs[0].data(),
      ptrs[1].data(), ptrs[2].data(), dtype, static_cast<float*>(out.data));
  return nullptr;
}

// attention(q, k, v, keys, values, capacity, kW, vW, starts, past, nh, nkv, hd, vd, scale, window, out); window ≤ 0:
// no window.
napi_value JsAttention(napi_env env, napi_callback_info info) {
  napi_value argv[17];
  if (!Args(env, info, argv)) return nullptr;
  constexpr const char* fn = "attention";
  Arr q, k, v, keys, values, starts, past, out;
  int capacity, kW, vW, nh, nkv, hd, vd, window;
  double scale;
  if (!GetTyped(env, argv[0], napi_float32_array, fn, "q", &q) ||
      !GetTyped(env, argv[1], napi_float32_array, fn, "k", &k) ||
      !GetTyped(env, argv[2], napi_float32_array, fn, "v", &v) ||
      !GetTyped(env, argv[3], napi_float32_array, fn, "keys", &keys) ||
      !GetTyped(env, argv[4], napi_float32_array, fn, "values", &values) || !GetInt(env, argv[5], &capacity) ||
      !GetInt(env, argv[6], &kW) || !GetInt(env, argv[7], &vW) ||
      !GetTyped(env, argv[8], napi_int32_array, fn, "starts", &starts) ||
      !GetTyped(env, argv[9], napi_int32_array, fn, "past", &past) || !GetInt(env, argv[10], &nh) ||
      !GetInt(env, argv[11], &nkv) || !GetInt(env, argv[12], &hd) || !GetInt(env, argv[13], &vd) ||
      !GetDouble(env, argv[14], &scale) || !GetInt(env, argv[15], &window) ||
      !GetTyped(env, argv[16], napi_float32_array, fn, "out", &out))
    return nullptr;
  int B = static_cast<int>(past.length);
  if (!Check(env, nh > 0 && nkv > 0 && nh % nkv == 0 && hd > 0 && vd > 0 && kW == nkv * hd && vW == nkv * vd,
             "routelab native attention: bad shapes (%d heads over %d kv heads of %d/%d, widths %d/%d)", nh, nkv,
             hd, vd, kW, vW))
    return nullptr;
  size_t slots = static_cast<size_t>(B) * std::max(capacity, 0);
  if (!Check(env, capacity >= 0 && keys.length >= slots * kW && values.length >= slots * vW,
             "routelab native attention: a store of %zu/%zu values cannot hold %d sequences of %d positions × %d/%d",
             keys.length, values.length, B, capacity, kW, vW))
    return nullptr;
  if (!Check(env, starts.length == static_cast<size_t>(B) + 1, "routelab native attention: %zu starts for %d sequences",
             starts.length, B))
    return nullptr;
  const int32_t* st = static_cast<const int32_t*>(starts.data);
  const int32_t* pa = static_cast<const int32_t*>(past.data);
  if (!Check(env, st[0] >= 0, "routelab native attention: starts[0] is %d", st[0])) return nullptr;
  for (int b = 0; b < B; b++) {
    if (!Check(env, st[b + 1] >= st[b] && pa[b] >= 0, "routelab native attention: sequence %d has start %d, end %d, past %d",
               b, st[b], st[b + 1], pa[b]))
      return nullptr;
    // (int64: past + length may overflow int32 for garbage input)
    long long need = static_cast<long long>(pa[b]) + st[b + 1] - st[b];
    if (!Check(env, need <= capacity, "routelab native attention: sequence %d needs %lld positions, cache holds %d", b,
               need, capacity))
      return nullptr;
  }
  size_t T = static_cast<size_t>(st[B]);
  if (!Check(env, q.length >= T * nh * hd && k.length >= T * kW && v.length >= T * vW && out.length >= T * nh * vd,
             "routelab native attention: %zu tokens need q/k/v/out of %zu/%zu/%zu/%zu values, got %zu/%zu/%zu/%zu", T,
             T * nh * hd, T * kW, T * vW, T * nh * vd, q.length, k.length, v.length, out.length))
    return nullptr;
  Attention(static_cast<float*>(q.data), static_cast<float*>(k.data), static_cast<float*>(v.data),
            static_cast<float*>(keys.data), static_cast<float*>(values.data), capacity, kW, vW, st, pa, B, nh, nkv, hd,
            vd, static_cast<float>(scale), window, static_cast<float*>(out.data));
  return nullptr;
}

// rmsNorm(x, rows, cols, w, dtype, eps, out)
napi_value JsRmsNorm(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!Args(env, info, argv)) return nullptr;
  constexpr const char* fn = "rmsNorm";
  Arr x, w, out;
  int rows, cols, dtype;
  double eps;
  if (!GetTyped(env, argv[0], napi_float32_array, fn, "x", &x) || !GetInt(env, argv[1], &rows) ||
      !GetInt(env, argv[2], &cols) || !GetArr(env, argv[3], &w) || !GetInt(env, argv[4], &dtype) ||
      !GetDouble(env, argv[5], &eps) || !GetTyped(env, argv[6], napi_float32_array, fn, "out", &out))
    return nullptr;
  if (!Check(env, dtype >= 0 && dtype <= 2 && w.type == (dtype == F32 ? napi_float32_array : napi_uint16_array),
             "routelab native rmsNorm: weight dtype %d does not match its typed array", dtype))
    return nullptr;
  size_t n = static_cast<size_t>(std::max(rows, 0)) * std::max(cols, 0);
  if (!Check(env, rows >= 0 && cols > 0 && x.length >= n && out.length >= n && w.length >= static_cast<size_t>(cols),
             "routelab native rmsNorm: [%d × %d] needs %zu values in x and out and %d weights, got %zu, %zu and %zu",
             rows, cols, n, cols, x.length, out.length, w.length))
    return nullptr;
  auto kernel = dtype == BF16 ? RmsNormT<BF16> : dtype == F16 ? RmsNormT<F16> : RmsNormT<F32>;
  kernel(static_cast<float*>(x.data), rows, cols, w.data, eps, static_cast<float*>(out.data));
  return nullptr;
}

// scoreTokens(x, R, K, w, dtype, V, scale, blockRows, rows, targets, logProbs, ranks)
napi_value JsScoreTokens(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  if (!Args(env, info, argv)) return nullptr;
  Arr x, w, rows, targets, logProbs, ranks;
  int R, K, dtype, V, blockRows;
  double scale;
  constexpr const char* fn = "scoreTokens";
  if (!GetTyped(env, argv[0], napi_float32_array, fn, "x", &x) || !GetInt(env, argv[1], &R) ||
      !GetInt(env, argv[2], &K) || !GetArr(env, argv[3], &w) || !GetInt(env, argv[4], &dtype) ||
      !GetInt(env, argv[5], &V) || !GetDouble(env, argv[6], &scale) || !GetInt(env, argv[7], &blockRows) ||
      !GetTyped(env, argv[8], napi_int32_array, fn, "rows", &rows) ||
      !GetTyped(env, argv[9], napi_int32_array, fn, "targets", &targets) ||
      !GetTyped(env, argv[10], napi_float64_array, fn, "logProbs", &logProbs) ||
      !GetTyped(env, argv[11], napi_int32_array, fn, "ranks", &ranks))
    return nullptr;
  const size_t P = rows.length;
  if (!Check(env, R >= 0 && K > 0 && V > 0 && blockRows > 0 && dtype >= 0 && dtype <= 2 &&
                      w.type == (dtype == F32 ? napi_float32_array : napi_uint16_array) &&
                      x.length >= static_cast<size_t>(R) * K && w.length >= static_cast<size_t>(V) * K &&
                      targets.length == P && logProbs.length == P && ranks.length == P,
             "routelab native scoreTokens: bad sizes"))
    return nullptr;
  const int32_t* r = static_cast<const int32_t*>(rows.data);
  const int32_t* t = static_cast<const int32_t*>(targets.data);
  for (size_t i = 0; i < P; i++)
    if (!Check(env, r[i] >= 0 && r[i] < R && t[i] >= 0 && t[i] < V, "routelab native scoreTokens: row or token out of range"))
      return nullptr;
  if (P > 0)
    ScoreHidden(static_cast<const float*>(x.data), R, K, w.data, dtype, V, static_cast<float>(scale), blockRows, r, t,
                static_cast<int>(P), static_cast<double*>(logProbs.data), static_cast<int32_t*>(ranks.data));
  return nullptr;
}

// setThreads(n) → n actually used
napi_value JsSetThreads(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!Args(env, info, argv)) return nullptr;
  int n;
  if (!GetInt(env, argv[0], &n)) return nullptr;
  if (!Check(env, n >= 1 && n <= 1024, "routelab native setThreads: expected 1 … 1024 threads, got %d", n)) return nullptr;
  {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    if (!g_pool || g_pool->size() != n) {
      delete g_pool;
      g_pool = new Pool(n);
    }
  }
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, n, &result));
  return result;
}

napi_value JsThreads(napi_env env, napi_callback_info) {
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, GetPool().size(), &result));
  return result;
}

// CPU seconds (user + system) of this process's terminated, reaped children: the difference across one child's run
// is that child's CPU time at microsecond resolution (/proc's clock ticks are 10 ms), which `bench cpu --llama-cpp`
// needs for a reference process that runs for a fraction of a second.
napi_value JsChildrenCpuSeconds(napi_env env, napi_callback_info) {
  rusage usage{};
  getrusage(RUSAGE_CHILDREN, &usage);
  double seconds = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  napi_value result;
  NAPI_CALL(env, napi_create_double(env, seconds, &result));
  return result;
}

// Join the workers when the environment goes away, so process exit never meets a joinable std::thread.
void Cleanup(void*) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (--g_env_count == 0) {
    delete g_pool;
    g_pool = nullptr;
  }
}

napi_value Init(napi_env env, napi_value exports) {
  {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    g_env_count++;
  }
  napi_add_env_cleanup_hook(env, Cleanup, nullptr);
  napi_property_descriptor props[] = {
      {"matmul", nullptr, JsMatmul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matmulArgmax", nullptr, JsMatmulArgmax, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"moe", nullptr, JsMoe, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attention", nullptr, JsAttention, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rmsNorm", nullptr, JsRmsNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"scoreTokens", nullptr, JsScoreTokens, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, JsSetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, JsThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"childrenCpuSeconds", nullptr, JsChildrenCpuSeconds, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
