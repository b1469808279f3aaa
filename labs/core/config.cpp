#include "core/config.h"

#include <signal.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "core/hash.h"
#include "core/schema.h"

namespace empiric {
namespace {

std::string shown(const json& v) {
  std::string s = v.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

[[noreturn]] void fail(const std::string& source, const std::string& pointer, const json& found,
                       const std::string& allowed) {
  throw ConfigError(source, pointer, found.is_discarded() ? "" : shown(found), allowed);
}

// `text` with bytes outside printable ASCII written as \xNN, for a message about them.
std::string escaped(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7F)
      out += ch;
    else
      out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
  }
  return out;
}

// JSON text, the store and the reports are UTF-8, and nlohmann's dump throws on anything else:
// after a trial had trained, when it was stored.
void require_utf8(const std::string& text, const std::string& what) {
  try {
    (void)json(text).dump();
  } catch (const json::type_error&) {
    throw UserError(what + " \"" + escaped(text) +
                    "\": not valid UTF-8; configs, their file names and overrides are UTF-8 text");
  }
}

std::vector<std::string> keys_of(const Section& s) {
  std::vector<std::string> out;
  for (const auto& f : s.fields) out.push_back(f.key);
  return out;
}

// Within the field's bounds, and a float's range (1e38): the values go into float32 tensors.
bool in_bounds(const Field& f, double v) {
  return std::isfinite(v) && std::abs(v) <= 1e38 && (!f.min || v >= *f.min) &&
         (!f.max || v <= *f.max);
}

// Checks one value against its field and coerces numbers to the declared type.
void check_value(const Field& f, json& v, const std::string& source, const std::string& ptr) {
  auto bad = [&]() { fail(source, ptr, v, "expected " + describe_allowed(f)); };
  // Whole numbers up to 9e15 (exact in a double; 2^63 and beyond would wrap when converted).
  auto integral = [](const json& x) {
    return (x.is_number_integer() ||
            (x.is_number_float() && std::floor(x.get<double>()) == x.get<double>())) &&
           std::abs(x.get<double>()) < 9e15;
  };
  auto huge = [](const json& x) { return x.is_number() && !(std::abs(x.get<double>()) < 9e15); };
  switch (f.type) {
    case FieldType::Int:
      if (huge(v)) fail(source, ptr, v, "expected " + describe_allowed(f) + ", below 9e15");
      if (!integral(v) || !in_bounds(f, v.get<double>())) bad();
      v = static_cast<long long>(v.get<double>());
      return;
    case FieldType::Number:
      if (v.is_number() && std::abs(v.get<double>()) > 1e38)
        fail(source, ptr, v, "expected " + describe_allowed(f) + ", within a float's range (1e38)");
      // "> 0" is at least 1e-12 in the schema: a smaller positive value is named with that bound.
      if (v.is_number() && f.min && *f.min > 0 && *f.min < 1e-11 && v.get<double>() > 0 &&
          v.get<double>() < *f.min)
        fail(source, ptr, v, "expected a number of at least 1e-12");
      if (!v.is_number() || !in_bounds(f, v.get<double>())) bad();
      v = v.get<double>();
      return;
    case FieldType::Bool:
      if (!v.is_boolean()) bad();
      return;
    case FieldType::String:
      if (f.key == "population") {  // "auto", "off" or a member count, given as text or a number
        if (integral(v) && v.get<double>() >= 1) v = std::to_string(static_cast<long long>(v.get<double>()));
        const std::string text = v.is_string() ? v.get<std::string>() : "";
        const bool count = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
                           std::atoll(text.c_str()) >= 1;
        if (!(text == "auto" || text == "off" || count))
          fail(source, ptr, v, "expected \"auto\", \"off\" or a member count >= 1");
        return;
      }
      if (!v.is_string()) bad();
      if (!f.choices.empty() &&
          std::find(f.choices.begin(), f.choices.end(), v.get<std::string>()) == f.choices.end())
        bad();
      return;
    case FieldType::IntList:
    case FieldType::NumberList:
    case FieldType::StringList:
      if (!v.is_array()) bad();
      // Layers: a network 300,000 deep ran out of memory freeing its autograd graph, where no
      // error can be caught (std::terminate).
      if ((f.key == "widths" || f.key == "channels" || f.key == "dense") && v.size() > kMaxLayers)
        fail(source, ptr, json("a list of " + std::to_string(v.size()) + " layers"),
             "expected at most " + std::to_string(kMaxLayers) + " layers");
      for (size_t i = 0; i < v.size(); ++i) {
        json& item = v[i];
        std::string item_ptr = ptr + "/" + std::to_string(i);
        if (f.type == FieldType::StringList) {
          if (!item.is_string()) fail(source, item_ptr, item, "expected " + describe_allowed(f));
        } else if (!item.is_number() || !in_bounds(f, item.get<double>()) ||
                   (f.type == FieldType::IntList && !integral(item))) {
          fail(source, item_ptr, item, "expected " + describe_allowed(f));
        } else if (f.type == FieldType::IntList) {
          item = static_cast<long long>(item.get<double>());
        } else {
          item = item.get<double>();
        }
      }
      return;
    case FieldType::NumberMap:
      if (!v.is_object()) bad();
      for (auto& [k, item] : v.items()) {
        if (!item.is_number() || !in_bounds(f, item.get<double>()))
          fail(source, ptr + "/" + k, item, "expected " + describe_allowed(f));
        item = item.get<double>();
      }
      return;
    case FieldType::Seeds: {
      if (integral(v)) {
        long long n = static_cast<long long>(v.get<double>());
        if (n < 1 || n > 100000) bad();
        json seeds = json::array();
        for (long long i = 0; i < n; ++i) seeds.push_back(i);
        v = seeds;
        return;
      }
      if (!v.is_array() || v.empty()) bad();
      std::set<long long> seen;
      for (auto& item : v) {
        if (!integral(item) || item.get<double>() < 0 || item.get<double>() > INT32_MAX ||
            !seen.insert(item.get<long long>()).second)
          bad();
        item = static_cast<long long>(item.get<double>());
      }
      return;
    }
  }
}

std::vector<std::string> top_level_keys() {
  std::vector<std::string> keys = keys_of(*find_section(""));
  for (const auto& s : config_schema())
    if (!s.name.empty()) keys.push_back(s.name);
  keys.push_back("sweep");
  keys.push_back("presets");
  return keys;
}

void validate_section(const Section& s, json& obj, const std::string& source) {
  const std::string base = "/" + s.name;
  if (!obj.is_object())
    fail(source, base, obj, "expected an object with keys of section " + s.name);
  std::string variant;
  if (!s.variant_key.empty()) {
    const Field* vf = s.find(s.variant_key);
    if (!obj.contains(s.variant_key)) obj[s.variant_key] = vf->default_value;
    check_value(*vf, obj[s.variant_key], source, base + "/" + s.variant_key);
    variant = obj[s.variant_key].get<std::string>();
  }
  for (auto& [key, value] : obj.items()) {
    const Field* f = s.find(key);
    if (!f)
      fail(source, base + "/" + key, json(json::value_t::discarded),
           unknown_key_message(key, keys_of(s)));
    if (!f->only_for.empty() &&
        std::find(f->only_for.begin(), f->only_for.end(), variant) == f->only_for.end()) {
      std::string names;
      for (const auto& n : f->only_for) names += (names.empty() ? "" : ", ") + n;
      fail(source, base + "/" + key, value,
           "this key applies only when /" + s.name + "/" + s.variant_key + " is one of: " + names +
               " (it is \"" + variant + "\"); remove it (on the command line: " + s.name + "." +
               key + "=null)");
    }
    check_value(*f, value, source, base + "/" + key);
  }
  if (s.name == "optim" && obj.contains("betas") && obj["betas"].size() != 2)
    fail(source, base + "/betas", obj["betas"], "expected two numbers [beta1, beta2] in [0, 1)");
  if (s.name == "optim" && obj.contains("betas"))
    for (size_t i = 0; i < obj["betas"].size(); ++i)
      if (obj["betas"][i].get<double>() >= 1.0)
        fail(source, base + "/betas/" + std::to_string(i), obj["betas"][i],
             "expected a number in [0, 1)");
  if (s.name == "measure" && obj.contains("noise_batches") &&
      (obj["noise_batches"].size() != 2 ||
       obj["noise_batches"][0].get<long long>() >= obj["noise_batches"][1].get<long long>()))
    fail(source, base + "/noise_batches", obj["noise_batches"],
         "expected two batch sizes [small, big] with small < big");
  if (s.name == "measure" && obj.contains("interpolate_range") &&
      (obj["interpolate_range"].size() != 2 ||
       obj["interpolate_range"][0].get<double>() >= obj["interpolate_range"][1].get<double>()))
    fail(source, base + "/interpolate_range", obj["interpolate_range"],
         "expected two numbers [t_lo, t_hi] with t_lo < t_hi (0 is this solution, 1 the partner)");
  if (s.name == "schedule" && obj.contains("milestones"))
    for (size_t i = 1; i < obj["milestones"].size(); ++i)
      // (A repeated milestone applies gamma twice, as torch's MultiStepLR does.)
      if (obj["milestones"][i].get<double>() < obj["milestones"][i - 1].get<double>())
        fail(source, base + "/milestones/" + std::to_string(i), obj["milestones"][i],
             "expected milestones in non-decreasing order (this one follows " +
                 obj["milestones"][i - 1].dump() + ")");
  for (const auto& f : s.fields) {
    bool applies = f.only_for.empty() ||
                   std::find(f.only_for.begin(), f.only_for.end(), variant) != f.only_for.end();
    if (applies && !obj.contains(f.key) && !f.default_value.is_null()) obj[f.key] = f.default_value;
  }
  // Checked with the defaults filled in: an end_lr written alone below the default start counts.
  if (s.name == "range" && obj["end_lr"].get<double>() <= obj["start_lr"].get<double>())
    fail(source, base + "/end_lr", obj["end_lr"],
         "expected a number above /range/start_lr (" + obj["start_lr"].dump() + ")");
  if (s.name == "train" && obj["eval_sets"] == "held_out")
    for (const char* key : {"target_train_loss", "target_train_acc", "stop_train_loss"})
      if (obj[key].get<double>() > 0)
        fail(source, base + "/eval_sets", obj["eval_sets"],
             std::string("expected \"all\": /train/") + key +
                 " reads the training set's metrics at every evaluation, and \"held_out\" "
                 "takes them at the last only");
  if (s.name == "measure" && obj["eps_sharpness"] == true && obj["eps_tol"].get<double>() > 0 &&
      obj["eps_steps"].get<long long>() <= kEpsSharpnessWindow)
    fail(source, base + "/eps_steps", obj["eps_steps"],
         "expected more than " + std::to_string(kEpsSharpnessWindow) +
             ": the ascent stops once its rise held still over that many steps (/measure/eps_tol "
             "is " +
             obj["eps_tol"].dump() +
             "), so it would end before it could tell; allowed: more steps, or eps_tol 0 for "
             "exactly this many");
  if (s.name == "implicit" && obj["problem"] == "least_squares" &&
      obj["n"].get<long long>() >= obj["dim"].get<long long>())
    fail(source, base + "/n", obj["n"],
         "expected fewer examples than /implicit/dim (" + obj["dim"].dump() +
             "): the least-squares problem must be under-determined");
}

// The field a dotted key ("optim.lr", "seeds") names, or a ConfigError.
const Field& field_for_dotted(const std::string& dotted, const std::string& source,
                              const std::string& pointer, const json& value) {
  auto dot = dotted.find('.');
  const Section* top = find_section("");
  if (dot == std::string::npos) {
    if (const Field* f = top->find(dotted)) return *f;
    if (dotted == "sweep")
      fail(source, pointer, value,
           "the sweep is set an axis at a time; allowed: sweep.KEY=[values], e.g. "
           "sweep.optim.lr=[0.1,0.01]");
    if (const Section* s = find_section(dotted); s && !dotted.empty() && !s->fields.empty())
      fail(source, pointer, value,
           "a section; override its keys one by one, e.g. " + dotted + "." + s->fields[0].key +
               "=" + s->fields[0].default_value.dump());
    fail(source, pointer, value, unknown_key_message(dotted, top_level_keys()));
  }
  std::string section = dotted.substr(0, dot), key = dotted.substr(dot + 1);
  const Section* s = find_section(section);
  if (!s || section.empty()) {
    std::vector<std::string> names;
    for (const auto& sec : config_schema())
      if (!sec.name.empty()) names.push_back(sec.name);
    // (A sweep axis's at the axis, /sweep/nope.lr: the file has no /nope.)
    fail(source, pointer.rfind("/sweep/", 0) == 0 ? pointer : "/" + section,
         json(json::value_t::discarded), unknown_key_message(section, names));
  }
  const Field* f = s->find(key);
  // optim.lr_mult.body=2: a key inside a map-valued field, which is set whole.
  const auto inner = key.find('.');
  if (!f && inner != std::string::npos)
    if (const Field* map = s->find(key.substr(0, inner)); map && map->type == FieldType::NumberMap)
      fail(source, pointer, value,
           section + "." + map->key + " is set whole; allowed: " + section + "." + map->key +
               "={\"" + key.substr(inner + 1) + "\": " + value.dump() + "}");
  // train.epochs.x=1: below a key that holds a value, not a section.
  if (!f && inner != std::string::npos)
    if (const Field* plain = s->find(key.substr(0, inner)))
      fail(source, pointer, value,
           section + "." + plain->key + " holds " + describe_allowed(*plain) +
               ", not keys of its own; allowed: " + section + "." + plain->key + "=VALUE");
  if (!f)
    fail(source, pointer, json(json::value_t::discarded), unknown_key_message(key, keys_of(*s)));
  return *f;
}

void validate_sweep(json& sweep, const std::string& source) {
  if (!sweep.is_object())
    fail(source, "/sweep", sweep, "expected an object: dotted key -> list of values");
  for (auto& [key, values] : sweep.items()) {
    std::string ptr = "/sweep/" + key;
    if (key == "seeds")
      fail(source, ptr, values, "seeds are not a sweep axis; set the top-level \"seeds\"");
    // Each lab reads its own sections, which are checked against the config's one lab.
    if (key == "lab")
      fail(source, ptr, values, "the lab is not a sweep axis; allowed: one config per lab");
    // A trial is stored under its config's question; an axis over it would file them all under
    // the first.
    if (key == "question")
      fail(source, ptr, values,
           "the question is not a sweep axis; allowed: one config per question");
    if (const Section* sec = find_section(key); sec && !key.empty()) {
      // A whole-section axis: each value is a partial section merged over the base one, so that
      // keys that belong together (a schedule and its warmup) vary together.
      if (!values.is_array() || values.empty())
        fail(source, ptr, values, "expected a non-empty list of partial " + key + " sections");
      for (size_t i = 0; i < values.size(); ++i) {
        const std::string item = ptr + "/" + std::to_string(i);
        if (!values[i].is_object())
          fail(source, item, values[i], "expected an object with keys of section " + key);
        for (auto& [k, v] : values[i].items()) {
          const Field* f = sec->find(k);
          if (!f)
            fail(source, item + "/" + k, json(json::value_t::discarded),
                 unknown_key_message(k, keys_of(*sec)));
          check_value(*f, v, source, item + "/" + k);
        }
      }
      continue;
    }
    const Field& f = field_for_dotted(key, source, ptr, values);
    if (!values.is_array() || values.empty())
      fail(source, ptr, values, "expected a non-empty list of values");
    for (size_t i = 0; i < values.size(); ++i)
      check_value(f, values[i], source, ptr + "/" + std::to_string(i));
  }
  for (auto& [key, values] : sweep.items()) {
    // The same value twice is the same trial twice, trained and stored twice.
    for (size_t i = 0; i < values.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (values[i] == values[j])
          fail(source, "/sweep/" + key + "/" + std::to_string(i), values[i],
               "expected values that differ: it repeats item " + std::to_string(j));
    // A section axis whose partial sections set a key that an axis of its own also sweeps:
    // both would set it, one silently winning over the label the trial is shown with.
    for (auto& [other, unused] : sweep.items()) {
      if (other.size() <= key.size() || other.compare(0, key.size() + 1, key + ".") != 0) continue;
      const json::json_pointer inner(dotted_to_pointer(other.substr(key.size() + 1)));
      for (size_t i = 0; i < values.size(); ++i)
        if (values[i].is_object() && values[i].contains(inner))
          fail(source, "/sweep/" + other, sweep[other],
               "the axis \"" + key + "\" sets " + other + " too (item " + std::to_string(i) +
                   "); sweep it in one place");
    }
  }
}

void deep_merge(json& into, const json& patch) {
  if (!into.is_object() || !patch.is_object()) {
    into = patch;
    return;
  }
  for (const auto& [k, v] : patch.items()) {
    if (into.contains(k) && into[k].is_object() && v.is_object())
      deep_merge(into[k], v);
    else
      into[k] = v;
  }
}

}  // namespace

std::string dotted_to_pointer(const std::string& dotted) {
  std::string out = "/";
  for (char c : dotted) out += (c == '.' ? '/' : c);
  return out;
}

namespace {

// Where an override's key points: /sweep/optim.lr for an axis (its name keeps its dots),
// /optim/lr for a key.
std::string override_pointer(const std::string& key) {
  return key.rfind("sweep.", 0) == 0 ? "/sweep/" + key.substr(6) : dotted_to_pointer(key);
}

}  // namespace

void check_writable_file(const std::string& option, const std::string& path,
                         const std::string& example) {
  if (std::filesystem::is_directory(path))
    throw UserError(option + " " + path + ": a folder; expected a file to write (" + example + ")");
  std::ofstream probe(path, std::ios::app);
  if (!probe)
    throw UserError(option + " " + path + ": cannot write it (" + std::strerror(errno) + ")");
}

void write_file_whole(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
  auto fail = [&](const std::string& why) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw UserError(path + ": could not be written (" + why + ")");
  };
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(std::strerror(errno));
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.close();
    if (!out) fail(errno ? std::strerror(errno) : "the write failed: is the disk full?");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(ec.message());
}

