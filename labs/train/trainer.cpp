#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/core.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>

#include "core/config.h"
#include "core/errors.h"
#include "device/device_info.h"
#include "experiments/implicit.h"
#include "graph/graph.h"
#include "measures/measures.h"
#include "models/tree.h"
#include "train/loss.h"
#include "train/lr_range.h"
#include "train/optim.h"
#include "train/schedule.h"

namespace empiric {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// What a checkpoint restores besides model and optimizer.
struct LoopState {
  int epoch = 0;  // epochs completed
  long long step = 0;
  long long samples = 0;  // training examples seen (the last batch of an epoch may be smaller)
  double best_val = INFINITY;
  long long best_val_step = -1;
  double test_acc_at_best = NAN;
  int evals_since_best = 0;
  double compute_s = 0, eval_s = 0;
  double wall_s = 0;            // the run's wall time at the checkpoint, earlier runs' included
  json marks = json::object();  // test metrics taken at schedule landmarks (wsd's decay start)
  // The last evaluation's values: the summary's, should the run stop (diverge) before the next.
  std::vector<std::pair<std::string, double>> last_values;
  json to_json() const {
    json values = json::array();
    for (const auto& [name, value] : last_values)
      values.push_back({name, std::isfinite(value) ? json(value) : json()});
    return {{"epoch", epoch},
            {"step", step},
            {"samples", samples},
            {"best_val", std::isfinite(best_val) ? json(best_val) : json()},
            {"best_val_step", best_val_step},
            {"test_acc_at_best", std::isnan(test_acc_at_best) ? json() : json(test_acc_at_best)},
            {"evals_since_best", evals_since_best},
            {"compute_s", compute_s},
            {"eval_s", eval_s},
            {"wall_s", wall_s},
            {"marks", marks},
            {"last_values", values}};
  }
  // (at(): a missing field in an older checkpoint throws, where const operator[] is undefined.)
  void from_json(const json& j) {
    epoch = j.at("epoch");
    step = j.at("step");
    samples = j.value("samples", 0LL);
    best_val = j.at("best_val").is_null() ? INFINITY : j.at("best_val").get<double>();
    best_val_step = j.at("best_val_step");
    test_acc_at_best =
        j.at("test_acc_at_best").is_null() ? NAN : j.at("test_acc_at_best").get<double>();
    evals_since_best = j.at("evals_since_best");
    compute_s = j.at("compute_s");
    eval_s = j.at("eval_s");
    wall_s = j.value("wall_s", 0.0);  // (an older checkpoint has none)
    marks = j.value("marks", json::object());
    last_values.clear();
    for (const auto& v : j.value("last_values", json::array()))
      last_values.emplace_back(v.at(0).get<std::string>(),
                               v.at(1).is_null() ? NAN : v.at(1).get<double>());
  }
};

// Dropout's generator on a CPU: the trial's own, not torch's global one, which the trials a sweep
// runs at once (--jobs) would share.
at::Generator dropout_generator(const json& cfg) {
  return at::detail::createCPUGenerator(cfg.value("seed", 0) * 1000003ULL + 37);
}

// torch's default generator on `device`: init draws from it, and dropout on a GPU.
at::Generator device_generator(const torch::Device& device) {
  return at::globalContext().defaultGenerator(device.is_cuda() ? device
                                                               : torch::Device(torch::kCPU));
}

// A checkpoint holds the generators training draws from: the data order's, dropout's and (on a
// GPU) the device's. Not torch's global CPU generator: only initialization draws from it, under
// init_mutex(), and setting it on a resume would change what a trial initializing on another
// thread at that moment draws.
void save_checkpoint(const std::string& path, Net& model, Optimizer& opt, at::Generator& order_gen,
                     at::Generator& dropout_gen, const LoopState& state,
                     const torch::Device& device) {
  torch::serialize::OutputArchive archive, model_archive, optim_archive;
  model->save(model_archive);
  opt.save(optim_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optim_archive);
  archive.write("order_rng", order_gen.get_state());
  archive.write("dropout_rng", dropout_gen.get_state());
  if (device.is_cuda()) archive.write("device_rng", device_generator(device).get_state());
  archive.write("state", text_tensor(state.to_json().dump()));
  save_archive_to(archive, path);  // (a kill mid-save leaves the previous checkpoint intact)
}

// Restores a checkpoint into a freshly built model and optimizer. One that cannot be restored (cut
// short by a kill before its rename, or written by an empiric whose model or optimizer state
// differed) is removed and the trial trains from the start, saying so once: a failure here would
// otherwise fail the trial on every rerun.
bool load_checkpoint(const std::string& path, Net& model, Optimizer& opt, at::Generator& order_gen,
                     at::Generator& dropout_gen, LoopState& state, const torch::Device& device) {
  if (path.empty() || !std::filesystem::exists(path)) return false;
  // What the model and optimizer hold now, to put back if loading fails halfway.
  std::vector<torch::Tensor> fresh_model;
  for (const auto& t : model->parameters()) fresh_model.push_back(t.detach().clone());
  for (const auto& t : model->buffers()) fresh_model.push_back(t.detach().clone());
  torch::serialize::OutputArchive fresh_optim;
  opt.save(fresh_optim);
  std::ostringstream fresh_optim_bytes;
  fresh_optim.save_to(fresh_optim_bytes);
  const torch::Tensor fresh_order = order_gen.get_state(), fresh_dropout = dropout_gen.get_state();

  LoopState loaded;
  try {
    torch::Tensor rng, dropout_rng, device_rng, s;
    torch::serialize::InputArchive archive, model_archive, optim_archive;
    load_archive_from(archive, path, device);
    archive.read("model", model_archive);
    archive.read("optimizer", optim_archive);
    archive.read("order_rng", rng);
    archive.read("dropout_rng", dropout_rng);
    archive.read("state", s);
    // A checkpoint taken on a CPU (train.device is not part of the trial's hash) has no device
    // generator to restore: the GPU's starts from its seed.
    if (device.is_cuda()) archive.try_read("device_rng", device_rng);
    for (const auto& [name, t] : {std::pair<const char*, const torch::Tensor*>{"order_rng", &rng},
                                  {"dropout_rng", &dropout_rng},
                                  {"device_rng", &device_rng},
                                  {"state", &s}})
      if (const std::string why = archived_tensor_problem(*t); !why.empty())
        throw std::runtime_error(std::string(name) + ": " + why);
    loaded.from_json(json::parse(tensor_text(s)));
    // Module::load adopts the stored tensors whatever their shapes.
    model->load(model_archive);
    size_t i = 0;
    for (const auto& group : {model->named_parameters(), model->named_buffers()})
      for (const auto& item : group)
        if (item.value().sizes() != fresh_model[i++].sizes())
          throw std::runtime_error(item.key() + " has shape " + c10::str(item.value().sizes()) +
                                   " there, " + c10::str(fresh_model[i - 1].sizes()) + " here");
        else if (const std::string why = archived_tensor_problem(item.value()); !why.empty())
          throw std::runtime_error(item.key() + ": " + why);
    opt.load(optim_archive);
    order_gen.set_state(rng.cpu());
    dropout_gen.set_state(dropout_rng.cpu());
    if (device_rng.defined()) device_generator(device).set_state(device_rng.cpu());
  } catch (const c10::OutOfMemoryError&) {
    throw;  // a full device, not a bad checkpoint: keep the file for the next run
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    order_gen.set_state(fresh_order);
    dropout_gen.set_state(fresh_dropout);
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (auto& t : model->parameters()) t.set_(fresh_model[i++]);
    for (auto& t : model->buffers()) t.set_(fresh_model[i++]);
    std::istringstream bytes(fresh_optim_bytes.str());
    torch::serialize::InputArchive fresh;
    fresh.load_from(bytes, device);
    opt.clear_state();  // torch::optim's load adds state and never removes any
    opt.load(fresh);
    // (One that cannot be removed, in a folder this user cannot write, failed the trial with a
    // raw filesystem error on every rerun.)
    std::error_code ec;
    std::filesystem::remove(path, ec);
    note_once("checkpoint " + path + " could not be restored (" + failure_text(e) +
              "): " + (ec ? "it cannot be removed (" + ec.message() + "; delete it)" : "removed") +
              "; the trial trains from the start");
    return false;
  }
  state = loaded;
  return true;
}

}  // namespace

