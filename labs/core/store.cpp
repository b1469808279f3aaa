#include "core/store.h"

#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "core/errors.h"
#include "core/note.h"

namespace empiric {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS environments (
  id INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, ended_at TEXT, command TEXT NOT NULL,
  config_file TEXT, question INTEGER, preset TEXT, env_id INTEGER REFERENCES environments(id),
  status TEXT NOT NULL DEFAULT 'running');
CREATE TABLE IF NOT EXISTS trials (
  hash TEXT PRIMARY KEY, run_id INTEGER REFERENCES runs(id), question INTEGER,
  config_file TEXT, status TEXT NOT NULL, diverged_step INTEGER, seed INTEGER,
  config TEXT NOT NULL, axes TEXT NOT NULL, summary TEXT NOT NULL, measures TEXT NOT NULL,
  wall_s REAL, finished_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS trials_question ON trials(question);
CREATE TABLE IF NOT EXISTS metrics (
  trial_hash TEXT NOT NULL, epoch INTEGER NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL,
  value REAL, PRIMARY KEY (trial_hash, step, name));
CREATE TABLE IF NOT EXISTS verdicts (
  id INTEGER PRIMARY KEY, question INTEGER NOT NULL, claim TEXT NOT NULL, preset TEXT,
  verdict TEXT NOT NULL, json TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
  hash TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, taken_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bench_records (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, questions TEXT NOT NULL, time_s REAL,
  items_per_s REAL, bytes_per_s REAL, counters TEXT NOT NULL, env_id INTEGER, created_at TEXT NOT NULL);
)sql";

// A JSON value as stored: a string that is not UTF-8 (an error message cut mid-character, a
// file name in another encoding) has its bad bytes replaced, where dump() would throw and lose
// the record.
std::string stored(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

constexpr const char* kNow = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

// One prepared statement; binds by position, steps, and finalizes on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql, const std::string& where) : db_(db), where_(where) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st_, nullptr) != SQLITE_OK) raise();
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt& bind(int i, long long v) { return check(sqlite3_bind_int64(st_, i, v)); }
  Stmt& bind(int i, int v) { return check(sqlite3_bind_int64(st_, i, v)); }
  Stmt& bind(int i, double v) { return check(sqlite3_bind_double(st_, i, v)); }
  Stmt& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(st_, i, v.c_str(), int(v.size()), SQLITE_TRANSIENT));
  }
  // true while a row is available
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    raise();
  }
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  long long i64(int c) { return sqlite3_column_int64(st_, c); }
  // SQLite stores a NaN as NULL, which sqlite3_column_double reads as 0: a diverging evaluation's
  // loss would come back as a perfect one.
  double f64(int c) {
    return sqlite3_column_type(st_, c) == SQLITE_NULL ? NAN : sqlite3_column_double(st_, c);
  }
  std::string text(int c) {
    auto p = sqlite3_column_text(st_, c);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  // A value nested deeper than anything empiric writes (a row edited by hand) reads as damaged,
  // as text that is no JSON does: printed back, 100,000 levels overflowed the stack.
  json js(int c) {
    bool too_deep = false;
    json::parser_callback_t limit = [&](int depth, json::parse_event_t event, json&) {
      if ((event == json::parse_event_t::object_start ||
           event == json::parse_event_t::array_start) &&
          depth >= 256)
        too_deep = true;
      return !too_deep;
    };
    json parsed = json::parse(text(c), limit, false);
    return too_deep ? json(json::value_t::discarded) : parsed;
  }
  const std::string& where() const { return where_; }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) raise();
    return *this;
  }
  [[noreturn]] void raise() {
    throw UserError(where_ + ": database error: " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
  std::string where_;
};

// BEGIN IMMEDIATE takes the write lock up front, so concurrent writers queue on the busy timeout
// instead of failing with SQLITE_BUSY at COMMIT.
class WriteTxn {
 public:
  explicit WriteTxn(Store& s, sqlite3* db) : db_(db) {
    (void)s;
    if (!sqlite3_get_autocommit(db_)) {  // inside a Store::Batch's: part of it
      done_ = nested_ = true;
      return;
    }
    run("BEGIN IMMEDIATE");
  }
  ~WriteTxn() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    if (nested_) return;
    run("COMMIT");
    done_ = true;
  }

 private:
  void run(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw UserError(std::string(sqlite3_db_filename(db_, "main")) + ": database error: " + msg);
    }
  }
  sqlite3* db_;
  bool done_ = false, nested_ = false;
};

