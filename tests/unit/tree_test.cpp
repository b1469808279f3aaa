// The CART tree behind model.name "tree" (labs/models/tree.h).
#include "models/tree.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

namespace empiric {
namespace {

struct Table {
  std::vector<float> x;  // n x d
  std::vector<int64_t> y;
  int64_t n = 0, d = 0;
};

// n points uniform in [0, 1]^d; the label is a rule on the first two features (0..3).
Table quadrants(int64_t n, int64_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  Table t{{}, {}, n, d};
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t f = 0; f < d; ++f) t.x.push_back(u(rng));
    const float a = t.x[size_t(i * d)], b = t.x[size_t(i * d + 1)];
    t.y.push_back(int64_t(a > 0.5f) * 2 + int64_t(b > 0.3f));
  }
  return t;
}

double accuracy(const ClassificationTree& tree, const Table& t) {
  const auto p = tree.predict(t.x.data(), t.n);
  int64_t hits = 0;
  for (int64_t i = 0; i < t.n; ++i) hits += p[size_t(i)] == t.y[size_t(i)];
  return double(hits) / double(t.n);
}

TEST(Tree, LearnsAnAxisAlignedRuleThatOneSplitCannot) {
  const Table train = quadrants(2000, 5, 1), test = quadrants(1000, 5, 2);
  TreeOptions deep;
  deep.max_depth = 2;
  deep.bins = 64;
  const ClassificationTree tree(train.x.data(), train.y.data(), train.n, train.d, 4, deep);
  // Two levels of splits near 0.5 and 0.3 (thresholds are sample quantiles, 1/64 apart).
  EXPECT_GT(accuracy(tree, test), 0.95);
  EXPECT_EQ(tree.depth(), 2);
  EXPECT_EQ(tree.leaves(), 4);
  TreeOptions stump = deep;
  stump.max_depth = 1;
  const ClassificationTree one(train.x.data(), train.y.data(), train.n, train.d, 4, stump);
  // Two leaves for four classes (shares 0.15, 0.35, 0.15, 0.35): at best 0.7.
  EXPECT_LT(accuracy(one, test), 0.75);
  EXPECT_EQ(one.leaves(), 2);
}

TEST(Tree, SplitsANodeNoSplitImprovesToReachTheSplitThatDoes) {
  // XOR on the corners of the unit square, 25 copies each: every first split leaves both sides
  // half and half (no gain), and only after one does the second separate the classes.
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int copy = 0; copy < 25; ++copy)
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        x.push_back(float(a)), x.push_back(float(b));
        y.push_back(a ^ b);
      }
  const ClassificationTree tree(x.data(), y.data(), 100, 2, 2, TreeOptions{});
  const auto p = tree.predict(x.data(), 100);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(p[i], y[i]) << i;
  EXPECT_EQ(tree.depth(), 2);
  EXPECT_EQ(tree.leaves(), 4);
}

TEST(Tree, PredictionsDoNotChangeUnderIncreasingMapsOfTheFeatures) {
  const Table train = quadrants(3000, 6, 3), test = quadrants(1000, 6, 4);
  // Each feature rescaled by its own factor (1/128 to 1024: powers of two, exact in float, so no
  // two values merge), train and test alike; one feature also goes through exp, which is
  // increasing but not affine.
  const std::vector<float> scale = {1.0f / 128, 1024.0f, 4.0f, 0.25f, 64.0f, 1.0f};
  auto mapped = [&](Table t) {
    for (int64_t i = 0; i < t.n; ++i)
      for (int64_t f = 0; f < t.d; ++f) {
        float& v = t.x[size_t(i * t.d + f)];
        v = f == 5 ? std::exp(3.0f * v) : v * scale[size_t(f)];
      }
    return t;
  };
  const Table train2 = mapped(train), test2 = mapped(test);
  // The maps are one-to-one on these data (a rounding that merged two values would change a
  // split for reasons that are not the tree's).
  for (int64_t f = 0; f < train.d; ++f) {
    std::set<float> before, after;
    for (int64_t i = 0; i < train.n; ++i) {
      before.insert(train.x[size_t(i * train.d + f)]);
      after.insert(train2.x[size_t(i * train.d + f)]);
    }
    ASSERT_EQ(before.size(), after.size()) << "feature " << f;
  }
  TreeOptions o;
  o.max_depth = 8;
  o.bins = 16;
  const ClassificationTree a(train.x.data(), train.y.data(), train.n, train.d, 4, o);
  const ClassificationTree b(train2.x.data(), train2.y.data(), train2.n, train2.d, 4, o);
  EXPECT_EQ(a.predict(test.x.data(), test.n), b.predict(test2.x.data(), test2.n));
  EXPECT_EQ(a.predict_proba(test.x.data(), test.n), b.predict_proba(test2.x.data(), test2.n));
  EXPECT_EQ(a.leaves(), b.leaves());
  // A map that is not increasing (a sign flip) does change the thresholds' sides.
  Table flipped = train;
  for (auto& v : flipped.x) v = -v;
  const ClassificationTree c(flipped.x.data(), flipped.y.data(), flipped.n, flipped.d, 4, o);
  Table test_flipped = test;
  for (auto& v : test_flipped.x) v = -v;
  EXPECT_NE(a.predict_proba(test.x.data(), test.n),
            c.predict_proba(test_flipped.x.data(), test_flipped.n));
}

