// empiric: the command-line front of the lab. Parses arguments, calls one command, and turns
// every user error into one line on stderr and exit status 2.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <new>
#include <system_error>
#include <vector>

#include "cli/commands.h"
#include "core/errors.h"

#ifndef EMPIRIC_SOURCE_DIR
#define EMPIRIC_SOURCE_DIR "."
#endif

namespace {

std::string default_home() {
  if (const char* h = std::getenv("EMPIRIC_HOME")) return h;
  return EMPIRIC_SOURCE_DIR;
}

// One to six digits and nothing else.
bool digits(const std::string& t) {
  return !t.empty() && t.size() <= 6 && t.find_first_not_of("0123456789") == std::string::npos;
}

// A question (section) number's check: CLI11 alone read "" as question 0, and a leading 0 as
// octal ("010" was question 8). Read as decimal: the leading zeros go.
CLI::Validator decimal_number(const std::string& what, const std::string& example) {
  return CLI::Validator(
      [what, example](std::string& s) {
        if (!digits(s)) return "\"" + s + "\": expected a " + what + " number, e.g. " + example;
        s.erase(0, std::min(s.find_first_not_of('0'), s.size() - 1));
        return std::string();
      },
      "NUMBER");
}
const CLI::Validator kQuestionNumber = decimal_number("question", "99");
const CLI::Validator kSectionNumber = decimal_number("section", "15");

// Ctrl-C (or a TERM) during a run: one line on what was kept, then the end the signal would
// have made (a shell sees status 130). Only async-signal-safe calls.
const char kInterruptedRun[] =
    "\nempiric: interrupted; finished trials are in the store, and the same command again "
    "runs the others (from their last checkpoints where train.checkpoint is on)\n";
// With --force: the trials it trained replaced their records, the others kept theirs.
const char kInterruptedForce[] =
    "\nempiric: interrupted; the trials this run finished replaced their records, the others "
    "keep their earlier ones; the same command again (--force) trains every trial afresh, "
    "without --force it keeps them\n";
const char* interrupted_text = kInterruptedRun;  // (chosen before the handler is installed)

extern "C" void on_interrupt(int sig) {
  const ssize_t written = write(STDERR_FILENO, interrupted_text, std::strlen(interrupted_text));
  (void)written;
  raise(sig);  // (SA_RESETHAND: the default action now)
}

// "2/8" -> {2, 8}: two whole numbers and nothing else.
std::pair<int, int> parse_shard(const std::string& s) {
  const auto slash = s.find('/');
  if (slash != std::string::npos && digits(s.substr(0, slash)) && digits(s.substr(slash + 1))) {
    const int i = std::stoi(s.substr(0, slash)), n = std::stoi(s.substr(slash + 1));
    if (n >= 1 && i < n) return {i, n};
  }
  throw empiric::UserError("--shard " + s +
                           ": expected i/n with 0 <= i < n <= 999999, e.g. 0/4 (whole numbers)");
}

// The first word of argv that is neither an option nor its value, when it names no subcommand
// ("" otherwise): CLI11 reports such a word only as a missing subcommand.
std::string unknown_subcommand(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--home" || arg == "--db") {
      ++i;
      continue;
    }
    if (arg.empty() || arg[0] == '-') {
      // A subcommand's option given before the subcommand (--preset quick run): its value is no
      // command; the message is left to CLI11.
      if (arg.size() > 2 && arg.find('=') == std::string::npos && i + 1 < argc &&
          argv[i + 1][0] != '-')
        return "";
      continue;
    }
    const auto named =
        app.get_subcommands([&](const CLI::App* sub) { return sub->get_name() == arg; });
    return named.empty() ? arg : "";
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace empiric;
  CLI::App app{"empiric: a training lab that answers ML questions with experiments"};
  app.require_subcommand(1);
  cli::Context ctx;
  ctx.home = default_home();
  ctx.db.clear();
  app.add_option("--home", ctx.home,
                 "the empiric checkout (questions/, configs/); env EMPIRIC_HOME");
  app.add_option("--db", ctx.db, "results database (default: HOME/results/empiric.db)");

  int section = -1, question = 0;  // (section -1: every one)
  std::string kind, format = "table";
  bool as_json = false, markdown = false, list_trials = false;
  auto* list = app.add_subcommand("list", "list the questions");
  list->add_option("--section", section, "only this section (1-15)")->transform(kSectionNumber);
  list->add_option("--kind", kind, "empirical or discussion");
  list->add_flag("--json", as_json, "JSON output");

