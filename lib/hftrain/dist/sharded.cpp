#include "hftrain/dist/sharded.h"

#include "hftrain/core/error.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/core/torch_compat_autograd.h"
#include "hftrain/models/model.h"
#include "hftrain/optim/state_dict_util.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Functions.h>
#include <c10/core/StorageImpl.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <unordered_map>

namespace hftrain {

struct ShardedParams::Unit {
  std::vector<at::Tensor> params;
  std::vector<int64_t> offsets;  // of each parameter in flat
  int64_t numel = 0, shard = 0;  // real elements; elements per rank
  at::Tensor flat;               // world * shard elements: the parameters' storage
  at::Tensor master;             // this rank's slice: flat's (stages 1-2) or its own (stage 3)
  at::Tensor grad;               // this rank's slice of the averaged gradient
  at::Tensor send;               // while reducing: the unit's local gradients, flat
  bool contiguous = false;       // backward accumulates straight into send (stage 3 blocks)
  std::vector<PendingCollective> work;
  std::vector<char> arrived;
  size_t pending = 0;
  bool launched = false, landed = false, late = false, gathered = true, root = false;
  size_t nbytes() const { return static_cast<size_t>(flat.numel()) * flat.element_size(); }
};

namespace {

// Takes a tensor's memory out of its storage and puts memory back in (FSDP's storage
// resize): every parameter rebound into it, and every saved reference to them, sees it.
at::DataPtr take_storage(const at::Tensor& t) {
  c10::StorageImpl* s = t.storage().unsafeGetStorageImpl();
  at::DataPtr old = s->set_data_ptr(at::DataPtr(nullptr, s->device()));
  s->set_nbytes(0);
  return old;
}

void put_storage(const at::Tensor& t, at::DataPtr memory, size_t nbytes) {
  c10::StorageImpl* s = t.storage().unsafeGetStorageImpl();
  s->set_data_ptr_noswap(std::move(memory));
  s->set_nbytes(nbytes);
}

std::vector<at::Tensor> slices(const at::Tensor& flat, int64_t world, int64_t shard) {
  std::vector<at::Tensor> out;
  for (int64_t r = 0; r < world; ++r) out.push_back(flat.narrow(0, r * shard, shard));
  return out;
}

}  // namespace

ShardedParams::ShardedParams(ProcessGroup& pg, Model& model, int stage)
    : pg_(pg), model_(model), stage_(stage), rank_(pg.rank()), world_(pg.world_size()) {
  HFT_CHECK(stage >= 1 && stage <= 3, "sharded data parallel has stages 1 to 3, not {}", stage);
  // Which block each trainable parameter belongs to; the rest make the root unit.
  std::unordered_map<const c10::TensorImpl*, size_t> block_of;
  const auto blocks = model.blocks();
  for (size_t b = 0; b < blocks.size(); ++b)
    for (const at::Tensor& p : blocks[b]->parameters()) block_of[p.unsafeGetTensorImpl()] = b;
  std::vector<std::vector<at::Tensor>> members(blocks.size() + 1);
  for (const auto& item : model.named_parameters()) {
    const at::Tensor& p = item.value();
    if (!p.requires_grad()) continue;
    auto it = block_of.find(p.unsafeGetTensorImpl());
    members[it == block_of.end() ? blocks.size() : it->second].push_back(p);
  }
  block_unit_.assign(blocks.size(), -1);
  at::NoGradGuard no_grad;
  for (size_t m = 0; m < members.size(); ++m) {
    if (members[m].empty()) continue;
    auto u = std::make_unique<Unit>();
    u->root = m == blocks.size();
    u->params = members[m];
    for (const at::Tensor& p : u->params) {
      HFT_CHECK(p.scalar_type() == u->params[0].scalar_type() && p.device() == u->params[0].device(),
                "sharded data parallel keeps a block's parameters in one buffer: they must share a dtype and device");
      u->offsets.push_back(u->numel);
      u->numel += p.numel();
    }
    u->shard = (u->numel + world_ - 1) / world_;
    u->flat = at::zeros({u->shard * world_}, u->params[0].options().requires_grad(false));
    for (size_t j = 0; j < u->params.size(); ++j) {
      at::Tensor p = u->params[j];
      u->flat.narrow(0, u->offsets[j], p.numel()).copy_(p.reshape(-1));
      const std::vector<int64_t> sizes = p.sizes().vec();
      std::vector<int64_t> strides(sizes.size(), 1);
      for (size_t d = sizes.size(); d-- > 1;) strides[d - 1] = strides[d] * sizes[d];
      p.set_(u->flat.storage(), u->offsets[j], sizes, strides);
    }
    // DDP's start: every rank takes rank 0's values.
    std::vector<at::Tensor> t{u->flat};
    pg_.broadcast(t, 0);
    u->master = u->flat.narrow(0, rank_ * u->shard, u->shard);
    if (stage_ == 3) u->master = u->master.clone();
    // Freed before the next unit is built, so that it reuses the memory (the heap keeps freed
    // memory: the peak is what is live at once).
    release(*u);
    u->arrived.assign(u->params.size(), 0);
    u->pending = u->params.size();
    if (!u->root) block_unit_[m] = static_cast<int64_t>(units_.size());
    units_.push_back(std::move(u));
  }
  HFT_CHECK(!units_.empty(), "sharded data parallel: the model has no trainable parameters");
  // The parameters' first storage is free now; the heap keeps freed memory for speed
  // (keep_freed_memory), so it is handed back to the system here, once.
  compat::return_freed_memory();
  for (auto& u : units_) u->grad = at::zeros({u->shard}, u->flat.options());
  for (size_t i = units_.size(); i-- > 0;) order_.push_back(i);  // backward ends with the root...
  if (units_.back()->root) std::rotate(order_.begin(), order_.begin() + 1, order_.end());  // ...so it goes last
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    for (size_t j = 0; j < units_[ui]->params.size(); ++j) {
      compat::NodePtr acc = torch::autograd::impl::grad_accumulator(units_[ui]->params[j]);
      uintptr_t key = acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [this, ui, j](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
            on_gradient(ui, j);
            return outputs;
          }));
      unhook_.emplace_back([acc = std::move(acc), key] { acc->del_post_hook(key); });
    }
  }
  if (stage_ == 3) {
    model_.set_block_runner([this](size_t i, const Model::BlockFn& run, const at::Tensor& x) { return run_block(i, run, x); });
  }
}

