// Datasets, models and the trainer on tiny data.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "core/config.h"
#include "core/errors.h"
#include "data/datasets.h"
#include "measures/measures.h"
#include "models/models.h"
#include "support/damaged_archive.h"
#include "support/temp_dir.h"
#include "support/tiny_idx.h"
#include "train/optim.h"
#include "train/trainer.h"

namespace empiric {
namespace {

json config(const std::string& patch) {
  json doc = json::parse(
      R"({"data": {"name": "blobs", "n_train": 512, "n_test": 256, "classes": 4, "dim": 5, "noise": 1.0},
    "model": {"name": "mlp", "widths": [32]}, "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "train": {"epochs": 3, "batch_size": 32, "checkpoint": false}})");
  doc.merge_patch(json::parse(patch));
  auto trials = expand_trials(resolve_config_json(doc, "test.json", "", {}));
  return trials.at(0).config;
}

Dataset data_of(const json& cfg) {
  return load_dataset(cfg["data"], cfg["seed"].get<uint64_t>(), torch::kCPU, "test.json");
}

TEST(Data, ATeachersWeightsAreNotDrawnFromTheStudentsInitialization) {
  // The task's generator was seeded like torch's global one, which the model's initialization
  // draws from: a linear teacher's weights 8-15 came out of the same uniforms as the student's
  // initial weights, correlated by about -0.69 for every seed.
  double sum = 0;
  int count = 0;
  for (int seed = 0; seed < 20; ++seed) {
    json cfg = config(R"({"data": {"name": "linear", "dim": 32, "n_train": 200, "n_test": 10,
                                   "noise": 0.0, "classes": null},
                          "model": {"name": "linear", "widths": null}})");
    cfg["seed"] = seed;
    const Dataset data = data_of(cfg);
    const auto teacher = std::get<0>(torch::linalg_lstsq(data.x_train, data.y_train)).flatten();
    torch::manual_seed(seed);  // as a trial seeds its initialization
    Net model = make_model(cfg["model"], data.input_shape, data.outputs);
    const auto student = model->parameters()[0].detach().flatten();
    for (int64_t i = 8; i < 16; ++i) {
      sum += teacher[i].item<double>() * student[i].item<double>();
      ++count;
    }
    (void)count;
  }
  // Teacher weights have sd 1/sqrt(32), the student's uniform ones sd 1/sqrt(3 * 32): a
  // correlation of -0.69 put the mean product near -0.012; independent ones near 0 +- 0.001.
  EXPECT_GT(sum / count, -0.003);
}

TEST(Data, LabelNoiseFlipsExactlyTheFractionToOtherClasses) {
  json cfg = config(R"({"data": {"label_noise": 0.2}})");
  Dataset noisy = data_of(cfg);
  cfg["data"]["label_noise"] = 0.0;
  Dataset clean = data_of(cfg);
  EXPECT_EQ(noisy.info["label_noise_count"], 102);  // round(0.2 * 512)
  EXPECT_EQ(noisy.flipped.size(0), 102);
  auto changed = (noisy.y_train != clean.y_train).nonzero().squeeze(1);
  EXPECT_TRUE(torch::equal(changed, noisy.flipped));
  EXPECT_TRUE(torch::equal(noisy.x_train, clean.x_train));
}

TEST(Data, RandomLabelsRedrawExactlyTheFraction) {
  json cfg = config(R"({"data": {"random_labels": 0.5}})");
  Dataset d = data_of(cfg);
  EXPECT_EQ(d.info["random_labels_count"], 256);
  // About 3/4 of the redrawn labels land on another of the 4 classes.
  EXPECT_GT(d.flipped.size(0), 150);
  EXPECT_LT(d.flipped.size(0), 230);
  // All of them at 1.0: every label redrawn, a quarter landing back on its class by chance; the
  // inputs and the test split are untouched.
  cfg["data"]["random_labels"] = 1.0;
  Dataset all = data_of(cfg);
  cfg["data"]["random_labels"] = 0.0;
  Dataset clean = data_of(cfg);
  EXPECT_EQ(all.info["random_labels_count"], 512);
  const double same = (all.y_train == clean.y_train).sum().item<double>() / 512.0;
  EXPECT_NEAR(same, 0.25, 0.06);
  EXPECT_TRUE(torch::equal(all.x_train, clean.x_train));
  EXPECT_TRUE(torch::equal(all.y_test, clean.y_test));
}

TEST(Data, ValidationIsCarvedFromTraining) {
  Dataset d = data_of(config(R"({"data": {"validation": 100}})"));
  EXPECT_EQ(d.x_val.size(0), 100);
  EXPECT_EQ(d.x_train.size(0), 412);
  EXPECT_EQ(d.x_test.size(0), 256);
  // Standardized with the statistics of the 412 examples left, not of the 512.
  const auto mean = d.x_train.mean(0);
  EXPECT_TRUE(torch::allclose(mean, torch::zeros_like(mean), 0, 1e-5));
  EXPECT_GT(d.x_val.mean(0).abs().max().item<double>(), 1e-3);
  // Unstandardized, the two splits are the whole training set, each example in one of them.
  const Dataset raw = data_of(config(R"({"data": {"validation": 100, "standardize": false}})"));
  const Dataset all = data_of(config(R"({"data": {"standardize": false}})"));
  auto sorted_rows = [](const torch::Tensor& x) {
    return x.index_select(0, std::get<1>(x.select(1, 0).sort()));
  };
  EXPECT_TRUE(
      torch::equal(sorted_rows(torch::cat({raw.x_val, raw.x_train})), sorted_rows(all.x_train)));
}

TEST(Data, TheTestSubsetIsTheSameWhetherOrNotTheTrainingSetIsCut) {
  // The training permutation is drawn for it either way: a sweep of train_subset whose last
  // point is the whole set scored that point on other test examples.
  testing::TempDir dir;
  testing::write_tiny_mnist(dir, 20, 10);
  json cfg = config(testing::kTinyMnistData);
  cfg["data"]["path"] = dir.path();
  cfg["data"]["standardize"] = false;
  cfg["data"]["test_subset"] = 5;
  std::vector<torch::Tensor> tests;
  for (int subset : {0, 20, 12, 6}) {  // 0 and 20: the whole set, not drawn
    cfg["data"]["train_subset"] = subset;
    const Dataset d = data_of(cfg);
    EXPECT_EQ(d.x_train.size(0), subset == 0 ? 20 : subset);
    tests.push_back(d.x_test);
  }
  for (size_t i = 1; i < tests.size(); ++i) EXPECT_TRUE(torch::equal(tests[i], tests[0])) << i;
}

// CIFAR-10's binary batches of `records` records each (label r % 10, pixels from r) in `folder`.
void write_cifar(const testing::TempDir& dir, const std::string& folder,
                 const std::vector<int>& records) {
  std::filesystem::create_directories(dir.file(folder));
  auto batch = [](int n, int first) {
    std::string b;
    for (int r = first; r < first + n; ++r) {
      b += char(r % 10);
      for (int i = 0; i < 3072; ++i) b += char((i * 3 + r) % 256);
    }
    return b;
  };
  int at = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    dir.write(folder + "/data_batch_" + std::to_string(i + 1) + ".bin", batch(records[i], at));
    at += records[i];
  }
  dir.write(folder + "/test_batch.bin", batch(3, 100));
}

