// The lottery lab's pieces: masks held through training, the pruning schedule, rewinding, the
// controls, and retraining a ticket from its mask file.
#include "experiments/lottery.h"

#include <fmt/core.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "core/config.h"
#include "core/errors.h"
#include "data/datasets.h"
#include "support/damaged_archive.h"
#include "support/temp_dir.h"
#include "train/trainer.h"

namespace empiric {
namespace {

json lottery_doc(const std::string& patch = "{}") {
  json doc = json::parse(R"({
    "lab": "lottery",
    "data": {"name": "blobs", "n_train": 400, "n_test": 200, "classes": 4, "dim": 8, "noise": 2.0,
             "validation": 100},
    "model": {"name": "mlp", "widths": [64, 32]},
    "optim": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 4, "batch_size": 50, "checkpoint": false},
    "lottery": {"rounds": 3, "rate": 0.2, "output_rate": 0.1},
    "sweep": {"lottery.control": ["ticket", "reinit", "random_prune"]}
  })");
  doc.merge_patch(json::parse(patch));
  return doc;
}

std::vector<Trial> trials_of(const json& doc) {
  return expand_trials(resolve_config_json(doc, "lottery.json", "", {}));
}

struct ChainRun {
  std::map<std::string, TrainOutcome> by_hash;
  std::vector<std::string> order;
};

// Every round's mask under `artifacts` (one chain's folder of round_R.pt files), by round and
// parameter: "round_2.pt mask.0.weight".
std::map<std::string, torch::Tensor> masks_under(const std::string& artifacts) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& f : std::filesystem::recursive_directory_iterator(artifacts)) {
    const std::string name = f.path().filename().string();
    if (name.rfind("round_", 0) != 0) continue;
    torch::serialize::InputArchive a;
    a.load_from(f.path().string());
    for (const auto& key : a.keys())
      if (key.rfind("mask.", 0) == 0) {
        torch::Tensor t;
        a.read(key, t);
        out[name + " " + key] = t;
      }
  }
  return out;
}

ChainRun run_chain(const std::vector<Trial>& trials, const std::string& artifacts,
                   ChainRun previous = {}) {
  ChainRun run = previous;
  std::vector<const Trial*> chain;
  for (const auto& t : trials) chain.push_back(&t);
  LotteryCallbacks cb;
  cb.done = [&](const Trial& t) { return run.by_hash.count(t.hash) > 0; };
  cb.hooks = [](const Trial&, const std::string&) { return TrainHooks(); };
  cb.record = [&](const Trial& t, const TrainOutcome& out, double) {
    run.by_hash[t.hash] = out;
    run.order.push_back(t.hash);
  };
  run_lottery_chains(chain, artifacts, torch::kCPU, cb, "lottery.json");
  return run;
}

const Trial& find(const std::vector<Trial>& trials, int round, const std::string& control) {
  for (const auto& t : trials)
    if (t.config["lottery"]["round"] == round && t.config["lottery"]["control"] == control) return t;
  throw std::runtime_error("no such trial");
}

TEST(Lottery, ExpansionHasOneDenseRoundAndEveryControlAfterIt) {
  auto trials = trials_of(lottery_doc());
  EXPECT_EQ(trials.size(), 1u + 3u * 3u);
  std::set<std::string> chains;
  for (const auto& t : trials) chains.insert(lottery_chain_key(t.config));
  EXPECT_EQ(chains.size(), 1u);
  EXPECT_EQ(find(trials, 0, "ticket").config["lottery"]["round"], 0);
}

TEST(Lottery, ASweepWithoutTheTicketSaysWhatItNeeds) {
  // Controls alone have no dense network to prune from: one clear error, not a logic_error.
  testing::TempDir dir;
  auto trials =
      trials_of(lottery_doc(R"({"sweep": {"lottery.control": ["reinit", "random_prune"]}})"));
  try {
    run_chain(trials, dir.path());
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("must keep \"ticket\""), std::string::npos) << e.what();
  }
}

