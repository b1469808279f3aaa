#include "claims/claim.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "core/errors.h"
#include "core/schema.h"

namespace empiric::claims {
namespace {

// The node a dotted key names in a config, or null.
json config_node(const json& config, const std::string& dotted) {
  const json* node = &config;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    std::string key =
        dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(key)) return json();
    node = &(*node)[key];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return *node;
}

// A one-number list (model.widths [64]) reads as that number.
json one_number(const json& v) {
  return v.is_array() && v.size() == 1 && v[0].is_number() ? v[0] : v;
}

// A key's value for a trial: its config's, else a metric (as a number), else null.
json trial_value(const TrialRecord& t, const std::string& key) {
  json node = one_number(config_node(t.config, key));
  if (!node.is_null()) return node;
  const double m = metric_value(t, key);
  return std::isfinite(m) ? json(m) : json();
}

bool same(const json& value, const json& want) {
  if (value.is_number() && want.is_number()) return value.get<double>() == want.get<double>();
  if (value.is_number() && want.is_boolean()) return value.get<double>() == (want.get<bool>() ? 1 : 0);
  return value == want;
}

// {"optim.name": "sgd", "lr_x_hessian_init": {"max": 1.9}}: every condition holds.
bool matches(const TrialRecord& t, const json& conditions) {
  for (const auto& [key, want] : conditions.items()) {
    const json value = trial_value(t, key);
    if (is_range(want)) {
      if (!value.is_number()) return false;
      const double v = value.get<double>();
      if (want.contains("min") && v < want["min"].get<double>()) return false;
      if (want.contains("max") && v > want["max"].get<double>()) return false;
    } else if (!same(value, want)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool is_range(const json& want) {
  if (!want.is_object() || want.empty()) return false;
  for (const auto& [k, v] : want.items())
    if (k != "min" && k != "max") return false;
  return true;
}

double metric_value(const TrialRecord& t, const std::string& name) {
  if (name == "diverged") return t.status == "diverged" ? 1.0 : 0.0;
  if (name == "failed") {
    if (t.status != "finished") return 1.0;
    const double loss = metric_value(t, "train_loss"), chance = metric_value(t, "chance_loss");
    // A regression has no chance level: failed is diverged there. A finished classifier that
    // recorded no training loss: not known.
    if (!std::isfinite(chance)) return 0.0;
    if (!std::isfinite(loss)) return NAN;
    // Within 0.1 % of the chance loss is at chance (a batch-4096 run at 2.3016 against ln 10 =
    // 2.3026 learned nothing, its test accuracy 0.100, and counted as learning); and so is what
    // learning the training set's class frequencies alone gains, about (K - 1) / 2N below ln K
    // for N examples (twice that allowed: 0.009 on 1,000 examples of 10 classes, where
    // zero-initialized networks ended at 2.2960 to 2.3000 with test accuracy 0.100).
    double slack = kChanceTolerance * chance;
    const double n = t.summary.contains("data") && t.summary["data"].is_object()
                         ? t.summary["data"].value("train", 0.0)
                         : 0.0;
    if (n > 0) slack = std::max(slack, (std::exp(chance) - 1.0) / n);
    return loss >= chance - slack ? 1.0 : 0.0;
  }
  // A top Hessian eigenvalue whose power iteration did not converge (|lambda_min| close to
  // lambda_max stalls it) is no top eigenvalue, nor an eps-sharpness whose ascent still climbed at
  // its last step the largest rise: not known, so left out and counted, not averaged. (Their
  // diagnostics, _converged, _iterations, _steps, _residual and _shift, read as recorded.)
  auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
  const bool diagnostic =
      has("_converged") || has("_iterations") || has("_steps") || has("_residual") || has("_shift");
  for (const char* measure : {"hessian_top", "eps_sharpness"}) {
    const std::string m = measure;
    if (diagnostic || name.rfind(m, 0) != 0) continue;
    std::vector<std::string> flags;
    if (name.rfind("hessian_top_init", 0) == 0)
      flags = {"hessian_top_init_converged"};
    else {
      if (!has("_dinh") || has("_ratio")) flags.push_back(m + "_converged");
      if (has("_dinh")) flags.push_back(m + "_converged_dinh");
    }
    for (const auto& flag : flags)
      for (const json* source : {&t.summary, &t.measures})
        if (source->contains(flag) && (*source)[flag].is_boolean() && !(*source)[flag].get<bool>())
          return NAN;
  }
  for (const json* source : {&t.summary, &t.measures})
    if (source->contains(name)) {
      const json& v = (*source)[name];
      if (v.is_number()) return v.get<double>();
      if (v.is_boolean()) return v.get<bool>() ? 1.0 : 0.0;  // flags such as reached_train_loss
    }
  // test_error, train_error, val_error: 1 - the accuracy.
  const std::string suffix = "_error";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    const double acc = metric_value(t, name.substr(0, name.size() - suffix.size()) + "_acc");
    return std::isfinite(acc) ? 1.0 - acc : NAN;
  }
  return NAN;
}

double config_value(const json& config, const std::string& dotted) {
  const json node = one_number(config_node(config, dotted));
  return node.is_number() ? node.get<double>() : NAN;
}

std::vector<std::string> claim_configs(const json& c) {
  std::vector<std::string> out = {c["config"].get<std::string>()};
  const json& t = c["test"];
  if (t.contains("bounds") && t["bounds"].contains("config"))
    out.push_back(t["bounds"]["config"].get<std::string>());
  return out;
}

void check_claim(const json& c, const std::string& where) {
  auto need = [&](const json& obj, const char* key, const std::string& ptr) {
    if (!obj.contains(key))
      throw ConfigError(where, ptr + "/" + key, "",
                        "missing; a claim needs id, statement, config and test");
  };
  need(c, "id", "");
  need(c, "statement", "");
  need(c, "config", "");
  need(c, "test", "");
  if (!c["test"].is_object())
    throw ConfigError(where, "/test", c["test"].dump(), "expected an object with kind and metric");
  const json& t = c["test"];
  // A misspelt key ("thresold") would be read as absent, its default taken without a word.
  auto known_keys = [&](const json& obj, const std::string& at,
                        const std::vector<std::string>& keys) {
    for (const auto& [key, value] : obj.items())
      if (std::find(keys.begin(), keys.end(), key) == keys.end())
        throw ConfigError(where, at + "/" + key, "", unknown_key_message(key, keys));
  };
  known_keys(c, "", {"id", "statement", "config", "test"});
  known_keys(t, "/test", {"kind",  "metric",      "direction",  "x",        "a",          "b",
                          "where", "threshold",   "min_effect", "margin",   "best_over",  "best_by",
                          "best",  "diverged_as", "paired",     "x_metric", "factor",     "bounds",
                          "mark",  "level",       "resamples",  "seed",     "equivalence"});
  need(t, "kind", "/test");
  need(t, "metric", "/test");
  // Types, where they are given: names are strings, the test's numbers numbers.
  for (const auto& [obj, ptr, key] :
       {std::tuple<const json*, const char*, const char*>{&c, "", "id"},
        {&c, "", "statement"},
        {&c, "", "config"},
        {&t, "/test", "metric"},
        {&t, "/test", "x"},
        {&t, "/test", "x_metric"},
        {&t, "/test", "factor"},
        {&t, "/test", "best_over"}})
    if (obj->contains(key) && !(*obj)[key].is_string())
      throw ConfigError(where, std::string(ptr) + "/" + key, (*obj)[key].dump(),
                        "expected a string");
  for (const char* key :
       {"min_effect", "threshold", "margin", "level", "resamples", "seed", "equivalence"})
    if (t.contains(key) && !t[key].is_number())
      throw ConfigError(where, std::string("/test/") + key, t[key].dump(), "expected a number");
  if (t.contains("level") && !(t["level"].get<double>() > 0.5 && t["level"].get<double>() < 1))
    throw ConfigError(where, "/test/level", t["level"].dump(),
                      "expected a confidence level between 0.5 and 1 (0.95: a 95 % interval)");
  if (t.contains("resamples") &&
      !(t["resamples"].get<double>() >= 1000 && t["resamples"].get<double>() <= 1e6 &&
        t["resamples"].get<double>() == std::floor(t["resamples"].get<double>())))
    throw ConfigError(where, "/test/resamples", t["resamples"].dump(),
                      "expected a whole number of resamples from 1000 to 1000000");
  // A trend's or a peak's p-value is at least 1 / (resamples + 1): it must be able to pass the
  // interval's one side, (1 - level) / 2.
  if (t.contains("level") || t.contains("resamples")) {
    const double level = t.value("level", 0.95), resamples = t.value("resamples", 2000.0);
    if (1.0 / (resamples + 1.0) > (1.0 - level) / 2.0)
      throw ConfigError(where, "/test/resamples", json(resamples).dump(),
                        "at level " + json(level).dump() + " expected at least " +
                            std::to_string(int(std::ceil(2.0 / (1.0 - level) - 1.0))) +
                            " resamples, so that a p-value can pass (1 - level) / 2");
  }
  if (t.contains("bounds") &&
      !(t["bounds"].is_object() && t["bounds"].value("config", json()).is_string()))
    throw ConfigError(where, "/test/bounds", t["bounds"].dump(),
                      "expected {\"config\": file, \"lo\": metric, \"hi\": metric}");
  static const std::set<std::string> kinds = {"trend",       "compare", "correlate", "threshold",
                                              "interaction", "within",  "peak"};
  if (!t["kind"].is_string() || !kinds.count(t["kind"].get<std::string>()))
    throw ConfigError(
        where, "/test/kind", t["kind"].dump(),
        "expected one of: trend, compare, correlate, threshold, interaction, within, peak");
  const std::string kind = t["kind"];
  if (kind == "trend" || kind == "compare" || kind == "interaction" || kind == "within" ||
      kind == "peak")
    need(t, "x", "/test");
  if (t.contains("mark") &&
      !(t["mark"].is_object() && t["mark"].contains("metric") &&
        (t["mark"].contains("at_least") || t["mark"].contains("at_most"))))
    throw ConfigError(where, "/test/mark", t["mark"].dump(),
                      "expected {\"metric\": name, \"at_least\" or \"at_most\": value}");
  if (kind == "compare" || kind == "interaction") {
    need(t, "a", "/test");
    need(t, "b", "/test");
  }
  if (kind == "interaction") need(t, "factor", "/test");
  if (kind == "correlate") need(t, "x_metric", "/test");
  if (kind == "threshold") need(t, "threshold", "/test");
  if (kind == "within") {
    need(t, "bounds", "/test");
    for (const char* k : {"config", "lo", "hi"}) need(t["bounds"], k, "/test/bounds");
  }
  if (t.contains("min_effect") && t["min_effect"].get<double>() < 0)
    throw ConfigError(where, "/test/min_effect", t["min_effect"].dump(),
                      "expected a number >= 0 (the smallest effect in the claimed direction; a "
                      "non-inferiority claim takes a margin)");
  if (t.contains("equivalence")) {
    const json& e = t["equivalence"];
    if (kind != "compare")
      throw ConfigError(where, "/test/equivalence", e.dump(),
                        "only a compare tests two arms for equivalence");
    if (!(e.get<double>() > 0))
      throw ConfigError(where, "/test/equivalence", e.dump(),
                        "expected a number > 0: the half-width of the band b - a is claimed "
                        "within");
    // Two-sided: a claimed direction, a one-sided margin or a minimum would say the opposite.
    for (const char* other : {"direction", "margin", "min_effect"})
      if (t.contains(other))
        throw ConfigError(where, std::string("/test/") + other, t[other].dump(),
                          "an equivalence claim is two-sided (|b - a| < equivalence); allowed: "
                          "no " +
                              std::string(other) + " beside equivalence");
  }
  if (t.contains("direction") && !(t["direction"] == 1 || t["direction"] == -1))
    throw ConfigError(where, "/test/direction", t["direction"].dump(), "expected 1 or -1");
  if (t.contains("where") && !t["where"].is_object())
    throw ConfigError(where, "/test/where", t["where"].dump(),
                      "expected an object: key -> value or {\"min\": v, \"max\": v}");
  // A condition object is a range ({"min", "max"} only) or a value to equal (a map such as
  // optim.lr_mult's): one that mixes the two is a misspelt range, which would match nothing.
  auto check_conditions = [&](const json& conditions, const std::string& at) {
    for (const auto& [key, want] : conditions.items())
      if (want.is_object() && !is_range(want) && (want.contains("min") || want.contains("max")))
        throw ConfigError(where, at + "/" + key, want.dump(),
                          "a range takes only \"min\" and \"max\"; allowed: {\"min\": v, "
                          "\"max\": v}, or a value to equal");
  };
  if (t.contains("where")) check_conditions(t["where"], "/test/where");
  for (const char* side : {"a", "b"})
    if (t.contains(side) && t[side].is_object()) {
      if (t[side].empty())
        throw ConfigError(where, std::string("/test/") + side, "{}",
                          "an empty set of conditions selects every trial; allowed: a value of "
                          "x, \"min\", \"max\" or conditions {key: value}");
      check_conditions(t[side], std::string("/test/") + side);
    }
  if (t.contains("best") && !(t["best"] == "max" || t["best"] == "min"))
    throw ConfigError(where, "/test/best", t["best"].dump(), "expected \"max\" or \"min\"");
  if (t.contains("best_by") && !(t["best_by"].is_string() && t.contains("best_over")))
    throw ConfigError(where, "/test/best_by", t["best_by"].dump(),
                      "expected a metric name, with best_over naming the key it chooses");
  if (t.contains("paired") && !(t["paired"].is_boolean() && kind == "compare"))
    throw ConfigError(where, "/test/paired", t["paired"].dump(),
                      kind == "compare" ? "expected true or false"
                                        : "only a compare pairs its arms' trials by seed");
  if ((t["metric"] == "diverged" || t["metric"] == "failed") && kind != "threshold" &&
      kind != "compare")
    throw ConfigError(where, "/test/metric", t["metric"].dump(),
                      "a yes/no outcome is tested by a threshold or a compare (exact intervals); "
                      "a " +
                          kind + " would bootstrap groups that came out all alike to a point");
  if (t.contains("diverged_as") && !t["diverged_as"].is_number())
    throw ConfigError(where, "/test/diverged_as", t["diverged_as"].dump(), "expected a number");
}

ObservationSet observations_for(const json& c, const std::vector<TrialRecord>& trials) {
  const json& t = c["test"];
  const std::string kind = t["kind"], metric = t["metric"];
  const bool always_defined = metric == "diverged" || metric == "failed";
  const bool best_max = t.value("best", std::string("max")) == "max";
  ObservationSet set;

  std::vector<size_t> kept;
  int lacking = 0, lacking_diverged = 0;  // left out by "where" for want of its key's value
  std::string lacked;
  for (size_t i = 0; i < trials.size(); ++i) {
    if (!t.contains("where") || matches(trials[i], t["where"])) {
      kept.push_back(i);
      continue;
    }
    // Counted when a metric it names (a key without a dot: config keys are dotted) has no value
    // for the trial and every other condition holds: left out for want of that metric alone,
    // not for a config value (a linear model has no model.widths) or another condition.
    std::string missing_metric;
    bool others_hold = true;
    for (const auto& [key, want] : t["where"].items()) {
      if (trial_value(trials[i], key).is_null() && key.find('.') == std::string::npos &&
          key != "seed") {
        if (missing_metric.empty()) missing_metric = key;
      } else if (!matches(trials[i], json{{key, want}})) {
        others_hold = false;
      }
    }
    if (!missing_metric.empty() && others_hold) {
      ++lacking, lacking_diverged += trials[i].status == "diverged";
      if (lacked.empty()) lacked = missing_metric;
    }
  }
  // Counted, not dropped in silence: a metric in "where" that a trial did not record (it
  // diverged, or an estimate did not converge) leaves it out of the claim.
  if (lacking > 0)
    set.notes["where_lacking"] = {
        {"trials", lacking}, {"diverged", lacking_diverged}, {"key", lacked}};

  // compare / interaction: the key the groups are taken on, and "min"/"max" resolved over it.
  const std::string group_key =
      kind == "interaction" ? t["factor"].get<std::string>() : t.value("x", std::string());
  auto resolve = [&](const json& sel) -> json {
    if (!(sel == "min" || sel == "max")) return sel;
    std::vector<double> xs;
    for (size_t i : kept) {  // the key may be a metric, as it may be for the groups
      const json x = trial_value(trials[i], group_key);
      if (x.is_number()) xs.push_back(x.get<double>());
    }
    if (xs.empty()) return json();
    return sel == "min" ? *std::min_element(xs.begin(), xs.end())
                        : *std::max_element(xs.begin(), xs.end());
  };
  const bool grouped = kind == "compare" || kind == "interaction";
  // (A one-number list reads as that number on the selector's side too.)
  const json a_sel = grouped ? one_number(resolve(t["a"])) : json(),
             b_sel = grouped ? one_number(resolve(t["b"])) : json();
  // What "min" and "max" came to (the report's ticks name the value, not the word).
  for (const auto& [g, sel] : {std::pair<const char*, const json*>{"a", &a_sel}, {"b", &b_sel}})
    if (grouped && t[g].is_string() && (t[g] == "min" || t[g] == "max") && !sel->is_null())
      set.notes[std::string(g) + "_value"] = *sel;
  auto group_of = [&](const TrialRecord& tr) -> std::string {
    for (const auto& [name, sel] : {std::pair<const char*, const json*>{"a", &a_sel}, {"b", &b_sel}})
      if (sel->is_object() ? matches(tr, *sel) : same(trial_value(tr, group_key), *sel))
        return name;
    return "";
  };
  auto y_of = [&](const TrialRecord& tr) {
    if (tr.status != "finished" && !always_defined && t.contains("diverged_as"))
      return t["diverged_as"].get<double>();
    return metric_value(tr, metric);
  };

  // best_over: within each group, keep the trials at the value with the best mean metric.
  std::map<std::string, std::string> best_value;  // group -> dumped value of the best_over key
  if (kind == "compare" && t.contains("best_over")) {
    const std::string key = t["best_over"];
    std::map<std::string, std::map<std::string, std::vector<double>>> ys;
    for (size_t i : kept) {
      const TrialRecord& tr = trials[i];
      const std::string g = group_of(tr);
      if (g.empty()) continue;
      auto& cell = ys[g][config_node(tr.config, key).dump()];
      // A run that diverged chooses as the worst there is, where the claim enters diverged runs
      // (diverged_as): its best_by metric is missing or from before it diverged, and a value
      // whose other seeds survived must not win on them alone.
      const bool worst = t.contains("best_by") && tr.status == "diverged" && !always_defined &&
                         t.contains("diverged_as");
      const double y = worst                   ? (best_max ? -INFINITY : INFINITY)
                       : t.contains("best_by") ? metric_value(tr, t["best_by"])
                                               : y_of(tr);
      const bool usable =  // a trial that failed (crashed) measured nothing
          tr.status == "finished" ||
          (tr.status == "diverged" && (always_defined || t.contains("diverged_as")));
      if (usable && (worst || std::isfinite(y))) cell.push_back(y);
    }
    for (auto& [g, by_value] : ys) {
      // Only values with enough usable trials to test (3) compete, where any has them: a value
      // whose runs mostly diverged (and carry no metric) would win on its one survivor, then
      // leave its group too few trials to decide anything.
      size_t enough = 0;
      for (auto& [value, list] : by_value)
        enough = std::max(enough, std::min<size_t>(list.size(), 3));
      // A tie (accuracies are counts: Q76's AdamW at 3e-4 and 1e-3 both averaged 0.8952 of
      // validation) goes to the smaller value, numbers by number (it went to the first in text
      // order, 0.0001 before 1e-05), and is noted: validation did not choose it.
      auto before = [](const std::string& a, const std::string& b) {
        const json x = json::parse(a), y = json::parse(b);
        return x.is_number() && y.is_number() ? x.get<double>() < y.get<double>() : a < b;
      };
      // Ranked by the runs that diverged (entered as the worst: fewer first), then by the mean of
      // the others: where every value had a run diverge, each mean was the worst there is, no
      // two compared (their difference NaN), and the first in text order won unnoted.
      double best = NAN;
      size_t best_worst = 0;
      std::vector<std::string> tied;
      for (auto& [value, list] : by_value) {
        if (list.empty() || list.size() < enough) continue;
        std::vector<double> finite;
        for (double y : list)
          if (std::isfinite(y)) finite.push_back(y);
        const size_t worst = list.size() - finite.size();
        const double m = finite.empty() ? (best_max ? -INFINITY : INFINITY) : mean(finite);
        const bool first = best_value.count(g) == 0;
        if (!first && worst == best_worst &&
            (m == best || std::abs(m - best) <= 1e-12 * std::max(1.0, std::abs(best)))) {
          if (before(value, best_value[g]))
            std::swap(best_value[g], tied.emplace_back(value));
          else
            tied.push_back(value);
        } else if (first || worst < best_worst ||
                   (worst == best_worst && (best_max ? m > best : m < best))) {
          best = m, best_worst = worst, best_value[g] = value;
          tied.clear();
        }
      }
      if (best_value.count(g)) set.notes[std::string("best_") + g] = json::parse(best_value[g]);
      if (!tied.empty()) {
        json& list = set.notes[std::string("best_") + g + "_tied"] = json::array();
        for (const auto& v : tied) list.push_back(json::parse(v));
      }
    }
  }

  for (size_t i : kept) {
    const TrialRecord& tr = trials[i];
    Observation o;
    o.diverged = tr.status != "finished";
    o.y = y_of(tr);
    o.pair = tr.seed;  // (a group's trials of one seed are resampled together)
    if (o.diverged && (always_defined || t.contains("diverged_as"))) {
      o.imputed = !always_defined;
      o.diverged = false;
    }
    if (kind == "trend" || kind == "within" || kind == "interaction" || kind == "peak")
      o.x = config_value(tr.config, t["x"]);
    if (kind == "correlate") o.x = metric_value(tr, t["x_metric"]);
    // A diverged trial entered with diverged_as still needs its x: without one it is left out
    // as diverged (not as a trial without the metric).
    if (o.imputed && !std::isfinite(o.x)) o.imputed = false, o.diverged = true;
    if (grouped) {
      o.group = group_of(tr);
      if (o.group.empty()) continue;  // in neither group: not part of this comparison
      if (kind == "compare") {
        const double x = config_value(tr.config, group_key);
        o.x = std::isfinite(x) ? x : 0.0;
        if (best_value.count(o.group) &&
            config_node(tr.config, t["best_over"]).dump() != best_value[o.group])
          continue;
      }
    }
    if (!o.diverged && !(std::isfinite(o.y) && std::isfinite(o.x))) o.missing = true;
    // A trial that failed (an error, not a divergence) measured nothing: left out as missing,
    // neither a divergence nor the diverged_as value.
    if (tr.status == "failed") o.missing = true, o.diverged = o.imputed = false;
    set.observations.push_back(o);
    set.sources.push_back(i);
  }
  // Where the mean metric peaks, and where a marking metric first crosses its level (double
  // descent's interpolation threshold: the smallest x whose mean training accuracy reaches ~1).
  if (kind == "peak" || t.contains("mark")) {
    std::map<double, std::vector<double>> ys, marks;
    for (size_t j = 0; j < set.observations.size(); ++j) {
      const Observation& o = set.observations[j];
      if (o.diverged || o.missing) continue;
      ys[o.x].push_back(o.y);
      if (t.contains("mark")) {
        const double m = metric_value(trials[set.sources[j]], t["mark"]["metric"]);
        if (std::isfinite(m)) marks[o.x].push_back(m);
      }
    }
    if (kind == "peak" && ys.size() >= 3) {
      double best = -INFINITY, at = NAN;
      size_t g = 0;
      for (const auto& [x, list] : ys) {
        if (g > 0 && g + 1 < ys.size() && mean(list) > best) best = mean(list), at = x;
        ++g;
      }
      set.notes["peak_x"] = at;
    }
    if (t.contains("mark")) {
      const json& mk = t["mark"];
      for (const auto& [x, list] : marks) {
        const double m = mean(list);
        if (mk.contains("at_least") ? m >= mk["at_least"].get<double>()
                                    : m <= mk["at_most"].get<double>()) {
          set.notes["mark_x"] = x;
          break;
        }
      }
    }
  }
  return set;
}

Verdict evaluate(const json& c, const std::vector<TrialRecord>& given,
                 const std::vector<TrialRecord>& bound_trials) {
  const json& t = c["test"];
  // The bootstrap draws indices into the trials' order: taken by hash, not as the store returns
  // them (newest first, which a rerun or a merge changes), the same trials give the same interval.
  std::vector<TrialRecord> trials = given;
  std::stable_sort(trials.begin(), trials.end(),
                   [](const TrialRecord& a, const TrialRecord& b) { return a.hash < b.hash; });
  ClaimTest test;
  test.kind = t["kind"];
  test.direction = t.value("direction", 1);
  test.min_effect = t.value("min_effect", 0.0);
  test.threshold = t.value("threshold", 0.0);
  test.best_is_max = t.value("best", std::string("max")) == "max";
  // A 0/1 outcome: diverged, failed, or a flag a trial records as true or false
  // (reached_train_loss).
  const std::string metric = t["metric"];
  test.outcome = metric == "diverged" || metric == "failed" ||
                 std::any_of(trials.begin(), trials.end(), [&](const TrialRecord& tr) {
                   for (const json* source : {&tr.summary, &tr.measures})
                     if (source->contains(metric) && (*source)[metric].is_boolean()) return true;
                   return false;
                 });
  test.paired = t.value("paired", false);
  test.margin = t.value("margin", 0.0);
  test.equivalence = t.value("equivalence", 0.0);
  test.bootstrap.resamples = t.value("resamples", BootstrapOptions().resamples);
  test.bootstrap.level = t.value("level", 0.95);
  test.bootstrap.seed = t.value("seed", 0);
  if (test.kind == "within") {
    std::vector<double> los, his;
    for (const auto& b : bound_trials) {
      if (t["bounds"].contains("where") && !matches(b, t["bounds"]["where"])) continue;
      const double lo = metric_value(b, t["bounds"]["lo"]), hi = metric_value(b, t["bounds"]["hi"]);
      if (std::isfinite(lo) && std::isfinite(hi)) los.push_back(lo), his.push_back(hi);
    }
    if (los.empty()) {
      Verdict v;
      v.verdict = "inconclusive";
      v.reason = "no trial of " + t["bounds"]["config"].get<std::string>() +
                 " recorded the bounds " + t["bounds"]["lo"].get<std::string>() + " and " +
                 t["bounds"]["hi"].get<std::string>();
      return v;
    }
    test.lo = median(los);
    test.hi = median(his);
    test.bound_lo = los;
    test.bound_hi = his;
  }
  const ObservationSet set = observations_for(c, trials);
  Verdict v = evaluate_claim(test, set.observations);
  if (set.notes.contains("where_lacking")) {
    const json& l = set.notes["where_lacking"];
    const int n = l["trials"], diverged = l["diverged"];
    v.reason += "; " + std::to_string(n) + " trial(s)" +
                (diverged > 0 ? " (" + std::to_string(diverged) + " diverged)" : std::string()) +
                " left out: no value for the \"where\" key \"" + l["key"].get<std::string>() + "\"";
  }
  // Why nothing was measured, where the claim's own words are the likely cause (a misspelt key
  // in "where", or a metric no trial records) rather than too few runs.
  if (set.observations.empty() && !trials.empty()) {
    if (t.contains("where") &&
        std::none_of(trials.begin(), trials.end(),
                     [&](const TrialRecord& tr) { return matches(tr, t["where"]); }))
      v.reason += "; none of the " + std::to_string(trials.size()) +
                  " trials matches the claim's \"where\" " + t["where"].dump();
  }
  if (!trials.empty() && std::none_of(trials.begin(), trials.end(), [&](const TrialRecord& tr) {
        return std::isfinite(metric_value(tr, metric));
      }))
    v.reason += "; no trial records the metric \"" + metric + "\"";
  return v;
}

}  // namespace empiric::claims
