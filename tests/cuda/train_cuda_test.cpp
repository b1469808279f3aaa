// The trainer on a GPU: the same trial as on the CPU, to float tolerance. Skips without a GPU.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "core/config.h"
#include "data/datasets.h"
#include "experiments/lottery.h"
#include "graph/graph.h"
#include "support/temp_dir.h"
#include "support/tiny_idx.h"
#include "support/trial_config.h"
#include "train/population.h"
#include "train/trainer.h"

namespace empiric {
namespace {

json trial_config(const std::string& patch) {
  static const char* base =
      R"({"data": {"name": "blobs", "n_train": 1024, "n_test": 512, "classes": 4, "dim": 8, "noise": 1.5},
        "model": {"name": "mlp", "widths": [64, 64]}, "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "train": {"epochs": 5, "batch_size": 64, "checkpoint": false}})";
  return testing::trial_from(base, patch, "cuda_test.json");
}

#define SKIP_WITHOUT_GPU() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA GPU visible to torch"

TEST(CudaTrainer, MatchesTheCpuRunToTolerance) {
  SKIP_WITHOUT_GPU();
  json cfg = trial_config("{}");
  auto cpu = run_trial(cfg, torch::kCPU, {}, "cuda_test.json");
  auto gpu = run_trial(cfg, torch::Device(torch::kCUDA, 0), {}, "cuda_test.json");
  ASSERT_EQ(gpu.status, "finished");
  // Same data, init and order; only the float arithmetic differs (cuBLAS vs MKL summation order).
  EXPECT_NEAR(gpu.summary["train_loss"].get<double>(), cpu.summary["train_loss"].get<double>(),
              2e-2);
  EXPECT_NEAR(gpu.summary["test_acc"].get<double>(), cpu.summary["test_acc"].get<double>(), 2e-2);
}

TEST(CudaTrainer, OtherLossesClassWeightsAndOrdersMatchTheCpuRun) {
  // The class weights and a fixed order live on the training device; the step (captured as a
  // CUDA graph) takes the configured loss and records it unweighted.
  SKIP_WITHOUT_GPU();
  for (
      const char* patch :
      {R"({"train": {"loss": "mse_softmax", "class_weights": "balanced", "order": "by_class"}})",
       R"({"train": {"loss": "cross_entropy_on_softmax", "order": "fixed"}})",
       R"({"train": {"loss": "mse_logits", "class_weights": "balanced"}, "data": {"imbalance": 0.3}})"}) {
    json cfg = trial_config(patch);
    auto cpu = run_trial(cfg, torch::kCPU, {}, "cuda_test.json");
    auto gpu = run_trial(cfg, torch::Device(torch::kCUDA, 0), {}, "cuda_test.json");
    ASSERT_EQ(gpu.status, cpu.status) << patch;
    EXPECT_EQ(gpu.summary["cuda_graphs"], "captured") << patch;
    EXPECT_NEAR(gpu.summary["train_loss"].get<double>(), cpu.summary["train_loss"].get<double>(),
                2e-2)
        << patch;
    EXPECT_NEAR(gpu.summary["test_acc"].get<double>(), cpu.summary["test_acc"].get<double>(), 2e-2)
        << patch;
    EXPECT_EQ(gpu.summary["chance_loss"], cpu.summary["chance_loss"]) << patch;
  }
}

TEST(CudaTrainer, NewMeasuresMatchTheCpuRun) {
  // Dropout at test time draws its masks on the device; noisy test labels and the other measures
  // that read logits take them to the host (the same flips as on a CPU).
  SKIP_WITHOUT_GPU();
  json cfg = trial_config(
      R"({"model": {"dropout": 0.3}, "measure": {"dropout_test": true, "noisy_test_labels": 0.2,
          "calibration": true, "per_class": true}})");
  auto cpu = run_trial(cfg, torch::kCPU, {}, "cuda_test.json");
  auto gpu = run_trial(cfg, torch::Device(torch::kCUDA, 0), {}, "cuda_test.json");
  ASSERT_EQ(gpu.status, "finished");
  for (const char* m :
       {"test_acc_mc", "test_acc_noisy", "test_acc_corrected", "test_ece", "test_balanced_acc"})
    EXPECT_NEAR(gpu.measures[m].get<double>(), cpu.measures[m].get<double>(), 5e-2) << m;
}