  auto* show = app.add_subcommand("show", "a question, its claims, verdicts and benchmarks");
  show->add_option("question", question, "question number")->required()->transform(kQuestionNumber);
  show->add_flag("--json", as_json, "JSON output");
  std::string show_preset;
  show->add_option(
      "--preset", show_preset,
      "only the verdicts and trials of this preset (quick, full, ...), or of the configs "
      "as written where that is not their full preset (as-written)");

  cli::RunOptions run_opts;
  auto* config = app.add_subcommand("config", "validate a config and print it resolved");
  config->add_option("file", run_opts.config, "config file")->required();
  config->add_option("overrides", run_opts.overrides, "key.path=value overrides");
  config->add_option("--preset", run_opts.preset,
                     "preset to merge (quick: minutes on a CPU; full); without one, the config as "
                     "written, which for most labs is the full protocol");
  config->add_flag("--trials", list_trials, "list the trials (hash, seed, sweep values) instead");

  auto* keys = app.add_subcommand("keys",
                                  "every config key with its default and meaning (--markdown: also "
                                  "its type and allowed values)");
  keys->add_flag("--markdown", markdown, "print docs/CONFIG.md");

  std::string shard = "0/1";
  bool no_progress = false;
  auto* run = app.add_subcommand(
      "run", "run a config: its sweep x seeds, skipping finished trials, resuming killed ones");
  run->add_option("file", run_opts.config, "config file")->required();
  run->add_option("overrides", run_opts.overrides, "key.path=value overrides");
  run->add_option("--preset", run_opts.preset,
                  "preset to merge (quick: minutes on a CPU; full); without one, the config as "
                  "written, which for most labs is the full protocol");
  run->add_option("--device", run_opts.device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  run->add_flag("--force", run_opts.force, "rerun trials that are already in the store");
  run->add_option("--jobs", run_opts.jobs,
                  "units of work (trials, populations, lottery chains) at once, sharing the CPU's "
                  "cores (a GPU runs one at a time)")
      ->check(CLI::Range(1, 64));
  run->add_option("--shard", shard, "run only shard i of n of the trials (i/n, i from 0 to n-1)");
  run->add_flag("--no-progress", no_progress, "plain lines instead of a progress bar");

  std::string bench_filter = ".", bench_binary, bench_json;
  int bench_reps = 1;
  auto* bench = app.add_subcommand("bench", "run the kernel benchmarks and store their records");
  bench->add_option("--filter", bench_filter,
                    "regex over benchmark names (Google Benchmark's filter)");
  bench->add_option("--repetitions", bench_reps, "repetitions (the median is stored)");
  bench->add_option("--binary", bench_binary,
                    "benchmark binary (default: BUILD/bench/kernels_bench)");
  bench->add_option("--json", bench_json,
                    "kernels suite: also write Google Benchmark's JSON report to this file");
  std::string bench_suite = "kernels";
  cli::TrainingBenchOptions tb;
  bool no_peers = false;
  bench->add_option("--suite", bench_suite, "kernels (Google Benchmark) or training (whole runs)")
      ->check(CLI::IsMember({"kernels", "training"}));
  bench->add_option("--config", tb.config, "training suite: the config (default: LeNet-300-100)");
  bench->add_option("--members", tb.members, "training suite: models in the population")
      ->check(CLI::Range(2, 256));
  bench->add_option("--epochs", tb.epochs, "training suite: epochs per model")->check(CLI::Range(1, 1000));
  bench->add_option("--batch", tb.batch, "training suite: batch size")->check(CLI::Range(1, 1 << 20));
  bench->add_option("--device", tb.device, "training suite: auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  bench->add_flag("--no-peers", no_peers, "training suite: skip the PyTorch Python peers");
  bench->add_flag("--tf32", tb.tf32,
                  "training suite: on a GPU, TF32 matmuls (train.tf32) for empiric and the peers");
  bench->add_option("--profile", tb.profile,
                    "training suite: also profile a window of steps of one model and of the "
                    "population (torch's profiler) and write the top kernels and operators to this "
                    "Markdown file");

  int answer_q = 0;
  auto* answer =
      app.add_subcommand("answer", "run the labs behind a question and print the verdicts");
  answer->add_option("question", answer_q, "question number")
      ->required()
      ->transform(kQuestionNumber);
  answer->add_option("--preset", run_opts.preset,
                     "preset to merge (quick: minutes on a CPU; full); without one, the config as "
                     "written, which for most labs is the full protocol (where it is not, the "
                     "report goes to results/reports/as-written/)");
  answer->add_option("--device", run_opts.device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  answer
      ->add_option("--jobs", run_opts.jobs,
                   "units of work (trials, populations, lottery chains) at once, sharing the CPU's "
                   "cores (a GPU runs one at a time)")
      ->check(CLI::Range(1, 64));
  answer->add_flag("--no-progress", no_progress, "plain lines instead of a progress bar");
  answer->add_option("overrides", run_opts.overrides,
                     "key.path=value overrides, applied to every config behind the question whose "
                     "lab reads the key");
  auto* report = app.add_subcommand(
      "report",
      "evaluate a question's claims on the store and write its report (reports/qNNN/ for "
      "the full protocol; results/reports/TAG/qNNN/ for a quick preset, overrides, or configs as "
      "written that are not their full preset)");
  report->add_option("question", answer_q, "question number")
      ->required()
      ->transform(kQuestionNumber);
  report->add_option("--preset", run_opts.preset, "the preset whose trials to use");
  report->add_option("overrides", run_opts.overrides, "the overrides the trials ran with");

  std::vector<std::string> merge_files;
  auto* results = app.add_subcommand("results", "query the results store");
  auto* results_question =
      results->add_option("--question", question, "only this question")->transform(kQuestionNumber);
  results->add_option("--format", format, "table, jsonl or csv");
  std::string results_preset;
  results->add_option("--preset", results_preset,
                      "only the trials their config makes with this preset (quick, full, ...)");
  auto* merge = results->add_subcommand("merge", "merge other stores (e.g. from shards) into --db");
  merge->add_option("files", merge_files, "databases to merge")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (const std::string word = unknown_subcommand(app, argc, argv); !word.empty()) {
      std::string names;
      for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; }))
        names += (names.empty() ? "" : ", ") + sub->get_name();
      std::cerr << "empiric: " << word << ": no such command; allowed: " << names << "\n";
      return 2;
    }
    // The help of the command whose option it was (bench --members 0 pointed at the top-level
    // help, which lists no subcommand's options).
    // (Down to a nested one: results merge.)
    std::string path = "empiric";
    for (const CLI::App* at = &app; at != nullptr;) {
      const auto subs = at->get_subcommands();
      at = subs.empty() ? nullptr : subs.back();
      if (at) path += " " + at->get_name();
    }
    const std::string help = path + " --help";
    std::cerr << "empiric: " << e.what() << " (see " << help << ")\n";
    return 2;
  }
  if (ctx.db.empty() && app.get_option("--db")->count() > 0) {
    std::cerr << "empiric: --db \"\": expected a database file's path\n";
    return 2;
  }
  if (ctx.db.empty()) ctx.db = ctx.home + "/results/empiric.db";
  // A config named from the checkout (configs/q39_xor.json) in another folder: read from --home
  // when the current folder has no such file (answer and report always read from there).
  if ((*config || *run) && run_opts.config.empty()) {  // (it read as --home, a folder)
    std::cerr << "empiric: config \"\": expected a config file's path, e.g. "
                 "configs/q99_same_epochs.json\n";
    return 2;
  }
  if ((*config || *run) && std::filesystem::path(run_opts.config).is_relative()) {
    std::error_code ec;
    const auto in_home = std::filesystem::path(ctx.home) / run_opts.config;
    if (!std::filesystem::exists(run_opts.config, ec) && std::filesystem::exists(in_home, ec)) {
      run_opts.config = in_home.string();
      // (A relative data.path or train.mask_file in it is still read from here.)
      std::cerr << "empiric: " << in_home.string()
                << ": read from --home (a relative data.path in it is still from the current "
                   "folder)\n";
    }
  }

  int output_errno = 0;  // a write to stdout that failed inside a command (fmt::print's throw)
  const int status = [&]() -> int {
    try {
      if (*list) return cli::list_questions(ctx, section, kind, as_json);
      if (*show) return cli::show_question(ctx, question, as_json, show_preset);
      if (*config)
        return cli::show_config(ctx, run_opts.config, run_opts.preset, run_opts.overrides,
                                list_trials);
      if (*keys) return cli::print_keys(markdown);
      if (*merge) return cli::merge_results(ctx, merge_files);
      if (run_opts.force) interrupted_text = kInterruptedForce;
      if (*answer || *run)
        for (int sig : {SIGINT, SIGTERM}) {
          struct sigaction old {};
          sigaction(sig, nullptr, &old);
          if (old.sa_handler == SIG_IGN) continue;  // (started with it ignored: left so)
          struct sigaction act {};
          act.sa_handler = on_interrupt;
          sigemptyset(&act.sa_mask);
          act.sa_flags = SA_RESETHAND;  // the handler runs once, then the default ends the process
          sigaction(sig, &act, nullptr);
        }
      if (*answer || *report) {
        run_opts.progress = !no_progress && isatty(STDERR_FILENO) && !std::getenv("CI");
        return cli::answer_question(ctx, answer_q, run_opts, bool(*answer));
      }
      if (*bench) {
        // Each suite's options are its own: given to the other suite they were ignored without a
        // word (`--suite training --json x.json` wrote nothing).
        const bool training = bench_suite == "training";
        const std::vector<std::string> kernels_only = {"--filter", "--repetitions", "--binary",
                                                       "--json"},
                                       training_only = {"--config", "--members", "--epochs",
                                                        "--batch",  "--device",  "--no-peers",
                                                        "--tf32",   "--profile"};
        const auto& mine = training ? training_only : kernels_only;
        for (const std::string& name : training ? kernels_only : training_only)
          if (bench->get_option(name)->count() > 0) {
            std::string allowed;
            for (const std::string& m : mine) allowed += (allowed.empty() ? "" : ", ") + m;
            throw UserError("bench " + name + ": an option of the " +
                            (training ? "kernels" : "training") + " suite, not of --suite " +
                            bench_suite + "; allowed with it: " + allowed);
          }
      }
      if (*bench && bench_suite == "training") {
        tb.peers = !no_peers;
        return cli::run_training_bench(ctx, tb);
      }
      if (*bench)
        return cli::run_benchmarks(ctx, bench_filter, bench_reps, bench_binary, bench_json);
      if (*results)
        return cli::print_results(
            ctx, results_question->count() > 0 ? std::optional<int>(question) : std::nullopt,
            format, results_preset);
      if (*run) {
        std::tie(run_opts.shard_index, run_opts.shard_count) = parse_shard(shard);
        run_opts.progress = !no_progress && isatty(STDERR_FILENO) && !std::getenv("CI");
        return cli::run_config(ctx, run_opts);
      }
    } catch (const Interrupted& e) {  // (a child stopped by Ctrl-C: as the signal would end us)
      std::fflush(stdout);  // (what was printed before, the verdicts, is not lost in its buffer)
      std::cout.flush();
      std::signal(e.signal(), SIG_DFL);
      if (*e.what()) {
        std::cerr << "\nempiric: " << e.what() << "\n";
        raise(e.signal());
      } else {
        on_interrupt(e.signal());
      }
      return 128 + e.signal();
    } catch (const UserError& e) {
      std::cerr << "empiric: " << e.what() << "\n";
      return 2;
    } catch (const std::exception& e) {
      // fmt::print throws when stdout cannot take its text (a full disk): said below, as output
      // that could not be written, not as an internal error.
      if (const auto* se = dynamic_cast<const std::system_error*>(&e)) {
        const int code = se->code().value();
        if (code == ENOSPC || code == EPIPE || code == EBADF || code == EIO || code == EFBIG ||
            code == EDQUOT) {
          output_errno = code;
          return 2;
        }
      }
      // torch's messages carry a stack trace after their first line: shown only when asked for.
      const std::string what = e.what();
      const std::string first = what.substr(0, what.find('\n'));
      const bool full = std::getenv("EMPIRIC_BACKTRACE") != nullptr;
      if (const std::string memory = out_of_memory_text(e); !memory.empty()) {
        std::cerr << "empiric: out of memory: " << (full ? what : memory) << " (" << kTooLarge
                  << ")\n";
        return 2;
      }
      std::cerr << "empiric: internal error: " << (full ? what : first)
                << (full || first == what ? ""
                                          : "\n(EMPIRIC_BACKTRACE=1 shows torch's stack trace)")
                << "\n";
      return 3;
    }
    return 0;
  }();
  // Output that could not be written (a full disk, a closed pipe's reader gone) is an error, not
  // a success with nothing in the file.
  std::cout.flush();
  const bool cout_failed = !std::cout;
  if (output_errno != 0 || std::fflush(stdout) != 0 || std::ferror(stdout) || cout_failed) {
    const int err = output_errno != 0 ? output_errno : errno;
    std::cerr << "empiric: standard output could not be written"
              << (err ? std::string(" (") + std::strerror(err) + ")" : std::string()) << "\n";
    return status != 0 ? status : 2;
  }
  return status;
}
