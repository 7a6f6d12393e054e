#include "hftrain/kernels/batched_gemm.h"

#include <ATen/Functions.h>

#include <dlfcn.h>

#include <climits>

namespace hftrain {

namespace {

// The Fortran BLAS sgemm (column-major), as LibTorch's own BLAS exports it.
using Sgemm = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);

Sgemm sgemm() {
  static const Sgemm f = reinterpret_cast<Sgemm>(::dlsym(RTLD_DEFAULT, "sgemm_"));
  return f;
}

// One operand as the column-major BLAS sees its memory. A row-major (r x c) matrix with row
// stride ld is, column-major, its transpose: trans 'N' gives the transpose. A column-major one
// (column stride ld) needs 'T' for the same.
struct Operand {
  char trans;
  int ld;
  bool ok;
};
// (Both dimensions are above 1 here, so at most one of the two strides is 1.)
Operand as_transposed(const at::Tensor& x) {
  const int64_t rows = x.size(1), cols = x.size(2);
  if (x.stride(2) == 1 && x.stride(1) >= cols && x.stride(1) <= INT_MAX) return {'N', static_cast<int>(x.stride(1)), true};
  if (x.stride(1) == 1 && x.stride(2) >= rows && x.stride(2) <= INT_MAX) return {'T', static_cast<int>(x.stride(2)), true};
  return {'?', 0, false};
}

void through_aten(const at::Tensor& a, const at::Tensor& b, at::Tensor& c, float alpha, float beta) {
  at::Tensor p = at::bmm(a, b);
  if (beta == 0) c.copy_(p.mul_(alpha));
  else c.mul_(beta).add_(p, alpha);
}

}  // namespace

void batched_gemm(const at::Tensor& a, const at::Tensor& b, at::Tensor& c, float alpha, float beta) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3 && a.size(0) == b.size(0) && a.size(0) == c.size(0) &&
                  a.size(2) == b.size(1) && c.size(1) == a.size(1) && c.size(2) == b.size(2),
              "batched_gemm: a (B,m,k), b (B,k,n), c (B,m,n) expected");
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  const bool plain = a.device().is_cpu() && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
                     c.scalar_type() == at::kFloat && b.device().is_cpu() && c.device().is_cpu() && m > 1 &&
                     n > 1 && k > 1 && m <= INT_MAX && n <= INT_MAX && k <= INT_MAX;
  Sgemm f = sgemm();
  if (!plain || !f) return through_aten(a, b, c, alpha, beta);
  // Row-major C = A B is, column-major, C^T = B^T A^T: BLAS's first operand is b, its second a.
  const Operand ob = as_transposed(b), oa = as_transposed(a);
  const bool c_rows = c.stride(2) == 1 && c.stride(1) >= n && c.stride(1) <= INT_MAX;
  if (!ob.ok || !oa.ok || !c_rows) return through_aten(a, b, c, alpha, beta);
  const int M = static_cast<int>(n), N = static_cast<int>(m), K = static_cast<int>(k), ldc = static_cast<int>(c.stride(1));
  const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
  float* pc = c.data_ptr<float>();
  for (int64_t i = 0; i < batch; ++i)
    f(&ob.trans, &oa.trans, &M, &N, &K, &alpha, pb + i * b.stride(0), &ob.ld, pa + i * a.stride(0), &oa.ld, &beta,
      pc + i * c.stride(0), &ldc);
}

}  // namespace hftrain