TEST(CudaTrainer, Tf32MatmulsTrainToTheFloat32ResultAndLeaveTheModeAsTheyFoundIt) {
  SKIP_WITHOUT_GPU();
  const torch::Device gpu(torch::kCUDA, 0);
  const bool before = at::globalContext().allowTF32CuBLAS();
  auto ieee = run_trial(trial_config("{}"), gpu, {}, "cuda_test.json");
  bool during = false;
  TrainHooks hooks;
  hooks.on_progress = [&](long long, long long) { during = at::globalContext().allowTF32CuBLAS(); };
  auto tf32 = run_trial(trial_config(R"({"train": {"tf32": true}})"), gpu, hooks, "cuda_test.json");
  EXPECT_TRUE(during);
  EXPECT_EQ(at::globalContext().allowTF32CuBLAS(), before);
  ASSERT_EQ(tf32.status, "finished");
  EXPECT_NEAR(tf32.summary["test_acc"].get<double>(), ieee.summary["test_acc"].get<double>(), 2e-2);
}

TEST(CudaTrainer, PruningMasksHoldThroughFusedSgdAndAdamSteps) {
  SKIP_WITHOUT_GPU();
  const torch::Device gpu(torch::kCUDA, 0);
  for (const char* optim : {R"({"optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9}})",
                            R"({"optim": {"name": "adam", "lr": 0.003, "momentum": null}})"}) {
    json cfg = trial_config(optim);
    torch::manual_seed(0);
    Dataset data = load_dataset(cfg["data"], 0, gpu, "cuda_test.json");
    Net model = make_model(cfg["model"], data.input_shape, data.outputs);
    model->to(gpu);
    TrainHooks hooks;
    hooks.masks = prunable_masks_like(model);
    for (auto& m : hooks.masks)
      if (m.defined()) m = (torch::rand(m.sizes(), m.options()) > 0.6).to(torch::kFloat32);
    auto out = train_model(cfg, data, model, gpu, hooks);
    ASSERT_EQ(out.status, "finished");
    auto params = model->parameters();
    for (size_t i = 0; i < params.size(); ++i)
      if (hooks.masks[i].defined()) {
        EXPECT_EQ(params[i].masked_select(hooks.masks[i] == 0).abs().max().item<float>(), 0.0f)
            << optim << " parameter " << i;
        EXPECT_GT(params[i].masked_select(hooks.masks[i] == 1).abs().min().item<float>(), 0.0f);
      }
  }
}

TEST(CudaTrainer, DivergenceIsDetectedOnTheDevice) {
  SKIP_WITHOUT_GPU();
  auto out = run_trial(trial_config(R"({"optim": {"lr": 1e6}})"), torch::Device(torch::kCUDA, 0),
                       {}, "cuda_test.json");
  EXPECT_EQ(out.status, "diverged");
  EXPECT_GE(out.diverged_step, 0);
  EXPECT_LT(out.diverged_step, 16);  // one epoch: the first bad step is kept on the device
}