ShardedParams::~ShardedParams() {
  for (auto& unhook : unhook_) unhook();
  if (stage_ == 3) model_.set_block_runner(nullptr);
}

// A gathered unit's memory comes from, and goes back to, a pool of same-size buffers: blocks
// are alike, so a step reuses the same few buffers instead of churning the heap.
void ShardedParams::gather(Unit& u) {
  if (u.gathered) return;
  at::DataPtr memory;
  auto it = free_memory_.find(u.nbytes());
  if (it != free_memory_.end()) {
    memory = std::move(it->second);
    free_memory_.erase(it);
  } else {
    memory = u.flat.storage().allocator()->allocate(u.nbytes());
  }
  put_storage(u.flat, std::move(memory), u.nbytes());
  at::NoGradGuard no_grad;
  pg_.all_gather_into(u.master, slices(u.flat, world_, u.shard));
  u.gathered = true;
}

void ShardedParams::release(Unit& u) {
  if (stage_ != 3 || !u.gathered || pinned_ > 0) return;
  at::DataPtr memory = take_storage(u.flat);
  // Two of a size are what a step gathers at once (the root and a block, or two blocks in
  // backward); more go back to the heap.
  if (free_memory_.count(u.nbytes()) < 2) free_memory_.emplace(u.nbytes(), std::move(memory));
  u.gathered = false;
}

void ShardedParams::unshard() {
  ++pinned_;  // for good: the units stay whole
  // Training is over: only the whole parameters are needed. What training held goes back to
  // the kernel first (the optimizer's state too, freed by the caller), so that the whole model
  // takes its place instead of adding to it.
  for (auto& u : units_) u->grad = at::Tensor();
  buffers_.clear();
  compat::return_freed_memory();
  for (auto& u : units_) {
    gather(*u);
    u->master = at::Tensor();
  }
  free_memory_.clear();
  compat::return_freed_memory();
}

void ShardedParams::hold_root(bool hold) {
  if (stage_ != 3 || !units_.back()->root) return;
  if (hold) gather(*units_.back());
  else release(*units_.back());
}

// A whole unit's gradient buffer: one that a landed unit gave back, or a new one.
at::Tensor ShardedParams::take_buffer(const Unit& u) {
  for (auto it = buffers_.begin(); it != buffers_.end(); ++it)
    if (it->numel() == u.shard * world_) {
      at::Tensor b = *it;
      buffers_.erase(it);
      return b;
    }
  return at::empty({u.shard * world_}, u.flat.options());
}

