// Lab configs: file + preset + key=value overrides -> validated, defaults filled -> trials.
//
// A trial is the resolved config with one value per sweep axis and one seed; its identity is the
// SHA-256 of its canonical JSON (sorted keys, fixed number format) plus the lab code's version, so
// rerunning a sweep finds the trials it already finished instead of repeating them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace empiric {

using json = nlohmann::json;

// Bumped when a change to the training code changes what a trial computes: old results then no
// longer count as finished.
inline constexpr const char* kLabVersion = "lab-1";

struct ResolvedConfig {
  std::string file;    // where it came from (for messages and records)
  std::string preset;  // "" when none
  json config;         // every key present, validated; no "presets"
  json raw;            // merged and overridden but before defaults: what trials expand from
};

struct Trial {
  json config;       // resolved, with "seed" set and no "sweep"/"seeds"
  std::string hash;  // identity
  json axes;         // the sweep values of this trial, dotted key -> value
  int seed = 0;
};

// Parses a JSON file; a missing file or a syntax error is a UserError naming the file (and line).
json load_json_file(const std::string& path);

// Writes `bytes` to `path` whole or not at all: to a temporary file of this process and thread
// beside it (two writers never share one), then renamed over `path`, so a kill or a failure
// midway leaves the file before it. A write that fails (a full disk, a folder that is not
// writable) removes the temporary file and throws UserError naming `path` and the reason.
void write_file_whole(const std::string& path, const std::string& bytes);
// Removes the temporary files write_file_whole left in `dir` when a kill stopped their writer
// midway: those of a process no longer on this machine, untouched for a minute (a checkpoint
// cut short stayed beside the checkpoints for good, tens of MB each). Returns how many.
int remove_abandoned_writes(const std::string& dir);
// Tries `path` for appending before a long command writes it at its end, so that one it cannot
// write fails at once: a UserError naming `option` ("--json") and the path, a folder as such
// (`example`: a file name to suggest). A file already there is left as it is.
void check_writable_file(const std::string& option, const std::string& path,
                         const std::string& example);
// The bytes gzip-compressed (zlib's own header: no name, no time), the same bytes for the same
// input: for tables too large to keep in a repository plain (the reports' curves).
std::string gzipped(const std::string& bytes);

// Applies `key.path=value` to `config`. The value is parsed as JSON when it parses, else taken
// as a string. Unknown keys and wrong types are ConfigErrors naming the override.
void apply_override(json& config, const std::string& assignment);

// The whole pipeline: load, merge the preset, apply overrides, fill defaults, validate.
ResolvedConfig resolve_config(const std::string& path, const std::string& preset,
                              const std::vector<std::string>& overrides);
// The same from a document already in memory; `source` names it in messages.
ResolvedConfig resolve_config_json(json doc, const std::string& source, const std::string& preset,
                                   const std::vector<std::string>& overrides);

// Validates a complete config in place (coercing numbers to the declared type) and fills
// defaults. Throws ConfigError with the file, JSON pointer, value and what is allowed.
void validate_and_fill(json& config, const std::string& source);

// The eps-sharpness ascent stops once its largest rise grew by at most measure.eps_tol of itself
// over this many steps (measures.cpp), so with eps_tol > 0 it needs more steps than this.
constexpr int kEpsSharpnessWindow = 10;

// Whether lab `lab` reads `key`, a section ("measure") or a dotted key ("train.epochs"): the
// sections of other labs, and for the implicit and lr_range labs the training keys they ignore,
// are refused in a config (their defaults are filled in all the same).
bool lab_reads(const std::string& lab, const std::string& key);
// Whether `key` is in (or is) a section only one lab reads: range, lottery, implicit.
bool lab_section(const std::string& key);

// A resolved config as `empiric config` prints it: every key its lab reads, defaults included,
// and no other; a file holding it resolves to the same trials.
json printable_config(const ResolvedConfig& resolved);

// Grid over the sweep axes times the seeds, each trial validated and hashed. Order: axes in
// key order, values in listed order, seeds innermost.
// Refused (ConfigError at /sweep) above kMaxTrials trials.
std::vector<Trial> expand_trials(const ResolvedConfig& resolved);
inline constexpr long long kMaxTrials = 100000;
// Refused in model.widths, channels and dense: longer lists of layers.
inline constexpr size_t kMaxLayers = 1000;

// Canonical text of a JSON value: object keys sorted, no whitespace, numbers in shortest
// round-trip form (1.0 and 1 differ only when the schema types differ, and validation
// coerces them).
std::string canonical_json(const json& value);
// What of a trial config decides what the trial computes: less its words, where and how fast it
// runs (device, threads, checkpoints, population, CUDA graphs), a section only another lab reads,
// and keys added later that sit at their defaults (so stored trials keep their hashes).
json trial_identity(const json& trial_config);
// The train keys of where and how fast a trial runs, which trial_identity leaves out: device,
// threads, checkpoint, checkpoint_every_s, population, cuda_graphs.
const std::vector<std::string>& run_only_train_keys();
// sha256 of the identity's canonical text and the lab version: a trial's key in the store.
std::string trial_hash(const json& trial_config);

// "optim.lr" -> "/optim/lr"
std::string dotted_to_pointer(const std::string& dotted);

}  // namespace empiric