TEST(CudaTrainer, AKilledTrialResumesOnTheGpuToTheSameResult) {
  SKIP_WITHOUT_GPU();
  const torch::Device gpu(torch::kCUDA, 0);
  json cfg =
      trial_config(R"({"model": {"dropout": 0.3}})");  // dropout draws from the CUDA generator
  auto whole = run_trial(cfg, gpu, {}, "cuda_test.json");
  std::string ckpt = (std::filesystem::temp_directory_path() / "empiric-cuda-resume.pt").string();
  std::filesystem::remove(ckpt);
  TrainHooks dying;
  dying.checkpoint_path = ckpt;
  dying.on_eval = [](const Evaluation& e) {
    if (e.epoch == 4) throw std::runtime_error("killed");
  };
  EXPECT_THROW(run_trial(cfg, gpu, dying, "cuda_test.json"), std::runtime_error);
  TrainHooks resumed;
  resumed.checkpoint_path = ckpt;
  auto out = run_trial(cfg, gpu, resumed, "cuda_test.json");
  EXPECT_EQ(out.resumed_from_epoch, 3);
  EXPECT_NEAR(out.summary["train_loss"].get<double>(), whole.summary["train_loss"].get<double>(),
              1e-6);
  EXPECT_EQ(out.summary["test_acc"], whole.summary["test_acc"]);
}

// Trains cfg's model from its seed on the GPU; returns the outcome and the final weights.
std::pair<TrainOutcome, std::vector<torch::Tensor>> train_on_gpu(const json& cfg) {
  const torch::Device gpu(torch::kCUDA, 0);
  torch::manual_seed(cfg["seed"].get<int64_t>());
  Dataset data = load_dataset(cfg["data"], cfg["seed"].get<int64_t>(), gpu, "cuda_test.json");
  Net model = make_model(cfg["model"], data.input_shape, data.outputs);
  model->to(gpu);
  auto out = train_model(cfg, data, model, gpu, {});
  std::vector<torch::Tensor> weights;
  for (const auto& p : model->parameters()) weights.push_back(p.detach().cpu());
  return {out, weights};
}

TEST(CudaGraphs, ReplayedStepsGiveTheWeightsOfEagerStepsFor50Steps) {
  SKIP_WITHOUT_GPU();
  // SGD with momentum over 1000 examples (the last batch of each epoch, 40, runs eagerly between
  // replays); Adam with a cosine LR (device scalars change every step) and dropout (the CUDA
  // generator's offsets advance in the replays as in eager steps).
  for (const char* patch :
       {R"({"data": {"n_train": 1000}, "train": {"steps": 50, "eval_every_steps": 20}})",
        R"({"optim": {"name": "adam", "lr": 0.003, "momentum": null}, "model": {"dropout": 0.2},
            "schedule": {"name": "cosine"}, "train": {"steps": 50}})"}) {
    json graphed = trial_config(patch), eager = graphed;
    eager["train"]["cuda_graphs"] = "off";
    auto [g_out, g_weights] = train_on_gpu(graphed);
    auto [e_out, e_weights] = train_on_gpu(eager);
    ASSERT_EQ(g_out.status, "finished") << patch;
    EXPECT_EQ(g_out.summary["cuda_graphs"], "captured") << patch;
    EXPECT_EQ(e_out.summary["cuda_graphs"], "train.cuda_graphs is off") << patch;
    EXPECT_EQ(g_out.summary["steps"], 50);
    // Captured once after two eager steps; every later full batch replayed (an epoch's short
    // last batch runs eagerly).
    EXPECT_EQ(g_out.summary["cuda_graph_captures"], 1) << patch;
    EXPECT_GE(g_out.summary["cuda_graph_replays"].get<int>(), 45) << patch;
    EXPECT_EQ(e_out.summary["cuda_graph_replays"], 0) << patch;
    ASSERT_EQ(g_weights.size(), e_weights.size());
    for (size_t i = 0; i < g_weights.size(); ++i)
      EXPECT_LE((g_weights[i] - e_weights[i]).abs().max().item<double>(), 1e-5)
          << patch << " parameter " << i;
    // Evaluations replay their own graphs: the same numbers as eager passes.
    EXPECT_NEAR(g_out.summary["test_loss"].get<double>(), e_out.summary["test_loss"].get<double>(), 1e-5);
    EXPECT_NEAR(g_out.summary["train_acc"].get<double>(), e_out.summary["train_acc"].get<double>(), 1e-3);
    EXPECT_NEAR(g_out.summary["train_loss_running"].get<double>(),
                e_out.summary["train_loss_running"].get<double>(), 1e-5);
  }
}

