#include "data/datasets.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>

#include "core/errors.h"
#include "core/note.h"
#include "data/idx.h"

namespace empiric {
namespace {

namespace fs = std::filesystem;
using torch::indexing::Slice;

struct Split {
  torch::Tensor x, y;
};

torch::Tensor to_float_images(const RawImages& img) {
  auto t = torch::from_blob(const_cast<uint8_t*>(img.pixels.data()),
                            {img.count, img.channels, img.rows, img.cols}, torch::kUInt8);
  return t.to(torch::kFloat32).div_(255.0);
}

torch::Tensor to_labels(const std::vector<uint8_t>& labels) {
  return torch::from_blob(const_cast<uint8_t*>(labels.data()), {int64_t(labels.size())},
                          torch::kUInt8)
      .to(torch::kInt64);
}

std::string find_file(const std::string& dir, const std::string& base) {
  for (const std::string& name : {base, base + ".gz"}) {
    fs::path p = fs::path(dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
    if (ec && ec != std::errc::no_such_file_or_directory)
      throw UserError(p.string() + ": cannot read: " + ec.message());
  }
  // Neither is a file; one may be there as something else: a directory, a device, or a link to
  // nothing.
  for (const std::string& name : {base, base + ".gz"}) {
    const fs::path p = fs::path(dir) / name;
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(p, ec)) && !fs::exists(p, ec))
      throw UserError(p.string() + ": a link to nothing (" + fs::read_symlink(p, ec).string() +
                      "); expected the data file");
    if (fs::exists(fs::symlink_status(p, ec)))
      throw UserError(p.string() + ": not a regular file; expected the data file");
  }
  throw UserError(dir + ": neither " + base + " nor " + base +
                  ".gz found (data.path must hold the dataset's files)");
}

Split read_idx_split(const std::string& dir, const std::string& prefix) {
  const std::string image_path = find_file(dir, prefix + "-images-idx3-ubyte");
  auto images = read_idx_images(image_path);
  std::string label_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  auto labels = read_idx_labels(label_path, images.count, image_path);
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] > 9)
      throw UserError(label_path + ": label " + std::to_string(labels[i]) + " at index " +
                      std::to_string(i) + "; expected a class from 0 to 9");
  return {to_float_images(images), to_labels(labels)};
}

// Names, sizes and times of the regular files in dir (and CIFAR's batch folder): what a cached
// dataset was read from.
std::string files_stamp(const std::string& dir) {
  std::string stamp;
  std::error_code ec;
  for (const auto& sub : {fs::path(dir), fs::path(dir) / "cifar-10-batches-bin"})
    for (const auto& e : fs::directory_iterator(sub, ec))
      if (e.is_regular_file(ec))
        stamp += e.path().filename().string() + ":" + std::to_string(e.file_size(ec)) + ":" +
                 std::to_string(e.last_write_time(ec).time_since_epoch().count()) + ";";
  return stamp;
}

// A sweep loads the same files for every trial: the decoded split is kept for the process (keyed
// by the folder's files, so a rewritten file is read again) and each build gets its own copy,
// free to change in place (label noise).
Split load_idx(const std::string& dir, const std::string& prefix) {
  const std::string key = dir + "|" + prefix + "|" + files_stamp(dir);
  static std::mutex mutex;
  static std::map<std::string, Split> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 4) cache.clear();  // at most a few data sets' worth of memory
    it = cache.emplace(key, read_idx_split(dir, prefix)).first;
  }
  return {it->second.x.clone(), it->second.y.clone()};
}

