// Fuzz driver for our own trainer checkpoints (harness/train/checkpoint_file.h): the input is a
// `step_<N>.pt` file, read once as it is (no checksum file: the path of checkpoints written before
// checksums) and once with a checksum file made for exactly these bytes (so the LibTorch archive reader
// and our field checks see the garbage), into a tiny Megalodon classifier and an AdamW optimizer.
#include <fmt/format.h>

#include "core/models/megalodon.h"
#include "fuzz/fuzz.h"
#include "harness/train/checkpoint_file.h"

namespace mgl::fuzz {
namespace {

namespace fs = std::filesystem;

MegalodonConfig tiny_config() {
  MegalodonConfig c;
  c.num_layers = 1;
  c.model_dim = 8;
  c.z_dim = 4;
  c.value_dim = 8;
  c.ffn_hidden_dim = 16;
  c.cema_ndim = 2;
  c.chunk_size = 4;
  c.norm_num_groups = 2;
  c.vocab_size = -1;
  c.causal = false;
  return c;
}

struct Tiny {
  MegalodonClassifier model{tiny_config(), ClassifierOptions{}};
  torch::optim::AdamW opt{model->parameters(), torch::optim::AdamWOptions(1e-3)};
};

void run_checkpoint(const uint8_t* data, size_t size) {
  // A fresh model each time: a refused load may have left tensors of the checkpoint's shapes behind.
  const fs::path dir = fresh();
  const fs::path f = dir / "step_00000001.pt";
  write_file(f, data, size);
  for (int with_sum = 0; with_sum < 2; ++with_sum) {
    if (with_sum) harness::write_checksum(f, f);
    Tiny t;
    harness::CheckpointFields fields;
    if (!refuse_or_accept([&] { fields = harness::read_checkpoint(f, *t.model, &t.opt); }, f.string())) continue;
    for (const auto& p : t.model->named_parameters()) {
      static const Tiny reference;
      expect(p.value().sizes() == reference.model->named_parameters()[p.key()].sizes(),
             "checkpoint: accepted with a parameter of another shape: " + p.key());
    }
    expect(fields.step >= 0 && fields.data_epoch >= 0 && fields.data_batch >= 0, "checkpoint: negative counters accepted");
    expect(fields.rng_cpu.defined(), "checkpoint: accepted without a generator state");
  }
  // Damage after the checksum was written is caught before LibTorch reads the file.
  if (size > 0) {
    Bytes altered(data, data + size);
    altered[size / 2] ^= 0x01;
    write_file(f, altered.data(), altered.size());
    bool damaged = false;
    Tiny t;
    try {
      harness::read_checkpoint(f, *t.model, &t.opt);
    } catch (const harness::CheckpointDamaged&) {
      damaged = true;
    } catch (const std::exception&) {
    }
    expect(damaged, "checkpoint: a file altered after its checksum was written is not reported as damaged");
  }
}

void seeds_checkpoint(const fs::path& dir) {
  torch::manual_seed(1);
  Tiny t;
  torch::serialize::OutputArchive ar, model_ar, opt_ar;
  t.model->save(model_ar);
  t.opt.save(opt_ar);
  ar.write("model", model_ar);
  ar.write("optimizer", opt_ar);
  ar.write("format", c10::IValue(harness::kCheckpointFormat));
  for (const char* k : {"step", "data_epoch", "data_batch", "best_step", "bad_evals"}) ar.write(k, c10::IValue(int64_t{3}));
  ar.write("best", c10::IValue(0.5));
  ar.write("train_seconds", c10::IValue(1.25));
  ar.write("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
  ar.save_to((dir / "step_00000003.pt").string());
}

MGL_FUZZ_READER("checkpoint", "our trainer checkpoints (LibTorch archive + checksum file)", run_checkpoint,
                seeds_checkpoint, {"PK\x03\x04", "data.pkl", "constants.pkl", "version", "model/", "optimizer/"});

}  // namespace
}  // namespace mgl::fuzz
