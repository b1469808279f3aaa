#include "claims/claim.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/errors.h"

namespace empiric::claims {

double metric_value(const TrialRecord& t, const std::string& name) {
  for (const json* source : {&t.summary, &t.measures})
    if (source->contains(name) && (*source)[name].is_number()) return (*source)[name].get<double>();
  return NAN;
}

double config_value(const json& config, const std::string& dotted) {
  const json* node = &config;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    std::string key =
        dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(key)) return NAN;
    node = &(*node)[key];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return node->is_number() ? node->get<double>() : NAN;
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
  const json& t = c["test"];
  need(t, "kind", "/test");
  need(t, "metric", "/test");
  static const std::set<std::string> kinds = {"trend", "compare", "correlate", "threshold"};
  if (!t["kind"].is_string() || !kinds.count(t["kind"].get<std::string>()))
    throw ConfigError(where, "/test/kind", t["kind"].dump(),
                      "expected one of: trend, compare, correlate, threshold");
  const std::string kind = t["kind"];
  if (kind == "trend" || kind == "compare") need(t, "x", "/test");
  if (kind == "compare") {
    need(t, "a", "/test");
    need(t, "b", "/test");
  }
  if (kind == "correlate") need(t, "x_metric", "/test");
  if (kind == "threshold") need(t, "threshold", "/test");
  if (t.contains("direction") && !(t["direction"] == 1 || t["direction"] == -1))
    throw ConfigError(where, "/test/direction", t["direction"].dump(), "expected 1 or -1");
}

std::vector<Observation> observations_for(const json& c, const std::vector<TrialRecord>& trials,
                                          std::vector<size_t>* sources) {
  const json& t = c["test"];
  const std::string kind = t["kind"], metric = t["metric"];
  std::vector<Observation> out;
  // compare: resolve "min"/"max" over the x values present.
  double a_value = NAN, b_value = NAN;
  if (kind == "compare") {
    std::vector<double> xs;
    for (const auto& tr : trials) xs.push_back(config_value(tr.config, t["x"]));
    auto pick = [&](const json& sel) {
      if (sel.is_number()) return sel.get<double>();
      if (xs.empty()) return double(NAN);
      return sel == "min" ? *std::min_element(xs.begin(), xs.end())
                          : *std::max_element(xs.begin(), xs.end());
    };
    a_value = pick(t["a"]);
    b_value = pick(t["b"]);
  }
  for (size_t i = 0; i < trials.size(); ++i) {
    const TrialRecord& tr = trials[i];
    Observation o;
    o.diverged = tr.status != "finished";
    o.y = metric_value(tr, metric);
    if (kind == "trend") o.x = config_value(tr.config, t["x"]);
    if (kind == "correlate") o.x = metric_value(tr, t["x_metric"]);
    if (kind == "compare") {
      const double x = config_value(tr.config, t["x"]);
      o.x = x;
      if (x == a_value)
        o.group = "a";
      else if (x == b_value)
        o.group = "b";
      else
        continue;  // neither end: not part of this comparison
      if (!o.diverged) o.y += t.value("margin", 0.0) * (o.group == "b" ? 1.0 : 0.0);
    }
    if (!o.diverged && !(std::isfinite(o.y) && std::isfinite(o.x))) o.missing = true;
    out.push_back(o);
    if (sources) sources->push_back(i);
  }
  return out;
}

Verdict evaluate(const json& c, const std::vector<TrialRecord>& trials) {
  const json& t = c["test"];
  ClaimTest test;
  test.kind = t["kind"];
  test.direction = t.value("direction", 1);
  test.min_effect = t.value("min_effect", 0.0);
  test.threshold = t.value("threshold", 0.0);
  test.bootstrap.resamples = t.value("resamples", 2000);
  test.bootstrap.level = t.value("level", 0.95);
  test.bootstrap.seed = t.value("seed", 0);
  return evaluate_claim(test, observations_for(c, trials));
}

}  // namespace empiric::claims
