// Helpers of the autograd Functions over the kernels (core/cuda/<op>/<op>_autograd.h). Torch, no
// CUDA headers: the Functions are written once for any device. The CUDA glue instantiates them
// with a stream policy giving the current CUDA stream (CurrentCudaStream, common/glue.h); the SIMT
// executor's tests (tests/simt/) run the same code on CPU tensors with the kernels compiled by g++.
// A stream policy is a type with `static void* stream()`.
#pragma once
#include <torch/torch.h>

#include "core/cuda/common/bf16.h"
#include "core/cuda/common/launch.h"

namespace mgl::cuda {

// Fails with `what` and the runtime's message when the last launch did not start.
inline void check_launch(const char* what) {
  const char* e = launch_error();
  TORCH_CHECK(e == nullptr, what, ": CUDA kernel launch failed: ", e ? e : "");
}

// An optional input of an autograd Function: LibTorch 1.13's Function::apply fails on an undefined
// Tensor argument ("tensor does not have a device", building its input metadata), but takes an
// empty optional and then expects no gradient for it. Optional inputs are passed through this and
// read back with `.value_or(torch::Tensor())`.
inline c10::optional<torch::Tensor> optional_input(const torch::Tensor& t) {
  return t.defined() ? c10::optional<torch::Tensor>(t) : c10::nullopt;
}

// Typed data pointer of a tensor, or null for an undefined one.
template <typename T>
const T* ptr_or_null(const torch::Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}
template <typename T>
T* mut_ptr_or_null(const torch::Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

// The storage pointer of an fp32 or bf16 activation tensor as the kernels' element type K
// (bf16 is layout-compatible with at::BFloat16).
template <typename K>
K* elem_ptr(const torch::Tensor& t);
template <>
inline float* elem_ptr<float>(const torch::Tensor& t) {
  return t.data_ptr<float>();
}
template <>
inline double* elem_ptr<double>(const torch::Tensor& t) {
  return t.data_ptr<double>();
}
template <>
inline bf16* elem_ptr<bf16>(const torch::Tensor& t) {
  return reinterpret_cast<bf16*>(t.data_ptr<at::BFloat16>());
}

}  // namespace mgl::cuda
