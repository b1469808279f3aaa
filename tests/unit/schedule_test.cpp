#include "train/schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace empiric {
namespace {

// 10 steps per epoch, 100 steps in all, base LR 1 unless said.
double at(const std::string& json_text, long long step, double base = 1.0) {
  return lr_at(json::parse(json_text), base, step, 100, 10);
}

TEST(Schedule, MaxEvalsThinsEpochEndEvaluationsAndAlwaysKeepsTheLast) {
  // 100 epochs of 10 steps, at most 8 evaluations: every ceil(100 / 8) = 13 epochs, and the last.
  auto evaluated = [](long long max_evals, long long total) {
    std::vector<long long> epochs;
    for (long long e = 1; e * 10 <= total + 9; ++e)
      if (evaluates_epoch_end(e, std::min(e * 10, total), total, 10, max_evals)) epochs.push_back(e);
    return epochs;
  };
  EXPECT_EQ(evaluated(8, 1000), (std::vector<long long>{13, 26, 39, 52, 65, 78, 91, 100}));
  EXPECT_EQ(evaluated(0, 1000).size(), 100u);    // off: every epoch end
  EXPECT_EQ(evaluated(500, 1000).size(), 100u);  // more allowed than there are epochs
  // A steps budget that ends inside an epoch: that last, partial epoch is evaluated.
  EXPECT_EQ(evaluated(3, 95), (std::vector<long long>{4, 8, 10}));
}

TEST(Schedule, ConstantIsTheBase) {
  EXPECT_DOUBLE_EQ(at(R"({"name":"constant"})", 0, 0.3), 0.3);
  EXPECT_DOUBLE_EQ(at(R"({"name":"constant"})", 99, 0.3), 0.3);
}

TEST(Schedule, LinearWarmupEdges) {
  const char* s = R"({"name":"constant","warmup_epochs":2})";  // 20 warmup steps
  EXPECT_DOUBLE_EQ(at(s, 0), 1.0 / 20);
  EXPECT_DOUBLE_EQ(at(s, 9), 10.0 / 20);
  EXPECT_DOUBLE_EQ(at(s, 19), 1.0);
  EXPECT_DOUBLE_EQ(at(s, 20), 1.0);
}

TEST(Schedule, AWarmupInStepsIsTheSameAtEveryBatchSize) {
  // 15 steps of warmup whether an epoch is 10 steps or 1,000 (warmup_epochs would be 1.5 or
  // 0.015 epochs), then the cosine over what is left.
  const json s = json::parse(R"({"name": "cosine", "warmup_steps": 15})");
  for (long long spe : {10LL, 1000LL}) {
    EXPECT_EQ(warmup_steps(s, spe), 15);
    EXPECT_DOUBLE_EQ(lr_at(s, 1.0, 0, 100, spe), 1.0 / 15);
    EXPECT_DOUBLE_EQ(lr_at(s, 1.0, 14, 100, spe), 1.0);
    EXPECT_DOUBLE_EQ(lr_at(s, 1.0, 15, 100, spe), 1.0);  // the cosine's first step
    EXPECT_NEAR(lr_at(s, 1.0, 15 + 85 / 2, 100, spe), 0.5, 0.02);
  }
  EXPECT_EQ(warmup_steps(json::parse(R"({"warmup_epochs": 1.5})"), 10), 15);
}

TEST(Schedule, StepDecaysEveryStepEpochs) {
  const char* s = R"({"name":"step","step_epochs":3,"gamma":0.1})";
  EXPECT_DOUBLE_EQ(at(s, 29), 1.0);
  EXPECT_NEAR(at(s, 30), 0.1, 1e-15);
  EXPECT_NEAR(at(s, 60), 0.01, 1e-15);
}

TEST(Schedule, MultistepAtMilestones) {
  const char* s = R"({"name":"multistep","milestones":[2,5],"gamma":0.5})";
  EXPECT_DOUBLE_EQ(at(s, 19), 1.0);
  EXPECT_DOUBLE_EQ(at(s, 20), 0.5);
  EXPECT_DOUBLE_EQ(at(s, 49), 0.5);
  EXPECT_DOUBLE_EQ(at(s, 50), 0.25);
}

TEST(Schedule, FractionalMilestonesAndPeriodsFallWithinAnEpoch) {
  // Times in epochs: 0.5 of a 10-step epoch is step 5, not the next epoch end.
  const char* m = R"({"name":"multistep","milestones":[0.5,1.25],"gamma":0.1})";
  EXPECT_DOUBLE_EQ(at(m, 4), 1.0);
  EXPECT_NEAR(at(m, 5), 0.1, 1e-15);
  EXPECT_NEAR(at(m, 12), 0.1, 1e-15);
  EXPECT_NEAR(at(m, 13), 0.01, 1e-15);
  const char* s = R"({"name":"step","step_epochs":0.5,"gamma":0.1})";
  EXPECT_DOUBLE_EQ(at(s, 4), 1.0);
  EXPECT_NEAR(at(s, 5), 0.1, 1e-15);  // one decay at a time, not two at the epoch end
  EXPECT_NEAR(at(s, 10), 0.01, 1e-15);
  // 1.1 epochs of 50 steps is step 55 (1.1 x 50 is 55.000000000000007 in doubles).
  const json s11 = json::parse(R"({"name":"step","step_epochs":1.1,"gamma":0.1})");
  EXPECT_DOUBLE_EQ(lr_at(s11, 1.0, 54, 500, 50), 1.0);
  EXPECT_NEAR(lr_at(s11, 1.0, 55, 500, 50), 0.1, 1e-15);
  EXPECT_NEAR(lr_at(s11, 1.0, 110, 500, 50), 0.01, 1e-15);
}

TEST(Schedule, EpochCountsPastAnyRunMeanNeverAndSmallOnesDoNotHang) {
  // 1e30 epochs times the steps an epoch overflowed llround (LLONG_MIN on x86): a milestone or a
  // step decay "passed" at step 0, a warmup that was no warmup at all.
  const long long spe = 469;
  EXPECT_DOUBLE_EQ(
      lr_at(json::parse(R"({"name":"multistep","milestones":[1e30]})"), 1.0, 0, 1000, spe), 1.0);
  EXPECT_DOUBLE_EQ(
      lr_at(json::parse(R"({"name":"step","step_epochs":1e30})"), 1.0, 1000000, 2000000, spe), 1.0);
  const json warm = json::parse(R"({"warmup_epochs":1e30})");
  EXPECT_GT(warmup_steps(warm, spe), 1000000000000LL);
  EXPECT_LT(lr_at(warm, 1.0, 10, 1000, spe), 1e-9);
  // A decay every 1e-12 epochs: the estimate of k was off by 0.5 / every, walked one by one.
  EXPECT_EQ(
      lr_at(json::parse(R"({"name":"step","step_epochs":1e-12,"gamma":0.5})"), 1.0, 100, 1000, spe),
      0.0);
  // Periods of a step each (restart_epochs at its minimum), a run of 1e9 steps: one look, not a
  // walk through every period before.
  const json sgdr = json::parse(R"({"name":"cosine_restarts","restart_epochs":1e-12})");
  EXPECT_DOUBLE_EQ(lr_at(sgdr, 1.0, 999999999, 1000000000, spe), 1.0);
  // Periods of 46.9 steps: step s lies in period floor(10 s / 469), counted in integers, also at
  // the boundaries that 46.9 in doubles (46.900000000000006) puts a hair away (469, 4690: new
  // periods, the LR back at its base).
  const json tenth = json::parse(R"({"name":"cosine_restarts","restart_epochs":0.1})");
  const double pi = std::acos(-1.0);
  for (long long step : {0LL, 46LL, 47LL, 93LL, 94LL, 468LL, 469LL, 4689LL, 4690LL}) {
    const long long k = 10 * step / 469;
    const double into = (double(10 * step - 469 * k) / 10.0) / 46.9;
    EXPECT_NEAR(lr_at(tenth, 1.0, step, 5000, spe), 0.5 * (1.0 + std::cos(pi * into)), 1e-9)
        << step;
  }
  EXPECT_DOUBLE_EQ(lr_at(tenth, 1.0, 4690, 5000, spe), 1.0);
}

TEST(Schedule, ExponentialPerEpoch) {
  EXPECT_NEAR(at(R"({"name":"exponential","gamma":0.9})", 35), std::pow(0.9, 3), 1e-15);
}

TEST(Schedule, CosineFromBaseToFloor) {
  const char* s = R"({"name":"cosine","min_lr_frac":0.1})";
  EXPECT_DOUBLE_EQ(at(s, 0), 1.0);
  EXPECT_NEAR(at(s, 50), 0.1 + 0.9 * 0.5, 1e-12);  // half way: the mean of the two ends
  EXPECT_NEAR(at(s, 100), 0.1, 1e-12);
}

TEST(Schedule, CosineRunsOverThePostWarmupSteps) {
  const char* s = R"({"name":"cosine","warmup_epochs":2})";  // 20 warmup, 80 cosine
  EXPECT_DOUBLE_EQ(at(s, 20), 1.0);
  EXPECT_NEAR(at(s, 60), 0.5, 1e-12);
}

TEST(Schedule, OneCyclePeaksAtPctStart) {
  const char* s = R"({"name":"onecycle","pct_start":0.3,"div_factor":25,"final_div_factor":10000})";
  EXPECT_NEAR(at(s, 0), 1.0 / 25, 1e-12);
  EXPECT_NEAR(at(s, 29), 1.0, 1e-12);  // peak at step pct_start * total - 1, as torch's OneCycleLR
  EXPECT_NEAR(at(s, 99), 1.0 / 25 / 10000, 1e-12);
  EXPECT_LT(at(s, 15), at(s, 25));
  EXPECT_GT(at(s, 40), at(s, 80));
}

TEST(Schedule, OneCycleOnShortPhasesIsTorchs) {
  // A rise or a fall shorter than two steps was clamped to one, where torch's OneCycleLR skips a
  // rise under a step and reaches the final LR on the last step whatever pct_start. The values
  // are torch 2.11's (cos annealing, div_factor 25, final_div_factor 1e4, max_lr 1).
  const json s = json::parse(R"({"name":"onecycle","div_factor":25,"final_div_factor":10000})");
  auto lr = [&](double pct, long long step, long long total) {
    json c = s;
    c["pct_start"] = pct;
    return lr_at(c, 1.0, step, total, 10);
  };
  EXPECT_NEAR(lr(0.0, 0, 100), 0.999753281169745, 1e-12);
  EXPECT_NEAR(lr(0.0, 1, 100), 0.9990133681606789, 1e-12);
  EXPECT_NEAR(lr(0.0, 50, 100), 0.484296683282454, 1e-12);
  EXPECT_NEAR(lr(0.99, 1, 37), 0.041864652717576556, 1e-12);
  EXPECT_NEAR(lr(0.99, 18, 37), 0.5278293869290196, 1e-12);
  EXPECT_NEAR(lr(0.99, 36, 37), 4e-06, 1e-15);
  EXPECT_NEAR(lr(0.15, 1, 10), 0.9914865838957516, 1e-12);
  EXPECT_NEAR(lr(0.15, 5, 10), 0.45386800480506795, 1e-12);
  EXPECT_NEAR(lr(0.3, 1, 100), 0.042813780565907456, 1e-12);
  EXPECT_NEAR(lr(0.3, 50, 100), 0.793893450575732, 1e-12);
}

TEST(Schedule, WsdIsStableThenDecaysLinearly) {
  const char* s = R"({"name":"wsd","decay_frac":0.2,"min_lr_frac":0.0})";
  EXPECT_DOUBLE_EQ(at(s, 79), 1.0);  // decay starts at 80
  EXPECT_DOUBLE_EQ(at(s, 80), 1.0);
  EXPECT_NEAR(at(s, 90), 0.5, 1e-12);
  EXPECT_NEAR(at(s, 100), 0.0, 1e-12);
}

TEST(Schedule, CosineRestartsStartOverAtEachPeriod) {
  // Periods of 20, 40 steps after a 10-step warmup: restarts at steps 30 and 70.
  const char* s =
      R"({"name":"cosine_restarts","warmup_epochs":1,"restart_epochs":2,"restart_mult":2})";
  EXPECT_DOUBLE_EQ(at(s, 9), 1.0);    // warmup's last step reaches the base
  EXPECT_DOUBLE_EQ(at(s, 10), 1.0);   // first period starts at the base
  EXPECT_NEAR(at(s, 20), 0.5, 1e-12);  // half of the first period
  EXPECT_NEAR(at(s, 29), 0.5 * (1 + std::cos(M_PI * 19 / 20)), 1e-12);
  EXPECT_DOUBLE_EQ(at(s, 30), 1.0);    // restart
  EXPECT_NEAR(at(s, 50), 0.5, 1e-12);  // half of the 40-step second period
  EXPECT_DOUBLE_EQ(at(s, 70), 1.0);    // second restart
}

TEST(Schedule, WarmupThenWsdDecayStartsAfterTheStablePart) {
  // 10 warmup steps, then 90 steps: stable for 72, linear decay over the last 18 (decay_frac 0.2).
  const char* s = R"({"name":"wsd","warmup_epochs":1,"decay_frac":0.2,"min_lr_frac":0.1})";
  EXPECT_DOUBLE_EQ(at(s, 0), 0.1);
  EXPECT_DOUBLE_EQ(at(s, 81), 1.0);  // t = 71 < 72
  EXPECT_DOUBLE_EQ(at(s, 82), 1.0);  // t = 72: decay starts, still the base
  EXPECT_NEAR(at(s, 91), 1.0 - 0.9 * 0.5, 1e-12);  // half way through the decay
  EXPECT_NEAR(at(s, 100), 0.1, 1e-12);
}

TEST(Schedule, BatchScalingRules) {
  EXPECT_DOUBLE_EQ(scaled_base_lr(0.1, "none", 1024, 128), 0.1);
  EXPECT_DOUBLE_EQ(scaled_base_lr(0.1, "linear", 1024, 128), 0.8);
  EXPECT_NEAR(scaled_base_lr(0.1, "sqrt", 512, 128), 0.2, 1e-15);
}

}  // namespace
}  // namespace empiric
