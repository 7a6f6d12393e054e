// Attention computed by blocks of query rows (flash-style, for the CPU): each block's scores
// are made, masked, normalised and used at once, and backward makes them again, so no
// (B,H,T,T) score or probability matrix is kept between forward and backward. A causal
// block's keys end at its last query: the masked half of the score matrices is never
// computed, in forward or backward. Forward keeps each query's max score and 1 / sum, from which
// backward makes the probabilities again without the softmax's reductions.
//
// Each head is a task of its own: the heads run side by side on every core (cpu_threads.h),
// each product on its thread alone through the BLAS's sgemm, straight on the heads' rows where
// the projections left them (no copies to split or merge the heads); the output and the
// gradients are written in (B,T,H,D) order, so merging the heads afterwards costs nothing.
#pragma once

#include <ATen/core/Tensor.h>

namespace hftrain {

// q (B,H,T,D), k and v (B,H,S,D), bias (B or 1, 1 or H, T or 1, S) (attention_bias's additive
// mask: padding, causality, windows, packed documents; undefined: none), scale the scores'
// factor, dropout_p on the probabilities while training, causal: every key after its query is
// masked (the eager path relies on `bias` for it; the fused kernel masks it itself and never
// computes the blocks past a block's last query). -> (B,H,T,D).
// The fused kernel runs where it applies (the fusion on, LossOnlyScope, float32 on the CPU,
// no dropout, T == S); elsewhere compat::attention, the eager computation.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                     double dropout_p, double scale, bool causal);

// The fused kernel itself, whatever the switches (for tests and benches); block: query rows
// per block, 0 for the default.
at::Tensor blocked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                             double scale, bool causal, int64_t block = 0);

}  // namespace hftrain