void save_masks(const std::string& path, Net& model, const std::vector<torch::Tensor>& masks) {
  torch::serialize::OutputArchive archive;
  size_t i = 0;
  for (const auto& item : model->named_parameters()) {
    if (i < masks.size() && masks[i].defined()) {
      archive.write("mask." + item.key(), masks[i].cpu());
      archive.write("init." + item.key(), item.value().detach().cpu());
    }
    ++i;
  }
  save_archive_to(archive, path);
}

namespace {

// Every archive empiric writes ends in "\nempiric-crc32 XXXXXXXX\n", the CRC-32 of the bytes
// before it: torch's reader checks none (its zip reader is built without CRC checks), so a
// flipped byte inside a tensor's record loaded as a wrong weight and a resumed trial trained on
// from it.
constexpr std::string_view kSumTag = "\nempiric-crc32 ";
constexpr size_t kTrailer = kSumTag.size() + 9;

std::string crc32_hex(std::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t at = 0; at < bytes.size();) {  // (zlib takes uInt lengths)
    const size_t n = std::min<size_t>(bytes.size() - at, 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), uInt(n));
    at += n;
  }
  return fmt::format("{:08x}", crc);
}

}  // namespace

void save_archive_to(torch::serialize::OutputArchive& archive, const std::string& path) {
  std::ostringstream out;  // (torch's file writer throws from its destructor on a failed write)
  archive.save_to(out);
  std::string bytes = out.str();
  bytes += std::string(kSumTag) + crc32_hex(bytes) + "\n";
  write_file_whole(path, bytes);
}

void load_archive_from(torch::serialize::InputArchive& archive, const std::string& path,
                       std::optional<torch::Device> device) {
  std::FILE* in = std::fopen(path.c_str(), "rb");
  if (!in) throw std::runtime_error(path + ": cannot be read (" + std::strerror(errno) + ")");
  std::string bytes;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;) bytes.append(buf, n);
  const bool failed = std::ferror(in) != 0;
  const int err = errno;
  std::fclose(in);
  // (A read that fails midway says so: it is not a checksum that differs.)
  if (failed) throw std::runtime_error(path + ": cannot be read (" + std::strerror(err) + ")");
  const std::string_view all(bytes);
  // (One written before the checksums has none: torch's own checks are all it gets.)
  if (all.size() >= kTrailer && all.substr(all.size() - kTrailer, kSumTag.size()) == kSumTag) {
    const std::string_view stored = all.substr(all.size() - 9, 8);
    if (crc32_hex(all.substr(0, all.size() - kTrailer)) != stored)
      throw DamagedArchive(path,
                           "damaged since it was written (its CRC-32 does not match the one "
                           "it was written with)");
    bytes.resize(bytes.size() - kTrailer);
  }
  std::istringstream is(std::move(bytes));
  archive.load_from(is, device);
}

std::vector<torch::Tensor> load_masks(const std::string& path, Net& model,
                                      const std::string& source) {
  if (!std::filesystem::exists(path))
    throw ConfigError(source, "/train/mask_file", json(path).dump(),
                      "no such file; expected a mask file written by the lottery lab "
                      "(results/artifacts/.../round_N.pt)");
  torch::serialize::InputArchive archive;
  try {
    load_archive_from(archive, path);
  } catch (const DamagedArchive& e) {
    throw ConfigError(source, "/train/mask_file", json(path).dump(),
                      e.why + "; expected a whole mask file (rewrite it with the lottery lab)");
  } catch (const std::exception&) {
    throw ConfigError(source, "/train/mask_file", json(path).dump(),
                      "not a mask file (a torch archive with mask.<parameter> entries)");
  }
  std::vector<torch::Tensor> masks;
  torch::NoGradGuard guard;
  // An entry ("mask." or "init." and a parameter's name) of the parameter's shape, if there is one.
  auto entry = [&](const std::string& kind, const std::string& name, const torch::Tensor& like) {
    torch::Tensor t;
    if (!archive.try_read(kind + "." + name, t)) return t;
    if (const std::string why = archived_tensor_problem(t); !why.empty())
      throw UserError(source + ": /train/mask_file = \"" + path + "\": " + kind + " of " + name +
                      ": " + why +
                      "; expected a whole mask file (rewrite it with the lottery lab)");
    if (t.sizes() != like.sizes())
      throw UserError(source + ": /train/mask_file = \"" + path + "\": " + kind + " of " + name +
                      " has shape " + c10::str(t.sizes()) + ", the model's is " +
                      c10::str(like.sizes()) + "; expected a mask file for this model");
    return t;
  };
  int found = 0;
  for (auto& item : model->named_parameters()) {
    // Unmasked parameters (biases) start where the ticket's did too: its rewind point's values,
    // which differ from a fresh initialization when lottery.rewind_step > 0.
    const torch::Tensor mask = entry("mask", item.key(), item.value()),
                        init = entry("init", item.key(), item.value());
    // A mask keeps (1) or prunes (0) a weight; a start is a number.
    if (mask.defined() && !mask.eq(0).logical_or(mask.eq(1)).all().item<bool>())
      throw UserError(source + ": /train/mask_file = \"" + path + "\": the mask of " + item.key() +
                      " holds values other than 0 and 1; expected 0 (pruned) or 1");
    if (init.defined() && !init.isfinite().all().item<bool>())
      throw UserError(source + ": /train/mask_file = \"" + path + "\": the start (init) of " +
                      item.key() + " holds NaN or infinite values; expected finite weights");
    if (init.defined()) item.value().copy_(init);
    if (mask.defined()) ++found;
    masks.push_back(mask.defined() ? mask.to(item.value().options()) : torch::Tensor());
  }
  // Batch norm's running statistics start where the ticket's did (its rewind point's).
  for (auto& item : model->named_buffers())
    if (const torch::Tensor init = entry("init", item.key(), item.value()); init.defined())
      item.value().copy_(init);
  if (found == 0)
    throw UserError(source + ": /train/mask_file = \"" + path +
                    "\": no mask matches a parameter of this model");
  return masks;
}

double remaining_fraction(const std::vector<torch::Tensor>& masks) {
  double kept = 0, total = 0;
  for (const auto& m : masks)
    if (m.defined()) kept += m.sum().item<double>(), total += double(m.numel());
  return total > 0 ? kept / total : 1.0;
}

torch::Device pick_device(const std::string& requested) {
  if (requested == "cpu") return torch::kCPU;
  // Torch runs on a GPU in a build without empiric's CUDA kernels, but the fused optimizer and
  // the other kernels do not: such a build trains on the CPU.
  const bool gpu = torch::cuda::is_available();
  if (gpu && built_with_cuda()) return torch::Device(torch::kCUDA, 0);
  if (requested == "cuda")
    throw UserError(gpu ? "--device cuda: this build has no CUDA kernels (EMPIRIC_CUDA=OFF), "
                          "which training on the GPU needs; allowed here: cpu, auto (or rebuild "
                          "with EMPIRIC_CUDA=ON)"
                        : "--device cuda: torch sees no CUDA GPU on this machine; allowed here: "
                          "cpu, auto");
  if (gpu)
    note_once(
        "a GPU is here, but this build has no CUDA kernels (EMPIRIC_CUDA=OFF): training on "
        "the CPU");
  return torch::kCPU;
}

Tf32Scope::Tf32Scope(const json& cfg, const torch::Device& device) {
  if (!device.is_cuda()) return;
  active_ = true;
  previous_ = at::globalContext().allowTF32CuBLAS();
  at::globalContext().setAllowTF32CuBLAS(cfg["train"].value("tf32", false));
}

