// Batched populations: each member trains as it would alone (to float rounding), diverged members
// do not disturb the others, and sweeps group exactly the trials that may train together.
#include "train/population.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/config.h"
#include "core/errors.h"

namespace empiric {
namespace {

json trial(const std::string& patch) {
  json doc = json::parse(
      R"({"data": {"name": "blobs", "n_train": 512, "n_test": 256, "classes": 4, "dim": 5, "noise": 1.0},
    "model": {"name": "mlp", "widths": [32, 16]}, "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "train": {"epochs": 3, "batch_size": 40, "checkpoint": false}})");
  doc.merge_patch(json::parse(patch));
  return expand_trials(resolve_config_json(doc, "test.json", "", {})).at(0).config;
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
    EXPECT_EQ(outs[i].summary["steps"], solo.summary["steps"]) << i;
    EXPECT_EQ(outs[i].summary["population"], int64_t(cfgs.size()));
    ASSERT_EQ(together[i].evals.size(), alone[i].evals.size()) << i;
    for (size_t e = 0; e < alone[i].evals.size(); ++e)
      for (const char* key : {"train_loss", "test_loss", "train_acc", "test_acc", "lr",
                              "train_loss_running", "val_loss"}) {
        const double a = value(alone[i].evals[e], key), b = value(together[i].evals[e], key);
        if (std::isnan(a)) {
          EXPECT_TRUE(std::isnan(b)) << key;
          continue;
        }
        EXPECT_NEAR(b, a, 2e-4 * std::max(1.0, std::abs(a))) << "member " << i << " epoch " << e << " " << key;
      }
    EXPECT_NEAR(outs[i].summary["weight_norm"].get<double>(), solo.summary["weight_norm"].get<double>(),
                1e-4 * solo.summary["weight_norm"].get<double>());
  }
}

TEST(Population, SgdMembersEqualTheirSoloRuns) {
  expect_members_equal_solo({trial(R"({"seed": 0})"),
                             trial(R"({"seed": 1, "optim": {"lr": 0.05}})"),
                             trial(R"({"seed": 2, "optim": {"weight_decay": 0.001, "momentum": 0.5}})")});
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

TEST(Population, ADivergedMemberIsRecordedAndTheOthersGoOn) {
  json ok = trial(R"({"seed": 0})"), bad = trial(R"({"seed": 1, "optim": {"lr": 1000.0}})");
  std::vector<TrainHooks> hooks(2);
  auto outs = run_population({ok, bad}, torch::kCPU, hooks, "test.json");
  EXPECT_EQ(outs[1].status, "diverged");
  auto solo_bad = run_trial(bad, torch::kCPU, {}, "test.json");
  EXPECT_EQ(outs[1].diverged_step, solo_bad.diverged_step);
  auto solo_ok = run_trial(ok, torch::kCPU, {}, "test.json");
  EXPECT_EQ(outs[0].status, "finished");
  EXPECT_NEAR(outs[0].summary["train_loss"].get<double>(), solo_ok.summary["train_loss"].get<double>(), 1e-4);
}

TEST(Population, GroupsCompatibleTrialsAndLeavesTheOthersAlone) {
  std::vector<json> cfgs = {trial(R"({"seed": 0})"),
                            trial(R"({"seed": 1})"),
                            trial(R"({"optim": {"lr": 0.05}})"),
                            trial(R"({"model": {"dropout": 0.2}})"),  // incompatible
                            trial(R"({"train": {"batch_size": 64}})"),  // another group
                            trial(R"({"seed": 2, "train": {"threads": 1}})")};
  using Units = std::vector<std::vector<size_t>>;
  EXPECT_EQ(group_population(cfgs, 16), (Units{{0, 1, 2, 5}, {3}, {4}}));
  EXPECT_EQ(group_population(cfgs, 2), (Units{{0, 1}, {2, 5}, {3}, {4}}));
  EXPECT_EQ(group_population(cfgs, 0), (Units{{0}, {1}, {2}, {3}, {4}, {5}}));
  EXPECT_EQ(population_incompatibility(cfgs[3]), "model.dropout > 0");
  EXPECT_EQ(population_incompatibility(trial(R"({"measure": {"hessian_top": true}})")),
            "measure.hessian_top is on");
  EXPECT_EQ(population_incompatibility(cfgs[0]), "");
  EXPECT_THROW(run_population({cfgs[0], cfgs[4]}, torch::kCPU, std::vector<TrainHooks>(2), "t.json"),
               UserError);
}

TEST(Population, TheKeyTakesAutoOffOrACountAndStaysOutOfTheTrialHash) {
  json cfg = trial("{}");
  EXPECT_EQ(cfg["train"]["population"], "off");
  EXPECT_EQ(population_limit(cfg, false), 0);
  json doc = {{"data", {{"name", "blobs"}}}, {"train", {{"population", 8}}}};
  json eight = expand_trials(resolve_config_json(doc, "t.json", "", {})).at(0).config;
  EXPECT_EQ(eight["train"]["population"], "8");
  EXPECT_EQ(population_limit(eight, false), 8);
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

}  // namespace
}  // namespace empiric