// A JSON column of a row edited by hand, or damaged, that is not of the kind `ok` accepts: said
// naming the row and how to drop it, not later as a crash. (NULL reads as `empty`.)
json checked_json(Stmt& q, int c, const char* column, const std::string& table,
                  const std::string& row, bool (*ok)(const json&), const json& empty,
                  const std::string& redo) {
  json value = q.js(c);
  if (value.is_null()) return empty;
  if (ok(value)) return value;
  throw UserError(q.where() + ": " + table + " row " + row + ": its " + column + " is not " +
                  (value.is_discarded()
                       ? std::string("JSON")
                       : "what empiric writes (" + value.dump().substr(0, 40) + ")") +
                  "; the store is damaged: delete that row (sqlite3 ... \"DELETE FROM " + table +
                  " WHERE id = " + row + "\") and " + redo);
}

TrialRecord read_trial(Stmt& q) {
  TrialRecord r;
  r.hash = q.text(0);
  r.run_id = q.i64(1);
  r.question = int(q.i64(2));
  r.config_file = q.text(3);
  r.status = q.text(4);
  r.diverged_step = q.i64(5);
  r.seed = int(q.i64(6));
  r.config = q.js(7);
  r.axes = q.js(8);
  r.summary = q.js(9);
  r.measures = q.js(10);
  // A store edited by hand, or damaged: said here, naming the trial, not later as a crash.
  // (NULL, SQL's or JSON's, reads as nothing recorded.)
  for (const auto& [column, value] : {std::pair<const char*, json*>{"config", &r.config},
                                      {"axes", &r.axes},
                                      {"summary", &r.summary},
                                      {"measures", &r.measures}})
    if (value->is_null())
      *value = json::object();
    else if (!value->is_object())
      throw UserError(
          q.where() + ": trial " + r.hash + ": its " + column + " is not a JSON object (" +
          (value->is_discarded() ? std::string("not JSON") : value->dump().substr(0, 40)) +
          "); the store is damaged: delete that row (sqlite3 ... \"DELETE FROM trials "
          "WHERE hash = '" +
          r.hash + "'\") and run its config again");
  r.wall_s = q.f64(11);
  r.finished_at = q.text(12);
  return r;
}

constexpr const char* kTrialColumns =
    "hash, run_id, question, config_file, status, diverged_step, seed, config, axes, summary, "
    "measures, wall_s, finished_at";

// The columns of each table, in `schema` ("main", "other") of `db`.
std::map<std::string, std::vector<std::string>> table_columns(sqlite3* db,
                                                              const std::string& schema,
                                                              const std::string& where) {
  std::map<std::string, std::vector<std::string>> out;
  Stmt tables(db, "SELECT name FROM " + schema + ".sqlite_master WHERE type = 'table'", where);
  while (tables.step()) {
    // (Bound, not spliced: a table someone added by hand may be named "run notes" or "order".)
    const std::string table = tables.text(0);
    Stmt q(db, "SELECT name FROM pragma_table_info(?, ?)", where);
    q.bind(1, table).bind(2, schema);
    while (q.step()) out[table].push_back(q.text(0));
  }
  return out;
}

// The columns this empiric reads and writes (kSchema's, read from a store made in memory): a
// store another version wrote (a column fewer or more) is named as such, not met with "no such
// column" from SQLite or, merged, blamed on the wrong file. "" where `schema` has them all.
std::string column_mismatch(sqlite3* db, const std::string& schema, const std::string& where) {
  static const auto expected = [] {
    sqlite3* fresh = nullptr;
    sqlite3_open(":memory:", &fresh);
    sqlite3_exec(fresh, kSchema, nullptr, nullptr, nullptr);
    auto columns = table_columns(fresh, "main", ":memory:");
    sqlite3_close(fresh);
    return columns;
  }();
  const auto present = table_columns(db, schema, where);
  for (const auto& [table, columns] : expected) {
    if (!present.count(table)) continue;  // (one an older store lacked is added: IF NOT EXISTS)
    const std::vector<std::string>& have = present.at(table);
    for (const auto& c : columns)
      if (std::find(have.begin(), have.end(), c) == have.end())
        return "its table " + table + " has no column " + c;
    for (const auto& c : have)
      if (std::find(columns.begin(), columns.end(), c) == columns.end())
        return "its table " + table + " has a column " + c + " this empiric does not know";
  }
  return "";
}

}  // namespace