TEST(Data, CifarLoadsFromItsFolderAndRefusesABatchCutShort) {
  testing::TempDir dir;
  json cfg = config(testing::kTinyMnistData);
  cfg["data"]["name"] = "cifar10";
  auto load = [&](const std::string& path) {
    json c = cfg;
    c["data"]["path"] = path;
    return load_dataset(c["data"], 0, torch::kCPU, "test.json");
  };
  auto error_of = [&](const std::string& path) {
    try {
      load(path);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  // The archive's folder inside data.path, or the batches in data.path itself beside an empty
  // one.
  write_cifar(dir, "a/cifar-10-batches-bin", {2, 2, 2, 2, 2});
  const Dataset a = load(dir.file("a"));
  EXPECT_EQ(a.x_train.size(0), 10);
  EXPECT_EQ(a.x_test.size(0), 3);
  EXPECT_EQ(a.input_shape, (std::vector<int64_t>{3, 32, 32}));
  write_cifar(dir, "b", {2, 2, 2, 2, 2});
  std::filesystem::create_directories(dir.file("b/cifar-10-batches-bin"));
  EXPECT_EQ(load(dir.file("b")).x_train.size(0), 10);
  // Both splits from the folder that holds the training batches: a stray test batch in the
  // archive's folder beside them (1 record) made the test split its own, silently.
  write_cifar(dir, "e", {2, 2, 2, 2, 2});
  dir.write("e/cifar-10-batches-bin/test_batch.bin", std::string(3073, '\0'));
  EXPECT_EQ(load(dir.file("e")).x_test.size(0), 3);
  // Neither: both places named.
  std::filesystem::create_directories(dir.file("c/cifar-10-batches-bin"));
  EXPECT_NE(error_of(dir.file("c"))
                .find("neither data_batch_1.bin nor data_batch_1.bin.gz found, there or in its "
                      "cifar-10-batches-bin folder"),
            std::string::npos)
      << error_of(dir.file("c"));
  // A third batch cut at a record's end is a whole number of records, and refused all the same.
  write_cifar(dir, "d", {2, 2, 1, 2, 2});
  EXPECT_NE(error_of(dir.file("d")).find("data_batch_3.bin: 1 records, where data_batch_1 has 2"),
            std::string::npos)
      << error_of(dir.file("d"));
}

TEST(Data, StandardizesWithTrainingStatisticsOnly) {
  Dataset d = data_of(config("{}"));
  auto mean = d.x_train.mean(0), std = d.x_train.std(0, false);
  EXPECT_TRUE(torch::allclose(mean, torch::zeros_like(mean), 0, 1e-5));
  EXPECT_TRUE(torch::allclose(std, torch::ones_like(std), 0, 1e-4));
  EXPECT_FALSE(torch::allclose(d.x_test.mean(0), torch::zeros_like(mean), 0, 1e-5));
}

TEST(Data, FeatureScaleMultipliesEachFeatureByItsOwnFactorAndMovesNoOtherDraw) {
  const json plain = config(R"({"data": {"standardize": false, "validation": 64}})");
  json scaled = plain;
  scaled["data"]["feature_scale"] = 2.0;
  const Dataset a = data_of(plain), b = data_of(scaled);
  EXPECT_TRUE(torch::equal(a.y_train, b.y_train));
  EXPECT_TRUE(torch::equal(a.y_val, b.y_val));
  // One factor per feature, the same for every example of every split, within 10^[-2, 2].
  const auto factor = (b.x_train / a.x_train).select(0, 0);
  EXPECT_TRUE(torch::allclose(b.x_train, a.x_train * factor, 1e-6, 0));
  EXPECT_TRUE(torch::allclose(b.x_test, a.x_test * factor, 1e-6, 0));
  EXPECT_TRUE(torch::allclose(b.x_val, a.x_val * factor, 1e-6, 0));
  EXPECT_GE(factor.min().item<double>(), 0.01 * (1 - 1e-6));
  EXPECT_LE(factor.max().item<double>(), 100 * (1 + 1e-6));
  EXPECT_GT((factor.max() / factor.min()).item<double>(), 3.0);  // 5 draws of 10^[-2, 2]
  // Standardizing each feature takes the factors out again.
  json standardized = plain, scaled_standardized = scaled;
  for (json* c : {&standardized, &scaled_standardized}) {
    (*c)["data"]["standardize"] = true;
    (*c)["data"]["standardize_per"] = "feature";
  }
  EXPECT_TRUE(torch::allclose(data_of(standardized).x_test, data_of(scaled_standardized).x_test,
                              1e-4, 1e-4));
}

TEST(Data, PerFeatureStandardizationGivesEveryPixelItsOwnStatisticsAndOnlyCentresAConstantOne) {
  testing::TempDir dir;
  testing::write_tiny_mnist(dir, 20, 10);
  json cfg = config(
      R"({"data": {"name": "mnist", "n_train": null, "n_test": null, "classes": null, "dim": null, "noise": null, "standardize_per": "feature"}})");
  cfg["data"]["path"] = dir.path();
  const Dataset d = data_of(cfg);
  EXPECT_TRUE(torch::allclose(d.x_train.mean(0), torch::zeros({1, 28, 28}), 0, 1e-5));
  EXPECT_TRUE(torch::allclose(d.x_train.std(0, false), torch::ones({1, 28, 28}), 0, 1e-3));
  EXPECT_EQ(d.info["standardized_features"], 784);
  // One training image: every pixel is constant in training, so each is only centred, and a test
  // image stays finite (it is its raw values minus the training image's).
  cfg["data"]["train_subset"] = 1;
  const Dataset one = data_of(cfg);
  EXPECT_EQ(one.info["constant_features"], 784);
  json raw_cfg = cfg;
  raw_cfg["data"]["standardize"] = false;
  const Dataset raw = data_of(raw_cfg);
  EXPECT_TRUE(torch::equal(one.x_train, torch::zeros_like(one.x_train)));
  EXPECT_TRUE(torch::allclose(one.x_test, raw.x_test - raw.x_train, 0, 1e-6));
}

TEST(Data, AFeatureWithATinySpreadIsStandardizedNotTakenForAConstantOne) {
  // Every pixel is 1/255 in the first of 20 images and 0 in the others (a spread of 8.5e-4);
  // feature_scale 6 shrinks about one pixel in twelve by more than 1e-5, below 1e-8 in all.
  // Standardized pixel by pixel, the factors must drop out for every pixel.
  testing::TempDir dir;
  testing::write_idx_images(dir, "train", 20, [](uint32_t i, uint32_t) { return uint8_t(i == 0); });
  testing::write_tiny_idx(dir, "t10k", 5);
  json cfg = config(
      R"({"data": {"name": "mnist", "n_train": null, "n_test": null, "classes": null, "dim": null, "noise": null, "standardize_per": "feature"}})");
  cfg["data"]["path"] = dir.path();
  json scaled = cfg;
  scaled["data"]["feature_scale"] = 6.0;
  const Dataset a = data_of(cfg), b = data_of(scaled);
  EXPECT_EQ(b.info["constant_features"], 0);
  EXPECT_TRUE(torch::allclose(a.x_train, b.x_train, 1e-3, 1e-3));
}

TEST(Data, ImbalanceMakesTheLastClassRarest) {
  Dataset d = data_of(config(R"({"data": {"imbalance": 0.1}})"));
  auto counts = torch::bincount(d.y_train, {}, 4);
  EXPECT_NEAR(counts[3].item<double>() / counts[0].item<double>(), 0.1, 0.05);
}

TEST(Data, SameSeedSameDataOtherSeedOtherData) {
  json cfg = config("{}");
  EXPECT_TRUE(torch::equal(data_of(cfg).x_train, data_of(cfg).x_train));
  cfg["seed"] = 1;
  EXPECT_FALSE(torch::equal(data_of(cfg).x_train, data_of(config("{}")).x_train));
}

TEST(Data, LabelsOutOfRangeAndTestImagesOfAnotherSizeAreNamed) {
  auto be32 = testing::be32;
  auto images = [&](uint32_t n, uint32_t side) {
    std::string s = be32(0x803) + be32(n) + be32(side) + be32(side);
    return s + std::string(size_t(n) * side * side, char(7));
  };
  auto labels = [&](std::string l) { return be32(0x801) + be32(uint32_t(l.size())) + l; };
  json cfg = config(R"({"data": {"name": "mnist", "n_train": null, "n_test": null,
                                 "classes": null, "dim": null, "noise": null}})");
  auto error_of = [&](const testing::TempDir& dir) {
    cfg["data"]["path"] = dir.path();
    try {
      load_dataset(cfg["data"], 0, torch::kCPU, "test.json");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  testing::TempDir twelve;  // a label 12 of 10 classes
  twelve.write("train-images-idx3-ubyte", images(3, 28));
  twelve.write("train-labels-idx1-ubyte", labels({1, 12, 3}));
  twelve.write("t10k-images-idx3-ubyte", images(2, 28));
  twelve.write("t10k-labels-idx1-ubyte", labels({0, 1}));
  EXPECT_NE(error_of(twelve).find("train-labels-idx1-ubyte: label 12 at index 1; expected a class "
                                  "from 0 to 9"),
            std::string::npos)
      << error_of(twelve);
  testing::TempDir mixed;  // 28 x 28 for training, 14 x 14 for testing
  mixed.write("train-images-idx3-ubyte", images(3, 28));
  mixed.write("train-labels-idx1-ubyte", labels({1, 2, 3}));
  mixed.write("t10k-images-idx3-ubyte", images(2, 14));
  mixed.write("t10k-labels-idx1-ubyte", labels({0, 1}));
  EXPECT_NE(error_of(mixed).find("the t10k images are 14x14 and the training images 28x28"),
            std::string::npos)
      << error_of(mixed);
  // A data file that is there but is not a file was reported as missing.
  testing::TempDir odd;
  std::filesystem::create_directory(odd.file("train-images-idx3-ubyte"));
  EXPECT_NE(error_of(odd).find("train-images-idx3-ubyte: not a regular file"), std::string::npos)
      << error_of(odd);
  // ... unless the .gz beside it is a file: that one is read.
  testing::TempDir beside;
  testing::write_tiny_mnist(beside, 4, 2);  // train images as .gz
  std::filesystem::create_directory(beside.file("train-images-idx3-ubyte"));
  EXPECT_EQ(error_of(beside), "");
  std::filesystem::remove(odd.file("train-images-idx3-ubyte"));
  std::filesystem::create_symlink(odd.file("gone"), odd.file("train-images-idx3-ubyte"));
  EXPECT_NE(error_of(odd).find("train-images-idx3-ubyte: a link to nothing"), std::string::npos)
      << error_of(odd);
}

TEST(Data, ASubsetLargerThanTheDataTakesAllOfItAndSaysSo) {
  testing::TempDir dir;
  testing::write_tiny_mnist(dir, 20, 10);
  json cfg = config(
      R"({"data": {"name": "mnist", "n_train": null, "n_test": null, "classes": null, "dim": null, "noise": null,
                   "train_subset": 1000, "test_subset": 4}})");
  cfg["data"]["path"] = dir.path();
  ::testing::internal::CaptureStderr();
  Dataset d = data_of(cfg);
  const std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(d.x_train.size(0), 20);
  EXPECT_EQ(d.x_test.size(0), 4);
  EXPECT_NE(said.find("test.json: /data/train_subset = 1000: there are only 20 training examples"),
            std::string::npos)
      << said;
  EXPECT_EQ(said.find("test_subset"), std::string::npos) << said;
}

TEST(Data, AMissingEmbeddedCopyIsSaidAsTheDefaultNotAsTheUsersPath) {
  // It was "/data/path = \"/usr/share/datasets/fashion-mnist\": expected an existing directory",
  // a value the config never held, with no word of the package or of data.path.
  testing::TempDir dir;
  json cfg = config(
      R"({"data": {"name": "fashion_mnist", "n_train": null, "n_test": null, "classes": null, "dim": null, "noise": null}})");
  try {
    load_dataset(cfg["data"], 0, torch::kCPU, "test.json", dir.file("not-installed"));
    FAIL() << "expected a ConfigError";
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("test.json: /data/path = \"\": fashion_mnist's embedded copy (Debian's "
                         "dataset-fashion-mnist, in " +
                             dir.file("not-installed") + ") is not installed; allowed:",
                         0),
              0u)
        << what;
    EXPECT_NE(what.find("or set data.path"), std::string::npos) << what;
  }
}

TEST(Data, LoadsAnMnistDirectoryOfTinyIdxFiles) {
  testing::TempDir dir;
  testing::write_tiny_mnist(dir, 20, 10);  // gzip images, plain labels: they may mix
  json cfg = config(
      R"({"data": {"name": "mnist", "n_train": null, "n_test": null, "classes": null, "dim": null, "noise": null}})");
  cfg["data"]["path"] = dir.path();
  Dataset d = data_of(cfg);
  EXPECT_EQ(d.x_train.sizes(), (std::vector<int64_t>{20, 1, 28, 28}));
  EXPECT_EQ(d.y_test.size(0), 10);
  EXPECT_EQ(d.outputs, 10);
  cfg["data"]["path"] = dir.file("missing");
  EXPECT_THROW(data_of(cfg), UserError);

  // Decoded files are kept for the process: each load gets its own copy (label noise changes a
  // trial's labels in place, not the next trial's), and a rewritten file is read again.
  cfg["data"]["path"] = dir.path();
  cfg["data"]["label_noise"] = 1.0;
  Dataset noisy = data_of(cfg);
  cfg["data"]["label_noise"] = 0.0;
  Dataset clean = data_of(cfg);
  EXPECT_TRUE(torch::equal(clean.y_train, d.y_train));
  EXPECT_FALSE(torch::equal(noisy.y_train, d.y_train));
  testing::write_tiny_idx(dir, "train", 30);
  EXPECT_EQ(data_of(cfg).x_train.size(0), 30);
  // Built data sets are kept: the same section and seed share one copy, another seed has its own.
  cfg["data"]["validation"] = 5;
  EXPECT_TRUE(data_of(cfg).x_train.is_same(data_of(cfg).x_train));
  json other = cfg;
  other["seed"] = cfg["seed"].get<int>() + 1;
  EXPECT_FALSE(torch::equal(data_of(cfg).x_val, data_of(other).x_val));
}