// Before a unit's backward: its parameters' .grad become views of one zeroed buffer, so that
// backward accumulates into it in place and the reduction needs no copy (DeepSpeed's
// contiguous_gradients).
void ShardedParams::attach_gradients(Unit& u) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!reduce_now_ || u.contiguous || u.launched) return;
  for (const at::Tensor& p : u.params)
    if (p.grad().defined()) return;
  at::NoGradGuard no_grad;
  u.send = take_buffer(u).zero_();
  for (size_t j = 0; j < u.params.size(); ++j)
    u.params[j].mutable_grad() = u.send.narrow(0, u.offsets[j], u.params[j].numel()).view(u.params[j].sizes());
  u.contiguous = true;
}

at::Tensor ShardedParams::run_block(size_t i, const Model::BlockFn& run, const at::Tensor& x) {
  if (i >= block_unit_.size() || block_unit_[i] < 0) return run(x);
  const size_t ui = static_cast<size_t>(block_unit_[i]);
  gather(*units_[ui]);
  at::Tensor y = run(x);
  // Backward reaches the block when y's gradient is ready: gather it again then.
  if (at::GradMode::is_enabled() && y.requires_grad())
    y.register_hook([this, ui](const at::Tensor& g) {
      gather(*units_[ui]);
      attach_gradients(*units_[ui]);
      return g;
    });
  release(*units_[ui]);
  return y;
}

std::vector<ParamGroup> ShardedParams::shard_groups(const std::vector<ParamGroup>& full) {
  std::unordered_map<const c10::TensorImpl*, std::pair<size_t, size_t>> where;  // -> (unit, index)
  for (size_t ui = 0; ui < units_.size(); ++ui)
    for (size_t j = 0; j < units_[ui]->params.size(); ++j) where[units_[ui]->params[j].unsafeGetTensorImpl()] = {ui, j};
  pieces_.clear();
  piece_params_.clear();
  group_sizes_.clear();
  full_params_.clear();
  full_index_.assign(units_.size(), {});
  for (size_t ui = 0; ui < units_.size(); ++ui) full_index_[ui].assign(units_[ui]->params.size(), -1);
  std::vector<ParamGroup> out;
  for (const ParamGroup& g : full) {
    ParamGroup mine = g;
    mine.params.clear();
    for (const at::Tensor& p : g.params) {
      auto it = where.find(p.unsafeGetTensorImpl());
      HFT_CHECK(it != where.end(), "sharded data parallel: an optimizer parameter is not a trainable model parameter");
      const Unit& u = *units_[it->second.first];
      const int64_t begin = u.offsets[it->second.second], end = begin + p.numel();
      const int64_t lo = std::max(begin, rank_ * u.shard), hi = std::min(end, (rank_ + 1) * u.shard);
      if (lo < hi) {
        pieces_.push_back({it->second.first, static_cast<int64_t>(full_params_.size()), lo - begin,
                           lo - rank_ * u.shard, hi - lo});
        mine.params.push_back(u.master.narrow(0, lo - rank_ * u.shard, hi - lo));
      }
      full_index_[it->second.first][it->second.second] = static_cast<int64_t>(full_params_.size());
      full_params_.push_back(p);
    }
    group_sizes_.push_back(static_cast<int64_t>(g.params.size()));
    piece_params_.insert(piece_params_.end(), mine.params.begin(), mine.params.end());
    out.push_back(std::move(mine));
  }
  return out;
}

void ShardedParams::prepare(bool first, bool last) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    reduce_now_ = stage_ >= 2 || last;
    last_ = last;
    if (first)
      for (auto& u : units_) u->grad.zero_();
  }
  if (stage_ == 3 && units_.back()->root) gather(*units_.back());
}

void ShardedParams::on_gradient(size_t ui, size_t j) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!reduce_now_) return;
  Unit& u = *units_[ui];
  if (u.arrived[j]) {  // a second gradient in one backward: reduced again at the end
    u.late = u.late || u.launched;
    return;
  }
  u.arrived[j] = 1;
  if (--u.pending == 0) launch_in_order();
}

// At most two units' reductions in flight: an older one lands before a new one goes, so that
// the whole-unit send buffers do not pile up over backward.
void ShardedParams::launch_in_order() {
  while (next_ < order_.size() && units_[order_[next_]]->pending == 0) {
    if (next_ >= 2) {
      Unit& old = *units_[order_[next_ - 2]];
      if (!old.landed) land(old);
    }
    launch(*units_[order_[next_++]]);
  }
}