TEST(CudaGraphs, ConfigsThatCannotBeCapturedTrainEagerlyAndSayWhy) {
  SKIP_WITHOUT_GPU();
  auto [out, weights] = train_on_gpu(trial_config(R"({"optim": {"clip_norm": 1.0}, "train": {"steps": 20}})"));
  EXPECT_EQ(out.status, "finished");
  EXPECT_EQ(out.summary["cuda_graphs"], "clipping reads the norm on the host");
}

// A capture that breaks (a host sync inside it) must leave nothing behind: eager random ops (torch's
// default CUDA generator is put in capture mode when a capture begins), the allocator, and later
// captures all work as if it had never been tried.
TEST(CudaGraphs, ABrokenCaptureLeavesEagerDropoutAndLaterCapturesWorking) {
  SKIP_WITHOUT_GPU();
  kernels::StreamGuard stream(0);
  const auto x = torch::ones({4096}, torch::Device(torch::kCUDA, 0));
  kernels::Graph broken;
  std::string why;
  EXPECT_FALSE(broken.capture(
      [&] { (void)torch::dropout(x, 0.5, true).sum().item<float>(); }, &why));
  EXPECT_FALSE(broken.captured());
  EXPECT_FALSE(why.empty());

  const int64_t zeros = torch::dropout(x, 0.5, true).eq(0).sum().item<int64_t>();
  EXPECT_GT(zeros, 1500);  // about half of 4096
  EXPECT_LT(zeros, 2600);

  auto out = torch::zeros_like(x);
  kernels::Graph graph;
  ASSERT_TRUE(graph.capture([&] { out.copy_(torch::dropout(x, 0.5, true)); }, &why)) << why;
  graph.replay();
  const auto first = out.clone();
  graph.replay();
  EXPECT_FALSE(torch::equal(first, out));  // each replay draws a fresh mask
  EXPECT_GT(first.eq(0).sum().item<int64_t>(), 1500);
}

// Trains cfgs as one population with graphs and without; the members must agree.
void expect_replay_matches_eager(std::vector<json> graphed) {
  const torch::Device gpu(torch::kCUDA, 0);
  std::vector<json> eager = graphed;
  for (auto& cfg : eager) cfg["train"]["cuda_graphs"] = "off";
  const size_t n = graphed.size();
  auto g = run_population(graphed, gpu, std::vector<TrainHooks>(n), "cuda_test.json");
  auto e = run_population(eager, gpu, std::vector<TrainHooks>(n), "cuda_test.json");
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(g[i].status, "finished");
    EXPECT_EQ(g[i].summary["cuda_graphs"], "captured");
    EXPECT_EQ(g[i].summary["cuda_graph_captures"], 1);
    // 5 epochs of 16 steps: all but the first two and each epoch's short last batch replayed.
    EXPECT_GE(g[i].summary["cuda_graph_replays"].get<int>(), 70) << "member " << i;
    EXPECT_EQ(e[i].summary["cuda_graphs"], "train.cuda_graphs is off");
    EXPECT_EQ(e[i].summary["cuda_graph_replays"], 0);
    for (const char* m : {"train_loss", "test_loss", "weight_norm"})
      EXPECT_NEAR(g[i].summary[m].get<double>(), e[i].summary[m].get<double>(), 1e-5)
          << "member " << i << " " << m;
  }
}

