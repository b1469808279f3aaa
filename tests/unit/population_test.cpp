// Batched populations: each member trains as it would alone (to float rounding), diverged members
// do not disturb the others, and sweeps group exactly the trials that may train together.
#include "train/population.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <set>
#include <stdexcept>

#include "core/config.h"
#include "core/environment.h"
#include "core/errors.h"
#include "device/device_info.h"
#include "support/temp_dir.h"
#include "support/tiny_idx.h"
#include "support/trial_config.h"

namespace empiric {
namespace {

json trial(const std::string& patch) {
  static const char* base =
      R"({"data": {"name": "blobs", "n_train": 512, "n_test": 256, "classes": 4, "dim": 5, "noise": 1.0},
        "model": {"name": "mlp", "widths": [32, 16]}, "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "train": {"epochs": 3, "batch_size": 40, "checkpoint": false}})";
  return testing::trial_from(base, patch, "test.json");
}

// Seeds 0, 1 and 2 of one patch, `pattern` holding a %d for the seed.
std::vector<json> seeds_of(const std::string& pattern) {
  std::vector<json> cfgs;
  for (int seed : {0, 1, 2}) {
    char buf[256];
    std::snprintf(buf, sizeof buf, pattern.c_str(), seed);
    cfgs.push_back(trial(buf));
  }
  return cfgs;
}

// Per-epoch evaluations of one run.
struct Stream {
  std::vector<std::vector<std::pair<std::string, double>>> evals;
  TrainHooks hooks() {
    TrainHooks h;
    h.on_eval = [this](const Evaluation& e) { evals.push_back(e.values); };
    return h;
  }
};

double value(const std::vector<std::pair<std::string, double>>& values, const std::string& key) {
  for (const auto& [k, v] : values)
    if (k == key) return v;
  return NAN;
}

// Trains cfgs as one population and each alone; every member's every evaluation must agree.
void expect_members_equal_solo(const std::vector<json>& cfgs) {
  std::vector<Stream> together(cfgs.size()), alone(cfgs.size());
  std::vector<TrainHooks> hooks;
  for (auto& s : together) hooks.push_back(s.hooks());
  auto outs = run_population(cfgs, torch::kCPU, hooks, "test.json");
  ASSERT_EQ(outs.size(), cfgs.size());
  for (size_t i = 0; i < cfgs.size(); ++i) {
    auto solo = run_trial(cfgs[i], torch::kCPU, alone[i].hooks(), "test.json");
    EXPECT_EQ(outs[i].status, solo.status) << i;
    EXPECT_EQ(outs[i].diverged_step, solo.diverged_step) << i;
    EXPECT_EQ(outs[i].summary["steps"], solo.summary["steps"]) << i;
    EXPECT_EQ(outs[i].summary["epochs"], solo.summary["epochs"]) << i;
    EXPECT_EQ(outs[i].summary["population"], int64_t(cfgs.size()));
    ASSERT_EQ(together[i].evals.size(), alone[i].evals.size()) << i;
    for (size_t e = 0; e < alone[i].evals.size(); ++e) {
      std::set<std::string> solo_keys, member_keys;  // the same metrics are recorded
      for (const auto& kv : alone[i].evals[e]) solo_keys.insert(kv.first);
      for (const auto& kv : together[i].evals[e]) member_keys.insert(kv.first);
      EXPECT_EQ(member_keys, solo_keys) << "member " << i << " evaluation " << e;
    }
    for (size_t e = 0; e < alone[i].evals.size(); ++e)
      for (const char* key : {"train_loss", "test_loss", "train_acc", "test_acc", "lr",
                              "train_loss_running", "train_loss_recent", "val_loss"}) {
        const double a = value(alone[i].evals[e], key), b = value(together[i].evals[e], key);
        if (std::isnan(a)) {
          EXPECT_TRUE(std::isnan(b)) << key;
          continue;
        }
        EXPECT_NEAR(b, a, 2e-4 * std::max(1.0, std::abs(a))) << "member " << i << " epoch " << e << " " << key;
      }
    for (const char* key : {"train_loss", "train_acc", "gen_gap", "test_acc"}) {
      const bool has = solo.summary.contains(key) && solo.summary[key].is_number();
      ASSERT_EQ(outs[i].summary.contains(key) && outs[i].summary[key].is_number(), has) << key;
      if (has) {
        EXPECT_NEAR(outs[i].summary[key].get<double>(), solo.summary[key].get<double>(), 2e-4)
            << key;
      }
    }
    EXPECT_NEAR(outs[i].summary["weight_norm"].get<double>(), solo.summary["weight_norm"].get<double>(),
                1e-4 * solo.summary["weight_norm"].get<double>());
    for (const char* key : {"test_acc_decay_start", "wsd_decay_gain", "wsd_stable_gain"}) {
      ASSERT_EQ(outs[i].summary.contains(key), solo.summary.contains(key)) << key;
      if (solo.summary.contains(key)) {
        EXPECT_NEAR(outs[i].summary[key].get<double>(), solo.summary[key].get<double>(), 2e-4) << key;
      }
    }
  }
}

TEST(Population, MaxEvalsThinsTheMembersEvaluationsAsItThinsASoloRun) {
  std::vector<json> cfgs;
  for (int seed = 0; seed < 2; ++seed) {
    json c = trial(R"({"train": {"epochs": 7, "max_evals": 3}})");
    c["seed"] = seed;
    cfgs.push_back(c);
  }
  expect_members_equal_solo(cfgs);  // evaluation by evaluation, the same epochs
  std::vector<int> epochs;
  TrainHooks first;
  first.on_eval = [&](const Evaluation& e) { epochs.push_back(e.epoch); };
  run_population(cfgs, torch::kCPU, {first, TrainHooks()}, "test.json");
  EXPECT_EQ(epochs, (std::vector<int>{3, 6, 7}));  // every ceil(7 / 3) = 3 epochs, and the last
}

TEST(Population, SgdMembersEqualTheirSoloRuns) {
  expect_members_equal_solo({trial(R"({"seed": 0})"),
                             trial(R"({"seed": 1, "optim": {"lr": 0.05}})"),
                             trial(R"({"seed": 2, "optim": {"weight_decay": 0.001, "momentum": 0.5}})")});
  // Batches of 512 and more take one matmul per member on a CPU (and a smaller last batch).
  expect_members_equal_solo(
      seeds_of(R"({"data": {"n_train": 1200}, "train": {"batch_size": 512}, "seed": %d})"));
  // A run of train.steps that ends mid-epoch on an evaluation, and one whose eval_every_steps
  // falls on epoch ends that max_evals thins: evaluated as a trial alone is, once per step.
  expect_members_equal_solo(
      seeds_of(R"({"train": {"steps": 40, "eval_every_steps": 20}, "seed": %d})"));
  expect_members_equal_solo(
      seeds_of(R"({"train": {"epochs": 6, "eval_every_steps": 26, "max_evals": 2}, "seed": %d})"));
}

TEST(Population, AdamMembersWithTheirOwnLabelNoiseAndValidationEqualTheirSoloRuns) {
  const std::string base = R"({"optim": {"name": "adam", "lr": 0.01, "momentum": null}, "data": {"validation": 64},
                               "schedule": {"name": "cosine"}, "seed": 3})";
  json a = trial(base), b = trial(base), c = trial(base);
  b["data"]["label_noise"] = 0.2;
  c["seed"] = 4;
  c["model"]["init_scale"] = 0.5;
  expect_members_equal_solo({a, b, c});
}

