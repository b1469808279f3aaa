// The trainer: one trial from a resolved trial config. Data stays whole on the device; each epoch
// is a seeded permutation cut into index slices. Evaluations (every epoch end, and every
// train.eval_every_steps) report through a callback as they happen; a trial ends finished or
// diverged (NaN/Inf or a loss over train.divergence_loss, with the step it happened).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/note.h"
#include "data/datasets.h"
#include "models/models.h"
#include "train/loss.h"

namespace empiric {

using json = nlohmann::json;

struct Evaluation {
  int epoch = 0;       // epochs completed when it was taken (fractional epochs round down)
  long long step = 0;  // optimizer steps taken
  std::vector<std::pair<std::string, double>> values;
};

// Steps between divergence checks (and at each epoch's end), in train_model and populations
// alike; why 25 on both devices: trainer.cpp, where the check is made.
constexpr long long kDivergenceCheckEvery = 25;

struct TrainHooks {
  std::function<void(const Evaluation&)> on_eval;
  // Called now and then with (steps done, total steps); cheap, never synchronizes the device.
  std::function<void(long long, long long)> on_progress;
  // Where to checkpoint at epoch ends and resume from if present ("" = never), and how often:
  // at the first epoch end at least this many seconds after the last checkpoint (0: every epoch
  // end). Called just before each checkpoint is written (e.g. to store buffered metrics, so that
  // what a resumed run starts from is stored).
  std::string checkpoint_path;
  double checkpoint_every_s = 0;
  // Leave the checkpoint when training ends, for the caller to remove once it has recorded the
  // trial: a kill while the trial's measures (or its interpolation partner) run then resumes
  // from it rather than training again from the start.
  bool keep_checkpoint = false;
  std::function<void()> before_checkpoint;
  // Called after every optimizer step with the steps taken so far (e.g. to snapshot the weights
  // a lottery ticket rewinds to).
  std::function<void(long long)> on_step;
  // Pruning masks held through training, one per model parameter (undefined: unmasked); see
  // Optimizer::set_masks.
  std::vector<torch::Tensor> masks;
};

struct TrainOutcome {
  std::string status = "finished";  // finished | diverged
  long long diverged_step = -1;
  json summary;                    // final metrics and timings
  json measures = json::object();  // the "measure" section's results (finished trials)
  int resumed_from_epoch = 0;      // 0: started fresh
  // Resumed: the killed run's wall time up to the checkpoint it resumed from (its share, for a
  // population's member), which the run's own wall time leaves out.
  double resumed_wall_s = 0;
};

// Loss and accuracy of `model` on (x, y), evaluated in chunks without gradients.
std::pair<double, double> evaluate(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                   const Loss& loss, int64_t batch);

// The order every epoch visits the training examples in, as indices on `device`, for
// train.order "fixed" and "by_class" (`labels`: the training split's); undefined for
// "reshuffle", which draws a new permutation each epoch. Drawn from a generator of its own, so a
// resumed run gets the same order without it being checkpointed.
torch::Tensor fixed_order(const std::string& order, const torch::Tensor& labels, uint64_t seed,
                          const torch::Device& device);

// Trains `model` on `data` for the trial config `cfg`. The model must already be on `device`.
TrainOutcome train_model(const json& cfg, const Dataset& data, Net& model,
                         const torch::Device& device, const TrainHooks& hooks);

// Before a sweep trains anything: loads each distinct data set of `cfgs` and builds each distinct
// model, so that a data file, an lr_mult prefix, a mask file or a batch that batch norm cannot
// train on, which only some swept values name, fails now, with its ConfigError or UserError, not
// hours into the sweep. (The implicit lab has neither.)
void check_trials_start(const std::vector<json>& cfgs, const std::string& source);

// Whether an evaluation shows a diverged run: a loss that is not finite, or a training loss over
// `bound` (train.divergence_loss). A step's loss is checked before its update, so the last update
// is checked only by the evaluation after it (a trial alone and a population member alike): a run
// whose last step sent it over the bound finished, where one a step longer diverged.
bool evaluation_diverged(const std::vector<std::pair<std::string, double>>& values, double bound);

// The training loss that made a run diverged, as its summary's "diverged_loss": the number where
// it is one (over train.divergence_loss), else "nan", "inf" or "-inf" (JSON has no such number).
json diverged_loss_json(double loss);
// Of an evaluation that shows a diverged run (evaluation_diverged): the first loss that is not
// finite, its training loss before its test loss, else the training loss over the bound, as
// diverged_loss_json gives it.
json evaluation_diverged_loss(const std::vector<std::pair<std::string, double>>& values,
                              double bound);

// Whether an evaluation's training loss is at or below `target` (train.stop_train_loss); false
// for an evaluation without one or with a NaN one.
bool train_loss_at_most(const std::vector<std::pair<std::string, double>>& values, double target);

// Seeds torch, builds the dataset and the model from `cfg`, then trains: one whole trial.
// `source` names the config in error messages.
TrainOutcome run_trial(const json& cfg, const torch::Device& device, const TrainHooks& hooks,
                       const std::string& source);

// Mask files: "mask.<parameter name>" (0/1) and "init.<parameter name>" (the weights training
// starts from) for each masked parameter, and an init for unmasked ones (biases) where the file
// has it (the lottery lab's rounds do). load_masks sets the model's parameters to their init and
// returns the masks in parameter order (undefined where none); errors name `source`.
void save_masks(const std::string& path, Net& model, const std::vector<torch::Tensor>& masks);
std::vector<torch::Tensor> load_masks(const std::string& path, Net& model,
                                      const std::string& source);

// Writes `archive` to `path` whole or not at all (write_file_whole), serialized in memory first:
// torch's file writer throws from its destructor when a write fails, which ends the process.
// The file ends in a CRC-32 of the archive, which load_archive_from checks.
void save_archive_to(torch::serialize::OutputArchive& archive, const std::string& path);
// An archive whose bytes are not those it was written with (its CRC-32 differs).
struct DamagedArchive : std::runtime_error {
  DamagedArchive(const std::string& path, const std::string& why_)
      : std::runtime_error(path + ": " + why_), why(why_) {}
  std::string why;  // what() without the path
};
// Loads an archive save_archive_to wrote (or one without a checksum, written before them):
// DamagedArchive when its checksum does not match, torch's errors when torch cannot read it.
void load_archive_from(torch::serialize::InputArchive& archive, const std::string& path,
                       std::optional<torch::Device> device = std::nullopt);
// Kept fraction of the masked parameters' elements.
double remaining_fraction(const std::vector<torch::Tensor>& masks);

struct EigenEstimate;  // measures/measures.h

// The top Hessian eigenvalue of `model` as it is now (before training), on the examples the final
// measure uses, when cfg's measure.hessian_init asks for it; a value of NaN otherwise.
EigenEstimate initial_hessian_top(const json& cfg, Net& model, const Dataset& data);
// Its summary entries: hessian_top_init, its convergence and residual, and lr_x_hessian_init
// (the base LR times it) only for an estimate that converged to a positive value (an unfinished
// or negative one is not the top eigenvalue the claims bin by); nothing without an estimate.
void summarize_initial_hessian(const EigenEstimate& est, double base_lr, json& summary);

// The gradient flow at initialization (measure.grad_flow_init) as summary entries:
// grad_norm_first_init, grad_norm_last_init, grad_ratio_init; empty when not asked for.
json initial_gradient_flow(const json& cfg, Net& model, const Dataset& data);

// Warmup-stable-decay's landmarks: the steps where the test metrics are taken (one decay-length
// before the decay starts, "window_start", and where it starts, "decay_start"); none for other
// schedules.
std::vector<std::pair<long long, std::string>> schedule_marks(const json& sched, long long total,
                                                              long long spe);
// From those marks and the final test accuracy: the decay phase's gain beside the stable phase's
// over as many steps, into a finished classifier's summary (nothing without both marks).
void summarize_schedule_marks(const json& marks, json& summary);

// A string stored in a checkpoint archive as a byte tensor, and back.
torch::Tensor text_tensor(const std::string& s);
std::string tensor_text(const torch::Tensor& t);

// Held while a trial seeds torch's global generators and draws its data and init, so trials
// started at once (sweeps with --jobs) each get exactly what they would alone.
std::mutex& init_mutex();

// Why a run of `cfg` on `device` cannot capture CUDA graphs, whatever its optimizer: not a GPU,
// train.cuda_graphs off, a build without CUDA ("" when it can).
std::string cuda_graph_blocker(const json& cfg, const torch::Device& device);
// A failed trial's error as stored and shown: its first line (torch's errors go on with a stack
// trace), at most 500 characters.
std::string failure_text(const std::exception& e);
// Says once (note_once) that train.batch_size exceeds the `examples` training examples, so
// each step takes all of them.
void note_batch_exceeds_data(const json& cfg, int64_t examples, const std::string& source);
// Batch norm over features cannot train on a batch of one example: refuses a model with
// BatchNorm1d whose train.batch_size (or measure.interpolate_batch) leaves one, given `examples`
// training examples, naming `source`, the key and the sizes.
void check_batch_norm_batches(const json& cfg, Net& model, int64_t examples,
                              const std::string& source);
// The gradient noise scale compares a small and a large batch: refuses measure.noise_batches
// whose small batch is not below the `examples` training examples (both would be all of them).
void check_measure_batches(const json& cfg, int64_t examples, const std::string& source);
// A lottery chain rewinds to a step of its dense run: refuses a lottery.rewind_step at or past
// that run's last step, given `examples` training examples, before anything trains.
void check_rewind_step(const json& cfg, int64_t examples, const std::string& source);

// cuBLAS's TF32 mode set from train.tf32 on a GPU for the scope's life, and the previous mode
// back after it (a process-wide setting: GPU trials run one at a time). Nothing on a CPU.
class Tf32Scope {
 public:
  Tf32Scope(const json& cfg, const torch::Device& device);
  ~Tf32Scope();
  Tf32Scope(const Tf32Scope&) = delete;
  Tf32Scope& operator=(const Tf32Scope&) = delete;

 private:
  bool active_ = false, previous_ = false;
};

// "auto" -> cuda when torch sees a GPU, else cpu; "cuda" without a GPU is a UserError.
torch::Device pick_device(const std::string& requested);

}  // namespace empiric
