// Reading and restoring the CUDA autocast state from the core (the loss over slices picks the dtype
// autocast would give the head; activation checkpointing recomputes a block under the autocast state
// of its forward pass). The autocast API changed in LibTorch 2.4; both spellings are handled here.
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace mgl {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
inline bool cuda_autocast_enabled() { return at::autocast::is_autocast_enabled(at::kCUDA); }
inline at::ScalarType cuda_autocast_dtype() { return at::autocast::get_autocast_dtype(at::kCUDA); }
inline void set_cuda_autocast(bool on, at::ScalarType dtype) {
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
  at::autocast::set_autocast_enabled(at::kCUDA, on);
}
#else
inline bool cuda_autocast_enabled() { return at::autocast::is_enabled(); }
inline at::ScalarType cuda_autocast_dtype() { return at::autocast::get_autocast_gpu_dtype(); }
inline void set_cuda_autocast(bool on, at::ScalarType dtype) {
  at::autocast::set_autocast_gpu_dtype(dtype);
  at::autocast::set_enabled(on);
}
#endif

// The CUDA autocast state of the moment, restorable later (and restored by the scope below).
struct CudaAutocastState {
  bool enabled = cuda_autocast_enabled();
  at::ScalarType dtype = cuda_autocast_dtype();
};

// Sets a saved state for a scope and puts the current one back at its end.
class CudaAutocastRestore {
 public:
  explicit CudaAutocastRestore(const CudaAutocastState& s) { set_cuda_autocast(s.enabled, s.dtype); }
  ~CudaAutocastRestore() { set_cuda_autocast(old_.enabled, old_.dtype); }
  CudaAutocastRestore(const CudaAutocastRestore&) = delete;
  CudaAutocastRestore& operator=(const CudaAutocastRestore&) = delete;

 private:
  CudaAutocastState old_;
};

}  // namespace mgl