TEST(Population, AdamWMembersWithTheirOwnLrAndDecayUnderWsdEvaluatedEvery5StepsEqualTheirSoloRuns) {
  // Members stepping apart take one fused step with a row of hyperparameters each; evaluations
  // inside the epoch and wsd's landmark test metrics are taken as a trial alone takes them.
  const std::string base = R"({"optim": {"name": "adamw", "lr": 0.01, "momentum": null},
      "schedule": {"name": "wsd", "decay_frac": 0.2}, "train": {"eval_every_steps": 5}})";
  json a = trial(base), b = trial(base), c = trial(base);
  b["optim"]["lr"] = 0.003, b["seed"] = 1;
  c["optim"]["weight_decay"] = 0.1, c["seed"] = 2;
  expect_members_equal_solo({a, b, c});
  auto outs = run_population({a, b}, torch::kCPU, std::vector<TrainHooks>(2), "test.json");
  EXPECT_TRUE(outs[1].summary.contains("wsd_decay_gain"));  // the landmarks were reached
}

TEST(Population, MembersEvaluatedOnHeldOutSetsEqualTheirSoloRuns) {
  // Q97's setting: every 5 steps the members' validation and test sets, the training set only at
  // the last evaluation, as alone.
  const auto cfgs = seeds_of(R"({"data": {"validation": 60}, "train": {"eval_every_steps": 5,
      "eval_sets": "held_out"}, "seed": %d})");
  expect_members_equal_solo(cfgs);
  // A run of train.steps whose last step falls mid-epoch on an evaluation: that one takes the
  // training set too, alone and as a member (the member's summary had no training loss).
  expect_members_equal_solo(seeds_of(R"({"data": {"validation": 60}, "train": {"steps": 35,
      "eval_every_steps": 5, "eval_sets": "held_out"}, "seed": %d})"));
  std::vector<Stream> members(cfgs.size());
  std::vector<TrainHooks> hooks;
  for (auto& m : members) hooks.push_back(m.hooks());
  run_population(cfgs, torch::kCPU, hooks, "test.json");
  // 452 training examples in batches of 40: epochs end at steps 12, 24 and 36.
  const std::vector<int> steps = {5, 10, 12, 15, 20, 24, 25, 30, 35, 36};
  ASSERT_EQ(members[0].evals.size(), steps.size());
  for (size_t e = 0; e < steps.size(); ++e) {
    const bool last = e + 1 == steps.size();
    EXPECT_EQ(std::isnan(value(members[0].evals[e], "train_loss")), !last) << e;
    EXPECT_FALSE(std::isnan(value(members[0].evals[e], "val_loss"))) << e;
    EXPECT_FALSE(std::isnan(value(members[0].evals[e], "train_loss_recent"))) << e;
  }
}

TEST(Population, MembersOnSchedulesOfTheirOwnEqualTheirSoloRuns) {
  // Q76's sweep: the schedule is a member's own (its factor a row of the members' step), and
  // wsd's landmarks are taken for the members whose schedule has them.
  const std::string base = R"({"train": {"epochs": 4, "eval_every_steps": 7}, "seed": %d,
      "schedule": %s})";
  std::vector<json> cfgs;
  int seed = 0;
  for (const char* s : {R"({"name": "constant"})", R"({"name": "multistep", "milestones": [2, 3]})",
                        R"({"name": "cosine", "warmup_epochs": 0.5})", R"({"name": "onecycle"})",
                        R"({"name": "wsd", "decay_frac": 0.3})"}) {
    char buf[512];
    std::snprintf(buf, sizeof buf, base.c_str(), seed++, s);
    cfgs.push_back(trial(buf));
  }
  ASSERT_EQ(group_population(cfgs, 16), (std::vector<std::vector<size_t>>{{0, 1, 2, 3, 4}}));
  expect_members_equal_solo(cfgs);
  auto outs = run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(cfgs.size()), "test.json");
  EXPECT_TRUE(outs[4].summary.contains("wsd_decay_gain"));  // the wsd member's landmarks
  EXPECT_FALSE(outs[0].summary.contains("wsd_decay_gain"));
  // Another optimizer does not join.
  json adam = cfgs[0];
  adam["optim"]["name"] = "adam";
  cfgs.push_back(adam);
  EXPECT_EQ(group_population(cfgs, 16).size(), 2u);
}

TEST(Population, MembersSharingOneDataSetEqualTheirSoloRuns) {
  // Image data without a subset, validation or label noise is the same for every seed: the
  // members share one copy, and each evaluation chunk is expanded over them, not copied.
  testing::TempDir dir;
  testing::write_tiny_mnist(dir, 300, 60);
  json cfg = trial(testing::kTinyMnistData);
  cfg["train"]["eval_batch_size"] = 25;
  expect_members_equal_solo(testing::on_tiny_mnist(cfg, dir, {0, 1, 2}));
}

TEST(Population, MembersWithFeatureScalesOfTheirOwnEqualTheirSoloRuns) {
  // The same image data, but each seed draws its own feature scales: no shared copy.
  testing::TempDir dir;
  testing::write_tiny_mnist(dir, 300, 60);
  json cfg = trial(testing::kTinyMnistData);
  cfg["data"]["feature_scale"] = 1.0;
  cfg["data"]["standardize"] = false;
  cfg["optim"]["lr"] = 0.001;
  expect_members_equal_solo(testing::on_tiny_mnist(cfg, dir, {0, 1, 2}));
}

