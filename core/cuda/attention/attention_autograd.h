// The autograd Function over the IO-aware chunked attention kernels (attention.h), for any device:
// the CUDA glue (attention_glue.cpp) runs it on CUDA tensors after its device checks, under a
// CUDAGuard, with the current CUDA stream; the SIMT executor's tests run the same code on CPU
// tensors (common/autograd.h). `Stream` is a stream policy (`static void* stream()`).
#pragma once
#include <torch/torch.h>

#include "core/cuda/attention/attention.h"
#include "core/cuda/common/autograd.h"

namespace mgl::cuda {
namespace attention_autograd_detail {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

inline AttentionShape shape_of(const Tensor& q, const Tensor& k, const Tensor& v, int64_t cq, int64_t ck,
                               bool causal, double scale) {
  AttentionShape s;
  s.B = q.size(0);
  s.Lq = q.size(1);
  s.H = q.size(2);
  s.dk = q.size(3);
  s.Lk = k.size(1);
  s.dv = v.size(3);
  s.chunk_q = cq;
  s.chunk_k = ck;
  s.causal = causal;
  s.scale = static_cast<float>(scale);
  return s;
}

inline void check(const char* err, const char* what) {
  TORCH_CHECK(err == nullptr, what, ": CUDA error: ", err);
}

inline const uint8_t* mask_ptr(const Tensor& m) { return m.defined() ? m.data_ptr<uint8_t>() : nullptr; }

// q, k, v (contiguous, one dtype: fp32 or bf16), key padding as uint8 (optional).
template <class Stream>
struct ChunkedAttentionFunction : torch::autograd::Function<ChunkedAttentionFunction<Stream>> {
  static Tensor forward(AutogradContext* ctx, const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                        const c10::optional<Tensor>& pad_in, int64_t cq, int64_t ck, bool causal,
                        double scale) {
    const Tensor pad = pad_in.value_or(Tensor());
    const Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    const AttentionShape s = shape_of(q, k, v, cq, ck, causal, scale);
    const char* bad = attention_shape_error(s);
    TORCH_CHECK(bad == nullptr, "chunked attention kernel: unsupported shape q ", q.sizes(), " k ", k.sizes(),
                " v ", v.sizes(), ": ", bad ? bad : "");
    Tensor o = torch::empty({s.B, s.Lq, s.H, s.dv}, v.options());
    Tensor lse = torch::empty({s.B, s.H, s.Lq}, v.options().dtype(torch::kFloat32));
    auto launch = [&](auto tag) {
      using T = decltype(tag);
      check(attention_forward<T>(s, elem_ptr<T>(q), elem_ptr<T>(k), elem_ptr<T>(v), mask_ptr(pad),
                                 elem_ptr<T>(o), lse.data_ptr<float>(), Stream::stream()),
            "attention forward");
    };
    if (v.scalar_type() == torch::kBFloat16)
      launch(bf16{});
    else
      launch(0.0f);
    ctx->save_for_backward({q, k, v, o, lse, pad});  // pad may be undefined: save_for_backward keeps it so
    ctx->saved_data["cq"] = cq;
    ctx->saved_data["ck"] = ck;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    return o;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &q = saved[0], &k = saved[1], &v = saved[2], &o = saved[3], &lse = saved[4], &pad = saved[5];
    const AttentionShape s =
        shape_of(q, k, v, ctx->saved_data["cq"].toInt(), ctx->saved_data["ck"].toInt(),
                 ctx->saved_data["causal"].toBool(), ctx->saved_data["scale"].toDouble());
    Tensor d_o = grads[0].defined() ? grads[0].to(v.scalar_type()).contiguous() : torch::zeros_like(o);
    Tensor dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
    Tensor delta = torch::empty({s.B, s.H, s.Lq}, lse.options());
    auto launch = [&](auto tag) {
      using T = decltype(tag);
      check(attention_backward<T>(s, elem_ptr<T>(q), elem_ptr<T>(k), elem_ptr<T>(v), mask_ptr(pad),
                                  elem_ptr<T>(o), elem_ptr<T>(d_o), lse.data_ptr<float>(),
                                  delta.data_ptr<float>(), elem_ptr<T>(dq), elem_ptr<T>(dk), elem_ptr<T>(dv),
                                  Stream::stream()),
            "attention backward");
    };
    if (v.scalar_type() == torch::kBFloat16)
      launch(bf16{});
    else
      launch(0.0f);
    return {dq, dk, dv, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace attention_autograd_detail

// The chunked attention (attention_glue.h) for q, k, v on one device the kernels can read (fp32 or
// bf16; q and k are cast to v's dtype): chunk m pairs queries [m·cq, …) with keys [m·ck, …).
template <class Stream>
torch::Tensor attention_run(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& key_padding_mask, int64_t cq, int64_t ck, bool causal,
                            double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && q.size(3) == k.size(3) &&
                  q.size(0) == k.size(0) && q.size(2) == k.size(2) && v.size(0) == k.size(0) &&
                  v.size(1) == k.size(1) && v.size(2) == k.size(2),
              "chunked attention kernel: expected q B×Lq×H×d, k B×Lk×H×d, v B×Lk×H×dv, got q ", q.sizes(),
              ", k ", k.sizes(), ", v ", v.sizes());
  torch::Tensor pad;
  if (key_padding_mask.defined()) {
    TORCH_CHECK(key_padding_mask.dim() == 2 && key_padding_mask.size(0) == k.size(0) &&
                    key_padding_mask.size(1) == k.size(1),
                "chunked attention kernel: key_padding_mask must be B×Lk, got ", key_padding_mask.sizes());
    pad = key_padding_mask.to(q.device(), torch::kUInt8).contiguous();
  }
  const auto dt = v.scalar_type();
  return attention_autograd_detail::ChunkedAttentionFunction<Stream>::apply(
      q.to(dt), k.to(dt), v, optional_input(pad), cq, ck, causal, scale);
}

}  // namespace mgl::cuda
