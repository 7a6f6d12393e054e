// The autograd part of torch_compat.h, apart because its headers are heavy: how a custom
// autograd Node is owned. LibTorch up to 2.1x holds Nodes in std::shared_ptr; 2.14 (at the
// latest) in c10::intrusive_ptr. The pointer type is read off grad_accumulator()'s return
// type rather than a version number.
#pragma once

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <memory>
#include <type_traits>
#include <utility>

namespace hftrain::compat {

using NodePtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

// A new Node of type T, owned the way this LibTorch owns Nodes (what set_history takes).
template <typename T>
auto make_node() {
  static_assert(std::is_base_of_v<torch::autograd::Node, T>);
  if constexpr (std::is_same_v<NodePtr, std::shared_ptr<torch::autograd::Node>>) return std::make_shared<T>();
  else return c10::make_intrusive<T>();
}

}  // namespace hftrain::compat