Store::Store(const std::string& path) : path_(path) {
  auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw UserError(path + ": a directory; expected a results database file (new or existing)");
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw UserError(path + ": cannot open results database: " + msg);
  }
  sqlite3_busy_timeout(db_, 60000);
  // Someone else's database gets no tables of ours, even from a command that only reads.
  std::string foreign;
  bool ours = false, has_trials = false;
  try {
    Stmt q(db_, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", path);
    while (q.step()) {
      ours = ours || q.text(0) == "trials";
      foreign += (foreign.empty() ? "" : ", ") + q.text(0);
    }
    // Another program's table of trials (Optuna's, say) is not ours: every empiric store's has
    // had a hash and measures, which no such table was found with (it read as "a results
    // database of another empiric version").
    has_trials = ours;
    if (ours) {
      Stmt c(db_,
             "SELECT count(*) FROM pragma_table_info('trials') WHERE name IN ('hash', 'measures')",
             path);
      ours = c.step() && c.i64(0) == 2;
    }
    if (ours) foreign.clear();
  } catch (const UserError&) {
    foreign.clear();  // not a database at all: said below
  }
  if (!foreign.empty()) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw UserError(path + ": not an empiric results database (its tables: " + foreign +
                    (!has_trials
                         ? std::string("; no trials")
                         : std::string("; its trials not empiric's, with no hash and measures")) +
                    "); allowed: a results database, or a new file");
  }
  // An existing store of another version is named before kSchema meets its odd columns (an index
  // on a column it lacks failed as "no such column"); the tables kSchema adds are this version's.
  if (ours) {
    std::string odd;
    try {
      odd = column_mismatch(db_, "main", path);
    } catch (...) {  // (a store that cannot be read: the handle is closed, not left open)
      sqlite3_close(db_);
      db_ = nullptr;
      throw;
    }
    if (!odd.empty()) {
      sqlite3_close(db_);
      db_ = nullptr;
      throw UserError(path + ": a results database of another empiric version (" + odd +
                      "); allowed: one this empiric wrote (answer again into a new --db)");
    }
  }
  // A new store's tables in one transaction: made one by one, a process opening the store at the
  // same moment saw some of them and no trials, and refused it as someone else's database. (An
  // existing store's missing tables, an older empiric's, are added without it: an open that only
  // reads takes no write lock.) Two openers of a new store can also deadlock on its locks (one
  // switching the journal to WAL, the other committing the tables), and SQLite then answers one
  // of them "busy" at once rather than after the timeout: that one, and only that, tries again.
  std::string error;
  int code = SQLITE_OK;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const auto started = std::chrono::steady_clock::now();
    code = SQLITE_OK;
    error.clear();
    auto run = [&](const char* sql) {
      if (code != SQLITE_OK) return;
      char* err = nullptr;
      code = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
      if (code != SQLITE_OK) error = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
    };
    run("PRAGMA journal_mode=WAL");
    run("PRAGMA synchronous=NORMAL");
    run("PRAGMA foreign_keys=ON");
    if (!ours) run("BEGIN IMMEDIATE");
    run(kSchema);
    if (!ours) run("COMMIT");
    if (code == SQLITE_OK) break;
    if (!ours) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    const bool at_once = std::chrono::steady_clock::now() - started < std::chrono::seconds(1);
    if (((code & 0xff) != SQLITE_BUSY && (code & 0xff) != SQLITE_LOCKED) || !at_once) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + attempt));
  }
  if (!error.empty()) {
    sqlite3_close(db_);
    db_ = nullptr;
    // A store in a folder this user cannot write to: SQLite writes its -wal and -shm files
    // beside the store even to read it (it read as a store that is not one).
    const std::string folder = std::filesystem::absolute(path).parent_path().string();
    if (((code & 0xff) == SQLITE_READONLY || (code & 0xff) == SQLITE_CANTOPEN) &&
        access(folder.c_str(), W_OK) != 0)
      throw UserError(path + ": its folder " + folder +
                      " is not writable, and SQLite writes the store's -wal and -shm files "
                      "beside it, even to read it; allowed: a store in a writable folder (copy "
                      "it there, with any -wal file beside it, and pass --db)");
    throw UserError(path + ": not a usable results database (" + path +
                    ": database error: " + error + ")");
  }
}

Store::~Store() {
  if (db_) sqlite3_close(db_);
}

void Store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw UserError(path_ + ": database error: " + msg);
  }
}

Store::Batch::Batch(Store& store) : store_(store) { store_.exec("BEGIN IMMEDIATE"); }

