// A classification tree (CART, Breiman et al. 1984), grown greedily on Gini impurity: the
// non-network baseline behind model.name "tree". Plain C++ on row-major float arrays, no torch.
//
// Each feature's candidate thresholds are up to `bins` - 1 of its training values, at evenly
// spaced quantiles of a fixed sample of the training rows; a split sends x left when
// x <= threshold. The thresholds are training values themselves, not midpoints between two, so a
// strictly increasing map of a feature (a rescaling, a shift, standardization) moves every
// threshold with the values and leaves each split's partition, training and test examples alike,
// as it was: the tree's predictions do not change (up to float rounding that merges two values).
#pragma once

#include <cstdint>
#include <vector>

namespace empiric {

struct TreeOptions {
  int max_depth = 12;    // the root is depth 0
  int64_t min_leaf = 1;  // fewest training examples a leaf may hold
  int bins = 32;         // candidate thresholds per feature: at most bins - 1
};

class ClassificationTree {
 public:
  // x: n x d row-major; y: n labels in [0, classes). Deterministic: no randomness at all.
  ClassificationTree(const float* x, const int64_t* y, int64_t n, int64_t d, int64_t classes,
                     const TreeOptions& options);

  // Per example, its leaf's class frequencies with add-one (Laplace) smoothing,
  // (count_k + 1) / (n_leaf + classes): n x classes, row-major. Never 0, so a log loss is finite.
  std::vector<double> predict_proba(const float* x, int64_t n) const;
  // Per example, its leaf's most frequent class (the smallest such class on a tie).
  std::vector<int64_t> predict(const float* x, int64_t n) const;
  // Per example, the index of the leaf it lands in (0 .. leaves() - 1, in the order grown).
  std::vector<int64_t> apply(const float* x, int64_t n) const;

  int64_t leaves() const { return leaves_; }
  int64_t nodes() const { return int64_t(nodes_.size()); }
  int depth() const { return depth_; }

  struct Node {
    int32_t feature = -1;  // -1: a leaf
    float threshold = 0;   // x[feature] <= threshold goes left
    int32_t left = -1, right = -1;
    int64_t counts = 0;  // a leaf's offset into the class counts
  };

 private:
  int64_t leaf_of(const float* row) const;

  int64_t d_ = 0, classes_ = 0;
  std::vector<Node> nodes_;
  std::vector<int64_t> counts_;  // classes_ per leaf
  int64_t leaves_ = 0;
  int depth_ = 0;
};

}  // namespace empiric
