#include "core/cuda/attention/attention_glue.h"

#include <c10/cuda/CUDAStream.h>

#include "core/cuda/attention/attention.h"

namespace mgl::cuda {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

AttentionShape shape_of(const Tensor& q, const Tensor& k, const Tensor& v, int64_t cq, int64_t ck, bool causal,
                        double scale) {
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

void check(const char* err, const char* what) { TORCH_CHECK(err == nullptr, what, ": CUDA error: ", err); }

template <typename T, typename S>
const T* cptr(const Tensor& t) {
  return reinterpret_cast<const T*>(t.data_ptr<S>());
}
template <typename T, typename S>
T* mptr(Tensor& t) {
  return reinterpret_cast<T*>(t.data_ptr<S>());
}
const uint8_t* mask_ptr(const Tensor& m) { return m.defined() ? m.data_ptr<uint8_t>() : nullptr; }

// q, k, v (contiguous, one dtype), key padding as uint8 or undefined.
struct ChunkedAttentionFunction : torch::autograd::Function<ChunkedAttentionFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                        const Tensor& pad, int64_t cq, int64_t ck, bool causal, double scale) {
    const Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    const AttentionShape s = shape_of(q, k, v, cq, ck, causal, scale);
    const char* bad = attention_shape_error(s);
    TORCH_CHECK(bad == nullptr, "chunked attention kernel: unsupported shape q ", q.sizes(), " k ", k.sizes(), " v ",
                v.sizes(), ": ", bad ? bad : "");
    Tensor o = torch::empty({s.B, s.Lq, s.H, s.dv}, v.options());
    Tensor lse = torch::empty({s.B, s.H, s.Lq}, v.options().dtype(torch::kFloat32));
    void* stream = c10::cuda::getCurrentCUDAStream().stream();
    if (v.scalar_type() == torch::kBFloat16) {
      check(attention_forward<bf16>(s, cptr<bf16, at::BFloat16>(q), cptr<bf16, at::BFloat16>(k),
                                    cptr<bf16, at::BFloat16>(v), mask_ptr(pad), mptr<bf16, at::BFloat16>(o),
                                    lse.data_ptr<float>(), stream),
            "attention forward");
    } else {
      check(attention_forward<float>(s, q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), mask_ptr(pad),
                                     o.data_ptr<float>(), lse.data_ptr<float>(), stream),
            "attention forward");
    }
    ctx->save_for_backward({q, k, v, o, lse});
    ctx->saved_data["has_pad"] = pad.defined();  // (an undefined tensor in an IValue differs across versions)
    if (pad.defined()) ctx->saved_data["pad"] = pad;
    ctx->saved_data["cq"] = cq;
    ctx->saved_data["ck"] = ck;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    return o;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &q = saved[0], &k = saved[1], &v = saved[2], &o = saved[3], &lse = saved[4];
    const Tensor pad = ctx->saved_data["has_pad"].toBool() ? ctx->saved_data["pad"].toTensor() : Tensor();
    const AttentionShape s = shape_of(q, k, v, ctx->saved_data["cq"].toInt(), ctx->saved_data["ck"].toInt(),
                                      ctx->saved_data["causal"].toBool(), ctx->saved_data["scale"].toDouble());
    Tensor d_o = grads[0].to(v.scalar_type()).contiguous();
    Tensor dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
    Tensor delta = torch::empty({s.B, s.H, s.Lq}, lse.options());
    void* stream = c10::cuda::getCurrentCUDAStream().stream();
    if (v.scalar_type() == torch::kBFloat16) {
      check(attention_backward<bf16>(s, cptr<bf16, at::BFloat16>(q), cptr<bf16, at::BFloat16>(k),
                                     cptr<bf16, at::BFloat16>(v), mask_ptr(pad), cptr<bf16, at::BFloat16>(o),
                                     cptr<bf16, at::BFloat16>(d_o), lse.data_ptr<float>(), delta.data_ptr<float>(),
                                     mptr<bf16, at::BFloat16>(dq), mptr<bf16, at::BFloat16>(dk),
                                     mptr<bf16, at::BFloat16>(dv), stream),
            "attention backward");
    } else {
      check(attention_backward<float>(s, q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), mask_ptr(pad),
                                      o.data_ptr<float>(), d_o.data_ptr<float>(), lse.data_ptr<float>(),
                                      delta.data_ptr<float>(), dq.data_ptr<float>(), dk.data_ptr<float>(),
                                      dv.data_ptr<float>(), stream),
            "attention backward");
    }
    return {dq, dk, dv, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

Tensor run(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_padding_mask, int64_t cq, int64_t ck,
           bool causal, double scale) {
  TORCH_CHECK(attention_kernel_supports(q, k, v),
              "chunked attention kernel: expected CUDA tensors q, k B×L×H×d (d ≤ 256) and v B×L×H×dv in fp32 or bf16 "
              "on one device, got q ",
              q.sizes(), " ", q.scalar_type(), ", k ", k.sizes(), ", v ", v.sizes(), " ", v.scalar_type());
  Tensor pad;
  if (key_padding_mask.defined()) {
    TORCH_CHECK(key_padding_mask.dim() == 2 && key_padding_mask.size(0) == k.size(0) &&
                    key_padding_mask.size(1) == k.size(1),
                "chunked attention kernel: key_padding_mask must be B×Lk, got ", key_padding_mask.sizes());
    pad = key_padding_mask.to(q.device(), torch::kUInt8).contiguous();
  }
  const auto dt = v.scalar_type();
  return ChunkedAttentionFunction::apply(q.to(dt), k.to(dt), v, pad, cq, ck, causal, scale);
}

}  // namespace

bool attention_kernel_supports(const Tensor& q, const Tensor& k, const Tensor& v) {
  if (!q.defined() || !k.defined() || !v.defined()) return false;
  if (!q.is_cuda() || !k.is_cuda() || !v.is_cuda() || q.device() != v.device() || k.device() != v.device()) return false;
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || q.size(3) != k.size(3) || q.size(3) > kAttentionMaxHeadDim)
    return false;
  if (q.size(0) != k.size(0) || q.size(2) != k.size(2) || v.size(0) != k.size(0) || v.size(1) != k.size(1) ||
      v.size(2) != k.size(2))
    return false;
  const auto dt = v.scalar_type();
  auto ok = [](c10::ScalarType t) { return t == torch::kFloat32 || t == torch::kBFloat16; };
  return ok(dt) && ok(q.scalar_type()) && ok(k.scalar_type());
}

Tensor chunked_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, int64_t chunk, bool causal,
                              double scale, const Tensor& key_padding_mask) {
  TORCH_CHECK(chunk >= 1, "chunked attention kernel: chunk must be >= 1");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && q.size(1) == k.size(1),
              "chunked attention kernel: q and k must both be B×L×H×d, got ", q.sizes(), " and ", k.sizes());
  return run(q, k, v, key_padding_mask, chunk, chunk, causal, scale);
}

Tensor cached_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && k.size(1) >= q.size(1) && q.size(1) >= 1,
              "cached attention kernel: need q B×Lq×H×d and k B×Lk×H×d with Lk ≥ Lq ≥ 1, got ", q.sizes(), " and ",
              k.sizes());
  // One chunk holding all queries and all keys; the causal rule is bottom-right aligned.
  return run(q, k, v, {}, q.size(1), k.size(1), true, scale);
}

}  // namespace mgl::cuda
