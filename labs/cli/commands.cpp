#include "cli/commands.h"

#include <fmt/core.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <regex>
#include <set>

#include "claims/claim.h"
#include "core/bank.h"
#include "core/config.h"
#include "core/environment.h"
#include "core/errors.h"
#include "core/schema.h"
#include "core/store.h"
#include "device/device_info.h"
#include "report/report.h"

namespace empiric::cli {
namespace {

std::string bank_path(const Context& ctx) {
  const std::string path = ctx.home + "/questions/bank.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw UserError(
        path + ": no such file; expected --home " + ctx.home +
        " (or EMPIRIC_HOME) to be the empiric checkout, which holds questions/bank.json");
  return path;
}

// The configs q's claims read (their own and a "within" test's bounds), each once in claim order,
// after checking every claim; paths as the bank writes them, relative to the checkout.
// With `problems`, a config path outside the checkout or missing is said there and left out,
// rather than refused (show lists the question all the same).
std::vector<std::string> claim_config_files(const Context& ctx, const Question& q,
                                            std::vector<std::string>* problems = nullptr) {
  std::vector<std::string> configs;
  for (size_t i = 0; i < q.claims.size(); ++i) {
    const std::string where = fmt::format("{}: question {} claim {}", bank_path(ctx), q.number, i);
    claims::check_claim(q.claims[i], where);
    const auto files = claims::claim_configs(q.claims[i]);
    for (size_t k = 0; k < files.size(); ++k) {
      // A path inside the checkout, as the bank writes them: read relative to --home.
      const std::string& cfg = files[k];
      const std::string ptr = k == 0 ? "/config" : "/test/bounds/config";
      const std::filesystem::path p(cfg);
      std::string problem;
      if (p.is_absolute() || std::find(p.begin(), p.end(), "..") != p.end())
        problem = "expected a path inside the checkout, relative to it (configs/...)";
      else if (!std::filesystem::is_regular_file(std::filesystem::path(ctx.home) / p))
        problem = "no such file under " + ctx.home + "; expected one of its configs/*.json";
      if (!problem.empty()) {
        const ConfigError e(where, ptr, json(cfg).dump(), problem);
        if (!problems) throw e;
        problems->push_back(e.what());
        continue;
      }
      if (std::find(configs.begin(), configs.end(), cfg) == configs.end()) configs.push_back(cfg);
    }
  }
  return configs;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;  // (RFC 4180: CR too)
  std::string out = "\"";
  for (char c : s) out += (c == '"' ? std::string("\"\"") : std::string(1, c));
  return out + "\"";
}

std::string summary_number(const json& summary, const char* key, const char* format,
                           const char* missing = "-") {
  if (!summary.contains(key) || !summary[key].is_number()) return missing;
  return fmt::format(fmt::runtime(format), summary[key].get<double>());
}

}  // namespace

int list_questions(const Context& ctx, int section, const std::string& kind, bool as_json) {
  Bank bank = load_bank(bank_path(ctx));
  if (section != -1 && !bank.section(section))
    throw UserError(fmt::format("--section {}: no such section; allowed: 1 to {}", section,
                                bank.sections.size()));
  if (!kind.empty() && kind != "empirical" && kind != "discussion")
    throw UserError("--kind " + kind + ": allowed: empirical, discussion");
  json out = json::array();
  int last_section = -1;
  for (const auto& q : bank.questions) {
    if ((section != -1 && q.section != section) || (!kind.empty() && q.kind != kind)) continue;
    if (as_json) {
      out.push_back({{"number", q.number},
                     {"section", q.section},
                     {"section_title", bank.section(q.section)->title},
                     {"text", q.text},
                     {"tags", q.tags},
                     {"kind", q.kind},
                     {"informed_by", q.informed_by},
                     {"claims", q.claims.size()}});
      continue;
    }
    if (q.section != last_section) {
      fmt::print("{}{:>2}. {}\n", last_section == -1 ? "" : "\n", q.section,
                 bank.section(q.section)->title);
      last_section = q.section;
    }
    std::string mark = q.kind == "empirical" ? (q.claims.empty() ? "E " : "E*") : "  ";
    fmt::print("  {} Q{:<3} {}\n", mark, q.number, q.text);
  }
  if (as_json) {
    std::cout << out.dump(2) << "\n";
  } else {
    fmt::print("\nE: empirical (an experiment can answer it), E*: has a lab with claims.\n");
  }
  return 0;
}