TEST(Lottery, AKeyAddedLaterAtItsDefaultMovesNoChainFolder) {
  json cfg = trials_of(lottery_doc())[0].config;
  json before = cfg;  // as a config written before train.tf32 and train.max_evals existed
  before["train"].erase("tf32");
  before["train"].erase("max_evals");
  EXPECT_EQ(lottery_chain_key(before), lottery_chain_key(cfg));
  cfg["train"]["device"] = "cuda";  // where it runs: the same chain
  EXPECT_EQ(lottery_chain_key(before), lottery_chain_key(cfg));
  cfg["train"]["tf32"] = true;  // another computation: another chain
  EXPECT_NE(lottery_chain_key(before), lottery_chain_key(cfg));
}

TEST(Lottery, MasksHoldThroughTrainingForSgdAndAdamFusedAndTorch) {
  for (const char* optim : {R"({"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01})",
                            R"({"name": "adam", "lr": 0.01})", R"({"name": "adamw", "lr": 0.01})"})
    for (const char* impl : {"fused", "torch"}) {
      json doc = lottery_doc();
      doc["lab"] = "train";
      doc.erase("lottery");
      doc.erase("sweep");
      doc["optim"] = json::parse(optim);
      doc["optim"]["impl"] = impl;
      json cfg = trials_of(doc).at(0).config;
      torch::manual_seed(0);
      Dataset data = load_dataset(cfg["data"], 0, torch::kCPU, "t.json");
      Net model = make_model(cfg["model"], data.input_shape, data.outputs);
      TrainHooks hooks;
      hooks.masks = prunable_masks_like(model);
      for (auto& m : hooks.masks)
        if (m.defined()) m = (torch::rand(m.sizes()) > 0.6).to(torch::kFloat32);
      train_model(cfg, data, model, torch::kCPU, hooks);
      auto params = model->parameters();
      for (size_t i = 0; i < params.size(); ++i)
        if (hooks.masks[i].defined()) {
          auto pruned = params[i].masked_select(hooks.masks[i] == 0);
          EXPECT_GT(pruned.numel(), 0);
          EXPECT_EQ(pruned.abs().max().item<float>(), 0.0f) << optim << " " << impl << " " << i;
          EXPECT_GT(params[i].masked_select(hooks.masks[i] == 1).abs().min().item<float>(), 0.0f);
        }
    }
}

TEST(Lottery, TheSparsityScheduleIsExact) {
  json cfg = trials_of(lottery_doc()).at(0).config;
  torch::manual_seed(0);
  Net model = make_model(cfg["model"], {8}, 4);
  auto masks = prunable_masks_like(model);
  std::vector<int64_t> expected;
  for (const auto& m : masks)
    if (m.defined()) expected.push_back(m.numel());
  for (int r = 1; r <= 5; ++r) {
    prune_round(model, masks, cfg["lottery"], 0.2, 0.1);
    size_t k = 0;
    for (const auto& m : masks)
      if (m.defined()) {
        const double f = k + 1 == expected.size() ? 0.1 : 0.2;
        expected[k] -= std::llround(f * double(expected[k]));
        EXPECT_EQ(m.sum().item<int64_t>(), expected[k]) << "round " << r << " tensor " << k;
        ++k;
      }
  }
  // Global: one threshold, 20 % of all remaining weights per round.
  json global = cfg["lottery"];
  global["scope"] = "global";
  auto g = prunable_masks_like(model);
  int64_t total = 0;
  for (const auto& m : g)
    if (m.defined()) total += m.numel();
  prune_round(model, g, global, 0.2, 0.1);
  int64_t kept = 0;
  for (const auto& m : g)
    if (m.defined()) kept += m.sum().item<int64_t>();
  EXPECT_EQ(kept, total - std::llround(0.2 * double(total)));
}