// The unit's gradients, divided by the world size as DDP divides them, go to each slice's
// owner; the whole gradients are freed (stage 3: the unit's parameters too).
void ShardedParams::launch(Unit& u) {
  at::NoGradGuard no_grad;
  if (u.contiguous) {  // the gradients are in send already
    for (const at::Tensor& p : u.params) p.mutable_grad() = at::Tensor();
    u.contiguous = false;
  } else {
    u.send = take_buffer(u);
    for (size_t j = 0; j < u.params.size(); ++j) {
      at::Tensor& g = u.params[j].mutable_grad();
      at::Tensor slot = u.send.narrow(0, u.offsets[j], u.params[j].numel());
      if (g.defined()) slot.copy_(g.reshape(-1));
      else slot.zero_();
      g = at::Tensor();
    }
    u.send.narrow(0, u.numel, u.send.numel() - u.numel).zero_();
  }
  u.send.div_(static_cast<double>(world_));
  u.launched = true;
  for (int64_t r = 0; r < world_; ++r) u.work.push_back(pg_.reduce_sum_async(u.send.narrow(0, r * u.shard, u.shard), r));
  if (!u.root) release(u);
}

void ShardedParams::land(Unit& u) {
  for (PendingCollective& w : u.work) w.wait();
  u.work.clear();
  at::NoGradGuard no_grad;
  u.grad.add_(u.send.narrow(0, rank_ * u.shard, u.shard));
  buffers_.push_back(u.send);
  u.send = at::Tensor();
  u.landed = true;
}

void ShardedParams::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!reduce_now_) return;
  // Parameters that got no gradient count as zero: their units go now, in order.
  for (auto& u : units_) u->pending = 0;
  launch_in_order();
  for (size_t i : order_) {
    Unit& u = *units_[i];
    if (!u.landed) land(u);
    if (u.late) {
      launch(u);
      land(u);
    }
    std::fill(u.arrived.begin(), u.arrived.end(), 0);
    u.pending = u.params.size();
    u.launched = u.landed = u.late = false;
  }
  next_ = 0;
  reduce_now_ = false;
  if (!last_) return;
  if (stage_ == 3 && units_.back()->root) release(*units_.back());
  for (size_t k = 0; k < pieces_.size(); ++k) {
    const Piece& pc = pieces_[k];
    piece_params_[k].mutable_grad() = units_[pc.unit]->grad.narrow(0, pc.in_shard, pc.numel);
  }
}

at::Tensor ShardedParams::clip_grad_norm(double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> squares;
  for (auto& u : units_) squares.push_back(u->grad.norm().to(at::kDouble).square());
  std::vector<at::Tensor> total{at::stack(squares).sum().reshape({1})};
  pg_.all_reduce_sum(total);
  at::Tensor norm = total[0].sqrt().to(at::kFloat).reshape({});
  at::Tensor coef = at::clamp_max(norm.add(1e-6).reciprocal().mul(max_norm), 1.0);
  for (auto& u : units_) u->grad.mul_(coef);
  return norm;
}

void ShardedParams::after_step() {
  if (stage_ == 3) return;  // the slices are gathered when next used
  at::NoGradGuard no_grad;
  for (auto& u : units_) pg_.all_gather_into(u->master, slices(u->flat, world_, u->shard));
}

void ShardedParams::with_full_parameters(const std::function<void()>& fn) {
  if (stage_ != 3) return fn();
  ++pinned_;
  for (auto& u : units_) gather(*u);
  struct Unpin {
    ShardedParams* self;
    ~Unpin() {
      at::NoGradGuard no_grad;
      for (auto& u : self->units_) u->master.copy_(u->flat.narrow(0, self->rank_ * u->shard, u->shard));
      if (--self->pinned_ == 0)
        for (auto& u : self->units_) self->release(*u);
    }
  } unpin{this};
  fn();
}

// ---- optimizer state -------------------------------------------------------------------