TEST(Population, TestSetAndWeightMeasuresJoinTheStackedOnesWithEachMembersOwn) {
  // The top Hessian eigenvalue alone is taken for all members at once; with calibration,
  // per-class results or sparsity each member takes them all, as a trial alone does.
  const std::string m = R"({"measure": {"hessian_top": true, "hessian_samples": 100,
      "calibration": true, "calibration_bins": 10, "per_class": true, "auc": true,
      "sparsity": true, "sparsity_tol": 0.01, "grad_flow_init": true, "dead_units": true}, "seed": %d})";
  std::vector<json> cfgs;
  for (int seed : {0, 1}) {
    char buf[512];
    std::snprintf(buf, sizeof buf, m.c_str(), seed);
    cfgs.push_back(trial(buf));
  }
  ASSERT_EQ(group_population(cfgs, 16), (std::vector<std::vector<size_t>>{{0, 1}}));
  auto outs = run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(2), "test.json");
  for (size_t i = 0; i < cfgs.size(); ++i) {
    auto solo = run_trial(cfgs[i], torch::kCPU, {}, "test.json");
    for (const char* key : {"test_ece", "test_confidence", "test_overconfidence", "hessian_top",
                            "test_balanced_acc", "test_min_recall", "test_max_pred_share",
                            "weight_zero_frac", "dead_unit_frac", "test_auc"}) {
      ASSERT_TRUE(outs[i].measures.contains(key) && outs[i].measures[key].is_number())
          << i << " " << key << " " << outs[i].measures.dump();
      EXPECT_NEAR(outs[i].measures[key].get<double>(), solo.measures[key].get<double>(),
                  2e-3 * std::max(1.0, std::abs(solo.measures[key].get<double>())))
          << i << " " << key;
    }
    for (const char* key : {"grad_norm_first_init", "grad_norm_last_init", "grad_ratio_init"}) {
      ASSERT_TRUE(outs[i].summary.contains(key) && outs[i].summary[key].is_number()) << key;
      EXPECT_NEAR(outs[i].summary[key].get<double>(), solo.summary[key].get<double>(),
                  1e-5 * std::abs(solo.summary[key].get<double>()))
          << i << " " << key;
    }
    const double ece = outs[i].measures["test_ece"];
    EXPECT_GE(ece, std::abs(outs[i].measures["test_overconfidence"].get<double>()) - 1e-12);
    EXPECT_LE(ece, 1.0);
  }
}

TEST(Population, MembersTakeTheMeasuresTheirSoloRunsTake) {
  // Every measure of the final weights, and the Hessian at initialization, from each member's own
  // net after (before) the population trains: the values a trial alone stores.
  const std::string m =
      R"({"measure": {"hessian_top": true, "hessian_init": true, "hessian_samples": 200,
      "grad_flow_init": true,
      "noise_scale": true, "noise_batches": [8, 64], "noise_repeats": 5, "hessian_trace": true,
      "trace_samples": 4, "sigma_sharpness": true, "sigma_samples": 4, "dinh_alpha": 4.0,
      "surface_grid": 3}, "data": {"validation": 64}, "seed": %d, "optim": {"lr": %s}})";
  auto member = [&](int seed, const char* lr) {
    char buf[512];
    std::snprintf(buf, sizeof buf, m.c_str(), seed, lr);
    return trial(buf);
  };
  std::vector<json> cfgs = {member(0, "0.1"), member(1, "0.05"), member(2, "0.1")};
  ASSERT_EQ(population_incompatibility(cfgs[0]), "");
  ASSERT_EQ(group_population(cfgs, 16), (std::vector<std::vector<size_t>>{{0, 1, 2}}));
  auto outs = run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(3), "test.json");
  for (size_t i = 0; i < cfgs.size(); ++i) {
    auto solo = run_trial(cfgs[i], torch::kCPU, {}, "test.json");
    ASSERT_EQ(outs[i].status, "finished");
    EXPECT_NEAR(outs[i].summary["hessian_top_init"].get<double>(),
                solo.summary["hessian_top_init"].get<double>(),
                1e-3 * solo.summary["hessian_top_init"].get<double>()) << i;
    EXPECT_DOUBLE_EQ(outs[i].summary["lr_x_hessian_init"].get<double>() /
                         outs[i].summary["hessian_top_init"].get<double>(),
                     solo.summary["base_lr"].get<double>());
    ASSERT_EQ(outs[i].measures.size(), solo.measures.size()) << outs[i].measures.dump();
    for (const auto& [key, want] : solo.measures.items()) {
      ASSERT_TRUE(outs[i].measures.contains(key)) << key;
      const json& got = outs[i].measures[key];
      if (key == "surface") {
        for (size_t k = 0; k < want["loss"].size(); ++k)
          EXPECT_NEAR(got["loss"][k].get<double>(), want["loss"][k].get<double>(),
                      1e-3 * std::max(1.0, want["loss"][k].get<double>())) << k;
      } else if (want.is_number_float()) {
        EXPECT_NEAR(got.get<double>(), want.get<double>(), 2e-3 * std::max(1.0, std::abs(want.get<double>())))
            << "member " << i << " " << key;
      } else {
        EXPECT_EQ(got, want) << key;
      }
    }
  }
  // A diverged member takes none.
  auto outs2 = run_population({cfgs[0], member(5, "1000.0")}, torch::kCPU, std::vector<TrainHooks>(2), "test.json");
  EXPECT_EQ(outs2[1].status, "diverged");
  EXPECT_TRUE(outs2[1].measures.empty());
  EXPECT_FALSE(outs2[0].measures.empty());
  // What was taken before training stays with a diverged run, alone or in a population.
  auto solo_diverged = run_trial(member(5, "1000.0"), torch::kCPU, {}, "test.json");
  ASSERT_EQ(solo_diverged.status, "diverged");
  for (const char* key : {"grad_ratio_init", "hessian_top_init"}) {
    ASSERT_TRUE(outs2[1].summary[key].is_number() && solo_diverged.summary[key].is_number()) << key;
    EXPECT_NEAR(outs2[1].summary[key].get<double>(), solo_diverged.summary[key].get<double>(),
                1e-3 * std::abs(solo_diverged.summary[key].get<double>()))
        << key;
  }
}

