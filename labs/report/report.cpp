#include "report/report.h"

#include <fmt/core.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "claims/claim.h"
#include "core/config.h"
#include "core/environment.h"
#include "core/errors.h"

namespace empiric {
namespace {

// A config without the sections only another lab reads (every section's defaults are filled
// into every resolved config).
json its_lab_only(json config) {
  static const std::map<std::string, std::string> section_of = {
      {"lottery", "lottery"}, {"lr_range", "range"}, {"implicit", "implicit"}};
  const std::string lab = config.value("lab", "train");
  for (const auto& [other, section] : section_of)
    if (other != lab) config.erase(section);
  return config;
}

// The protocol's presets: the full one, or none (the config as written).
bool protocol_preset(const std::string& preset) { return preset.empty() || preset == "full"; }

namespace fs = std::filesystem;

void make_folder(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw UserError(dir.string() + ": cannot create the report folder (" + ec.message() + ")");
}

// Four significant digits; a whole number up to a billion as itself (a batch of 10,000 read
// "1e+04", a throughput "2.308e+04").
std::string num(double v, const char* f = "{:.4g}") {
  if (!std::isfinite(v)) return "–";
  if (std::string(f) == "{:.4g}" && std::abs(v) >= 1e4 && std::abs(v) < 1e9)
    return fmt::format("{:.0f}", v);
  return fmt::format(fmt::runtime(f), v);
}

// A swept value as the config has it, every digit (0.99999 beside 0.9999 must not read "1"):
// the shortest text that reads back as the same double.
std::string exact(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "–"; }

// Seconds: two significant digits under ten (a 0.4 s run read "0 s"), whole seconds above.
std::string seconds(double s) {
  return s < 9.95 ? fmt::format("{:.2g} s", s) : fmt::format("{:.0f} s", s);
}

double number(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

// "[lo, hi]", or "–" where no interval was computed (too few trials).
std::string interval(const claims::Interval& ci) {
  return ci.known() ? "[" + num(ci.lo) + ", " + num(ci.hi) + "]" : "–";
}

std::string slug(const std::string& id) {
  std::string s;
  for (char c : id) s += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return s;
}

std::string caveat(const json& test, const std::string& preset) {
  const std::string kind = test["kind"];
  std::string text;
  if (kind == "trend")
    text =
        "A rank correlation says the metric moves monotonically with `" +
        test["x"].get<std::string>() +
        "` over the values tried; it says nothing between or beyond them, and nothing about why. "
        "The interval resamples only the seeds run: with a few per value, one of zero width says "
        "that no resampling of them reorders the values, not that the trend is certain.";
  else if (kind == "compare") {
    auto end = [](const json& s) { return s == "min" || s == "max"; };
    const std::string x = test["x"];
    text = (end(test["a"]) && end(test["b"])
                ? "The comparison is between the two ends of `" + x + "` only"
                : "The comparison is between the two arms selected only (of `" + x +
                      "`, other values not tested against them)") +
           ", under this config's protocol; another learning rate or budget may change it.";
    if (const double e = test.value("equivalence", 0.0); e > 0) {
      const double level = test.value("level", 0.95),
                   side = std::round((1 - level) * 50 * 1e9) / 1e9;  // % per side ((1 - 0.9) * 50
                                                                     // is 4.999...)
      text += fmt::format(
          " Equivalence is claimed within {:g} either way: the effect is b - a, and its whole "
          "interval must lie inside (-{:g}, {:g}); a {:g} % interval so placed is two one-sided "
          "tests at {:g} % each, {} than the usual 5 %.",
          e, e, e, level * 100, side,
          side < 5   ? "stricter"
          : side > 5 ? "looser"
                     : "no stricter");
    }
    if (const double m = test.value("margin", 0.0); m != 0)
      text += fmt::format(
          " The effect and its interval are the difference b - a plus the claim's margin of {:g} "
          "(b against a {} {:g}); the means per group are the arms' own.",
          m, m > 0 ? "-" : "+", std::fabs(m));
  } else if (kind == "correlate")
    text =
        "Kendall's tau across trials is an association across this population of runs, not a "
        "causal effect.";
  else if (kind == "interaction")
    text = "A difference of differences between the smallest and the largest `" +
           test["x"].get<std::string>() + "` only: it says the effect of `" +
           test["factor"].get<std::string>() +
           "` changes across that range, not how it changes in between.";
  else if (kind == "within")
    text =
        "Which value is best depends on the budget and the protocol; the range comes from one short "
        "range-test run per seed (the median over seeds is used).";
  else if (kind == "peak")
    text = "A peak among the values of `" + test["x"].get<std::string>() +
           "` tried: the highest inner mean against the lowest on each side. Where the optimum "
           "lies between the values, and whether it moves under another budget or protocol, it "
           "does not say.";
  else
    text = "A threshold verdict depends on the threshold chosen for the claim.";
  if (preset == "quick")
    text +=
        " These numbers come from the quick preset (fewer values, epochs and seeds): a smoke test "
        "of the "
        "claim, not its answer; the full preset is the protocol.";
  return text;
}

// What a claim's effect is and what the claim predicts of it, in a line under its verdict: the
// table's effect read -0.12 with nothing to say that it was a mean less a bar of 0.95.
std::string effect_meaning(const json& test, const claims::Verdict& v) {
  const std::string kind = test["kind"], metric = test["metric"];
  const int dir = test.value("direction", 1);
  const double min = test.value("min_effect", 0.0);
  const std::string sign = dir > 0 ? "above 0" : "below 0";
  const std::string bar = min > 0 ? fmt::format(", by at least {:g} in the estimate", min) : "";
  auto x = [&] { return "`" + test.value("x", std::string()) + "`"; };
  std::string what, predicts = sign + bar;
  if (kind == "trend") {
    what = "Kendall's tau of `" + metric + "` against " + x() +
           " over pairs of trials at different values (from -1, every pair falling, to 1)";
  } else if (kind == "correlate") {
    what = "Kendall's tau between `" + test.value("x_metric", std::string()) + "` and `" + metric +
           "` across the trials";
  } else if (kind == "compare") {
    const double margin = test.value("margin", 0.0), e = test.value("equivalence", 0.0);
    what = std::string(test.value("paired", false) ? "the mean over seeds of each seed's b - a"
                                                   : "the mean of arm b less the mean of arm a") +
           " in `" + metric + "`" +
           (margin != 0 ? fmt::format(", plus the margin {:g}", margin) : std::string());
    if (e > 0) predicts = fmt::format("within (-{:g}, {:g}), its whole interval too", e, e);
  } else if (kind == "threshold") {
    const double threshold = test.value("threshold", 0.0);
    what = fmt::format("the mean `{}` less the threshold {:g}", metric, threshold);
    if (std::isfinite(v.effect))
      what += fmt::format(" (the mean itself: {:.4g})", v.effect + threshold);
    predicts = (dir > 0 ? "above 0 (the mean above the threshold)"
                        : "below 0 (the mean below the threshold)") +
               bar;
  } else if (kind == "interaction") {
    what = "how much b - a in `" + metric + "` grows from the smallest " + x() +
           " to the largest (its b - a at the largest less its b - a at the smallest)";
  } else if (kind == "peak") {
    what = "the highest mean `" + metric + "` among the inner values of " + x() +
           " less the higher of the lowest means on each side of it";
  } else if (kind == "within") {
    what = "how far the value of " + x() +
           " with the best mean lies outside the suggested range (0 inside it; in powers of ten "
           "where every value is positive)";
    predicts = "0";
  } else {
    return "";
  }
  return "*Effect*: " + what + "; the claim predicts it " + predicts + ".";
}

// A trial's sweep axes as one label, "key=value key=value"; a whole-section value reads
// name(key=value,...), with no spaces, so labels split on them.
std::string axes_label(const TrialRecord& t) {
  std::string label;
  for (const auto& [k, v] : t.axes.items()) {
    std::string value = v.is_object() ? v.value("name", std::string()) : v.dump();
    if (v.is_object()) {
      std::string rest;
      for (const auto& [kk, vv] : v.items())
        if (kk != "name" && kk != "milestones")
          rest += (rest.empty() ? "" : ",") + kk + "=" + vv.dump();
      if (!rest.empty()) value += "(" + rest + ")";
    }
    label += (label.empty() ? "" : " ") + k.substr(k.find('.') + 1) + "=" + value;
  }
  return label;
}

// Training curves (or range-test curves) of every trial of each config the claims read, one CSV
// per config with what the plots need: curves_<config>.csv.gz and curves_<config>.json (the
// config's lab and the trials' suggested ranges). The CSV keeps the learning metrics, not the
// timings (the store has those), at most about kCurvePoints steps per trial and kCurveRows rows per
// config: every k-th recorded step, k the same for the whole config so seeds stay aligned, plus
// each trial's last step. A 200-run sweep recorded every step stays a few MB.
constexpr size_t kCurvePoints = 300, kCurveRows = 40000;
void write_curves(std::ostream& md, const fs::path& dir, const std::vector<ClaimOutcome>& outcomes,
                  Store& store) {
  std::set<std::string> done;
  bool header = false;
  auto one = [&](const std::string& cfg, const std::vector<TrialRecord>& trials) {
    if (trials.empty() || !done.insert(cfg).second) return;
    const std::string base = "curves_" + slug(fs::path(cfg).stem().string());
    std::ostringstream csv;
    csv << "trial,seed,status,label,step,name,value\n";
    json meta = {{"config", cfg},
                 {"lab", trials[0].config.value("lab", "train")},
                 {"ranges", json::array()},
                 {"trials", json::array()}};
    static const std::set<std::string> timings = {"compute_s", "eval_s", "samples_per_s"};
    std::vector<std::vector<MetricRow>> rows;
    size_t most_steps = 0, learning_rows = 0;
    for (const auto& t : trials) {
      rows.push_back(store.metrics(t.hash));
      std::set<long long> steps;
      for (const auto& m : rows.back()) {
        steps.insert(m.step);
        learning_rows += !timings.count(m.name);
      }
      most_steps = std::max(most_steps, steps.size());
    }
    const size_t stride = std::max<size_t>({1, (most_steps + kCurvePoints - 1) / kCurvePoints,
                                            (learning_rows + kCurveRows - 1) / kCurveRows});
    for (size_t i = 0; i < trials.size(); ++i) {
      const auto& t = trials[i];
      std::string label;  // a CSV field: quoted, its quotes doubled (axes_label quotes strings)
      for (char c : axes_label(t)) label += c == '"' ? std::string("\"\"") : std::string(1, c);
      std::vector<long long> steps;  // the trial's recorded steps, in order (rows are by step)
      for (const auto& m : rows[i])
        if (steps.empty() || steps.back() != m.step) steps.push_back(m.step);
      std::set<long long> kept;
      for (size_t k = 0; k < steps.size(); k += stride) kept.insert(steps[k]);
      if (!steps.empty()) kept.insert(steps.back());
      for (const auto& m : rows[i])
        if (kept.count(m.step) && !timings.count(m.name))
          csv << t.hash.substr(0, 12) << "," << t.seed << "," << t.status << ",\"" << label << "\","
              << m.step << "," << m.name << "," << fmt::format("{}", m.value)
              << "\n";  // (every digit, as the claims' CSVs and `results`: the stream kept 6)
      // Every trial, with the evaluations it recorded: one that diverged before its first has
      // no row above, and the plots count it from here.
      meta["trials"].push_back({{"label", axes_label(t)},
                                {"seed", t.seed},
                                {"status", t.status},
                                {"evaluations", steps.size()}});
      if (t.summary.contains("range_hi"))
        meta["ranges"].push_back({{"seed", t.seed},
                                  {"lo", t.summary["range_lo"]},
                                  {"hi", t.summary["range_hi"]},
                                  {"steepest", t.summary["lr_steepest"]}});
    }
    meta["stride"] = stride;
    // Gzipped: plain, the curves were 35 MB of the committed reports' 54 (13x smaller so).
    write_file_whole((dir / (base + ".csv.gz")).string(), gzipped(csv.str()));
    // A trial a line (indented whole, the list ran to 2,900 lines for one config).
    const json listed = meta["trials"];
    meta.erase("trials");
    std::string text = meta.dump(2);
    text.erase(text.rfind('\n'));  // (the closing brace's line)
    text += ",\n  \"trials\": [";
    for (size_t i = 0; i < listed.size(); ++i)
      text += (i ? ",\n    " : "\n    ") + listed[i].dump();
    text += listed.empty() ? "]\n}\n" : "\n  ]\n}\n";
    write_file_whole((dir / (base + ".json")).string(), text);
    if (!header) md << "\n## Curves\n\n";
    header = true;
    if (meta["lab"] == "lottery") {
      // One row per round and control: the paper's plots are drawn from these.
      const std::string lot = "lottery_" + slug(fs::path(cfg).stem().string());
      std::ostringstream rows;
      rows << "trial,seed,status,control,round,weights_remaining,test_acc,test_acc_at_best_val,"
              "best_val_step\n";
      for (const auto& t : trials)
        rows << t.hash.substr(0, 12) << "," << t.seed << "," << t.status << ","
             << t.config["lottery"]["control"].get<std::string>() << ","
             << t.config["lottery"]["round"].get<int>() << ","
             << claims::metric_value(t, "weights_remaining") << ","
             << claims::metric_value(t, "test_acc") << ","
             << claims::metric_value(t, "test_acc_at_best_val") << ","
             << claims::metric_value(t, "best_val_step") << "\n";
      write_file_whole((dir / (lot + ".csv")).string(), rows.str());
      md << "### Test accuracy and early-stopping iteration against the weights left\n\n![" << lot
         << "](" << lot << ".png)\n\nThe numbers: [" << lot << ".csv](" << lot << ".csv).\n\n";
    }
    md << "### `" << cfg << "`\n\n![" << base << "](" << base << ".png)\n\nThe numbers: [" << base
       << ".csv.gz](" << base << ".csv.gz) (gzipped CSV"
       << (stride > 1 ? fmt::format("; one recorded evaluation in {} and each trial's last, of up "
                                    "to {} a trial: what happens between them is not drawn",
                                    stride, most_steps)
                      : std::string())
       << ").\n\n";
    // Per-trial measures that are figures (a surface, a line), gathered into one JSON per
    // config for scripts/plot_report.py, with a heading and a link.
    auto figure = [&](const std::string& measure, const std::string& prefix, const std::string& text) {
      json items = json::array();
      for (const auto& t : trials)
        if (t.measures.contains(measure) && t.measures[measure].is_object() &&
            !t.measures[measure].contains("partner_status"))
          items.push_back({{"label", axes_label(t)}, {"seed", t.seed},
                           {"trial", t.hash.substr(0, 12)},
                           {"batch", t.config["train"]["batch_size"]},
                           {measure, t.measures[measure]}});
      if (items.empty()) return;
      const std::string name = prefix + "_" + slug(fs::path(cfg).stem().string());
      write_file_whole((dir / (name + ".json")).string(),
                       json({{"config", cfg}, {"items", items}}).dump() + "\n");
      md << text << "\n\n![" << name << "](" << name << ".png)\n\nThe numbers: [" << name
         << ".json](" << name << ".json).\n\n";
    };
    figure("interpolation", "interpolation",
           "### Loss and accuracy on the line between two solutions\n\nt = 0 is the trial's "
           "solution, t = 1 its partner trained at another batch size from the same "
           "initialization (Keskar et al. 2017, figure 3):");
    figure("surface", "surface",
           "### Loss surfaces around the solutions\n\nThe training loss on a grid along two "
           "filter-normalized random directions (Li et al. 2018), first seed, one panel per "
           "trial, shared contour levels:");
  };
  for (const auto& o : outcomes) {
    const auto configs = claims::claim_configs(o.claim);
    one(configs[0], o.trials);
    if (configs.size() > 1) one(configs[1], o.bound_trials);
  }
}

}  // namespace

std::string report_root(const std::string& home, const std::string& preset) {
  return (protocol_preset(preset) ? fs::path(home) / "reports"
                                  : fs::path(home) / "results" / "reports" / preset)
      .string();
}

std::string write_report(const std::string& home, const Question& q, const std::string& preset,
                         const std::vector<ClaimOutcome>& outcomes, Store& store,
                         const std::string& python, const std::optional<std::string>& options) {
  const fs::path dir = fs::path(report_root(home, preset)) / fmt::format("q{:03d}", q.number);
  make_folder(dir);
  // Written whole when done: a report that fails halfway (a damaged store) leaves the one before
  // it in place, not a README cut short.
  std::ostringstream md;

  md << fmt::format("# Q{}: {}\n\n", q.number, q.text);
  // The command that writes this report again: with the overrides where they made its tag
  // ("quick+overrides" said `empiric report 39`, which writes another).
  const bool named =
      !preset.empty() && preset != "as-written" && preset.find('+') == std::string::npos;
  const std::string command = "empiric report " + std::to_string(q.number) +
                              options.value_or(named ? " --preset " + preset : "");
  md << "Generated by `" << command << "` from the results store"
     << (named || preset.empty() ? "" : ", under `" + preset + "`")
     << ". Every number below is from a trial in the store.\n\n";

  md << "## What was claimed\n\n";
  for (const auto& o : outcomes)
    md << "- **" << o.claim["id"].get<std::string>()
       << "**: " << o.claim["statement"].get<std::string>() << "\n";

  md << "\n## What was done\n\n";
  std::set<std::string> configs_done;
  for (const auto& o : outcomes)
   for (size_t which = 0; which < claims::claim_configs(o.claim).size(); ++which) {
    const std::string cfg = claims::claim_configs(o.claim)[which];
    const auto& trials = which == 0 ? o.trials : o.bound_trials;
    const size_t expected = which == 0 ? o.expected : o.bound_expected;
    if (!configs_done.insert(cfg).second) continue;
    json resolved =
        which == 0 ? o.resolved_config : (trials.empty() ? json::object() : trials[0].config);
    // How the trials ran (device, threads, populations, graphs, checkpoints) is not part of a
    // trial's identity, so the resolved config has today's defaults there: show what the first
    // trial stored instead, and nothing where it ran before the key existed.
    if (which == 0 && !trials.empty() && resolved.contains("train"))
      for (const char* key : {"device", "threads", "checkpoint", "checkpoint_every_s", "population",
                              "cuda_graphs"}) {
        const json& ran = trials[0].config.value("train", json::object());
        if (ran.contains(key))
          resolved["train"][key] = ran[key];
        else
          resolved["train"].erase(key);
      }
    md << "### `" << cfg << "`\n\n";
    if (resolved.contains("description")) md << resolved.value("description", "") << "\n\n";
    // Wall time per trial (a population's split evenly among its members) includes evaluation
    // and measures; compute_s and eval_s are its training steps and evaluation passes.
    double wall = 0, steps = 0, evals = 0;
    int finished = 0, diverged = 0, failed = 0, at_chance = 0, batched = 0, largest = 0;
    bool timed_steps = false, timed_evals = false;
    json env = json::object();
    for (const auto& t : trials) {
      wall += t.wall_s;
      steps += t.summary.value("compute_s", 0.0);
      evals += t.summary.value("eval_s", 0.0);
      timed_steps |= t.summary.contains("compute_s");
      timed_evals |= t.summary.contains("eval_s");
      finished += t.status == "finished";
      diverged += t.status == "diverged";
      failed += t.status == "failed";
      // Finished, yet its training loss is no better than guessing: it learned nothing, and its
      // metrics enter the claims as measured (a reader should know they are there).
      at_chance += t.status == "finished" && t.summary.contains("chance_loss") &&
                   claims::metric_value(t, "failed") > 0;
      const int members = t.summary.value("population", 1);
      batched += members > 1;
      largest = std::max(largest, members);
      if (env.empty()) env = store.run_environment(t.run_id);
    }
    // Labs that time no evaluation passes (or trials from before they were timed) say nothing of
    // it.
    std::string times;
    if (timed_steps) times = seconds(steps) + " of training steps";
    if (timed_evals) times += (times.empty() ? "" : ", ") + seconds(evals) + " of evaluation";
    // A store without some of the config's trials: the verdicts are on the rest.
    if (expected > trials.size())
      md << fmt::format(
          "**{} of the config's {} trials are not in the store**: the verdicts "
          "below are on the other {}. ",
          expected - trials.size(), expected, trials.size());
    md << fmt::format(
        "{} trials ({} finished, {} diverged{}{}){}, {} of wall time in all{}", trials.size(),
        finished, diverged, failed ? fmt::format(", {} failed with an error", failed) : "",
        at_chance ? fmt::format("; {} finished with a training loss no better than chance (ln K)",
                                at_chance)
                  : "",
        batched ? fmt::format(", {} of them trained in populations of up to {}", batched, largest)
                : "",
        seconds(wall), times.empty() ? "" : " (" + times + ")");
    if (!env.empty()) {
      md << fmt::format(", on {} ({}), commit `{}`, torch {}", env.value("device", "?"),
                        env.value("gpu", env.value("cpu", "?")), env.value("git_commit", "?"),
                        env.value("torch", "?"));
      // The intra-op threads per trial order a matmul's sums: runs on 1 and on 2 threads drift
      // apart in the last digits, and thousands of SGD steps carry that to the third.
      if (env.contains("torch_threads") && env["torch_threads"].is_number())
        md << fmt::format(", {} intra-op thread{} per trial", env["torch_threads"].get<int>(),
                          env["torch_threads"].get<int>() == 1 ? "" : "s");
    }
    md << ".\n\n<details><summary>" << (which == 0 ? "resolved config" : "config of its first trial")
       << "</summary>\n\n```json\n" << its_lab_only(resolved).dump(2) << "\n```\n</details>\n\n";
  }

  md << "## What came out\n\n";
  md << "Intervals are bootstraps over the seeds that ran, resampled within each group and "
        "expanded for small groups (Hesterberg's expanded percentile interval: with 3 seeds per "
        "group it spans the resamples' whole range); in simulation a 95 % interval so made held "
        "the true effect 90-96 % of the time for means and trends and 88-91 % for a peak, a plain "
        "percentile one 75-92 % (docs/RESULTS.md, scripts/bootstrap_coverage.py). A peak is "
        "supported only if, besides, a flat curve with the trials' spread rarely rises as high "
        "(a bootstrap test under that null, at the interval's one side); a threshold on a yes/no "
        "outcome (diverged) takes the exact binomial (Clopper-Pearson) interval, and a compare of "
        "one Newcombe's interval built from the two arms' exact ones.";
  // (Said where this report has such claims: the reports without them read as they did.)
  bool one_mean = false, trend = false;
  for (const auto& o : outcomes) {
    const json& test = o.claim["test"];
    const bool outcome = test["metric"] == "diverged" || test["metric"] == "failed";
    one_mean =
        one_mean || (!outcome && (test["kind"] == "threshold" || test.value("paired", false)));
    trend = trend || test["kind"] == "trend";
  }
  if (one_mean)
    md << " A threshold's interval on a measured value, and a paired compare's (each the mean of "
          "one sample), is the wider on each side of the bootstrap's and Student's t interval: a "
          "one-sample bootstrap "
          "never leaves the values' range (with 3 seeds it is [min, max]), and in simulation "
          "held the truth 76 % of the time at 3 seeds, 87 % at 4, with t 95 %.";
  if (trend)
    md << " A trend whose interval excludes 0 decides only if, besides, the trials' values "
          "shuffled across x rarely order as strongly (a permutation test at the interval's one "
          "side): over 2 or 3 x values a perfect order by chance bootstraps to [1, 1].";
  md << "\n\n";
  // (Diverged trials a claim counts, as an outcome or at its diverged_as value, are in n: the
  // column is those it left out, which read as "0 diverged" beside 42 of 42 diverging.)
  md << "| claim | verdict | effect | 95% interval | n | diverged (left out) "
        "|\n|---|---|---:|---|---:|---:|\n";
  for (const auto& o : outcomes) {
    const auto& v = o.verdict;
    // (A claim may set its own level.)
    const std::string level = v.level == 0.95 ? "" : fmt::format(" ({:g}%)", v.level * 100);
    md << fmt::format("| {} | **{}** | {} | {}{} | {} | {} |\n", o.claim["id"].get<std::string>(),
                      v.verdict, num(v.effect), interval(v.ci), level, v.n, v.diverged);
  }
  bool plots_ok = true;
  for (const auto& o : outcomes) {
    const std::string id = o.claim["id"], base = "claim_" + slug(id);
    const json& test = o.claim["test"];
    // The numbers behind the plot: one row per trial, every digit.
    std::ostringstream csv;
    csv << "trial,seed,status,x,group,y\n";
    const std::string metric = test["metric"];
    const auto set = claims::observations_for(o.claim, o.trials);
    const auto& obs = set.observations;
    const auto& sources = set.sources;
    for (size_t i = 0; i < obs.size(); ++i) {
      const TrialRecord& t = o.trials[sources[i]];
      csv << t.hash.substr(0, 12) << "," << t.seed << "," << t.status << ","
          << fmt::format("{}", obs[i].x) << "," << obs[i].group << ","
          << fmt::format("{}", obs[i].diverged ? NAN : obs[i].y) << "\n";
    }
    json meta = {{"id", id},
                 {"kind", test["kind"]},
                 {"metric", test["metric"]},
                 {"x", test.value("x", test.value("x_metric", ""))},
                 {"verdict", o.verdict.verdict},
                 {"threshold", test.value("threshold", 0.0)}};
    for (const char* g : {"a", "b"})
      if (test.contains(g)) {
        // The tick under the arm: "x = value", or the arm's conditions "key = value, ...".
        auto shown = [](const json& v) {  // (a number as itself: 300, not 300.0)
          return v.is_string()   ? v.get<std::string>()
                 : v.is_number() ? fmt::format("{:g}", v.get<double>())
                                 : v.dump();
        };
        std::string label;
        if (test[g].is_object()) {
          for (const auto& [key, want] : test[g].items())
            label += (label.empty() ? "" : ", ") + key + " = " + shown(want);
        } else {
          // "min" / "max" as the value they resolved to: "train.batch_size = 4096 (max)".
          const std::string resolved = std::string(g) + "_value";
          label = test.value(test["kind"] == "interaction" ? "factor" : "x", std::string()) +
                  " = " +
                  (set.notes.contains(resolved)
                       ? shown(set.notes[resolved]) + " (" + shown(test[g]) + ")"
                       : shown(test[g]));
        }
        if (set.notes.contains(std::string("best_") + g)) {
          // A section (best_over "optim") by the members that vary across the trials, not whole.
          json best = set.notes[std::string("best_") + g];
          const std::string over = test["best_over"];
          if (best.is_object()) {
            std::string ptr = "/" + over;
            std::replace(ptr.begin(), ptr.end(), '.', '/');
            json varying = json::object();
            for (const auto& [k, v] : best.items())
              for (const auto& t : o.trials) {
                const json::json_pointer at(ptr + "/" + k);
                if (t.config.contains(at) && t.config.at(at) != v) {
                  varying[k] = v;
                  break;
                }
              }
            best = varying;
          }
          const std::string tied_key = std::string("best_") + g + "_tied";
          std::string tie;
          if (set.notes.contains(tied_key)) {
            const json& others = set.notes[tied_key];
            const bool numbers = std::all_of(others.begin(), others.end(),
                                             [](const json& v) { return v.is_number(); });
            std::string listed;
            for (const auto& v : others) listed += (listed.empty() ? "" : ", ") + v.dump();
            tie = "; tied on the mean with " +
                  (numbers ? listed : fmt::format("{} other value(s)", others.size())) +
                  ", the smaller taken";
          }
          label += " (best " + over + " " + best.dump() + tie + ")";
        }
        meta[std::string(g) + "_label"] = label;
      }
    if (test.contains("factor")) meta["factor"] = test["factor"];
    if (test.value("paired", false)) meta["paired"] = true;
    for (const char* k : {"peak_x", "mark_x"})
      if (set.notes.contains(k)) meta[k] = set.notes[k];
    if (test.contains("mark")) meta["mark"] = test["mark"];
    if (test["kind"] == "within" && o.verdict.n > 0) {
      // The range the best x was tested against, as evaluate() read it.
      std::vector<double> los, his;
      for (const auto& b : o.bound_trials) {
        if (test["bounds"].contains("where") &&
            claims::observations_for({{"test", {{"kind", "threshold"}, {"metric", "steps"},
                                                {"where", test["bounds"]["where"]}}}},
                                     {b})
                .observations.empty())
          continue;
        // (A range test with no suggestion records none: a NaN, which JSON writes as null.)
        const double lo = claims::metric_value(b, test["bounds"]["lo"]),
                     hi = claims::metric_value(b, test["bounds"]["hi"]);
        if (!std::isfinite(lo) || !std::isfinite(hi)) continue;
        los.push_back(lo);
        his.push_back(hi);
      }
      meta["bounds_lo"] = los;
      meta["bounds_hi"] = his;
    }
    write_file_whole((dir / (base + ".csv")).string(), csv.str());
    write_file_whole((dir / (base + ".json")).string(), meta.dump(2) + "\n");
    md << "\n### " << id << "\n\n" << o.claim["statement"].get<std::string>() << "\n\n";
    md << "**" << o.verdict.verdict << "**: " << o.verdict.reason << ".";
    if (set.notes.contains("peak_x"))
      md << " Among the inner values of " << test["x"].get<std::string>() << ", the mean " << metric
         << " is highest at " << exact(set.notes["peak_x"].get<double>()) << ".";
    if (test.contains("mark")) {
      const json& mk = test["mark"];
      const bool least = mk.contains("at_least");
      md << " The mean " << mk["metric"].get<std::string>() << " first reaches "
         << (least ? ">= " : "<= ") << num((least ? mk["at_least"] : mk["at_most"]).get<double>());
      if (set.notes.contains("mark_x"))
        md << " at " << test["x"].get<std::string>() << " = "
           << exact(set.notes["mark_x"].get<double>()) << " (dashed line in the plot).";
      else
        md << " at no swept value.";
    }
    if (const std::string meaning = effect_meaning(test, o.verdict); !meaning.empty())
      md << "\n\n" << meaning;
    md << "\n\n";
    const bool interaction = test["kind"] == "interaction";
    auto imputed_note = [&] {  // above a table whose means take diverged trials at a value
      md << "Diverged trials enter the means below at the claim's `diverged_as` value ("
         << num(test["diverged_as"].get<double>()) << "), as the test takes them.\n\n";
    };
    if (test.contains("x") && test["kind"] != "compare" && !interaction) {
      // The numbers per swept value: what the plot shows, as a table. (An interaction's are
      // per arm and value, below: pooled over its arms they mean nothing.)
      const std::string x = test["x"];
      std::map<double, std::vector<double>> by_x;
      std::map<double, int> diverged_at, finished_at, failed_at;
      bool imputed = false;
      for (size_t k = 0; k < sources.size(); ++k) {
        const TrialRecord& t = o.trials[sources[k]];
        const double xv = claims::config_value(t.config, x);
        auto& ys = by_x[xv];
        if (t.status == "diverged") diverged_at[xv]++;
        if (t.status == "finished") finished_at[xv]++;
        if (t.status == "failed") failed_at[xv]++;
        // As the test takes it: a diverged trial the claim enters at its diverged_as value, or
        // with a metric every trial has (diverged: 1); a failed one measured nothing.
        imputed = imputed || obs[k].imputed;
        if (!obs[k].diverged && !obs[k].missing && std::isfinite(obs[k].y)) ys.push_back(obs[k].y);
      }
      if (imputed) imputed_note();
      // n: the values in the mean (finished trials that measured it, and diverged ones where the
      // claim enters them); failed trials, which measured nothing, only where there are some.
      const bool any_failed = !failed_at.empty();
      md << "| " << x << " | mean " << metric << " | std | n | finished | diverged |"
         << (any_failed ? " failed |" : "") << "\n|---:|---:|---:|---:|---:|---:|"
         << (any_failed ? "---:|" : "") << "\n";
      for (const auto& [xv, ys] : by_x) {
        double m = 0, sd = 0;
        for (double y : ys) m += y;
        m = ys.empty() ? NAN : m / double(ys.size());
        for (double y : ys) sd += (y - m) * (y - m);
        sd = ys.size() > 1 ? std::sqrt(sd / double(ys.size() - 1)) : NAN;
        // Values all alike: 0, not the rounding of their mean (three runs entered at 0.1 read
        // 1.7e-17).
        if (ys.size() > 1 &&
            *std::min_element(ys.begin(), ys.end()) == *std::max_element(ys.begin(), ys.end()))
          sd = 0;
        md << "| " << exact(xv) << " | " << num(m) << " | " << num(sd) << " | " << ys.size()
           << " | " << finished_at[xv] << " | " << diverged_at[xv] << " |"
           << (any_failed ? " " + std::to_string(failed_at[xv]) + " |" : "") << "\n";
      }
      md << "\n";
    }
    if (test["kind"] == "compare" || interaction) {
      // Mean per group (and per x for an interaction), as the test saw them (diverged trials at
      // the claim's diverged_as value, where it has one), and the diverged trials in each.
      std::map<std::pair<std::string, double>, std::vector<double>> cells;
      std::map<std::pair<std::string, double>, int> diverged_in;
      for (size_t k = 0; k < obs.size(); ++k) {
        const auto& ob = obs[k];
        const std::pair<std::string, double> key = {ob.group, interaction ? ob.x : 0.0};
        if (o.trials[sources[k]].status == "diverged") diverged_in[key]++;
        if (!ob.diverged && !ob.missing)
          cells[key].push_back(ob.y);
        else
          cells.try_emplace(key);  // (a cell whose trials all diverged is listed, empty)
      }
      if (std::any_of(obs.begin(), obs.end(), [](const auto& ob) { return ob.imputed; }))
        imputed_note();
      md << "| group | " << (interaction ? test["x"].get<std::string>() : "") << " | mean "
         << metric << " | n | diverged |\n|---|---:|---:|---:|---:|\n";
      for (const auto& [key, ys] : cells)
        md << "| " << key.first << ": " << meta.value(key.first + "_label", std::string()) << " | "
           << (interaction ? exact(key.second) : "") << " | "
           << (ys.empty() ? std::string("–") : num(claims::mean(ys))) << " | " << ys.size() << " | "
           << diverged_in[key] << " |\n";
      md << "\n";
    }
    md << "![" << id << "](" << base << ".png)\n\nThe numbers behind the plot: [" << base
       << ".csv](" << base << ".csv).\n\n";
    md << "*What it does not show.* " << caveat(test, preset) << "\n";
  }
  write_curves(md, dir, outcomes, store);
  write_file_whole((dir / "README.md").string(), md.str());

  // What went wrong, in the script's own words (its last line on stderr): a missing matplotlib
  // and a plot that failed (the others are still drawn) read differently.
  std::string why = "no python with matplotlib (run scripts/setup.sh)";
  // The figures of an earlier report go first: drawn again below, or missing, and said so, never
  // left beside numbers they do not show.
  for (const auto& f : fs::directory_iterator(dir))
    if (f.path().extension() == ".png") fs::remove(f.path());
  if (!python.empty()) {
    const fs::path errors = dir / ".plot_errors";
    const std::string cmd = shell_quoted(python) + " " +
                            shell_quoted((fs::path(home) / "scripts" / "plot_report.py").string()) +
                            " " + shell_quoted(dir.string()) + " >/dev/null 2>" +
                            shell_quoted(errors.string());
    const int status = std::system(cmd.c_str());
    // Ctrl-C while the plots were drawn stopped the script (std::system ignores it here): the
    // command stops too, as it would have, rather than call half the figures a report.
    for (const int sig : {SIGINT, SIGTERM})
      if ((WIFSIGNALED(status) && WTERMSIG(status) == sig) ||
          (WIFEXITED(status) && WEXITSTATUS(status) == 128 + sig)) {
        std::error_code ignored;
        fs::remove(errors, ignored);
        // (A tag of overrides needs them again: the bare command writes another report.)
        const std::string again =
            "`" + command + "`" +
            (preset.find('+') == std::string::npos ? "" : " with the same preset and overrides");
        write_file_whole((dir / "README.md").string(),
                         md.str() + "\n*The plots were interrupted: some or all were not drawn (" +
                             again + " draws them).*\n");
        throw Interrupted(sig, "interrupted while drawing the plots of " +
                                   (dir / "README.md").string() +
                                   "; the verdicts are stored, and the report says its plots were "
                                   "not drawn (" +
                                   again + " draws them)");
      }
    plots_ok = status == 0;
    std::ifstream in(errors);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) why = line;
    in.close();
    std::error_code ignored;
    fs::remove(errors, ignored);
  } else {
    plots_ok = false;
  }
  if (!plots_ok)
    write_file_whole((dir / "README.md").string(),
                     md.str() + "\n*Some or all plots were not drawn: " + why + ".*\n");
  return (dir / "README.md").string();
}

void write_report_index(const std::string& home, const Bank& bank, Store& store,
                        const std::string& preset) {
  const fs::path dir = report_root(home, preset);
  make_folder(dir);
  // The rows already there, by question: kept for questions this store has no verdicts of.
  std::map<int, std::vector<std::string>> kept;
  {
    std::ifstream old(dir / "README.md");
    const std::regex row(R"(^\| \[Q(\d{1,6})\]\()");  // (a longer number is no question's)
    std::smatch m;
    for (std::string line; std::getline(old, line);)
      if (std::regex_search(line, m, row)) kept[std::stoi(m[1])].push_back(line);
  }
  const std::vector<std::string> presets =
      protocol_preset(preset) ? std::vector<std::string>{"", "full"} : std::vector<std::string>{preset};
  std::ostringstream md;  // written whole: a failure midway leaves the index before it
  // A tag of the configs as written or of overrides is no preset a command can name.
  const bool named =
      protocol_preset(preset) || (preset != "as-written" && preset.find('+') == std::string::npos);
  md << "# Reports\n\nOne folder per question answered by a lab; the latest verdict of each claim "
     << (protocol_preset(preset) ? "under the full protocol"
         : named ? "under the `" + preset + "` preset (smoke tests, not the protocol)"
                 : "under `" + preset + "` (not the protocol: " +
                       (preset == "as-written" ? "configs as written whose full preset differs"
                                               : "answers with overrides") +
                       ")")
     << ". Regenerate with `empiric report Q"
     << (named ? " --preset " + (preset.empty() ? std::string("full") : preset) + "`"
         : preset == "as-written" ? std::string("`")
                                  : std::string(" ...` (the same preset and overrides)"))
     << ".\n\n| question | claim | verdict | effect | interval | preset |\n"
        "|---|---|---|---:|---|---|\n";
  for (const auto& q : bank.questions) {
    if (q.claims.empty()) continue;
    auto verdicts = store.latest_verdicts(q.number, presets);
    const std::string link = fmt::format("[Q{}](q{:03d}/README.md)", q.number, q.number);
    if (verdicts.empty() && kept.count(q.number))
      for (const auto& line : kept[q.number]) md << line << "\n";
    else if (verdicts.empty())  // (a link only where the report is: a tag's folder has few)
      md << "| "
         << (fs::exists(dir / fmt::format("q{:03d}", q.number) / "README.md")
                 ? link
                 : fmt::format("Q{}", q.number))
         << " | – | not run yet | | | |\n";
    for (const auto& v : verdicts)
      md << fmt::format("| {} | {} | **{}** | {} | {} | {} |\n", link, v.claim, v.verdict,
                        num(number(v.details, "effect")),
                        interval({number(v.details, "lo"), number(v.details, "hi")}),
                        v.preset.empty() ? "–" : v.preset);
  }
  write_file_whole((dir / "README.md").string(), md.str());
}

}  // namespace empiric