namespace {

using optim_state::dict_get;
using Dict = c10::impl::GenericDict;

// A state value is per element when it is a tensor of at least one dimension (exp_avg, ...),
// else per parameter (step, a None momentum buffer).
bool per_element(const c10::IValue& v) { return v.isTensor() && v.toTensor().dim() >= 1; }

Dict state_of(const c10::IValue& sd, const std::string& where) {
  c10::IValue s = dict_get(sd, "state", where);
  HFT_CHECK(s.isGenericDict(), "{}: state must be a dict", where);
  return s.toGenericDict();
}

c10::List<c10::IValue> groups_of(const c10::IValue& sd, const std::string& where) {
  c10::IValue g = dict_get(sd, "param_groups", where);
  HFT_CHECK(g.isList(), "{}: param_groups must be a list", where);
  return g.toList();
}

Dict with_params(const c10::IValue& group, const std::vector<int64_t>& ids, const std::string& where) {
  HFT_CHECK(group.isGenericDict(), "{}: a parameter group must be a dict", where);
  Dict copy = group.toGenericDict().copy();
  c10::List<int64_t> list;
  for (int64_t id : ids) list.push_back(id);
  copy.insert_or_assign("params", list);
  return copy;
}

}  // namespace

c10::IValue ShardedParams::consolidate(const c10::IValue& shard_sd) {
  const std::string where = "the sharded optimizer state";
  Dict state = state_of(shard_sd, where);
  // The keys of a parameter's state, in order, from rank 0's first piece with state (every
  // rank must run the same collectives): 'e' per element, 's' per parameter.
  std::string keys;
  if (rank_ == 0)
    for (const auto& entry : state) {
      for (const auto& kv : entry.value().toGenericDict())
        keys += std::string(per_element(kv.value()) ? "e" : "s") + kv.key().toStringRef() + "\n";
      break;
    }
  std::vector<at::Tensor> len{at::full({1}, static_cast<int64_t>(keys.size()), at::kLong)};
  pg_.broadcast(len, 0);
  std::vector<at::Tensor> text{at::zeros({len[0].item<int64_t>()}, at::kByte)};
  if (rank_ == 0) std::copy(keys.begin(), keys.end(), text[0].data_ptr<uint8_t>());
  pg_.broadcast(text, 0);
  keys.assign(reinterpret_cast<const char*>(text[0].data_ptr<uint8_t>()), static_cast<size_t>(text[0].numel()));
  std::vector<std::pair<char, std::string>> names;
  for (size_t a = 0; a < keys.size();) {
    const size_t b = keys.find('\n', a);
    names.emplace_back(keys[a], keys.substr(a + 1, b - a - 1));
    a = b + 1;
  }
  const int64_t n = static_cast<int64_t>(full_params_.size());
  auto piece_state = [&](size_t k) -> c10::optional<Dict> {
    auto it = state.find(static_cast<int64_t>(k));
    if (it == state.end()) return c10::nullopt;
    return it->value().toGenericDict();
  };
  // Per parameter: whether it has state, and each scalar's value (a 0-d tensor, a number, or
  // None as -inf), the max over the ranks that hold a piece of it.
  const double none = -std::numeric_limits<double>::infinity();
  at::Tensor scalars = at::full({static_cast<int64_t>(names.size()) + 1, std::max<int64_t>(n, 1)}, none, at::kDouble);
  std::vector<c10::IValue> scalar_form(names.size());  // how rank 0 holds each scalar
  auto table = scalars.accessor<double, 2>();
  for (size_t k = 0; k < pieces_.size(); ++k) {
    auto st = piece_state(k);
    if (!st) continue;
    const int64_t p = pieces_[k].param;
    table[0][p] = 1.0;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i].first != 's' || !st->contains(names[i].second)) continue;
      const c10::IValue v = st->at(names[i].second);
      if (scalar_form[i].isNone()) scalar_form[i] = v;
      if (v.isTensor()) table[i + 1][p] = v.toTensor().item<double>();
      else if (v.isDouble()) table[i + 1][p] = v.toDouble();
      else if (v.isInt()) table[i + 1][p] = static_cast<double>(v.toInt());
      else HFT_CHECK(v.isNone(), "sharded data parallel cannot gather the optimizer's {} (a {})", names[i].second,
                     v.tagKind());
    }
  }
  std::vector<at::Tensor> reduce{scalars};
  pg_.all_reduce_max(reduce);
  // Per element: each unit's slices gathered on rank 0, one key at a time.
  std::map<std::pair<int64_t, size_t>, at::Tensor> whole;  // (parameter, key) -> its state
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    const Unit& u = *units_[ui];
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i].first != 'e') continue;
      at::Tensor mine = at::zeros({u.shard}, u.flat.options());
      for (size_t k = 0; k < pieces_.size(); ++k) {
        if (pieces_[k].unit != ui) continue;
        auto st = piece_state(k);
        if (!st || !st->contains(names[i].second)) continue;
        mine.narrow(0, pieces_[k].in_shard, pieces_[k].numel).copy_(st->at(names[i].second).toTensor().reshape(-1));
      }
      const std::vector<at::Tensor> all = pg_.gather(mine, 0);
      if (rank_ != 0) continue;
      const at::Tensor flat = at::cat(all);
      for (size_t j = 0; j < u.params.size(); ++j) {
        const at::Tensor& p = u.params[j];
        whole[{full_index_[ui][j], i}] = flat.narrow(0, u.offsets[j], p.numel()).view(p.sizes()).clone();
      }
    }
  }
  if (rank_ != 0) return c10::IValue();
  Dict out_state = optim_state::new_state();
  auto got = reduce[0].accessor<double, 2>();
  for (int64_t p = 0; p < n; ++p) {
    if (got[0][p] == none) continue;
    Dict entry = optim_state::new_dict();
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i].first == 'e') {
        entry.insert(names[i].second, whole.at({p, i}));
        continue;
      }
      const double v = got[i + 1][p];
      const c10::IValue& form = scalar_form[i];
      if (v == none) entry.insert(names[i].second, c10::IValue());
      else if (form.isTensor()) entry.insert(names[i].second, at::scalar_tensor(v, form.toTensor().options()));
      else if (form.isInt()) entry.insert(names[i].second, static_cast<int64_t>(v));
      else entry.insert(names[i].second, v);
    }
    out_state.insert(p, entry);
  }
  c10::List<c10::IValue> groups = groups_of(shard_sd, where);
  HFT_CHECK(groups.size() == group_sizes_.size(), "{}: {} groups, expected {}", where, groups.size(), group_sizes_.size());
  c10::impl::GenericList out_groups = optim_state::new_groups();
  int64_t first = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<int64_t> ids(static_cast<size_t>(group_sizes_[g]));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = first + static_cast<int64_t>(i);
    out_groups.push_back(with_params(groups.get(g), ids, where));
    first += group_sizes_[g];
  }
  return optim_state::make_state_dict(out_state, out_groups);
}