TEST(Trainer, ATreeIsFittedOnceAndDoesNotSeeHowItsFeaturesAreScaled) {
  const json tree = config(R"({"model": {"name": "tree", "widths": null, "max_depth": 6}})");
  std::vector<Evaluation> evals;
  TrainHooks hooks;
  hooks.on_eval = [&](const Evaluation& e) { evals.push_back(e); };
  const TrainOutcome out = run_trial(tree, torch::kCPU, hooks, "test.json");
  ASSERT_EQ(out.status, "finished");
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_EQ(evals[0].step, 0);
  const json& s = out.summary;
  EXPECT_GT(s["test_acc"].get<double>(), 0.5);  // 4 classes
  EXPECT_GE(s["train_acc"].get<double>(), s["test_acc"].get<double>());
  EXPECT_LT(s["train_loss"].get<double>(), s["chance_loss"].get<double>());
  EXPECT_GT(s["tree_leaves"].get<int>(), 4);
  EXPECT_LE(s["tree_depth"].get<int>(), 6);
  EXPECT_EQ(s["steps"], 0);
  // Raw inputs in mixed units: the same predictions to the last digit.
  json unscaled = tree, scaled = tree;
  unscaled["data"]["standardize"] = false;
  scaled["data"]["standardize"] = false;
  scaled["data"]["feature_scale"] = 3.0;
  const TrainOutcome a = run_trial(unscaled, torch::kCPU, {}, "test.json");
  const TrainOutcome b = run_trial(scaled, torch::kCPU, {}, "test.json");
  for (const char* key : {"test_acc", "test_loss", "train_acc", "train_loss", "tree_leaves"})
    EXPECT_EQ(a.summary[key], b.summary[key]) << key;
  EXPECT_EQ(a.summary["test_acc"], s["test_acc"]);  // standardized or not
  // A network trained by SGD does see them.
  json net = config(R"({"data": {"standardize": false}})"), net_scaled = net;
  net_scaled["data"]["feature_scale"] = 3.0;
  EXPECT_NE(run_trial(net, torch::kCPU, {}, "test.json").summary["train_loss"],
            run_trial(net_scaled, torch::kCPU, {}, "test.json").summary["train_loss"]);
}

TEST(Models, LeNetHasTheClassicParameterCount) {
  Net net = make_model(
      json::parse(R"({"name": "lenet_300_100", "activation": "relu", "bias": true, "dropout": 0.0,
                                        "batch_norm": false, "init": "default", "init_scale": 1.0})"),
      {1, 28, 28}, 10);
  EXPECT_EQ(count_parameters(*net), 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10);
  EXPECT_EQ(net->forward(torch::zeros({3, 1, 28, 28})).sizes(), (std::vector<int64_t>{3, 10}));
}

TEST(Models, EveryActivationAndTheConvnetRun) {
  for (const char* act : {"relu", "leaky_relu", "prelu", "tanh", "sigmoid", "gelu", "swish"}) {
    json m = config("{}")["model"];
    m["activation"] = act;
    m["batch_norm"] = true;
    m["dropout"] = 0.1;
    EXPECT_EQ(make_model(m, {5}, 4)->forward(torch::randn({6, 5})).sizes(),
              (std::vector<int64_t>{6, 4}))
        << act;
  }
  json conv = config(
      R"({"model": {"name": "convnet", "widths": null, "channels": [4, 4, 8, 8], "dense": [16]}})")
      ["model"];
  EXPECT_EQ(make_model(conv, {3, 32, 32}, 10)->forward(torch::randn({2, 3, 32, 32})).sizes(),
            (std::vector<int64_t>{2, 10}));
}

TEST(Models, InitZerosAndNormalScale) {
  json m = config("{}")["model"];
  m["init"] = "zeros";
  for (const auto& p : make_model(m, {5}, 4)->parameters())
    EXPECT_EQ(p.abs().sum().item<float>(), 0.0f);
  // Batch norm's scale and PReLU's slope keep their defaults: a zero scale passed no gradient
  // back through its layer, so the layers before it never trained.
  m["batch_norm"] = true;
  m["activation"] = "prelu";
  int kept = 0;
  for (const auto& item : make_model(m, {5}, 4)->named_parameters()) {
    const std::string& name = item.key();
    const torch::Tensor& p = item.value();
    const bool bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (p.dim() >= 2 || bias)
      EXPECT_EQ(p.abs().sum().item<float>(), 0.0f) << name;
    else
      EXPECT_GT(p.abs().min().item<float>(), 0.2f) << name;  // 1 or 0.25
    kept += p.dim() < 2 && !bias;
  }
  EXPECT_GE(kept, 2);
  m.erase("batch_norm");
  m.erase("activation");
  m["init"] = "normal";
  m["init_scale"] = 0.01;
  auto w = make_model(m, {500}, 400)->parameters()[0];
  EXPECT_NEAR(w.std().item<double>(), 0.01, 0.001);
}

TEST(Models, EachInitDrawsItsVarianceAndInitScaleScalesTheWeightsOnly) {
  // One 500 -> 400 layer: torch's default U(+-1/sqrt(fan_in)) has variance 1/(3 fan_in), Glorot
  // 2/(fan_in + fan_out), He 2/fan_in; init_scale multiplies the weights, the biases keep torch's.
  json m = config("{}")["model"];
  m["widths"] = json::array({400});
  for (const auto& [init, variance] : std::vector<std::pair<std::string, double>>{
           {"default", 1.0 / 1500}, {"xavier", 2.0 / 900}, {"kaiming", 2.0 / 500}})
    for (double scale : {1.0, 2.0}) {
      m["init"] = init;
      m["init_scale"] = scale;
      torch::manual_seed(11);
      const auto params = make_model(m, {500}, 10)->named_parameters();
      const torch::Tensor w = params["body.1.weight"], b = params["body.1.bias"];
      ASSERT_EQ(w.sizes(), (std::vector<int64_t>{400, 500})) << init;
      EXPECT_NEAR(w.var().item<double>(), variance * scale * scale, 0.05 * variance * scale * scale)
          << init << " x" << scale;
      EXPECT_NEAR(b.var().item<double>(), 1.0 / 1500, 0.25 / 1500) << init << " x" << scale;
    }
}

TrainOutcome train_cfg(const json& cfg, const TrainHooks& hooks = {}) {
  return run_trial(cfg, torch::kCPU, hooks, "test.json");
}

TEST(Trainer, XorIsLearnedByATwoLayerMlpAndNotByALinearModel) {
  const std::string data =
      R"("data": {"name": "xor", "n_train": 512, "n_test": 512, "noise": 0.2, "classes": null, "dim": null})";
  auto mlp = train_cfg(config(
      "{" + data + R"(, "model": {"name": "mlp", "widths": [16]}, "train": {"epochs": 40}})"));
  auto lin = train_cfg(config(
      "{" + data + R"(, "model": {"name": "linear", "widths": null}, "train": {"epochs": 40}})"));
  EXPECT_GT(mlp.summary["test_acc"].get<double>(), 0.95);
  EXPECT_LT(lin.summary["test_acc"].get<double>(), 0.70);
}

TEST(Trainer, SameConfigAndSeedGiveBitIdenticalMetrics) {
  json cfg = config(R"({"model": {"dropout": 0.2}})");
  std::vector<std::vector<std::pair<std::string, double>>> a, b;
  TrainHooks ha, hb;
  ha.on_eval = [&](const Evaluation& e) { a.push_back(e.values); };
  hb.on_eval = [&](const Evaluation& e) { b.push_back(e.values); };
  train_cfg(cfg, ha);
  train_cfg(cfg, hb);
  ASSERT_EQ(a.size(), 3u);
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[i].size(); ++j)
      if (a[i][j].first.find("_s") == std::string::npos) {  // timings differ, numbers must not
        EXPECT_EQ(a[i][j].second, b[i][j].second) << a[i][j].first;
      }
}

TEST(Models, DropoutWithAGeneratorZeroesAboutPAndScalesTheRestAndIsTheIdentityInEval) {
  Dropout d(0.3);
  const auto x = torch::ones({20000});
  d->generator = at::detail::createCPUGenerator(5);
  const auto y = d->forward(x);
  const double zeros = y.eq(0).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(zeros, 0.3, 0.02);
  EXPECT_TRUE(y.masked_select(y.ne(0)).allclose(torch::full({1}, 1 / 0.7)));
  d->generator = at::detail::createCPUGenerator(5);
  EXPECT_TRUE(d->forward(x).equal(y));  // the masks are the generator's
  d->eval();
  EXPECT_TRUE(d->forward(x).equal(x));
}

TEST(Trainer, TrialsTrainedAtOnceDrawTheDropoutMasksEachWouldAlone) {
  // Sweeps with --jobs train trials on threads of one process: dropout drawing from torch's
  // global generator gave each trial masks that depended on the other's progress.
  std::vector<json> cfgs;
  for (int seed : {1, 2})
    cfgs.push_back(config(R"({"model": {"dropout": 0.3}, "train": {"epochs": 8}, "seeds": [)" +
                          std::to_string(seed) + "]}"));
  std::vector<TrainOutcome> alone, together(2);
  for (const auto& c : cfgs) alone.push_back(train_cfg(c));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < 2; ++i) threads.emplace_back([&, i] { together[i] = train_cfg(cfgs[i]); });
  for (auto& th : threads) th.join();
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(together[i].summary["train_loss"], alone[i].summary["train_loss"]) << i;
    EXPECT_EQ(together[i].summary["test_loss"], alone[i].summary["test_loss"]) << i;
  }
  EXPECT_NE(alone[0].summary["train_loss"], alone[1].summary["train_loss"]);
}

TEST(Trainer, Tf32ChangesNothingOnACpu) {
  const bool before = at::globalContext().allowTF32CuBLAS();
  auto ieee = train_cfg(config("{}"));
  int touched = 0;  // steps that saw cuBLAS's TF32 mode changed: a CPU run leaves it alone
  TrainHooks hooks;
  hooks.on_progress = [&](long long, long long) {
    touched += at::globalContext().allowTF32CuBLAS() != before;
  };
  auto tf32 = train_cfg(config(R"({"train": {"tf32": true}})"), hooks);
  EXPECT_EQ(touched, 0);
  EXPECT_EQ(at::globalContext().allowTF32CuBLAS(), before);
  for (const char* k : {"train_loss", "test_loss", "test_acc"})
    EXPECT_EQ(tf32.summary[k].get<double>(), ieee.summary[k].get<double>()) << k;
}