TEST(Lottery, RewindingRestoresTheSavedValuesBitForBitAndControlsShareTheSparsity) {
  testing::TempDir dir;
  for (int k : {0, 7}) {
    auto trials = trials_of(lottery_doc(R"({"lottery": {"rewind_step": )" + std::to_string(k) + "}}"));
    ChainRun run = run_chain(trials, dir.path());
    ASSERT_EQ(run.by_hash.size(), trials.size());
    const std::string chain_dir = dir.file(lottery_chain_key(trials[0].config));
    torch::serialize::InputArchive chain, round1;
    chain.load_from(chain_dir + "/chain.pt");
    round1.load_from(chain_dir + "/round_1.pt");
    torch::manual_seed(0);
    Net fresh = make_model(trials[0].config["model"], {8}, 4);
    for (const auto& item : fresh->named_parameters()) {
      torch::Tensor init, rewind, start, mask;
      chain.read("init." + item.key(), init);
      chain.read("rewind." + item.key(), rewind);
      round1.read("init." + item.key(), start);
      EXPECT_TRUE(torch::equal(init, item.value())) << item.key();  // the seeded initialization
      EXPECT_EQ(torch::equal(rewind, init), k == 0) << item.key();
      if (round1.try_read("mask." + item.key(), mask))
        EXPECT_TRUE(torch::equal(start, rewind * mask)) << item.key();
      else
        EXPECT_TRUE(torch::equal(start, rewind)) << item.key();  // biases are not pruned
    }
    for (int r = 1; r <= 3; ++r) {
      const auto& ticket = run.by_hash[find(trials, r, "ticket").hash].summary;
      for (const char* control : {"reinit", "random_prune"}) {
        const auto& other = run.by_hash[find(trials, r, control).hash].summary;
        EXPECT_EQ(other["layer_remaining"], ticket["layer_remaining"]) << control << " " << r;
        EXPECT_EQ(other["weights_remaining"], ticket["weights_remaining"]);
      }
    }
  }
}

TEST(Lottery, ARandomPruningControlKeepsEachTensorsCountButNotTheTicketsMask) {
  // The control's name is its promise: the ticket's sparsity per tensor, its kept weights drawn
  // at random (a mask equal to the ticket's would still have passed the sparsity checks above).
  torch::manual_seed(3);
  std::vector<torch::Tensor> ticket = {(torch::rand({30, 40}) < 0.3).to(torch::kFloat32),
                                       torch::Tensor(),  // (a bias: no mask)
                                       (torch::rand({10, 30}) < 0.6).to(torch::kFloat32)};
  const auto a = random_masks_like(ticket, 11), again = random_masks_like(ticket, 11),
             other = random_masks_like(ticket, 12);
  ASSERT_EQ(a.size(), ticket.size());
  EXPECT_FALSE(a[1].defined());
  for (size_t i : {size_t(0), size_t(2)}) {
    EXPECT_EQ(a[i].sizes(), ticket[i].sizes());
    EXPECT_EQ(a[i].sum().item<double>(), ticket[i].sum().item<double>()) << i;
    EXPECT_TRUE(((a[i] == 0) | (a[i] == 1)).all().item<bool>()) << i;
    // Not the ticket's: about as much overlap as chance gives, far from all of it.
    const double shared = (a[i] * ticket[i]).sum().item<double>();
    EXPECT_LT(shared, 0.8 * ticket[i].sum().item<double>()) << i;
    EXPECT_TRUE(torch::equal(a[i], again[i])) << i;  // drawn from its seed
    EXPECT_FALSE(torch::equal(a[i], other[i])) << i;
  }
}

TEST(Lottery, AChainResumesAtItsLastFinishedRoundWithTheSameResults) {
  // With batch norm too: its running statistics are part of what a round starts from (the
  // rewind point's) and of what it leaves.
  for (const char* patch : {"{}", R"({"model": {"batch_norm": true}})"}) {
    SCOPED_TRACE(patch);
    testing::TempDir whole, parts;
    auto trials = trials_of(lottery_doc(patch));
    ChainRun full = run_chain(trials, whole.path());
    // Interrupted after round 1: its trials are in the "store", its artifacts on disk.
    std::vector<Trial> upto1;
    for (const auto& t : trials)
      if (t.config["lottery"]["round"].get<int>() <= 1) upto1.push_back(t);
    ChainRun first = run_chain(upto1, parts.path());
    EXPECT_EQ(first.order.size(), 4u);
    ChainRun rest = run_chain(trials, parts.path(), first);
    // Only rounds 2 and 3 ran again, and they match the uninterrupted chain exactly.
    EXPECT_EQ(rest.order.size(), first.order.size() + 6u);
    for (size_t i = first.order.size(); i < rest.order.size(); ++i) {
      const std::string& h = rest.order[i];
      EXPECT_EQ(rest.by_hash[h].summary["test_acc"], full.by_hash[h].summary["test_acc"]);
      EXPECT_EQ(rest.by_hash[h].summary["layer_remaining"],
                full.by_hash[h].summary["layer_remaining"]);
    }
  }
}