Tf32Scope::~Tf32Scope() {
  if (active_) at::globalContext().setAllowTF32CuBLAS(previous_);
}

std::string cuda_graph_blocker(const json& cfg, const torch::Device& device) {
  if (!device.is_cuda()) return "not on a GPU";
  if (cfg["train"].value("cuda_graphs", "auto") == "off") return "train.cuda_graphs is off";
  if (!kernels::graphs_available()) return "this build has no CUDA graphs";
  return "";
}

std::string failure_text(const std::exception& e) {
  const std::string what = e.what();
  if (const std::string memory = out_of_memory_text(e); !memory.empty())
    return "out of memory: " + memory.substr(0, 500) + " (" + kTooLarge + ")";
  return what.substr(0, std::min<size_t>(what.find('\n'), 500));
}

void note_batch_exceeds_data(const json& cfg, int64_t examples, const std::string& source) {
  if (const int64_t batch = cfg["train"]["batch_size"]; batch > examples)
    note_once(source + ": /train/batch_size = " + std::to_string(batch) + ": there are only " +
              std::to_string(examples) + " training examples; each step takes all of them");
}

void check_batch_norm_batches(const json& cfg, Net& model, int64_t examples,
                              const std::string& source) {
  // (BatchNorm2d normalizes over the pixels too: one image is many values per channel.)
  bool batch_norm = false;
  for (const auto& m : model->modules(/*include_self=*/false))
    batch_norm = batch_norm || m->as<torch::nn::BatchNorm1dImpl>();
  if (!batch_norm || examples <= 0) return;
  std::vector<std::pair<std::string, int64_t>> sizes = {
      {"/train/batch_size", cfg["train"]["batch_size"].get<int64_t>()}};
  if (cfg.contains("measure") && cfg["measure"].value("interpolate_batch", int64_t(0)) > 0)
    sizes.emplace_back("/measure/interpolate_batch",
                       cfg["measure"]["interpolate_batch"].get<int64_t>());
  for (const auto& [key, size] : sizes) {
    const int64_t batch = std::min(size, examples);
    if (batch != 1 && examples % batch != 1) continue;
    throw ConfigError(
        source, key, std::to_string(size),
        examples == 1
            ? "the training set holds one example, and batch norm cannot train on one; allowed: "
              "a data set of at least two (data.train_subset, data.validation)"
        : batch == 1
            ? "every batch holds one example, and batch norm cannot train on one; allowed: a "
              "batch size of at least 2"
            : fmt::format("with {} training examples an epoch's last batch holds one example, "
                          "and batch norm cannot train on one; allowed: a batch size that leaves "
                          "none or at least two",
                          examples));
  }
}

void check_measure_batches(const json& cfg, int64_t examples, const std::string& source) {
  if (!cfg.contains("measure") || !cfg["measure"].value("noise_scale", false)) return;
  const json& batches = cfg["measure"]["noise_batches"];
  if (batches[0].get<int64_t>() < examples) return;
  throw ConfigError(source, "/measure/noise_batches", batches.dump(),
                    fmt::format("with {} training examples both batches are all of them, and the "
                                "noise scale compares two sizes; allowed: a small batch below {}",
                                examples, examples));
}

void check_rewind_step(const json& cfg, int64_t examples, const std::string& source) {
  const long long k = cfg["lottery"]["rewind_step"];
  const json& t = cfg["train"];
  const int64_t batch = std::min<int64_t>(t["batch_size"].get<int64_t>(), examples);
  const long long steps = t["steps"].get<long long>() > 0
                              ? t["steps"].get<long long>()
                              : t["epochs"].get<long long>() * ((examples + batch - 1) / batch);
  if (k >= steps)
    throw UserError(fmt::format(
        "{}: /lottery/rewind_step = {}: the dense run takes {} steps ({} training examples in "
        "batches of {}); allowed: 0 to {}",
        source, k, steps, examples, batch, steps - 1));
}

namespace {

// Sums of the loss and of the correct predictions over (x, y) in chunks, into out (float32 [2]),
// with no host synchronization: the pass an evaluation graph captures.
void eval_sums(Net& model, const torch::Tensor& x, const torch::Tensor& y, const Loss& loss,
               int64_t batch, torch::Tensor& out) {
  torch::NoGradGuard guard;
  // Back in the mode it was in also when the pass throws (a capture that breaks): the eager
  // passes and steps after it must see the model as before.
  struct ModeGuard {
    Net& model;
    bool was_training;
    ~ModeGuard() { model->train(was_training); }
  } mode{model, model->is_training()};
  model->eval();
  const int64_t n = x.size(0);
  auto loss_sum = torch::zeros({}, x.options());
  auto correct = torch::zeros({}, x.options().dtype(torch::kInt64));
  for (int64_t i = 0; i < n; i += batch) {
    auto xb = x.slice(0, i, std::min(n, i + batch)), yb = y.slice(0, i, std::min(n, i + batch));
    auto out_b = model->forward(xb);
    loss_sum += loss(out_b, yb, at::Reduction::Sum);
    if (!loss.regression()) correct += out_b.argmax(1).eq(yb).sum();
  }
  out.select(0, 0).copy_(loss_sum);
  out.select(0, 1).copy_(correct);
}

std::pair<double, double> mean_loss_and_accuracy(const torch::Tensor& sums, int64_t n,
                                                 bool regression) {
  auto host = sums.to(torch::kCPU, torch::kFloat64);  // the pass's one read back
  const double count = double(std::max<int64_t>(n, 1));
  return {host[0].item<double>() / count, regression ? NAN : host[1].item<double>() / count};
}

// Evaluation passes of one training run. With graphs, each data set's pass is captured as a CUDA
// graph at its first use and replayed after that (eager if capture fails).
class Evaluator {
 public:
  Evaluator(Net& model, const Loss& loss, int64_t batch, bool graphs)
      : model_(model), loss_(loss), batch_(batch), graphs_(graphs) {}

  std::pair<double, double> operator()(const torch::Tensor& x, const torch::Tensor& y) {
    Pass& pass = passes_[{x.data_ptr(), y.data_ptr()}];  // a replay reads the captured memory
    if (!pass.sums.defined()) {
      pass.sums = torch::zeros({2}, x.options().dtype(torch::kFloat32));
      if (graphs_ && !pass.graph.capture([&] { eval_sums(model_, x, y, loss_, batch_, pass.sums); },
                                         &failure_)) {
        graphs_ = false;
        note_once("cuda graphs: an evaluation pass could not be captured (" + failure_ +
                  "); evaluating eagerly");
      }
    }
    if (pass.graph.captured())
      pass.graph.replay();
    else
      eval_sums(model_, x, y, loss_, batch_, pass.sums);
    return mean_loss_and_accuracy(pass.sums, x.size(0), loss_.regression());
  }
  const std::string& failure() const { return failure_; }

 private:
  struct Pass {
    kernels::Graph graph;
    torch::Tensor sums;
  };
  Net& model_;
  Loss loss_;
  int64_t batch_;
  bool graphs_;
  std::string failure_;
  std::map<std::pair<const void*, const void*>, Pass> passes_;
};

// Why the training step cannot be captured as a CUDA graph ("" when it can).
std::string graph_blocker(const json& cfg, const torch::Device& device, const Optimizer& opt) {
  if (std::string why = cuda_graph_blocker(cfg, device); !why.empty()) return why;
  if (!opt.fused())
    return cfg["optim"]["name"] == "rmsprop"
               ? "rmsprop runs torch::optim, which keeps its step's scalars on the host"
               : "optim.impl=torch keeps its step's scalars on the host";
  if (opt.sam_rho() > 0) return "SAM takes a second gradient";
  if (cfg["optim"].value("grad_noise", 0.0) > 0) return "gradient noise draws on the host";
  if (cfg["optim"].value("clip_norm", 0.0) > 0) return "clipping reads the norm on the host";
  return "";
}

}  // namespace