// A question's trials in `store`: its own, and those of the configs its claims read (without a
// preset and under each of theirs), which may belong to another question: Q46's claims read
// Q44's sweep. By hash, since a trial records its config's path as it was given. A config that
// no longer loads hides only its own trials; its error goes to `broken`.
std::vector<TrialRecord> question_trials(const Context& ctx, const Question& q, Store& store,
                                         std::vector<std::string>& broken) {
  std::vector<TrialRecord> trials = store.trials(q.number);
  std::set<std::string> seen;
  for (const auto& t : trials) seen.insert(t.hash);
  for (const auto& cfg : claim_config_files(ctx, q, &broken)) {
    const std::string path = ctx.home + "/" + cfg;
    try {
      std::vector<std::string> presets = {""};
      const json doc = load_json_file(path);
      if (doc.contains("presets") && doc["presets"].is_object())
        for (const auto& [name, _] : doc["presets"].items()) presets.push_back(name);
      for (const auto& preset : presets)
        for (const auto& t : expand_trials(resolve_config(path, preset, {})))
          if (seen.insert(t.hash).second)
            if (auto rec = store.trial(t.hash)) trials.push_back(std::move(*rec));
    } catch (const UserError& e) {
      broken.push_back(e.what());
    }
  }
  return trials;
}

namespace {
std::vector<TrialRecord> of_preset(const Context& ctx, std::vector<TrialRecord> trials,
                                   const std::string& preset);

// A --preset with no trial or claim config to check it against: some config of the checkout
// must have it (`results --preset bogus` on a store without the question's trials listed none,
// exit 0, as if the typo were an answer).
void check_some_config_has(const Context& ctx, const std::string& preset) {
  std::set<std::string> known;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(ctx.home + "/configs", ec)) try {
      if (f.path().extension() != ".json") continue;
      const json doc = load_json_file(f.path().string());
      if (doc.contains("presets") && doc["presets"].is_object())
        for (const auto& [name, _] : doc["presets"].items()) known.insert(name);
    } catch (const UserError&) {  // (a broken config is named where it is used)
    }
  if (known.count(preset)) return;
  std::string allowed;
  for (const auto& k : known) allowed += (allowed.empty() ? "" : ", ") + k;
  throw UserError("--preset " + preset + ": no config in " + ctx.home +
                  "/configs has it; allowed: " + (allowed.empty() ? "none" : allowed));
}
}  // namespace