int remove_abandoned_writes(const std::string& dir) {
  namespace fs = std::filesystem;
  static const std::regex temporary(R"(.+\.tmp\.(\d{1,9})\.\d+)");
  int removed = 0;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, m, temporary) || !entry.is_regular_file(ec)) continue;
    const pid_t pid = pid_t(std::stol(m[1]));
    const auto written = fs::last_write_time(entry.path(), ec);
    // (A pid on another machine sharing the folder is not known here: the minute spares its
    // writes in progress.)
    if (ec || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH ||
        now - written < std::chrono::minutes(1))
      continue;
    removed += fs::remove(entry.path(), ec);
  }
  return removed;
}

std::string gzipped(const std::string& bytes) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("zlib: deflateInit2 failed");
  std::string out(deflateBound(&z, uLong(bytes.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = uInt(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("zlib: deflate did not finish");
  return out;
}

namespace {

// Numbers a double cannot hold, named where they are written: one beyond its range (1e309) was
// "invalid JSON: number overflow" with no place, and one below it (1e-400) read as 0 without a
// word (weight_decay 1e-400 ran as none). A SAX pass over the text, which sees each number's
// lexeme; a syntax error it leaves to the parse that follows, which names it.
// `base`: the pointer of the text's value (an override's key), "" for a whole file.
void check_numbers(const std::string& text, const std::string& path, const std::string& base = "") {
  struct Check : json::json_sax_t {
    const std::string& path;
    const std::string& base;
    std::vector<std::pair<bool, std::string>> frames;  // (object, its key) or (array, index)
    Check(const std::string& p, const std::string& b) : path(p), base(b) {}
    std::string pointer() const {
      std::string out = base;
      for (const auto& f : frames) out += "/" + f.second;
      return out;
    }
    bool element() {  // a value begins: an array's next index
      if (!frames.empty() && !frames.back().first)
        frames.back().second = std::to_string(std::stoll(frames.back().second) + 1);
      return true;
    }
    bool null() override { return element(); }
    bool boolean(bool) override { return element(); }
    bool number_integer(number_integer_t) override { return element(); }
    bool number_unsigned(number_unsigned_t) override { return element(); }
    bool number_float(number_float_t value, const string_t& lexeme) override {
      element();
      const std::string mantissa = lexeme.substr(0, lexeme.find_first_of("eE"));
      if (value == 0.0 && mantissa.find_first_of("123456789") != std::string::npos)
        throw UserError(path + ": " + pointer() + " = " + lexeme +
                        ": below a double's range, it would read as 0; allowed: 0 itself, or a "
                        "magnitude of at least 4.9e-324");
      return true;
    }
    bool string(string_t&) override { return element(); }
    bool binary(binary_t&) override { return element(); }
    bool start_object(std::size_t) override {
      element();
      frames.push_back({true, ""});
      return true;
    }
    bool end_object() override {
      frames.pop_back();
      return true;
    }
    bool start_array(std::size_t) override {
      element();
      frames.push_back({false, "-1"});
      return true;
    }
    bool end_array() override {
      frames.pop_back();
      return true;
    }
    bool key(string_t& k) override {
      frames.back().second = k;
      return true;
    }
    bool parse_error(std::size_t, const std::string& token, const json::exception& e) override {
      if (e.id == 406) {  // (out_of_range.406: a number overflow)
        element();
        throw UserError(path + ": " + pointer() + " = " + token +
                        ": beyond a double's range; allowed: a magnitude below 1.8e308");
      }
      return false;  // (the parse names it)
    }
  } check(path, base);
  // (Nesting deeper than the parse allows is refused by it; this pass is iterative, no risk.)
  json::sax_parse(text, &check);
}

}  // namespace

json load_json_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw UserError(path + ": a directory; expected a JSON file");
  std::ifstream in(path);
  if (!in) throw UserError(path + ": cannot open: " + std::strerror(errno));
  // At most 16 MiB (a config is a few KiB): /dev/zero, or a data file named by mistake, would
  // be read until memory ran out. (A pipe, <(...), is read as a file.)
  constexpr size_t kMaxBytes = 16 << 20;
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, size_t(in.gcount()));
    if (text.size() > kMaxBytes)
      throw UserError(path + ": larger than 16 MiB; expected a JSON config (a few KiB)");
  }
  std::stringstream buf(std::move(text));
  // JSON lets an object name a key twice and keeps the last; a config that sets optim.lr twice
  // is a mistake to name, not a choice to make silently. The parser's events track where it is.
  struct Frame {
    bool object;
    std::set<std::string> keys;
    std::string key;
    long long index = -1;
  };
  std::vector<Frame> frames;
  auto pointer = [&frames] {
    std::string out;
    for (const Frame& f : frames) out += "/" + (f.object ? f.key : std::to_string(f.index));
    return out;
  };
  auto note_element = [&frames] {
    if (!frames.empty() && !frames.back().object) ++frames.back().index;
  };
  json::parser_callback_t track = [&](int depth, json::parse_event_t event, json& parsed) {
    using E = json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      note_element();
      // A config is a few levels deep; tens of thousands overflowed the stack.
      if (depth >= 64)
        throw UserError(path + ": " + pointer() +
                        ": nested deeper than 64 levels; a config is a "
                        "few levels deep");
      frames.push_back({event == E::object_start, {}, {}});
    } else if (event == E::object_end || event == E::array_end) {
      frames.pop_back();
    } else if (event == E::key) {
      Frame& f = frames.back();
      f.key = parsed.get<std::string>();
      if (!f.keys.insert(f.key).second)
        throw UserError(path + ": " + pointer() + ": the key \"" + f.key +
                        "\" appears twice in one object (JSON would keep only the last); "
                        "keep one");
    } else if (event == E::value) {
      note_element();
    }
    return true;
  };
  check_numbers(buf.str(), path);
  try {
    return json::parse(buf.str(), track);
  } catch (const json::exception& e) {  // syntax
    std::string what = e.what();
    auto pos = what.find("] ");
    throw UserError(path +
                    ": invalid JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
}

void apply_override(json& config, const std::string& assignment) {
  require_utf8(assignment, "override");
  const std::string source = "override \"" + assignment + "\"";
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UserError(source + ": expected key.path=value, e.g. optim.lr=0.05");
  std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  json value = json::parse(text, nullptr, false);
  // A list or an object is JSON or nothing: [sgd,adam] for a sweep axis or a list key was taken
  // as the string "[sgd,adam]" and refused as "expected a non-empty list of values", which it
  // looked like. (A string key keeps such text as it is: description=[draft] ...)
  const size_t first = text.find_first_not_of(" \t");
  const bool brackets = first != std::string::npos && (text[first] == '[' || text[first] == '{');
  // A number in a list or an object that a double cannot hold is named, not "not JSON" (1e400)
  // or read as 0 (1e-400).
  if (brackets) check_numbers(text, source, override_pointer(key));
  const bool bracketed = value.is_discarded() && brackets;
  auto not_json = [&] {
    return UserError(source + ": " + text +
                     " is not JSON; a list or an object is written as JSON, its strings in double "
                     "quotes (in a shell, the whole override inside single quotes: '" +
                     key + "=[\"a\",\"b\"]')");
  };
  std::string ptr = dotted_to_pointer(key);
  // A number beyond a double's range (1e400) is no string to be checked as one, where the key
  // takes numbers (below).
  bool overflowed = false;
  // Numbers as one may type them that JSON does not read (.5, 5., +0.5) or reads as another
  // value (1e-400 as 0): said so where the key takes numbers, not "expected a number > 0" for
  // what is one, nor a 0 taken silently.
  std::string number_problem;
  {
    char* end = nullptr;
    errno = 0;
    const double as_number = std::strtod(text.c_str(), &end);
    const bool whole = !text.empty() && *end == '\0' &&
                       text.find_first_not_of("0123456789.eE+-") == std::string::npos;
    if (value.is_discarded()) {
      overflowed = whole && errno == ERANGE && std::isinf(as_number);
      if (whole && std::isfinite(as_number))
        number_problem = text +
                         " is not a number as JSON writes it; allowed: " + json(as_number).dump() +
                         " (or another number written as JSON does)";
      value = text;
    } else if (value.is_number_float() && value.get<double>() == 0.0 && errno == ERANGE) {
      number_problem = text +
                       " rounds to 0 in a double (the smallest is about 4.9e-324); "
                       "allowed: 0 itself, or a number a double holds";
    }
  }

  if (key == "presets" || key.rfind("presets.", 0) == 0)
    throw UserError(source +
                    ": a preset is chosen, not overridden; allowed: --preset NAME, then "
                    "overrides of the keys it sets (e.g. train.epochs=5)");
  if (key.rfind("sweep.", 0) == 0) {  // sweep.optim.lr=[0.1,0.01]
    if (bracketed) throw not_json();
    std::string axis = key.substr(6);
    json sweep = config.value("sweep", json::object());
    if (value.is_null()) {  // sweep.model=null: the axis removed, as key=null removes a key
      if (!sweep.contains(axis))
        throw UserError(source + ": the sweep has no axis " + axis + " to remove" +
                        (sweep.empty() ? std::string(" (it has none)") : ""));
      sweep.erase(axis);
      config["sweep"] = sweep;
      return;
    }
    sweep[axis] = value;
    json check = json::object({{axis, value}});
    validate_sweep(check, source);
    sweep[axis] = check[axis];
    config["sweep"] = sweep;
    return;
  }
  const Field& f = field_for_dotted(key, source, ptr, value);
  if (bracketed && f.type != FieldType::String) throw not_json();
  const bool numeric =
      f.type != FieldType::String && f.type != FieldType::StringList && f.type != FieldType::Bool;
  if (overflowed && numeric)
    fail(source, ptr, json(json::value_t::discarded),
         text + " is beyond a double's range (about 1.8e308); allowed: a finite number");
  if (!number_problem.empty() && numeric)
    fail(source, ptr, json(json::value_t::discarded), number_problem);
  if (value.is_null()) {  // key=null: the key removed (optim.momentum when switching to adam)
    const json::json_pointer at(ptr);
    if (config.contains(at)) config[at.parent_pointer()].erase(at.back());
    return;
  }
  check_value(f, value, source, ptr);
  config[json::json_pointer(ptr)] = value;
}

namespace {

// Measures whose meaning a model or a mask would quietly change, refused with the reason.
void check_measures_fit_the_model(const json& config, const std::string& source) {
  const json& m = config["measure"];
  const json& model = config["model"];
  const bool batch_norm = model.value("batch_norm", false);
  // Dinh et al.'s rescaling keeps the function only through a positively homogeneous activation
  // (ReLU's family) with nothing between the two layers that would not cancel alpha.
  if (m.value("dinh_alpha", 0.0) > 0) {
    const std::string act = model.value("activation", std::string("relu"));
    if (batch_norm || (act != "relu" && act != "leaky_relu" && act != "prelu"))
      fail(source, "/measure/dinh_alpha", m["dinh_alpha"],
           batch_norm ? "the rescaled network is another function with model.batch_norm (its "
                        "statistics do not cancel alpha); allowed: 0, or a model without it"
                      : "the rescaled network is another function with activation " + act +
                            "; allowed: 0, or activation relu, leaky_relu or prelu");
    // It scales the first weight layer by alpha and the second by 1 / alpha: refused here, not
    // after the training it would otherwise end (unrecorded).
    const std::string name = model.value("name", std::string("lenet_300_100"));
    const size_t layers = name == "linear"    ? 1
                          : name == "mlp"     ? model.value("widths", json::array()).size() + 1
                          : name == "tree"    ? 0
                          : name == "convnet" ? model.value("channels", json::array()).size() +
                                                    model.value("dense", json::array()).size() + 1
                                              : 3;
    if (layers < 2)
      fail(source, "/measure/dinh_alpha", m["dinh_alpha"],
           "it rescales the first two weight layers, and model " + name +
               (name == "mlp" ? " with no hidden widths" : "") + " has " + std::to_string(layers) +
               "; allowed: 0, or a model with a hidden layer");
  }
  // Dead units are counted after a ReLU-family activation: a model without one (tanh, GELU, no
  // hidden layer) stored null without a word, and a sweep over activations lost those arms
  // from a claim quietly.
  if (m.value("dead_units", false)) {
    const std::string act = model.value("activation", std::string("relu"));
    const std::string name = model.value("name", std::string("lenet_300_100"));
    const bool hidden = name == "lenet_300_100" || name == "convnet" ||
                        (name == "mlp" && !model.value("widths", json::array()).empty());
    if (!hidden || (act != "relu" && act != "leaky_relu" && act != "prelu"))
      fail(source, "/measure/dead_units", m["dead_units"],
           !hidden ? "model " + name + (name == "mlp" ? " with no hidden widths" : "") +
                         " has no hidden units to count; allowed: false, or a model with a "
                         "hidden layer"
                   : "dead units are counted after a ReLU-family activation, and this model's "
                     "is " +
                         act + "; allowed: false, or activation relu, leaky_relu or prelu");
  }
  // Evaluated in eval mode, batch norm uses its running statistics: at initialization those
  // normalize nothing, and along the line they stay this network's, not the partner's.
  if (batch_norm && m.value("hessian_init", false))
    fail(source, "/measure/hessian_init", m["hessian_init"],
         "with model.batch_norm the Hessian at initialization would be taken without the "
         "normalization training uses; allowed: false");
  if (batch_norm && m.value("grad_flow_init", false))
    fail(source, "/measure/grad_flow_init", m["grad_flow_init"],
         "with model.batch_norm the gradients at initialization would be taken without the "
         "normalization training uses; allowed: false");
  if (batch_norm && m.value("interpolate_batch", 0) > 0)
    fail(source, "/measure/interpolate_batch", m["interpolate_batch"],
         "with model.batch_norm the points along the line keep this network's running "
         "statistics, so its far end is not the partner; allowed: 0");
  // Calibration reads the softmax of the outputs as the model's probabilities: trained by squared
  // error on the raw outputs to equal one-hot targets, they are not logits (outputs near one-hot
  // give a top softmax of e/(e+9) = 0.23 at any accuracy).
  if (m.value("calibration", false) && config["train"].value("loss", "auto") == "mse_logits")
    fail(source, "/measure/calibration", m["calibration"],
         "train.loss mse_logits trains the outputs themselves toward one-hot targets, so their "
         "softmax is no probability; allowed: false, or a loss whose outputs are logits");
  // Calibration, per-class results and dropout's accuracies are of predicted classes, as the
  // classification losses, class weights and a class order are of labels: a regression task has
  // none.
  const std::string data = config["data"].value("name", std::string());
  if (data == "teacher" || data == "linear") {
    const std::string why = "data." + data + " is a regression task, with no classes; allowed: ";
    for (const char* key : {"calibration", "per_class", "dropout_test", "auc"})
      if (m.value(key, false))
        fail(source, std::string("/measure/") + key, m[key],
             why + "false, or a classification dataset");
    if (m.value("noisy_test_labels", 0.0) > 0)
      fail(source, "/measure/noisy_test_labels", m["noisy_test_labels"], why + "0");
    const json& t = config["train"];
    if (t.value("loss", "auto") != "auto") fail(source, "/train/loss", t["loss"], why + "auto");
    if (t.value("class_weights", "none") != "none")
      fail(source, "/train/class_weights", t["class_weights"], why + "none");
    if (t.value("order", "reshuffle") == "by_class")
      fail(source, "/train/order", t["order"], why + "reshuffle or fixed");
    // (Checked here, before a sweep runs, as well as where the data are made.)
    const json& d = config["data"];
    if (d.value("imbalance", 1.0) < 1.0) fail(source, "/data/imbalance", d["imbalance"], why + "1");
    for (const char* key : {"label_noise", "random_labels"})
      if (d.value(key, 0.0) > 0) fail(source, std::string("/data/") + key, d[key], why + "0");
  }
  // Dropout left on at test time needs dropout to leave on: a dropout module follows each hidden
  // dense layer (none in a linear model, an mlp without widths or a convnet without dense).
  const std::string model_name = model.value("name", std::string());
  const bool hidden_dense =
      model_name == "lenet_300_100" ||
      (model_name == "mlp" && !model.value("widths", json::array()).empty()) ||
      (model_name == "convnet" && !model.value("dense", json::array()).empty());
  if (m.value("dropout_test", false) && (model.value("dropout", 0.0) <= 0 || !hidden_dense))
    fail(source, "/measure/dropout_test", m["dropout_test"],
         "the model has no dropout to leave on (model " + model_name + ", dropout " +
             model.value("dropout", json(0.0)).dump() +
             "); allowed: false, or model.dropout > 0 with a hidden dense layer");
  // The noisy-label correction divides by 1 - r K / (K - 1), zero at r = (K - 1) / K.
  if (const double r = m.value("noisy_test_labels", 0.0); r > 0) {
    const int64_t k = data == "xor"                          ? 2
                      : data == "blobs" || data == "spirals" ? config["data"].value("classes", 3)
                                                             : 10;
    if (r >= double(k - 1) / double(k))
      fail(source, "/measure/noisy_test_labels", m["noisy_test_labels"],
           "with " + std::to_string(k) +
               " classes the correction needs a rate below (K - 1) / K = " +
               std::to_string(double(k - 1) / double(k)).substr(0, 4) +
               "; allowed: a smaller rate");
  }
  // The range test draws a fresh permutation as it goes: a fixed order would do nothing there.
  if (config.value("lab", std::string("train")) == "lr_range" &&
      config["train"].value("order", "reshuffle") != "reshuffle")
    fail(source, "/train/order", config["train"]["order"],
         "the lr_range lab takes each batch from a fresh permutation; allowed: reshuffle");
  // Keskar's line runs to a partner trained alongside a trial alone; a lottery round has none (it
  // was read by nothing, and kept the round's members from training as a population).
  if (config.value("lab", std::string("train")) == "lottery" && m.value("interpolate_batch", 0) > 0)
    fail(source, "/measure/interpolate_batch", m["interpolate_batch"],
         "the lottery lab trains no partner network for the interpolation line; allowed: 0");
  // A mask keeps pruned weights at zero while training; these measures would count them as free.
  const bool masked = !config["train"].value("mask_file", std::string()).empty() ||
                      config.value("lab", std::string("train")) == "lottery";
  if (!masked) return;
  const std::string why =
      "with pruning masks (train.mask_file, or the lottery lab) this measure "
      "would take the pruned weights' coordinates too; allowed: ";
  for (const char* key : {"hessian_top", "hessian_trace", "eps_sharpness", "hessian_init",
                          "noise_scale", "sparsity", "grad_flow_init"})
    if (m.value(key, false)) fail(source, std::string("/measure/") + key, m[key], why + "false");
  if (m.value("surface_grid", 0) > 0)
    fail(source, "/measure/surface_grid", m["surface_grid"], why + "0");
}

// A tree trains no network: what only a network has (other labs, measures, a training loss,
// class weights, pruning masks) is refused rather than quietly ignored.
void check_tree(const json& config, const std::string& source) {
  if (config["model"].value("name", std::string()) != "tree") return;
  const std::string lab = config.value("lab", std::string("train"));
  const json tree = "tree";
  if (lab != "train")
    fail(source, "/model/name", tree,
         "the " + lab + " lab trains networks; allowed: a network, or lab train for a tree");
  const std::string data = config["data"].value("name", std::string());
  if (data == "teacher" || data == "linear")
    fail(source, "/model/name", tree,
         "a tree here classifies and data." + data +
             " is a regression task; allowed: a network, or a classification dataset");
  for (const auto& f : find_section("measure")->fields)
    if (config["measure"].contains(f.key) && config["measure"][f.key] != f.default_value)
      fail(source, "/measure/" + f.key, config["measure"][f.key],
           "model tree has no weights, gradients or dropout to measure; allowed: " +
               f.default_value.dump());
  const json& t = config["train"];
  for (const auto& [key, allowed] : {std::pair<const char*, json>{"loss", "auto"},
                                     {"class_weights", "none"},
                                     {"mask_file", ""},
                                     {"order", "reshuffle"},
                                     {"early_stop_patience", 0},
                                     {"stop_train_loss", 0.0},
                                     {"target_train_loss", 0.0},
                                     {"target_train_acc", 0.0},
                                     {"target_test_acc", 0.0},
                                     {"stop_at_targets", false}})
    if (t.value(key, allowed) != allowed)
      fail(source, std::string("/train/") + key, t[key],
           "model tree is grown once by Gini impurity, with no training loss, weights, masks, "
           "order of examples or steps to stop at; allowed: " +
               allowed.dump());
}

// The sections only one lab reads, with that lab.
constexpr std::pair<const char*, const char*> kLabSections[] = {
    {"range", "lr_range"}, {"lottery", "lottery"}, {"implicit", "implicit"}};

}  // namespace

bool lab_section(const std::string& key) {
  const std::string section = key.substr(0, key.find('.'));
  for (const auto& [own, owner] : kLabSections)
    if (section == own) return true;
  return false;
}

bool lab_reads(const std::string& lab, const std::string& key) {
  const std::string section = key.substr(0, key.find('.'));
  for (const auto& [own, owner] : kLabSections)
    if (section == own) return lab == owner;
  // The implicit lab's linear model reads its section only, and from /train how its runs run.
  if (lab == "implicit") {
    for (const char* s : {"data", "model", "optim", "schedule", "measure"})
      if (section == s) return false;
    const auto& run_only = run_only_train_keys();
    return section != "train" || key == "train" ||
           std::find(run_only.begin(), run_only.end(), key.substr(6)) != run_only.end();
  }
  // The range test reads from /train only how a step is taken.
  if (lab == "lr_range") {
    static const std::set<std::string> read = {"batch_size", "loss",       "class_weights",
                                               "order",      "tf32",       "device",
                                               "checkpoint", "population", "threads"};
    if (section == "measure" || section == "schedule") return false;
    return section != "train" || key == "train" || read.count(key.substr(6));
  }
  return true;
}

json printable_config(const ResolvedConfig& resolved) {
  json out = resolved.config;
  const std::string lab = out.value("lab", std::string("train"));
  for (auto it = out.begin(); it != out.end();) {
    if (!lab_reads(lab, it.key())) {
      it = out.erase(it);
      continue;
    }
    if (it.key() == "train" && it->is_object())
      for (auto k = it->begin(); k != it->end();)
        k = lab_reads(lab, "train." + k.key()) ? std::next(k) : it->erase(k);
    ++it;
  }
  // A section whose variant the sweep picks (sweep.optim's objects, sweep.optim.name) takes its
  // defaults from each trial's variant: it is printed as written (the base's defaults for SGD
  // would put a momentum under every Adam arm).
  if (resolved.raw.contains("sweep") && resolved.raw["sweep"].is_object())
    for (const auto& [axis, values] : resolved.raw["sweep"].items()) {
      const std::string section = axis.substr(0, axis.find('.'));
      const Section* s = find_section(section);
      if (!s || section.empty() || !out.contains(section)) continue;
      if (axis == section || axis == section + "." + s->variant_key) {
        if (resolved.raw.contains(section))
          out[section] = resolved.raw[section];
        else
          out.erase(section);
      }
    }
  return out;
}

void validate_and_fill(json& config, const std::string& source) {
  if (!config.is_object())
    fail(source, "", config, "expected a JSON object with the config's sections");
  const Section* top = find_section("");
  // A lab's own section under another lab is read by nothing, yet changes the trial's identity.
  // (Only for a valid lab: a misspelt one is named by its own check.)
  const std::string lab = config.value("lab", json("train")).is_string()
                              ? config.value("lab", std::string("train"))
                              : std::string();
  const bool known_lab =
      lab == "train" || lab == "lr_range" || lab == "lottery" || lab == "implicit";
  for (const auto& [section, owner] : kLabSections)
    if (known_lab && config.contains(section) && lab != owner)
      fail(source, std::string("/") + section, json(json::value_t::discarded),
           std::string("this section applies only when /lab is \"") + owner + "\" (it is \"" + lab +
               "\")");
  for (auto& [key, value] : config.items()) {
    if (key == "sweep") {
      validate_sweep(value, source);
    } else if (key == "presets" || key == "seed") {
      // presets are merged before validation; "seed" is set on trials by expand_trials
      if (key == "seed" && !value.is_number_integer())
        fail(source, "/seed", value, "expected an integer");
    } else if (const Section* s = find_section(key); s && !key.empty()) {
      validate_section(*s, value, source);
    } else if (const Field* f = top->find(key)) {
      check_value(*f, value, source, "/" + key);
    } else {
      fail(source, "/" + key, json(json::value_t::discarded),
           unknown_key_message(key, top_level_keys()));
    }
  }
  for (const auto& f : top->fields)
    if (!config.contains(f.key)) config[f.key] = f.default_value;
  for (const auto& s : config_schema()) {
    if (s.name.empty() || config.contains(s.name)) continue;
    config[s.name] = json::object();
    validate_section(s, config[s.name], source);
  }
  // Checked with every section's defaults filled in (a section left out still has its values).
  if (config["schedule"].value("warmup_steps", 0LL) > 0 &&
      config["schedule"].value("warmup_epochs", 0.0) > 0)
    fail(source, "/schedule/warmup_steps", config["schedule"]["warmup_steps"],
         "a warmup in steps or in epochs, not both; set schedule.warmup_epochs to 0 (it is " +
             config["schedule"]["warmup_epochs"].dump() + ")");
  // OneCycle rises from max_lr / div_factor by itself: after a warmup to the peak it fell by
  // div_factor at once and rose again (a review).
  if (config["schedule"].value("name", "") == "onecycle")
    for (const char* key : {"warmup_epochs", "warmup_steps"})
      if (config["schedule"].value(key, 0.0) > 0)
        fail(source, std::string("/schedule/") + key, config["schedule"][key],
             "onecycle warms up by itself (from lr / div_factor over pct_start of the run); a "
             "warmup before it would reach the peak, drop by div_factor and rise again; allowed: 0 "
             "with onecycle (set schedule.pct_start instead)");
  // A training lab trains for epochs or steps: neither leaves a "finished" trial with no metric.
  if (config.value("lab", "train") != "lr_range" && config["train"].value("epochs", 1) == 0 &&
      config["train"].value("steps", 0) == 0)
    fail(source, "/train/epochs", config["train"]["epochs"],
         "expected at least 1 epoch, or train.steps > 0");
  // The validation split is carved from the training examples (after train_subset): where the
  // config gives their count, a split that takes them all is refused before a sweep runs.
  {
    const json& d = config["data"];
    const long long n_val = d.value("validation", 0LL), subset = d.value("train_subset", 0LL);
    long long available = subset > 0 ? subset : -1;
    std::string from = "data.train_subset";
    if (d.contains("n_train") && (available < 0 || d["n_train"].get<long long>() < available))
      available = d["n_train"].get<long long>(), from = "data.n_train";
    if (n_val > 0 && available > 0 && n_val >= available)
      fail(source, "/data/validation", d["validation"],
           "expected fewer than the " + std::to_string(available) + " training examples (" + from +
               ")");
  }
  // Early stopping watches the validation loss: without a validation split it never stops.
  if (config["train"].value("early_stop_patience", 0) > 0 &&
      config["data"].value("validation", 0) == 0)
    fail(source, "/train/early_stop_patience", config["train"]["early_stop_patience"],
         "needs data.validation > 0 (the validation loss it watches)");
  // Nesterov's look-ahead is along the momentum: without it torch.optim.SGD refuses, and the
  // fused step would quietly run plain SGD.
  if (config["optim"].value("nesterov", false) && config["optim"].value("momentum", 0.0) <= 0.0)
    fail(source, "/optim/nesterov", config["optim"]["nesterov"],
         "nesterov needs optim.momentum > 0 (here " +
             config["optim"].value("momentum", json(0)).dump() + ")");
  check_tree(config, source);
  check_measures_fit_the_model(config, source);
}

namespace {

ResolvedConfig resolve(json doc, const std::string& source, const std::string& preset,
                       const std::vector<std::string>& overrides);

}  // namespace

ResolvedConfig resolve_config_json(json doc, const std::string& source, const std::string& preset,
                                   const std::vector<std::string>& overrides) {
  ResolvedConfig r = resolve(doc, source, preset, overrides);
  // Every preset is checked, not only the one asked for: a misspelt key in "full" would
  // otherwise wait for the run that asks for it.
  if (doc.is_object() && doc.contains("presets") && doc["presets"].is_object())
    for (const auto& [name, part] : doc["presets"].items())
      if (name != preset) try {
          resolve(doc, source, name, {});
        } catch (const ConfigError& e) {
          // A value of the file's that only this preset makes wrong (the file's optim.momentum
          // under a preset's optim.name adam): the preset is named, since the config as written
          // or asked for is fine.
          if (e.source() != source || e.pointer().rfind("/presets/" + name, 0) == 0) throw;
          throw ConfigError(source + " with preset \"" + name + "\"", e.pointer(), e.found(),
                            e.allowed());
        }
  return r;
}

namespace {

ResolvedConfig resolve(json doc, const std::string& source, const std::string& preset,
                       const std::vector<std::string>& overrides) {
  if (!doc.is_object()) fail(source, "", doc, "expected a JSON object with the config's sections");
  json presets = doc.contains("presets") ? doc["presets"] : json::object();
  doc.erase("presets");
  if (!presets.is_object())
    fail(source, "/presets", presets, "expected an object: preset name -> partial config");
  // Sections and the sweep are objects before a preset merges into them and overrides write
  // into them (a path through a number or a list went nowhere).
  auto check_shape = [&](const json& part, const std::string& at) {
    for (const auto& [key, value] : part.items()) {
      const bool section = key == "sweep" || (!key.empty() && find_section(key));
      if (section && !value.is_object())
        fail(source, at + "/" + key, value,
             key == "sweep" ? "expected an object: dotted key -> list of values"
                            : "expected an object with keys of section " + key);
    }
  };
  check_shape(doc, "");
  for (const auto& [name, part] : presets.items()) {
    if (!part.is_object())
      fail(source, "/presets/" + name, part,
           "expected an object: a partial config merged over the file's");
    check_shape(part, "/presets/" + name);
    if (part.contains("presets"))  // (it would be merged in as a key of every trial's config)
      fail(source, "/presets/" + name + "/presets", part["presets"],
           "a preset cannot hold presets; allowed: the config's keys");
  }
  json as_written = doc;  // (without the preset)
  if (!preset.empty()) {
    std::string names;
    for (const auto& [k, v] : presets.items()) names += (names.empty() ? "" : ", ") + k;
    if (!presets.contains(preset))
      fail(source, "/presets", json(preset),
           names.empty() ? "no such preset; this config has none"
                         : "no such preset; this config has: " + names);
    deep_merge(doc, presets[preset]);
  }
  // A key given twice (seeds=3 seeds=5) is a slip, as a duplicate key in a file is: the last
  // silently won.
  for (size_t i = 0; i < overrides.size(); ++i)
    for (size_t j = 0; j < i; ++j) {
      const std::string key = overrides[i].substr(0, overrides[i].find('='));
      if (key != overrides[j].substr(0, overrides[j].find('='))) continue;
      throw ConfigError("override \"" + overrides[i] + "\"", override_pointer(key), "",
                        "given again (\"" + overrides[j] + "\" before it); keep one");
    }
  for (const auto& o : overrides) apply_override(doc, o);
  // An override of a key the sweep sets would be replaced in every trial without a word.
  for (const auto& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    if (key.rfind("sweep.", 0) == 0 || !doc.contains("sweep")) continue;
    for (const auto& [axis, values] : doc["sweep"].items()) {
      bool sets = axis == key;
      // A section axis ("optim": [{...}, ...]) sets the keys its objects name.
      const std::string rest = key.rfind(axis + ".", 0) == 0 ? key.substr(axis.size() + 1) : "";
      if (!rest.empty() && values.is_array())
        for (const auto& v : values)
          sets = sets || (v.is_object() && v.contains(json::json_pointer(dotted_to_pointer(rest))));
      if (sets)
        throw ConfigError(
            "override \"" + o + "\"", dotted_to_pointer(key), o.substr(key.size() + 1),
            axis == key ? "the sweep sets this key (sweep." + axis +
                              "), which would replace it; to run one value, override the sweep: "
                              "sweep." +
                              key + "=[" + o.substr(key.size() + 1) + "]"
                        : "the sweep's section axis sweep." + axis +
                              " sets this key in some of its values, which would replace it; "
                              "edit those values instead");
    }
  }
  // A trial's seed is set from "seeds"; a "seed" of the config's own would be silently replaced.
  if (doc.contains("seed"))
    fail(source, "/seed", doc["seed"],
         "trials take their seeds from \"seeds\": a count (seeds 0..n-1) or a list, e.g. "
         "\"seeds\": [" +
             doc["seed"].dump() + "]");
  ResolvedConfig r;
  r.file = source;
  r.preset = preset;
  r.raw = doc;
  r.config = doc;
  try {
    // The implicit lab's linear model reads its section only, and the range test runs range.steps
    // steps at a rising LR, reading from /train only how a step is taken: the other training keys
    // and sections would be read by nothing (their defaults are filled in all the same). (Another
    // lab's section is named as such by validate_and_fill.)
    if (const json lab = doc.value("lab", json()); lab == "implicit" || lab == "lr_range") {
      const std::string why =
          lab == "implicit"
              ? "the implicit lab reads only /implicit and /seeds (and from /train only how "
                "its runs run: device, threads); this "
              : "the lr_range lab runs /range/steps steps at a rising LR and reads from /train "
                "only batch_size, loss, class_weights, order, tf32 and threads (no schedule, no "
                "measures); this ";
      auto unread = [&](const std::string& key) {  // a dotted key or a section
        return !lab_reads(lab.get<std::string>(), key) && !lab_section(key);
      };
      for (const auto& [key, value] : doc.items()) {
        if (key == "train" && value.is_object()) {
          for (const auto& [k, v] : value.items())
            if (unread("train." + k)) fail(source, "/train/" + k, v, why + "key would do nothing");
        } else if (unread(key)) {
          fail(source, "/" + key, json(json::value_t::discarded), why + "section would do nothing");
        }
      }
      if (doc.contains("sweep") && doc["sweep"].is_object())
        for (const auto& [axis, values] : doc["sweep"].items())
          if (unread(axis))
            fail(source, "/sweep/" + axis, json(json::value_t::discarded),
                 why + "axis would do nothing");
    }
    validate_and_fill(r.config, source);
  } catch (const ConfigError& e) {
    // A value the preset set (and no override replaced) is named where it is written.
    bool from_preset = !preset.empty() && presets.contains(preset) && !e.pointer().empty();
    for (const auto& o : overrides)
      from_preset = from_preset && dotted_to_pointer(o.substr(0, o.find('='))) != e.pointer();
    try {
      const json::json_pointer at(e.pointer());
      // (A section the preset sets a part of is the preset's only if the file has none: a key
      // misspelt in the preset, {"trian": {...}}, was named at /trian.)
      from_preset = from_preset && presets[preset].contains(at) &&
                    (!presets[preset][at].is_object() || !as_written.contains(at));
    } catch (const json::exception&) {
      from_preset = false;
    }
    if (from_preset)
      throw ConfigError(source, "/presets/" + preset + e.pointer(), e.found(), e.allowed());
    // A value an override set is named by the override (the last one to set it), and a
    // section (another lab's, one this lab does not read) that only overrides put there.
    bool written = false;
    try {
      written = !e.pointer().empty() && as_written.contains(json::json_pointer(e.pointer()));
    } catch (const json::exception&) {
    }
    for (auto o = overrides.rbegin(); o != overrides.rend(); ++o) {
      const std::string at = override_pointer(o->substr(0, o->find('=')));
      if (at == e.pointer() ||
          (!written && !e.pointer().empty() && at.rfind(e.pointer() + "/", 0) == 0))
        throw ConfigError("override \"" + *o + "\"", e.pointer(), e.found(), e.allowed());
    }
    throw;
  }
  return r;
}

}  // namespace

ResolvedConfig resolve_config(const std::string& path, const std::string& preset,
                              const std::vector<std::string>& overrides) {
  require_utf8(path, "config file");
  return resolve_config_json(load_json_file(path), path, preset, overrides);
}

std::string canonical_json(const json& value) { return value.dump(); }

json trial_identity(const json& trial_config) {
  // Keys added to the schema after trials were stored whose defaults change nothing that is
  // computed: at their defaults they stay out of the identity, so stored trials keep their hashes.
  // A default here must never change.
  static const std::vector<std::pair<json::json_pointer, json>> later_keys = {
      {json::json_pointer("/optim/sam_rho"), 0.0},
      {json::json_pointer("/train/stop_train_loss"), 0.0},
      {json::json_pointer("/train/max_evals"), 0},
      {json::json_pointer("/measure/hessian_trace"), false},
      {json::json_pointer("/measure/trace_samples"), 30},
      {json::json_pointer("/measure/eps_sharpness"), false},
      {json::json_pointer("/measure/eps"), 1e-3},
      {json::json_pointer("/measure/eps_steps"), 10},
      {json::json_pointer("/measure/sigma_sharpness"), false},
      {json::json_pointer("/measure/sigma"), 0.05},
      {json::json_pointer("/measure/sigma_samples"), 20},
      {json::json_pointer("/measure/dinh_alpha"), 0.0},
      {json::json_pointer("/measure/surface_grid"), 0},
      {json::json_pointer("/measure/surface_span"), 1.0},
      {json::json_pointer("/measure/interpolate_batch"), 0},
      {json::json_pointer("/measure/interpolate_points"), 25},
      {json::json_pointer("/measure/interpolate_range"), json::array({-0.5, 1.5})},
      {json::json_pointer("/optim/grad_noise"), 0.0},
      {json::json_pointer("/optim/grad_noise_gamma"), 0.55},
      {json::json_pointer("/train/target_train_loss"), 0.0},
      {json::json_pointer("/train/target_train_acc"), 0.0},
      {json::json_pointer("/train/target_test_acc"), 0.0},
      {json::json_pointer("/train/stop_at_targets"), false},
      {json::json_pointer("/train/tf32"), false},
      {json::json_pointer("/train/eval_sets"), "all"},
      {json::json_pointer("/measure/calibration"), false},
      {json::json_pointer("/measure/grad_flow_init"), false},
      {json::json_pointer("/measure/dead_units"), false},
      {json::json_pointer("/measure/calibration_bins"), 15},
      {json::json_pointer("/measure/per_class"), false},
      {json::json_pointer("/train/loss"), "auto"},
      {json::json_pointer("/train/class_weights"), "none"},
      {json::json_pointer("/train/order"), "reshuffle"},
      {json::json_pointer("/measure/dropout_test"), false},
      {json::json_pointer("/measure/mc_samples"), 20},
      {json::json_pointer("/measure/noisy_test_labels"), 0.0},
      {json::json_pointer("/measure/sparsity"), false},
      {json::json_pointer("/measure/sparsity_tol"), 1e-3},
      {json::json_pointer("/data/standardize_per"), "channel"},
      {json::json_pointer("/data/feature_scale"), 0.0},
      {json::json_pointer("/measure/auc"), false},
      {json::json_pointer("/schedule/warmup_steps"), 0},
  };
  json identity = trial_config;
  // The ascent's settings compute nothing without eps_sharpness (eps_tol came later, and
  // eps_steps' default went from 10 to 100 with it: trials without the measure keep their hashes).
  if (identity.contains("measure") && identity["measure"].is_object() &&
      identity["measure"].value("eps_sharpness", false) != true)
    for (const char* key : {"eps", "eps_steps", "eps_tol"}) identity["measure"].erase(key);
  for (const auto& [ptr, value] : later_keys)
    if (identity.contains(ptr) && identity[ptr] == value)
      identity[ptr.parent_pointer()].erase(ptr.back());
  // A section added later that only its own lab reads.
  if (identity.value("lab", "train") != "implicit") identity.erase("implicit");
  identity.erase("title");  // words about a trial are not part of what it computes
  identity.erase("description");
  if (identity.contains("train"))  // where and how fast it runs is not what it computes
    for (const auto& key : run_only_train_keys()) identity["train"].erase(key);
  return identity;
}

const std::vector<std::string>& run_only_train_keys() {
  // (population: batched or alone, the same run to float rounding; cuda_graphs: replayed or
  // eager, the same kernels.)
  static const std::vector<std::string> keys = {
      "device", "threads", "checkpoint", "checkpoint_every_s", "population", "cuda_graphs"};
  return keys;
}

std::string trial_hash(const json& trial_config) {
  return sha256_hex(canonical_json(trial_identity(trial_config)) + "|" + kLabVersion);
}

std::vector<Trial> expand_trials(const ResolvedConfig& resolved) {
  json base = resolved.raw;
  json sweep = base.value("sweep", json::object());
  json seeds = resolved.config["seeds"];
  base.erase("sweep");
  base.erase("seeds");

  std::vector<std::pair<std::string, json>> axes;
  for (const auto& [key, values] : sweep.items()) axes.emplace_back(key, values);
  // A grid too large to run (or to hold: a million trials' configs take gigabytes) is refused
  // before it is built.
  double count = seeds.is_array() ? double(seeds.size()) : 1.0;
  for (const auto& [key, values] : axes) count *= double(values.size());
  if (resolved.config.value("lab", "train") == "lottery")
    count *= double(resolved.config["lottery"]["rounds"].get<int>() + 1);
  if (count > double(kMaxTrials)) {
    std::ostringstream n;
    n.precision(3);
    n << count << " trials";
    throw ConfigError(resolved.file, "/sweep", n.str(),
                      "expected at most " + std::to_string(kMaxTrials) +
                          " trials per config (the sweep's values times the seeds, times a "
                          "lottery's rounds + 1); split the sweep into several configs");
  }
  std::vector<json> combos = {json::object()};
  for (const auto& [key, values] : axes) {
    std::vector<json> next;
    for (const auto& combo : combos)
      for (const auto& v : values) {
        json c = combo;
        c[key] = v;
        next.push_back(c);
      }
    combos = std::move(next);
  }

  // The lottery lab: every round of a chain is its own trial. Round 0 (the dense network) is
  // the same for every control, so it is kept once, under "ticket".
  if (resolved.config.value("lab", "train") == "lottery") {
    const int rounds = resolved.config["lottery"]["rounds"];
    std::vector<json> next;
    for (const auto& combo : combos)
      for (int r = 0; r <= rounds; ++r) {
        json c = combo;
        c["lottery.round"] = r;
        if (r == 0) {
          if (c.contains("lottery.control") && c["lottery.control"] != "ticket") continue;
          json base_lottery = base.value("lottery", json::object());
          if (!c.contains("lottery.control") && base_lottery.value("control", "ticket") != "ticket")
            c["lottery.control"] = "ticket";
        }
        next.push_back(c);
      }
    combos = std::move(next);
  }

  std::vector<Trial> trials;
  for (const auto& combo : combos) {
    json cfg = base;
    std::string where = resolved.file;
    for (const auto& [key, v] : combo.items()) {
      if (v.is_object() && key.find('.') == std::string::npos)  // a whole-section axis
        deep_merge(cfg[key], v);
      else
        cfg[json::json_pointer(dotted_to_pointer(key))] = v;
      where += (where == resolved.file ? " (sweep " : ", ") + key + "=" + v.dump();
    }
    if (!combo.empty()) where += ")";
    try {
      validate_and_fill(cfg, where);
    } catch (const ConfigError& e) {
      // A key its own axis sets, refused because a section axis's value in the same trial does
      // not take it (sweep.model.activation beside sweep.model's {"name": "linear"}): the
      // "remove it with key=null" that the refusal suggests only led to another refusal.
      const std::string section = e.pointer().size() > 1
                                      ? e.pointer().substr(1, e.pointer().find('/', 1) - 1)
                                      : std::string();
      std::string dotted = e.pointer().substr(e.pointer().empty() ? 0 : 1);
      std::replace(dotted.begin(), dotted.end(), '/', '.');
      if (combo.contains(dotted) && combo.contains(section) && combo[section].is_object() &&
          e.allowed().find("this key applies only when") != std::string::npos)
        throw ConfigError(e.source(), e.pointer(), e.found(),
                          e.allowed().substr(0, e.allowed().find("; remove it")) +
                              "; the axis sweep." + dotted + " crosses every value of sweep." +
                              section + ", and this one does not take it: set " + dotted +
                              " inside the values of sweep." + section +
                              " that take it instead of as an axis of its own");
      throw;
    }
    cfg.erase("seeds");
    // A relative data.path or train.mask_file names a file from where empiric runs. Made
    // absolute, a trial's identity names the file it read: two folders' "tiny" were one trial,
    // and the second folder's run took the first one's results for its own. One folder spelt
    // two ways ("/data/x/", "/data//x/.") is one trial, not two; an absolute path's ".." stays
    // (through a link it is not the lexical parent).
    for (const char* key : {"/data/path", "/train/mask_file"}) {
      const json::json_pointer at(key);
      if (!cfg.contains(at) || !cfg[at].is_string() || cfg[at].get<std::string>().empty()) continue;
      const std::string given = cfg[at];
      std::filesystem::path p;
      if (std::filesystem::path(given).is_relative()) {
        p = std::filesystem::absolute(given).lexically_normal();
      } else {
        for (const auto& part : std::filesystem::path(given))
          if (!part.empty() && part != ".") p /= part;
      }
      if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();  // (a trailing "/")
      try {
        (void)json(p.string()).dump();
      } catch (const json::type_error&) {  // (the current folder's name, joined to it)
        throw ConfigError(where, key, json(given).dump(),
                          "made absolute from the current folder it is \"" + escaped(p.string()) +
                              "\", not valid UTF-8; allowed: an absolute path, or run from a "
                              "folder whose name is UTF-8");
      }
      cfg[at] = p.string();
    }
    for (const auto& s : seeds) {
      Trial t;
      t.seed = s.get<int>();
      t.config = cfg;
      t.config["seed"] = t.seed;
      t.axes = combo;
      t.hash = trial_hash(t.config);
      trials.push_back(std::move(t));
    }
  }
  // Sweep values that differ only where a trial's identity does not look (train.device,
  // train.threads, a title; a section axis repeating the base's value) are one trial twice.
  std::map<std::string, const Trial*> seen;
  for (const auto& t : trials) {
    auto [at, fresh] = seen.emplace(t.hash, &t);
    if (!fresh)
      throw UserError(resolved.file + ": /sweep: the sweep values " + at->second->axes.dump() +
                      " and " + t.axes.dump() + " make the same trial (" + t.hash.substr(0, 8) +
                      "): they differ only in keys that do not change what a trial computes");
  }
  return trials;
}

}  // namespace empiric