TEST(Population, MembersTakeTheHessianAndTheNoiseScaleAllAtOnceAsTheirSoloRunsDo) {
  // Q99's measures: the stacked net's Hessian-vector products and gradients serve every member at
  // once (its Hessian is block-diagonal); each member's values are its solo run's.
  const std::string m = R"({"measure": {"hessian_top": true, "hessian_samples": 200, "hessian_tol": 1e-4,
      "noise_scale": true, "noise_batches": [8, 64], "noise_repeats": 5}, "seed": %d, "optim": {"lr": %s}})";
  auto member = [&](int seed, const char* lr) {
    char buf[512];
    std::snprintf(buf, sizeof buf, m.c_str(), seed, lr);
    return trial(buf);
  };
  std::vector<json> cfgs = {member(0, "0.1"), member(1, "0.05"), member(2, "0.1"), member(3, "1000.0")};
  auto outs = run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(cfgs.size()), "test.json");
  EXPECT_EQ(outs[3].status, "diverged");  // takes none; the others are measured without it
  EXPECT_TRUE(outs[3].measures.empty());
  for (size_t i = 0; i < 3; ++i) {
    auto solo = run_trial(cfgs[i], torch::kCPU, {}, "test.json");
    ASSERT_EQ(outs[i].status, "finished");
    ASSERT_EQ(outs[i].measures.size(), solo.measures.size()) << outs[i].measures.dump();
    for (const char* key : {"hessian_top", "gradient_sq", "trace_sigma", "b_simple"}) {
      const json &got = outs[i].measures[key], &want = solo.measures[key];
      ASSERT_EQ(got.is_null(), want.is_null()) << "member " << i << " " << key << ": " << got << " " << want;
      if (!want.is_null()) {
        // The same draws and the same math, summed in another order: to 1e-4 relative (measured:
        // 1e-5 or closer on this test's members).
        EXPECT_NEAR(got.get<double>(), want.get<double>(), 1e-4 * std::abs(want.get<double>()) + 1e-12)
            << "member " << i << " " << key;
      }
    }
    EXPECT_TRUE(solo.measures["hessian_top"].is_number() && solo.measures["trace_sigma"].is_number() &&
                solo.measures["gradient_sq"].is_number())
        << solo.measures.dump();  // compared above, not skipped as nulls
    // The residual is a small difference of two sums: to a thousandth of the eigenvalue.
    EXPECT_NEAR(outs[i].measures["hessian_top_residual"].get<double>(),
                solo.measures["hessian_top_residual"].get<double>(),
                1e-3 * std::abs(solo.measures["hessian_top"].get<double>()))
        << "member " << i;
    EXPECT_TRUE(outs[i].measures["hessian_top_converged"].get<bool>());
    EXPECT_NEAR(outs[i].measures["hessian_top_iterations"].get<int>(),
                solo.measures["hessian_top_iterations"].get<int>(), 1);
  }
}

TEST(Population, MembersWhoseHessianIsMostlyNegativeTakeTheShiftedIterationAsTheirSoloRunsDo) {
  // Tanh nets at 10x init, barely trained: some members' most negative Hessian eigenvalue
  // outweighs the top, and the second (shifted) iteration runs for them alone.
  std::vector<json> cfgs;
  for (int seed = 0; seed < 6; ++seed)
    cfgs.push_back(trial(R"({"seed": )" + std::to_string(seed) + R"(, "train": {"epochs": 1},
        "model": {"widths": [6], "activation": "tanh", "init_scale": 10.0}, "optim": {"lr": 1e-6},
        "measure": {"hessian_top": true, "hessian_samples": 64, "hessian_tol": 1e-6,
                    "hessian_max_iter": 3000}})"));
  auto outs = run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(cfgs.size()), "test.json");
  int shifted = 0;
  for (size_t i = 0; i < cfgs.size(); ++i) {
    auto solo = run_trial(cfgs[i], torch::kCPU, {}, "test.json");
    ASSERT_EQ(outs[i].status, "finished");
    const json &got = outs[i].measures, &want = solo.measures;
    ASSERT_EQ(got.contains("hessian_top_shift"), want.contains("hessian_top_shift")) << got << want;
    if (want.contains("hessian_top_shift")) {
      ++shifted;
      EXPECT_NEAR(got["hessian_top_shift"].get<double>(), want["hessian_top_shift"].get<double>(),
                  1e-4 * std::abs(want["hessian_top_shift"].get<double>()));
    }
    EXPECT_NEAR(got["hessian_top"].get<double>(), want["hessian_top"].get<double>(),
                1e-4 * std::abs(want["hessian_top"].get<double>()))
        << i;
    // (A slow iteration's count moves with the last bits of the batched products: 172 or 176.)
    EXPECT_NEAR(got["hessian_top_iterations"].get<int>(), want["hessian_top_iterations"].get<int>(),
                std::max(2.0, 0.05 * want["hessian_top_iterations"].get<double>()));
  }
  EXPECT_GT(shifted, 0) << "no member tested the negative case";
  EXPECT_LT(shifted, int(cfgs.size())) << "and none the plain one beside it";
}