int show_question(const Context& ctx, int number, bool as_json, const std::string& preset) {
  Bank bank = load_bank(bank_path(ctx));
  const Question* q = bank.find(number);
  if (!q)
    throw UserError(fmt::format("question {}: no such question; allowed: 1 to {}", number,
                                bank.questions.size()));
  // Verdicts of configs answered as written where that is not their full preset are stored
  // under "as-written", as show prints them: --preset as-written shows those, with the trials
  // of the configs as written (it was refused as a preset no config has). A tag of overrides
  // names no set of trials: refused, saying what it is.
  const std::string suffix = "+overrides";
  if (preset.size() > suffix.size() &&
      preset.compare(preset.size() - suffix.size(), suffix.size(), suffix) == 0)
    throw UserError(fmt::format(
        "--preset {}: the tag of verdicts answered with overrides, not a preset; allowed: a "
        "config's preset (quick, full) or as-written (`empiric show {}` without --preset prints "
        "the latest verdict of every tag)",
        preset, number));
  const std::string config_preset = preset == "as-written" ? "" : preset;
  if (!config_preset.empty() && q->claims.empty()) check_some_config_has(ctx, config_preset);
  if (!config_preset.empty() && !q->claims.empty()) {  // a preset none of its configs has: a typo
    std::string first_error;
    bool any = false;
    for (const auto& cfg : claim_config_files(ctx, *q)) try {
        resolve_config(ctx.home + "/" + cfg, config_preset, {});
        any = true;
      } catch (const UserError& e) {
        if (first_error.empty()) first_error = e.what();
      }
    if (!any && !first_error.empty())
      throw UserError("--preset " + preset + ": none of Q" + std::to_string(number) +
                      "'s configs resolves with it (" + first_error + ")");
  }
  std::vector<TrialRecord> trials;
  std::vector<BenchRecord> bench;
  std::vector<std::string> broken;  // errors of claim configs that did not load
  if (std::filesystem::exists(ctx.db)) {
    Store store(ctx.db);
    trials = question_trials(ctx, *q, store, broken);
    if (!preset.empty()) trials = of_preset(ctx, std::move(trials), config_preset);
    bench = store.bench_records(number);
  }
  std::vector<VerdictRecord> verdicts;
  if (!q->claims.empty() && std::filesystem::exists(ctx.db))
    // (The full protocol's are also those of configs as written that are their full preset,
    // stored without a preset, as reports/README.md counts them.)
    verdicts = Store(ctx.db).latest_verdicts(number, preset.empty() ? std::vector<std::string>{}
                                                     : preset == "full"
                                                         ? std::vector<std::string>{"", "full"}
                                                         : std::vector<std::string>{preset});
  // The committed reports' verdicts (reports/README.md, the full protocol's), for claims this
  // store has none of: a fresh store said "none yet" beside a committed answer.
  std::map<std::string, json> committed;
  if (preset.empty() || preset == "full") {
    std::ifstream index(std::filesystem::path(ctx.home) / "reports" / "README.md");
    const std::regex row(
        R"(^\| \[Q(\d{1,6})\]\([^)]*\) \| ([^ |]+) \| \*\*(\w+)\*\* \| ([^|]*) \| ([^|]*) \|)");
    std::smatch m;
    for (std::string line; std::getline(index, line);)
      if (std::regex_search(line, m, row) && std::stoi(m[1]) == number)
        committed[m[2]] = {{"verdict", m[3].str()},
                           {"effect", m[4].str()},
                           {"interval", m[5].str()},
                           {"report", fmt::format("reports/q{:03d}/README.md", number)}};
  }
  if (as_json) {
    json latest = json::array();
    for (const auto& v : verdicts)
      latest.push_back({{"claim", v.claim},
                        {"verdict", v.verdict},
                        {"preset", v.preset},
                        {"created_at", v.created_at},
                        {"details", v.details}});
    json out = {{"number", q->number},
                {"section", q->section},
                {"preset", preset},
                {"text", q->text},
                {"kind", q->kind},
                {"tags", q->tags},
                {"informed_by", q->informed_by},
                {"claims", q->claims},
                {"trials_in_store", trials.size()},
                {"config_errors", broken},
                {"bench_records", bench.size()},
                {"verdicts", latest},
                {"committed_verdicts", committed}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  fmt::print("Q{} [{}. {}] ({})\n  {}\n", q->number, q->section, bank.section(q->section)->title,
             q->kind, q->text);
  if (!q->tags.empty()) {
    std::string tags;
    for (const auto& t : q->tags) tags += (tags.empty() ? "" : ", ") + t;
    fmt::print("  tags: {}\n", tags);
  }
  if (!q->informed_by.empty()) {
    std::string refs;
    for (int r : q->informed_by) refs += (refs.empty() ? "Q" : ", Q") + std::to_string(r);
    fmt::print("  labs that inform it: {}\n", refs);
  }
  if (q->claims.empty()) {
    fmt::print("\nClaims: {}\n", q->kind == "empirical" ? "none yet (its lab has not landed)"
                                 : q->informed_by.empty()
                                     ? "none: a discussion question, which no one experiment "
                                       "settles, and no lab informs yet"
                                     : "none: a discussion question, which no one experiment "
                                       "settles (the labs that inform it are above)");
  } else {
    fmt::print("\nClaims:\n");
    for (const auto& c : q->claims) {
      fmt::print("  - {}: {}\n    config: {}\n", c.value("id", "?"), c.value("statement", ""),
                 c.value("config", ""));
      bool shown = false;
      for (const auto& v : verdicts) {
        if (v.claim != c.value("id", "")) continue;
        fmt::print("    latest verdict: {} (effect {}; {}; preset {}, {})\n", v.verdict,
                   v.details.contains("effect") && v.details["effect"].is_number()
                       ? fmt::format("{:+.3g}", v.details["effect"].get<double>())
                       : "-",
                   v.details.contains("reason") && v.details["reason"].is_string()
                       ? v.details["reason"].get<std::string>()
                       : "",
                   v.preset.empty() ? "-" : v.preset, v.created_at);
        if (v.details.contains("overrides") && v.details["overrides"].is_array()) {
          std::string given;
          for (const auto& o : v.details["overrides"])
            if (o.is_string()) given += " " + shell_quoted(o.get<std::string>());
          fmt::print("      answered with overrides:{}\n", given);
        }
        shown = true;
      }
      if (const auto it = committed.find(c.value("id", "")); !shown && it != committed.end())
        fmt::print(
            "    latest verdict: none in this store; the committed report's: {} (effect {}, "
            "interval {}; {})\n",
            it->second["verdict"].get<std::string>(), it->second["effect"].get<std::string>(),
            it->second["interval"].get<std::string>(), it->second["report"].get<std::string>());
      else if (!shown)
        fmt::print("    latest verdict: none yet{} (empiric answer {}{})\n",
                   preset.empty() ? "" : " with preset " + preset, number,
                   preset.empty() ? "" : " --preset " + preset);
    }
  }
  fmt::print("\nTrials in {}{}: {}", ctx.db, preset.empty() ? "" : " (preset " + preset + ")",
             trials.size());
  if (!trials.empty()) {
    int diverged = 0;
    std::string latest;
    for (const auto& t : trials) {
      diverged += t.status == "diverged";
      latest = std::max(latest, t.finished_at);  // ISO 8601 times order as text
    }
    fmt::print(" ({} diverged; latest {})", diverged, latest);
  }
  fmt::print("\n");
  for (const auto& e : broken)
    fmt::print("  not counted: the trials of a config that does not load: {}\n", e);
  if (!bench.empty()) {
    fmt::print("\nBenchmarks serving Q{}:\n", number);
    for (const auto& b : bench)
      if (b.name.rfind("training/", 0) == 0)  // a training suite's row: per model-epoch
        fmt::print("  {:<48} {:>12.3f} s per model-epoch  {:>10.0f} samples/s  {}\n", b.name,
                   b.time_s, b.items_per_s, b.created_at);
      else
        fmt::print("  {:<48} {:>12.3f} us  {:>10.3f} GB/s  {}\n", b.name, b.time_s * 1e6,
                   b.bytes_per_s / 1e9, b.created_at);
  }
  return 0;
}

int show_config(const Context& ctx, const std::string& file, const std::string& preset,
                const std::vector<std::string>& overrides, bool trials) {
  (void)ctx;
  ResolvedConfig r = resolve_config(file, preset, overrides);
  // Expanded either way: a sweep value can be wrong for the trial it makes (Adam's betas on an
  // SGD arm) where the config as a whole is not.
  auto list = expand_trials(r);
  if (!trials) {
    std::cout << printable_config(r).dump(2) << "\n";
    return 0;
  }
  for (const auto& t : list)
    fmt::print("{}  seed={}  {}\n", t.hash.substr(0, 12), t.seed, t.axes.dump());
  fmt::print("{} trials\n", list.size());
  return 0;
}

int print_keys(bool markdown) {
  if (markdown) {
    std::cout << schema_markdown();
    return 0;
  }
  for (const auto& s : config_schema()) {
    fmt::print("{}\n", s.name.empty() ? "(top level)" : s.name);
    for (const auto& f : s.fields) {
      // A choice's allowed values too (data.name read only "dataset"); the types and ranges
      // of the others are in --markdown.
      std::string choices;
      for (const auto& c : f.choices) choices += (choices.empty() ? "" : ", ") + c;
      fmt::print("  {:<22} default {:<16} {}{}\n", f.key, f.default_value.dump(), f.doc,
                 choices.empty() ? "" : " (one of: " + choices + ")");
    }
  }
  return 0;
}

namespace {

// The trials among `trials` that their config resolved with `preset` expands to: one config's
// trials under its quick and its full preset are told apart by their hashes (a trial both
// presets make is in both). A config that is gone, or has no such preset, is named once.
std::vector<TrialRecord> of_preset(const Context& ctx, std::vector<TrialRecord> trials,
                                   const std::string& preset) {
  std::map<std::string, std::set<std::string>> hashes;  // config file -> its trials' hashes
  int resolved = 0;
  std::string first_error;
  for (const auto& t : trials) {
    if (hashes.count(t.config_file)) continue;
    auto& set = hashes[t.config_file];
    // As stored, else from --home (a relative path; or configs/NAME, for a store made in another
    // checkout or machine, whose absolute path is not here): the hashes tell a stranger apart.
    std::string path = t.config_file;
    if (!std::filesystem::exists(path)) {
      const std::string relative = ctx.home + "/" + path,
                        named = ctx.home + "/configs/" +
                                std::filesystem::path(path).filename().string();
      if (std::filesystem::path(path).is_relative() && std::filesystem::exists(relative))
        path = relative;
      else if (std::filesystem::exists(named))
        path = named;
    }
    try {
      for (const auto& e : expand_trials(resolve_config(path, preset, {}))) set.insert(e.hash);
      ++resolved;
    } catch (const UserError& e) {
      if (first_error.empty()) first_error = e.what();
      fmt::print(stderr, "not listed: {}'s trials ({})\n", t.config_file, e.what());
    }
  }
  // A preset no config has (a typo) is bad input, not an empty answer.
  if (hashes.empty() && !preset.empty()) check_some_config_has(ctx, preset);
  if (resolved == 0 && !hashes.empty())
    throw UserError("--preset " + preset +
                    ": none of the listed trials' configs resolves with it (" + first_error + ")");
  trials.erase(
      std::remove_if(trials.begin(), trials.end(),
                     [&](const TrialRecord& t) { return !hashes[t.config_file].count(t.hash); }),
      trials.end());
  return trials;
}

}  // namespace

int print_results(const Context& ctx, std::optional<int> question, const std::string& format,
                  const std::string& preset) {
  if (format != "table" && format != "jsonl" && format != "csv")
    throw UserError("--format " + format + ": allowed: table, jsonl, csv");
  std::optional<Question> q;
  if (question) {  // (--question 0 listed every question's trials)
    Bank bank = load_bank(bank_path(ctx));
    if (!bank.find(*question))
      throw UserError(fmt::format("--question {}: no such question; allowed: 1 to {}", *question,
                                  bank.questions.size()));
    q = *bank.find(*question);
  }
  if (!std::filesystem::exists(ctx.db))
    throw UserError(ctx.db + ": no results database yet (run a lab first, or pass --db)");
  Store store(ctx.db);
  // A question's trials are also those of the configs its claims read (Q33's are Q68's), as
  // `show` counts them: --question 33 listed none.
  std::vector<std::string> broken;
  auto trials = q ? question_trials(ctx, *q, store, broken) : store.trials(0);
  for (const auto& e : broken)
    fmt::print(stderr, "not listed: the trials of a config that does not load: {}\n", e);
  if (!preset.empty()) trials = of_preset(ctx, std::move(trials), preset);
  if (format == "jsonl") {
    for (const auto& t : trials) {
      json row = {{"hash", t.hash},
                  {"run_id", t.run_id},
                  {"question", t.question},
                  {"config_file", t.config_file},
                  {"status", t.status},
                  {"seed", t.seed},
                  {"axes", t.axes},
                  {"summary", t.summary},
                  {"measures", t.measures},
                  {"wall_s", t.wall_s},
                  {"finished_at", t.finished_at},
                  {"config", t.config}};
      const auto [preset, command] = store.run_preset_and_command(t.run_id);
      row["preset"] = preset;
      row["command"] = command;
      if (t.status == "diverged") row["diverged_step"] = t.diverged_step;
      // (A store written before configs had to be UTF-8 may hold a file name that is not.)
      std::cout << row.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    }
    return 0;
  }
  if (format == "csv") {
    // The preset and the command of the run that trained each trial tell apart trials of one
    // config run with other overrides (the axes alone do not).
    fmt::print(
        "hash,question,config_file,status,diverged_step,seed,axes,test_acc,test_loss,train_loss,"
        "train_acc,gen_gap,wall_s,finished_at,preset,command\n");
    for (const auto& t : trials) {
      const auto [preset, command] = store.run_preset_and_command(t.run_id);
      fmt::print("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", t.hash, t.question,
                 csv_cell(t.config_file), t.status,
                 t.status == "diverged" ? std::to_string(t.diverged_step) : "", t.seed,
                 // (Each number whole, as the store has it; a missing one an empty field, not
                 // "-", which made the column text to a spreadsheet.)
                 csv_cell(t.axes.dump()), summary_number(t.summary, "test_acc", "{}", ""),
                 summary_number(t.summary, "test_loss", "{}", ""),
                 summary_number(t.summary, "train_loss", "{}", ""),
                 summary_number(t.summary, "train_acc", "{}", ""),
                 summary_number(t.summary, "gen_gap", "{}", ""), t.wall_s, t.finished_at,
                 csv_cell(preset), csv_cell(command));
    }
    return 0;
  }
  fmt::print("{:<12} {:>3} {:<28} {:<9} {:>4} {:>8} {:>9} {:>8}  {}\n", "trial", "Q", "config",
             "status", "seed", "test_acc", "train_loss", "wall_s", "axes");
  for (const auto& t : trials) {
    std::string file = std::filesystem::path(t.config_file).filename().string();
    fmt::print("{:<12} {:>3} {:<28} {:<9} {:>4} {:>8} {:>9} {:>8.1f}  {}\n", t.hash.substr(0, 12),
               t.question, file.substr(0, 28), t.status, t.seed,
               summary_number(t.summary, "test_acc", "{:.4f}"),
               summary_number(t.summary, "train_loss", "{:.4f}"), t.wall_s, t.axes.dump());
  }
  fmt::print("{} trials\n", trials.size());
  return 0;
}

int merge_results(const Context& ctx, const std::vector<std::string>& others) {
  // Every source checked before the store is opened (which creates it): a mistyped path leaves
  // neither an empty store nor half the sources merged.
  for (const auto& o : others) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(o, ec))
      throw UserError(o + (std::filesystem::exists(o, ec) ? ": not a file" : ": no such file") +
                      "; expected a results database to merge into " + ctx.db);
  }
  std::error_code ec;
  const bool existed = std::filesystem::exists(ctx.db, ec);
  bool merged_any = false;
  try {
    Store store(ctx.db);
    for (const auto& o : others) {
      long long added = store.merge_from(o);
      merged_any = true;
      fmt::print("{}: {} trials added to {}\n", o, added, ctx.db);
    }
  } catch (const UserError&) {
    // A first source that fails (not a store, another version's) left an empty store behind,
    // made for it.
    if (!existed && !merged_any)
      for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(ctx.db + suffix, ec);
    throw;
  }
  return 0;
}