TEST(CudaGraphs, APopulationReplaysItsStepAndMatchesItsEagerRun) {
  SKIP_WITHOUT_GPU();
  // Three seeds stepping alike (Adam, cosine LR: the device scalars change every step), 1000
  // examples (the last batch of each epoch, 40, runs eagerly between replays).
  std::vector<json> cfgs;
  for (int seed = 0; seed < 3; ++seed) {
    json cfg = trial_config(R"({"optim": {"name": "adam", "lr": 0.003, "momentum": null},
        "schedule": {"name": "cosine"}, "data": {"n_train": 1000}})");
    cfg["seed"] = seed;
    cfgs.push_back(cfg);
  }
  expect_replay_matches_eager(cfgs);
}

TEST(CudaGraphs, APopulationWhoseMembersStepApartReplaysItsStepWithTheirRows) {
  SKIP_WITHOUT_GPU();
  // Each member's LR (and weight decay, momentum) in a row the captured step computes from the
  // schedule's factor: AdamW under warmup + cosine, SGD under one-cycle.
  std::vector<json> adamw, sgd;
  const double lrs[] = {0.001, 0.003, 0.01};
  for (int i = 0; i < 3; ++i) {
    json a = trial_config(R"({"optim": {"name": "adamw", "momentum": null},
        "schedule": {"name": "cosine", "warmup_epochs": 1}, "data": {"n_train": 1000}})");
    a["seed"] = i, a["optim"]["lr"] = lrs[i], a["optim"]["weight_decay"] = 0.05 * i;
    adamw.push_back(a);
    json s = trial_config(R"({"optim": {"name": "sgd"}, "schedule": {"name": "onecycle"},
        "data": {"n_train": 1000}})");
    s["seed"] = i, s["optim"]["lr"] = 10 * lrs[i], s["optim"]["momentum"] = 0.45 * i;
    sgd.push_back(s);
  }
  expect_replay_matches_eager(adamw);
  expect_replay_matches_eager(sgd);
}

TEST(CudaGraphs, APopulationOfSeedsIsCapturedAgainWithRowsWhenAMemberDiverges) {
  SKIP_WITHOUT_GPU();
  // Three seeds stepping alike are captured with one LR after two steps; member 2 (weights 1000x
  // too large) has diverged from its first step, which the GPU's check (every 25 steps and at each
  // epoch's end) finds at step 16, the first epoch's end: it is frozen, the members step apart,
  // and the step is captured again with rows.
  std::vector<json> cfgs;
  for (int seed = 0; seed < 3; ++seed) {
    json cfg = trial_config(R"({"data": {"n_train": 1000}})");
    cfg["seed"] = seed;
    if (seed == 2) cfg["model"]["init_scale"] = 1000.0;
    cfgs.push_back(cfg);
  }
  std::vector<json> eager = cfgs;
  for (auto& cfg : eager) cfg["train"]["cuda_graphs"] = "off";
  const torch::Device gpu(torch::kCUDA, 0);
  auto g = run_population(cfgs, gpu, std::vector<TrainHooks>(3), "cuda_test.json");
  auto e = run_population(eager, gpu, std::vector<TrainHooks>(3), "cuda_test.json");
  ASSERT_EQ(g[2].status, "diverged");
  EXPECT_EQ(g[2].diverged_step, e[2].diverged_step);
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_EQ(g[i].status, "finished");
    EXPECT_EQ(g[i].summary["cuda_graphs"], "captured");
    EXPECT_EQ(g[i].summary["cuda_graph_captures"], 2) << "member " << i;  // alike, then with rows
    EXPECT_GE(g[i].summary["cuda_graph_replays"].get<int>(), 70) << "member " << i;
    for (const char* m : {"train_loss", "test_loss", "weight_norm"})
      EXPECT_NEAR(g[i].summary[m].get<double>(), e[i].summary[m].get<double>(), 1e-5)
          << "member " << i << " " << m;
  }
}