Store::Batch::~Batch() {
  if (!done_) sqlite3_exec(store_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void Store::Batch::commit() {
  store_.exec("COMMIT");
  done_ = true;
}

long long Store::put_environment(const json& env) {
  std::string text = stored(env);
  WriteTxn txn(*this, db_);
  Stmt(db_, "INSERT OR IGNORE INTO environments(json) VALUES (?)", path_).bind(1, text).step();
  Stmt q(db_, "SELECT id FROM environments WHERE json = ?", path_);
  q.bind(1, text).step();
  long long id = q.i64(0);
  txn.commit();
  return id;
}

long long Store::begin_run(const std::string& command, const std::string& config_file, int question,
                           const std::string& preset, long long env_id) {
  WriteTxn txn(*this, db_);
  Stmt(db_,
       std::string("INSERT INTO runs(started_at, command, config_file, question, preset, env_id) "
                   "VALUES (") +
           kNow + ", ?, ?, ?, ?, ?)",
       path_)
      .bind(1, command)
      .bind(2, config_file)
      .bind(3, question)
      .bind(4, preset)
      .bind(5, env_id)
      .step();
  long long id = sqlite3_last_insert_rowid(db_);
  txn.commit();
  return id;
}

void Store::end_run(long long run_id, const std::string& status) {
  WriteTxn txn(*this, db_);
  Stmt(db_, std::string("UPDATE runs SET status = ?, ended_at = ") + kNow + " WHERE id = ?", path_)
      .bind(1, status)
      .bind(2, run_id)
      .step();
  txn.commit();
}

namespace {

std::string this_host() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

// The fields of /proc/PID/stat from the 3rd on (after the command's closing parenthesis: a
// command may hold spaces and parentheses); none where there is no such process.
std::vector<std::string> proc_stat_fields(long long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line, field;
  std::vector<std::string> fields;
  if (!std::getline(stat, line) || line.rfind(')') == std::string::npos) return fields;
  std::istringstream rest(line.substr(line.rfind(')') + 1));
  while (rest >> field) fields.push_back(field);
  return fields;
}

// Seconds since process `pid` of this machine started (Linux's /proc), NaN where unknown.
double process_age_s(long long pid) {
  const auto fields = proc_stat_fields(pid);  // the 22nd: the start, in clock ticks after boot
  std::ifstream uptime("/proc/uptime");
  double up = NAN;
  double ticks = NAN;
  if (fields.size() < 20 || !(uptime >> up) || !(std::istringstream(fields[22 - 3]) >> ticks))
    return NAN;
  return up - ticks / double(::sysconf(_SC_CLK_TCK));
}

// Whether process `pid` of this machine has ended but not yet been reaped (a zombie, state Z or
// X in /proc): kill(pid, 0) still finds it, and a run killed by SIGKILL held its leases until
// its parent reaped it (for good in a container whose first process reaps nothing).
bool process_defunct(long long pid) {
  const auto fields = proc_stat_fields(pid);  // the 3rd: the state
  return !fields.empty() && (fields[0] == "Z" || fields[0] == "X");
}

// Whether a lease (its holder, pid and age in hours) is held by another process that is still
// there: on this machine, one that kill(pid, 0) finds and that began before the lease was taken (a
// killed run's pid taken since by another process held its leases for good), by a minute's
// margin: the lease's age is on the wall clock, the process's on the boot clock, and a clock set
// forward by a few seconds made a live run's first leases look taken before it began; on another
// machine (a store on a shared disk), a lease younger than a day.
bool held_by_another(const std::string& holder, long long holder_pid, double hours) {
  if (holder != this_host()) return hours < 24;
  return holder_pid != ::getpid() && (::kill(pid_t(holder_pid), 0) == 0 || errno == EPERM) &&
         !process_defunct(holder_pid) && !(process_age_s(holder_pid) < hours * 3600 - 60);
}

}  // namespace

std::string Store::take_leases(const std::vector<std::string>& hashes) {
  const std::string host = this_host();
  const long long pid = ::getpid();
  WriteTxn txn(*this, db_);
  for (const auto& hash : hashes) {
    Stmt q(db_,
           "SELECT host, pid, (julianday('now') - julianday(taken_at)) * 24 FROM leases "
           "WHERE hash = ?",
           path_);
    if (!q.bind(1, hash).step()) continue;
    const std::string holder = q.text(0);
    const long long holder_pid = q.i64(1);
    if (held_by_another(holder, holder_pid, q.f64(2)))
      return holder + " pid " + std::to_string(holder_pid);  // (the txn rolls back)
  }
  for (const auto& hash : hashes)
    Stmt(db_,
         std::string("INSERT OR REPLACE INTO leases(hash, host, pid, taken_at) VALUES (?, ?, ?, ") +
             kNow + ")",
         path_)
        .bind(1, hash)
        .bind(2, host)
        .bind(3, pid)
        .step();
  txn.commit();
  return "";
}

void Store::release_leases(const std::vector<std::string>& hashes) {
  const std::string host = this_host();
  WriteTxn txn(*this, db_);
  for (const auto& hash : hashes)
    Stmt(db_, "DELETE FROM leases WHERE hash = ? AND host = ? AND pid = ?", path_)
        .bind(1, hash)
        .bind(2, host)
        .bind(3, (long long)::getpid())
        .step();
  txn.commit();
}

void Store::refresh_leases(const std::vector<std::string>& hashes) {
  const std::string host = this_host();
  WriteTxn txn(*this, db_);
  for (const auto& hash : hashes)
    Stmt(db_,
         std::string("UPDATE leases SET taken_at = ") + kNow +
             " WHERE hash = ? AND host = ? AND pid = ?",
         path_)
        .bind(1, hash)
        .bind(2, host)
        .bind(3, (long long)::getpid())
        .step();
  txn.commit();
}

bool Store::has_trial(const std::string& hash) {
  Stmt q(db_, "SELECT 1 FROM trials WHERE hash = ? AND status != 'failed'", path_);
  return q.bind(1, hash).step();
}

std::optional<TrialRecord> Store::trial(const std::string& hash) {
  Stmt q(db_, std::string("SELECT ") + kTrialColumns + " FROM trials WHERE hash = ?", path_);
  if (!q.bind(1, hash).step()) return std::nullopt;
  return read_trial(q);
}

std::vector<TrialRecord> Store::trials(int question, const std::string& config_file) {
  Stmt q(db_,
         std::string("SELECT ") + kTrialColumns +
             " FROM trials WHERE (?1 = 0 OR question = ?1) AND (?2 = '' OR config_file = ?2) "
             "ORDER BY finished_at DESC, hash",
         path_);
  q.bind(1, question).bind(2, config_file);
  std::vector<TrialRecord> out;
  while (q.step()) out.push_back(read_trial(q));
  return out;
}

void Store::forget_trial(const std::string& hash) {
  WriteTxn txn(*this, db_);
  Stmt(db_, "DELETE FROM trials WHERE hash = ?", path_).bind(1, hash).step();
  Stmt(db_, "DELETE FROM metrics WHERE trial_hash = ?", path_).bind(1, hash).step();
  txn.commit();
}

void Store::put_metrics(const std::string& hash, int epoch, long long step,
                        const std::vector<std::pair<std::string, double>>& values) {
  WriteTxn txn(*this, db_);
  Stmt ins(
      db_,
      "INSERT OR REPLACE INTO metrics(trial_hash, epoch, step, name, value) VALUES (?, ?, ?, ?, ?)",
      path_);
  for (const auto& [name, value] : values) {
    ins.bind(1, hash).bind(2, epoch).bind(3, step).bind(4, name).bind(5, value).step();
    ins.reset();
  }
  txn.commit();
}

void Store::put_metrics(const std::string& hash, const std::vector<MetricRow>& rows) {
  if (rows.empty()) return;
  WriteTxn txn(*this, db_);
  Stmt ins(
      db_,
      "INSERT OR REPLACE INTO metrics(trial_hash, epoch, step, name, value) VALUES (?, ?, ?, ?, ?)",
      path_);
  for (const auto& r : rows) {
    ins.bind(1, hash).bind(2, r.epoch).bind(3, r.step).bind(4, r.name).bind(5, r.value).step();
    ins.reset();
  }
  txn.commit();
}

void Store::clear_metrics(const std::string& hash) {
  WriteTxn txn(*this, db_);
  Stmt(db_, "DELETE FROM metrics WHERE trial_hash = ?", path_).bind(1, hash).step();
  txn.commit();
}

void Store::drop_metrics_after(const std::string& hash, long long step) {
  WriteTxn txn(*this, db_);
  Stmt(db_, "DELETE FROM metrics WHERE trial_hash = ? AND step > ?", path_)
      .bind(1, hash)
      .bind(2, step)
      .step();
  txn.commit();
}

std::vector<MetricRow> Store::metrics(const std::string& hash) {
  Stmt q(db_,
         "SELECT epoch, step, name, value FROM metrics WHERE trial_hash = ? ORDER BY step, name",
         path_);
  q.bind(1, hash);
  std::vector<MetricRow> out;
  while (q.step()) out.push_back({int(q.i64(0)), q.i64(1), q.text(2), q.f64(3)});
  return out;
}

void Store::put_trial(const TrialRecord& r) {
  WriteTxn txn(*this, db_);
  Stmt(db_,
       std::string("INSERT OR REPLACE INTO trials(") + kTrialColumns +
           ") VALUES (?, NULLIF(?, 0), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, " + kNow + ")",
       path_)
      .bind(1, r.hash)
      .bind(2, r.run_id)
      .bind(3, r.question)
      .bind(4, r.config_file)
      .bind(5, r.status)
      .bind(6, r.diverged_step)
      .bind(7, r.seed)
      .bind(8, stored(r.config))
      .bind(9, stored(r.axes))
      .bind(10, stored(r.summary))
      .bind(11, stored(r.measures))
      .bind(12, r.wall_s)
      .step();
  txn.commit();
}

long long Store::put_bench(const BenchRecord& r) {
  json qs = r.questions;
  WriteTxn txn(*this, db_);
  Stmt(db_,
       std::string("INSERT INTO bench_records(name, questions, time_s, items_per_s, bytes_per_s, "
                   "counters, env_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ") +
           kNow + ")",
       path_)
      .bind(1, r.name)
      .bind(2, stored(qs))
      .bind(3, r.time_s)
      .bind(4, r.items_per_s)
      .bind(5, r.bytes_per_s)
      .bind(6, stored(r.counters))
      .bind(7, r.env_id)
      .step();
  long long id = sqlite3_last_insert_rowid(db_);
  txn.commit();
  return id;
}

std::vector<BenchRecord> Store::bench_records(int question) {
  Stmt q(db_,
         "SELECT name, questions, time_s, items_per_s, bytes_per_s, counters, env_id, created_at, "
         "id FROM bench_records ORDER BY id",
         path_);
  std::vector<BenchRecord> out;
  while (q.step()) {
    BenchRecord r;
    const std::string row = std::to_string(q.i64(8));
    const std::string redo = "run the benchmark again (empiric bench)";
    r.name = q.text(0);
    r.questions = checked_json(
                      q, 1, "questions", "bench_records", row,
                      [](const json& v) {
                        return v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) {
                                 return e.is_number_integer() && e.get<long long>() >= INT_MIN &&
                                        e.get<long long>() <= INT_MAX;
                               });
                      },
                      json::array(), redo)
                      .get<std::vector<int>>();
    r.time_s = q.f64(2);
    r.items_per_s = q.f64(3);
    r.bytes_per_s = q.f64(4);
    r.counters = checked_json(
        q, 5, "counters", "bench_records", row, [](const json& v) { return v.is_object(); },
        json::object(), redo);
    r.env_id = q.i64(6);
    r.created_at = q.text(7);
    if (question == 0 ||
        std::find(r.questions.begin(), r.questions.end(), question) != r.questions.end())
      out.push_back(std::move(r));
  }
  return out;
}