torch::Tensor fixed_order(const std::string& name, const torch::Tensor& labels, uint64_t seed,
                          const torch::Device& device) {
  if (name == "reshuffle") return {};
  at::Generator gen = at::detail::createCPUGenerator(seed * 1000003ULL + 29);
  auto perm = torch::randperm(labels.size(0), gen);
  if (name == "by_class") {
    // A stable sort keeps each class's examples in the permutation's order.
    auto by_label =
        std::get<1>(labels.cpu().index_select(0, perm).sort(std::optional<bool>(true), 0, false));
    perm = perm.index_select(0, by_label);
  }
  return perm.to(device);
}

std::pair<double, double> evaluate(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                   const Loss& loss, int64_t batch) {
  auto sums = torch::zeros({2}, x.options().dtype(torch::kFloat32));
  eval_sums(model, x, y, loss, batch, sums);
  return mean_loss_and_accuracy(sums, x.size(0), loss.regression());
}

std::vector<std::pair<long long, std::string>> schedule_marks(const json& sched, long long total,
                                                              long long spe) {
  if (sched["name"] != "wsd") return {};
  const long long warm = warmup_steps(sched, spe);
  const long long decay_start =
      warm + (long long)std::ceil((1.0 - sched["decay_frac"].get<double>()) *
                                  double(std::max(1LL, total - warm)));
  const long long window = decay_start - (total - decay_start);
  // The stable stretch as long as the decay, before it: after the warmup, or not measured.
  if (window > 0 && window >= warm && decay_start < total)
    return {{window, "window_start"}, {decay_start, "decay_start"}};
  return {};
}

void summarize_schedule_marks(const json& marks, json& summary) {
  if (!marks.contains("decay_start") || !marks.contains("window_start")) return;
  // (A double's NaN: value("test_acc", NAN) read it as a float, 1e-8 off in every gain.)
  const double end = summary.contains("test_acc") && summary["test_acc"].is_number()
                         ? summary["test_acc"].get<double>()
                         : std::numeric_limits<double>::quiet_NaN();
  const double at_decay = marks["decay_start"]["test_acc"];
  const double at_window = marks["window_start"]["test_acc"];
  summary["test_acc_decay_start"] = at_decay;
  summary["wsd_decay_gain"] = end - at_decay;
  summary["wsd_stable_gain"] = at_decay - at_window;
  summary["wsd_decay_minus_stable"] = (end - at_decay) - (at_decay - at_window);
}