// Trains cfgs as one population on the GPU (its step captured) and each alone there; the
// summaries' `metrics` agree to 1e-3 (relative where above 1).
void expect_captured_members_equal_solo(const std::vector<json>& cfgs,
                                        const std::vector<const char*>& metrics) {
  const torch::Device gpu(torch::kCUDA, 0);
  auto outs = run_population(cfgs, gpu, std::vector<TrainHooks>(cfgs.size()), "cuda_test.json");
  for (size_t i = 0; i < cfgs.size(); ++i) {
    auto solo = run_trial(cfgs[i], gpu, {}, "cuda_test.json");
    ASSERT_EQ(outs[i].status, "finished");
    EXPECT_EQ(outs[i].summary["cuda_graphs"], "captured");
    for (const char* m : metrics)
      EXPECT_NEAR(outs[i].summary[m].get<double>(), solo.summary[m].get<double>(),
                  1e-3 * std::max(1.0, solo.summary[m].get<double>()))
          << "member " << i << " " << m;
  }
}

TEST(CudaPopulation, MembersEqualTheirSoloGpuRunsAndADivergedOneIsFound) {
  SKIP_WITHOUT_GPU();
  const torch::Device gpu(torch::kCUDA, 0);
  std::vector<json> cfgs = {trial_config(R"({"seed": 0})"), trial_config(R"({"seed": 1, "optim": {"lr": 0.02}})"),
                            trial_config(R"({"seed": 2, "optim": {"lr": 1000.0}})")};
  auto outs = run_population(cfgs, gpu, std::vector<TrainHooks>(cfgs.size()), "cuda_test.json");
  for (size_t i = 0; i < 2; ++i) {
    auto solo = run_trial(cfgs[i], gpu, {}, "cuda_test.json");
    ASSERT_EQ(outs[i].status, "finished");
    EXPECT_NEAR(outs[i].summary["train_loss"].get<double>(), solo.summary["train_loss"].get<double>(), 1e-3);
    EXPECT_NEAR(outs[i].summary["test_acc"].get<double>(), solo.summary["test_acc"].get<double>(), 1e-2);
  }
  // Checked every 25 steps on a GPU, the divergence step is still the exact one.
  auto bad = run_trial(cfgs[2], gpu, {}, "cuda_test.json");
  EXPECT_EQ(outs[2].status, "diverged");
  EXPECT_EQ(outs[2].diverged_step, bad.diverged_step);
}

TEST(CudaPopulation, MembersStopAtTheTrainingLossTheirSoloGpuRunsStopAt) {
  SKIP_WITHOUT_GPU();
  // On the CPU these three stop at epochs 2, 3 and 9 of 10 (training loss 0.025, 0.052, 0.084;
  // the epoch before each above 0.1 by 8 % or more): the captured step is captured again with
  // the members' rows when the first one is frozen.
  const torch::Device gpu(torch::kCUDA, 0);
  std::vector<json> cfgs;
  for (double lr : {0.05, 0.02, 0.005}) {
    json cfg = trial_config(R"({"train": {"epochs": 10, "stop_train_loss": 0.1}})");
    cfg["optim"]["lr"] = lr;
    cfgs.push_back(cfg);
  }
  auto outs = run_population(cfgs, gpu, std::vector<TrainHooks>(cfgs.size()), "cuda_test.json");
  for (size_t i = 0; i < cfgs.size(); ++i) {
    auto solo = run_trial(cfgs[i], gpu, {}, "cuda_test.json");
    ASSERT_EQ(outs[i].status, "finished");
    EXPECT_EQ(outs[i].summary["reached_train_loss"], true) << i;
    for (const char* key : {"steps", "epochs", "samples"})
      EXPECT_EQ(outs[i].summary[key], solo.summary[key]) << "member " << i << " " << key;
    for (const char* m : {"train_loss", "weight_norm"})
      EXPECT_NEAR(outs[i].summary[m].get<double>(), solo.summary[m].get<double>(),
                  1e-3 * std::max(1.0, solo.summary[m].get<double>()))
          << "member " << i << " " << m;
  }
  EXPECT_LT(outs[0].summary["epochs"].get<int>(), outs[2].summary["epochs"].get<int>());
  EXPECT_LT(outs[2].summary["epochs"].get<int>(), 10);  // the population ended with the last
}