json Store::run_environment(long long run_id) {
  Stmt q(db_, "SELECT e.json FROM runs r JOIN environments e ON e.id = r.env_id WHERE r.id = ?",
         path_);
  if (!q.bind(1, run_id).step()) return json::object();
  // (A damaged one, edited by hand, is no machine known: reports say nothing of it.)
  const json env = q.js(0);
  return env.is_object() ? env : json::object();
}

std::pair<std::string, std::string> Store::run_preset_and_command(long long run_id) {
  Stmt q(db_, "SELECT preset, command FROM runs WHERE id = ?", path_);
  if (!q.bind(1, run_id).step()) return {"", ""};
  return {q.text(0), q.text(1)};
}

void Store::put_verdict(int question, const std::string& claim, const std::string& preset,
                        const std::string& verdict, const json& details) {
  WriteTxn txn(*this, db_);
  Stmt(db_,
       std::string("INSERT INTO verdicts(question, claim, preset, verdict, json, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ") +
           kNow + ")",
       path_)
      .bind(1, question)
      .bind(2, claim)
      .bind(3, preset)
      .bind(4, verdict)
      .bind(5, stored(details))
      .step();
  txn.commit();
}

std::vector<VerdictRecord> Store::latest_verdicts(int question,
                                                  const std::vector<std::string>& presets) {
  // The presets travel as one JSON array, matched with json_each.
  auto only = [&](const std::string& table) {
    return presets.empty() ? std::string()
                           : " AND " + table + ".preset IN (SELECT value FROM json_each(?2))";
  };
  Stmt q(db_,
         "SELECT claim, preset, verdict, json, created_at, id FROM verdicts v WHERE question = ?1" +
             only("v") +
             // The newest by time, not by id: a merged store's older verdicts get the larger ids.
             " AND id = (SELECT id FROM verdicts w WHERE w.question = v.question AND "
             "w.claim = v.claim" +
             only("w") + " ORDER BY w.created_at DESC, w.id DESC LIMIT 1) ORDER BY claim",
         path_);
  q.bind(1, question);
  if (!presets.empty()) q.bind(2, json(presets).dump());
  std::vector<VerdictRecord> out;
  while (q.step())
    out.push_back(
        {q.text(0), q.text(1), q.text(2),
         checked_json(
             q, 3, "json", "verdicts", std::to_string(q.i64(5)),
             [](const json& v) {
               // (show reads these as numbers and strings.)
               if (!v.is_object()) return false;
               // (null: a number not measured, as an older empiric wrote a NaN.)
               for (const char* k : {"effect", "lo", "hi", "n", "diverged", "missing"})
                 if (v.contains(k) && !v[k].is_number() && !v[k].is_null()) return false;
               for (const char* k : {"reason", "statement"})
                 if (v.contains(k) && !v[k].is_string() && !v[k].is_null()) return false;
               return true;
             },
             json::object(),
             "answer the question again (empiric report " + std::to_string(question) + ")"),
         q.text(4)});
  return out;
}

