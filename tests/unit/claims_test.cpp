// Each test kind and verdict rule on synthetic trial tables whose answers are known.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "claims/stats.h"
#include "claims/verdict.h"

namespace empiric::claims {
namespace {

ClaimTest make(const char* kind, int direction, double min_effect) {
  ClaimTest t;
  t.kind = kind;
  t.direction = direction;
  t.min_effect = min_effect;
  return t;
}

// y = slope * x + noise, `seeds` observations per x in {1..levels}.
std::vector<Observation> trend_table(double slope, double noise, int levels, int seeds,
                                     uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> eps(0.0, noise);
  std::vector<Observation> out;
  for (int x = 1; x <= levels; ++x)
    for (int s = 0; s < seeds; ++s) out.push_back({double(x), slope * x + eps(rng), "", false});
  return out;
}

TEST(Stats, RanksAverageTies) {
  EXPECT_EQ(ranks({10, 20, 20, 5}), (std::vector<double>{2, 3.5, 3.5, 1}));
}

TEST(Stats, RankCorrelationsOnKnownOrders) {
  std::vector<double> x = {1, 2, 3, 4, 5};
  EXPECT_DOUBLE_EQ(spearman(x, {2, 4, 6, 8, 10}), 1.0);
  EXPECT_DOUBLE_EQ(spearman(x, {5, 4, 3, 2, 1}), -1.0);
  EXPECT_DOUBLE_EQ(kendall_tau(x, {1, 2, 3, 5, 4}), 0.8);  // 9 concordant, 1 discordant pair of 10
  EXPECT_DOUBLE_EQ(kendall_tau(x, {3, 3, 3, 3, 3}), 0.0);
}

TEST(Stats, BootstrapIsDeterministicForASeedAndCoversTheMean) {
  std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8};
  auto stat = [&](const std::vector<std::vector<int>>& pick) {
    double s = 0;
    for (int i : pick[0]) s += v[size_t(i)];
    return s / double(pick[0].size());
  };
  BootstrapOptions o{1000, 0.95, 42};
  Interval a = bootstrap({8}, stat, o), b = bootstrap({8}, stat, o);
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
  EXPECT_LT(a.lo, 4.5);
  EXPECT_GT(a.hi, 4.5);
  o.level = 0.5;
  Interval narrow = bootstrap({8}, stat, o);
  EXPECT_GT(narrow.lo, a.lo);
  EXPECT_LT(narrow.hi, a.hi);
}

TEST(Verdict, ClearTrendIsSupported) {
  Verdict v = evaluate_claim(make("trend", -1, 0.3), trend_table(-1.0, 0.3, 5, 4));
  EXPECT_EQ(v.verdict, "supported") << v.reason;
  EXPECT_LT(v.effect, -0.8);
  EXPECT_LT(v.ci.hi, 0);
  EXPECT_EQ(v.n, 20);
}

TEST(Verdict, OppositeTrendIsRefuted) {
  Verdict v = evaluate_claim(make("trend", -1, 0.3), trend_table(+1.0, 0.3, 5, 4));
  EXPECT_EQ(v.verdict, "refuted") << v.reason;
  EXPECT_GT(v.ci.lo, 0);
}

TEST(Verdict, NoTrendIsInconclusive) {
  Verdict v = evaluate_claim(make("trend", +1, 0.3), trend_table(0.0, 1.0, 4, 3));
  EXPECT_EQ(v.verdict, "inconclusive") << v.reason;
  EXPECT_LE(v.ci.lo, 0);
  EXPECT_GE(v.ci.hi, 0);
}

TEST(Verdict, WeakEffectInTheClaimedDirectionSaysHowManySeedsWouldDecide) {
  // A small real slope under heavy noise: the interval straddles zero with the right sign.
  Verdict v = evaluate_claim(make("trend", +1, 0.0), trend_table(0.1, 1.0, 3, 3, 11));
  ASSERT_EQ(v.verdict, "inconclusive") << v.reason;
  ASSERT_GT(v.effect, 0);
  EXPECT_GT(v.seeds_needed, 3) << v.reason;
  EXPECT_NE(v.reason.find("seeds per group"), std::string::npos);
}

TEST(Verdict, EffectBelowTheMinimumIsNotSupported) {
  Verdict v = evaluate_claim(
      make("compare", +1, 5.0),
      {{0, 1.0, "a"}, {0, 1.1, "a"}, {0, 0.9, "a"}, {0, 2.0, "b"}, {0, 2.1, "b"}, {0, 1.9, "b"}});
  EXPECT_NEAR(v.effect, 1.0, 1e-12);
  EXPECT_EQ(v.verdict, "inconclusive");
  EXPECT_NE(v.reason.find("below the claim's minimum"), std::string::npos) << v.reason;
}

TEST(Verdict, CompareCorrelateAndThresholdKinds) {
  std::vector<Observation> groups = {{0, 1.0, "a"}, {0, 1.2, "a"}, {0, 0.8, "a"},
                                     {0, 3.0, "b"}, {0, 3.1, "b"}, {0, 2.9, "b"}};
  EXPECT_EQ(evaluate_claim(make("compare", +1, 1.0), groups).verdict, "supported");
  EXPECT_EQ(evaluate_claim(make("compare", -1, 1.0), groups).verdict, "refuted");

  std::vector<Observation> pairs;
  for (int i = 0; i < 12; ++i) pairs.push_back({double(i), 2.0 * i + (i % 3), "", false});
  Verdict tau = evaluate_claim(make("correlate", +1, 0.5), pairs);
  EXPECT_EQ(tau.verdict, "supported") << tau.reason;
  EXPECT_GT(tau.effect, 0.8);

  ClaimTest above = make("threshold", +1, 0.0);
  above.threshold = 0.85;
  Verdict t = evaluate_claim(above, {{0, 0.90, ""}, {0, 0.91, ""}, {0, 0.89, ""}, {0, 0.905, ""}});
  EXPECT_EQ(t.verdict, "supported") << t.reason;
  EXPECT_NEAR(t.effect, 0.05125, 1e-12);
}

TEST(Verdict, DivergedTrialsAreCountedAndReported) {
  auto table = trend_table(-1.0, 0.3, 5, 4);
  table.push_back({6, 0, "", true});
  table.push_back({6, 0, "", true});
  Verdict v = evaluate_claim(make("trend", -1, 0.3), table);
  EXPECT_EQ(v.diverged, 2);
  EXPECT_EQ(v.n, 20);
  EXPECT_NE(v.reason.find("2 diverged trial(s) left out"), std::string::npos) << v.reason;
}

TEST(Verdict, ACompareWhoseOneSideAllDivergedIsInconclusiveAndSaysSo) {
  Verdict v = evaluate_claim(make("compare", +1, 0.0),
                             {{0, 1.0, "a"}, {0, 1.1, "a"}, {0, 0, "b", true}, {0, 0, "b", true}});
  EXPECT_EQ(v.verdict, "inconclusive");
  EXPECT_EQ(v.diverged, 2);
  EXPECT_NE(v.reason.find("no finished trial at the second (b) end"), std::string::npos)
      << v.reason;
}

TEST(Verdict, TwoSeedsPerLevelGiveNoVerdictHoweverClearTheTrend) {
  Verdict v = evaluate_claim(make("trend", -1, 0.3), trend_table(-1.0, 0.01, 5, 2));
  EXPECT_EQ(v.verdict, "inconclusive");
  EXPECT_NE(v.reason.find("at least 3 per group"), std::string::npos) << v.reason;
  EXPECT_LT(v.effect, -0.9);  // the point estimate is still reported
}

TEST(Verdict, TooFewTrialsIsInconclusiveNotACrash) {
  Verdict v = evaluate_claim(make("trend", +1, 0.0), {{1, 1.0, ""}, {0, 0, "", true}});
  EXPECT_EQ(v.verdict, "inconclusive");
  EXPECT_NE(v.reason.find("too few"), std::string::npos);
}

}  // namespace
}  // namespace empiric::claims
