// Batched populations: trials that differ only in per-member keys (seed, learning rate, momentum,
// weight decay, init scale, label-noise draws, random labels, learning-rate schedule) train as one
// model with a leading population dimension: every dense layer is one batched matmul over the
// members, each member keeps its own data (drawn from its seed), data order, learning rate and
// schedule and optimizer state, and its results are those of training it alone, to float tolerance
// (the batched matmul may sum in another order). Each member is stored as its own trial, with the
// measures a trial alone takes. `train.population`: "auto" (the default: up to 16 members on a CPU,
// 64 on a GPU), "off" or a number N (at most N members).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/trainer.h"

namespace empiric {

using json = nlohmann::json;

// The keys in which the members of one population may differ.
const std::vector<std::string>& population_member_keys();

// "" when a resolved trial config can train in a population, else the first reason it cannot
// (e.g. "model.dropout > 0"), for the one line a sweep prints about it.
std::string population_incompatibility(const json& cfg);

// Trials with equal keys (the config without the member keys and without how it runs) can train
// together. A lottery trial's round and control are not part of its key: they choose the start
// weights and the mask its chain hands in.
std::string population_group_key(const json& cfg);

// The most members per population that `train.population` allows (0: off).
int population_limit(const json& cfg, bool cuda);

// How many members, each with its own data set of `bytes_each` bytes, a population can hold in
// `available` bytes of host memory, or of a GPU's (beside the data sets a sweep keeps cached).
int64_t population_members_fitting(int64_t bytes_each, int64_t available, bool gpu = false);

// Why a population of `members` whose `datasets` data sets take `bytes_each` bytes each cannot
// be held in `available` bytes of host memory ("" when it can), with the most members that would
// fit, each with its own data set.
std::string population_memory_problem(int64_t members, int64_t datasets, int64_t bytes_each,
                                      int64_t available, bool gpu = false);

// The memory a population's data sets can take on `device`: the host's MemAvailable, or the
// GPU's free memory; -1 where it cannot be read.
int64_t population_memory_available(const torch::Device& device);

// population_limit for trials like `cfg` on `device`, where "auto" also takes no more members
// than their data sets (one per seed, when the data depend on it) fit in `available` bytes of
// host memory shared by `jobs` populations at once, or of the GPU's (available < 0: not known,
// no such limit). It loads cfg's data set to learn its size (the loader keeps it for the trials).
// When memory lowered the limit, `why` (if given) says so in one line.
int population_limit(const json& cfg, const torch::Device& device, int jobs, int64_t available,
                     const std::string& source, std::string* why = nullptr);
// The same for a sweep's trials: of those whose members each have a data set of their own, the
// one with the largest (by its config) decides (a sweep of label noise 0 first and then 0.1 had
// no limit at all; one of train_subset 1,000 first set the limit for the full set after it).
int population_limit(const std::vector<const json*>& cfgs, const torch::Device& device, int jobs,
                     int64_t available, const std::string& source, std::string* why = nullptr);

// Splits trials (by index into cfgs) into units: populations of compatible trials (at most
// `limit` each, in order of first appearance) and single trials (incompatible ones, and groups of
// one). limit <= 1 gives every trial its own unit.
std::vector<std::vector<size_t>> group_population(const std::vector<json>& cfgs, int limit);

// Trains the members together; outcome i belongs to cfgs[i], hooks[i] receives its evaluations
// (and its before_checkpoint call; the members' own checkpoint paths are not used). With a
// `checkpoint_path` the population checkpoints at the first epoch end `checkpoint_every_s` after
// the last, resumes from it when it holds these same members, and removes it at the end, unless
// every member's hooks say keep_checkpoint: then the caller removes it once it has recorded the
// members (a kill in between resumes them rather than training them again). `source` names the
// config in messages.
std::vector<TrainOutcome> run_population(const std::vector<json>& cfgs, const torch::Device& device,
                                         const std::vector<TrainHooks>& hooks,
                                         const std::string& source,
                                         const std::string& checkpoint_path = "",
                                         double checkpoint_every_s = 0);

// Where a population of these trials checkpoints under `dir` ("" when dir is ""): named by its
// members, so the same pending trials find it again when a killed sweep runs again.
std::string population_checkpoint_path(const std::string& dir,
                                       const std::vector<std::string>& member_hashes);
// Removes the population checkpoints in `dir` whose members `recorded` says are all in the store:
// left by a population killed after its members were recorded, or by one grouped otherwise on a
// rerun (other memory, other --jobs), whose members then trained in other populations. Returns
// how many it removed; one it cannot read is left (a population that tries it removes it).
int remove_spent_population_checkpoints(const std::string& dir,
                                        const std::function<bool(const std::string&)>& recorded);

// Trains members whose start the caller builds (the lottery lab's rounds): nets[p] (on `device`)
// holds the weights member p trains from and gets its trained weights back; member p trains on
// *data[p] (members may share one: a chain's ticket and controls share its seed's draw);
// hooks[p].masks, when set, holds member p's pruned weights at 0 through training, as
// Optimizer::set_masks does for a trial alone. Otherwise as run_population.
std::vector<TrainOutcome> train_population(
    const std::vector<json>& cfgs, const std::vector<const Dataset*>& data, std::vector<Net>& nets,
    const torch::Device& device, const std::vector<TrainHooks>& hooks, const std::string& source,
    const std::string& checkpoint_path = "", double checkpoint_every_s = 0);

}  // namespace empiric
