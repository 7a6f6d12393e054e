// Sharded data parallel (ZeRO stages 1-3, FSDP's shard_grad_op and full_shard) on the same
// c10d group as plain data parallel.
//
// The trainable parameters are grouped in units: each transformer block, and one root unit
// for the rest (embeddings, final norm, heads). A unit's parameters live in one flat buffer,
// padded to a multiple of the world size; rank r owns the r-th equal slice of every unit and
// is the only one to keep optimizer state for it. The optimizer steps over pieces: the parts
// of parameters that fall in this rank's slices, so that elementwise optimizers compute
// exactly what they compute on whole parameters.
//   stage 1  gradients accumulate whole across micro-steps; at the window's end each unit's
//            gradients are reduced to the slices' owners; after the step, slices are gathered.
//   stage 2  the same reduction after every micro-step, so that no whole gradient outlives
//            its unit's backward.
//   stage 3  parameters too: between uses a unit holds only this rank's slice. It is gathered
//            before the block's forward, freed after it, gathered again when backward reaches
//            the block (or recomputes it), and freed once its gradients are reduced. The root
//            unit stays gathered from the first forward of a step to the end of its backward.
// Gloo has no reduce-scatter, so a unit's gradients go to each slice's owner with one reduce
// per slice; a unit is reduced as soon as backward has produced all of its gradients, in an
// order every rank shares, overlapping the rest of backward.
//
// optimizer.pt stays torch.optim's layout for the whole model: consolidate() gathers every
// rank's pieces into the state the unsharded optimizer would hold, and shard_state() cuts
// such a state (from any world size, or from an unsharded run) into this rank's pieces.
#pragma once

#include "hftrain/dist/process_group.h"
#include "hftrain/optim/optimizer.h"

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <cstdint>
#include <c10/core/Allocator.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hftrain {

class Model;

class ShardedParams {
 public:
  // The model's trainable parameters are rebound into the units' buffers (they stay the same
  // tensors); every rank takes rank 0's values. All of one unit must share a dtype.
  ShardedParams(ProcessGroup& pg, Model& model, int stage);
  ~ShardedParams();
  ShardedParams(const ShardedParams&) = delete;
  ShardedParams& operator=(const ShardedParams&) = delete;

  int stage() const { return stage_; }
  size_t num_units() const { return units_.size(); }

  // The optimizer's groups over this rank's pieces: each group of `full` (whole parameters of
  // this model) with its parameters replaced by their pieces on this rank.
  std::vector<ParamGroup> shard_groups(const std::vector<ParamGroup>& full);

  // Before a micro-step's forward; `last`: it ends the accumulation window (the optimizer
  // steps after it), `first`: it starts one.
  void prepare(bool first, bool last);
  // After that micro-step's backward: waits for the reductions; after the last one, the
  // pieces' .grad hold this rank's slice of the averaged gradients.
  void finish();
  // clip_grad_norm_ over the whole model: the norm of every rank's slices together; scales
  // the slices. Returns the total norm (a 0-d tensor, as torch returns it).
  at::Tensor clip_grad_norm(double max_norm);
  // After the optimizer step (stages 1-2): every rank's updated slices into every rank.
  void after_step();

  // fn with every parameter whole (stage 3 gathers them and frees them again after; the
  // slices take the values fn leaves, such as loaded weights). Collective.
  void with_full_parameters(const std::function<void()>& fn);
  // At the end of training: every unit gathered for good, so that the model is whole again.
  void unshard();
  // Stage 3: the root unit gathered (true) or released (false) around forwards outside a
  // training step (evaluation, where the blocks are gathered one at a time as in training).
  void hold_root(bool hold);

  // Collective. On rank 0 the state_dict of the unsharded optimizer over `full`'s groups; an
  // empty IValue on the others.
  c10::IValue consolidate(const c10::IValue& shard_state_dict);
  // This rank's state_dict for the pieces, from an unsharded one (`where`: the file, for errors).
  c10::IValue shard_state(const c10::IValue& full_state_dict, const std::string& where) const;

 private:
  struct Unit;
  struct Piece {
    size_t unit = 0;
    int64_t param = 0;       // index over the full groups' parameters, in order
    int64_t in_param = 0;    // first element of the piece within its parameter
    int64_t in_shard = 0;    // and within this rank's slice of the unit
    int64_t numel = 0;
  };
  void gather(Unit& u);
  void release(Unit& u);
  at::Tensor run_block(size_t i, const std::function<at::Tensor(const at::Tensor&)>& run, const at::Tensor& x);
  void on_gradient(size_t unit, size_t param);
  void launch_in_order();
  void launch(Unit& u);
  void land(Unit& u);
  at::Tensor take_buffer(const Unit& u);
  void attach_gradients(Unit& u);

  ProcessGroup& pg_;
  Model& model_;
  int stage_;
  int64_t rank_, world_;
  std::vector<std::unique_ptr<Unit>> units_;  // blocks in forward order, then the root
  std::vector<size_t> order_;                 // reduction order: the reverse of forward's
  size_t next_ = 0;                           // into order_
  std::vector<int64_t> block_unit_;           // block -> unit, -1 for a block with nothing trainable
  std::vector<Piece> pieces_;                 // in shard_groups' order
  std::vector<at::Tensor> piece_params_;      // the pieces the optimizer steps
  std::vector<std::vector<int64_t>> full_index_;  // [unit][parameter] -> full index
  std::vector<int64_t> group_sizes_;          // parameters per full group
  std::vector<at::Tensor> full_params_;       // by full index
  bool reduce_now_ = false, last_ = false;
  int pinned_ = 0;  // with_full_parameters nesting: units stay gathered
  std::mutex mu_;
  std::vector<std::function<void()>> unhook_;
  std::multimap<size_t, at::DataPtr> free_memory_;  // stage 3: released units' memory, by size
  std::vector<at::Tensor> buffers_;                 // landed units' gradient buffers, for reuse
};

}  // namespace hftrain