TEST(Lottery, ARoundsPopulationCheckpointStaysUntilTheRoundIsRecorded) {
  // A store error (or a kill) between a round's training and its records used to find the
  // population's checkpoint removed, and trained the round again from the start; now the rerun
  // resumes it, and once the round is recorded the checkpoint is gone.
  testing::TempDir artifacts, checkpoints;
  auto trials = trials_of(lottery_doc(R"({"train": {"checkpoint": true}})"));
  ChainRun run;
  std::vector<const Trial*> chain;
  for (const auto& t : trials) chain.push_back(&t);
  bool fail_round_1 = true;
  LotteryCallbacks cb;
  cb.done = [&](const Trial& t) { return run.by_hash.count(t.hash) > 0; };
  cb.hooks = [](const Trial&, const std::string&) { return TrainHooks(); };  // every epoch end
  cb.checkpoint_dir = checkpoints.path();
  cb.record = [&](const Trial& t, const TrainOutcome& out, double) {
    if (fail_round_1 && t.config["lottery"]["round"] == 1)
      throw std::runtime_error("database is locked");
    run.by_hash[t.hash] = out;
  };
  auto populations = [&] {
    int n = 0;
    for (const auto& f : std::filesystem::directory_iterator(checkpoints.path()))
      n += f.path().filename().string().rfind("population-", 0) == 0;
    return n;
  };
  EXPECT_THROW(run_lottery_chains(chain, artifacts.path(), torch::kCPU, cb, "lottery.json"),
               std::runtime_error);
  EXPECT_EQ(run.by_hash.size(), 1u);  // the dense round only
  EXPECT_EQ(populations(), 1);        // round 1's, for the rerun
  fail_round_1 = false;
  run_lottery_chains(chain, artifacts.path(), torch::kCPU, cb, "lottery.json");
  EXPECT_EQ(run.by_hash.size(), trials.size());
  EXPECT_EQ(run.by_hash[find(trials, 1, "ticket").hash].resumed_from_epoch, 3);
  EXPECT_EQ(run.by_hash[find(trials, 2, "ticket").hash].resumed_from_epoch, 0);
  EXPECT_EQ(populations(), 0);
}

TEST(Lottery, ARoundsTicketAndControlsTrainAsOnePopulationAsTheyWouldAlone) {
  // Each round's ticket, reinit and random_prune (their own start and mask, one data set) train
  // as one population by default; every trial equals its run alone (train.population=off) to
  // float rounding, and the masks, which come from the trained tickets, are the same: compared
  // weight by weight (equal layer fractions, all it compared, hold by construction).
  testing::TempDir together_dir, alone_dir;
  const std::string eval =
      R"({"train": {"eval_every_steps": 5}, "data": {"validation": 100}, "measure": {"per_class": true}})";
  auto trials = trials_of(lottery_doc(eval));
  json off = lottery_doc(eval);
  off["train"]["population"] = "off";
  auto solo_trials = trials_of(off);
  ChainRun together = run_chain(trials, together_dir.path());
  ChainRun alone = run_chain(solo_trials, alone_dir.path());
  ASSERT_EQ(together.by_hash.size(), trials.size());
  for (size_t i = 0; i < trials.size(); ++i) {
    const json& a = together.by_hash[trials[i].hash].summary;
    const json& b = alone.by_hash[solo_trials[i].hash].summary;
    const int round = trials[i].config["lottery"]["round"];
    EXPECT_EQ(a.value("population", 1), round == 0 ? 1 : 3) << i;  // round 0: the dense net alone
    EXPECT_FALSE(b.contains("population")) << i;
    EXPECT_EQ(together.by_hash[trials[i].hash].status, "finished");
    EXPECT_EQ(a.value("layer_remaining", json()), b.value("layer_remaining", json())) << i;
    EXPECT_EQ(a["best_val_step"], b["best_val_step"]) << i;
    for (const char* key : {"test_loss", "train_loss", "val_loss", "weight_norm"})
      EXPECT_NEAR(a[key].get<double>(), b[key].get<double>(), 2e-4 * std::abs(b[key].get<double>()))
          << key << " round " << round << " " << trials[i].config["lottery"]["control"];
    // Measures too, whether the round trained in a population or alone (round 0 always alone).
    const json& ma = together.by_hash[trials[i].hash].measures;
    const json& mb = alone.by_hash[solo_trials[i].hash].measures;
    ASSERT_TRUE(ma.contains("test_balanced_acc") && mb.contains("test_balanced_acc")) << i;
    EXPECT_NEAR(ma["test_balanced_acc"].get<double>(), mb["test_balanced_acc"].get<double>(), 0.01)
        << i;
  }
  const auto masks = masks_under(together_dir.path()), solo_masks = masks_under(alone_dir.path());
  ASSERT_EQ(masks.size(), solo_masks.size());
  EXPECT_EQ(masks.size(), 3u * 3u);  // rounds 1-3, three weight matrices each
  for (const auto& [key, mask] : masks) {
    ASSERT_TRUE(solo_masks.count(key)) << key;
    EXPECT_TRUE(torch::equal(mask, solo_masks.at(key)))
        << key << ": " << mask.ne(solo_masks.at(key)).sum().item<int64_t>() << " weights apart";
  }
}

