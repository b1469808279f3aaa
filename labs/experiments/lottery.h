// The lottery-ticket lab (Frankle & Carbin 2019; rewinding: Frankle et al. 2020).
//
// A chain is one seed's iterative magnitude pruning: round 0 trains the dense network and keeps
// its initialization and its weights after lottery.rewind_step steps; round r prunes a fraction of
// the remaining weights of round r-1's trained network (lottery.rate per hidden tensor,
// lottery.output_rate for the last weight tensor, or one global threshold), rewinds the survivors
// and retrains with the mask held exactly (Optimizer::set_masks). The controls of round r use the
// ticket's mask schedule: reinit trains the same mask from a new initialization, random_prune a
// random mask with the ticket's count per tensor from the rewound weights. Every round of every
// control is a trial of its own (config.cpp expands lottery.round).
//
// Artifacts, under <artifacts>/<chain key>/: chain.pt (init.*, rewind.*, trained.* of the dense
// run) and round_R.pt for each ticket round (mask.*, init.* = the rewound weights it trains from,
// trained.*). `empiric run CONFIG train.mask_file=.../round_R.pt` retrains a ticket. A chain
// killed midway resumes at its last finished round: rounds in the store whose artifacts exist
// are loaded, not retrained.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "train/trainer.h"

namespace empiric {

// Trials of one chain share this key: their config without lottery.round and lottery.control.
std::string lottery_chain_key(const json& trial_config);

struct LotteryCallbacks {
  std::function<bool(const Trial&)> done;  // already in the store
  // Progress, metrics, checkpoint; resume_from: the checkpoint that resumes the trial ("": its
  // own; a population's when the trial trains in one), whose absence means starting afresh.
  std::function<TrainHooks(const Trial&, const std::string& resume_from)> hooks;
  // Removes `checkpoint` when none of `hashes` (trials the store records) has an evaluation in
  // the store: left by a run into another store, its trials would be recorded with the first
  // epochs' curve missing. True when it did, or could not.
  std::function<bool(const std::string& checkpoint, const std::vector<std::string>& hashes)>
      foreign;
  std::string checkpoint_dir;  // where a round's population checkpoints ("": it does not)
  bool restart = false;        // --force: a round's population checkpoint is not resumed
  // A trial's outcome (status finished/diverged/failed, summary with round and sparsity).
  std::function<void(const Trial&, const TrainOutcome&, double wall_s)> record;
};

// Runs what is missing of the chains among `trials` (one or more chains: trials sharing a
// lottery_chain_key), round by round: every chain's round r trains before any chain's round r + 1,
// and a round's networks of all the chains (each chain's ticket and controls, each on its own
// seed's data; round 0's dense networks when they keep no rewind point) train as populations
// where train.population allows it, one by one otherwise.
void run_lottery_chains(const std::vector<const Trial*>& trials, const std::string& artifact_dir,
                        const torch::Device& device, const LotteryCallbacks& callbacks,
                        const std::string& source);

// The pieces, exposed for tests. Prunable tensors are the parameters with dim >= 2; the last of
// them is the output layer.
std::vector<torch::Tensor> prunable_masks_like(Net& model);  // ones, undefined for the rest
// Prunes one round from `weights` (the trained network) into `masks`, in place.
void prune_round(Net& weights, std::vector<torch::Tensor>& masks, const json& lottery,
                 double hidden_fraction, double output_fraction);
// A random mask with the same number of kept elements per tensor as `like`.
std::vector<torch::Tensor> random_masks_like(const std::vector<torch::Tensor>& like,
                                             uint64_t seed);

}  // namespace empiric