TEST(Population, AKilledPopulationResumesFromItsCheckpointToTheSameResults) {
  testing::TempDir dir;
  const std::string path = dir.file("population.pt");
  std::vector<json> cfgs = {trial(R"({"seed": 0, "train": {"epochs": 4}, "data": {"validation": 64}})"),
                            trial(R"({"seed": 1, "train": {"epochs": 4}, "data": {"validation": 64},
                                      "optim": {"lr": 0.05}})")};
  auto whole = run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(2), "test.json");
  // Killed at the third epoch's evaluation: the checkpoint of epoch 2 stays, each member told
  // before every checkpoint.
  auto kill = [&] {
    std::vector<TrainHooks> dying(2);
    int announced = 0;
    for (auto& h : dying) h.before_checkpoint = [&] { ++announced; };
    dying[1].on_eval = [](const Evaluation& e) {
      if (e.epoch == 3) throw std::runtime_error("killed");
    };
    EXPECT_THROW(run_population(cfgs, torch::kCPU, dying, "test.json", path, 0), std::runtime_error);
    EXPECT_EQ(announced, 4);  // two members, epochs 1 and 2
    EXPECT_TRUE(std::filesystem::exists(path));
  };
  kill();
  Stream resumed_evals;
  std::vector<TrainHooks> hooks(2);
  hooks[0] = resumed_evals.hooks();
  auto resumed = run_population(cfgs, torch::kCPU, hooks, "test.json", path, 0);
  ASSERT_EQ(resumed_evals.evals.size(), 2u);  // epochs 3 and 4 only
  for (size_t i = 0; i < cfgs.size(); ++i) {
    EXPECT_EQ(resumed[i].resumed_from_epoch, 2);
    EXPECT_GT(resumed[i].resumed_wall_s, 0.0) << i;  // (its share of the killed run's wall time)
    EXPECT_EQ(whole[i].resumed_wall_s, 0.0) << i;
    for (const char* key : {"train_loss", "test_acc", "val_loss", "best_val_loss", "best_val_step", "weight_norm"})
      EXPECT_EQ(resumed[i].summary[key], whole[i].summary[key]) << i << " " << key;
    EXPECT_EQ(resumed[i].summary["steps"], whole[i].summary["steps"]);
  }
  EXPECT_FALSE(std::filesystem::exists(path));  // removed once the population ends
  // Unless every member's hooks keep it, for the caller to remove once it has recorded them
  // (the sweep): left at the end (it holds the last epoch end before the final one), it resumes
  // a second call to the same results.
  kill();
  std::vector<TrainHooks> keeping(2);
  for (auto& h : keeping) h.keep_checkpoint = true;
  auto kept = run_population(cfgs, torch::kCPU, keeping, "test.json", path, 0);
  EXPECT_TRUE(std::filesystem::exists(path));
  auto again = run_population(cfgs, torch::kCPU, keeping, "test.json", path, 0);
  for (size_t i = 0; i < cfgs.size(); ++i) {
    EXPECT_EQ(again[i].resumed_from_epoch, 3);
    EXPECT_EQ(again[i].summary["test_acc"], whole[i].summary["test_acc"]) << i;
  }
  std::filesystem::remove(path);
  // Left behind once its members are recorded (a rerun grouped them otherwise), it is removed
  // by the sweep's end; while one member is not, it stays.
  {
    kill();
    const std::string spent = dir.file("population-0123456789abcdef.pt");
    std::filesystem::rename(path, spent);
    const std::string first = trial_hash(cfgs[0]);
    auto recorded_but_first = [&](const std::string& h) { return h != first; };
    EXPECT_EQ(remove_spent_population_checkpoints(dir.path(), recorded_but_first), 0);
    EXPECT_TRUE(std::filesystem::exists(spent));
    EXPECT_EQ(
        remove_spent_population_checkpoints(dir.path(), [](const std::string&) { return true; }),
        1);
    EXPECT_FALSE(std::filesystem::exists(spent));
  }
  // Another population does not take it: it starts over.
  kill();
  std::vector<json> others = {cfgs[0], trial(R"({"seed": 7, "train": {"epochs": 4}, "data": {"validation": 64}})")};
  auto fresh = run_population(others, torch::kCPU, std::vector<TrainHooks>(2), "test.json", path, 0);
  EXPECT_EQ(fresh[0].resumed_from_epoch, 0);
  EXPECT_EQ(fresh[0].summary["train_loss"], whole[0].summary["train_loss"]);
  EXPECT_FALSE(std::filesystem::exists(path));
  // Its own checkpoint, killed again and then edited entry by entry by `edit`, is removed and
  // the population trains from the start.
  auto restarts_after =
      [&](const std::function<torch::Tensor(const std::string&, torch::Tensor)>& edit) {
        kill();
        {
          torch::serialize::InputArchive in;
          in.load_from(path);
          torch::serialize::OutputArchive out;
          for (const auto& key : in.keys()) {
            torch::Tensor t;
            in.read(key, t);
            out.write(key, edit(key, t));
          }
          out.save_to(path);
        }
        auto restarted =
            run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(2), "test.json", path, 0);
        for (size_t i = 0; i < cfgs.size(); ++i) {
          EXPECT_EQ(restarted[i].resumed_from_epoch, 0);
          EXPECT_EQ(restarted[i].summary["train_loss"], whole[i].summary["train_loss"]);
        }
        EXPECT_FALSE(std::filesystem::exists(path));
      };
  // A tensor these members cannot take (as an empiric that stacked its weights otherwise would
  // write).
  restarts_after([](const std::string& key, torch::Tensor t) {
    return key == "param.0" ? torch::zeros({3}) : t;
  });
  // A member's state without a field an older empiric did not write (const json's operator[] on
  // a missing key is undefined behaviour, not an exception).
  restarts_after([](const std::string& key, torch::Tensor t) {
    if (key != "state") return t;
    json state = json::parse(tensor_text(t));
    state["member_state"][0].erase("best_val_step");
    return text_tensor(state.dump());
  });
}

TEST(Population, APopulationKilledAfterAMemberLeftTheStackResumesToTheSameResults) {
  // The checkpoint is of the full stack: the members still training write their weights and
  // state back into it before it is saved, and the resumed run stacks them anew.
  testing::TempDir dir;
  const std::string path = dir.file("population.pt");
  const std::string stop = R"("train": {"epochs": 12, "stop_train_loss": 0.6})";
  std::vector<json> cfgs = {trial(R"({"seed": 0, )" + stop + "}"),
                            trial(R"({"seed": 2, "optim": {"lr": 0.001}, )" + stop + "}")};
  auto whole = run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(2), "test.json");
  ASSERT_LT(whole[0].summary["epochs"].get<int>(), 7);  // member 0 left before the kill
  std::vector<TrainHooks> dying(2);
  dying[1].on_eval = [](const Evaluation& e) {
    if (e.epoch == 8) throw std::runtime_error("killed");
  };
  EXPECT_THROW(run_population(cfgs, torch::kCPU, dying, "test.json", path, 0), std::runtime_error);
  ASSERT_TRUE(std::filesystem::exists(path));
  auto resumed =
      run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(2), "test.json", path, 0);
  // Member 0 had stopped before the checkpoint: it trained wholly in the killed run, and its
  // record says nothing of resuming (it said epoch 7, past its own last).
  EXPECT_EQ(resumed[0].resumed_from_epoch, 0);
  EXPECT_EQ(resumed[1].resumed_from_epoch, 7);
  for (size_t i = 0; i < cfgs.size(); ++i) {
    for (const char* key : {"train_loss", "test_acc", "weight_norm", "steps", "epochs",
                            "reached_train_loss", "population_member_steps"})
      EXPECT_EQ(resumed[i].summary[key], whole[i].summary[key]) << i << " " << key;
  }
}

TEST(Population, MembersStopAtTheTrainingLossTheirSoloRunsStopAt) {
  // train.stop_train_loss: each member stops at the first epoch end whose training loss is at or
  // below it, frozen there while the others go on; one never gets there in its epochs.
  const std::string stop = R"("train": {"epochs": 12, "stop_train_loss": 0.6})";
  std::vector<json> cfgs = {trial(R"({"seed": 0, )" + stop + "}"),
                            trial(R"({"seed": 1, "optim": {"lr": 0.02}, )" + stop + "}"),
                            trial(R"({"seed": 2, "optim": {"lr": 0.001}, )" + stop + "}")};
  EXPECT_EQ(population_incompatibility(cfgs[0]), "");
  expect_members_equal_solo(cfgs);
  auto outs = run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(3), "test.json");
  std::set<long long> steps;
  for (size_t i = 0; i < cfgs.size(); ++i) {
    auto solo = run_trial(cfgs[i], torch::kCPU, {}, "test.json");
    for (const char* key : {"reached_train_loss", "steps", "epochs", "samples"})
      EXPECT_EQ(outs[i].summary[key], solo.summary[key]) << i << " " << key;
    steps.insert(outs[i].summary["steps"].get<long long>());
  }
  EXPECT_EQ(outs[0].summary["reached_train_loss"], true);
  EXPECT_EQ(outs[2].summary["reached_train_loss"], false);  // LR 0.001: not in 12 epochs
  EXPECT_EQ(outs[2].summary["epochs"], 12);
  EXPECT_EQ(steps.size(), 3u);  // three stopping points: the members did stop apart
  // Each member is computed for its own steps only: one that stopped (at an epoch's end) is left
  // out of the stack from the next epoch on, not carried along at LR 0.
  long long own = 0;
  for (const auto& out : outs) own += out.summary["steps"].get<long long>();
  for (const auto& out : outs) EXPECT_EQ(out.summary["population_member_steps"], own);
  // Every member stopped: the population ends there, not at its last epoch.
  cfgs.pop_back();
  auto two = run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(2), "test.json");
  EXPECT_LT(std::max(two[0].summary["epochs"].get<int>(), two[1].summary["epochs"].get<int>()), 12);
}

