#include "claims/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace empiric::claims {

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

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

namespace {

// The regularized incomplete beta I_x(a, b) by its continued fraction (modified Lentz), on the
// side of x where the fraction converges fast.
double incomplete_beta(double x, double a, double b) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incomplete_beta(1 - x, b, a);
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) +
                                a * std::log(x) + b * std::log1p(-x)) /
                       a;
  const double tiny = 1e-300;
  double f = 1, c = 1, d = 0;
  for (int i = 0; i <= 400; ++i) {
    const int m = i / 2;
    double num;
    if (i == 0)
      num = 1;
    else if (i % 2 == 0)
      num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    else
      num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + num * d;
    d = 1 / (std::abs(d) < tiny ? tiny : d);
    c = 1 + num / (std::abs(c) < tiny ? tiny : c);
    const double step = c * d;
    f *= step;
    if (std::abs(1 - step) < 1e-15) break;
  }
  return front * (f - 1);
}

}  // namespace

double student_t_cdf(double t, double df) {
  const double tail = 0.5 * incomplete_beta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

double student_t_quantile(double p, double df) {
  if (p == 0.5) return 0;
  if (p < 0.5) return -student_t_quantile(1 - p, df);
  double lo = 0, hi = 1;
  while (student_t_cdf(hi, df) < p && hi < 1e12) hi *= 2;
  while (hi - lo > 1e-10 * std::max(1.0, hi)) {
    const double mid = (lo + hi) / 2;
    (student_t_cdf(mid, df) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

double expanded_level(double level, int n) {
  if (n < 2) return level;
  const double z =
      std::sqrt(double(n) / double(n - 1)) * student_t_quantile((1 + level) / 2, double(n - 1));
  return std::erf(z / std::sqrt(2.0));  // 2 * Phi(z) - 1
}

namespace {

// The squared standard error of v's mean, s^2 / n (at least 2 values).
double squared_error(const std::vector<double>& v) {
  const double m = mean(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return ss / double(v.size() - 1) / double(v.size());
}

}  // namespace

Interval student_t_interval(const std::vector<double>& v, double level) {
  const size_t n = v.size();
  if (n < 2) return {};
  const double m = mean(v);
  const double half =
      student_t_quantile((1 + level) / 2, double(n - 1)) * std::sqrt(squared_error(v));
  return {m - half, m + half};
}

Interval welch_interval(const std::vector<double>& a, const std::vector<double>& b, double level) {
  if (a.size() < 2 || b.size() < 2) return {};
  const double va = squared_error(a), vb = squared_error(b), d = mean(b) - mean(a);
  if (va + vb == 0) return {d, d};
  const double df =
      (va + vb) * (va + vb) / (va * va / double(a.size() - 1) + vb * vb / double(b.size() - 1));
  const double half = student_t_quantile((1 + level) / 2, df) * std::sqrt(va + vb);
  return {d - half, d + half};
}

namespace {

// An index in [0, n): the generator's output modulo n. std::uniform_int_distribution draws
// differently in each standard library, and mt19937_64's output is fixed by the standard, so the
// same seed gives the same interval everywhere; the modulo's bias is below n / 2^64.
size_t draw(std::mt19937_64& rng, size_t n) { return n == 0 ? 0 : size_t(rng() % uint64_t(n)); }

}  // namespace

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
      for (auto& s : sample[g]) s = int(draw(rng, size_t(group_sizes[g])));
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
  int smallest = 0;
  for (int s : group_sizes)
    if (s > 0) smallest = smallest == 0 ? s : std::min(smallest, s);
  const double level = expanded_level(o.level, smallest);
  return {quantile((1.0 - level) / 2.0), quantile((1.0 + level) / 2.0)};
}

namespace {
// P(X <= k) for X ~ Binomial(n, p).
double binomial_cdf(int k, int n, double p) {
  if (k < 0) return 0.0;
  if (k >= n) return 1.0;
  if (p <= 0.0) return 1.0;
  if (p >= 1.0) return 0.0;
  // The terms in log space, each from the one before: log C(n, i+1) / C(n, i) = log((n-i)/(i+1)).
  const double odds = std::log(p) - std::log1p(-p);
  double log_term = double(n) * std::log1p(-p), sum = 0;
  for (int i = 0; i <= k; ++i) {
    sum += std::exp(log_term);
    log_term += std::log(double(n - i) / double(i + 1)) + odds;
  }
  return std::min(1.0, sum);
}
// The p in [0, 1] where a function decreasing in p crosses `target` (bisection, to 1e-12).
template <class F>
double solve_decreasing(F f, double target) {
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 60; ++i) {
    const double mid = 0.5 * (lo + hi);
    (f(mid) > target ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}
}  // namespace

Interval clopper_pearson(int k, int n, double level) {
  const double tail = (1.0 - level) / 2.0;
  // Lower: P(X >= k | p) = tail, i.e. P(X <= k - 1 | p) = 1 - tail (decreasing in p).
  const double lo =
      k <= 0 ? 0.0
             : solve_decreasing([&](double p) { return binomial_cdf(k - 1, n, p); }, 1.0 - tail);
  // Upper: P(X <= k | p) = tail.
  const double hi =
      k >= n ? 1.0 : solve_decreasing([&](double p) { return binomial_cdf(k, n, p); }, tail);
  return {lo, hi};
}

Interval proportion_difference(int ka, int na, int kb, int nb, double level) {
  const double pa = double(ka) / na, pb = double(kb) / nb;
  const Interval a = clopper_pearson(ka, na, level), b = clopper_pearson(kb, nb, level);
  const double d = pb - pa;
  return {d - std::hypot(pb - b.lo, a.hi - pa), d + std::hypot(b.hi - pb, pa - a.lo)};
}

double null_bootstrap_p(
    const std::vector<std::vector<double>>& groups,
    const std::function<double(const std::vector<std::vector<double>>&)>& statistic,
    double observed, const BootstrapOptions& o) {
  double total = 0;
  size_t count = 0;
  for (const auto& g : groups) {
    for (double y : g) total += y;
    count += g.size();
  }
  const double grand = count > 0 ? total / double(count) : 0.0;
  std::vector<std::vector<double>> centred;
  for (const auto& g : groups) {
    const double m = mean(g);
    const double scale = g.size() > 1 ? std::sqrt(double(g.size()) / double(g.size() - 1)) : 0.0;
    centred.emplace_back();
    for (double y : g) centred.back().push_back(grand + (y - m) * scale);
  }
  std::mt19937_64 rng(o.seed ^ 0x9e3779b97f4a7c15ULL);  // not the interval's draws
  std::vector<std::vector<double>> sample(groups.size());
  int reached = 0, counted = 0;
  for (int r = 0; r < o.resamples; ++r) {
    for (size_t g = 0; g < centred.size(); ++g) {
      sample[g].resize(centred[g].size());
      for (auto& y : sample[g]) y = centred[g][draw(rng, centred[g].size())];
    }
    const double v = statistic(sample);
    if (!std::isfinite(v)) continue;
    ++counted;
    reached += v >= observed;
  }
  return double(1 + reached) / double(1 + counted);
}

double permutation_p(const std::vector<double>& y,
                     const std::function<double(const std::vector<double>&)>& statistic,
                     double observed, const BootstrapOptions& o) {
  std::vector<int> all(y.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = int(i);
  return permutation_p(y, {all}, statistic, observed, o);
}

double permutation_p(const std::vector<double>& y, const std::vector<std::vector<int>>& blocks,
                     const std::function<double(const std::vector<double>&)>& statistic,
                     double observed, const BootstrapOptions& o) {
  std::mt19937_64 rng(o.seed ^ 0x5851f42d4c957f2dULL);  // not the interval's draws
  std::vector<double> shuffled = y;
  int reached = 0, counted = 0;
  for (int r = 0; r < o.resamples; ++r) {
    for (const auto& block : blocks)  // (one block of every place: a plain Fisher-Yates shuffle)
      for (size_t i = block.size(); i > 1; --i)
        std::swap(shuffled[size_t(block[i - 1])], shuffled[size_t(block[draw(rng, i)])]);
    const double v = statistic(shuffled);
    if (!std::isfinite(v)) continue;
    ++counted;
    reached += v >= observed;
  }
  return double(1 + reached) / double(1 + counted);
}

}  // namespace empiric::claims