TEST(Trainer, MaxEvalsThinsTheEvaluationsAndLeavesTheRunAsItWas) {
  json every = config(R"({"train": {"epochs": 10}})"), thinned = every;
  thinned["train"]["max_evals"] = 3;
  std::vector<int> all, some;
  TrainHooks ha, hb;
  ha.on_eval = [&](const Evaluation& e) { all.push_back(e.epoch); };
  hb.on_eval = [&](const Evaluation& e) { some.push_back(e.epoch); };
  auto a = train_cfg(every, ha), b = train_cfg(thinned, hb);
  EXPECT_EQ(all.size(), 10u);
  EXPECT_EQ(some, (std::vector<int>{4, 8, 10}));  // every ceil(10 / 3) = 4 epochs, and the last
  for (const char* m : {"train_loss", "test_acc", "weight_norm", "steps"})
    EXPECT_EQ(a.summary[m], b.summary[m]) << m;  // evaluating changes nothing it observes
}

TEST(Trainer, HeldOutEvaluationsTakeTheTrainingSetOnceAtTheEndAndLeaveTheRunAsItWas) {
  // Q97's evaluations every few steps need the validation loss and the test accuracy, not a
  // pass over the whole training set; the summary still has the final training metrics.
  json all =
      config(R"({"data": {"validation": 100}, "train": {"epochs": 2, "eval_every_steps": 5}})");
  json held = all;
  held["train"]["eval_sets"] = "held_out";
  using Values = std::vector<std::pair<std::string, double>>;
  std::vector<std::pair<long long, Values>> ea, eb;
  TrainHooks ha, hb;
  ha.on_eval = [&](const Evaluation& e) { ea.push_back({e.step, e.values}); };
  hb.on_eval = [&](const Evaluation& e) { eb.push_back({e.step, e.values}); };
  auto a = train_cfg(all, ha), b = train_cfg(held, hb);
  // 412 training examples in batches of 32: epochs end at steps 13 and 26.
  const std::vector<long long> steps = {5, 10, 13, 15, 20, 25, 26};
  ASSERT_EQ(eb.size(), steps.size());
  ASSERT_EQ(ea.size(), eb.size());
  for (size_t i = 0; i < eb.size(); ++i) {
    ASSERT_EQ(eb[i].first, steps[i]);
    ASSERT_EQ(ea[i].first, steps[i]);
    std::map<std::string, double> full(ea[i].second.begin(), ea[i].second.end());
    std::map<std::string, double> part(eb[i].second.begin(), eb[i].second.end());
    const bool last = i + 1 == eb.size();
    EXPECT_EQ(full.count("train_loss"), 1u);
    for (const char* m : {"train_loss", "train_acc", "gen_gap"})
      EXPECT_EQ(part.count(m), last ? 1u : 0u) << m << " at step " << steps[i];
    for (const char* m : {"test_acc", "test_loss", "val_loss", "val_acc", "train_loss_running",
                          "train_loss_recent"})
      EXPECT_EQ(part.count(m), 1u) << m << " at step " << steps[i];
    EXPECT_EQ(full.count("train_loss_recent"), 0u);  // the training set's own loss is there
    for (const auto& [name, value] : part)
      if (name.find("_s") == std::string::npos && name != "train_loss_recent") {
        EXPECT_EQ(value, full.at(name)) << name << " at step " << steps[i];  // timings differ
      }
  }
  // The recent loss is the mean over the steps since the evaluation before: at an epoch's first
  // evaluation the epoch's running mean, then the part of it the new steps add (equal batches).
  auto at = [&](size_t i, const char* m) -> double {
    for (const auto& [name, value] : eb[i].second)
      if (name == m) return value;
    return NAN;
  };
  EXPECT_DOUBLE_EQ(at(0, "train_loss_recent"), at(0, "train_loss_running"));  // steps 1-5
  EXPECT_NEAR(at(1, "train_loss_recent"),                                     // steps 6-10
              (10 * at(1, "train_loss_running") - 5 * at(0, "train_loss_running")) / 5, 1e-5);
  EXPECT_DOUBLE_EQ(at(3, "train_loss_recent"), at(3, "train_loss_running"));  // steps 14-15
  EXPECT_NE(at(1, "train_loss_recent"), at(1, "train_loss_running"));
  for (const char* m : {"train_loss", "train_acc", "gen_gap", "test_acc", "best_val_loss",
                        "best_val_step", "test_acc_at_best_val", "weight_norm"})
    EXPECT_EQ(a.summary[m], b.summary[m]) << m;

  // A run that stops at an evaluation between epoch ends gets its training metrics after it.
  for (json* cfg : {&all, &held}) {
    (*cfg)["train"]["target_test_acc"] = 0.5;
    (*cfg)["train"]["stop_at_targets"] = true;
  }
  auto sa = train_cfg(all), sb = train_cfg(held);
  ASSERT_LT(sb.summary["steps"].get<long long>(), 26);
  EXPECT_NE(sb.summary["steps"].get<long long>() % 13, 0);
  for (const char* m : {"steps", "train_loss", "train_acc", "gen_gap", "test_acc"})
    EXPECT_EQ(sa.summary[m], sb.summary[m]) << m;
}

TEST(Trainer, DivergenceIsRecordedWithItsStep) {
  auto out = train_cfg(config(R"({"optim": {"lr": 1e6}, "data": {"noise": 5.0}})"));
  EXPECT_EQ(out.status, "diverged");
  EXPECT_GE(out.diverged_step, 0);
  EXPECT_LT(out.diverged_step, 20);  // within the first epoch, where it happened
}

// Full-batch GD on linear regression: the loss is a quadratic with Hessian (2/n) X^T X.
json quadratic(const std::string& patch) {
  json cfg = config(R"({"data": {"name": "linear", "dim": 10, "n_train": 100, "n_test": 50,
      "noise": 0.1, "classes": null}, "model": {"name": "linear", "widths": null},
      "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.0}, "train": {"batch_size": 100}})");
  cfg.merge_patch(json::parse(patch));
  return cfg;
}

double lambda_max_at_init(const json& cfg) {
  torch::manual_seed(cfg["seed"].get<uint64_t>());
  Dataset data = data_of(cfg);
  Net model = make_model(cfg["model"], data.input_shape, data.outputs);
  return top_hessian_eigenvalue(model, data.x_train, data.y_train, Loss::standard(true), 500, 1e-7,
                                0)
      .value;
}

TEST(Trainer, DivergenceIsRecordedAtTheStepItHappened) {
  // Every step is evaluated, so the evaluation at step s is the loss the step with index s sees.
  json cfg = quadratic(R"({"optim": {"lr": 1.5}, "train": {"steps": 200, "eval_every_steps": 1,
                            "divergence_loss": 100.0}})");
  std::vector<std::pair<long long, double>> losses;
  TrainHooks hooks;
  hooks.on_eval = [&](const Evaluation& e) {
    for (const auto& [k, v] : e.values)
      if (k == "train_loss") losses.push_back({e.step, v});
  };
  auto out = train_cfg(cfg, hooks);
  ASSERT_EQ(out.status, "diverged");
  long long first_bad = -1;
  for (const auto& [step, loss] : losses)
    if (first_bad < 0 && !(loss <= 100.0)) first_bad = step;
  EXPECT_EQ(out.diverged_step, first_bad);
  EXPECT_GT(first_bad, 0);
  // The loss that tripped it is recorded: over the bound, the one evaluated at that step.
  ASSERT_TRUE(out.summary.contains("diverged_loss")) << out.summary;
  const json& tripped = out.summary["diverged_loss"];
  double evaluated = NAN;
  for (const auto& [step, loss] : losses)
    if (step == first_bad) evaluated = loss;
  if (std::isfinite(evaluated)) {
    ASSERT_TRUE(tripped.is_number()) << tripped;
    EXPECT_GT(tripped.get<double>(), 100.0);
    EXPECT_NEAR(tripped.get<double>(), evaluated, 1e-4 * evaluated);
  } else {
    EXPECT_TRUE(tripped == "nan" || tripped == "inf") << tripped;
  }
}

TEST(Trainer, GdOnAQuadraticConvergesBelowTwoOverLambdaAndDivergesAbove) {
  json cfg = quadratic(R"({"train": {"steps": 400, "divergence_loss": 1e4},
                            "measure": {"hessian_init": true, "hessian_samples": 100,
                                        "hessian_tol": 1e-7, "hessian_max_iter": 500}})");
  const double lambda = lambda_max_at_init(cfg);
  cfg["optim"]["lr"] = 1.9 / lambda;
  auto below = train_cfg(cfg);
  EXPECT_EQ(below.status, "finished");
  EXPECT_NEAR(below.summary["lr_x_hessian_init"].get<double>(), 1.9, 1e-3);
  EXPECT_NEAR(below.summary["hessian_top_init"].get<double>(), lambda, 1e-3 * lambda);
  cfg["optim"]["lr"] = 2.2 / lambda;
  auto above = train_cfg(cfg);
  EXPECT_EQ(above.status, "diverged");
  EXPECT_NEAR(above.summary["lr_x_hessian_init"].get<double>(), 2.2, 1e-3);  // kept when diverged
  EXPECT_EQ(above.summary["hessian_top_init_converged"], true);
  EXPECT_LT(above.summary["hessian_top_init_residual"].get<double>(), 1e-2 * lambda);
  // An estimate the iteration had no budget to finish is stored as it stood, and no LR is
  // binned by it (it passed lr_x_hessian_init filters as if it were the top eigenvalue).
  cfg["measure"]["hessian_max_iter"] = 2;
  auto unfinished = train_cfg(cfg);
  EXPECT_EQ(unfinished.summary["hessian_top_init_converged"], false);
  EXPECT_TRUE(unfinished.summary.contains("hessian_top_init"));
  EXPECT_FALSE(unfinished.summary.contains("lr_x_hessian_init")) << unfinished.summary.dump();
}

TEST(Trainer, HessianAtInitDoesNotChangeTraining) {
  json cfg = config("{}");
  auto plain = train_cfg(cfg);
  cfg["measure"]["hessian_init"] = true;
  auto measured = train_cfg(cfg);
  EXPECT_EQ(plain.summary["train_loss"], measured.summary["train_loss"]);
  EXPECT_GT(measured.summary["hessian_top_init"].get<double>(), 0.0);
  EXPECT_FALSE(plain.summary.contains("hessian_top_init"));
}