long long Store::merge_from(const std::string& other_path) {
  if (!std::filesystem::exists(other_path))
    throw UserError(other_path + ": no such results database");
  std::error_code ec;
  if (std::filesystem::equivalent(other_path, path_, ec))
    throw UserError(other_path + ": the database merged into (--db); expected another one");
  if (!std::filesystem::is_regular_file(other_path))
    throw UserError(other_path + ": not a file; expected a results database");
  // Errors reading the other database name it, not this one.
  Stmt(db_, "ATTACH DATABASE ? AS other", other_path).bind(1, other_path).step();
  try {
    std::set<std::string> tables;
    Stmt q(db_, "SELECT name FROM other.sqlite_master WHERE type = 'table'", other_path);
    while (q.step()) tables.insert(q.text(0));
    for (const char* t : {"trials", "runs", "environments", "metrics", "verdicts", "bench_records"})
      if (!tables.count(t))
        throw UserError(other_path + ": not an empiric results database (no table " + t +
                        "); expected one written by empiric");
    // A damaged page was blamed on the store merged into and taken for tables of another shape.
    Stmt check(db_, "PRAGMA other.quick_check(1)", other_path);
    if (check.step() && check.text(0) != "ok")
      throw UserError(other_path + ": damaged (SQLite's quick_check: " + check.text(0) +
                      "); expected a whole results database");
    if (const std::string odd = column_mismatch(db_, "other", other_path); !odd.empty())
      throw UserError(other_path + ": a results database of another empiric version (" + odd +
                      "); allowed: one this empiric wrote");
  } catch (const UserError&) {
    Stmt(db_, "DETACH DATABASE other", path_).step();
    throw;
  }
  long long taken = 0;
  try {
    WriteTxn txn(*this, db_);
    // Environments and runs get new ids here; trials keep their hash, runs their content.
    exec("INSERT OR IGNORE INTO environments(json) SELECT json FROM other.environments");
    exec(
        "CREATE TEMP TABLE run_map AS SELECT id AS old_id, NULL AS new_id FROM other.runs WHERE 0");
    Stmt runs(
        db_,
        "SELECT r.id, r.started_at, r.ended_at, r.command, r.config_file, r.question, r.preset, "
        "e.json, r.status FROM other.runs r LEFT JOIN other.environments e ON e.id = r.env_id",
        path_);
    while (runs.step()) {
      // A run merged before (the same store merged again) maps to its copy here.
      {
        Stmt same(db_,
                  "SELECT id FROM main.runs WHERE started_at IS ? AND command IS ? AND "
                  "config_file IS ? AND question IS ? AND preset IS ?",
                  path_);
        same.bind(1, runs.text(1))
            .bind(2, runs.text(3))
            .bind(3, runs.text(4))
            .bind(4, runs.i64(5))
            .bind(5, runs.text(6));
        if (same.step()) {
          Stmt(db_, "INSERT INTO run_map(old_id, new_id) VALUES (?, ?)", path_)
              .bind(1, runs.i64(0))
              .bind(2, same.i64(0))
              .step();
          continue;
        }
      }
      long long env_id = 0;
      {
        Stmt e(db_, "SELECT id FROM main.environments WHERE json = ?", path_);
        if (e.bind(1, runs.text(7)).step()) env_id = e.i64(0);
      }
      Stmt(db_,
           "INSERT INTO main.runs(started_at, ended_at, command, config_file, question, preset, "
           "env_id, status) VALUES (?, ?, ?, ?, ?, ?, NULLIF(?, 0), ?)",
           path_)
          .bind(1, runs.text(1))
          .bind(2, runs.text(2))
          .bind(3, runs.text(3))
          .bind(4, runs.text(4))
          .bind(5, runs.i64(5))
          .bind(6, runs.text(6))
          .bind(7, env_id)
          .bind(8, runs.text(8))
          .step();
      Stmt(db_, "INSERT INTO run_map(old_id, new_id) VALUES (?, ?)", path_)
          .bind(1, runs.i64(0))
          .bind(2, (long long)sqlite3_last_insert_rowid(db_))
          .step();
    }
    // A trial this store has keeps its own curve: the other store's rows of it (another run of
    // the same trial, which may have stopped elsewhere) would be mixed into it. A trial it takes
    // comes with the other's curve alone (rows a killed run left here are dropped). One that
    // failed here (out of memory, say) and has a result there takes that result.
    // A trial a live run on this store is training now (its lease held) is not taken: the run
    // would go on writing its evaluations over the other's curve, and its record over the
    // other's, one curve of two runs.
    exec("CREATE TEMP TABLE held(hash TEXT PRIMARY KEY)");
    long long held = 0;
    {
      Stmt leases(db_,
                  "SELECT hash, host, pid, (julianday('now') - julianday(taken_at)) * 24 FROM "
                  "main.leases WHERE hash IN (SELECT hash FROM other.trials)",
                  path_);
      Stmt hold(db_, "INSERT OR IGNORE INTO held(hash) VALUES (?)", path_);
      while (leases.step())
        if (held_by_another(leases.text(1), leases.i64(2), leases.f64(3))) {
          hold.bind(1, leases.text(0)).step();
          hold.reset();
          ++held;
        }
    }
    exec(
        "CREATE TEMP TABLE taken AS SELECT hash FROM other.trials WHERE (hash NOT IN "
        "(SELECT hash FROM main.trials) OR (status != 'failed' AND hash IN "
        "(SELECT hash FROM main.trials WHERE status = 'failed'))) AND hash NOT IN "
        "(SELECT hash FROM held)");
    exec("DROP TABLE held");
    if (held > 0)
      note_once(other_path + ": " + std::to_string(held) + " of its trials not taken: a run on " +
                path_ +
                " is training them now (it holds their leases); merge again once it has ended");
    {
      Stmt c(db_, "SELECT count(*) FROM taken", path_);
      c.step();
      taken = c.i64(0);
    }
    exec("DELETE FROM main.trials WHERE hash IN (SELECT hash FROM taken)");
    exec("DELETE FROM main.metrics WHERE trial_hash IN (SELECT hash FROM taken)");
    exec(
        "INSERT OR IGNORE INTO main.trials SELECT t.hash, m.new_id, t.question, t.config_file, "
        "t.status, t.diverged_step, t.seed, t.config, t.axes, t.summary, t.measures, t.wall_s, "
        "t.finished_at FROM other.trials t LEFT JOIN run_map m ON m.old_id = t.run_id WHERE "
        "t.hash IN (SELECT hash FROM taken)");
    exec(
        "INSERT OR IGNORE INTO main.metrics SELECT * FROM other.metrics WHERE trial_hash IN "
        "(SELECT hash FROM taken)");
    exec("DROP TABLE taken");
    exec(
        "INSERT INTO main.bench_records(name, questions, time_s, items_per_s, bytes_per_s, "
        "counters, "
        "env_id, created_at) SELECT b.name, b.questions, b.time_s, b.items_per_s, b.bytes_per_s, "
        "b.counters, (SELECT id FROM main.environments me WHERE me.json = e.json), b.created_at "
        "FROM other.bench_records b LEFT JOIN other.environments e ON e.id = b.env_id "
        "WHERE NOT EXISTS (SELECT 1 FROM main.bench_records m WHERE m.name = b.name AND "
        "m.created_at = b.created_at AND m.counters = b.counters AND m.time_s IS b.time_s)");
    exec(
        "INSERT INTO main.verdicts(question, claim, preset, verdict, json, created_at) SELECT "
        "v.question, v.claim, v.preset, v.verdict, v.json, v.created_at FROM other.verdicts v "
        "WHERE NOT EXISTS (SELECT 1 FROM main.verdicts m WHERE m.question = v.question AND "
        "m.claim = v.claim AND m.preset IS v.preset AND m.created_at = v.created_at AND "
        "m.json = v.json)");
    exec("DROP TABLE run_map");
    txn.commit();
  } catch (const UserError& e) {
    // Its tables were found to be this empiric's above: what fails here is more likely this
    // store's (a full disk, a read-only file, a lock held past the timeout), and is said as it
    // came, naming the file.
    sqlite3_exec(db_, "DETACH DATABASE other", nullptr, nullptr, nullptr);
    throw UserError(other_path + ": not merged into " + path_ + ", nothing of it taken (" +
                    e.what() + ")");
  } catch (...) {
    sqlite3_exec(db_, "DETACH DATABASE other", nullptr, nullptr, nullptr);
    throw;
  }
  exec("DETACH DATABASE other");
  return taken;
}

