#include "claims/verdict.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace empiric::claims {
namespace {

constexpr int kMinPerGroup = 3;

// Whether the values are not all one: a correlation over one x has no pairs to order.
bool varies(const std::vector<double>& v) {
  return std::adjacent_find(v.begin(), v.end(), std::not_equal_to<>()) != v.end();
}

std::string fmt_num(double v) {
  std::ostringstream os;
  os.precision(3);
  os << v;
  return os.str();
}

// The highest of `m` at an inner position, minus the higher of the lowest values on its two
// sides (m: a curve's means in the order of x, at least 3).
double peak_height(const std::vector<double>& m) {
  size_t k = 1;
  for (size_t g = 1; g + 1 < m.size(); ++g)
    if (m[g] > m[k]) k = g;
  const double left = *std::min_element(m.begin(), m.begin() + long(k));
  const double right = *std::min_element(m.begin() + long(k) + 1, m.end());
  return m[k] - std::max(left, right);
}

// A swept value: whole numbers in full (a batch size of 4096, not 4.1e+03).
std::string fmt_x(double x) {
  if (x == std::floor(x) && std::abs(x) < 1e15) return std::to_string((long long)x);
  return fmt_num(x);
}

}  // namespace

int seeds_to_decide(double effect, const Interval& ci, int direction, int per_group) {
  // The interval's side towards zero, not its half-width: bootstrap intervals are not symmetric,
  // and it is that side which has to pass zero.
  const double towards_zero = direction >= 0 ? effect - ci.lo : ci.hi - effect;
  const double n = double(per_group) * std::pow(towards_zero / std::abs(effect), 2.0);
  if (!(n <= 1e6)) return 0;  // a million seeds (or a NaN) decide nothing here: none would
  return std::max(per_group + 1, int(std::ceil(n)));
}

int trials_to_decide(double share, double threshold, int direction, int trials, double level) {
  for (int n = trials + 1; n <= 20000; n = n < 200 ? n + 1 : n * 11 / 10) {
    const int k = int(std::lround(share * n));
    const Interval p = clopper_pearson(k, n, level);
    if (direction >= 0 ? p.lo > threshold : p.hi < threshold) return n;
  }
  return 0;
}