TEST(Trainer, WsdRecordsTheGainOfItsDecayPhaseAndOfTheStretchBefore) {
  // 16 steps per epoch, 3 epochs = 48 steps; decay_frac 0.25: decay from step 36, window from 24.
  json cfg = config(R"({"schedule": {"name": "wsd", "decay_frac": 0.25}})");
  auto out = train_cfg(cfg);
  const double end = out.summary["test_acc"], at_decay = out.summary["test_acc_decay_start"];
  EXPECT_DOUBLE_EQ(out.summary["wsd_decay_gain"].get<double>(), end - at_decay);
  EXPECT_DOUBLE_EQ(out.summary["wsd_decay_minus_stable"].get<double>(),
                   out.summary["wsd_decay_gain"].get<double>() -
                       out.summary["wsd_stable_gain"].get<double>());
  EXPECT_FALSE(train_cfg(config("{}")).summary.contains("wsd_decay_gain"));
  // The marks fall where the comment above says; a stable stretch that would start inside the
  // warmup is not one (a decay of 55 % after 16 warmup steps: the window would start at step 14).
  using Marks = std::vector<std::pair<long long, std::string>>;
  EXPECT_EQ(schedule_marks(cfg["schedule"], 48, 16),
            (Marks{{24, "window_start"}, {36, "decay_start"}}));
  json warm = config(R"({"schedule": {"name": "wsd", "decay_frac": 0.55, "warmup_epochs": 1}})");
  EXPECT_EQ(schedule_marks(warm["schedule"], 48, 16), Marks{});
  EXPECT_FALSE(train_cfg(warm).summary.contains("wsd_decay_gain"));
  // An accuracy a float cannot hold (118 of 300): the gains in double (they were 1.2e-8 off).
  json summary = {{"test_acc", 118.0 / 300}};
  summarize_schedule_marks(
      {{"window_start", {{"test_acc", 0.3}}}, {"decay_start", {{"test_acc", 110.0 / 300}}}},
      summary);
  EXPECT_EQ(summary["wsd_decay_gain"].get<double>(), 118.0 / 300 - 110.0 / 300);
  EXPECT_EQ(summary["wsd_decay_minus_stable"].get<double>(),
            (118.0 / 300 - 110.0 / 300) - (110.0 / 300 - 0.3));
}

TEST(Trainer, StopTrainLossStopsOnTheEvaluationOfThatStepNotAnEarlierOne) {
  // 16 steps an epoch, 8 epochs, epoch ends evaluated every 4 (max_evals 2) and every 13 steps
  // besides: the loss at step 13 is below chance's 1.386 already, and the stop waits for the
  // evaluated epoch end at step 64, not the unevaluated one at step 16.
  auto out = train_cfg(config(R"({"train": {"epochs": 8, "max_evals": 2, "eval_every_steps": 13,
                                            "stop_train_loss": 1.3}})"));
  EXPECT_EQ(out.summary["steps"], 64);
  EXPECT_EQ(out.summary["reached_train_loss"], true);
  EXPECT_LE(out.summary["train_loss"].get<double>(), 1.3);
}

TEST(LrRangeLab, OnAQuadraticTheLossFallsUpToTheStabilityEdgeAndBlowsUpAfter) {
  json cfg = quadratic(R"({"lab": "lr_range", "range": {"start_lr": 1e-4, "end_lr": 10.0,
                            "steps": 300, "smoothing": 0.0, "stop_factor": 4.0}})");
  const double edge = 2.0 / lambda_max_at_init(cfg);
  std::vector<double> lrs;
  TrainHooks hooks;
  hooks.on_eval = [&](const Evaluation& e) { lrs.push_back(e.values.at(0).second); };
  auto out = train_cfg(cfg, hooks);
  ASSERT_TRUE(out.summary["suggestion_valid"].get<bool>());
  // Full-batch GD on a quadratic decreases the loss at every lr below the edge: it reaches the
  // noise floor somewhat before the edge (where the float32 loss stops moving) and blows up only
  // beyond it, once the top direction has regrown.
  EXPECT_GE(out.summary["range_hi"].get<double>(), 0.5 * edge);
  EXPECT_LE(out.summary["range_hi"].get<double>(), 3.0 * edge);
  EXPECT_GT(out.summary["lr_stopped"].get<double>(), edge);
  EXPECT_LT(out.summary["range_lo"].get<double>(), out.summary["range_hi"].get<double>());
  EXPECT_EQ(lrs.size(), out.summary["steps"].get<size_t>());  // one record per step taken
  EXPECT_DOUBLE_EQ(lrs.front(), 1e-4);
}

TEST(Trainer, StepsBudgetOverridesEpochs) {
  auto out = train_cfg(config(R"({"train": {"steps": 37}})"));
  EXPECT_EQ(out.summary["steps"], 37);
  EXPECT_EQ(out.summary["steps_per_epoch"], 16);
}

TEST(Trainer, EachEvaluationStepIsEvaluatedOnceMaxEvalsOrNot) {
  // 16 steps per epoch. A run of 40 steps evaluated every 20 ends mid-epoch on an evaluation:
  // once there, not again as its last epoch end. And with max_evals thinning the epoch ends, an
  // eval_every_steps step that falls on a thinned one (32) is still taken.
  std::vector<long long> steps;
  TrainHooks h;
  h.on_eval = [&](const Evaluation& e) { steps.push_back(e.step); };
  train_cfg(config(R"({"train": {"steps": 40, "eval_every_steps": 20}})"), h);
  EXPECT_EQ(steps, (std::vector<long long>{16, 20, 32, 40}));
  steps.clear();
  train_cfg(config(R"({"train": {"epochs": 6, "eval_every_steps": 32, "max_evals": 2}})"), h);
  EXPECT_EQ(steps, (std::vector<long long>{32, 48, 64, 96}));  // epochs 3 and 6, steps 32 and 64
}

TEST(Trainer, ThroughputAndFlopsCountWhatRan) {
  // 512 examples in batches of 96: five of 96 and a last of 32 per epoch.
  auto out = train_cfg(config(R"({"train": {"batch_size": 96, "epochs": 2}})"));
  EXPECT_EQ(out.summary["samples"], 1024);
  EXPECT_NEAR(out.summary["samples_per_s"].get<double>() * out.summary["compute_s"].get<double>(),
              1024.0, 1e-6 * 1024);
  // SAM takes two forward and backward passes per step.
  auto sam = train_cfg(
      config(R"({"train": {"batch_size": 96, "epochs": 2}, "optim": {"sam_rho": 0.05}})"));
  EXPECT_EQ(sam.summary["flops_per_example"].get<double>(),
            2 * out.summary["flops_per_example"].get<double>());
  EXPECT_EQ(sam.summary["train_flops"].get<double>(), 2 * out.summary["train_flops"].get<double>());
}

TEST(Trainer, StopTrainLossEndsAtTheFirstEpochThatReachesIt) {
  // Every epoch end's training loss is recorded; the run must stop at the first one at or below
  // the target, and say whether it got there.
  auto full = train_cfg(config(R"({"train": {"epochs": 12}})"));
  ASSERT_EQ(full.summary["epochs"], 12);
  ASSERT_FALSE(full.summary.contains("reached_train_loss"));
  const double target = full.summary["train_loss"].get<double>() * 1.5;
  auto out = train_cfg(config(R"({"train": {"epochs": 12, "stop_train_loss": )" +
                              std::to_string(target) + "}}"));
  EXPECT_TRUE(out.summary["reached_train_loss"].get<bool>());
  EXPECT_LT(out.summary["epochs"].get<int>(), 12);
  EXPECT_LE(out.summary["train_loss"].get<double>(), target);
  auto never = train_cfg(config(R"({"train": {"epochs": 2, "stop_train_loss": 1e-9}})"));
  EXPECT_FALSE(never.summary["reached_train_loss"].get<bool>());
  EXPECT_EQ(never.summary["epochs"], 2);
}

TEST(Trainer, SamTrainsAndDiffersFromPlainSgd) {
  auto plain = train_cfg(config("{}"));
  auto sam = train_cfg(config(R"({"optim": {"sam_rho": 0.05}})"));
  EXPECT_EQ(sam.status, "finished");
  EXPECT_GT(sam.summary["test_acc"].get<double>(), 0.5);
  EXPECT_NE(sam.summary["train_loss"].get<double>(), plain.summary["train_loss"].get<double>());
}

TEST(Trainer, SamsSecondForwardLeavesBatchNormStatisticsAlone) {
  json cfg = config(R"({"model": {"batch_norm": true}, "optim": {"sam_rho": 0.05}})");
  Dataset d = data_of(cfg);
  Net net = make_model(cfg["model"], d.input_shape, d.outputs);
  Optimizer opt(cfg["optim"], *net);
  auto x = d.x_train.slice(0, 0, 32), y = d.y_train.slice(0, 0, 32);
  torch::nn::functional::cross_entropy(net->forward(x), y).backward();
  std::vector<torch::Tensor> after_first;
  for (const auto& b : net->named_buffers())
    if (b.key().find("running_mean") != std::string::npos) after_first.push_back(b.value().clone());
  ASSERT_FALSE(after_first.empty());
  opt.sam_regrade([&] { return torch::nn::functional::cross_entropy(net->forward(x), y); });
  size_t i = 0;
  for (const auto& b : net->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) {
      EXPECT_TRUE(torch::equal(b.value(), after_first[i++])) << b.key();
    }
  }
  // ... and their momentum is back for the next step's first forward.
  for (const auto& m : net->modules(false)) {
    if (auto* bn = m->as<torch::nn::BatchNorm1dImpl>()) {
      EXPECT_EQ(bn->options.momentum(), 0.1);
    }
  }
}

TEST(Trainer, TheRescaledHessianRecordsItsOwnConvergence) {
  // Dinh's rescaled network gets its own power iteration: whether it converged is its own too.
  auto out = train_cfg(config(R"({"train": {"epochs": 1}, "measure": {"hessian_top": true,
      "hessian_samples": 200, "dinh_alpha": 10.0}})"));
  ASSERT_EQ(out.status, "finished");
  for (const char* key : {"hessian_top_iterations", "hessian_top_converged",
                          "hessian_top_iterations_dinh", "hessian_top_converged_dinh"})
    EXPECT_TRUE(out.measures.contains(key)) << key << " in " << out.measures.dump();
  EXPECT_GE(out.measures["hessian_top_iterations_dinh"].get<int>(), 2);
}

TEST(Trainer, InterpolationRunsThroughBothSolutions) {
  // 512 training and 256 test examples, all inside hessian_samples: the curve's points at t = 0
  // and t = 1 are this trial's and its partner's own final accuracies.
  auto out = train_cfg(config(R"({"measure": {"interpolate_batch": 128, "interpolate_points": 5,
      "interpolate_range": [-0.5, 1.5], "hessian_samples": 1000}})"));
  ASSERT_EQ(out.status, "finished");
  const json& c = out.measures["interpolation"];
  ASSERT_EQ(c["t"].size(), 5u);
  EXPECT_EQ(c["t"], json::parse("[-0.5, 0.0, 0.5, 1.0, 1.5]"));
  EXPECT_EQ(c["partner_batch"], 128);
  EXPECT_DOUBLE_EQ(c["train_acc"][1].get<double>(), out.summary["train_acc"].get<double>());
  EXPECT_DOUBLE_EQ(c["test_acc"][1].get<double>(), out.summary["test_acc"].get<double>());
  EXPECT_DOUBLE_EQ(c["test_acc"][3].get<double>(), c["partner_test_acc"].get<double>());
  EXPECT_TRUE(out.measures["interp_rise_here"].is_number());
  EXPECT_NEAR(out.measures["interp_rise_partner_minus_here"].get<double>(),
              c["rise_partner"].get<double>() - c["rise_here"].get<double>(), 1e-12);
}

