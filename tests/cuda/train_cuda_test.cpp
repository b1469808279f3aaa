// The trainer on a GPU: the same trial as on the CPU, to float tolerance. Skips without a GPU.
#include <gtest/gtest.h>

#include "core/config.h"
#include "train/trainer.h"

namespace empiric {
namespace {

json trial_config(const std::string& patch) {
  json doc = json::parse(R"({"data": {"name": "blobs", "n_train": 1024, "n_test": 512, "classes": 4, "dim": 8, "noise": 1.5},
    "model": {"name": "mlp", "widths": [64, 64]}, "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "train": {"epochs": 5, "batch_size": 64, "checkpoint": false}})");
  doc.merge_patch(json::parse(patch));
  return expand_trials(resolve_config_json(doc, "cuda_test.json", "", {})).at(0).config;
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
  EXPECT_NEAR(gpu.summary["train_loss"].get<double>(), cpu.summary["train_loss"].get<double>(), 2e-2);
  EXPECT_NEAR(gpu.summary["test_acc"].get<double>(), cpu.summary["test_acc"].get<double>(), 2e-2);
}

TEST(CudaTrainer, DivergenceIsDetectedOnTheDevice) {
  SKIP_WITHOUT_GPU();
  auto out = run_trial(trial_config(R"({"optim": {"lr": 1e6}})"), torch::Device(torch::kCUDA, 0), {}, "cuda_test.json");
  EXPECT_EQ(out.status, "diverged");
  EXPECT_GE(out.diverged_step, 0);
  EXPECT_LT(out.diverged_step, 16);  // one epoch: the first bad step is kept on the device
}

TEST(CudaTrainer, SpiralsTrainOnTheGpu) {
  SKIP_WITHOUT_GPU();
  json cfg = trial_config(R"({"data": {"name": "spirals", "dim": null, "classes": 3, "noise": 0.05}})");
  auto out = run_trial(cfg, torch::Device(torch::kCUDA, 0), {}, "cuda_test.json");
  EXPECT_EQ(out.status, "finished");
  EXPECT_GT(out.summary["test_acc"].get<double>(), 0.5);
}

}  // namespace
}  // namespace empiric
