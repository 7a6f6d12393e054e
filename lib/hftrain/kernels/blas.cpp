#include "hftrain/kernels/blas.h"

#include <ATen/Functions.h>

#include <dlfcn.h>

#include <climits>

namespace hftrain {

namespace {

// The Fortran BLAS sgemm (column-major), as LibTorch's own BLAS exports it.
using Sgemm = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);
using GetThreads = int (*)();
using SetThreads = void (*)(int);

template <typename F>
F blas_symbol(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_DEFAULT, name));
}

Sgemm sgemm() {
  static const Sgemm f = blas_symbol<Sgemm>("sgemm_");
  return f;
}

// A (rows x cols) row-major matrix with row stride ld, as a Tensor over the same memory.
at::Tensor rows_view(const float* p, int64_t rows, int64_t cols, int64_t ld) {
  return at::from_blob(const_cast<float*>(p), {rows, cols}, {ld, 1}, at::TensorOptions().dtype(at::kFloat));
}

void through_aten(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const at::Tensor ta = trans_a == 'N' ? rows_view(a, m, k, lda) : rows_view(a, k, m, lda).t();
  const at::Tensor tb = trans_b == 'N' ? rows_view(b, k, n, ldb) : rows_view(b, n, k, ldb).t();
  at::Tensor tc = rows_view(c, m, n, ldc);
  tc.addmm_(ta, tb, beta, alpha);  // beta 0 ignores what c held
}

}  // namespace

void gemm_rows(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  const Sgemm f = sgemm();
  const bool fits = m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX;
  if (!f || !fits || k <= 0) return through_aten(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  // Row-major C = op(A) op(B) is, column-major, C^T = op(B)^T op(A)^T; a row-major matrix with row
  // stride ld is, column-major, its own transpose with leading dimension ld. So BLAS's first
  // operand is b with b's own flag, its second a with a's.
  const int M = static_cast<int>(n), N = static_cast<int>(m), K = static_cast<int>(k);
  const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
  f(&trans_b, &trans_a, &M, &N, &K, &alpha, b, &lb, a, &la, &beta, c, &lc);
}

BlasOnOneThread::BlasOnOneThread() {
  static const GetThreads get = blas_symbol<GetThreads>("openblas_get_num_threads");
  static const SetThreads set = blas_symbol<SetThreads>("openblas_set_num_threads");
  if (!get || !set || !sgemm()) return;
  before_ = get();
  if (before_ > 1) set(1);
}

BlasOnOneThread::~BlasOnOneThread() {
  static const SetThreads set = blas_symbol<SetThreads>("openblas_set_num_threads");
  if (before_ > 1) set(before_);
}

}  // namespace hftrain