TrainOutcome train_model(const json& cfg, const Dataset& data, Net& model,
                         const torch::Device& device, const TrainHooks& hooks) {
  const Tf32Scope tf32(cfg, device);
  const json& t = cfg["train"];
  const int64_t n = data.x_train.size(0);
  const int64_t batch = std::min<int64_t>(t["batch_size"].get<int64_t>(), n);
  const int64_t spe = (n + batch - 1) / batch;  // the last, smaller batch is kept
  const long long total = t["steps"].get<long long>() > 0 ? t["steps"].get<long long>()
                                                          : t["epochs"].get<long long>() * spe;
  const int64_t eval_batch = t["eval_batch_size"];
  const long long eval_every = t["eval_every_steps"];
  const long long max_evals = t.value("max_evals", 0LL);
  // "held_out": evaluations leave the training set out, but for the last (the summary's).
  const bool evals_take_train = t.value("eval_sets", "all") == "all";
  const int patience = t["early_stop_patience"];
  const double stop_train_loss = t.value("stop_train_loss", 0.0);
  const double bound = t["divergence_loss"];
  const bool has_val = data.x_val.defined() && data.x_val.size(0) > 0;
  const bool regression = data.regression;
  const Loss loss = Loss::of(cfg, data);
  // The loss a step records (the running training loss, the divergence check): the unweighted
  // one, as evaluations report it, also when class weights weight the step's.
  auto reported = [&](const torch::Tensor& value, const torch::Tensor& out,
                      const torch::Tensor& y) {
    return loss.weighted() ? loss(out.detach(), y) : value.detach();
  };
  const FlopCount flops = count_flops(model, data.input_shape);
  // SAM takes a second forward and backward per step, at the perturbed weights.
  const double flops_per_example =
      double(flops.training()) * (cfg["optim"].value("sam_rho", 0.0) > 0 ? 2.0 : 1.0);
  // Targets: (metric, value, at least?) recorded at the first evaluation that reaches them.
  std::vector<std::tuple<std::string, double, bool>> targets;
  for (const auto& [metric, at_least] : {std::pair<const char*, bool>{"train_loss", false},
                                         {"train_acc", true},
                                         {"test_acc", true}})
    if (const double v = t.value(std::string("target_") + metric, 0.0); v > 0)
      targets.emplace_back(metric, v, at_least);
  const bool stop_at_targets = t.value("stop_at_targets", false) && !targets.empty();

  const json& sched = cfg["schedule"];
  const double base_lr =
      scaled_base_lr(cfg["optim"]["lr"], sched["scale_rule"], batch, sched["base_batch"]);
  Optimizer opt(cfg["optim"], *model);
  opt.seed_noise(cfg.value("seed", 0));
  if (!hooks.masks.empty()) opt.set_masks(hooks.masks);
  at::Generator order_gen = at::detail::createCPUGenerator(cfg.value("seed", 0) * 1000003ULL + 17);
  at::Generator dropout_gen = dropout_generator(cfg);
  if (!device.is_cuda()) use_dropout_generator(*model, dropout_gen);
  const torch::Tensor order =
      fixed_order(t.value("order", "reshuffle"), data.y_train, cfg.value("seed", 0), device);

  TrainOutcome outcome;
  LoopState st;
  const auto run_start = Clock::now();
  if (load_checkpoint(hooks.checkpoint_path, model, opt, order_gen, dropout_gen, st, device)) {
    outcome.resumed_from_epoch = st.epoch;
    outcome.resumed_wall_s = st.wall_s;
  }

  // CUDA graphs: the step is captured once, after two eager warm-up steps, reading its batch
  // indices from a static buffer and its LR and bias corrections from device scalars, then
  // replayed for every full batch (the smaller last batch of an epoch runs eagerly); each
  // evaluation pass likewise. Everything runs on one side stream (capture needs one).
  const std::string blocker = graph_blocker(cfg, device, opt);
  bool graphs = blocker.empty();
  if (device.is_cuda() && !graphs && cfg["train"].value("cuda_graphs", "auto") != "off")
    note_once("cuda graphs: off for this run (" + blocker + "); training eagerly");
  kernels::StreamGuard side_stream(graphs ? std::max<int>(0, device.index()) : -1);
  if (graphs) opt.use_device_scalars();
  Evaluator evaluate(model, loss, eval_batch, graphs);
  kernels::Graph step_graph;
  torch::Tensor static_idx, static_loss;
  const long long first_step = st.step;
  std::string graph_status = graphs ? "captured" : blocker;

  // Each step writes its loss into a device buffer (one small copy, no host sync); every
  // `check_every` steps the unchecked part is scanned for NaN/Inf or a loss over the bound, so the
  // recorded divergence step is exact. A check is a sync on a GPU and half a dozen small ops on a
  // CPU (15-18 us in a Python timing of the same ops, 2 % of a batch-32 LeNet step), so it comes
  // every 25 steps on both (and at each epoch's end); a diverged run trains on for at most 24
  // steps of NaN before it stops. The same buffer gives the epoch's running training loss.
  const long long check_every = kDivergenceCheckEvery;
  auto step_losses = torch::zeros({spe}, data.x_train.options());
  auto batch_sizes = torch::full({spe}, double(batch), data.x_train.options());
  batch_sizes[spe - 1] = double(n - (spe - 1) * batch);
  int64_t epoch_steps = 0;
  int64_t since_eval = 0;  // the first of this epoch's steps since the last evaluation
  model->train();

  // The batch-weighted mean loss of this epoch's steps [from, to).
  auto mean_step_loss = [&](int64_t from, int64_t to) {
    auto w = batch_sizes.slice(0, from, to);
    return ((step_losses.slice(0, from, to) * w).sum() / w.sum()).item<double>();
  };
  long long last_eval_step = -1;  // an epoch end that was just evaluated is not again
  // The evaluation before the last: the summary of a run its last evaluation finds diverged.
  std::vector<std::pair<std::string, double>> previous_values = st.last_values;
  auto take_evaluation = [&](bool with_train) {
    last_eval_step = st.step;
    auto t0 = Clock::now();
    Evaluation ev;
    ev.epoch = st.epoch;
    ev.step = st.step;
    auto [test_loss, test_acc] = evaluate(data.x_test, data.y_test);
    ev.values = {{"test_loss", test_loss}, {"lr", opt.lr()}};
    if (!regression) ev.values.push_back({"test_acc", test_acc});
    if (with_train) {
      auto [train_loss, train_acc] = evaluate(data.x_train, data.y_train);
      ev.values.push_back({"train_loss", train_loss});
      if (!regression) {
        ev.values.push_back({"train_acc", train_acc});
        ev.values.push_back({"gen_gap", train_acc - test_acc});
      }
    }
    if (epoch_steps > 0)
      ev.values.push_back({"train_loss_running", mean_step_loss(0, epoch_steps)});
    // Without the training set, the curve to draw: the mean loss of the steps since the last
    // evaluation (the epoch's running mean falls at each epoch start as its window restarts).
    if (!evals_take_train && epoch_steps > since_eval)
      ev.values.push_back({"train_loss_recent", mean_step_loss(since_eval, epoch_steps)});
    since_eval = epoch_steps;
    if (has_val) {
      auto [val_loss, val_acc] = evaluate(data.x_val, data.y_val);
      ev.values.push_back({"val_loss", val_loss});
      if (!regression) ev.values.push_back({"val_acc", val_acc});
      if (val_loss < st.best_val) {
        st.best_val = val_loss;
        st.best_val_step = st.step;
        st.test_acc_at_best = test_acc;
        st.evals_since_best = 0;
      } else {
        st.evals_since_best++;
      }
    }
    st.eval_s += seconds_since(t0);
    ev.values.push_back({"compute_s", st.compute_s});
    ev.values.push_back({"eval_s", st.eval_s});
    if (st.compute_s > 0) ev.values.push_back({"samples_per_s", double(st.samples) / st.compute_s});
    for (const auto& [metric, target, at_least] : targets) {
      const std::string key = "reach_" + metric;
      if (st.marks.contains(key)) continue;
      for (const auto& [name, value] : ev.values)
        if (name == metric && (at_least ? value >= target : value <= target))
          st.marks[key] = {{"step", st.step}, {"samples", st.samples}};
    }
    previous_values = std::move(st.last_values);
    st.last_values = ev.values;
    if (hooks.on_eval) hooks.on_eval(ev);
  };
  auto patience_spent = [&]() {
    return has_val && patience > 0 && st.evals_since_best >= patience;
  };
  auto targets_reached = [&]() {
    for (const auto& [metric, target, at_least] : targets)
      if (!st.marks.contains("reach_" + metric)) return false;
    return true;
  };

  const auto marks = schedule_marks(sched, total, spe);
  auto mark_due = [&]() {
    for (const auto& [at, name] : marks)
      if (st.step == at && !st.marks.contains(name)) return true;
    return false;
  };
  auto take_marks = [&]() {
    for (const auto& [at, name] : marks)
      if (st.step == at && !st.marks.contains(name)) {
        auto t0 = Clock::now();
        auto [loss, acc] = evaluate(data.x_test, data.y_test);
        st.marks[name] = {{"step", at}, {"test_loss", loss}, {"test_acc", acc}};
        st.eval_s += seconds_since(t0);
      }
  };

  bool stop = false;
  auto last_checkpoint = Clock::now();
  bool checkpointing = !hooks.checkpoint_path.empty();
  while (st.step < total && !stop) {
    auto t0 = Clock::now();
    auto perm = order.defined() ? order : torch::randperm(n, order_gen).to(device);
    const long long epoch_start = st.step;
    int64_t checked = 0;
    epoch_steps = since_eval = 0;
    for (int64_t b = 0; b < spe && st.step < total; ++b) {
      auto idx = perm.slice(0, b * batch, std::min(n, (b + 1) * batch));
      opt.set_lr(lr_at(sched, base_lr, st.step, total, spe));
      const bool full = idx.size(0) == batch;
      if (graphs && full && !step_graph.captured() && st.step - first_step >= 2) {
        static_idx = idx.clone();
        static_loss = torch::zeros({}, data.x_train.options());
        const int64_t steps_before = opt.steps();
        std::string why;
        if (!step_graph.capture(
                [&] {
                  auto xs = data.x_train.index_select(0, static_idx);
                  auto ys = data.y_train.index_select(0, static_idx);
                  // Fresh gradients: backward writes them instead of zeroing and adding (a
                  // dozen fewer kernels per replay); they live in the graph's memory, and the
                  // eager steps between replays zero and fill the same tensors.
                  opt.clear_grads();
                  auto out = model->forward(xs);
                  auto value = loss.training(out, ys);
                  value.backward();
                  opt.step();
                  static_loss.copy_(reported(value, out, ys));
                },
                &why)) {
          graphs = false;
          graph_status = "capture failed: " + why;
          note_once("cuda graphs: the training step could not be captured (" + why +
                    "); training eagerly");
        }
        opt.set_steps(steps_before);  // the capture took no step
      }
      if (step_graph.captured() && full) {
        static_idx.copy_(idx);
        step_graph.replay();
        opt.count_replay();
        step_losses.select(0, b).copy_(static_loss);
      } else {
        auto xb = data.x_train.index_select(0, idx), yb = data.y_train.index_select(0, idx);
        // Fresh gradients (backward writes them: no zeroing, no adding), except between a
        // graph's replays, which read and write the gradient tensors it captured.
        if (step_graph.captured())
          opt.zero_grad();
        else
          opt.clear_grads();
        auto out = model->forward(xb);
        auto value = loss.training(out, yb);
        value.backward();
        if (opt.sam_rho() > 0)
          opt.sam_regrade([&] { return loss.training(model->forward(xb), yb); });
        opt.step();
        step_losses.select(0, b).copy_(reported(value, out, yb));
      }
      st.step++;
      st.samples += idx.size(0);
      epoch_steps = b + 1;
      // (Also before every evaluation, which may stop the run at a target.)
      if (st.step % check_every == 0 || st.step == total || b + 1 == spe ||
          (eval_every > 0 && st.step % eval_every == 0)) {
        auto window = step_losses.slice(0, checked, b + 1);
        auto bad = window.isnan().logical_or_(window.isinf()).logical_or_(window.gt(bound));
        if (bad.any().item<bool>()) {
          const int64_t first = bad.nonzero()[0][0].item<int64_t>();
          outcome.status = "diverged";
          outcome.diverged_step = epoch_start + checked + first;
          outcome.summary["diverged_loss"] = diverged_loss_json(window[first].item<double>());
          stop = true;
          break;
        }
        checked = b + 1;
      }
      if (!marks.empty() && mark_due()) {  // its evaluation is eval_s, not training time
        sync(device);
        st.compute_s += seconds_since(t0);
        take_marks();
        t0 = Clock::now();
      }
      if (hooks.on_step) hooks.on_step(st.step);
      if (hooks.on_progress && (st.step % 16 == 0)) hooks.on_progress(st.step, total);
      if (eval_every > 0 && st.step % eval_every == 0 && b + 1 < spe) {
        sync(device);
        st.compute_s += seconds_since(t0);
        take_evaluation(evals_take_train || st.step >= total);
        t0 = Clock::now();
        if (stop_at_targets && targets_reached()) {
          stop = true;
          break;
        }
        if (patience_spent()) {  // the evaluations between epoch ends count too
          outcome.summary["early_stopped"] = true;
          stop = true;
          break;
        }
      }
    }
    sync(device);
    st.compute_s += seconds_since(t0);
    if (stop) break;
    if (epoch_steps == spe) st.epoch++;  // (a run of train.steps may end mid-epoch)
    // Every epoch end that max_evals keeps, an eval_every_steps step that falls on one (the
    // loop leaves those to here), and the last; one evaluation per step at most (a run of
    // train.steps may have ended mid-epoch on an evaluation).
    if (last_eval_step != st.step &&
        (evaluates_epoch_end(st.epoch, st.step, total, spe, max_evals) ||
         (eval_every > 0 && st.step % eval_every == 0)))
      take_evaluation(evals_take_train || st.step >= total);
    if (stop_at_targets && targets_reached()) stop = true;
    if (patience_spent()) {
      outcome.summary["early_stopped"] = true;
      stop = true;
    }
    // (On the evaluation of this step only: one earlier, between epoch ends, is not this one's.)
    if (stop_train_loss > 0 && last_eval_step == st.step &&
        train_loss_at_most(st.last_values, stop_train_loss))
      stop = true;
    if (checkpointing && !stop && st.step < total &&
        seconds_since(last_checkpoint) >= hooks.checkpoint_every_s) {
      if (hooks.before_checkpoint) hooks.before_checkpoint();
      try {
        st.wall_s = outcome.resumed_wall_s + seconds_since(run_start);
        save_checkpoint(hooks.checkpoint_path, model, opt, order_gen, dropout_gen, st, device);
      } catch (const UserError& e) {  // the run is worth more than its checkpoint
        note_once(std::string(e.what()) + ": training goes on without checkpoints");
        checkpointing = false;
      }
      last_checkpoint = Clock::now();
    }
  }
  if (hooks.on_progress) hooks.on_progress(st.step, total);
  if (outcome.status == "finished" && last_eval_step == st.step &&
      evaluation_diverged(st.last_values, bound)) {
    outcome.status = "diverged";
    outcome.diverged_step = st.step;
    // (Found by the evaluation after the last update, not by a step's loss.)
    outcome.summary["diverged_loss"] = evaluation_diverged_loss(st.last_values, bound);
    outcome.summary["diverged_at_evaluation"] = true;
    // The summary is the evaluation before, as where a step's loss found it: this one's accuracy
    // is the argmax of Inf outputs.
    st.last_values = previous_values;
  }
  // A run that stopped before its last step with held-out evaluations: the summary still gets
  // the training set's loss and accuracy, from one pass over it now.
  double last_test_acc = NAN;
  bool last_has_train = false;
  for (const auto& [name, value] : st.last_values) {
    if (name == "test_acc") last_test_acc = value;
    last_has_train = last_has_train || name == "train_loss";
  }
  if (!evals_take_train && outcome.status == "finished" && !st.last_values.empty() &&
      !last_has_train) {
    auto t0 = Clock::now();
    auto [train_loss, train_acc] = evaluate(data.x_train, data.y_train);
    st.eval_s += seconds_since(t0);
    st.last_values.push_back({"train_loss", train_loss});
    if (!regression) {
      st.last_values.push_back({"train_acc", train_acc});
      st.last_values.push_back({"gen_gap", train_acc - last_test_acc});
    }
  }

  for (const auto& [k, v] : st.last_values)
    outcome.summary[k] = std::isfinite(v) ? json(v) : json();
  if (stop_train_loss > 0)
    outcome.summary["reached_train_loss"] = train_loss_at_most(st.last_values, stop_train_loss);
  if (device.is_cuda()) {
    if (graph_status == "captured" && !evaluate.failure().empty())
      graph_status = "step captured; evaluation eager: " + evaluate.failure();
    if (graph_status == "captured" && !step_graph.captured()) graph_status = "too few steps";
    outcome.summary["cuda_graphs"] = graph_status;
    outcome.summary["cuda_graph_captures"] = step_graph.captures();
    outcome.summary["cuda_graph_replays"] = step_graph.replays();
  }
  outcome.summary["epochs"] = st.epoch;
  outcome.summary["steps"] = st.step;
  outcome.summary["steps_per_epoch"] = spe;
  outcome.summary["base_lr"] = base_lr;
  outcome.summary["compute_s"] = st.compute_s;
  outcome.summary["eval_s"] = st.eval_s;
  outcome.summary["params"] = count_parameters(*model);
  outcome.summary["samples"] = st.samples;
  outcome.summary["flops_per_example"] = flops_per_example;
  outcome.summary["train_flops"] = flops_per_example * double(st.samples);
  {
    torch::NoGradGuard guard;
    double sq = 0;
    for (const auto& p : model->parameters()) sq += p.detach().pow(2).sum().item<double>();
    outcome.summary["weight_norm"] = std::sqrt(sq);
  }
  for (const auto& [metric, target, at_least] : targets) {
    const std::string key = "reach_" + metric;
    const bool reached = st.marks.contains(key);
    outcome.summary["reached_" + metric] = reached;
    const long long steps = reached ? st.marks[key]["step"].get<long long>() : st.step;
    const long long samples = reached ? st.marks[key]["samples"].get<long long>() : st.samples;
    // Censored: a trial that never got there enters with what it ran, a lower bound.
    outcome.summary["steps_to_" + metric + "_censored"] = steps;
    if (reached) {
      outcome.summary["steps_to_" + metric] = steps;
      outcome.summary["samples_to_" + metric] = samples;
      outcome.summary["flops_to_" + metric] = flops_per_example * double(samples);
    }
  }
  if (has_val) {
    outcome.summary["best_val_loss"] = std::isfinite(st.best_val) ? json(st.best_val) : json();
    outcome.summary["best_val_step"] = st.best_val_step;
    outcome.summary["test_acc_at_best_val"] =
        std::isnan(st.test_acc_at_best) ? json() : json(st.test_acc_at_best);
  }
  if (!regression) outcome.summary["chance_loss"] = loss.chance(data.outputs);
  // (Of a run that took every step: stopped early, its decay was cut short.)
  if (outcome.status == "finished" && !regression && st.step == total)
    summarize_schedule_marks(st.marks, outcome.summary);
  if (outcome.status == "diverged") outcome.summary["diverged_step"] = outcome.diverged_step;
  if (!hooks.checkpoint_path.empty() && !hooks.keep_checkpoint) {
    std::error_code ignored;  // (a trained trial is worth more than its checkpoint's removal)
    std::filesystem::remove(hooks.checkpoint_path, ignored);
  }
  return outcome;
}

