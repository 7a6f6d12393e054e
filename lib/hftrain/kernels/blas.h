// The BLAS's sgemm on raw row-major float32 matrices, and OpenBLAS's thread count, for the
// fused kernels that run many small products themselves (kernels/attention.cpp). at::mm takes
// Tensors: a select, a view and a dispatch per product, which on attention's many small
// per-head products costs as much as the products.
#pragma once

#include <cstdint>

namespace hftrain {

// Row-major C (m x n) = alpha op(A) op(B) + beta C, op(X) = X ('N') or X^T ('T'); each matrix
// stored row by row, lda/ldb/ldc its row stride in floats. op(A) is m x k, op(B) k x n. beta 0:
// C is only written (whatever it held, NaN included, is ignored). Through the Fortran sgemm_
// that LibTorch's BLAS exports, else through ATen (the same within float rounding).
void gemm_rows(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// While alive, OpenBLAS runs each product on the calling thread alone, so that several threads
// may each run their own small products side by side (without it every product would be split
// across OpenBLAS's pool, for products too small to gain from it). ok(): the BLAS is OpenBLAS
// and this took effect; otherwise the caller should make its products from one thread.
class BlasOnOneThread {
 public:
  BlasOnOneThread();
  ~BlasOnOneThread();
  BlasOnOneThread(const BlasOnOneThread&) = delete;
  BlasOnOneThread& operator=(const BlasOnOneThread&) = delete;
  bool ok() const { return before_ > 0; }

 private:
  int before_ = 0;
};

}  // namespace hftrain