TEST(Lottery, ChainsTrainRoundByRoundAsOnePopulationAsEachWouldAlone) {
  // Two seeds' chains in one call: each round's networks of both chains (each chain's on its own
  // seed's data) train as one population, round 0's dense networks too, and every trial equals
  // its chain run alone, one network at a time.
  testing::TempDir together_dir, alone_dir;
  const std::string patch = R"({"seeds": 2, "train": {"eval_every_steps": 5}})";
  auto trials = trials_of(lottery_doc(patch));
  json off = lottery_doc(patch);
  off["train"]["population"] = "off";
  auto solo_trials = trials_of(off);
  ASSERT_EQ(trials.size(), 2u * (1u + 3u * 3u));
  ChainRun together = run_chain(trials, together_dir.path());
  ChainRun alone;
  for (int seed : {0, 1}) {  // each chain by itself
    std::vector<Trial> one;
    for (const auto& t : solo_trials)
      if (t.seed == seed) one.push_back(t);
    alone = run_chain(one, alone_dir.path(), alone);
  }
  ASSERT_EQ(together.by_hash.size(), trials.size());
  ASSERT_EQ(alone.by_hash.size(), trials.size());
  // Round by round: both chains' round r are recorded before either's round r + 1.
  int last_round = 0;
  for (const auto& h : together.order) {
    const int round = together.by_hash[h].summary["round"];
    EXPECT_GE(round, last_round);
    last_round = round;
  }
  for (size_t i = 0; i < trials.size(); ++i) {
    const json& a = together.by_hash[trials[i].hash].summary;
    const json& b = alone.by_hash[solo_trials[i].hash].summary;
    const int round = trials[i].config["lottery"]["round"];
    const std::string what = fmt::format("seed {} round {} {}", trials[i].seed, round,
                                         trials[i].config["lottery"]["control"].get<std::string>());
    EXPECT_EQ(together.by_hash[trials[i].hash].status, "finished") << what;
    EXPECT_EQ(a.value("population", 1), round == 0 ? 2 : 6) << what;
    EXPECT_EQ(a["data"], b["data"]) << what;  // the chain's own seed's data set
    EXPECT_EQ(a.value("layer_remaining", json()), b.value("layer_remaining", json())) << what;
    EXPECT_EQ(a["best_val_step"], b["best_val_step"]) << what;
    for (const char* key : {"test_loss", "train_loss", "val_loss", "weight_norm"})
      EXPECT_NEAR(a[key].get<double>(), b[key].get<double>(), 2e-4 * std::abs(b[key].get<double>()))
          << key << " " << what;
  }
}