TEST(Population, AMemberStoppingAtItsLastEvaluationKeepsItsWsdLandmarksAsAlone) {
  // Stopped by train.stop_train_loss at the last epoch's end, a member had taken every step, as
  // its solo run had, yet lost the wsd gains its solo run records.
  const std::string base =
      R"({"schedule": {"name": "wsd", "decay_frac": 0.3}, "train": {"epochs": 4}})";
  Stream probe;
  run_trial(trial(base), torch::kCPU, probe.hooks(), "test.json");
  ASSERT_EQ(probe.evals.size(), 4u);
  const double last = value(probe.evals[3], "train_loss"),
               before = value(probe.evals[2], "train_loss");
  ASSERT_LT(last, before);  // a threshold between them stops seed 0 at its last evaluation only
  json a = trial(base), b = trial(base);
  a["train"]["stop_train_loss"] = b["train"]["stop_train_loss"] = (last + before) / 2;
  b["seed"] = 1, b["optim"]["lr"] = 0.003;
  auto solo = run_trial(a, torch::kCPU, {}, "test.json");
  ASSERT_EQ(solo.summary["reached_train_loss"], true);
  ASSERT_TRUE(solo.summary.contains("wsd_decay_gain"));
  expect_members_equal_solo({a, b});
}

TEST(Population, AdamMembersOnSchedulesOfTheirOwnStopAtTheLossTheirSoloRunsStopAt) {
  // Members that leave the stack part way carry Adam's two moments and their own schedules'
  // rows into the smaller one; those still training must go on as they would alone.
  const std::string stop = R"("train": {"epochs": 10, "stop_train_loss": 0.6})";
  const std::string adam =
      R"("optim": {"name": "adamw", "lr": %s, "momentum": null, "weight_decay": 0.01})";
  auto member = [&](int seed, const char* lr, const char* schedule) {
    char opt[200];
    std::snprintf(opt, sizeof opt, adam.c_str(), lr);
    return trial(std::string(R"({"seed": )") + std::to_string(seed) + ", " + opt + ", " + stop +
                 R"(, "schedule": )" + schedule + "}");
  };
  std::vector<json> cfgs = {member(0, "0.01", R"({"name": "cosine"})"),
                            member(1, "0.003", R"({"name": "constant"})"),
                            member(2, "0.0003", R"({"name": "wsd", "decay_frac": 0.2})")};
  EXPECT_EQ(population_incompatibility(cfgs[0]), "");
  expect_members_equal_solo(cfgs);
  auto outs = run_population(cfgs, torch::kCPU, std::vector<TrainHooks>(3), "test.json");
  std::set<long long> steps;
  long long own = 0;
  for (const auto& out : outs) {
    steps.insert(out.summary["steps"].get<long long>());
    own += out.summary["steps"].get<long long>();
  }
  EXPECT_GE(steps.size(), 2u);  // they did stop apart
  EXPECT_EQ(outs[0].summary["population_member_steps"], own);
  // Each member's time is its own steps' share: the last to stop took the most.
  size_t longest = 0;
  for (size_t i = 1; i < outs.size(); ++i)
    if (outs[i].summary["steps"] > outs[longest].summary["steps"]) longest = i;
  for (size_t i = 0; i < outs.size(); ++i) {
    if (outs[i].summary["steps"] < outs[longest].summary["steps"]) {
      EXPECT_LT(outs[i].summary["compute_s"].get<double>(),
                outs[longest].summary["compute_s"].get<double>())
          << i;
    }
  }
}

TEST(Population, ADivergedMemberIsRecordedAndTheOthersGoOn) {
  json ok = trial(R"({"seed": 0})"), bad = trial(R"({"seed": 1, "optim": {"lr": 1000.0}})");
  std::vector<TrainHooks> hooks(2);
  auto outs = run_population({ok, bad}, torch::kCPU, hooks, "test.json");
  EXPECT_EQ(outs[1].status, "diverged");
  auto solo_bad = run_trial(bad, torch::kCPU, {}, "test.json");
  EXPECT_EQ(outs[1].diverged_step, solo_bad.diverged_step);
  // With the loss that tripped it, as alone (a number over the bound, or "nan"/"inf").
  ASSERT_TRUE(outs[1].summary.contains("diverged_loss")) << outs[1].summary;
  const json &mine = outs[1].summary["diverged_loss"], &alone = solo_bad.summary["diverged_loss"];
  if (alone.is_number())
    EXPECT_NEAR(mine.get<double>(), alone.get<double>(), 1e-3 * alone.get<double>());
  else
    EXPECT_EQ(mine, alone);
  EXPECT_FALSE(outs[0].summary.contains("diverged_loss"));
  // Its run ends where the trial alone stopped, not where the population did.
  for (const char* key : {"steps", "epochs", "samples", "train_flops"})
    EXPECT_EQ(outs[1].summary[key], solo_bad.summary[key]) << key;
  EXPECT_LT(outs[1].summary["steps"].get<long long>(), outs[0].summary["steps"].get<long long>());
  const double norm = outs[1].summary["weight_norm"], solo_norm = solo_bad.summary["weight_norm"];
  if (std::isnan(solo_norm))  // its weights went non-finite alone: in the population too
    EXPECT_TRUE(std::isnan(norm));
  else
    EXPECT_NEAR(norm, solo_norm, 1e-3 * solo_norm);
  // It is computed to the end of the epoch it diverged in, no further.
  const long long own =
      outs[0].summary["steps"].get<long long>() + outs[1].summary["steps"].get<long long>();
  EXPECT_GE(outs[0].summary["population_member_steps"].get<long long>(), own);
  EXPECT_LT(outs[0].summary["population_member_steps"].get<long long>(),
            own + outs[0].summary["steps_per_epoch"].get<long long>());
  auto solo_ok = run_trial(ok, torch::kCPU, {}, "test.json");
  EXPECT_EQ(outs[0].status, "finished");
  EXPECT_NEAR(outs[0].summary["train_loss"].get<double>(), solo_ok.summary["train_loss"].get<double>(), 1e-4);
  // Every member diverged: the population stops at that check, as each would alone.
  json bad2 = bad;
  bad2["seed"] = 2;
  auto both = run_population({bad, bad2}, torch::kCPU, std::vector<TrainHooks>(2), "test.json");
  for (size_t i = 0; i < 2; ++i) {
    auto solo = run_trial(i == 0 ? bad : bad2, torch::kCPU, {}, "test.json");
    EXPECT_EQ(both[i].status, "diverged");
    EXPECT_EQ(both[i].summary["steps"], solo.summary["steps"]) << i;
    EXPECT_EQ(both[i].summary["epochs"], solo.summary["epochs"]) << i;
  }
}