TEST(Tree, EveryLeafKeepsMinLeafTrainingExamples) {
  const Table train = quadrants(500, 3, 5);
  TreeOptions o;
  o.max_depth = 20;
  o.min_leaf = 40;
  const ClassificationTree tree(train.x.data(), train.y.data(), train.n, train.d, 4, o);
  std::vector<int64_t> held(size_t(tree.leaves()), 0);
  for (int64_t leaf : tree.apply(train.x.data(), train.n)) ++held[size_t(leaf)];
  for (int64_t h : held) EXPECT_GE(h, 40);
  EXPECT_GT(tree.leaves(), 4);  // the rule needs at least four; 500 / 40 allows twelve
  EXPECT_LE(tree.leaves(), 500 / 40);
  // Probabilities of a leaf: (c_k + 1) / (n + 4), summing to 1.
  const auto p = tree.predict_proba(train.x.data(), train.n);
  for (int64_t i = 0; i < train.n; ++i)
    EXPECT_NEAR(
        p[size_t(i * 4)] + p[size_t(i * 4 + 1)] + p[size_t(i * 4 + 2)] + p[size_t(i * 4 + 3)], 1.0,
        1e-12);
}

TEST(Tree, DepthZeroIsOneLeafWithTheClassFrequencies) {
  const std::vector<float> x = {0, 1, 2, 3, 4, 5};
  const std::vector<int64_t> y = {0, 1, 1, 1, 2, 1};
  TreeOptions o;
  o.max_depth = 0;
  const ClassificationTree tree(x.data(), y.data(), 6, 1, 3, o);
  EXPECT_EQ(tree.leaves(), 1);
  EXPECT_EQ(tree.nodes(), 1);
  const float probe = 2.5f;
  const auto p = tree.predict_proba(&probe, 1);
  EXPECT_DOUBLE_EQ(p[0], 2.0 / 9.0);  // (1 + 1) / (6 + 3)
  EXPECT_DOUBLE_EQ(p[1], 5.0 / 9.0);
  EXPECT_DOUBLE_EQ(p[2], 2.0 / 9.0);
  EXPECT_EQ(tree.predict(&probe, 1)[0], 1);
}

TEST(Tree, SplitsAtATrainingValueSoUnseenValuesBetweenTwoGoRight) {
  // One feature, 0 and 1 separate the classes; 0.5 was never seen and goes with the larger ones
  // (x <= 0 goes left): a midpoint threshold would have put it on either side by rounding.
  const std::vector<float> x = {0, 0, 0, 1, 1, 1};
  const std::vector<int64_t> y = {0, 0, 0, 1, 1, 1};
  const ClassificationTree tree(x.data(), y.data(), 6, 1, 2, TreeOptions{});
  const std::vector<float> probes = {-1.0f, 0.0f, 0.5f, 2.0f};
  EXPECT_EQ(tree.predict(probes.data(), 4), (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(tree.depth(), 1);
}

TEST(Tree, RefusesLabelsOutsideTheClassesAndBadOptions) {
  const std::vector<float> x = {0, 1};
  const std::vector<int64_t> y = {0, 3};
  EXPECT_THROW(ClassificationTree(x.data(), y.data(), 2, 1, 2, TreeOptions{}),
               std::invalid_argument);
  const std::vector<int64_t> ok = {0, 1};
  TreeOptions bad;
  bad.bins = 1;
  EXPECT_THROW(ClassificationTree(x.data(), ok.data(), 2, 1, 2, bad), std::invalid_argument);
}

}  // namespace
}  // namespace empiric