TEST(Trainer, TheInterpolationPartnerSaysWhetherItReachedTheStopLoss) {
  // Keskar's line compares two solutions at the same training loss: the partner's reach is
  // recorded beside this trial's own, so a claim can require both.
  for (const std::string stop : {"10", "1e-9"}) {
    auto out = train_cfg(config(R"({"train": {"epochs": 2, "stop_train_loss": )" + stop +
                                R"(}, "measure": {"interpolate_batch": 128,
        "interpolate_points": 3, "hessian_samples": 200}})"));
    ASSERT_EQ(out.status, "finished");
    EXPECT_EQ(out.summary["reached_train_loss"], stop == "10");
    EXPECT_EQ(out.measures["partner_reached_train_loss"], stop == "10") << out.measures.dump();
  }
}

TEST(Trainer, EarlyStoppingRecordsTheBestValidationStep) {
  auto out = train_cfg(config(
      R"({"data": {"validation": 128, "label_noise": 0.4}, "train": {"epochs": 60, "early_stop_patience": 3},
                                   "model": {"widths": [256, 256]}, "optim": {"lr": 0.05}})"));
  EXPECT_TRUE(out.summary.value("early_stopped", false));
  EXPECT_LT(out.summary["epochs"].get<int>(), 60);
  EXPECT_GE(out.summary["best_val_step"].get<int>(), 0);
}

TEST(Trainer, EarlyStoppingStopsAtTheEvaluationThatSpendsThePatienceMidEpochToo) {
  // 16 steps an epoch, an evaluation every 5 steps: most fall inside an epoch, and the run
  // trained on to the epoch's end before it looked at the patience.
  std::vector<std::pair<long long, double>> evals;  // (step, val_loss)
  TrainHooks hooks;
  hooks.on_eval = [&](const Evaluation& e) {
    for (const auto& [name, value] : e.values)
      if (name == "val_loss") evals.emplace_back(e.step, value);
  };
  auto out = train_cfg(config(R"({"data": {"validation": 128, "label_noise": 0.4},
                 "train": {"epochs": 60, "early_stop_patience": 3, "eval_every_steps": 5},
                 "model": {"widths": [256, 256]}, "optim": {"lr": 0.05}})"),
                       hooks);
  ASSERT_TRUE(out.summary.value("early_stopped", false));
  double best = INFINITY;
  int since = 0;
  size_t spent = evals.size();
  for (size_t i = 0; i < evals.size() && spent == evals.size(); ++i) {
    since = evals[i].second < best ? 0 : since + 1;
    best = std::min(best, evals[i].second);
    if (since >= 3) spent = i;
  }
  ASSERT_LT(spent, evals.size());
  EXPECT_EQ(spent, evals.size() - 1) << "evaluated on past the one that spent the patience";
  EXPECT_EQ(out.summary["steps"].get<long long>(), evals[spent].first);
}

// An evaluation hook that kills the run at its third epoch's evaluation.
void kill_at_epoch_3(const Evaluation& e) {
  if (e.epoch == 3) throw std::runtime_error("killed");
}

// Runs `cfg` until its third epoch's evaluation (a kill: the checkpoint of epoch 2 stays), then
// again from the checkpoint to the end.
TrainOutcome killed_and_resumed(const json& cfg, const std::string& checkpoint) {
  TrainHooks dying;
  dying.checkpoint_path = checkpoint;
  dying.on_eval = kill_at_epoch_3;
  EXPECT_THROW(train_cfg(cfg, dying), std::runtime_error);
  EXPECT_TRUE(std::filesystem::exists(checkpoint));
  TrainHooks resumed;
  resumed.checkpoint_path = checkpoint;
  return train_cfg(cfg, resumed);
}

TEST(Trainer, AKilledTrialResumesFromItsCheckpointToTheSameResult) {
  // Dropout draws from the checkpointed generator; a class-sorted order is drawn again from the
  // seed.
  for (const char* patch : {R"({"train": {"epochs": 4}, "model": {"dropout": 0.2}})",
                            R"({"train": {"epochs": 4, "order": "by_class"}})"}) {
    testing::TempDir dir;
    json cfg = config(patch);
    auto whole = train_cfg(cfg);
    auto out = killed_and_resumed(cfg, dir.file("t.pt"));
    EXPECT_EQ(out.resumed_from_epoch, 2) << patch;
    EXPECT_EQ(out.summary["test_acc"], whole.summary["test_acc"]) << patch;
    EXPECT_EQ(out.summary["train_loss"], whole.summary["train_loss"]) << patch;
    EXPECT_FALSE(std::filesystem::exists(dir.file("t.pt")));  // removed once the trial ends
  }
  {  // The killed run's wall time up to its checkpoint is the resumed run's to report (the
     // store's wall_s counted the resumed part only): here at least the 0.2 s it slept.
    testing::TempDir dir;
    const json cfg = config(R"({"train": {"epochs": 4, "checkpoint_every_s": 0}})");
    EXPECT_EQ(train_cfg(cfg).resumed_wall_s, 0.0);
    TrainHooks dying;
    dying.checkpoint_path = dir.file("w.pt");
    dying.on_eval = [](const Evaluation& e) {
      if (e.epoch == 1) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      kill_at_epoch_3(e);
    };
    EXPECT_THROW(train_cfg(cfg, dying), std::runtime_error);
    TrainHooks resumed;
    resumed.checkpoint_path = dir.file("w.pt");
    const auto out = train_cfg(cfg, resumed);
    EXPECT_EQ(out.resumed_from_epoch, 2);
    EXPECT_GE(out.resumed_wall_s, 0.2);
  }
}

TEST(Trainer, AKeptCheckpointOutlivesTrainingSoAKillDuringTheMeasuresResumesFromIt) {
  // The sweep keeps a trial's checkpoint until it has recorded the trial: killed while the
  // measures run, the trial resumes from its last epoch end instead of starting over.
  testing::TempDir dir;
  json cfg = config(R"({"train": {"epochs": 4}})");
  TrainHooks kept;
  kept.checkpoint_path = dir.file("k.pt");
  kept.keep_checkpoint = true;
  const auto whole = train_cfg(cfg, kept);
  ASSERT_TRUE(std::filesystem::exists(dir.file("k.pt")));
  const auto again = train_cfg(cfg, kept);
  EXPECT_EQ(again.resumed_from_epoch, 3);
  EXPECT_EQ(again.summary["test_acc"], whole.summary["test_acc"]);
  EXPECT_EQ(again.summary["train_loss"], whole.summary["train_loss"]);
}

TEST(Trainer, ADamagedCheckpointThatCannotBeRemovedLeavesTheTrialToTrainFromItsStart) {
  // A folder with a file in it where the checkpoint should be: not a checkpoint, and not
  // removable (as one in a folder this user cannot write). It failed the trial with a raw
  // filesystem error, on every rerun.
  testing::TempDir dir;
  std::filesystem::create_directories(dir.file("t.pt"));
  std::ofstream(dir.file("t.pt/junk")) << "x";
  json cfg = config(R"({"train": {"epochs": 3}})");
  TrainHooks hooks;
  hooks.checkpoint_path = dir.file("t.pt");
  hooks.checkpoint_every_s = 0;
  const auto out = train_cfg(cfg, hooks);
  EXPECT_EQ(out.status, "finished");
  EXPECT_FALSE(out.summary.contains("resumed_from_epoch"));
  EXPECT_EQ(out.summary["test_acc"], train_cfg(cfg).summary["test_acc"]);
}

TEST(Trainer, ACheckpointThatCannotBeWrittenLeavesTheRunGoingAndNoTemporaryFile) {
  // A folder that is not there stands for a full disk or one not writable: torch's file writer
  // would throw from its destructor there and end the process. The run goes on without
  // checkpoints and ends as the run without them.
  testing::TempDir dir;
  json cfg = config(R"({"train": {"epochs": 3}})");
  TrainHooks hooks;
  hooks.checkpoint_path = dir.file("missing/t.pt");
  hooks.checkpoint_every_s = 0;
  const auto out = train_cfg(cfg, hooks);
  EXPECT_EQ(out.status, "finished");
  EXPECT_EQ(out.summary["test_acc"], train_cfg(cfg).summary["test_acc"]);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  // Written whole or not at all, and the error names the file.
  torch::serialize::OutputArchive archive;
  archive.write("x", torch::ones({3}));
  try {
    save_archive_to(archive, dir.file("missing/a.pt"));
    ADD_FAILURE() << "wrote into a folder that is not there";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("missing/a.pt") + ": could not be written"),
              std::string::npos)
        << e.what();
  }
  save_archive_to(archive, dir.file("a.pt"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);  // a.pt alone: no temporary file left beside it
}

TEST(Trainer, ATrialResumedThenDivergingKeepsItsLastEvaluationsValues) {
  // The LR warms up to a rate that diverges after a few epochs (16 steps each): killed in that
  // epoch before diverging and resumed from the previous epoch's checkpoint, the run's summary
  // must still hold that epoch's evaluation, as the run that never stopped does.
  testing::TempDir dir;
  json cfg = config(R"({"optim": {"lr": 5}, "schedule": {"warmup_epochs": 4},
                        "train": {"epochs": 6}})");
  const auto whole = train_cfg(cfg);
  ASSERT_EQ(whole.status, "diverged");
  const long long at = whole.diverged_step;
  const long long epoch = (at - 1) / 16;  // the epoch it diverged in, after its checkpoint
  ASSERT_GE(epoch, 1);
  ASSERT_GT(at - 1, 16 * epoch);
  ASSERT_TRUE(whole.summary["test_acc"].is_number());
  TrainHooks dying;
  dying.checkpoint_path = dir.file("t.pt");
  dying.on_step = [&](long long step) {
    if (step == at - 1) throw std::runtime_error("killed");
  };
  EXPECT_THROW(train_cfg(cfg, dying), std::runtime_error);
  TrainHooks resumed;
  resumed.checkpoint_path = dir.file("t.pt");
  const auto out = train_cfg(cfg, resumed);
  EXPECT_EQ(out.resumed_from_epoch, epoch);
  EXPECT_EQ(out.status, "diverged");
  EXPECT_EQ(out.diverged_step, at);
  EXPECT_EQ(out.summary["test_acc"], whole.summary["test_acc"]);
  EXPECT_EQ(out.summary["test_loss"], whole.summary["test_loss"]);
}

