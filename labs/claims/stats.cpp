#include "claims/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace empiric::claims {

double mean(const std::vector<double>& v) {
  return v.empty() ? NAN : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

double kendall_tau(const std::vector<double>& x, const std::vector<double>& y) {
  double concordant = 0, discordant = 0, ties_x = 0, ties_y = 0;
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t j = i + 1; j < x.size(); ++j) {
      const double dx = x[i] - x[j], dy = y[i] - y[j];
      if (dx == 0 && dy == 0) continue;
      if (dx == 0)
        ties_x += 1;
      else if (dy == 0)
        ties_y += 1;
      else if ((dx > 0) == (dy > 0))
        concordant += 1;
      else
        discordant += 1;
    }
  const double denom =
      std::sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y));
  return denom > 0 ? (concordant - discordant) / denom : 0.0;
}

double ordered_tau(const std::vector<double>& x, const std::vector<double>& y) {
  double score = 0, pairs = 0;
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t j = i + 1; j < x.size(); ++j) {
      const double dx = x[i] - x[j], dy = y[i] - y[j];
      if (dx == 0) continue;
      pairs += 1;
      if (dy != 0) score += (dx > 0) == (dy > 0) ? 1 : -1;
    }
  return pairs > 0 ? score / pairs : 0.0;
}

Interval bootstrap(const std::vector<int>& group_sizes,
                   const std::function<double(const std::vector<std::vector<int>>&)>& statistic,
                   const BootstrapOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::vector<double> stats;
  stats.reserve(size_t(o.resamples));
  std::vector<std::vector<int>> sample(group_sizes.size());
  for (int r = 0; r < o.resamples; ++r) {
    for (size_t g = 0; g < group_sizes.size(); ++g) {
      sample[g].resize(size_t(group_sizes[g]));
      std::uniform_int_distribution<int> pick(0, std::max(0, group_sizes[g] - 1));
      for (auto& s : sample[g]) s = pick(rng);
    }
    const double v = statistic(sample);
    if (std::isfinite(v)) stats.push_back(v);
  }
  if (stats.empty()) return {NAN, NAN};
  std::sort(stats.begin(), stats.end());
  auto quantile = [&](double q) {
    const double pos = q * double(stats.size() - 1);
    const size_t lo = size_t(std::floor(pos));
    const size_t hi = std::min(stats.size() - 1, lo + 1);
    return stats[lo] + (pos - double(lo)) * (stats[hi] - stats[lo]);
  };
  return {quantile((1.0 - o.level) / 2.0), quantile((1.0 + o.level) / 2.0)};
}

}  // namespace empiric::claims