TEST(Population, AMemberWhoseLastUpdateDivergesIsDivergedAsAlone) {
  // The last step's loss is taken before its update; the update sends the weights to Inf, which
  // only the evaluation after it shows.
  json ok = trial(R"({"seed": 0, "train": {"steps": 1}})");
  json blow = trial(R"({"seed": 1, "train": {"steps": 1}, "optim": {"lr": 1e30}})");
  auto outs = run_population({ok, blow}, torch::kCPU, std::vector<TrainHooks>(2), "test.json");
  auto solo = run_trial(blow, torch::kCPU, {}, "test.json");
  ASSERT_EQ(solo.status, "diverged");
  EXPECT_EQ(outs[1].status, "diverged");
  EXPECT_EQ(outs[1].diverged_step, solo.diverged_step);
  for (const char* key : {"steps", "epochs", "samples", "diverged_step"})
    EXPECT_EQ(outs[1].summary[key], solo.summary[key]) << key;
  // Found by the evaluation after the update, with the loss that was not finite there.
  for (const auto* out : {&outs[1], &solo}) {
    EXPECT_EQ(out->summary.value("diverged_at_evaluation", false), true) << out->summary;
    ASSERT_TRUE(out->summary.contains("diverged_loss")) << out->summary;
    EXPECT_TRUE(out->summary["diverged_loss"].is_string()) << out->summary["diverged_loss"];
  }
  EXPECT_EQ(outs[1].summary["diverged_loss"], solo.summary["diverged_loss"]);
  EXPECT_EQ(outs[0].status, "finished");
}

TEST(Population, AMemberWhoseLastUpdateCrossesTheBoundIsDivergedAsAlone) {
  // LR 10: the steps' losses (taken before their updates) stay under 100; the last update sends
  // the training loss to about 700, finite, which only the evaluation after it shows. It finished
  // (train.divergence_loss promises a diverged run), where a run one step longer diverged.
  const std::string patch =
      R"({"seed": 0, "optim": {"lr": 10}, "train": {"steps": 3, "eval_every_steps": 1,
          "divergence_loss": %s}})";
  char buf[512];
  std::snprintf(buf, sizeof buf, patch.c_str(), "1e30");
  const auto unbounded = run_trial(trial(buf), torch::kCPU, {}, "test.json");
  ASSERT_EQ(unbounded.status, "finished");
  ASSERT_GT(unbounded.summary["train_loss"].get<double>(), 100.0) << unbounded.summary;
  ASSERT_LT(unbounded.summary["train_loss_running"].get<double>() * 3, 100.0) << unbounded.summary;

  std::snprintf(buf, sizeof buf, patch.c_str(), "100");
  const json over = trial(buf);
  Stream alone;
  auto solo = run_trial(over, torch::kCPU, alone.hooks(), "test.json");
  const json ok =
      trial(R"({"seed": 1, "train": {"steps": 3, "eval_every_steps": 1, "divergence_loss": 100}})");
  auto outs = run_population({ok, over}, torch::kCPU, std::vector<TrainHooks>(2), "test.json");
  ASSERT_EQ(alone.evals.size(), 3u);
  for (const auto* out : {&solo, &outs[1]}) {
    EXPECT_EQ(out->status, "diverged") << out->summary;
    EXPECT_EQ(out->diverged_step, 3);
    EXPECT_EQ(out->summary.value("diverged_at_evaluation", false), true) << out->summary;
    // The loss over the bound, a number; the summary the evaluation before (step 2's), not the
    // accuracy of the diverged weights.
    EXPECT_NEAR(out->summary["diverged_loss"].get<double>(),
                unbounded.summary["train_loss"].get<double>(), 1e-3 * 700);
    EXPECT_EQ(out->summary["test_acc"].get<double>(), value(alone.evals[1], "test_acc"));
    EXPECT_EQ(out->summary["train_loss"].get<double>(), value(alone.evals[1], "train_loss"));
  }
  EXPECT_EQ(outs[0].status, "finished");
}

TEST(Population, ClassImbalanceOnASplitDrawnBySeedTrainsAlone) {
  // Blobs' labels are drawn by seed, so a share of each class leaves sets of other sizes.
  const json blobs = trial(R"({"data": {"imbalance": 0.5}})");
  EXPECT_EQ(population_incompatibility(blobs),
            "data.imbalance < 1 on a split drawn by seed (its size differs between seeds)");
  json a = blobs, b = blobs;
  b["seed"] = 1;
  EXPECT_EQ(group_population({a, b}, 16).size(), 2u);
  json images = trial(testing::kTinyMnistData);  // the file's classes: one size for every seed
  images["data"]["imbalance"] = 0.5;
  EXPECT_EQ(population_incompatibility(images), "");
  images["data"]["validation"] = 30;
  EXPECT_NE(population_incompatibility(images), "");
}

TEST(Population, OtherLossesClassWeightsAndFixedOrdersTrainAlone) {
  // The stacked step trains unweighted cross-entropy on a fresh permutation per epoch.
  EXPECT_EQ(population_incompatibility(trial(R"({"train": {"loss": "cross_entropy"}})")), "");
  EXPECT_EQ(population_incompatibility(trial(R"({"train": {"loss": "mse_softmax"}})")),
            "train.loss is mse_softmax");
  EXPECT_EQ(population_incompatibility(trial(R"({"train": {"class_weights": "balanced"}})")),
            "train.class_weights is set");
  EXPECT_EQ(population_incompatibility(trial(R"({"train": {"order": "fixed"}})")),
            "train.order is not reshuffle");
}