TEST(Trainer, ARunOfStepsEndingMidEpochCountsTheEpochsItCompleted) {
  // 16 steps an epoch: 40 steps are 2 epochs and a half, and the last evaluation says 2.
  std::vector<int> epochs;
  TrainHooks hooks;
  hooks.on_eval = [&](const Evaluation& e) { epochs.push_back(e.epoch); };
  const auto out = train_cfg(config(R"({"train": {"steps": 40}})"), hooks);
  EXPECT_EQ(out.summary["steps"], 40);
  EXPECT_EQ(out.summary["epochs"], 2);
  EXPECT_EQ(epochs, (std::vector<int>{1, 2, 2}));
}

TEST(Trainer, AConvnetOnFlatInputsIsRefusedNamingTheConfigFile) {
  // It named the file "config".
  try {
    train_cfg(config(R"({"model": {"name": "convnet", "widths": null}})"));
    ADD_FAILURE() << "trained";
  } catch (const UserError& e) {
    EXPECT_EQ(
        std::string(e.what()).rfind("test.json: /model/name = \"convnet\": convnet needs image "
                                    "inputs",
                                    0),
        0u)
        << e.what();
  }
}

TEST(Trainer, ANoiseScaleWhoseBatchesAreBothTheWholeTrainingSetIsRefusedBeforeTraining) {
  // 512 training examples: batches of 600 and 5,000 are both all 512, and the estimate divided
  // by zero into nulls without a word.
  json cfg = config(R"({"measure": {"noise_scale": true, "noise_batches": [600, 5000]}})");
  int steps = 0;
  TrainHooks hooks;
  hooks.on_step = [&](long long) { ++steps; };
  try {
    train_cfg(cfg, hooks);
    ADD_FAILURE() << "trained";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("test.json: /measure/noise_batches = [600,5000]: with "
                                         "512 training examples both batches are all of them"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(steps, 0);
  cfg["measure"]["noise_batches"] = {500, 5000};
  EXPECT_TRUE(train_cfg(cfg).measures["gradient_sq"].is_number());
}

TEST(Trainer, AnUpdateThatDivergesOnTheLastStepIsCaughtByTheEvaluationAfterIt) {
  // One step: its loss (at the initialization) is finite, its update at LR 1e30 is not.
  const auto out = train_cfg(config(R"({"optim": {"lr": 1e30, "momentum": 0},
                                        "train": {"steps": 1}})"));
  EXPECT_EQ(out.status, "diverged") << out.summary.dump();
  EXPECT_EQ(out.diverged_step, 1);
}

TEST(Trainer, FixedOrdersVisitEveryExampleOnceTheSameEveryEpoch) {
  const auto labels = torch::tensor({2, 0, 1, 0, 2, 1, 0, 2, 1, 0}, torch::kInt64);
  EXPECT_FALSE(fixed_order("reshuffle", labels, 0, torch::kCPU).defined());
  for (const std::string name : {"fixed", "by_class"}) {
    const auto order = fixed_order(name, labels, 0, torch::kCPU);
    EXPECT_TRUE(std::get<0>(order.sort()).equal(torch::arange(10)));  // a permutation
    EXPECT_TRUE(order.equal(fixed_order(name, labels, 0, torch::kCPU)));
    EXPECT_FALSE(order.equal(fixed_order(name, labels, 1, torch::kCPU)));
  }
  // by_class: the labels along it never fall, and each class's examples come in the order the
  // seed's permutation ("fixed") visits them (a stable sort of it), not in index order.
  const auto by_class = fixed_order("by_class", labels, 0, torch::kCPU);
  EXPECT_TRUE(labels.index_select(0, by_class).equal(std::get<0>(labels.sort())));
  const auto fixed = fixed_order("fixed", labels, 0, torch::kCPU);
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_TRUE(by_class.masked_select(labels.index_select(0, by_class).eq(c))
                    .equal(fixed.masked_select(labels.index_select(0, fixed).eq(c))))
        << c;
  }
  EXPECT_FALSE(by_class.equal(torch::argsort(labels, /*stable=*/true)));
}

TEST(Trainer, ClassWeightsLeaveTheRecordedTrainingLossUnweighted) {
  // One step from the same init on the same batch: the step's loss differs with the weights
  // (the imbalance makes them far from 1), the running loss recorded for it does not.
  const std::string patch =
      R"({"data": {"imbalance": 0.2}, "train": {"steps": 1, "eval_sets": "held_out", "class_weights": ")";
  auto plain = train_cfg(config(patch + R"(none"}})"));
  auto weighted = train_cfg(config(patch + R"(balanced"}})"));
  EXPECT_EQ(plain.summary["train_loss_running"], weighted.summary["train_loss_running"]);
  const json cfg = config(patch + R"(balanced"}})");
  const Dataset d = data_of(cfg);
  const Loss loss = Loss::of(cfg, d);
  torch::manual_seed(0);
  const auto out = torch::randn({d.y_train.size(0), 4});
  EXPECT_GT(
      std::abs(loss.training(out, d.y_train).item<double>() - loss(out, d.y_train).item<double>()),
      1e-3);
}

TEST(Trainer, BatchesOfOneClassAtATimeForgetTheClassesBefore) {
  // Overlapping blobs, which reshuffled batches learn to 79 %; one class after the other, each
  // epoch ends on the last class, and the net leans to it (58 %). (Blobs far apart are learnt
  // either way: every class's batches keep their margin.)
  const std::string overlapping =
      R"({"data": {"noise": 3.0}, "optim": {"lr": 0.3}, "train": {"order": ")";
  auto shuffled = train_cfg(config(overlapping + R"(reshuffle"}})"));
  auto by_class = train_cfg(config(overlapping + R"(by_class"}})"));
  EXPECT_GT(shuffled.summary["test_acc"].get<double>(), 0.75);
  EXPECT_LT(by_class.summary["test_acc"].get<double>(), 0.65);
}

TEST(Trainer, EveryLossTrainsAndReportsItsOwnChanceLevel) {
  for (const std::string name : {"mse_softmax", "mse_logits", "cross_entropy_on_softmax"}) {
    json cfg = config(R"({"data": {"noise": 0.3}, "train": {"epochs": 10}})");
    cfg["train"]["loss"] = name;
    auto out = train_cfg(cfg);
    const Loss loss = Loss::of(cfg, data_of(cfg));
    EXPECT_EQ(out.summary["chance_loss"].get<double>(), loss.chance(4)) << name;
    EXPECT_LT(out.summary["train_loss"].get<double>(), loss.chance(4)) << name;
    EXPECT_GT(out.summary["test_acc"].get<double>(), 0.9) << name;
  }
}

TEST(Trainer, TheStartChecksCountEachSeedsExamplesWhenAnImbalanceThinsADraw) {
  // The checks before a sweep's trials start loaded the first seed's data alone for every seed;
  // with an imbalance over a subset, another seed keeps another number of examples, and its epoch
  // could end in a batch of one that was refused midway through the sweep, not before it.
  json cfg = config(R"({"data": {"imbalance": 0.5, "train_subset": 300},
                        "model": {"batch_norm": true}})");
  std::map<int64_t, int> seed_of;  // training examples -> a seed keeping that many
  for (int seed = 0; seed < 40; ++seed) {
    cfg["seed"] = seed;
    seed_of.emplace(data_of(cfg).x_train.size(0), seed);
  }
  ASSERT_GE(seed_of.size(), 2u);
  const auto [fewest, s0] = *seed_of.begin();
  const auto [most, s1] = *seed_of.rbegin();
  ASSERT_GE(most - fewest, 2);
  // Batches of most - 1: the seed keeping the most ends each epoch in a batch of one; the one
  // keeping the fewest fits its epoch in one batch.
  cfg["train"]["batch_size"] = most - 1;
  json first = cfg, second = cfg;
  first["seed"] = s0;
  second["seed"] = s1;
  EXPECT_NO_THROW(check_trials_start({first}, "test.json"));
  try {
    check_trials_start({first, second}, "test.json");
    FAIL() << "expected a ConfigError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/train/batch_size = " + std::to_string(most - 1) +
                                         ": with " + std::to_string(most) + " training examples"),
              std::string::npos)
        << e.what();
  }
}

TEST(Trainer, BatchNormWithAnEpochEndingInABatchOfOneIsRefusedBeforeTraining) {
  // 512 examples in batches of 511: torch failed the trial at the first epoch's end with a
  // stack trace.
  try {
    train_cfg(config(R"({"model": {"batch_norm": true}, "train": {"batch_size": 511}})"));
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("test.json: /train/batch_size = 511: with 512 training "
                                          "examples an epoch's last batch holds one example",
                                          0),
              0u)
        << e.what();
  }
  try {  // (every batch of one: not "an epoch's last batch")
    train_cfg(config(R"({"model": {"batch_norm": true}, "train": {"batch_size": 1}})"));
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              "test.json: /train/batch_size = 1: every batch holds one "
              "example, and batch norm cannot train on one; allowed: a "
              "batch size of at least 2");
  }
  // Without batch norm, or with a last batch of two, it trains.
  EXPECT_EQ(train_cfg(config(R"({"train": {"batch_size": 511, "epochs": 1}})")).status, "finished");
  EXPECT_EQ(
      train_cfg(
          config(R"({"model": {"batch_norm": true}, "train": {"batch_size": 255, "epochs": 1}})"))
          .status,
      "finished");
}

TEST(Trainer, ABatchLargerThanTheDataSaysEachStepTakesAllOfIt) {
  ::testing::internal::CaptureStderr();
  const auto out = train_cfg(config(R"({"train": {"batch_size": 1000, "epochs": 1}})"));
  const std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.summary["steps"], 1);
  EXPECT_NE(said.find("test.json: /train/batch_size = 1000: there are only 512 training examples"),
            std::string::npos)
      << said;
}

TEST(Trainer, AFailedTrialsErrorIsItsFirstLine) {
  EXPECT_EQ(failure_text(std::runtime_error("shape mismatch\nException raised from ...")),
            "shape mismatch");
  EXPECT_EQ(failure_text(std::runtime_error(std::string(900, 'x'))).size(), 500u);
}

