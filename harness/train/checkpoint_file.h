// Checkpoint files that can be verified (issue 23): every checkpoint the trainer writes gets a small
// checksum file beside it (`<file>.sum`: its size and a 64-bit hash of its bytes), written before
// the checkpoint is renamed into place. A checkpoint is verified before it is loaded; one that is
// truncated or altered is "damaged" and the trainer falls back to the newest intact one, with a
// warning naming the damaged file. Checkpoints from before the checksum (no `.sum`) are "unverified":
// loaded as they are, and a load that fails counts as damage too.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace mgl::harness {

// A checkpoint that cannot be used: truncated, altered after it was written, or unreadable.
struct CheckpointDamaged : std::runtime_error {
  CheckpointDamaged(const std::filesystem::path& file, const std::string& problem);
  std::filesystem::path file;
  std::string problem;
};

// The checksum file of a checkpoint: `<file>.sum`.
std::filesystem::path checksum_path(const std::filesystem::path& file);

// Size and hash of a file's bytes ("<bytes> <16 hex digits>"). Errors name the file.
std::string file_checksum(const std::filesystem::path& file);

// Writes the checksum of `data_file` (the finished temporary file) as `checksum_path(final_file)`,
// atomically. Call before renaming data_file to final_file.
void write_checksum(const std::filesystem::path& data_file, const std::filesystem::path& final_file);

enum class CheckpointState { intact, unverified, damaged };
struct CheckpointCheck {
  CheckpointState state = CheckpointState::unverified;
  std::string problem;  // for damaged: what is wrong ("12,345 bytes, its checksum file says 56,789")
};
// Compares a checkpoint with its checksum file (reads the whole file once).
CheckpointCheck verify_checkpoint(const std::filesystem::path& file);

// The trainer's checkpoint format (harness/trainer.cpp writes it): "model" and "optimizer"
// sub-archives, "format" (kCheckpointFormat), the trainer's counters and the CPU generator's state.
inline constexpr int64_t kCheckpointFormat = 1;
struct CheckpointFields {
  int64_t step = 0, data_epoch = 0, data_batch = 0, best_step = -1, bad_evals = 0;
  double best = 0, train_seconds = 0;
  torch::Tensor rng_cpu;  // undefined when only the model was read
};

// Verifies `file` against its checksum, then reads it into `model` (and `opt` and the counters when
// opt is given). A damaged file (checksum mismatch, truncated, not a LibTorch archive) is
// CheckpointDamaged; an intact archive that is not a checkpoint of this model (another format, missing
// or mis-shaped parameters) is a std::runtime_error naming the file. LibTorch's messages are quoted
// without their C++ backtrace.
CheckpointFields read_checkpoint(const std::filesystem::path& file, torch::nn::Module& model,
                                 torch::optim::Optimizer* opt);

// Renames a damaged checkpoint to `<file>.damaged` (kept for inspection, out of the way of resumes) and
// removes its checksum file. Returns the new name; errors are ignored (best effort).
std::filesystem::path set_aside_damaged(const std::filesystem::path& file);

}  // namespace mgl::harness