Split load_cifar(const std::string& dir, bool train) {
  // The batches sit in data.path or in the folder the CIFAR-10 archive unpacks to inside it: that
  // folder when it holds the first training batch, else data.path; both splits from the one
  // folder (chosen by each split's own first file, a stray test batch in the archive's folder
  // made the test split another copy's, silently).
  const std::string first = "data_batch_1.bin";
  const fs::path nested = fs::path(dir) / "cifar-10-batches-bin";
  auto holds_first = [&](const fs::path& folder) {
    std::error_code ec;  // (an unreadable entry is named, not thrown as filesystem_error)
    for (const std::string& name : {first, first + ".gz"})
      if (fs::exists(fs::symlink_status(folder / name, ec))) return true;
    if (ec && ec != std::errc::no_such_file_or_directory)
      throw UserError((folder / first).string() + ": cannot read: " + ec.message());
    return false;
  };
  std::error_code ec;
  const bool has_nested = fs::is_directory(nested, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    throw UserError(nested.string() + ": cannot read: " + ec.message());
  std::string root = dir;
  if (has_nested && holds_first(nested))
    root = nested.string();
  else if (has_nested && !holds_first(dir))
    throw UserError(dir + ": neither " + first + " nor " + first +
                    ".gz found, there or in its cifar-10-batches-bin folder (data.path must hold "
                    "the dataset's files)");
  RawImages images;
  std::vector<uint8_t> labels;
  if (train) {
    int64_t first_count = 0;
    for (int i = 1; i <= 5; ++i) {
      const std::string path = find_file(root, "data_batch_" + std::to_string(i) + ".bin");
      const int64_t before = images.count;
      read_cifar10_batch(path, images, labels);
      // A copy cut short at a record's end reads as a smaller batch: the five are equal.
      if (i == 1) first_count = images.count - before;
      if (images.count - before != first_count)
        throw UserError(path + ": " + std::to_string(images.count - before) +
                        " records, where data_batch_1 has " + std::to_string(first_count) +
                        "; expected the five training batches equal in size (10,000 records in "
                        "CIFAR-10; a truncated copy?)");
    }
  } else {
    read_cifar10_batch(find_file(root, "test_batch.bin"), images, labels);
  }
  return {to_float_images(images), to_labels(labels)};
}

// Train and test of a synthetic task come from one draw, so they share the task (centers,
// teacher weights) and differ only in their samples.
std::pair<Split, Split> make_synthetic(const json& d, at::Generator& gen, bool& regression,
                                       int64_t& outputs) {
  const std::string name = d["name"];
  const int64_t n_train = d["n_train"], n_test = d["n_test"], n = n_train + n_test;
  const double noise = d["noise"];
  auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  torch::Tensor x, y;
  regression = false;
  if (name == "xor") {
    auto corners =
        torch::randint(0, 2, {n, 2}, gen, torch::kInt64).to(torch::kFloat32).mul_(2).sub_(1);
    x = corners + noise * torch::randn({n, 2}, gen, opts);
    y = (corners.select(1, 0) * corners.select(1, 1) < 0).to(torch::kInt64);
    outputs = 2;
  } else if (name == "spirals") {
    const int64_t k = d["classes"];
    y = torch::randint(0, k, {n}, gen, torch::kInt64);
    auto t = torch::rand({n}, gen, opts);
    auto angle = y.to(torch::kFloat32) * (2 * M_PI / double(k)) + t * (3 * M_PI);
    x = torch::stack({t * torch::cos(angle), t * torch::sin(angle)}, 1) +
        noise * torch::randn({n, 2}, gen, opts);
    outputs = k;
  } else if (name == "blobs") {
    const int64_t k = d["classes"], dim = d["dim"];
    auto centers = 3.0 * torch::randn({k, dim}, gen, opts);
    y = torch::randint(0, k, {n}, gen, torch::kInt64);
    x = centers.index_select(0, y) + noise * torch::randn({n, dim}, gen, opts);
    outputs = k;
  } else if (name == "teacher") {
    const int64_t dim = d["dim"], width = d["teacher_width"];
    auto w1 = torch::randn({dim, width}, gen, opts) / std::sqrt(double(dim));
    auto w2 = torch::randn({width, 1}, gen, opts) / std::sqrt(double(width));
    x = torch::randn({n, dim}, gen, opts);
    y = torch::tanh(x.matmul(w1)).matmul(w2) + noise * torch::randn({n, 1}, gen, opts);
    regression = true;
    outputs = 1;
  } else {  // linear
    const int64_t dim = d["dim"];
    auto w = torch::randn({dim, 1}, gen, opts) / std::sqrt(double(dim));
    x = torch::randn({n, dim}, gen, opts);
    y = x.matmul(w) + noise * torch::randn({n, 1}, gen, opts);
    regression = true;
    outputs = 1;
  }
  return {{x.slice(0, 0, n_train), y.slice(0, 0, n_train)},
          {x.slice(0, n_train), y.slice(0, n_train)}};
}

Split take(const Split& s, const torch::Tensor& idx) {
  return {s.x.index_select(0, idx), s.y.index_select(0, idx)};
}

Dataset build_dataset(const json& d, uint64_t seed, const torch::Device& device,
                      const std::string& source, const std::string& default_dir) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const std::string name = d["name"];
  Dataset out;
  Split train, test;
  if (name == "fashion_mnist" || name == "mnist" || name == "cifar10") {
    std::string dir = d.value("path", "");
    if (dir.empty()) {
      if (name != "fashion_mnist")
        throw ConfigError(
            source, "/data/path", "\"\"",
            name + " has no embedded copy: set data.path to the directory with its files");
      dir = default_dir;
      std::error_code ec;
      if (!fs::is_directory(dir, ec))  // (the value is not the user's: said as the default's)
        throw ConfigError(source, "/data/path", "\"\"",
                          "fashion_mnist's embedded copy (Debian's dataset-fashion-mnist, in " +
                              dir +
                              ") is not installed; allowed: install it (scripts/setup.sh does), "
                              "or set data.path to a directory with train-images-idx3-ubyte[.gz] "
                              "and the other three IDX files");
    }
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      throw ConfigError(source, "/data/path", "\"" + dir + "\"",
                        ec && ec != std::errc::no_such_file_or_directory
                            ? "cannot read it: " + ec.message()
                            : "expected an existing directory");
    if (name == "cifar10") {
      train = load_cifar(dir, true);
      test = load_cifar(dir, false);
    } else {
      train = load_idx(dir, "train");
      test = load_idx(dir, "t10k");
      if (train.x.sizes().slice(1) != test.x.sizes().slice(1))
        throw UserError(dir + ": the t10k images are " + std::to_string(test.x.size(2)) + "x" +
                        std::to_string(test.x.size(3)) + " and the training images " +
                        std::to_string(train.x.size(2)) + "x" + std::to_string(train.x.size(3)) +
                        "; expected one size for both");
    }
    out.outputs = 10;
    out.info["path"] = dir;
  } else {
    // A generator of the task's own: one seeded like torch's global generator, from which the
    // model's initialization draws, would draw the teacher's weights from the very uniforms the
    // student's initial weights are made of (correlated by -0.69 in a linear teacher's
    // coordinates 8-15), the same way for every seed.
    at::Generator task = at::detail::createCPUGenerator(seed * 1000003ULL + 43);
    auto [tr, te] = make_synthetic(d, task, out.regression, out.outputs);
    train = tr;
    test = te;
  }

  // A subset larger than the data takes all of it (a quick preset's 4,000 on a small file), and
  // says so once.
  auto draws = [&](const Split& split, const char* key, const char* which) {
    const int64_t subset = d[key];
    const int64_t n = split.x.size(0);
    if (subset > n)
      note_once(source + ": /data/" + key + " = " + std::to_string(subset) + ": there are only " +
                std::to_string(n) + " " + which + " examples; taking all of them");
    return subset > 0 && subset < n;
  };
  const bool train_draws = draws(train, "train_subset", "training");
  const bool test_draws = draws(test, "test_subset", "test");
  // The training permutation is drawn for the test subset's sake too when all the training data
  // is taken, so that a sweep of data.train_subset scores its every point, the whole set
  // included, on the same test examples.
  if (train_draws || test_draws) {
    auto perm = torch::randperm(train.x.size(0), gen);
    if (train_draws) train = take(train, perm.slice(0, 0, d["train_subset"].get<int64_t>()));
  }
  if (test_draws)
    test = take(test,
                torch::randperm(test.x.size(0), gen).slice(0, 0, d["test_subset"].get<int64_t>()));

  Split val;
  const int64_t n_val = d["validation"];
  if (n_val > 0) {
    if (n_val >= train.x.size(0))
      throw ConfigError(
          source, "/data/validation", std::to_string(n_val),
          "expected fewer than the " + std::to_string(train.x.size(0)) + " training examples");
    auto perm = torch::randperm(train.x.size(0), gen);
    val = take(train, perm.slice(0, 0, n_val));
    train = take(train, perm.slice(0, n_val));
  }

  const double imbalance = d["imbalance"];
  const double noise = d["label_noise"], randomized = d["random_labels"];
  if (out.regression && (imbalance < 1.0 || noise > 0 || randomized > 0)) {
    // (The config check refuses these first; this names the key all the same.)
    const char* key = imbalance < 1.0 ? "imbalance" : noise > 0 ? "label_noise" : "random_labels";
    throw ConfigError(source, std::string("/data/") + key, d[key].dump(),
                      "data." + name + " is a regression task, with no classes; allowed: " +
                          (imbalance < 1.0 ? "1" : "0"));
  }
  if (imbalance < 1.0) {
    // Class c keeps imbalance^(c/(K-1)) of its examples: class 0 whole, the last class the rarest.
    std::vector<torch::Tensor> keep;
    for (int64_t c = 0; c < out.outputs; ++c) {
      auto idx = (train.y == c).nonzero().squeeze(1);
      int64_t k = std::max<int64_t>(
          1, std::llround(idx.size(0) * std::pow(imbalance, double(c) / double(out.outputs - 1))));
      keep.push_back(idx.index_select(0, torch::randperm(idx.size(0), gen).slice(0, 0, k)));
    }
    train = take(train, std::get<0>(torch::sort(torch::cat(keep))));
  }

  const int64_t n = train.x.size(0);
  torch::Tensor original = train.y.clone();
  if (noise > 0) {
    // Exactly round(noise * n) labels move to a different class, chosen uniformly.
    const int64_t k = std::llround(noise * double(n));
    auto idx = torch::randperm(n, gen).slice(0, 0, k);
    auto shift = torch::randint(1, out.outputs, {k}, gen, torch::kInt64);
    train.y.index_put_({idx}, (train.y.index_select(0, idx) + shift).remainder(out.outputs));
    out.info["label_noise_count"] = k;
  }
  if (randomized > 0) {
    // Exactly round(randomized * n) labels are redrawn uniformly (they may land on the old label).
    const int64_t k = std::llround(randomized * double(n));
    auto idx = torch::randperm(n, gen).slice(0, 0, k);
    train.y.index_put_({idx}, torch::randint(0, out.outputs, {k}, gen, torch::kInt64));
    out.info["random_labels_count"] = k;
  }
  out.flipped = out.regression ? torch::empty({0}, torch::kInt64)
                               : (train.y != original).nonzero().squeeze(1);
  out.info["flipped"] = out.flipped.size(0);

  if (const double s = d.value("feature_scale", 0.0); s > 0) {
    // Features in mixed units. A generator of its own, so that the draws above (subsets, splits,
    // noise) are the same with and without it.
    at::Generator scale_gen = at::detail::createCPUGenerator(seed * 1000003 + 31);
    std::vector<int64_t> shape(train.x.sizes().begin(), train.x.sizes().end());
    shape[0] = 1;
    auto factor = torch::pow(10.0, torch::rand(shape, scale_gen) * (2 * s) - s);
    train.x = train.x * factor;
    test.x = test.x * factor;
    if (val.x.defined()) val.x = val.x * factor;
    out.info["feature_scale_min"] = factor.min().item<double>();
    out.info["feature_scale_max"] = factor.max().item<double>();
  }

  if (d["standardize"].get<bool>()) {
    // Statistics from the training split only: per channel for images (unless per feature is
    // asked for), per feature otherwise. A feature (or channel) constant in training is only
    // centred: dividing by a zero spread would blow up any test value that differs.
    std::vector<int64_t> dims = {0};
    if (d.value("standardize_per", std::string("channel")) == "channel")
      for (int64_t i = 2; i < train.x.dim(); ++i) dims.push_back(i);
    auto mean = train.x.mean(dims, true);
    auto std = train.x.std(dims, /*unbiased=*/false, true);
    // Constant: one value throughout (not a small spread, which a feature_scale factor makes of
    // any spread).
    const auto constant = train.x.amax(dims, true) == train.x.amin(dims, true);
    std = torch::where(constant, torch::ones_like(std), std);
    train.x = (train.x - mean) / std;
    test.x = (test.x - mean) / std;
    if (val.x.defined()) val.x = (val.x - mean) / std;
    if (mean.numel() <= 256) {
      out.info["mean"] =
          std::vector<float>(mean.data_ptr<float>(), mean.data_ptr<float>() + mean.numel());
      out.info["std"] =
          std::vector<float>(std.data_ptr<float>(), std.data_ptr<float>() + std.numel());
    } else {  // every pixel on its own: the counts, not 2 x 784 numbers in each trial's summary
      out.info["standardized_features"] = mean.numel();
      out.info["constant_features"] = constant.sum().item<int64_t>();
    }
  }

  auto to_dev = [&](const torch::Tensor& t) { return t.defined() ? t.contiguous().to(device) : t; };
  out.x_train = to_dev(train.x);
  out.y_train = to_dev(train.y);
  out.x_test = to_dev(test.x);
  out.y_test = to_dev(test.y);
  out.x_val = to_dev(val.x);
  out.y_val = to_dev(val.y);
  out.input_shape.assign(train.x.sizes().begin() + 1, train.x.sizes().end());
  out.info["name"] = name;
  out.info["train"] = out.x_train.size(0);
  out.info["test"] = out.x_test.size(0);
  out.info["validation"] = val.x.defined() ? val.x.size(0) : 0;
  return out;
}

}  // namespace

Dataset load_dataset(const json& d, uint64_t seed, const torch::Device& device,
                     const std::string& source, const std::string& default_dir) {
  std::string key = d.dump() + "|" + std::to_string(seed) + "|" + device.str();
  const std::string name = d["name"];
  if (name == "fashion_mnist" || name == "mnist" || name == "cifar10") {
    const std::string dir = d.value("path", "").empty() ? default_dir : d.value("path", "");
    key += "|" + dir + "|" + files_stamp(dir);
  }
  static std::mutex mutex;
  static std::map<std::string, Dataset> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  Dataset built = build_dataset(d, seed, device, source, default_dir);
  std::lock_guard<std::mutex> lock(mutex);
  if (cache.size() >= 4) cache.clear();  // a sweep's seeds; bounded memory
  cache.emplace(key, built);
  return built;
}

}  // namespace empiric