TEST(Trainer, ACheckpointThatCannotBeRestoredIsRemovedAndTheTrialTrainsFromTheStart) {
  // A readable checkpoint another model or optimizer wrote (an older empiric's, say) failed the
  // trial on every rerun. The model's shape differs here, then only the optimizer's state (the
  // model loads, then Adam's state does not: the weights must go back to their init).
  testing::TempDir dir;
  const json written = config(R"({"train": {"epochs": 4}, "optim": {"momentum": 0.9}})");
  for (const char* other :
       {R"({"train": {"epochs": 3}, "model": {"widths": [16]}})",
        R"({"train": {"epochs": 3}, "optim": {"name": "adam", "lr": 0.01, "momentum": null}})"}) {
    const std::string path = dir.file("c.pt");
    TrainHooks dying;
    dying.checkpoint_path = path;
    dying.on_eval = kill_at_epoch_3;
    EXPECT_THROW(train_cfg(written, dying), std::runtime_error);
    ASSERT_TRUE(std::filesystem::exists(path));
    const json cfg = config(other);
    TrainHooks hooks;
    hooks.checkpoint_path = path;
    const auto out = train_cfg(cfg, hooks);
    EXPECT_EQ(out.status, "finished") << other;
    EXPECT_EQ(out.resumed_from_epoch, 0) << other;
    EXPECT_EQ(out.summary["train_loss"], train_cfg(cfg).summary["train_loss"]) << other;
    EXPECT_FALSE(std::filesystem::exists(path)) << other;
  }
  // This trial's own checkpoint with its tensors' data emptied on disk: their shapes read, their
  // data missing (used, a segmentation fault or an error on every rerun). SGD with momentum and
  // Adam, whose state the fused optimizer reads itself, and Adam in torch's own (optim.impl).
  for (const char* which :
       {R"({"train": {"epochs": 4}, "optim": {"momentum": 0.9}})",
        R"({"train": {"epochs": 4}, "optim": {"name": "adam", "lr": 0.01, "momentum": null}})",
        R"({"train": {"epochs": 4}, "optim": {"name": "adam", "lr": 0.01, "momentum": null,
                                               "impl": "torch"}})"}) {
    const json cfg = config(which);
    const std::string path = dir.file("whole.pt"), emptied = dir.file("emptied.pt");
    TrainHooks dying;
    dying.checkpoint_path = path;
    dying.on_eval = kill_at_epoch_3;
    EXPECT_THROW(train_cfg(cfg, dying), std::runtime_error);
    ASSERT_TRUE(std::filesystem::exists(path));
    // Each tensor's data alone (weights, the optimizer's state and step count, the generators,
    // the loop's state), then every tensor's at once. (A record cut short rather than emptied,
    // inside an archive rewritten whole by other software, is not caught: torch sizes a storage
    // by the tensor's metadata, not by its record.)
    const double fresh = train_cfg(cfg).summary["train_loss"];
    std::vector<std::string> records = testing::data_records(path);
    ASSERT_GT(records.size(), 5u);
    records.push_back("");
    for (const std::string& record : records) {
      testing::empty_records(path, emptied, record);
      TrainHooks hooks;
      hooks.checkpoint_path = emptied;
      const auto out = train_cfg(cfg, hooks);
      const std::string what = std::string(which) + " " + record;
      EXPECT_EQ(out.status, "finished") << what;
      EXPECT_EQ(out.resumed_from_epoch, 0) << what;
      EXPECT_EQ(out.summary["train_loss"].get<double>(), fresh) << what;
      EXPECT_FALSE(std::filesystem::exists(emptied)) << what;
    }
    {  // One byte of a tensor's data flipped on disk: every record whole, the values finite and
       // wrong. The trial resumed from it and stored another result; the checkpoint's CRC-32
       // says it is damaged, and the trial trains from the start.
      const std::string flipped = dir.file("flipped.pt");
      testing::flip_a_data_byte(path, flipped);
      TrainHooks hooks;
      hooks.checkpoint_path = flipped;
      const auto out = train_cfg(cfg, hooks);
      EXPECT_EQ(out.resumed_from_epoch, 0) << which;
      EXPECT_EQ(out.summary["train_loss"].get<double>(), fresh) << which;
      EXPECT_FALSE(std::filesystem::exists(flipped)) << which;
      TrainHooks whole;  // (the checkpoint as written resumes)
      whole.checkpoint_path = path;
      EXPECT_EQ(train_cfg(cfg, whole).resumed_from_epoch, 2) << which;
    }
    std::filesystem::remove(path);
  }
}

TEST(Trainer, CheckpointsAreSpacedByTheirIntervalAndAnnouncedBeforeWriting) {
  testing::TempDir dir;
  json cfg = config(R"({"train": {"epochs": 4}})");
  // Every epoch end but the last (interval 0): 3 checkpoints, each announced first.
  TrainHooks every;
  every.checkpoint_path = dir.file("e.pt");
  int announced = 0;
  every.before_checkpoint = [&] {
    ++announced;
    EXPECT_EQ(std::filesystem::exists(dir.file("e.pt")), announced > 1);
  };
  train_cfg(cfg, every);
  EXPECT_EQ(announced, 3);
  // An interval longer than the run: none, so a kill starts the trial over.
  TrainHooks rare;
  rare.checkpoint_path = dir.file("r.pt");
  rare.checkpoint_every_s = 3600;
  rare.before_checkpoint = [&] { ADD_FAILURE() << "checkpointed within the interval"; };
  rare.on_eval = kill_at_epoch_3;
  EXPECT_THROW(train_cfg(cfg, rare), std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(dir.file("r.pt")));
}

TEST(Trainer, GradientNoiseResumesWithTheSameDraws) {
  testing::TempDir dir;
  json cfg = config(R"({"train": {"epochs": 4}, "optim": {"grad_noise": 0.01}})");
  auto whole = train_cfg(cfg);
  auto out = killed_and_resumed(cfg, dir.file("n.pt"));
  EXPECT_EQ(out.resumed_from_epoch, 2);
  EXPECT_EQ(out.summary["train_loss"], whole.summary["train_loss"]);
  cfg["optim"]["grad_noise"] = 0.0;
  EXPECT_NE(train_cfg(cfg).summary["train_loss"], whole.summary["train_loss"]);
}

TEST(Models, FlopCounterMatchesACountByHand) {
  // mlp 2 -> 3 -> 4. Forward: 2*2*3 + 3 (bias) = 15 and 2*3*4 + 4 = 28. Backward: the first
  // layer's weight and bias gradients only (12 + 3), the second's weight, bias and input
  // gradients (24 + 4 + 24).
  json m = config("{}")["model"];
  m["widths"] = {3};
  Net mlp = make_model(m, {2}, 4);
  FlopCount f = count_flops(mlp, {2});
  EXPECT_EQ(f.forward, 43);
  EXPECT_EQ(f.backward, 67);
  EXPECT_EQ(f.training(), 110);
  // convnet on 1 x 4 x 4: conv 1 -> 2 channels, 3x3, padding 1 (32 outputs x 9 multiply-adds,
  // 32 bias adds), no pool after a single conv, then dense 32 -> 3 -> 5.
  json c = {{"name", "convnet"}, {"channels", {2}}, {"dense", {3}}, {"activation", "relu"},
            {"bias", true}, {"dropout", 0.0}, {"batch_norm", false}, {"init", "default"},
            {"init_scale", 1.0}};
  Net conv = make_model(c, {1, 4, 4}, 5);
  FlopCount g = count_flops(conv, {1, 4, 4});
  EXPECT_EQ(g.forward, (2 * 288 + 32) + (2 * 96 + 3) + (2 * 15 + 5));
  EXPECT_EQ(g.backward, (2 * 288 + 32) + (2 * 96 + 3 + 2 * 96) + (2 * 15 + 5 + 2 * 15));
}

TEST(Trainer, TargetsRecordWhenTheyWereReachedAndCanEndTheRun) {
  json cfg = config(R"({"train": {"epochs": 20, "eval_every_steps": 4, "target_train_acc": 0.8,
                                  "target_train_loss": 1e-9, "stop_at_targets": false}})");
  auto out = train_cfg(cfg);
  ASSERT_TRUE(out.summary["reached_train_acc"].get<bool>());
  EXPECT_FALSE(out.summary["reached_train_loss"].get<bool>());
  EXPECT_FALSE(out.summary.contains("steps_to_train_loss"));  // never reached: no value ...
  EXPECT_EQ(out.summary["steps_to_train_loss_censored"], out.summary["steps"]);  // ... but a bound
  const long long at = out.summary["steps_to_train_acc"];
  EXPECT_EQ(at % 4, 0);  // an evaluation step
  EXPECT_EQ(out.summary["samples_to_train_acc"].get<long long>(), at * 32);  // 512 = 16 x 32
  EXPECT_DOUBLE_EQ(out.summary["flops_to_train_acc"].get<double>(),
                   out.summary["flops_per_example"].get<double>() * double(at * 32));
  EXPECT_EQ(out.summary["samples"].get<long long>(), 20 * 512);
  EXPECT_GT(out.summary["weight_norm"].get<double>(), 0.0);

  cfg["train"]["target_train_loss"] = 0.0;
  cfg["train"]["stop_at_targets"] = true;
  auto stopped = train_cfg(cfg);
  EXPECT_EQ(stopped.summary["steps"].get<long long>(), at);
  EXPECT_EQ(stopped.summary["steps_to_train_acc"].get<long long>(), at);
}

TEST(Trainer, TheImplicitLabRunsThroughRunTrialAndReportsEachPoint) {
  json doc = {{"lab", "implicit"},
              {"implicit", {{"problem", "least_squares"}, {"n", 10}, {"dim", 30}, {"steps", 2000},
                            {"log_points", 12}}}};
  json cfg = expand_trials(resolve_config_json(doc, "test.json", "", {})).at(0).config;
  int evals = 0;
  TrainHooks hooks;
  hooks.on_eval = [&](const Evaluation&) { ++evals; };
  auto out = train_cfg(cfg, hooks);
  EXPECT_EQ(out.status, "finished");
  EXPECT_EQ(evals, 12);
  EXPECT_LT(out.summary["rel_dist_min_norm"].get<double>(), 1e-9);
  cfg["implicit"]["lr"] = 1e3;
  auto bad = train_cfg(cfg);
  EXPECT_EQ(bad.status, "diverged");
  EXPECT_GT(bad.diverged_step, 0);
}

}  // namespace
}  // namespace empiric

namespace empiric {
namespace {

TEST(Trainer, FusedOptimizerMatchesTorchOptimOverAHundredSteps) {
  for (const char* optim :
       {R"({"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 1e-4})",
        R"({"name": "adamw", "lr": 0.003, "weight_decay": 0.01, "momentum": null})"}) {
    json base = config(std::string(R"({"train": {"steps": 100}, "optim": )") + optim + "}");
    base["optim"]["impl"] = "torch";
    json fused = base;
    fused["optim"]["impl"] = "fused";
    auto a = train_cfg(base), b = train_cfg(fused);
    EXPECT_NEAR(b.summary["train_loss"].get<double>(), a.summary["train_loss"].get<double>(),
                1e-4 * a.summary["train_loss"].get<double>())
        << optim;
    EXPECT_NEAR(b.summary["test_acc"].get<double>(), a.summary["test_acc"].get<double>(), 1.0 / 256)
        << optim;
  }
}

}  // namespace
}  // namespace empiric