namespace {

// (step, value) of one metric's rows, in step order.
std::vector<std::pair<long long, double>> curve_of(const std::vector<MetricRow>& rows,
                                                   const std::string& name) {
  std::vector<std::pair<long long, double>> curve;
  for (const auto& r : rows)
    if (r.name == name) curve.emplace_back(r.step, r.value);
  std::sort(curve.begin(), curve.end());
  return curve;
}

}  // namespace

Rises rises(const std::vector<MetricRow>& rows, const std::string& name) {
  const auto curve = curve_of(rows, name);
  Rises out;
  if (curve.size() < 2) return out;
  for (size_t i = 1; i < curve.size(); ++i)
    out.count += curve[i].second > curve[i - 1].second + 1e-6 * std::abs(curve[i - 1].second);
  out.fraction = double(out.count) / double(curve.size() - 1);
  return out;
}

double late_jitter(const std::vector<MetricRow>& rows, const std::string& name) {
  const auto curve = curve_of(rows, name);
  const long long last = curve.empty() ? 0 : std::max(0LL, curve.back().first);
  std::vector<double> changes;
  for (size_t i = 1; i < curve.size(); ++i)
    if (2 * curve[i - 1].first > last) changes.push_back(curve[i].second - curve[i - 1].second);
  if (changes.size() < 2) return NAN;
  double mean = 0, ss = 0;
  for (double c : changes) mean += c / double(changes.size());
  for (double c : changes) ss += (c - mean) * (c - mean);
  return std::sqrt(ss / double(changes.size() - 1));
}

}  // namespace empiric