TEST(CudaPopulation, AdamWMembersWithTheirOwnLrAndDecayEqualTheirSoloGpuRuns) {
  SKIP_WITHOUT_GPU();
  // Stepping apart under a cosine schedule: the captured step computes each member's row.
  std::vector<json> cfgs;
  for (int i = 0; i < 3; ++i) {
    json cfg = trial_config(R"({"optim": {"name": "adamw", "momentum": null}, "schedule": {"name": "cosine"}})");
    cfg["seed"] = i, cfg["optim"]["lr"] = 0.001 * (1 + 2 * i), cfg["optim"]["weight_decay"] = 0.05 * i;
    cfgs.push_back(cfg);
  }
  expect_captured_members_equal_solo(cfgs, {"train_loss", "test_loss", "weight_norm"});
}

TEST(CudaPopulation, MembersTakeTheHessianAndTheNoiseScaleAllAtOnceAsTheirSoloGpuRunsDo) {
  SKIP_WITHOUT_GPU();
  const torch::Device gpu(torch::kCUDA, 0);
  std::vector<json> cfgs;
  for (int seed = 0; seed < 3; ++seed) {
    json cfg = trial_config(R"({"measure": {"hessian_top": true, "hessian_samples": 300, "hessian_tol": 1e-4,
        "noise_scale": true, "noise_batches": [16, 256], "noise_repeats": 5}})");
    cfg["seed"] = seed;
    cfgs.push_back(cfg);
  }
  auto outs = run_population(cfgs, gpu, std::vector<TrainHooks>(cfgs.size()), "cuda_test.json");
  for (size_t i = 0; i < cfgs.size(); ++i) {
    auto solo = run_trial(cfgs[i], gpu, {}, "cuda_test.json");
    ASSERT_EQ(outs[i].status, "finished");
    // The weights themselves differ from the solo run's by float order (batched matmuls), so the
    // measures agree to 1 % (the noise scale's trace, a difference of two means, to 5 %).
    for (auto [key, rtol] : {std::pair<const char*, double>{"hessian_top", 1e-2}, {"trace_sigma", 5e-2}}) {
      const json &got = outs[i].measures[key], &want = solo.measures[key];
      ASSERT_TRUE(got.is_number() && want.is_number()) << "member " << i << " " << key << ": " << got << " vs " << want;
      EXPECT_NEAR(got.get<double>(), want.get<double>(), rtol * std::abs(want.get<double>()))
          << "member " << i << " " << key;
    }
  }
}

TEST(CudaPopulation, MembersSharingOneDataSetEvaluateAsTheirSoloGpuRuns) {
  SKIP_WITHOUT_GPU();
  const torch::Device gpu(torch::kCUDA, 0);
  // Image data the same for every seed: one copy, each evaluation chunk expanded over the members
  // (a stride-0 batch into the batched matmul), with graphs on.
  testing::TempDir dir;
  testing::write_tiny_mnist(dir, 600, 120);
  json cfg = trial_config(testing::kTinyMnistData);
  cfg["train"]["eval_batch_size"] = 50;
  const std::vector<json> cfgs = testing::on_tiny_mnist(cfg, dir, {0, 1, 2});
  auto outs = run_population(cfgs, gpu, std::vector<TrainHooks>(cfgs.size()), "cuda_test.json");
  for (size_t i = 0; i < cfgs.size(); ++i) {
    auto solo = run_trial(cfgs[i], gpu, {}, "cuda_test.json");
    ASSERT_EQ(outs[i].status, "finished");
    // Accuracies to one example in 120 (a borderline prediction may fall either way when the
    // batched matmul sums in another order); losses closer.
    for (const char* m : {"train_loss", "test_loss"})
      EXPECT_NEAR(outs[i].summary[m].get<double>(), solo.summary[m].get<double>(), 1e-3)
          << "member " << i << " " << m;
    for (const char* m : {"train_acc", "test_acc"})
      EXPECT_NEAR(outs[i].summary[m].get<double>(), solo.summary[m].get<double>(), 1.0 / 120 + 1e-9)
          << "member " << i << " " << m;
  }
}