TEST(Lottery, ChainsAtDifferentRoundsResumeTogetherWithTheSameResults) {
  // Killed with seed 0's chain through round 2 and seed 1's through round 0 only: run again, each
  // chain loads what it has and trains the rest, and every trial matches the uninterrupted run.
  testing::TempDir whole, parts;
  auto trials = trials_of(lottery_doc(R"({"seeds": 2})"));
  ChainRun full = run_chain(trials, whole.path());
  std::vector<Trial> first_part;
  for (const auto& t : trials)
    if (t.config["lottery"]["round"].get<int>() <= (t.seed == 0 ? 2 : 0)) first_part.push_back(t);
  ChainRun first = run_chain(first_part, parts.path());
  ASSERT_EQ(first.order.size(), 7u + 1u);
  ChainRun rest = run_chain(trials, parts.path(), first);
  ASSERT_EQ(rest.order.size(), trials.size());
  for (size_t i = first.order.size(); i < rest.order.size(); ++i) {
    const std::string& h = rest.order[i];
    EXPECT_EQ(rest.by_hash[h].status, "finished");
    EXPECT_NEAR(rest.by_hash[h].summary["test_loss"].get<double>(),
                full.by_hash[h].summary["test_loss"].get<double>(),
                2e-4 * std::abs(full.by_hash[h].summary["test_loss"].get<double>()));
    EXPECT_EQ(rest.by_hash[h].summary["layer_remaining"],
              full.by_hash[h].summary["layer_remaining"]);
  }
}