int answer_question(const Context& ctx, int number, const RunOptions& opts, bool run) {
  const std::string bank_file = bank_path(ctx);
  Bank bank = load_bank(bank_file);
  const Question* q = bank.find(number);
  if (!q)
    throw UserError(fmt::format("question {}: no such question; allowed: 1 to {}", number,
                                bank.questions.size()));
  if (q->claims.empty() && !q->informed_by.empty()) {
    std::string refs;
    for (int r : q->informed_by) refs += (refs.empty() ? "Q" : ", Q") + std::to_string(r);
    throw UserError(fmt::format(
        "question {} is a {} question with no claims of its own; the labs that inform it: {} "
        "(empiric answer {})",
        number, q->kind, refs, q->informed_by.front()));
  }
  if (q->claims.empty()) {
    std::string with;
    for (const auto& other : bank.questions)
      if (!other.claims.empty()) with += (with.empty() ? "" : ", ") + std::to_string(other.number);
    throw UserError(fmt::format("question {} {}; questions with labs: {}", number,
                                q->kind == "discussion"
                                    ? "is a discussion question, which no lab informs yet"
                                    : "has no lab with claims yet (" + q->kind + ")",
                                with.empty() ? "none" : with));
  }
  const std::vector<std::string> configs = claim_config_files(ctx, *q);
  // An override goes to the configs whose lab reads its key: `answer 35 range.steps=10` shrinks
  // Q35's range test, where every other config of Q35 refused it and nothing ran. One that no
  // config reads is refused as the first config refuses it.
  std::map<std::string, std::vector<std::string>> overrides_of;  // config (as the bank names it)
  {
    std::map<std::string, std::string> lab_of;
    for (const auto& cfg : configs)
      lab_of[cfg] = resolve_config(ctx.home + "/" + cfg, opts.preset, {})
                        .config.value("lab", std::string("train"));
    for (const auto& o : opts.overrides) {
      std::string key = o.substr(0, o.find('='));
      if (key.rfind("sweep.", 0) == 0) key = key.substr(6);  // (an axis: the key it sweeps)
      std::vector<std::string> readers;
      for (const auto& cfg : configs)
        if (lab_reads(lab_of[cfg], key)) readers.push_back(cfg);
      for (const auto& cfg : readers.empty() ? configs : readers) overrides_of[cfg].push_back(o);
    }
  }
  const auto overrides_for = [&](const std::string& cfg) {
    const auto it = overrides_of.find(cfg);
    return it == overrides_of.end() ? std::vector<std::string>{} : it->second;
  };
  // Every config with the preset and overrides first: one refused after the others had run
  // would have cost their runs for nothing, and a report from an empty store said only that it
  // was empty.
  for (const auto& cfg : configs)
    expand_trials(resolve_config(ctx.home + "/" + cfg, opts.preset, overrides_for(cfg)));
  // The options that answer the question again (a store without some of its trials).
  std::string again = opts.preset.empty() ? "" : " --preset " + opts.preset;
  for (const auto& o : opts.overrides) again += " " + shell_quoted(o);
  // A report of no trials would be every claim inconclusive for want of runs.
  if (!run) {
    bool any = false;
    if (std::filesystem::exists(ctx.db)) {
      Store store(ctx.db);
      for (size_t i = 0; i < configs.size() && !any; ++i)
        for (const auto& t : expand_trials(resolve_config(ctx.home + "/" + configs[i], opts.preset,
                                                          overrides_for(configs[i]))))
          if ((any = store.trial(t.hash).has_value())) break;
    }
    if (!any)
      throw UserError(fmt::format(
          "{}: no trial of question {}'s configs{}{} is there; allowed: a store holding them (run "
          "them with `empiric answer {}{}`, or name another with --db)",
          ctx.db, number, opts.preset.empty() ? "" : " (preset " + opts.preset + ")",
          opts.overrides.empty() ? "" : " with these overrides", number, again));
  }

  fmt::print("Q{}: {}\n\n", q->number, q->text);
  int status = 0;  // 1 when a run left failed trials: the verdicts below lack them
  if (run) {
    for (const auto& cfg : configs) {
      RunOptions o = opts;
      o.config = ctx.home + "/" + cfg;
      o.overrides = overrides_for(cfg);
      status = std::max(status, run_config(ctx, o));
      fmt::print("\n");
    }
  }

  // Answered with overrides, the verdicts and the report are not the protocol's: they are stored
  // and written under a tag of their own (results/reports/<tag>/), never over reports/. Nor are
  // they without --preset where a config's full preset is not the config as written (Q39's
  // full protocol has 10 seeds, its file 5): its report went over the committed one.
  bool written_is_full = true;
  if (opts.preset.empty())
    for (const auto& cfg : configs) {
      const std::string path = ctx.home + "/" + cfg;
      const json doc = load_json_file(path);
      if (!doc.contains("presets") || !doc["presets"].contains("full")) continue;
      std::vector<std::string> written, full;
      for (const auto& t : expand_trials(resolve_config(path, "", {}))) written.push_back(t.hash);
      for (const auto& t : expand_trials(resolve_config(path, "full", {}))) full.push_back(t.hash);
      written_is_full = written_is_full && written == full;
    }
  // Overrides of how trials run, not what they compute (kept out of a trial's hash) leave the
  // answer the protocol's: with train.threads=1, which the README suggests for sharing cores, it
  // went under "+overrides". Any other key is the answer's own, though it change no hash (a
  // description, written into the report).
  const auto& run_only = run_only_train_keys();
  bool overridden = false;
  for (const auto& o : opts.overrides) {
    const std::string key = o.substr(0, o.find('='));
    overridden = overridden || key.rfind("train.", 0) != 0 ||
                 std::find(run_only.begin(), run_only.end(), key.substr(6)) == run_only.end();
  }
  std::string given;
  for (const auto& o : opts.overrides) given += (given.empty() ? "" : " ") + o;
  const std::string tag = overridden
                              ? (opts.preset.empty() ? "as-written" : opts.preset) + "+overrides"
                          : written_is_full ? opts.preset
                                            : std::string("as-written");
  if (!overridden && !written_is_full)
    fmt::print(
        "Without --preset full, some of Q{}'s configs are not the protocol: verdicts and "
        "report under \"as-written\"\n\n",
        number);
  if (overridden)
    fmt::print("With overrides ({}): verdicts and report under \"{}\", not the protocol's\n\n",
               given, tag);
  else if (!opts.overrides.empty())
    fmt::print(
        "The overrides ({}) change how the trials run, not what they compute: the same "
        "trials, verdicts and report\n\n",
        given);
  Store store(ctx.db);
  std::vector<ClaimOutcome> outcomes;
  for (const auto& c : q->claims) {
    ClaimOutcome o;
    o.claim = c;
    ResolvedConfig resolved = resolve_config(ctx.home + "/" + c["config"].get<std::string>(),
                                             opts.preset, overrides_for(c["config"]));
    o.resolved_config = resolved.config;
    // A trial two configs share (a sweep's baseline) is stored with the axes of the one that ran
    // it first: here it carries this config's, or the report labels Q100's gradient-noise
    // baseline "label_noise=0".
    auto stored = [&](const ResolvedConfig& cfg, std::vector<TrialRecord>& into) {
      const auto trials = expand_trials(cfg);
      for (const auto& t : trials)
        if (auto rec = store.trial(t.hash)) {
          rec->axes = t.axes;
          into.push_back(std::move(*rec));
        }
      return trials.size();
    };
    o.expected = stored(resolved, o.trials);
    const auto sources = claims::claim_configs(c);
    if (sources.size() > 1)
      o.bound_expected = stored(
          resolve_config(ctx.home + "/" + sources[1], opts.preset, overrides_for(sources[1])),
          o.bound_trials);
    // A store that lacks some of the trials (a run interrupted, or one still running elsewhere)
    // gives verdicts on the rest: said, and recorded with the verdict (it read as the whole).
    const size_t absent = o.expected - o.trials.size() + o.bound_expected - o.bound_trials.size();
    o.verdict = claims::evaluate(c, o.trials, o.bound_trials);
    const auto& v = o.verdict;
    json details = {{"statement", c["statement"]},    {"n", v.n},
                    {"diverged", v.diverged},         {"missing", v.missing},
                    {"seeds_needed", v.seeds_needed}, {"reason", v.reason},
                    {"trials", o.trials.size()},      {"absent", absent}};
    if (!opts.overrides.empty()) details["overrides"] = opts.overrides;  // (the tag names none)
    for (auto [key, value] :
         {std::pair<const char*, double>{"effect", v.effect}, {"lo", v.ci.lo}, {"hi", v.ci.hi}})
      if (std::isfinite(value)) details[key] = value;
    if (!o.trials.empty()) store.put_verdict(number, c["id"], tag, v.verdict, details);
    const std::string interval =
        v.ci.known() ? fmt::format("{:g}% CI [{:+.3g}, {:+.3g}]", v.level * 100, v.ci.lo, v.ci.hi)
                     : std::string("no interval");
    const std::string effect =
        std::isnan(v.effect) ? std::string("not measured") : fmt::format("{:+.3g}", v.effect);
    fmt::print("{}\n  {}\n  verdict: {}  effect {}  {}  n {}  diverged (left out) {}\n  {}\n\n",
               c["id"].get<std::string>(), c["statement"].get<std::string>(), v.verdict, effect,
               interval, v.n, v.diverged, v.reason);
    if (absent > 0)
      fmt::print(
          "  ({} of its config's {} trials are not in the store: the verdict is on the "
          "rest; `empiric answer {}{}` runs them)\n\n",
          absent, o.expected + o.bound_expected, number, again);
    outcomes.push_back(std::move(o));
  }
  const std::string python =
      std::filesystem::exists(ctx.home + "/.venv/bin/python") ? ctx.home + "/.venv/bin/python" : "";
  std::string report = write_report(ctx.home, *q, tag, outcomes, store, python, again);
  write_report_index(ctx.home, bank, store, tag);
  // Relative to where the user stands, when the report lies below it.
  const auto shown = std::filesystem::path(report).lexically_proximate(std::filesystem::current_path());
  fmt::print("Report: {}\n", shown.empty() || *shown.begin() == ".." ? report : shown.string());
  return status;
}