TrainOutcome run_lr_range(const json& cfg, const Dataset& data, Net& model,
                          const torch::Device& device, const TrainHooks& hooks) {
  const Tf32Scope tf32(cfg, device);
  const json& r = cfg["range"];
  const int64_t n = data.x_train.size(0);
  const int64_t batch = std::min<int64_t>(cfg["train"]["batch_size"].get<int64_t>(), n);
  const long long steps = r["steps"];
  const double start = r["start_lr"], end = r["end_lr"], beta = r["smoothing"],
               stop_factor = r["stop_factor"];
  Optimizer opt(cfg["optim"], *model);
  at::Generator order_gen = at::detail::createCPUGenerator(cfg.value("seed", 0) * 1000003ULL + 17);
  if (!device.is_cuda()) use_dropout_generator(*model, dropout_generator(cfg));
  const Loss loss = Loss::of(cfg, data);
  model->train();

  std::vector<double> lrs, losses;
  torch::Tensor perm;
  int64_t offset = n;
  double avg = 0, lowest = INFINITY;
  TrainOutcome outcome;
  auto t0 = Clock::now();
  for (long long step = 0; step < steps; ++step) {
    if (offset + batch > n) {  // a fresh permutation when the next full batch does not fit
      perm = torch::randperm(n, order_gen).to(device);
      offset = 0;
    }
    auto idx = perm.slice(0, offset, offset + batch);
    offset += batch;
    const double lr = range_test_lr(start, end, step, steps);
    opt.set_lr(lr);
    opt.zero_grad();
    auto batch_loss = loss.training(model->forward(data.x_train.index_select(0, idx)),
                                    data.y_train.index_select(0, idx));
    batch_loss.backward();
    const double value = batch_loss.item<double>();  // the test is short: a sync per step is fine
    lrs.push_back(lr);
    losses.push_back(value);
    avg = beta * avg + (1 - beta) * value;
    const double smoothed = avg / (1 - std::pow(beta, double(step + 1)));
    if (hooks.on_eval) {
      Evaluation ev;
      ev.step = step;
      ev.values = {{"lr", lr}, {"range_loss", value}, {"range_loss_smoothed", smoothed}};
      hooks.on_eval(ev);
    }
    if (hooks.on_progress && step % 16 == 0) hooks.on_progress(step, steps);
    if (!std::isfinite(smoothed) || smoothed > stop_factor * lowest) {
      outcome.summary["stopped_step"] = step;
      outcome.summary["lr_stopped"] = lr;
      break;
    }
    lowest = std::min(lowest, smoothed);
    opt.step();
  }
  if (hooks.on_progress) hooks.on_progress(steps, steps);
  const LrRangeSuggestion s = suggest_lr_range(lrs, losses, beta, stop_factor);
  outcome.summary["compute_s"] = seconds_since(t0);
  outcome.summary["steps"] = (long long)lrs.size();
  outcome.summary["params"] = count_parameters(*model);
  outcome.summary["suggestion_valid"] = s.valid;
  if (s.valid) {
    outcome.summary["range_lo"] = s.range_lo;
    outcome.summary["range_hi"] = s.lr_min_loss;
    outcome.summary["lr_steepest"] = s.lr_steepest;
    outcome.summary["range_min_loss"] = s.centred[size_t(s.min_step)];
  }
  return outcome;
}