TEST(Population, GroupsCompatibleTrialsAndLeavesTheOthersAlone) {
  std::vector<json> cfgs = {trial(R"({"seed": 0})"),
                            trial(R"({"seed": 1})"),
                            trial(R"({"optim": {"lr": 0.05}})"),
                            trial(R"({"model": {"dropout": 0.2}})"),  // incompatible
                            trial(R"({"train": {"batch_size": 64}})"),  // another group
                            trial(R"({"seed": 2, "train": {"threads": 1}})"),
                            trial(R"({"seed": 3, "train": {"tf32": true}})")};  // another group
  using Units = std::vector<std::vector<size_t>>;
  EXPECT_EQ(group_population(cfgs, 16), (Units{{0, 1, 2, 5}, {3}, {4}, {6}}));
  EXPECT_EQ(group_population(cfgs, 2), (Units{{0, 1}, {2, 5}, {3}, {4}, {6}}));
  EXPECT_EQ(group_population(cfgs, 0), (Units{{0}, {1}, {2}, {3}, {4}, {5}, {6}}));
  EXPECT_EQ(population_incompatibility(cfgs[3]), "model.dropout > 0");
  EXPECT_EQ(population_incompatibility(trial(R"({"measure": {"hessian_top": true}})")), "");
  EXPECT_EQ(population_incompatibility(trial(R"({"measure": {"interpolate_batch": 80}})")),
            "measure.interpolate_batch is set (a partner trains at another batch size)");
  EXPECT_EQ(population_incompatibility(cfgs[0]), "");
  EXPECT_THROW(run_population({cfgs[0], cfgs[4]}, torch::kCPU, std::vector<TrainHooks>(2), "t.json"),
               UserError);
}

TEST(Population, TheKeyTakesAutoOffOrACountAndStaysOutOfTheTrialHash) {
  json cfg = trial("{}");
  EXPECT_EQ(cfg["train"]["population"], "auto");
  EXPECT_EQ(population_limit(cfg, false), 16);
  cfg["train"]["population"] = "off";
  EXPECT_EQ(population_limit(cfg, true), 0);
  json doc = {{"data", {{"name", "blobs"}}}, {"train", {{"population", 8}}}};
  json eight = expand_trials(resolve_config_json(doc, "t.json", "", {})).at(0).config;
  EXPECT_EQ(eight["train"]["population"], "8");
  EXPECT_EQ(population_limit(eight, false), 8);
  eight["train"]["population"] = "4294967297";  // beyond int: no limit, not 1
  EXPECT_EQ(population_limit(eight, false), INT32_MAX);
  eight["train"]["population"] = "auto";
  EXPECT_EQ(population_limit(eight, false), 16);
  EXPECT_EQ(population_limit(eight, true), 64);
  EXPECT_EQ(trial_hash(eight), trial_hash(expand_trials(resolve_config_json(
                                   {{"data", {{"name", "blobs"}}}}, "t.json", "", {})).at(0).config));
  doc["train"]["population"] = "many";
  try {
    resolve_config_json(doc, "t.json", "", {});
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/train/population"), std::string::npos) << e.what();
  }
}

TEST(Population, APopulationTooLargeForTheHostsMemoryIsRefusedWithWhatFits) {
  // Fashion-MNIST members' data sets (189 MB each) on a 23 GB machine: 64 fit, 128 do not.
  const int64_t each = 189'000'000, machine = 23'000'000'000;
  EXPECT_EQ(population_memory_problem(64, 64, each, machine), "");
  const std::string why = population_memory_problem(128, 128, each, machine);
  EXPECT_NE(why.find("128 members with 128 data sets"), std::string::npos) << why;
  EXPECT_NE(why.find("at most 84 members fit"), std::string::npos) << why;  // 23 GB / 265 MB - 2
  EXPECT_EQ(population_memory_problem(128, 1, each, machine), "");          // one data set, shared
  EXPECT_EQ(population_memory_problem(128, 128, each, -1), "");  // memory unknown: no guard
  // A GPU's stacked copy is allocated whole beside the data sets: 2.4x each, not 1.4x.
  const std::string gpu = population_memory_problem(64, 64, each, 23'000'000'000, true);
  EXPECT_NE(gpu.find("of GPU memory"), std::string::npos) << gpu;
  EXPECT_NE(gpu.find("at most 48 members fit"), std::string::npos) << gpu;  // 23 GB / 454 MB - 2
  EXPECT_EQ(population_members_fitting(each, 23'000'000'000, true), 48);
  EXPECT_EQ(gpu_free_memory_bytes(0) > 0, torch::cuda::is_available());
  EXPECT_GT(available_memory_bytes(), 0);                        // Linux says how much
}

TEST(Population, AutoOnACpuTakesNoMoreMembersThanTheirDataSetsFitInMemory) {
  // A validation split drawn by seed gives every member a data set of its own.
  testing::TempDir dir;
  testing::write_tiny_mnist(dir, 300, 60);
  json cfg = trial(testing::kTinyMnistData);
  cfg["data"]["path"] = dir.path();
  cfg["data"]["validation"] = 50;
  const Dataset d = load_dataset(cfg["data"], 0, torch::kCPU, "t.json");
  int64_t bytes = 0;
  for (const auto* t : {&d.x_train, &d.y_train, &d.x_val, &d.y_val, &d.x_test, &d.y_test})
    bytes += int64_t(t->nbytes());
  const int64_t six = 6 * bytes * 7 / 5;  // four members beside the two cached data sets
  std::string why;
  EXPECT_EQ(population_limit(cfg, torch::kCPU, 1, six, "t.json", &why), 4);
  EXPECT_NE(why.find("auto takes 4 member(s) at most here"), std::string::npos) << why;
  EXPECT_EQ(population_limit(cfg, torch::kCPU, 2, six, "t.json"), 1);  // two at once: 1 each
  why.clear();
  EXPECT_EQ(population_limit(cfg, torch::kCPU, 1, 1000 * six, "t.json", &why), 16);
  EXPECT_EQ(why, "");
  EXPECT_EQ(population_limit(cfg, torch::kCPU, 1, -1, "t.json"), 16);  // memory unknown
  json eight = cfg;  // a count is the user's: too many is refused when loading, with what fits
  eight["train"]["population"] = "8";
  EXPECT_EQ(population_limit(eight, torch::kCPU, 1, six, "t.json"), 8);
  json shared = cfg;  // one data set for every seed: memory does not grow with the members
  shared["data"]["validation"] = 0;
  EXPECT_EQ(population_limit(shared, torch::kCPU, 1, six, "t.json"), 16);
  // A sweep whose first trials share one data set and whose later ones do not: the later ones
  // decide (the first one's data said "no limit").
  EXPECT_EQ(population_limit({&shared, &shared, &cfg}, torch::kCPU, 1, six, "t.json"), 4);
  EXPECT_EQ(population_limit({&shared, &shared}, torch::kCPU, 1, six, "t.json"), 16);
  // Of the per-seed data sets the largest decides: a small subset first set the limit for the
  // whole set after it.
  json small = cfg;
  small["data"]["train_subset"] = 100;
  EXPECT_EQ(population_limit({&small, &cfg}, torch::kCPU, 1, six, "t.json"), 4);
  EXPECT_GT(population_limit({&small}, torch::kCPU, 1, six, "t.json"), 4);
  EXPECT_EQ(population_members_fitting(bytes, six), 4);
}

}  // namespace
}  // namespace empiric