Verdict evaluate_claim(const ClaimTest& t, const std::vector<Observation>& all) {
  Verdict v;
  v.level = t.bootstrap.level;
  std::vector<Observation> obs;
  int imputed = 0;
  for (const auto& o : all) {
    if (o.diverged)
      ++v.diverged;
    else if (o.missing)
      ++v.missing;
    else
      obs.push_back(o), imputed += o.imputed;  // (counted once: as entered, not as left out)
  }
  v.n = int(obs.size());
  if (t.outcome && t.kind != "threshold" && t.kind != "compare") {
    v.verdict = "inconclusive";
    v.reason = "a yes/no outcome is tested by a threshold or a compare (exact intervals); a " +
               t.kind + " would bootstrap groups that came out all alike to a point";
    return v;
  }

  // Groups for the stratified bootstrap, and the statistic of a resampling.
  std::vector<std::vector<const Observation*>> groups;
  std::vector<Observation> paired_obs;  // paired compare: the seeds' differences
  std::vector<double> pair_a, pair_b;   // and their two arms' values
  std::string paired_note;
  std::string unmeasured;   // why the claim's effect is not measured (interaction: a failed end)
  bool within_logs = true;  // within: distances on a log scale where every x is positive
  if (t.kind == "trend" || t.kind == "peak") {
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
    if (t.paired) {
      // One observation per seed with a trial in each arm: y = b - a.
      std::map<long long, std::pair<const Observation*, const Observation*>> by_seed;
      for (const auto& o : all) {  // diverged and missing ones too: they void their pair
        if (o.group != "a" && o.group != "b") continue;
        auto& slot = o.group == "a" ? by_seed[o.pair].first : by_seed[o.pair].second;
        if (slot) {
          v.verdict = "inconclusive";
          v.reason = "paired by seed, but seed " + std::to_string(o.pair) +
                     " has more than one trial in arm " + o.group +
                     " (another swept axis): restrict the comparison with \"where\"";
          return v;
        }
        slot = &o;
      }
      int unmatched = 0, partnerless = 0;
      for (const auto& [seed, ab] : by_seed) {
        const auto [a, b] = ab;
        if (!a || !b) {
          ++unmatched;
          continue;
        }
        const bool a_used = !a->diverged && !a->missing, b_used = !b->diverged && !b->missing;
        if (!a_used || !b_used) {
          partnerless += a_used || b_used;
          continue;
        }
        Observation d;
        d.y = b->y - a->y;
        d.group = "pair";
        d.imputed = a->imputed && b->imputed;
        paired_obs.push_back(d);
        pair_a.push_back(a->y), pair_b.push_back(b->y);
      }
      groups.assign(1, {});
      for (const auto& d : paired_obs) groups[0].push_back(&d);
      v.n = 2 * int(paired_obs.size());
      if (unmatched > 0)
        paired_note =
            "; " + std::to_string(unmatched) + " seed(s) with a trial in one arm only left out";
      if (partnerless > 0)
        paired_note += "; " + std::to_string(partnerless) +
                       " usable trial(s) left out with their seed's other trial, which diverged "
                       "or lacks the metric";
    }
    // Every trial of both arms diverged and entered with the claim's diverged_as value: the
    // difference (0, or the claim's margin) is then set by the claim, not measured.
    // (Paired: of the trials that entered a pair, a trial without a partner measures nothing.)
    const bool all_imputed =
        t.paired
            ? !paired_obs.empty() && std::all_of(paired_obs.begin(), paired_obs.end(),
                                                 [](const Observation& d) { return d.imputed; })
            : std::all_of(obs.begin(), obs.end(), [](const Observation& o) {
                return o.imputed || (o.group != "a" && o.group != "b");
              });
    if (all_imputed)
      unmeasured =
          "every trial of both arms diverged and entered with the claim's diverged_as "
          "value: the difference is the claim's own, not measured";
  } else if (t.kind == "interaction") {
    // Cells: (min x, a), (min x, b), (max x, a), (max x, b).
    std::map<std::pair<double, std::string>, std::vector<const Observation*>> cells;
    // The ends are the swept ones, whether or not their trials finished: an end where every
    // trial diverged leaves its cells empty (no verdict, its divergences counted), rather than
    // the next x standing in for it.
    double lo_x = INFINITY, hi_x = -INFINITY;
    for (const auto& o : all)
      if (o.group == "a" || o.group == "b") lo_x = std::min(lo_x, o.x), hi_x = std::max(hi_x, o.x);
    for (const auto& o : obs)
      if (o.x == lo_x || o.x == hi_x) cells[{o.x, o.group}].push_back(&o);
    for (double x : {lo_x, hi_x})
      for (const char* g : {"a", "b"}) groups.push_back(cells[{x, g}]);
    if (!(lo_x < hi_x)) groups.resize(1);  // one x value: nothing to compare across
    // The trials at the two ends are the test's; those in between are counted nowhere.
    if (lo_x < hi_x) {
      v.n = 0, v.diverged = 0, v.missing = 0;
      for (const auto& g : groups) v.n += int(g.size());
      for (const auto& o : all)
        if ((o.x == lo_x || o.x == hi_x) && (o.group == "a" || o.group == "b")) {
          v.diverged += o.diverged;
          v.missing += !o.diverged && o.missing;
        }
    }
    // An end where some trials diverged (entered with the claim's diverged_as value) and every
    // other trial of both arms finished there too, e.g. at chance, measures no effect of the
    // factor: every run failed in both arms, and a "difference" of about 0 there would let the
    // other end decide the interaction alone. "There" is within 1 % of the value's scale: a dead
    // network's test accuracy is 0.1000 or 0.1003, depending on a few test examples.
    for (double x : {lo_x, hi_x}) {
      const auto& a = cells[{x, "a"}];
      const auto& b = cells[{x, "b"}];
      if (!(lo_x < hi_x) || a.empty() || b.empty()) continue;
      const Observation* entered = nullptr;
      for (const auto* cell : {&a, &b})
        for (const Observation* o : *cell)
          if (o->imputed && !entered) entered = o;
      if (!entered || !unmeasured.empty()) continue;
      const double failed = entered->y, tolerance = 0.01 * std::max(1.0, std::fabs(failed));
      bool all_failed = true;
      for (const auto* cell : {&a, &b})
        for (const Observation* o : *cell)
          all_failed = all_failed && std::fabs(o->y - failed) <= tolerance;
      if (all_failed)
        unmeasured = "at the " + std::string(x == lo_x ? "smallest" : "largest") + " x (" +
                     fmt_x(x) + ") every trial of both arms diverged or ended within " +
                     fmt_num(tolerance) + " of the value a diverged one enters with (" +
                     fmt_num(failed) + "): the factor's effect is not measured there";
    }
  } else if (t.kind == "within") {
    if (!(t.lo <= t.hi)) {  // (medians of separate lists of bounds can cross)
      v.verdict = "inconclusive";
      v.reason = "the range [" + fmt_num(t.lo) + ", " + fmt_num(t.hi) + "] is empty: its low end " +
                 "is above its high end";
      return v;
    }
    std::map<double, std::vector<const Observation*>> by_x;
    for (const auto& o : obs) by_x[o.x].push_back(&o);
    for (auto& [x, g] : by_x) {
      groups.push_back(g);
      within_logs = within_logs && x > 0;
    }
    within_logs = within_logs && t.lo > 0;
    for (double lo : t.bound_lo) within_logs = within_logs && lo > 0;
  } else if (t.kind == "correlate" || t.kind == "threshold") {
    groups.emplace_back();
    for (const auto& o : obs) groups[0].push_back(&o);
    if (t.kind == "threshold" && !obs.empty() &&
        std::all_of(obs.begin(), obs.end(), [](const Observation& o) { return o.imputed; }))
      unmeasured =
          "every trial diverged and entered with the claim's diverged_as value: the mean is the "
          "claim's own, not measured";
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
    if (t.kind == "trend") return ordered_tau(xs, ys);
    if (t.kind == "peak") {
      std::vector<double> m;
      for (size_t g = 0; g < groups.size(); ++g) {
        std::vector<double> ys_g;
        for (int i : pick[g]) ys_g.push_back(groups[g][size_t(i)]->y);
        m.push_back(mean(ys_g));
      }
      return peak_height(m);
    }
    if (t.kind == "compare" && t.paired) return mean(ys) + t.margin;
    if (t.kind == "compare") return mean(b) - mean(a) + t.margin;
    if (t.kind == "interaction") {
      std::vector<double> cell[4];
      for (size_t g = 0; g < groups.size() && g < 4; ++g)
        for (int i : pick[g]) cell[g].push_back(groups[g][size_t(i)]->y);
      return (mean(cell[3]) - mean(cell[2])) - (mean(cell[1]) - mean(cell[0]));
    }
    if (t.kind == "within") {
      double best_x = NAN, best_y = NAN;
      for (size_t g = 0; g < groups.size(); ++g) {
        std::vector<double> ys;
        for (int i : pick[g]) ys.push_back(groups[g][size_t(i)]->y);
        const double m = mean(ys);
        if (std::isnan(best_y) || (t.best_is_max ? m > best_y : m < best_y))
          best_y = m, best_x = groups[g][0]->x;
      }
      // The range: the bounds' medians, or (resampled with the sweep) those of a resample of
      // the range trials, the pick after the sweep's groups.
      double lo = t.lo, hi = t.hi;
      if (pick.size() > groups.size()) {
        std::vector<double> los, his;
        for (int i : pick.back())
          los.push_back(t.bound_lo[size_t(i)]), his.push_back(t.bound_hi[size_t(i)]);
        lo = median(los), hi = median(his);
        if (!(lo <= hi)) return double(NAN);  // (a resample whose range is empty says nothing)
      }
      if (!within_logs) return best_x - std::clamp(best_x, lo, hi);
      const double l = std::log10(best_x);
      return l - std::clamp(l, std::log10(lo), std::log10(hi));
    }
    if (t.kind == "correlate")  // (one x, a lone trial drawn again and again: says nothing)
      return varies(xs) ? kendall_tau(xs, ys) : double(NAN);
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
  // A group holding several trials of one seed (a lottery chain's rounds, the cells a "where" or
  // a threshold over a grid pools) resamples seeds, each with all its trials: those trials share
  // the seed's initialization, data subset and order (a chain's rounds descend from one
  // another), so it is the seeds that vary independently, and a group's size is its number of
  // seeds. (Not a paired compare's differences, one a seed; not a 0/1 outcome's exact interval.)
  std::vector<std::vector<std::vector<int>>> units(groups.size());
  bool by_seed = false;
  if (!(t.kind == "compare" && t.paired) && !t.outcome) {
    for (size_t g = 0; g < groups.size(); ++g) {
      std::map<long long, std::vector<int>> of_seed;
      for (size_t i = 0; i < groups[g].size(); ++i) {
        const long long seed = groups[g][i]->pair;
        if (seed >= 0)
          of_seed[seed].push_back(int(i));
        else
          units[g].push_back({int(i)});  // (no seed known: a unit of its own)
      }
      for (auto& [seed, idx] : of_seed) {
        by_seed = by_seed || idx.size() > 1;
        units[g].push_back(idx);
      }
    }
  }
  if (by_seed)
    for (size_t g = 0; g < groups.size(); ++g) sizes[g] = int(units[g].size());
  auto resampled = [&](const std::vector<std::vector<int>>& pick) {
    if (!by_seed) return statistic(pick);
    std::vector<std::vector<int>> trials(pick);   // (a within's range trials, after the groups,
    for (size_t g = 0; g < groups.size(); ++g) {  // stay as drawn)
      trials[g].clear();
      for (int u : pick[g])
        for (int i : units[g][size_t(u)]) trials[g].push_back(i);
    }
    return statistic(trials);
  };
  std::string seeds_note;
  if (by_seed && t.kind == "compare")
    seeds_note = "; resampled by seed (" + std::to_string(units[0].size()) + " and " +
                 std::to_string(units[1].size()) +
                 " seeds in arms a and b, each with all its trials)";
  else if (by_seed)
    seeds_note = "; resampled by seed (" + std::to_string(units[0].size()) + " seeds" +
                 (groups.size() > 1 ? " at each x" : "") + ", each with all its trials)";
  int smallest = obs.empty() ? 0 : int(obs.size());
  for (int s : sizes) smallest = std::min(smallest, s);
  // A percentile bootstrap over fewer than 3 values per group cannot say how much the groups vary.
  // (A best x within a range needs two x to choose from.)
  const size_t needed_groups = t.kind == "interaction"                   ? 4
                               : t.kind == "peak"                        ? 3
                               : t.kind == "trend" || t.kind == "within" ? 2
                                                                         : 1;
  if (obs.size() < 2 || smallest < kMinPerGroup || groups.size() < needed_groups) {
    v.verdict = "inconclusive";
    v.reason = "too few finished trials to test (" + std::to_string(v.n) + " usable, " +
               std::to_string(v.diverged) + " diverged; at least " + std::to_string(kMinPerGroup) +
               " per group needed)";
    if (groups.size() < needed_groups &&
        (t.kind == "trend" || t.kind == "peak" || t.kind == "within"))
      v.reason = "too few x values to test: " + std::to_string(groups.size()) +
                 " with a usable trial (" + std::to_string(v.n) + " usable, " +
                 std::to_string(v.diverged) + " diverged); at least " +
                 std::to_string(needed_groups) + " needed";
    if (t.kind == "interaction" && groups.size() == 1 && !obs.empty())
      v.reason = "too few x values to test: 1 with a usable trial (" + std::to_string(v.n) +
                 " usable, " + std::to_string(v.diverged) +
                 " diverged); an interaction compares the smallest x with the largest";
    if (t.paired && t.kind == "compare")
      v.reason += "; paired by seed: " + std::to_string(groups[0].size()) +
                  " seed(s) with a usable trial in both arms" + paired_note;
    if (by_seed) v.reason += "; counted in seeds, not trials" + seeds_note;
    if (v.n >= 2 && smallest >= 1 && groups.size() >= needed_groups) v.effect = statistic(identity);
    return v;
  }
  v.effect = statistic(identity);
  if (!unmeasured.empty()) {  // the effect is shown, but it decides nothing
    v.verdict = "inconclusive";
    v.reason = unmeasured;
    return v;
  }
  // A correlation's first metric must vary to order anything: its tau is otherwise undefined
  // (and its interval [nan, nan] read as one that contains 0).
  std::vector<double> seed_taus;  // correlate by seed: the taus of the seeds whose x varies
  if (t.kind == "correlate") {
    std::vector<double> xs;
    for (const Observation* o : groups[0]) xs.push_back(o->x);
    if (!varies(xs)) {
      v.verdict = "inconclusive";
      v.reason = "x_metric has one value (" + fmt_num(xs[0]) + ") across the " +
                 std::to_string(v.n) + " usable trials: it orders nothing";
      return v;
    }
    // Over several trials of each seed the seeds' own taus decide (below); where x varies only
    // between seeds there are none, and 3 seeds would be 3 points that the bootstrap reads alone.
    if (by_seed) {
      for (const auto& unit : units[0]) {  // (a seed of one trial, or of one x, has no tau)
        std::vector<double> sx, sy;
        for (int i : unit)
          sx.push_back(groups[0][size_t(i)]->x), sy.push_back(groups[0][size_t(i)]->y);
        if (varies(sx)) seed_taus.push_back(kendall_tau(sx, sy));
      }
      if (seed_taus.size() < size_t(kMinPerGroup)) {
        v.verdict = "inconclusive";
        v.reason = "x_metric varies within " + std::to_string(seed_taus.size()) + " of the " +
                   std::to_string(units[0].size()) +
                   " seeds: a correlation over trials that share seeds is read within each "
                   "seed, and needs at least " +
                   std::to_string(kMinPerGroup) + " seeds whose trials' x differ" + seeds_note;
        return v;
      }
    }
  }
  // A range read from a few seeds of its own test varies as the sweep does: its trials are
  // resampled too (the medians were held fixed, as if the range were known exactly).
  const bool resample_bounds = t.kind == "within" && t.bound_lo.size() >= size_t(kMinPerGroup) &&
                               t.bound_lo.size() == t.bound_hi.size();
  if (resample_bounds) sizes.push_back(int(t.bound_lo.size()));
  v.ci = bootstrap(sizes, resampled, t.bootstrap);
  // The mean of one sample (a threshold's values, a paired compare's differences): its resamples'
  // means never leave the values' own range, however far the expanded level reaches, so with 3
  // seeds the interval is [min, max] and "supported" whenever the 3 share a sign, 1 time in 8 with
  // no effect at all (13 % in simulation, against the 2.5 % a side claimed). Student's t interval
  // is taken as well, and of the two the wider end on each side: the t interval's width where
  // seeds are few, the bootstrap's skew where a tail is long.
  // A group's values for a t interval: by seed, the seeds' means, as many as vary independently.
  auto values_of = [&](size_t g) {
    std::vector<double> ys;
    if (by_seed)
      for (const auto& unit : units[g]) {
        double sum = 0;
        for (int i : unit) sum += groups[g][size_t(i)]->y;
        ys.push_back(sum / double(unit.size()));
      }
    else
      for (const Observation* o : groups[g]) ys.push_back(o->y);
    return ys;
  };
  if ((t.kind == "threshold" || (t.kind == "compare" && t.paired)) && !t.outcome) {
    const std::vector<double> ys = values_of(0);
    const Interval s = student_t_interval(ys, t.bootstrap.level);
    const double shift = v.effect - mean(ys);  // the threshold or the margin
    if (s.known()) v.ci = {std::min(v.ci.lo, s.lo + shift), std::max(v.ci.hi, s.hi + shift)};
  }
  // Two arms' means, unpaired: with 3 seeds an arm's resamples never leave its values' range, so
  // the interval is about [min b - max a, max b - min a], and "supported" whenever every b lies
  // above every a, 1 time in 20 with no effect (5 % a side in simulation, against the 2.5 %
  // claimed). Welch's t interval is taken as well, and of the two the wider end on each side.
  // (Resampled by seed: over the seeds' means.)
  if (t.kind == "compare" && !t.paired && !t.outcome) {
    const std::vector<double> a = values_of(0), b = values_of(1);
    const Interval w = welch_interval(a, b, t.bootstrap.level);
    const double shift = v.effect - (mean(b) - mean(a));  // the margin
    if (w.known()) v.ci = {std::min(v.ci.lo, w.lo + shift), std::max(v.ci.hi, w.hi + shift)};
  }
  // A correlation resampled by seed: with 3 seeds its resamples only mix the seeds' own
  // correlations, so three of one sign were "supported" however little they agree (the one-sample
  // problem above, 1 time in 8 on no effect). Student's t interval of the seeds' own taus is
  // taken as well, centred on the effect, and of the two the wider end on each side.
  if (t.kind == "correlate" && by_seed) {
    const Interval s = student_t_interval(seed_taus, t.bootstrap.level);
    const double shift = v.effect - mean(seed_taus);
    if (s.known())  // (a tau lies in [-1, 1])
      v.ci = {std::max(-1.0, std::min(v.ci.lo, s.lo + shift)),
              std::min(1.0, std::max(v.ci.hi, s.hi + shift))};
  }
  // A threshold on a 0/1 outcome (diverged, failed): the exact binomial interval, which does not
  // shrink to a point when every trial came out alike. (Not for a metric that merely came out
  // 0 or 1 everywhere, a training accuracy of 1.0 say: its bootstrap interval is the answer.)
  const bool binary = t.kind == "threshold" && t.outcome;
  if (binary) {
    int k = 0;
    for (const auto& o : obs) k += o.y == 1.0;
    const Interval p = clopper_pearson(k, int(obs.size()), t.bootstrap.level);
    v.ci = {p.lo - t.threshold, p.hi - t.threshold};
  }
  // A compare of two arms' shares of a 0/1 outcome: Newcombe's interval from the arms' exact
  // ones, for the same reason (0 of 3 against 3 of 3 diverged bootstraps to the point [1, 1];
  // paired, the seeds' differences do too). Paired, the pairs' two arms, taken as unpaired.
  if (t.kind == "compare" && t.outcome) {
    int k[2] = {0, 0}, n[2] = {0, 0};
    if (t.paired) {
      for (double y : pair_a) k[0] += y == 1.0;
      for (double y : pair_b) k[1] += y == 1.0;
      n[0] = n[1] = int(pair_a.size());
    } else {
      for (size_t g = 0; g < 2; ++g) {
        for (const Observation* o : groups[g]) k[g] += o->y == 1.0;
        n[g] = int(groups[g].size());
      }
    }
    const Interval p = proportion_difference(k[0], n[0], k[1], n[1], t.bootstrap.level);
    v.ci = {p.lo + t.margin, p.hi + t.margin};
  }
  auto notes = [&]() {
    v.reason += seeds_note;
    if (t.paired && t.kind == "compare")
      v.reason +=
          "; paired by seed over " + std::to_string(groups[0].size()) + " seeds" + paired_note;
    if (v.diverged > 0)
      v.reason += "; " + std::to_string(v.diverged) + " diverged trial(s) left out";
    if (imputed > 0)
      v.reason += "; " + std::to_string(imputed) +
                  " diverged trial(s) entered with the claim's diverged_as value";
    if (v.missing > 0)
      v.reason +=
          "; " + std::to_string(v.missing) +
          " trial(s) without the metric (not recorded, an estimate that did not converge, or a "
          "trial that failed with an error) left out";
  };
  if (t.kind == "within") {
    const std::string range = "[" + fmt_num(t.lo) + ", " + fmt_num(t.hi) + "]";
    const std::string resampled_too = resample_bounds
                                          ? " (the range resampled too, from its " +
                                                std::to_string(t.bound_lo.size()) + " trials)"
                                          : "";
    // A sweep that tried no x inside the range cannot find the best there: its best lying outside
    // refutes nothing (a narrow range between two grid points, or beyond the grid).
    bool tried_inside = false;
    for (const auto& g : groups)
      tried_inside = tried_inside || (g[0]->x >= t.lo && g[0]->x <= t.hi);
    if (v.ci.lo >= 0 && v.ci.hi <= 0) {
      v.verdict = "supported";
      v.reason = "the best x lies inside " + range + " in at least " +
                 fmt_num(t.bootstrap.level * 100) + "% of the resamples" + resampled_too;
    } else if ((v.ci.lo > 0 || v.ci.hi < 0) && !tried_inside) {
      v.verdict = "inconclusive";
      v.reason = "no swept x lies inside " + range + ": that the best of those swept lies " +
                 (v.ci.lo > 0 ? "above" : "below") + " it says nothing of a value inside it" +
                 resampled_too;
    } else if (v.ci.lo > 0 || v.ci.hi < 0) {
      v.verdict = "refuted";
      v.reason = "the best x lies " + std::string(v.ci.lo > 0 ? "above " : "below ") + range +
                 " in at least " + fmt_num(t.bootstrap.level * 100) + "% of the resamples" +
                 resampled_too;
    } else {
      v.verdict = "inconclusive";
      v.reason = "the best x falls inside " + range + " in some resamples and outside in others" +
                 resampled_too;
    }
    notes();
    return v;
  }

  if (t.kind == "compare" && t.equivalence > 0) {
    // Equivalence, as two one-sided tests: b - a above -e at the interval's lower side and
    // below +e at its upper one.
    const double e = t.equivalence;
    const std::string interval = "[" + fmt_num(v.ci.lo) + ", " + fmt_num(v.ci.hi) + "]",
                      band = "(-" + fmt_num(e) + ", " + fmt_num(e) + ")";
    if (v.ci.lo > -e && v.ci.hi < e) {
      v.verdict = "supported";
      v.reason = "the " + fmt_num(t.bootstrap.level * 100) + "% interval " + interval +
                 " of b - a lies inside " + band;
    } else if (v.ci.lo >= e || v.ci.hi <= -e) {
      v.verdict = "refuted";
      v.reason = "the interval " + interval + " of b - a lies wholly outside " + band;
    } else {
      v.verdict = "inconclusive";
      v.reason = "the interval " + interval + " of b - a reaches outside " + band +
                 (std::fabs(v.effect) < e ? "" : ", and the effect itself is outside it");
    }
    notes();
    return v;
  }
  const double d = t.direction >= 0 ? 1.0 : -1.0;
  const bool excludes_zero_claimed = d > 0 ? v.ci.lo > 0 : v.ci.hi < 0;
  // A peak is found again in every resampling, so on a flat curve the highest inner mean rises
  // above its sides by chance, and the bootstrap's interval with it (3 seeds at each of 12 x on
  // a flat curve: "supported" 45 % of the time). A rise that a flat curve with the same spread
  // at every x reaches as often is no peak: that p-value must pass the interval's one side too
  // (in simulation 2.5-5 % of flat curves then pass, 7 or 12 x by 3 or 5 seeds).
  // (Whichever direction is claimed: a flat curve's interval that leans upward would refute a
  // claim of no peak as often.)
  // Whether the p-value of the null (`null`, what reaches the effect as often) fails the
  // interval's one side: then the verdict is inconclusive, and says so.
  // The p-value as computed, (1 + those that reach the effect) / (1 + all), with how many: not a
  // share of them (none of 2,000 reaching it is p = 0.0005).
  auto null_p = [&](const std::string& unit) {
    return "p = " + fmt_num(v.p_value) + " over " + std::to_string(t.bootstrap.resamples) + " " +
           unit;
  };
  auto fails_null = [&](const std::string& null, const std::string& unit) {
    if (v.p_value <= (1.0 - t.bootstrap.level) / 2.0) return false;
    v.verdict = "inconclusive";
    v.reason = "the interval " + fmt_num(v.ci.lo) + " to " + fmt_num(v.ci.hi) +
               " excludes 0, but " + null + ": " + null_p(unit) + " (a " + t.kind +
               " needs p under " + fmt_num((1.0 - t.bootstrap.level) / 2.0) + ")";
    notes();
    return true;
  };
  if (t.kind == "peak" && v.ci.lo > 0) {
    std::vector<std::vector<double>> ys(groups.size());
    for (size_t g = 0; g < groups.size(); ++g)
      for (const Observation* o : groups[g]) ys[g].push_back(o->y);
    v.p_value = null_bootstrap_p(
        ys,
        [](const std::vector<std::vector<double>>& shuffled) {
          std::vector<double> m;
          for (const auto& g : shuffled) m.push_back(mean(g));
          return peak_height(m);
        },
        v.effect, t.bootstrap);
    if (fails_null("flat curves with the trials' spread rise as high", "resamples")) return v;
  }
  // A trend over few x values can order the trials perfectly by chance (2 x by 3 seeds: 1 time
  // in 20), and every resample of a perfectly ordered set has tau 1, so its interval is [1, 1]
  // (with no trend, "supported" 5 % of the time at 2 x by 3 seeds, 4 % at 3 x, in simulation):
  // the order must also be rare among the trials' values shuffled across x, at the interval's
  // one side. (Where there are more x or seeds an interval that excludes 0 passes this anyway.)
  if (t.kind == "trend" && (v.ci.lo > 0 || v.ci.hi < 0)) {
    std::vector<double> xs, ys;
    for (const auto& g : groups)
      for (const Observation* o : g) xs.push_back(o->x), ys.push_back(o->y);
    const double side = v.ci.lo > 0 ? 1.0 : -1.0;
    v.p_value = permutation_p(
        ys, [&](const std::vector<double>& y) { return side * ordered_tau(xs, y); },
        side * v.effect, t.bootstrap);
    if (fails_null("the trials' values shuffled across x order as strongly", "shuffles")) return v;
  }
  // A correlation over few trials orders them perfectly by chance as a trend does (3 trials: 1
  // time in 6, and every resample then has tau 1: "supported" 17 % of the time on no relation, 4 %
  // over 4 trials, in simulation), and 3 seeds' taus can agree closely by chance, which narrows
  // their t interval: y shuffled across the trials (by seed: within each seed, whose own level
  // is no evidence) must rarely correlate as strongly, at the interval's one side.
  const std::string correlate_null = by_seed
                                         ? "y shuffled within each seed correlates as strongly"
                                         : "y shuffled across the trials correlates as strongly";
  if (t.kind == "correlate" && (v.ci.lo > 0 || v.ci.hi < 0)) {
    std::vector<double> xs, ys;
    for (const Observation* o : groups[0]) xs.push_back(o->x), ys.push_back(o->y);
    const double side = v.ci.lo > 0 ? 1.0 : -1.0;
    auto tau = [&](const std::vector<double>& y) { return side * kendall_tau(xs, y); };
    v.p_value = by_seed ? permutation_p(ys, units[0], tau, side * v.effect, t.bootstrap)
                        : permutation_p(ys, tau, side * v.effect, t.bootstrap);
    if (fails_null(correlate_null, "shuffles")) return v;
  }
  const bool excludes_zero_other = d > 0 ? v.ci.hi < 0 : v.ci.lo > 0;
  const std::string interval = "[" + fmt_num(v.ci.lo) + ", " + fmt_num(v.ci.hi) + "]";
  if (excludes_zero_claimed && d * v.effect >= t.min_effect) {
    v.verdict = "supported";
    v.reason = "the " + fmt_num(t.bootstrap.level * 100) + "% interval " + interval +
               " excludes 0 in the claimed direction";
    if (std::isfinite(v.p_value) && t.kind == "peak")
      v.reason +=
          " (and flat curves with the trials' spread rise as high: " + null_p("resamples") + ")";
    if (std::isfinite(v.p_value) && t.kind == "trend" && v.p_value > 1e-3)
      v.reason +=
          " (and the values shuffled across x order as strongly: " + null_p("shuffles") + ")";
    if (std::isfinite(v.p_value) && t.kind == "correlate" && v.p_value > 1e-3)
      v.reason += " (and " + correlate_null + ": " + null_p("shuffles") + ")";
    // The minimum is a bar for the estimate; say so where the interval reaches below it.
    const double near_end = d > 0 ? v.ci.lo : v.ci.hi;
    if (t.min_effect > 0 && d * near_end < t.min_effect)
      v.reason += "; the effect " + fmt_num(v.effect) + " meets the claim's minimum " +
                  fmt_num(t.min_effect) + ", the interval's near end " + fmt_num(near_end) +
                  " does not (the minimum is checked on the estimate)";
  } else if (excludes_zero_other) {
    v.verdict = "refuted";
    v.reason = "the interval " + interval + " excludes 0 on the other side of the claim";
  } else {
    v.verdict = "inconclusive";
    if (excludes_zero_claimed) {
      v.reason = "the effect " + fmt_num(v.effect) +
                 " has the claimed sign but is below the claim's minimum " + fmt_num(t.min_effect);
    } else if (d * v.effect > 0 && d * v.effect < t.min_effect) {
      v.reason = "the interval " + interval + " contains 0, and the effect " + fmt_num(v.effect) +
                 ", though of the claimed sign, is below the claim's minimum " +
                 fmt_num(t.min_effect) + ": more seeds would not support it as measured";
    } else if (d * v.effect > 0) {
      v.seeds_needed = binary ? trials_to_decide(v.effect + t.threshold, t.threshold, t.direction,
                                                 smallest, t.bootstrap.level)
                              : seeds_to_decide(v.effect, v.ci, t.direction, smallest);
      std::string more;
      if (binary)
        more = (v.seeds_needed == 0 ? std::string("no number of trials up to 20,000")
                                    : std::to_string(v.seeds_needed) + " trials") +
               " would decide it if the share held (exact binomial)";
      else {
        // What the count counts: trials pooled in one group, seeds paired, or seeds per group.
        const bool pooled = t.kind == "correlate" || t.kind == "threshold";
        const std::string unit = pooled     ? (by_seed ? " seeds in all" : " trials in all")
                                 : t.paired ? " seeds (pairs)"
                                            : " seeds per group";
        more = (v.seeds_needed == 0 ? "not even a million" + unit
                                    : "at most about " + std::to_string(v.seeds_needed) + unit) +
               " would decide it if the effect held";
      }
      v.reason = "the interval " + interval + " contains 0; " + more;
    } else if (v.effect == 0) {
      v.reason = "the interval " + interval + " contains 0 and the effect is 0";
    } else {
      v.reason = "the interval " + interval + " contains 0 and the effect points against the claim";
    }
  }
  notes();
  return v;
}

}  // namespace empiric::claims
