#include "harness/experiment.h"

#include "harness/config/model.h"
#include "harness/task.h"
#include "harness/train/optim.h"

namespace mgl::harness {

Schema base_schema() {
  Schema s;
  s.add_int("seed", 1, "one seed for model init, data order and dropout");
  // run
  s.add_string("run.root", "runs", "where run directories go: <root>/<experiment>/<variant>/seed<seed>");
  s.add_string("run.dir", "", "explicit run directory (overrides run.root layout)");
  s.add_string("run.variant", "default", "variant name (set by sweeps)");
  s.add_string("run.device", "auto", "cpu, cuda, or auto (cuda when available)", {"auto", "cpu", "cuda"});
  s.add_int("run.threads", 0, "CPU threads for LibTorch; 0 = all cores");
  s.add_int("dist.chunk_parallel", 1,
            "the parallel layout over WORLD_SIZE processes: ranks per sequence (chunk parallelism); "
            "the rest is data parallelism (1 = pure data parallel, WORLD_SIZE = pure chunk parallel)");
  s.add_float("dist.timeout_s", 300.0, "a collective or rendezvous waiting longer than this ends the job");
  s.add_float("dist.bucket_mb", 25.0, "gradient all-reduce bucket size (MiB)");
  s.add_string("dist.backend", "auto", "process-group backend: auto (NCCL on CUDA, Gloo on CPU), gloo, nccl",
               {"auto", "gloo", "nccl"});
  s.add_bool("dist.always", false, "form a process group even for one process (to measure its overhead)");
  s.add_string("run.notes", "", "free text recorded with the run");
  // task
  s.add_string("task.name", "", "registered task adapter", task_registry().names());
  // model
  s.add_string("model.name", "megalodon", "model family", {"megalodon", "transformer"});
  add_megalodon_schema(s, "model");
  s.add_int("model.head_dim", -1, "classifier head width; -1 = 2·model_dim (Mega's LRA heads)");
  s.add_float("model.head_dropout", 0.0, "dropout inside the classifier head");
  s.add_string("model.head", "mlp",
               "classifier head: mlp = pool → Linear(2D) → GELU → Linear (Mega LRA), image = Linear + SiLU per "
               "position → pool → Linear (Mega ImageNet)",
               {"mlp", "image"});
  s.add_string("model.positions", "none", "classifier inputs: none, or learned absolute position embeddings (ViT)",
               {"none", "learned"});
  s.add_string("model.pool", "cls", "Transformer classifier: class token (ViT/DeiT) or mean pooling", {"cls", "mean"});
  // optimiser and schedule (spec §5.3)
  s.add_string("optim.name", "adamw", "optimizer", optimizer_names());
  s.add_float("optim.lr", 1e-3, "peak learning rate");
  s.add_floats("optim.betas", {0.9, 0.98}, "Adam betas");
  s.add_float("optim.eps", 1e-8, "Adam epsilon");
  s.add_float("optim.weight_decay", 0.1, "weight decay (decoupled for adamw, L2 for adam)");
  s.add_strings("optim.no_decay", {},
                "parameter kinds exempt from weight decay: norm, bias, cema, embedding. The official code "
                "decays everything (spec §5.3), hence the empty default");
  s.add_float("optim.clip", 1.0, "gradient-norm clipping; 0 = off");
  s.add_string("schedule.name", "linear", "learning-rate schedule after warm-up", schedule_names());
  s.add_int("schedule.warmup", 2000, "warm-up steps");
  s.add_float("schedule.init_ratio", 1e-4, "lr multiplier at step 0 (lr_init_ratio)");
  s.add_float("schedule.end_ratio", 0.01, "lr multiplier at the end (lr_end_ratio)");
  s.add_float("schedule.cycles", 1.0, "cosine cycles");
  s.add_int("schedule.total", -1, "steps the schedule spans; -1 = trainer.steps");
  // trainer
  s.add_int("trainer.steps", 1000, "optimizer steps");
  s.add_int("trainer.batch_size", 32, "examples per micro-batch");
  s.add_int("trainer.accumulate", 1, "micro-batches per optimizer step (gradient accumulation)");
  s.add_int("trainer.eval_every", 0, "evaluate on the validation split every N steps; 0 = only at the end");
  s.add_int("trainer.eval_batch_size", -1, "evaluation batch size; -1 = batch_size");
  s.add_int("trainer.log_every", 10, "step lines every N steps");
  s.add_int("trainer.checkpoint_every", 0, "checkpoint every N steps; 0 = only at evaluations and the end");
  s.add_int("trainer.keep_checkpoints", 2, "step checkpoints kept (the best one is kept separately)");
  s.add_string("trainer.monitor", "val/accuracy", "validation metric that selects the best checkpoint");
  s.add_string("trainer.monitor_mode", "auto", "max or min; auto = min for loss/ppl, else max",
               {"auto", "max", "min"});
  s.add_int("trainer.patience", 0, "early stopping after N evaluations without improvement; 0 = off");
  s.add_string("trainer.precision", "fp32", "fp32, or bf16 autocast on CUDA (fp16 is refused for CEMA)",
               {"fp32", "bf16", "fp16"});
  s.add_int("trainer.workers", 2, "data-loader threads");
  s.add_int("trainer.prefetch", 4, "batches prepared ahead of the model");
  s.add_bool("trainer.test_at_end", true, "evaluate the best checkpoint on the test split at the end");
  s.add_string("trainer.progress", "auto", "auto (bar on a terminal, lines otherwise), bar, lines, off",
               {"auto", "bar", "lines", "off"});
  // sweeps
  s.add_ints("sweep.seeds", {1}, "seeds each variant runs with");
  s.add_table("sweep.grid", "key = [values...]: the cartesian product of overrides");
  s.add_table_list("sweep.variant", "[[sweep.variant]] name = \"...\", set = [\"key=value\", ...]");
  s.add_int("sweep.jobs", 1, "runs in parallel");
  s.add_string("sweep.on_failure", "continue", "continue with the other runs, or stop", {"continue", "stop"});
  // tables
  s.add_string("table.title", "", "table heading");
  s.add_strings("table.metrics", {"test/accuracy"}, "final metrics shown as columns (split/metric)");
  s.add_strings("table.labels", {}, "column labels (default: the metric names)");
  s.add_float("table.scale", 1.0, "multiply metrics (100 for percentages)");
  s.add_floats("table.scales", {}, "per-metric multipliers, overriding table.scale (e.g. [100, 1])");
  s.add_string("table.paper", "", "paper table printed as reference rows",
               {"", "lra", "speech", "imagenet", "wikitext103", "pg19"});
  s.add_strings("table.paper_columns", {}, "paper column for each metric (\"\" = none)");
  s.add_strings("table.curves", {"train/loss", "val/accuracy"}, "metrics plotted against steps");
  s.add_string("table.notes", "", "how the runs were trained, printed under the table");
  return s;
}

Schema experiment_schema(const Config& composed) {
  Schema s = base_schema();
  if (!composed.has("task.name"))
    throw ConfigError(composed.experiment_file.string(), "task.name",
                      "missing: every experiment names a task (add a task/... entry to its defaults)");
  std::string name;
  try {
    name = composed.get_string("task.name");
  } catch (const std::exception&) {
    throw ConfigError(composed.origin("task.name"), "task.name", "expected a string");
  }
  const TaskEntry& entry = task_registry().at(name, "task.name", composed.origin("task.name"));
  if (entry.schema) entry.schema(s);
  return s;
}

Config load_experiment(const fs::path& experiment_file, const std::vector<std::string>& overrides) {
  LoadOptions o;
  o.overrides = overrides;
  return ConfigLoader::load(experiment_file, o, experiment_schema);
}

}  // namespace mgl::harness
