#include "core/cuda/attention/attention_glue.h"

#include "core/cuda/attention/attention_autograd.h"
#include "core/cuda/common/glue.h"
#include "core/kernels.h"

namespace mgl::cuda {

using torch::Tensor;

bool attention_kernel_supports(const Tensor& q, const Tensor& k, const Tensor& v, int64_t chunk_q,
                               int64_t chunk_k, bool causal, std::string* why) {
  auto no = [&](const std::string& reason) {
    if (why) *why = reason;
    return false;
  };
  if (!q.defined() || !k.defined() || !v.defined()) return no("q, k and v must be given");
  if (!q.is_cuda() || !k.is_cuda() || !v.is_cuda() || q.device() != v.device() || k.device() != v.device())
    return no("q, k and v must be on one CUDA device");
  const std::string rule = kernels::attention_unsupported(q, k, v, chunk_q, chunk_k, causal);
  if (!rule.empty()) return no(rule);
  return true;
}

namespace {
Tensor run(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_padding_mask, int64_t cq,
           int64_t ck, bool causal, double scale) {
  std::string why;
  TORCH_CHECK(attention_kernel_supports(q, k, v, cq, ck, causal, &why), "chunked attention kernel: ", why,
              " (q ", q.sizes(), " ", q.scalar_type(), ", k ", k.sizes(), ", v ", v.sizes(), " ",
              v.scalar_type(), ")");
  const c10::cuda::CUDAGuard guard(v.device());
  return attention_run<CurrentCudaStream>(q, k, v, key_padding_mask, cq, ck, causal, scale);
}
}  // namespace

Tensor chunked_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, int64_t chunk, bool causal,
                              double scale, const Tensor& key_padding_mask) {
  TORCH_CHECK(chunk >= 1, "chunked attention kernel: chunk must be >= 1");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && q.size(1) == k.size(1),
              "chunked attention kernel: q and k must both be B×L×H×d, got ", q.sizes(), " and ", k.sizes());
  return run(q, k, v, key_padding_mask, chunk, chunk, causal, scale);
}

Tensor cached_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && k.size(1) >= q.size(1) && q.size(1) >= 1,
              "cached attention kernel: need q B×Lq×H×d and k B×Lk×H×d with Lk ≥ Lq ≥ 1, got ", q.sizes(),
              " and ", k.sizes());
  // One chunk holding all queries and all keys; the causal rule is bottom-right aligned.
  return run(q, k, v, {}, q.size(1), k.size(1), true, scale);
}

}  // namespace mgl::cuda
