#include "models/tree.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace empiric {

namespace {

// The rows a feature's thresholds are drawn from: every row up to this many, else evenly spaced
// ones (which rows does not depend on the values, so the choice commutes with a rescaling).
constexpr int64_t kThresholdSample = 10000;

struct Grower {
  const float* x;
  const int64_t* y;
  int64_t n, d, classes;
  TreeOptions options;
  std::vector<std::vector<float>> thresholds;  // per feature, ascending, distinct
  std::vector<uint8_t> codes;                  // n x d: how many thresholds lie below the value
  std::vector<int64_t> rows;                   // permuted so that each node's rows are a range
  std::vector<int32_t> hist;                   // d x bins x classes, reused by every node

  int bins() const { return options.bins; }

  void make_codes() {
    thresholds.assign(size_t(d), {});
    const int64_t m = std::min(n, kThresholdSample);
    std::vector<float> sample(size_t(m), 0.0f);
    for (int64_t f = 0; f < d; ++f) {
      for (int64_t i = 0; i < m; ++i) sample[size_t(i)] = x[(i * n / m) * d + f];
      std::sort(sample.begin(), sample.end());
      auto& t = thresholds[size_t(f)];
      for (int b = 1; b < bins(); ++b) {
        const float v = sample[size_t(int64_t(b) * m / bins())];
        if (t.empty() || v > t.back()) t.push_back(v);
      }
    }
    codes.resize(size_t(n * d));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t f = 0; f < d; ++f) {
        const auto& t = thresholds[size_t(f)];
        codes[size_t(i * d + f)] =
            uint8_t(std::lower_bound(t.begin(), t.end(), x[i * d + f]) - t.begin());
      }
  }

  // The best split of rows[begin, end): feature and code (left: code <= split code), or
  // feature -1 when no split keeps min_leaf on each side. A split that does not lower the
  // impurity is still taken, as scikit-learn's CART takes it: XOR's first split gains nothing and
  // makes the second's whole gain possible.
  std::pair<int64_t, int> best_split(int64_t begin, int64_t end,
                                     const std::vector<int64_t>& total) {
    const int64_t count = end - begin;
    std::fill(hist.begin(), hist.end(), 0);
    const int64_t stride = int64_t(bins()) * classes;
    for (int64_t r = begin; r < end; ++r) {
      const int64_t row = rows[size_t(r)];
      const uint8_t* c = codes.data() + row * d;
      int32_t* h = hist.data() + y[row];
      for (int64_t f = 0; f < d; ++f) ++h[f * stride + int64_t(c[f]) * classes];
    }
    // Gini: minimizing the children's count-weighted impurity maximizes
    // sum_k left_k^2 / n_left + sum_k right_k^2 / n_right.
    double parent_sq = 0;
    for (int64_t k = 0; k < classes; ++k) parent_sq += double(total[size_t(k)] * total[size_t(k)]);
    double best = -INFINITY;
    std::pair<int64_t, int> split = {-1, 0};
    std::vector<int64_t> left(static_cast<size_t>(classes));
    for (int64_t f = 0; f < d; ++f) {
      const int codes_here = int(thresholds[size_t(f)].size()) + 1;
      std::fill(left.begin(), left.end(), 0);
      int64_t n_left = 0;
      double left_sq = 0, right_sq = parent_sq;
      const int32_t* h = hist.data() + f * stride;
      for (int b = 0; b + 1 < codes_here; ++b) {
        for (int64_t k = 0; k < classes; ++k) {
          const int64_t add = h[int64_t(b) * classes + k];
          if (add == 0) continue;
          const int64_t l = left[size_t(k)], r = total[size_t(k)] - l;
          left_sq += double(add * (2 * l + add));
          right_sq -= double(add * (2 * r - add));
          left[size_t(k)] = l + add;
          n_left += add;
        }
        const int64_t n_right = count - n_left;
        if (n_left < options.min_leaf || n_right < options.min_leaf) continue;
        const double score = left_sq / double(n_left) + right_sq / double(n_right);
        if (score > best) best = score, split = {f, b};
      }
    }
    return split;
  }

  std::vector<ClassificationTree::Node> nodes;
  std::vector<int64_t> counts;
  int64_t leaves = 0;
  int depth = 0;

