// c[i] = alpha * a[i] b[i] + beta * c[i] for every i of a batch of float32 CPU matrices, written
// into c in place (c may be a view: a narrowed slice of a larger tensor), straight through the
// BLAS's sgemm per matrix. at::bmm does the same through a Tensor per matrix (a select and an
// addmm each), which in attention's many small products costs as much as the products; and
// writing into a view saves the copy or addition that would follow bmm's fresh result.
// a (B, m, k), b (B, k, n), c (B, m, n); each matrix either row- or column-major (a transposed
// view is fine), c row-major. Other layouts, dtypes or devices, or a BLAS without sgemm_, go
// through ATen (the same result within float rounding).
#pragma once

#include <ATen/core/Tensor.h>

namespace hftrain {

void batched_gemm(const at::Tensor& a, const at::Tensor& b, at::Tensor& c, float alpha, float beta);

}  // namespace hftrain