torch::Tensor text_tensor(const std::string& s) {
  return torch::from_blob(const_cast<char*>(s.data()), {int64_t(s.size())}, torch::kUInt8).clone();
}
std::string tensor_text(const torch::Tensor& t) {
  auto c = t.contiguous().cpu();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), size_t(c.numel()));
}

EigenEstimate initial_hessian_top(const json& cfg, Net& model, const Dataset& data) {
  if (!cfg.contains("measure") || !cfg["measure"].value("hessian_init", false)) {
    EigenEstimate none;
    none.value = NAN;
    return none;
  }
  // Taken on the same examples as the final measure. Power iteration draws from its own seeded
  // generator, so training is the same with or without it.
  const json& m = cfg["measure"];
  const int64_t k = std::min<int64_t>(data.x_train.size(0), m["hessian_samples"].get<int64_t>());
  return top_hessian_eigenvalue(model, data.x_train.slice(0, 0, k), data.y_train.slice(0, 0, k),
                                Loss::of(cfg, data), m["hessian_max_iter"], m["hessian_tol"],
                                cfg.value("seed", 0));
}

void summarize_initial_hessian(const EigenEstimate& est, double base_lr, json& summary) {
  if (!std::isfinite(est.value)) return;
  summary["hessian_top_init"] = est.value;
  summary["hessian_top_init_converged"] = est.converged;
  summary["hessian_top_init_residual"] = std::isfinite(est.residual) ? json(est.residual) : json();
  if (est.converged && est.value > 0) summary["lr_x_hessian_init"] = base_lr * est.value;
}

json initial_gradient_flow(const json& cfg, Net& model, const Dataset& data) {
  if (!cfg.contains("measure") || !cfg["measure"].value("grad_flow_init", false))
    return json::object();
  const int64_t k =
      std::min<int64_t>(data.x_train.size(0), cfg["measure"]["hessian_samples"].get<int64_t>());
  const auto flow = gradient_flow(model, data.x_train.slice(0, 0, k), data.y_train.slice(0, 0, k),
                                  Loss::of(cfg, data));
  auto finite = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  return {{"grad_norm_first_init", finite(flow.first)},
          {"grad_norm_last_init", finite(flow.last)},
          {"grad_ratio_init", finite(flow.first / flow.last)}};
}

std::mutex& init_mutex() {
  static std::mutex mutex;
  return mutex;
}

// model.name "tree": a CART tree (models/tree.h) fitted once on the flattened inputs. Its one
// evaluation (step 0) and its summary use the names a network's do where they mean the same:
// the loss is the cross-entropy of the leaves' add-one-smoothed class frequencies.
TrainOutcome fit_tree(const json& cfg, const Dataset& data, const TrainHooks& hooks) {
  const auto t0 = Clock::now();
  const json& m = cfg["model"];
  TreeOptions options;
  options.max_depth = m["max_depth"];
  options.min_leaf = m["min_leaf"];
  options.bins = m["bins"];
  auto flat = [](const torch::Tensor& t) {
    return t.reshape({t.size(0), -1}).to(torch::kCPU, torch::kFloat32).contiguous();
  };
  auto labels = [](const torch::Tensor& t) {
    return t.to(torch::kCPU, torch::kInt64).contiguous();
  };
  if (hooks.on_progress) hooks.on_progress(0, 1);
  const auto x = flat(data.x_train), y = labels(data.y_train);
  const ClassificationTree tree(x.data_ptr<float>(), y.data_ptr<int64_t>(), x.size(0), x.size(1),
                                data.outputs, options);
  const double fit_s = seconds_since(t0);

  const auto t1 = Clock::now();
  Evaluation ev;
  auto score = [&](const torch::Tensor& xs, const torch::Tensor& ys, const std::string& split) {
    const auto xf = flat(xs), yc = labels(ys);
    const int64_t n = xf.size(0), k = data.outputs;
    const auto p = tree.predict_proba(xf.data_ptr<float>(), n);
    const int64_t* truth = yc.data_ptr<int64_t>();
    double loss = 0;
    int64_t hits = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double* row = p.data() + i * k;
      hits += int64_t(std::max_element(row, row + k) - row) == truth[i];
      loss -= std::log(row[truth[i]]);
    }
    const double acc = double(hits) / double(n);
    ev.values.push_back({split + "_loss", loss / double(n)});
    ev.values.push_back({split + "_acc", acc});
    return acc;
  };
  const double test_acc = score(data.x_test, data.y_test, "test");
  const double train_acc = score(data.x_train, data.y_train, "train");
  ev.values.push_back({"gen_gap", train_acc - test_acc});
  if (data.x_val.defined()) score(data.x_val, data.y_val, "val");
  if (hooks.on_eval) hooks.on_eval(ev);
  if (hooks.on_progress) hooks.on_progress(1, 1);

  TrainOutcome out;
  for (const auto& [name, value] : ev.values) out.summary[name] = value;
  out.summary["tree_leaves"] = tree.leaves();
  out.summary["tree_nodes"] = tree.nodes();
  out.summary["tree_depth"] = tree.depth();
  out.summary["epochs"] = 0;
  out.summary["steps"] = 0;
  out.summary["compute_s"] = fit_s;
  out.summary["eval_s"] = seconds_since(t1);
  out.summary["chance_loss"] = std::log(double(data.outputs));
  out.summary["data"] = data.info;
  return out;
}