TEST(Lottery, ARewindStepPastTheDenseRunIsRefusedBeforeAnythingTrains) {
  // 300 training examples (100 held out) in batches of 50 for 4 epochs: 24 steps.
  testing::TempDir dir;
  auto trials = trials_of(lottery_doc(R"({"lottery": {"rewind_step": 24}})"));
  ChainRun run;
  try {
    run = run_chain(trials, dir.path());
    ADD_FAILURE() << "ran";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("lottery.json: /lottery/rewind_step = 24: the dense run "
                                         "takes 24 steps (300 training examples in batches of "
                                         "50); allowed: 0 to 23"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(run.by_hash.empty());
  EXPECT_TRUE(run_chain(trials_of(lottery_doc(R"({"lottery": {"rewind_step": 23}})")), dir.path())
                  .by_hash.size() == trials.size());
}

TEST(Lottery, ADenseRunThatDivergedLeavesItsRoundsDivergedNotFailed) {
  // A failed trial is retried by every rerun, which would diverge again: its rounds are
  // recorded diverged at the dense run's step, with why they did not train.
  testing::TempDir dir;
  auto trials = trials_of(lottery_doc(R"({"optim": {"lr": 1e6}})"));
  ChainRun run = run_chain(trials, dir.path());
  ASSERT_EQ(run.by_hash.size(), trials.size());
  const TrainOutcome& dense = run.by_hash[find(trials, 0, "ticket").hash];
  ASSERT_EQ(dense.status, "diverged");
  for (const auto& t : trials) {
    const TrainOutcome& out = run.by_hash[t.hash];
    EXPECT_EQ(out.status, "diverged") << t.config["lottery"].dump();
    EXPECT_EQ(out.diverged_step, dense.diverged_step);
  }
  EXPECT_NE(run.by_hash[find(trials, 2, "reinit").hash]
                .summary.value("not_trained", "")
                .find("the dense network (round 0) did not finish: diverged"),
            std::string::npos);
}

TEST(Lottery, ATicketRetrainsFromItsMaskFile) {
  testing::TempDir dir;
  auto trials = trials_of(lottery_doc());
  ChainRun run = run_chain(trials, dir.path());
  const std::string file =
      dir.file(lottery_chain_key(trials[0].config)) + "/round_2.pt";
  json doc = lottery_doc();
  doc["lab"] = "train";
  doc.erase("sweep");
  doc.erase("lottery");  // read by the lottery lab only: the file holds the masks and the init
  doc["train"]["mask_file"] = file;
  json cfg = trials_of(doc).at(0).config;
  TrainOutcome again = run_trial(cfg, torch::kCPU, {}, "t.json");
  const auto& ticket = run.by_hash[find(trials, 2, "ticket").hash].summary;
  EXPECT_EQ(again.summary["test_acc"], ticket["test_acc"]);
  EXPECT_DOUBLE_EQ(again.summary["weights_remaining"].get<double>(),
                   ticket["weights_remaining"].get<double>());
  // Rewound to step 3, not to the initialization: the biases too start from their step-3
  // values, which the file holds beside the masked weights' (a fresh init would not match), and
  // so do batch norm's running statistics.
  for (const char* patch : {R"({"lottery": {"rewind_step": 3}})",
                            R"({"lottery": {"rewind_step": 3}, "model": {"batch_norm": true}})"}) {
    SCOPED_TRACE(patch);
    testing::TempDir late;
    auto rewound = trials_of(lottery_doc(patch));
    ChainRun chain = run_chain(rewound, late.path());
    json retrain = lottery_doc(patch);
    retrain["lab"] = "train";
    retrain.erase("sweep");
    retrain.erase("lottery");
    retrain["train"]["mask_file"] = late.file(lottery_chain_key(rewound[0].config)) + "/round_2.pt";
    TrainOutcome from_file = run_trial(trials_of(retrain).at(0).config, torch::kCPU, {}, "t.json");
    const auto& late_ticket = chain.by_hash[find(rewound, 2, "ticket").hash].summary;
    EXPECT_EQ(from_file.summary["test_acc"], late_ticket["test_acc"]);
    EXPECT_NEAR(from_file.summary["train_loss"].get<double>(),
                late_ticket["train_loss"].get<double>(), 1e-4);
  }

  {  // A file whose entries are of another model (a chain's init only, say): named, not torch's
     // size mismatch from copying them.
    torch::serialize::OutputArchive other;
    other.write("init.body.1.bias", torch::zeros({3}));
    other.save_to(dir.file("other.pt"));
    doc["train"]["mask_file"] = dir.file("other.pt");
    try {
      run_trial(trials_of(doc).at(0).config, torch::kCPU, {}, "t.json");
      ADD_FAILURE() << "expected a UserError";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("/train/mask_file = \"" + dir.file("other.pt") +
                                           "\": init of body.1.bias has shape [3]"),
                std::string::npos)
          << e.what();
    }
  }
  doc["train"]["mask_file"] = dir.file("missing.pt");
  try {
    run_trial(trials_of(doc).at(0).config, torch::kCPU, {}, "t.json");
    ADD_FAILURE() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/train/mask_file"), std::string::npos) << e.what();
  }
}

TEST(Lottery, ADamagedMaskFileIsRefusedNamingWhatIsWrong) {
  testing::TempDir dir;
  auto trials = trials_of(lottery_doc());
  run_chain(trials, dir.path());
  const std::string file = dir.file(lottery_chain_key(trials[0].config)) + "/round_2.pt";
  json doc = lottery_doc();
  doc["lab"] = "train";
  doc.erase("sweep");
  doc.erase("lottery");
  auto refused = [&](const std::string& mask_file, const std::string& says) {
    doc["train"]["mask_file"] = mask_file;
    try {
      run_trial(trials_of(doc).at(0).config, torch::kCPU, {}, "t.json");
      ADD_FAILURE() << "expected a UserError: " << says;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  // A tensor's record emptied: its shape is read, its data are not there (a segmentation fault
  // once the mask was used).
  testing::empty_records(file, dir.file("emptied.pt"), "data/0");
  refused(dir.file("emptied.pt"), "its data are");
  // A byte flipped: every record whole, a weight or mask value wrong. Its CRC-32 says so.
  testing::flip_a_data_byte(file, dir.file("flipped.pt"));
  refused(dir.file("flipped.pt"),
          "\": damaged since it was written (its CRC-32 does not match the one it was written "
          "with); expected a whole mask file");
  // A mask of 2s, or a start of NaN: read whole, but no mask and no start.
  torch::serialize::InputArchive good;
  good.load_from(file);
  for (const std::string kind : {"mask", "init"}) {
    torch::serialize::OutputArchive bad;
    std::string name;
    for (const auto& key : good.keys()) {
      torch::Tensor t;
      good.read(key, t);
      if (name.empty() && key.rfind(kind + ".", 0) == 0 && t.dim() == 2) {
        name = key;
        t = kind == "mask" ? t * 2 : t.fill_(NAN);
      }
      bad.write(key, t);
    }
    ASSERT_FALSE(name.empty()) << kind;
    bad.save_to(dir.file(kind + "_bad.pt"));
    refused(dir.file(kind + "_bad.pt"),
            kind == "mask" ? "holds values other than 0 and 1" : "holds NaN or infinite values");
  }
}

}  // namespace
}  // namespace empiric