c10::IValue ShardedParams::shard_state(const c10::IValue& full_sd, const std::string& where) const {
  Dict state = state_of(full_sd, where);
  c10::List<c10::IValue> groups = groups_of(full_sd, where);
  HFT_CHECK(groups.size() == group_sizes_.size(), "{}: {} parameter groups, this model has {}", where, groups.size(),
            group_sizes_.size());
  std::vector<c10::IValue> id_of;  // full parameter -> its key in "state"
  for (size_t g = 0; g < groups.size(); ++g) {
    c10::IValue ids = dict_get(groups.get(g), "params", where);
    HFT_CHECK(ids.isList() && static_cast<int64_t>(ids.toList().size()) == group_sizes_[g],
              "{}: group {} has {} parameters, this model has {}", where, g, ids.isList() ? ids.toList().size() : 0,
              group_sizes_[g]);
    for (const c10::IValue& id : ids.toList()) id_of.push_back(id);
  }
  Dict out_state = optim_state::new_state();
  c10::impl::GenericList out_groups = optim_state::new_groups();
  size_t k = 0;
  int64_t first_param = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<int64_t> ids;
    for (; k < pieces_.size() && pieces_[k].param < first_param + group_sizes_[g]; ++k) {
      const Piece& pc = pieces_[k];
      ids.push_back(static_cast<int64_t>(k));
      auto it = state.find(id_of[static_cast<size_t>(pc.param)]);
      if (it == state.end()) continue;
      HFT_CHECK(it->value().isGenericDict(), "{}: the state of parameter {} must be a dict", where, pc.param);
      const int64_t numel = full_params_[static_cast<size_t>(pc.param)].numel();
      Dict entry = optim_state::new_dict();
      for (const auto& kv : it->value().toGenericDict()) {
        if (!per_element(kv.value())) {
          entry.insert(kv.key(), kv.value());
          continue;
        }
        const at::Tensor t = kv.value().toTensor();
        HFT_CHECK(t.numel() == numel, "{}: state {} of parameter {} has {} elements, the parameter has {}", where,
                  kv.key().toStringRef(), pc.param, t.numel(), numel);
        entry.insert(kv.key(), t.reshape(-1).narrow(0, pc.in_param, pc.numel).clone());
      }
      out_state.insert(static_cast<int64_t>(k), entry);
    }
    out_groups.push_back(with_params(groups.get(g), ids, where));
    first_param += group_sizes_[g];
  }
  return optim_state::make_state_dict(out_state, out_groups);
}

}  // namespace hftrain