std::string command_output(const std::string& command, int& status) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) {
    status = -1;
    return out;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  status = pclose(pipe);
  if (status != -1) status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

int run_benchmarks(const Context& ctx, const std::string& filter, int repetitions,
                   const std::string& binary, const std::string& json_out) {
  std::string bin = binary;
  if (bin.empty()) {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    bin = (self.parent_path().parent_path() / "bench" / "kernels_bench").string();
  }
  if (!std::filesystem::exists(bin))
    throw UserError(bin +
                    ": no benchmark binary (build with -DEMPIRIC_BENCH=ON, or pass --binary)");
  if (!std::filesystem::is_regular_file(bin) || access(bin.c_str(), X_OK) != 0)
    throw UserError(bin + ": not an executable file; expected the kernels_bench binary");
  if (repetitions < 1)
    throw UserError("--repetitions " + std::to_string(repetitions) + ": allowed: 1 or more");
  if (!json_out.empty()) check_writable_file("--json", json_out, "k.json");
  std::string cmd = shell_quoted(bin) +
                    " --benchmark_format=json --benchmark_filter=" + shell_quoted(filter) +
                    " --benchmark_repetitions=" + std::to_string(repetitions) +
                    (repetitions > 1 ? " --benchmark_report_aggregates_only=true" : "");
  fmt::print(stderr, "running {}\n", cmd);
  // Its stderr kept aside: Google Benchmark says there why it ran nothing (a filter that is no
  // regular expression, or that matches no benchmark).
  const std::string err_file = (std::filesystem::temp_directory_path() /
                                ("empiric-bench-" + std::to_string(getpid()) + ".err"))
                                   .string();
  int rc = 0;
  const std::string out = command_output(cmd + " 2>" + shell_quoted(err_file), rc);
  std::string why;
  {
    std::ifstream err(err_file);
    for (std::string line; std::getline(err, line);)
      if (line.find_first_not_of(" \t\r") != std::string::npos) why = line;
    std::error_code ec;
    std::filesystem::remove(err_file, ec);
  }
  if (rc == -1) throw UserError(bin + ": cannot run");
  json doc = json::parse(out, nullptr, false);
  if (rc != 0 || doc.is_discarded() || !doc.contains("benchmarks"))
    throw UserError(bin + ": benchmark run failed (exit status " + std::to_string(rc) +
                    ", no JSON report" + (why.empty() ? "" : ": " + why) + ")" +
                    (why.find("regex") != std::string::npos || why.find(" re:") != std::string::npos
                         ? "; --filter '" + filter +
                               "': allowed: a regular expression matching a benchmark's name"
                         : ""));

  if (!json_out.empty()) write_file_whole(json_out, out);
  json env = host_environment(ctx.home);
  env["benchmark_context"] = doc["context"];
  GpuInfo gpu = gpu_info();
  if (gpu.count > 0) env["gpu"] = gpu.name;
  Store store(ctx.db);
  const long long env_id = store.put_environment(env);
  const std::regex question("Q(\\d{1,6})(?!\\d)");  // (Q99999999999 names no question)
  // A field of the report that is not a number (a benchmark's "NaN" string) reads as `or`.
  auto number = [](const json& b, const char* key, double or_) {
    return b.contains(key) && b[key].is_number() ? b[key].get<double>() : or_;
  };
  int stored = 0, errored = 0;
  std::string first_error;  // a benchmark that reported an error (no CUDA GPU) stores nothing
  fmt::print("{:<56} {:>12} {:>10} {:>12}  {}\n", "benchmark", "time", "GB/s", "items/s",
             "questions");
  for (const auto& b : doc["benchmarks"]) {
    if (!b.is_object()) continue;
    auto text = [&](const char* key, const std::string& or_) {
      return b.contains(key) && b[key].is_string() ? b[key].get<std::string>() : or_;
    };
    if (b.contains("error_occurred") && b["error_occurred"] == true) {
      if (errored++ == 0) first_error = text("name", "?") + ": " + text("error_message", "?");
      continue;
    }
    if (text("run_type", "") == "aggregate" && text("aggregate_name", "") != "median") continue;
    BenchRecord r;
    r.name = text("run_name", text("name", ""));
    const std::string label = text("label", "");
    for (std::sregex_iterator it(label.begin(), label.end(), question), end; it != end; ++it)
      r.questions.push_back(std::stoi((*it)[1]));
    const std::string unit = text("time_unit", "ns");
    const double scale = unit == "ns" ? 1e-9 : unit == "us" ? 1e-6 : unit == "ms" ? 1e-3 : 1.0;
    r.time_s = number(b, "real_time", NAN) * scale;
    r.items_per_s = number(b, "items_per_second", 0.0);
    r.bytes_per_s = number(b, "bytes_per_second", 0.0);
    // (An aggregate's "iterations" is Google Benchmark's count of repetitions, not of calls.)
    r.counters = {{"repetitions", repetitions}};
    if (text("run_type", "") != "aggregate") r.counters["iterations"] = number(b, "iterations", 0);
    for (const char* unit : {"params", "examples"})
      if (b.contains(unit)) r.counters[unit] = b[unit];
    r.env_id = env_id;
    store.put_bench(r);
    ++stored;
    std::string qs;
    for (int q : r.questions) qs += (qs.empty() ? "Q" : " Q") + std::to_string(q);
    fmt::print("{:<56} {:>9.1f} us {:>10.1f} {:>12.3g}  {}\n", r.name.substr(0, 56), r.time_s * 1e6,
               r.bytes_per_s / 1e9, r.items_per_s, qs);
  }
  fmt::print("{} records stored in {}\n", stored, ctx.db);
  // Every benchmark that ran reported an error: a run that measured nothing is no success.
  if (errored > 0 && stored == 0)
    throw UserError(
        fmt::format("{}: every benchmark run reported an error ({} runs; the first: {})", bin,
                    errored, first_error));
  if (errored > 0)
    fmt::print(stderr, "{} benchmark runs reported an error and were not stored (the first: {})\n",
               errored, first_error);
  return 0;
}

}  // namespace empiric::cli