  // Grows the node of rows[begin, end) and returns its index.
  int32_t grow(int64_t begin, int64_t end, int level) {
    const auto index = int32_t(nodes.size());
    nodes.emplace_back();
    std::vector<int64_t> total(size_t(classes), 0);
    for (int64_t r = begin; r < end; ++r) ++total[size_t(y[rows[size_t(r)]])];
    const int64_t count = end - begin;
    const bool pure = *std::max_element(total.begin(), total.end()) == count;
    std::pair<int64_t, int> split = {-1, 0};
    if (level < options.max_depth && !pure && count >= 2 * options.min_leaf)
      split = best_split(begin, end, total);
    if (split.first < 0) {
      nodes[size_t(index)].counts = int64_t(counts.size());
      counts.insert(counts.end(), total.begin(), total.end());
      ++leaves;
      depth = std::max(depth, level);
      return index;
    }
    const auto [f, b] = split;
    const auto middle = std::partition(rows.begin() + begin, rows.begin() + end, [&](int64_t row) {
      return codes[size_t(row * d + f)] <= b;
    });
    const int64_t mid = int64_t(middle - rows.begin());
    const int32_t left = grow(begin, mid, level + 1);
    const int32_t right = grow(mid, end, level + 1);
    auto& node = nodes[size_t(index)];  // (grow may have moved the vector)
    node.feature = int32_t(f);
    node.threshold = thresholds[size_t(f)][size_t(b)];
    node.left = left;
    node.right = right;
    return index;
  }
};

}  // namespace

ClassificationTree::ClassificationTree(const float* x, const int64_t* y, int64_t n, int64_t d,
                                       int64_t classes, const TreeOptions& options)
    : d_(d), classes_(classes) {
  if (n < 1 || d < 1 || classes < 1)
    throw std::invalid_argument("a tree needs examples, features and classes (n " +
                                std::to_string(n) + ", d " + std::to_string(d) + ", classes " +
                                std::to_string(classes) + ")");
  if (options.bins < 2 || options.bins > 256 || options.max_depth < 0 || options.min_leaf < 1)
    throw std::invalid_argument("tree options: bins in [2, 256], max_depth >= 0, min_leaf >= 1");
  for (int64_t i = 0; i < n; ++i)
    if (y[i] < 0 || y[i] >= classes)
      throw std::invalid_argument("label " + std::to_string(y[i]) + " of example " +
                                  std::to_string(i) + " is outside [0, " + std::to_string(classes) +
                                  ")");
  Grower g{x, y, n, d, classes, options, {}, {}, {}, {}, {}, {}, 0, 0};
  g.make_codes();
  g.rows.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) g.rows[size_t(i)] = i;
  g.hist.assign(size_t(d * options.bins * classes), 0);
  g.grow(0, n, 0);
  nodes_ = std::move(g.nodes);
  counts_ = std::move(g.counts);
  leaves_ = g.leaves;
  depth_ = g.depth;
}

int64_t ClassificationTree::leaf_of(const float* row) const {
  int32_t i = 0;
  while (nodes_[size_t(i)].feature >= 0) {
    const Node& node = nodes_[size_t(i)];
    i = row[node.feature] <= node.threshold ? node.left : node.right;
  }
  return nodes_[size_t(i)].counts;
}

std::vector<double> ClassificationTree::predict_proba(const float* x, int64_t n) const {
  std::vector<double> out(static_cast<size_t>(n * classes_));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t* c = counts_.data() + leaf_of(x + i * d_);
    int64_t sum = 0;
    for (int64_t k = 0; k < classes_; ++k) sum += c[k];
    for (int64_t k = 0; k < classes_; ++k)
      out[size_t(i * classes_ + k)] = double(c[k] + 1) / double(sum + classes_);
  }
  return out;
}

std::vector<int64_t> ClassificationTree::apply(const float* x, int64_t n) const {
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = leaf_of(x + i * d_) / classes_;
  return out;
}

std::vector<int64_t> ClassificationTree::predict(const float* x, int64_t n) const {
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t* c = counts_.data() + leaf_of(x + i * d_);
    out[size_t(i)] = int64_t(std::max_element(c, c + classes_) - c);
  }
  return out;
}

}  // namespace empiric