TrainOutcome run_trial(const json& cfg, const torch::Device& device, const TrainHooks& hooks,
                       const std::string& source) {
  const uint64_t seed = cfg.value("seed", 0);
  if (cfg.value("lab", "train") == "implicit") {
    TrainOutcome out;
    const auto t0 = Clock::now();
    out.summary = run_implicit(
        cfg["implicit"], seed,
        [&](long long step, const std::vector<std::pair<std::string, double>>& values) {
          if (!hooks.on_eval) return;
          Evaluation ev;
          ev.step = step;
          ev.values = values;
          hooks.on_eval(ev);
        },
        hooks.on_progress);
    out.summary["compute_s"] = seconds_since(t0);
    if (out.summary.contains("diverged_step")) {  // a NaN/Inf iterate: a step size too large
      out.status = "diverged";
      out.diverged_step = out.summary["diverged_step"];
    }
    return out;
  }
  // torch's generators are global: trials that start at once (sweeps with --jobs) seed and draw
  // their data and init one at a time, so each gets exactly what it would alone.
  // (check_trials_start, below, builds what this does for every distinct data set and model.)
  std::unique_lock<std::mutex> init_lock(init_mutex());
  torch::manual_seed(seed);
  Dataset data = load_dataset(cfg["data"], seed, device, source);
  if (cfg["model"]["name"] == "tree") {
    init_lock.unlock();
    return fit_tree(cfg, data, hooks);
  }
  Net model = make_model(cfg["model"], data.input_shape, data.outputs, source);
  model->to(device);
  init_lock.unlock();
  check_lr_mult(cfg["optim"], *model, source);
  note_batch_exceeds_data(cfg, data.x_train.size(0), source);
  if (cfg.value("lab", "train") == "lr_range") {
    TrainOutcome out = run_lr_range(cfg, data, model, device, hooks);
    out.summary["data"] = data.info;
    return out;
  }
  // (After the range test, whose batches are all full.)
  check_batch_norm_batches(cfg, model, data.x_train.size(0), source);
  check_measure_batches(cfg, data.x_train.size(0), source);
  TrainHooks with_masks = hooks;
  const std::string mask_file = cfg["train"].value("mask_file", std::string());
  if (!mask_file.empty()) with_masks.masks = load_masks(mask_file, model, source);
  const EigenEstimate hessian_init = initial_hessian_top(cfg, model, data);
  const json flow_init = initial_gradient_flow(cfg, model, data);
  TrainOutcome out = train_model(cfg, data, model, device, with_masks);
  out.summary.update(flow_init);
  out.summary["data"] = data.info;
  if (!with_masks.masks.empty()) out.summary["weights_remaining"] = remaining_fraction(with_masks.masks);
  summarize_initial_hessian(hessian_init, out.summary["base_lr"].get<double>(), out.summary);
  const Loss loss = Loss::of(cfg, data);  // the measures' and the interpolation's
  if (out.status == "finished" && cfg.contains("measure"))
    out.measures = compute_measures(cfg["measure"], model, data, loss, seed);
  const int64_t partner_batch = cfg.contains("measure") ? cfg["measure"].value("interpolate_batch", 0) : 0;
  if (out.status == "finished" && partner_batch > 0) {
    // Keskar et al.'s line: the same config, seed and init trained at another batch size, then
    // the loss along the line from this solution through that one. Not checkpointed: a killed
    // trial retrains its partner.
    json other = cfg;
    other["train"]["batch_size"] = partner_batch;
    std::unique_lock<std::mutex> partner_lock(init_mutex());
    torch::manual_seed(seed);
    Net partner = make_model(cfg["model"], data.input_shape, data.outputs);
    partner->to(device);
    partner_lock.unlock();
    TrainHooks quiet;
    quiet.masks = with_masks.masks;
    if (!mask_file.empty()) load_masks(mask_file, partner, source);
    TrainOutcome po = train_model(other, data, partner, device, quiet);
    if (po.status != "finished") {
      out.measures["interpolation"] = {{"partner_status", po.status}};
    } else {
      const json& m = cfg["measure"];
      json curve = interpolation_curve(model, partner, data, loss, m["hessian_samples"],
                                       m["interpolate_range"][0], m["interpolate_range"][1],
                                       m["interpolate_points"]);
      curve["partner_batch"] = partner_batch;
      curve["partner_test_acc"] = po.summary.value("test_acc", json());
      curve["partner_train_loss"] = po.summary.value("train_loss", json());
      // Whether the partner got to train.stop_train_loss too: "the same training loss" is the
      // line's premise (Keskar et al.), which a claim can require of both ends.
      if (po.summary.contains("reached_train_loss"))
        out.measures["partner_reached_train_loss"] = po.summary["reached_train_loss"];
      out.measures["interp_rise_here"] = curve["rise_here"];
      out.measures["interp_rise_partner"] = curve["rise_partner"];
      if (curve["rise_here"].is_number() && curve["rise_partner"].is_number())
        out.measures["interp_rise_partner_minus_here"] =
            curve["rise_partner"].get<double>() - curve["rise_here"].get<double>();
      out.measures["interpolation"] = curve;
    }
  }
  return out;
}

json diverged_loss_json(double loss) {
  if (std::isnan(loss)) return "nan";
  if (std::isinf(loss)) return loss > 0 ? "inf" : "-inf";
  return loss;
}

json evaluation_diverged_loss(const std::vector<std::pair<std::string, double>>& values,
                              double bound) {
  for (const char* which : {"train_loss", "test_loss"})
    for (const auto& [name, value] : values)
      if (name == which && !std::isfinite(value)) return diverged_loss_json(value);
  for (const auto& [name, value] : values)
    if (name == "train_loss" && value > bound) return value;
  return json();
}

bool evaluation_diverged(const std::vector<std::pair<std::string, double>>& values, double bound) {
  return !evaluation_diverged_loss(values, bound).is_null();
}

bool train_loss_at_most(const std::vector<std::pair<std::string, double>>& values, double target) {
  for (const auto& [name, value] : values)
    if (name == "train_loss") return value <= target;
  return false;
}

void check_trials_start(const std::vector<json>& cfgs, const std::string& source) {
  std::map<std::string, int64_t> examples;  // training examples by what the checks read (-1: none)
  for (const json& cfg : cfgs) {
    if (cfg.value("lab", "train") == "implicit") continue;
    // A lottery chain's rewind point must lie within its dense run, which the epochs (or steps)
    // and the batch size of each sweep point set: checked for every trial, here before any
    // trains, not when its chain's turn comes (hours into a lab, the earlier chains stored).
    const bool lottery = cfg.value("lab", "train") == "lottery";
    const std::string key = json{
        {"data", cfg["data"]},
        {"model", cfg["model"]},
        {"lr_mult", cfg["optim"].value("lr_mult", json())},
        {"batch_size", cfg["train"]["batch_size"]},
        {"mask_file", cfg["train"].value("mask_file", json())},
        {"measure", cfg.value("measure", json())},
        // The classes an imbalance thins are counted in a draw (a subset, a validation split, a
        // synthetic task's labels): how many training examples remain is each seed's own.
        {"seed", cfg["data"].value("imbalance", 1.0) < 1.0
                     ? cfg.value("seed", json())
                     : json()}}.dump();
    if (const auto known = examples.find(key); known != examples.end()) {
      if (lottery && known->second >= 0) check_rewind_step(cfg, known->second, source);
      continue;
    }
    int64_t& n = examples[key] = -1;
    const uint64_t seed = cfg.value("seed", 0);
    try {
      std::unique_lock<std::mutex> init_lock(init_mutex());
      torch::manual_seed(seed);
      const Dataset data = load_dataset(cfg["data"], seed, torch::kCPU, source);
      n = data.x_train.size(0);
      if (lottery) check_rewind_step(cfg, n, source);
      if (cfg["model"]["name"] == "tree") continue;
      Net model = make_model(cfg["model"], data.input_shape, data.outputs, source);
      init_lock.unlock();
      check_lr_mult(cfg["optim"], *model, source);
      if (cfg.value("lab", "train") != "lr_range") {  // (its batches are all full)
        check_batch_norm_batches(cfg, model, data.x_train.size(0), source);
        check_measure_batches(cfg, data.x_train.size(0), source);
      }
      if (const std::string masks = cfg["train"].value("mask_file", std::string()); !masks.empty())
        load_masks(masks, model, source);
    } catch (const UserError&) {
      throw;
    } catch (const std::exception&) {
      // Inside torch (a model too large to allocate): that trial fails when it runs, as a trial,
      // and the sweep goes on.
    }
  }
}

}  // namespace empiric
