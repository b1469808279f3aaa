#include "claims/verdict.h"

#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>

namespace empiric::claims {
namespace {

constexpr int kMinPerGroup = 3;

std::string fmt_num(double v) {
  std::ostringstream os;
  os.precision(3);
  os << v;
  return os.str();
}

}  // namespace

Verdict evaluate_claim(const ClaimTest& t, const std::vector<Observation>& all) {
  Verdict v;
  std::vector<Observation> obs;
  for (const auto& o : all) {
    if (o.diverged)
      ++v.diverged;
    else
      obs.push_back(o);
  }
  v.n = int(obs.size());

  // Groups for the stratified bootstrap, and the statistic of a resampling.
  std::vector<std::vector<const Observation*>> groups;
  if (t.kind == "trend") {
    std::map<double, std::vector<const Observation*>> by_x;
    for (const auto& o : obs) by_x[o.x].push_back(&o);
    for (auto& [x, g] : by_x) groups.push_back(g);
  } else if (t.kind == "compare") {
    std::map<std::string, std::vector<const Observation*>> by_group;
    for (const auto& o : obs) by_group[o.group].push_back(&o);
    if (!by_group.count("a") || !by_group.count("b")) {
      v.verdict = "inconclusive";
      v.reason = std::string("no finished trial at the ") +
                 (by_group.count("a") ? "second (b)" : "first (a)") + " end of the comparison";
      if (v.diverged > 0)
        v.reason += "; " + std::to_string(v.diverged) + " diverged trial(s) there or elsewhere";
      return v;
    }
    groups = {by_group["a"], by_group["b"]};
  } else if (t.kind == "correlate" || t.kind == "threshold") {
    groups.emplace_back();
    for (const auto& o : obs) groups[0].push_back(&o);
  } else {
    throw std::invalid_argument("unknown claim test kind: " + t.kind);
  }

  auto statistic = [&](const std::vector<std::vector<int>>& pick) {
    std::vector<double> xs, ys;
    std::vector<double> a, b;
    for (size_t g = 0; g < groups.size(); ++g)
      for (int i : pick[g]) {
        const Observation* o = groups[g][size_t(i)];
        xs.push_back(o->x);
        ys.push_back(o->y);
        (g == 0 ? a : b).push_back(o->y);
      }
    if (t.kind == "trend") return spearman(xs, ys);
    if (t.kind == "compare") return mean(b) - mean(a);
    if (t.kind == "correlate") return kendall_tau(xs, ys);
    return mean(ys) - t.threshold;
  };
  std::vector<std::vector<int>> identity;
  std::vector<int> sizes;
  for (const auto& g : groups) {
    std::vector<int> idx(g.size());
    for (size_t i = 0; i < g.size(); ++i) idx[i] = int(i);
    identity.push_back(idx);
    sizes.push_back(int(g.size()));
  }
  int smallest = obs.empty() ? 0 : int(obs.size());
  for (int s : sizes) smallest = std::min(smallest, s);
  // A percentile bootstrap over fewer than 3 values per group cannot say how much the groups vary.
  if (obs.size() < 2 || smallest < kMinPerGroup || (t.kind == "trend" && groups.size() < 2)) {
    v.verdict = "inconclusive";
    v.reason = "too few finished trials to test (" + std::to_string(v.n) + " usable, " +
               std::to_string(v.diverged) + " diverged; at least " + std::to_string(kMinPerGroup) +
               " per group needed)";
    if (v.n >= 2 && smallest >= 1 && (t.kind != "trend" || groups.size() >= 2))
      v.effect = statistic(identity);
    return v;
  }
  v.effect = statistic(identity);
  v.ci = bootstrap(sizes, statistic, t.bootstrap);

  const double d = t.direction >= 0 ? 1.0 : -1.0;
  const bool excludes_zero_claimed = d > 0 ? v.ci.lo > 0 : v.ci.hi < 0;
  const bool excludes_zero_other = d > 0 ? v.ci.hi < 0 : v.ci.lo > 0;
  const std::string interval = "[" + fmt_num(v.ci.lo) + ", " + fmt_num(v.ci.hi) + "]";
  if (excludes_zero_claimed && d * v.effect >= t.min_effect) {
    v.verdict = "supported";
    v.reason = "the " + fmt_num(t.bootstrap.level * 100) + "% interval " + interval +
               " excludes 0 in the claimed direction";
  } else if (excludes_zero_other) {
    v.verdict = "refuted";
    v.reason = "the interval " + interval + " excludes 0 on the other side of the claim";
  } else {
    v.verdict = "inconclusive";
    if (excludes_zero_claimed) {
      v.reason = "the effect " + fmt_num(v.effect) +
                 " has the claimed sign but is below the claim's minimum " + fmt_num(t.min_effect);
    } else if (d * v.effect > 0) {
      // Half-widths shrink like 1/sqrt(n): the n at which the interval would just exclude zero.
      const double half = (v.ci.hi - v.ci.lo) / 2.0;
      const double per_group = double(smallest);
      v.seeds_needed = int(std::ceil(per_group * std::pow(half / std::abs(v.effect), 2.0)));
      v.reason = "the interval " + interval + " contains 0; about " +
                 std::to_string(v.seeds_needed) +
                 " seeds per group would decide it if the effect held";
    } else {
      v.reason = "the interval " + interval + " contains 0 and the effect points against the claim";
    }
  }
  if (v.diverged > 0) v.reason += "; " + std::to_string(v.diverged) + " diverged trial(s) left out";
  if (v.missing > 0)
    v.reason += "; " + std::to_string(v.missing) + " trial(s) without the metric left out";
  return v;
}

}  // namespace empiric::claims