TEST(CudaPopulation, MembersOnSchedulesOfTheirOwnEqualTheirSoloGpuRuns) {
  SKIP_WITHOUT_GPU();
  // Q76's populations: one LR, five schedules; the captured step reads a row of factors copied to
  // the device each step (the members step alike at the start, apart later: captured again).
  std::vector<json> cfgs;
  int seed = 0;
  for (const char* s : {R"({"name": "constant"})", R"({"name": "multistep", "milestones": [2, 4]})",
                        R"({"name": "cosine", "warmup_epochs": 1})", R"({"name": "onecycle"})",
                        R"({"name": "wsd", "decay_frac": 0.3})"}) {
    json cfg = trial_config(std::string(R"({"schedule": )") + s + "}");
    cfg["seed"] = seed++;
    cfgs.push_back(cfg);
  }
  expect_captured_members_equal_solo(cfgs, {"train_loss", "test_loss", "weight_norm", "lr"});
}

TEST(CudaPopulation, LotteryChainsTrainEachRoundAsOnePopulationAsTheyWouldAlone) {
  SKIP_WITHOUT_GPU();
  const torch::Device gpu(torch::kCUDA, 0);
  // Each round's ticket, reinit and random_prune of two seeds' chains (each on its own data) with
  // their own masks, in one captured step.
  auto chain = [&](const std::string& population, const std::string& dir) {
    json doc = json::parse(R"({"lab": "lottery",
        "data": {"name": "blobs", "n_train": 1024, "n_test": 512, "classes": 4, "dim": 8, "noise": 1.5},
        "model": {"name": "mlp", "widths": [64, 64]}, "optim": {"name": "adam", "lr": 0.003},
        "train": {"epochs": 3, "batch_size": 64, "checkpoint": false},
        "lottery": {"rounds": 2, "rate": 0.3, "output_rate": 0.1},
        "sweep": {"lottery.control": ["ticket", "reinit", "random_prune"]}, "seeds": 2})");
    doc["train"]["population"] = population;
    auto trials = expand_trials(resolve_config_json(doc, "lottery.json", "", {}));
    std::map<std::string, json> out;  // by seed, round and control
    std::vector<const Trial*> all;
    for (const auto& t : trials) all.push_back(&t);
    LotteryCallbacks cb;
    cb.done = [&](const Trial&) { return false; };
    cb.hooks = [](const Trial&, const std::string&) { return TrainHooks(); };
    cb.record = [&](const Trial& t, const TrainOutcome& o, double) {
      out[std::to_string(t.seed) + t.config["lottery"]["round"].dump() +
          t.config["lottery"]["control"].get<std::string>()] = o.summary;
    };
    run_lottery_chains(all, dir, gpu, cb, "lottery.json");
    return out;
  };
  testing::TempDir a, b;
  auto together = chain("auto", a.path()), alone = chain("off", b.path());
  ASSERT_EQ(together.size(), 14u);
  for (const auto& [key, want] : alone) {
    const json& got = together[key];
    EXPECT_EQ(got.value("layer_remaining", json()), want.value("layer_remaining", json())) << key;
    for (const char* m : {"train_loss", "test_loss", "weight_norm"})
      EXPECT_NEAR(got[m].get<double>(), want[m].get<double>(),
                  1e-3 * std::max(1.0, want[m].get<double>()))
          << key << " " << m;
  }
  EXPECT_EQ(together["00ticket"]["population"], 2);
  EXPECT_EQ(together["11reinit"]["population"], 6);
  EXPECT_EQ(together["02ticket"]["cuda_graphs"], "captured");
}

}  // namespace
}  // namespace empiric
