#include "core/config.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "core/errors.h"
#include "core/hash.h"
#include "core/schema.h"
#include "support/temp_dir.h"

namespace empiric {
namespace {

json base() {
  return json::parse(R"({
    "data": {"name": "blobs", "n_train": 64, "n_test": 32},
    "model": {"name": "mlp", "widths": [8]},
    "optim": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 2, "batch_size": 16},
    "seeds": 2,
    "sweep": {"optim.lr": [0.1, 0.01]},
    "presets": {"quick": {"train": {"epochs": 1}}, "full": {"train": {"epochs": 5}, "seeds": 3}}
  })");
}

// Runs the pipeline and returns the ConfigError's message ("" when it passes).
std::string error_of(json doc, const std::vector<std::string>& overrides = {},
                     const std::string& preset = "") {
  try {
    resolve_config_json(std::move(doc), "lab.json", preset, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const UserError& e) {
    return std::string("UserError: ") + e.what();
  }
  return "";
}

TEST(Config, FillsDefaultsAndCoercesNumbers) {
  auto r = resolve_config_json(base(), "lab.json", "", {});
  EXPECT_EQ(r.config["optim"]["momentum"], 0.0);
  EXPECT_TRUE(r.config["optim"]["momentum"].is_number_float());
  EXPECT_EQ(r.config["train"]["eval_batch_size"], 2000);
  EXPECT_EQ(r.config["seeds"], json::parse("[0, 1]"));
  EXPECT_FALSE(r.config.contains("presets"));
  // Keys of other variants are not filled in: an mlp has no "channels".
  EXPECT_FALSE(r.config["model"].contains("channels"));
}

TEST(Config, ARelativeDataPathIsTheFileItNamesFromWhereEmpiricRuns) {
  // Two folders' "tiny" made one trial (the path as written is in its identity): the second
  // folder's run took the first one's results. Made absolute, they are two trials; an absolute
  // path keeps its ".." (through a link it is not the lexical parent) but one folder spelt two
  // ways, "/data/x/" and "/data//x/.", is one trial.
  testing::TempDir dir;
  std::filesystem::create_directories(dir.file("a"));
  std::filesystem::create_directories(dir.file("b"));
  const std::string cfg = dir.write(
      "lab.json",
      R"({"data": {"name": "mnist", "path": "tiny/../tiny"}, "train": {"mask_file": "m.pt"}})");
  const auto here = std::filesystem::current_path();
  auto trial_in = [&](const std::string& folder) {
    std::filesystem::current_path(dir.file(folder));
    const auto t = expand_trials(resolve_config(cfg, "", {})).at(0);
    std::filesystem::current_path(here);
    return t;
  };
  const Trial a = trial_in("a"), b = trial_in("b");
  EXPECT_NE(a.hash, b.hash);
  const std::string in_a = std::filesystem::canonical(dir.file("a")).string();
  EXPECT_EQ(a.config["data"]["path"], in_a + "/tiny");
  EXPECT_EQ(a.config["train"]["mask_file"], in_a + "/m.pt");
  const std::string absolute =
      dir.write("abs.json", R"({"data": {"name": "mnist", "path": "/data/../mnist"}})");
  EXPECT_EQ(expand_trials(resolve_config(absolute, "", {})).at(0).config["data"]["path"],
            "/data/../mnist");
  for (const char* spelt : {"/data/x/", "/data//x/.", "/data/./x"})
    EXPECT_EQ(expand_trials(resolve_config(absolute, "", {std::string("data.path=") + spelt}))
                  .at(0)
                  .config["data"]["path"],
              "/data/x")
        << spelt;
}

TEST(Config, ARelativePathFromAFolderWhoseNameIsNotUtf8IsNamedNotAnInternalError) {
  testing::TempDir dir;
  const std::string odd = dir.file("u\xffx");
  std::filesystem::create_directories(odd);
  const std::string cfg = dir.write("lab.json", R"({"data": {"name": "mnist", "path": "."}})");
  const auto here = std::filesystem::current_path();
  std::filesystem::current_path(odd);
  std::string error;
  try {
    expand_trials(resolve_config(cfg, "", {}));
  } catch (const UserError& e) {
    error = e.what();
  } catch (const std::exception& e) {
    error = std::string("not a UserError: ") + e.what();
  }
  std::filesystem::current_path(here);
  EXPECT_EQ(error, cfg + ": /data/path = \".\": made absolute from the current folder it is \"" +
                       dir.path() + "/u\\xFFx\", not valid UTF-8; allowed: an absolute path, or " +
                       "run from a folder whose name is UTF-8");
}

TEST(Config, ANetworkOfMoreThanAThousandLayersIsRefused) {
  // 300,000 layers ran out of memory while torch freed the autograd graph, where nothing can
  // catch it: the process aborted.
  json doc = base();
  doc["model"] = {{"name", "mlp"}, {"widths", std::vector<int>(1000, 2)}};
  EXPECT_EQ(error_of(doc), "");
  doc["model"]["widths"].push_back(2);
  EXPECT_EQ(error_of(doc),
            "lab.json: /model/widths = \"a list of 1001 layers\": expected at most 1000 layers");
  doc["model"] = {{"name", "convnet"}, {"dense", std::vector<int>(1001, 2)}};
  EXPECT_NE(error_of(doc).find("/model/dense"), std::string::npos);
}

TEST(Config, TextThatIsNotUtf8IsRefusedBeforeAnythingRuns) {
  // An override (or a config's file name) in Latin-1: stored, it threw from nlohmann's dump after
  // the trial had trained.
  EXPECT_EQ(error_of(base(), {"description=caf\xe9"}),
            "UserError: override \"description=caf\\xE9\": not valid UTF-8; configs, their file "
            "names and overrides are UTF-8 text");
  EXPECT_NE(error_of(base(), {"data.path=/tmp/g\xe9"}).find("not valid UTF-8"), std::string::npos);
  EXPECT_EQ(error_of(base(), {"description=caf\xc3\xa9"}), "");  // UTF-8's é
  testing::TempDir dir;
  const std::string latin1 = dir.write("caf\xe9.json", base().dump());
  try {
    resolve_config(latin1, "", {});
    FAIL() << "accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("config file \"" + dir.path() +
                                         "/caf\\xE9.json\": not valid UTF-8"),
              std::string::npos)
        << e.what();
  }
}

TEST(Config, OverridesOfTheSweepOrIntoAMapSayHowToWriteThem) {
  // Both said "unknown key" and suggested the very key.
  EXPECT_EQ(error_of(base(), {"sweep={}"}),
            "override \"sweep={}\": /sweep = {}: the sweep is set an axis at a time; allowed: "
            "sweep.KEY=[values], e.g. sweep.optim.lr=[0.1,0.01]");
  EXPECT_EQ(error_of(base(), {"optim.lr_mult.body=2"}),
            "override \"optim.lr_mult.body=2\": /optim/lr_mult/body = 2: optim.lr_mult is set "
            "whole; allowed: optim.lr_mult={\"body\": 2}");
  EXPECT_EQ(error_of(base(), {R"(optim.lr_mult={"body": 2})"}), "");
  // A key below one that holds a value suggested that very key.
  EXPECT_EQ(error_of(base(), {"train.epochs.x=1"}),
            "override \"train.epochs.x=1\": /train/epochs/x = 1: train.epochs holds an integer "
            ">= 0 (0 only with steps > 0, or in lab lr_range), not keys of its own; allowed: "
            "train.epochs=VALUE");
  // A number beyond a double's range was checked as the string "1e400".
  EXPECT_EQ(
      error_of(base(), {"optim.lr=1e400"}),
      "override \"optim.lr=1e400\": /optim/lr: 1e400 is beyond a double's range (about 1.8e308); "
      "allowed: a finite number");
  // Numbers JSON does not write so were refused as "expected a number > 0", and one that
  // rounds to 0 was taken as 0.
  EXPECT_EQ(error_of(base(), {"optim.lr=.5"}),
            "override \"optim.lr=.5\": /optim/lr: .5 is not a number as JSON writes it; allowed: "
            "0.5 (or another number written as JSON does)");
  EXPECT_NE(error_of(base(), {"optim.lr=+0.5"}).find("allowed: 0.5 "), std::string::npos);
  EXPECT_NE(error_of(base(), {"train.epochs=5."}).find("allowed: 5.0 "), std::string::npos);
  EXPECT_EQ(error_of(base(), {"optim.lr=1e-400"}),
            "override \"optim.lr=1e-400\": /optim/lr: 1e-400 rounds to 0 in a double (the "
            "smallest is about 4.9e-324); allowed: 0 itself, or a number a double holds");
  EXPECT_EQ(error_of(base(), {"optim.weight_decay=1e-300"}), "");
  EXPECT_EQ(error_of(base(), {"description=.5"}), "");  // (a string: as written)
}

TEST(Config, CalibrationOfOutputsTrainedAsOneHotTargetsIsRefused) {
  EXPECT_NE(error_of(base(), {"train.loss=mse_logits", "measure.calibration=true"})
                .find("/measure/calibration = true: train.loss mse_logits trains the outputs "
                      "themselves toward one-hot targets"),
            std::string::npos);
  EXPECT_EQ(error_of(base(), {"train.loss=mse_softmax", "measure.calibration=true"}), "");
}

TEST(Config, TheLabIsNoSweepAxis) {
  // An implicit-lab trial of a sweep over lab read none of the training sections it was given.
  EXPECT_EQ(
      error_of(base(), {R"(sweep.lab=["train","implicit"])"}),
      "override \"sweep.lab=[\"train\",\"implicit\"]\": /sweep/lab = [\"train\",\"implicit\"]: "
      "the lab is not a sweep axis; allowed: one config per lab");
}

TEST(Config, TheQuestionIsNoSweepAxisAndAPresetHoldsNoPresets) {
  // Trials are stored under their config's question: an axis over it filed all under one.
  EXPECT_NE(error_of(base(), {"sweep.question=[1,2]"})
                .find("/sweep/question = [1,2]: the question is not a sweep axis"),
            std::string::npos);
  // A preset inside a preset would have been merged into every trial's config (and hash).
  json doc = base();
  doc["presets"] = {{"quick", {{"presets", {{"x", {{"seeds", 1}}}}}}}};
  EXPECT_NE(error_of(doc).find("/presets/quick/presets"), std::string::npos) << error_of(doc);
}

TEST(Config, AWarmupIsInStepsOrInEpochsNotBoth) {
  EXPECT_EQ(error_of(base(), {"schedule.warmup_steps=100"}), "");
  EXPECT_NE(error_of(base(), {"schedule.warmup_steps=100", "schedule.warmup_epochs=1"})
                .find("/schedule/warmup_steps = 100: a warmup in steps or in epochs, not both"),
            std::string::npos);
}

TEST(Config, UnknownKeyNamesPointerAndSuggests) {
  json doc = base();
  doc["optim"]["lrr"] = 0.1;
  std::string msg = error_of(doc);
  EXPECT_NE(msg.find("lab.json: /optim/lrr"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean \"lr\""), std::string::npos) << msg;
}

TEST(Config, UnknownSectionSuggests) {
  json doc = base();
  doc["optimizer"] = json::object();
  std::string msg = error_of(doc);
  EXPECT_NE(msg.find("/optimizer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean \"optim\""), std::string::npos) << msg;
}

TEST(Config, ATopLevelSeedIsRejectedForSeeds) {
  json doc = base();
  doc["seed"] = 7;
  EXPECT_EQ(error_of(doc), "lab.json: /seed = 7: trials take their seeds from \"seeds\": a count "
                           "(seeds 0..n-1) or a list, e.g. \"seeds\": [7]");
  EXPECT_NE(error_of(base(), {"seed=3"}).find("/seed = 3"), std::string::npos);
  doc.erase("seed");
  doc["seeds"] = json::array({7});
  EXPECT_EQ(expand_trials(resolve_config_json(doc, "lab.json", "", {})).at(0).seed, 7);
}

TEST(Config, SweepsWithRepeatedValuesOrOverlappingAxesAreRefused) {
  json doc = base();
  doc["sweep"] = {{"optim.lr", {0.1, 0.01, 0.1}}};
  EXPECT_EQ(error_of(doc),
            "lab.json: /sweep/optim.lr/2 = 0.1: expected values that differ: it "
            "repeats item 0");
  doc["sweep"] = {{"optim", {{{"name", "adam"}, {"lr", 0.001}}}}, {"optim.lr", {0.1, 0.01}}};
  EXPECT_NE(error_of(doc).find("/sweep/optim.lr"), std::string::npos) << error_of(doc);
  EXPECT_NE(error_of(doc).find("the axis \"optim\" sets optim.lr too (item 0)"), std::string::npos)
      << error_of(doc);
  // A section axis and an axis of another of its keys vary together, as Q35's optimizers and LRs.
  doc["sweep"] = {{"optim", {{{"name", "adam"}}, {{"name", "sgd"}}}}, {"optim.lr", {0.1, 0.01}}};
  EXPECT_EQ(error_of(doc), "");
}

TEST(Config, EarlyStoppingWithoutAValidationSplitIsRefused) {
  json doc = base();
  doc["train"] = {{"early_stop_patience", 2}};
  EXPECT_NE(error_of(doc).find("/train/early_stop_patience = 2: needs data.validation > 0"),
            std::string::npos)
      << error_of(doc);
  doc["data"]["validation"] = 50;
  EXPECT_EQ(error_of(doc), "");
}

// Found by review: each of these crashed ('internal error'), or was taken without a word.
TEST(Config, MalformedShapesAndMeaninglessValuesAreNamed) {
  auto with = [](const char* patch) {
    json doc = base();
    doc.merge_patch(json::parse(patch));
    return doc;
  };
  const std::vector<std::tuple<json, std::vector<std::string>, std::string, std::string>> cases = {
      // A section or the sweep that is not an object, under an override or a preset.
      {with(R"({"optim": 5})"), {"optim.lr=0.1"}, "", "lab.json: /optim = 5: expected an object"},
      {with(R"({"sweep": [1]})"),
       {"sweep.optim.lr=[0.1]"},
       "",
       "lab.json: /sweep = [1]: expected an object"},
      {with(R"({"presets": {"quick": 5}})"),
       {"optim.lr=0.2"},
       "quick",
       "lab.json: /presets/quick = 5: expected an object"},
      {with(R"({"presets": {"quick": {"train": 5}}})"),
       {},
       "quick",
       "lab.json: /presets/quick/train = 5: expected an object"},
      // Left out sections still have their defaults, which the cross-checks see.
      {json::parse(R"({"train": {"early_stop_patience": 3}})"),
       {},
       "",
       "lab.json: /train/early_stop_patience = 3: needs data.validation"},
      {json::parse(R"({"lab": "lr_range", "range": {"end_lr": 1e-7}})"),
       {},
       "",
       "lab.json: /range/end_lr = 1e-07: expected a number above /range/start_lr"},
      // An override the sweep would replace in every trial.
      {base(),
       {"optim.lr=0.3"},
       "",
       "override \"optim.lr=0.3\": /optim/lr = 0.3: the sweep sets this key (sweep.optim.lr), "
       "which "
       "would replace it; to run one value, override the sweep: sweep.optim.lr=[0.3]"},
      {with(R"({"sweep": {"optim": [{"lr": 0.1}, {"momentum": 0.5}]}})"),
       {"optim.lr=0.3"},
       "",
       "override \"optim.lr=0.3\": /optim/lr = 0.3: the sweep's section axis sweep.optim sets this "
       "key in some of its values"},
      // A misspelt lab is named as such, not through its section.
      {json::parse(R"({"lab": "lr-range", "range": {}})"),
       {},
       "",
       "lab.json: /lab = \"lr-range\": expected one of"},
      // A preset the config does not have, when it has none.
      {[] {
         json d = base();
         d.erase("presets");
         return d;
       }(),
       {},
       "quick",
       "lab.json: /presets = \"quick\": no such preset; this config has none"},
      // Values that wrapped or overflowed.
      {with(R"({"seeds": [0, 4294967296]})"),
       {},
       "",
       "lab.json: /seeds = [0,4294967296]: expected"},
      {base(),
       {"optim.grad_noise=1e308"},
       "",
       "override \"optim.grad_noise=1e308\": /optim/grad_noise = 1e+308: expected a number >= 0, "
       "within a float's range"},
      {with(R"({"schedule": {"name": "multistep", "milestones": [3, 1]}})"),
       {},
       "",
       "lab.json: /schedule/milestones/1 = 1.0: expected milestones in non-decreasing order"},
      {base(),
       {"optim.lr=1e-13"},
       "",
       "override \"optim.lr=1e-13\": /optim/lr = 1e-13: expected a number of at least 1e-12"},
      // Another lab's section (read by nothing, yet part of the trial's hash); a whole section.
      {with(R"({"range": {"steps": 5}})"),
       {},
       "",
       "lab.json: /range: this section applies only when /lab is \"lr_range\" (it is \"train\")"},
      // Measures whose meaning the model or a mask would change.
      // Dead units are counted after a ReLU-family activation (null was stored without a word).
      {with(R"({"model": {"activation": "gelu"}, "measure": {"dead_units": true}})"),
       {},
       "",
       "lab.json: /measure/dead_units = true: dead units are counted after a ReLU-family "
       "activation, and this model's is gelu; allowed: false, or activation relu, leaky_relu or "
       "prelu"},
      {with(R"({"model": {"name": "linear", "widths": null}, "measure": {"dead_units": true}})"),
       {},
       "",
       "lab.json: /measure/dead_units = true: model linear has no hidden units to count"},
      {with(R"({"model": {"activation": "tanh"}, "measure": {"dinh_alpha": 10}})"),
       {},
       "",
       "lab.json: /measure/dinh_alpha = 10.0: the rescaled network is another function with "
       "activation tanh"},
      // (Refused before training: the measure would end the trial unrecorded after it.)
      {with(R"({"model": {"name": "linear", "widths": null}, "measure": {"dinh_alpha": 10}})"),
       {},
       "",
       "lab.json: /measure/dinh_alpha = 10.0: it rescales the first two weight layers, and model "
       "linear has 1; allowed: 0, or a model with a hidden layer"},
      {with(R"({"model": {"name": "mlp", "widths": []}, "measure": {"dinh_alpha": 10}})"),
       {},
       "",
       "lab.json: /measure/dinh_alpha = 10.0: it rescales the first two weight layers, and model "
       "mlp with no hidden widths has 1"},
      {with(R"({"model": {"batch_norm": true}, "measure": {"interpolate_batch": 512}})"),
       {},
       "",
       "lab.json: /measure/interpolate_batch = 512: with model.batch_norm"},
      {with(R"({"model": {"batch_norm": true}, "measure": {"grad_flow_init": true}})"),
       {},
       "",
       "lab.json: /measure/grad_flow_init = true: with model.batch_norm"},
      {with(R"({"model": {"batch_norm": true}, "measure": {"hessian_init": true}})"),
       {},
       "",
       "lab.json: /measure/hessian_init = true: with model.batch_norm"},
      {with(
           R"({"data": {"name": "teacher"}, "model": {"name": "mlp"}, "measure": {"calibration": true}})"),
       {},
       "",
       "lab.json: /measure/calibration = true: data.teacher is a regression task"},
      {with(R"({"data": {"name": "linear"}, "measure": {"auc": true}})"),
       {},
       "",
       "lab.json: /measure/auc = true: data.linear is a regression task"},
      {with(R"({"data": {"name": "linear"}, "measure": {"per_class": true}})"),
       {},
       "",
       "lab.json: /measure/per_class = true: data.linear is a regression task"},
      {with(
           R"({"data": {"name": "linear"}, "model": {"name": "mlp", "dropout": 0.5}, "measure": {"dropout_test": true}})"),
       {},
       "",
       "lab.json: /measure/dropout_test = true: data.linear is a regression task"},
      {with(
           R"({"data": {"name": "teacher"}, "model": {"name": "mlp"}, "train": {"loss": "mse_softmax"}})"),
       {},
       "",
       "lab.json: /train/loss = \"mse_softmax\": data.teacher is a regression task, with no "
       "classes; allowed: auto"},
      {with(R"({"data": {"name": "linear"}, "train": {"class_weights": "balanced"}})"),
       {},
       "",
       "lab.json: /train/class_weights = \"balanced\": data.linear is a regression task, with no "
       "classes; allowed: none"},
      {with(R"({"data": {"name": "linear"}, "train": {"order": "by_class"}})"),
       {},
       "",
       "lab.json: /train/order = \"by_class\": data.linear is a regression task, with no classes; "
       "allowed: reshuffle or fixed"},
      // Label noise on a regression task: refused before a sweep runs (it stopped one halfway).
      {with(R"({"data": {"name": "linear", "label_noise": 0.1}})"),
       {},
       "",
       "lab.json: /data/label_noise = 0.1: data.linear is a regression task, with no classes; "
       "allowed: 0"},
      {with(R"({"data": {"name": "teacher", "imbalance": 0.5}, "model": {"name": "mlp"}})"),
       {},
       "",
       "lab.json: /data/imbalance = 0.5: data.teacher is a regression task, with no classes; "
       "allowed: 1"},
      // A validation split that takes every training example the config gives.
      {with(R"({"data": {"n_train": 1000, "train_subset": 300, "validation": 300}})"),
       {},
       "",
       "lab.json: /data/validation = 300: expected fewer than the 300 training examples "
       "(data.train_subset)"},
      {with(
           R"({"data": {"name": "blobs", "n_train": 100, "validation": 200}, "model": {"name": "mlp"}})"),
       {},
       "",
       "lab.json: /data/validation = 200: expected fewer than the 100 training examples "
       "(data.n_train)"},
      {with(
           R"({"data": {"name": "teacher"}, "model": {"name": "mlp"}, "measure": {"noisy_test_labels": 0.2}})"),
       {},
       "",
       "lab.json: /measure/noisy_test_labels = 0.2: data.teacher is a regression task, with no "
       "classes; allowed: 0"},
      {with(R"({"model": {"name": "mlp", "dropout": 0.0}, "measure": {"dropout_test": true}})"),
       {},
       "",
       "lab.json: /measure/dropout_test = true: the model has no dropout to leave on"},
      {with(
           R"({"model": {"name": "mlp", "widths": [], "dropout": 0.5}, "measure": {"dropout_test": true}})"),
       {},
       "",
       "lab.json: /measure/dropout_test = true: the model has no dropout to leave on (model mlp, "
       "dropout 0.5)"},
      {with(
           R"({"data": {"name": "xor"}, "model": {"name": "mlp"}, "measure": {"noisy_test_labels": 0.5}})"),
       {},
       "",
       "lab.json: /measure/noisy_test_labels = 0.5: with 2 classes the correction needs a rate "
       "below (K - 1) / K = 0.50"},
      {with(R"({"lab": "lr_range", "range": {}, "train": {"order": "by_class", "epochs": null}})"),
       {},
       "",
       "lab.json: /train/order = \"by_class\": the lr_range lab takes each batch from a fresh "
       "permutation"},
      {with(R"({"train": {"loss": "hinge"}})"),
       {},
       "",
       "lab.json: /train/loss = \"hinge\": expected one of: auto, cross_entropy, mse_softmax, "
       "mse_logits, cross_entropy_on_softmax"},
      {with(R"({"train": {"mask_file": "round_3.pt"}, "measure": {"sparsity": true}})"),
       {},
       "",
       "lab.json: /measure/sparsity = true: with pruning masks"},
      {with(R"({"train": {"mask_file": "round_3.pt"}, "measure": {"hessian_top": true}})"),
       {},
       "",
       "lab.json: /measure/hessian_top = true: with pruning masks"},
      // A tree has no weights, training loss or masks, and trains in the train lab only.
      {with(R"({"model": {"name": "tree", "widths": null}, "measure": {"calibration": true}})"),
       {},
       "",
       "lab.json: /measure/calibration = true: model tree has no weights, gradients or dropout "
       "to measure; allowed: false"},
      {with(R"({"model": {"name": "tree", "widths": null}, "train": {"loss": "mse_softmax"}})"),
       {},
       "",
       "lab.json: /train/loss = \"mse_softmax\": model tree is grown once by Gini impurity"},
      {with(R"({"model": {"name": "tree", "widths": null}, "train": {"target_test_acc": 0.8}})"),
       {},
       "",
       "lab.json: /train/target_test_acc = 0.8: model tree is grown once by Gini impurity"},
      {with(R"({"lab": "lottery", "lottery": {}, "model": {"name": "tree", "widths": null}})"),
       {},
       "",
       "lab.json: /model/name = \"tree\": the lottery lab trains networks"},
      // Read by nothing in a lottery round, it kept the round's members from a population.
      {with(R"({"lab": "lottery", "lottery": {}, "measure": {"interpolate_batch": 100}})"),
       {},
       "",
       "lab.json: /measure/interpolate_batch = 100: the lottery lab trains no partner network "
       "for the interpolation line; allowed: 0"},
      {with(R"({"data": {"name": "teacher"}, "model": {"name": "tree", "widths": null}})"),
       {},
       "",
       "lab.json: /model/name = \"tree\": a tree here classifies and data.teacher is a "
       "regression task"},
      {with(R"({"model": {"name": "tree", "widths": null, "init_scale": 2.0}})"),
       {},
       "",
       "lab.json: /model/init_scale = 2.0: this key applies only when /model/name is one of: mlp, "
       "lenet_300_100, convnet, linear"},
      {with(R"({"model": {"name": "tree", "widths": null, "bins": 300}})"),
       {},
       "",
       "lab.json: /model/bins = 300: expected"},
      {with(R"({"data": {"feature_scale": 7}})"),
       {},
       "",
       "lab.json: /data/feature_scale = 7: expected"},
      {with(R"({"schedule": {"name": "onecycle", "warmup_epochs": 1}})"),
       {},
       "",
       "lab.json: /schedule/warmup_epochs = 1.0: onecycle warms up by itself"},
      {with(R"({"schedule": {"name": "onecycle", "warmup_steps": 100}})"),
       {},
       "",
       "lab.json: /schedule/warmup_steps = 100: onecycle warms up by itself"},
      // The range test reads from /train only how a step is taken: no length, no measures.
      {with(R"({"lab": "lr_range", "range": {}, "train": {"epochs": 5}})"),
       {},
       "",
       "lab.json: /train/epochs = 5: the lr_range lab runs /range/steps steps at a rising LR and "
       "reads from /train only batch_size, loss, class_weights, order, tf32 and threads (no "
       "schedule, no measures); this key would do nothing"},
      {with(R"({"lab": "lr_range", "range": {}, "measure": {"hessian_top": true}})"),
       {},
       "",
       "lab.json: /measure: the lr_range lab runs"},
      {with(
           R"({"lab": "lr_range", "range": {}, "train": {"epochs": null}, "sweep": {"schedule.name": ["constant", "cosine"]}})"),
       {},
       "",
       "lab.json: /sweep/schedule.name: the lr_range lab runs"},
      // The implicit lab reads only its own section: a training section, or an axis over one.
      {json::parse(R"({"lab": "implicit", "implicit": {}, "optim": {"lr": 0.5}})"),
       {},
       "",
       "lab.json: /optim: the implicit lab reads only /implicit and /seeds (and from /train "
       "only how its runs run: device, threads); this section would do nothing"},
      {json::parse(R"({"lab": "implicit", "sweep": {"data.n_train": [8, 16]}})"),
       {},
       "",
       "lab.json: /sweep/data.n_train: the implicit lab reads only /implicit and /seeds (and "
       "from /train only how its runs run: device, threads); this axis would do nothing"},
      // Nor how long to train: a training key was read by nothing (and printed by `config`).
      {json::parse(R"({"lab": "implicit", "implicit": {}, "train": {"epochs": 3}})"),
       {},
       "",
       "lab.json: /train/epochs = 3: the implicit lab reads only /implicit and /seeds"},
      // Put there by an override: the override is named, not the file that has no such key.
      {with(R"({"lab": "lr_range", "range": {}, "train": {"epochs": null}})"),
       {"train.epochs=3"},
       "",
       "override \"train.epochs=3\": /train/epochs = 3: the lr_range lab runs"},
      {with(R"({"lab": "lr_range", "range": {}, "train": {"epochs": null}})"),
       {"measure.hessian_top=true"},
       "",
       "override \"measure.hessian_top=true\": /measure: the lr_range lab runs"},
      {with(R"({"lab": "lr_range", "range": {}, "train": {"epochs": null}})"),
       {"sweep.schedule.name=[\"constant\",\"cosine\"]"},
       "",
       "override \"sweep.schedule.name=[\"constant\",\"cosine\"]\": /sweep/schedule.name: the "
       "lr_range lab runs"},
      {base(),
       {"range.steps=100"},
       "",
       "override \"range.steps=100\": /range: this section applies only when /lab is "
       "\"lr_range\""},
      // (A section the file has is the file's, whatever an override adds to it.)
      {with(R"({"range": {"steps": 5}})"),
       {"range.steps=100"},
       "",
       "lab.json: /range: this section applies only when /lab is \"lr_range\""},
      // Another lab's section is named as such, not as a section the range test ignores.
      {with(R"({"lab": "lr_range", "range": {}, "train": {"epochs": null}, "lottery": {}})"),
       {},
       "",
       "lab.json: /lottery: this section applies only when /lab is \"lottery\" (it is "
       "\"lr_range\")"},
      {json::parse(R"({"lab": "implicit", "implicit": {"problem": "separable", "margin": 5}})"),
       {},
       "",
       "lab.json: /implicit/margin = 5: expected"},
      {base(),
       {"optim={}"},
       "",
       "override \"optim={}\": /optim = {}: a section; override its keys one by one"},
  };
  for (const auto& [doc, overrides, preset, want] : cases) {
    const std::string got = error_of(doc, overrides, preset);
    EXPECT_EQ(got.rfind(want, 0), 0u) << "want: " << want << "\ngot:  " << got;
  }
}

TEST(Config, ARepeatedMilestoneIsAllowedAsInTorch) {
  json doc = base();
  doc["schedule"] = {{"name", "multistep"}, {"milestones", {3, 3}}};
  EXPECT_EQ(error_of(doc), "");
}

TEST(Config, SweepValuesThatMakeTheSameTrialAreRefused) {
  // train.device is not part of what a trial computes: two values, one trial trained twice.
  for (const char* axis : {R"({"train.device": ["cpu", "auto"]})",
                           R"({"optim": [{"lr": 0.1}, {"lr": 0.1, "name": "sgd"}]})"}) {
    json doc = base();
    doc["sweep"] = json::parse(axis);
    try {
      expand_trials(resolve_config_json(doc, "lab.json", "", {}));
      ADD_FAILURE() << axis;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("lab.json: /sweep: the sweep values"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("make the same trial"), std::string::npos) << e.what();
    }
  }
}

TEST(Config, AnEpsSharpnessAscentThatCouldNeverConvergeIsRefused) {
  // It stops once its rise held still over 10 steps: with 10 or fewer every value was marked
  // unconverged and left out of claims.
  EXPECT_EQ(error_of(base(), {"measure.eps_sharpness=true", "measure.eps_steps=8"})
                .rfind("override \"measure.eps_steps=8\": /measure/eps_steps = 8: expected more "
                       "than 10",
                       0),
            0u)
      << error_of(base(), {"measure.eps_sharpness=true", "measure.eps_steps=8"});
  EXPECT_EQ(
      error_of(base(), {"measure.eps_sharpness=true", "measure.eps_steps=8", "measure.eps_tol=0"}),
      "");  // exactly 8 steps, asked for
  EXPECT_EQ(error_of(base(), {"measure.eps_sharpness=true", "measure.eps_steps=11"}), "");
  // Where eps_tol came from elsewhere than eps_steps, its value is in the message.
  EXPECT_NE(error_of(base(),
                     {"measure.eps_sharpness=true", "measure.eps_steps=8", "measure.eps_tol=0.01"})
                .find("(/measure/eps_tol is 0.01)"),
            std::string::npos);
  EXPECT_EQ(error_of(base(), {"measure.eps_steps=8"}), "");  // (the measure is off)
}

TEST(Config, NoEpochsAndNoStepsIsRefused) {
  json doc = base();
  doc["train"] = {{"epochs", 0}};
  EXPECT_EQ(error_of(doc),
            "lab.json: /train/epochs = 0: expected at least 1 epoch, or train.steps > 0");
  doc["train"]["steps"] = 100;
  EXPECT_EQ(error_of(doc), "");
}

TEST(Config, NesterovWithoutMomentumIsRefused) {
  json doc = base();
  doc["optim"] = {{"name", "sgd"}, {"nesterov", true}};
  EXPECT_EQ(error_of(doc),
            "lab.json: /optim/nesterov = true: nesterov needs optim.momentum > 0 "
            "(here 0.0)");
  doc["optim"]["momentum"] = 0.9;
  EXPECT_EQ(error_of(doc), "");
  // A swept momentum of 0 is refused for its own trial, named by the sweep.
  doc["sweep"] = {{"optim.momentum", {0.9, 0.0}}};
  EXPECT_THROW(expand_trials(resolve_config_json(doc, "lab.json", "", {})), ConfigError);
}

TEST(Config, WrongTypeNamesValueAndAllowed) {
  json doc = base();
  doc["train"]["batch_size"] = "big";
  EXPECT_EQ(error_of(doc), "lab.json: /train/batch_size = \"big\": expected an integer >= 1");
}

TEST(Config, OutOfRangeNamesBounds) {
  json doc = base();
  doc["data"]["label_noise"] = 1.5;
  EXPECT_EQ(error_of(doc), "lab.json: /data/label_noise = 1.5: expected a number in [0, 1]");
}

TEST(Config, IntegersTooLargeToConvertAreRefusedAsWritten) {
  // 2^63 wrapped to -2^63 when converted: a validation split of 2^63 trained with none at all.
  json doc = base();
  doc["data"]["validation"] = json::parse("9223372036854775808");
  EXPECT_EQ(
      error_of(doc),
      "lab.json: /data/validation = 9223372036854775808: expected an integer >= 0, below 9e15");
  doc = base();
  doc["model"]["widths"] = json::parse("[8, 18446744073709551615]");
  EXPECT_EQ(error_of(doc).rfind("lab.json: /model/widths/1 = 18446744073709551615: expected", 0),
            0u)
      << error_of(doc);
  doc = base();
  doc["seeds"] = json::parse("[1, 9223372036854775807]");
  EXPECT_EQ(error_of(doc).rfind("lab.json: /seeds = [1,9223372036854775807]: expected", 0), 0u)
      << error_of(doc);
  doc = base();
  doc["data"] = {{"name", "fashion_mnist"}};  // (no count of training examples in the config)
  doc["model"] = {{"name", "lenet_300_100"}};
  doc["data"]["validation"] = 9e15 - 1;  // the largest allowed
  EXPECT_EQ(error_of(doc), "");
}

TEST(Config, BadChoiceListsChoices) {
  json doc = base();
  doc["optim"]["name"] = "adagrad";
  EXPECT_EQ(error_of(doc),
            "lab.json: /optim/name = \"adagrad\": expected one of: sgd, adam, adamw, rmsprop");
}

TEST(Config, ListItemErrorPointsIntoTheList) {
  json doc = base();
  doc["model"]["widths"] = json::parse("[8, -3]");
  EXPECT_EQ(error_of(doc), "lab.json: /model/widths/1 = -3: expected a list of integers >= 1");
}

TEST(Config, KeyOfAnotherVariantIsRejected) {
  json doc = base();
  doc["optim"]["betas"] = json::parse("[0.9, 0.99]");  // Adam's, but this is SGD
  std::string msg = error_of(doc);
  EXPECT_NE(msg.find("/optim/betas"), std::string::npos) << msg;
  EXPECT_NE(msg.find("applies only when /optim/name is one of: adam, adamw"), std::string::npos)
      << msg;
}

TEST(Config, SweepAxisMustBeAKnownKeyWithValidValues) {
  json doc = base();
  doc["sweep"] = json::parse(R"({"optim.lr": [0.1, -1]})");
  EXPECT_EQ(error_of(doc), "lab.json: /sweep/optim.lr/1 = -1: expected a number > 0");
  doc["sweep"] = json::parse(R"({"optim.learning_rate": [0.1]})");
  EXPECT_NE(error_of(doc).find("/sweep/optim.learning_rate"), std::string::npos);
  // An override of an unknown section names the section; a sweep axis's, the axis (not /nope,
  // which the file does not have).
  EXPECT_EQ(error_of(base(), {"nope.lr=1"}).rfind("override \"nope.lr=1\": /nope: unknown key", 0),
            0u)
      << error_of(base(), {"nope.lr=1"});
  doc["sweep"] = json::parse(R"({"nope.lr": [0.1]})");
  EXPECT_EQ(error_of(doc).rfind("lab.json: /sweep/nope.lr: unknown key; allowed: data, model", 0),
            0u)
      << error_of(doc);
}

TEST(Config, ASectionAxisMergesEachPartialSectionOverTheBase) {
  json doc = base();
  doc["schedule"] = json::parse(R"({"name": "constant", "scale_rule": "linear"})");
  doc["seeds"] = 1;
  doc["sweep"] = json::parse(
      R"({"schedule": [{"name": "constant"}, {"name": "cosine", "warmup_epochs": 2}]})");
  auto trials = expand_trials(resolve_config_json(doc, "lab.json", "", {}));
  ASSERT_EQ(trials.size(), 2u);
  EXPECT_EQ(trials[0].config["schedule"]["name"], "constant");
  EXPECT_EQ(trials[1].config["schedule"]["name"], "cosine");
  EXPECT_EQ(trials[1].config["schedule"]["warmup_epochs"], 2);
  EXPECT_EQ(trials[1].config["schedule"]["scale_rule"], "linear");  // kept from the base
  EXPECT_EQ(trials[1].config["schedule"]["min_lr_frac"], 0.0);      // the variant's default
  EXPECT_NE(trials[0].hash, trials[1].hash);

  doc["sweep"] = json::parse(R"({"schedule": [{"name": "cosine", "warmup": 2}]})");
  EXPECT_NE(error_of(doc).find("/sweep/schedule/0/warmup"), std::string::npos) << error_of(doc);
  doc["sweep"] = json::parse(R"({"schedule": ["cosine"]})");
  EXPECT_EQ(error_of(doc),
            "lab.json: /sweep/schedule/0 = \"cosine\": expected an object with keys of section "
            "schedule");
  // A merged section that breaks a variant rule is named with the trial's sweep values.
  doc["optim"] = json::parse(R"({"name": "sgd", "momentum": 0.9})");
  doc["sweep"] = json::parse(R"({"optim": [{"name": "adam"}]})");
  std::string msg;
  try {
    expand_trials(resolve_config_json(doc, "lab.json", "", {}));
  } catch (const ConfigError& e) {
    msg = e.what();
  }
  EXPECT_EQ(msg,
            "lab.json (sweep optim={\"name\":\"adam\"}): /optim/momentum = 0.9: this key applies "
            "only when /optim/name is one of: sgd, rmsprop (it is \"adam\"); remove it (on the "
            "command line: optim.momentum=null)");
}

TEST(Config, RangeTestNeedsEndAboveStart) {
  json doc = base();
  doc["lab"] = "lr_range";
  doc["train"].erase("epochs");  // (the range test takes its own length)
  doc["presets"].erase("quick");
  doc["presets"].erase("full");
  doc["range"] = json::parse(R"({"start_lr": 1.0, "end_lr": 0.1})");
  EXPECT_EQ(error_of(doc),
            "lab.json: /range/end_lr = 0.1: expected a number above /range/start_lr (1.0)");
}

TEST(Config, InterpolationRangeMustRunForward) {
  json doc = base();
  doc["measure"] = json::parse(R"({"interpolate_batch": 512, "interpolate_range": [1.5, -0.5]})");
  EXPECT_EQ(error_of(doc),
            "lab.json: /measure/interpolate_range = [1.5,-0.5]: expected two numbers [t_lo, t_hi] "
            "with t_lo < t_hi (0 is this solution, 1 the partner)");
}

TEST(Config, HeldOutStepEvaluationsRefuseTrainingTargets) {
  json doc = base();
  doc["train"]["eval_sets"] = "held_out";
  EXPECT_EQ(error_of(doc), "");
  doc["train"]["target_train_acc"] = 0.9;
  EXPECT_EQ(error_of(doc),
            "lab.json: /train/eval_sets = \"held_out\": expected \"all\": "
            "/train/target_train_acc reads the training set's metrics at every evaluation, and "
            "\"held_out\" takes them at the last only");
  doc["train"]["target_train_acc"] = 0.0;
  EXPECT_NE(error_of(doc, {"train.stop_train_loss=0.1"}).find("/train/stop_train_loss"),
            std::string::npos);
}

TEST(Config, OverrideIsTypeCheckedAndNamed) {
  std::string msg = error_of(base(), {"optim.lr=fast"});
  EXPECT_EQ(msg, "override \"optim.lr=fast\": /optim/lr = \"fast\": expected a number > 0");
  msg = error_of(base(), {"train.epoch=3"});
  EXPECT_NE(msg.find("override \"train.epoch=3\": /train/epoch"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean \"epochs\""), std::string::npos) << msg;
  EXPECT_NE(error_of(base(), {"no_equals_sign"}).find("expected key.path=value"),
            std::string::npos);
  // A key given twice: a slip to name, as a duplicate key in a file is (the last won).
  EXPECT_EQ(error_of(base(), {"seeds=3", "optim.lr=0.1", "seeds=5"}),
            "override \"seeds=5\": /seeds: given again (\"seeds=3\" before it); keep one");
  EXPECT_EQ(error_of(base(), {"sweep.optim.lr=[1]", "sweep.optim.lr=[2]"}),
            "override \"sweep.optim.lr=[2]\": /sweep/optim.lr: given again "
            "(\"sweep.optim.lr=[1]\" before it); keep one");
  EXPECT_EQ(error_of(base(), {"optim.lr=0.1", "sweep.optim.lr=[0.2]"}).find("given again"),
            std::string::npos);
  // A list of bare words is not JSON: said so, with the quoting (it read "expected a non-empty
  // list of values" of what looked like one).
  EXPECT_EQ(error_of(base(), {"sweep.optim.name=[sgd,adam]"}),
            "UserError: override \"sweep.optim.name=[sgd,adam]\": [sgd,adam] is not JSON; a list "
            "or an object is written as JSON, its strings in double quotes (in a shell, the whole "
            "override inside single quotes: 'sweep.optim.name=[\"a\",\"b\"]')");
  EXPECT_NE(error_of(base(), {"model.widths=[a,b]"}).find("[a,b] is not JSON"), std::string::npos);
  // Nor is a number beyond a double's range "not JSON", nor one below it 0.
  EXPECT_EQ(error_of(base(), {"model.widths=[8,1e400]"}),
            "UserError: override \"model.widths=[8,1e400]\": /model/widths/1 = 1e400: beyond a "
            "double's range; allowed: a magnitude below 1.8e308");
  EXPECT_NE(error_of(base(), {"sweep.optim.weight_decay=[0,1e-400]"})
                .find("override \"sweep.optim.weight_decay=[0,1e-400]\": "
                      "/sweep/optim.weight_decay/1 = 1e-400: below a double's range"),
            std::string::npos);
  // A string key keeps such text as it is.
  EXPECT_EQ(error_of(base(), {"description=[draft] fewer seeds"}), "");
  EXPECT_EQ(error_of(base(), {"sweep.optim.name=[\"sgd\",\"adam\"]"}), "");
  {  // A key axis beside a section axis one of whose values does not take it: said so, not
     // "remove it (model.activation=null)", which only led to another refusal.
    json crossed = base();
    crossed["sweep"] = json::parse(
        R"({"model": [{"name": "linear"}, {"name": "mlp", "widths": [8]}],
            "model.activation": ["tanh"]})");
    std::string why;
    try {
      expand_trials(resolve_config_json(crossed, "lab.json", "", {}));
    } catch (const ConfigError& e) {
      why = e.what();
    }
    EXPECT_NE(why.find("the axis sweep.model.activation crosses every value of sweep.model, and "
                       "this one does not take it"),
              std::string::npos)
        << why;
    EXPECT_EQ(why.find("remove it"), std::string::npos) << why;
  }
  // Presets are chosen, not overridden ("unknown key (did you mean \"presets\"?)" of presets).
  EXPECT_EQ(error_of(base(), {"presets=null"}),
            "UserError: override \"presets=null\": a preset is chosen, not overridden; allowed: "
            "--preset NAME, then overrides of the keys it sets (e.g. train.epochs=5)");
  // A sweep axis is removed with null, as a key is.
  json swept = base();
  swept["sweep"] = {{"optim.lr", {0.1, 0.01}}};
  swept["seeds"] = 1;
  EXPECT_EQ(expand_trials(resolve_config_json(swept, "lab.json", "", {})).size(), 2u);
  EXPECT_EQ(
      expand_trials(resolve_config_json(swept, "lab.json", "", {"sweep.optim.lr=null"})).size(),
      1u);
  EXPECT_EQ(
      error_of(swept, {"sweep.optim.wd=null"}),
      "UserError: override \"sweep.optim.wd=null\": the sweep has no axis optim.wd to remove");
}

TEST(Config, AnOverrideRemovesAKeyWithNullAndIsNamedForWhatItSet) {
  json momentum = base();
  momentum["optim"]["momentum"] = 0.9;
  // Switching to adam left the file's momentum, which no override could take away.
  EXPECT_EQ(error_of(momentum, {"optim.name=adam"}),
            "lab.json: /optim/momentum = 0.9: this key applies only when /optim/name is one of: "
            "sgd, rmsprop (it is \"adam\"); remove it (on the command line: optim.momentum=null)");
  EXPECT_EQ(error_of(momentum, {"optim.name=adam", "optim.momentum=null"}), "");
  EXPECT_EQ(error_of(base(), {"optim.momentum=null"}), "");  // (not set: nothing to remove)
  EXPECT_NE(error_of(base(), {"optim.momentom=null"}).find("did you mean \"momentum\""),
            std::string::npos);
  // A value only the override set was blamed on the file.
  EXPECT_EQ(
      error_of(base(), {"optim.betas=[0.9,0.99]"})
          .rfind("override \"optim.betas=[0.9,0.99]\": /optim/betas = [0.9,0.99]: this key applies "
                 "only when /optim/name",
                 0),
      0u)
      << error_of(base(), {"optim.betas=[0.9,0.99]"});
}

TEST(Config, OverridesPresetsAndSweepApplyInOrder) {
  auto r = resolve_config_json(base(), "lab.json", "full",
                               {"optim.momentum=0.9", "sweep.train.batch_size=[8,16]"});
  EXPECT_EQ(r.config["train"]["epochs"], 5);
  EXPECT_EQ(r.config["seeds"].size(), 3u);
  EXPECT_EQ(r.config["optim"]["momentum"], 0.9);
  EXPECT_EQ(expand_trials(r).size(), 2u * 2u * 3u);
}

TEST(Config, ABadValueAPresetSetsIsNamedInThePreset) {
  json doc = base();
  doc["presets"]["quick"]["train"]["epochs"] = -1;
  EXPECT_EQ(error_of(doc, {}, "quick"),
            "lab.json: /presets/quick/train/epochs = -1: expected an integer >= 0 (0 only with "
            "steps > 0, or in lab lr_range)");
  doc["presets"]["quick"]["optim"] = {{"lr", "fast"}};
  // With an override beside it, the preset's bad value is still the one named.
  EXPECT_EQ(error_of(doc, {"train.epochs=3"}, "quick"),
            "lab.json: /presets/quick/optim/lr = \"fast\": expected a number > 0");
  // The file's own value, under a preset that does not set it, is named in the file.
  doc["optim"]["momentum"] = -0.5;
  EXPECT_EQ(error_of(doc, {"train.epochs=3"}, "full").rfind("lab.json: /optim/momentum = -0.5", 0),
            0u)
      << error_of(doc, {"train.epochs=3"}, "full");
}

TEST(Config, EveryPresetIsCheckedNotOnlyTheOneAskedFor) {
  // A misspelt key in the full preset waited for the run that asked for it.
  json doc = base();
  doc["presets"]["full"]["optim"] = {{"lrr", 0.1}};
  EXPECT_NE(
      error_of(doc).find("lab.json: /presets/full/optim/lrr: unknown key (did you mean \"lr\"?)"),
      std::string::npos)
      << error_of(doc);
  EXPECT_NE(error_of(doc, {}, "quick").find("/presets/full/optim/lrr"), std::string::npos);
}

TEST(Config, AProblemOnlyAPresetMakesNamesThatPreset) {
  // A key misspelt in a preset was named at /trian, as if the file had it.
  json doc = base();
  doc["presets"]["quick"]["trian"] = {{"epochs", 1}};
  EXPECT_EQ(error_of(doc).rfind("lab.json: /presets/quick/trian: unknown key", 0), 0u)
      << error_of(doc);
  // The file's momentum is wrong only under the quick preset's Adam: checked as written, the
  // message sent the user to remove it from the file.
  doc = base();
  doc["optim"]["momentum"] = 0.9;
  doc["presets"]["quick"]["optim"] = {{"name", "adam"}};
  EXPECT_EQ(error_of(doc).rfind("lab.json with preset \"quick\": /optim/momentum = 0.9", 0), 0u)
      << error_of(doc);
}

TEST(Config, UnknownPresetListsTheOnesThere) {
  std::string msg = error_of(base(), {}, "huge");
  EXPECT_NE(msg.find("/presets = \"huge\": no such preset; this config has: full, quick"),
            std::string::npos)
      << msg;
}

TEST(Config, LoadReportsMissingFileAndSyntaxErrorWithLine) {
  testing::TempDir dir;
  try {
    load_json_file(dir.file("nope.json"));
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("nope.json: cannot open"), std::string::npos);
  }
  std::string bad = dir.write("bad.json", "{\n  \"a\": 1,\n  \"b\": \n}\n");
  try {
    load_json_file(bad);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json: invalid JSON"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 4"), std::string::npos) << e.what();
  }
  // /dev/zero was read until memory ran out.
  try {
    load_json_file("/dev/zero");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "/dev/zero: larger than 16 MiB; expected a JSON config (a few KiB)");
  }
}

TEST(Config, LoadNamesOverflowingNumbersDeepNestingAndDirectories) {
  testing::TempDir dir;
  const std::string big = dir.write("big.json", R"({"optim": {"lr": 1e400}})");
  // In a list, at its place; and one below a double's range, which read as 0 without a word (a
  // weight decay of 1e-400 ran as none), where 0 written as 0e5 is 0.
  const std::string listed = dir.write("list.json", R"({"model": {"widths": [8, -2e999]}})");
  const std::string tiny = dir.write("tiny.json", R"({"optim": {"weight_decay": 1e-400}})");
  EXPECT_EQ(load_json_file(dir.write("zero.json", R"({"a": [0e5, 0.000e-999, 4.9e-324]})"))["a"][0],
            0.0);
  std::string deep = "{\"title\": ";
  for (int i = 0; i < 100000; ++i) deep += "[";
  for (int i = 0; i < 100000; ++i) deep += "]";
  const std::string nested = dir.write("deep.json", deep + "}");
  for (const auto& [path, want] : std::vector<std::pair<std::string, std::string>>{
           {big,
            "big.json: /optim/lr = 1e400: beyond a double's range; allowed: a magnitude "
            "below 1.8e308"},
           {listed, "list.json: /model/widths/1 = -2e999: beyond a double's range"},
           {tiny,
            "tiny.json: /optim/weight_decay = 1e-400: below a double's range, it would read "
            "as 0; allowed: 0 itself, or a magnitude of at least 4.9e-324"},
           {nested, "deep.json: /title/0/0"},
           {dir.path(), ": a directory; expected a JSON file"}}) {
    try {
      load_json_file(path);
      ADD_FAILURE() << path;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  }
}

TEST(Config, LoadRefusesAKeyNamedTwiceInOneObjectAndSaysWhere) {
  testing::TempDir dir;
  // The same key in different objects, and objects inside arrays, are fine.
  const std::string fine = dir.write(
      "fine.json", R"({"optim": {"lr": 0.1}, "train": {"lr": 2}, "l": [{"a": 1}, {"a": 2}]})");
  EXPECT_EQ(load_json_file(fine)["l"][1]["a"], 2);
  const std::string twice = dir.write(
      "twice.json", R"({"sweep": {"x": [1]}, "l": [0, [5], {"a": 1, "b": {"lr": 1, "lr": 2}}]})");
  try {
    load_json_file(twice);
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("twice.json: /l/2/b/lr: the key \"lr\" appears twice"),
              std::string::npos)
        << e.what();
  }
}

TEST(ConfigHash, IgnoresKeyOrderAndWhitespace) {
  json a = json::parse(R"({"optim": {"lr": 0.1, "name": "sgd"}, "train": {"epochs": 2}})");
  json b =
      json::parse("{ \"train\" : {\"epochs\":2},\n \"optim\":{\"name\":\"sgd\",   \"lr\":0.1} }");
  auto ta = expand_trials(resolve_config_json(a, "a", "", {}));
  auto tb = expand_trials(resolve_config_json(b, "b", "", {}));
  ASSERT_EQ(ta.size(), 1u);
  EXPECT_EQ(ta[0].hash, tb[0].hash);
  EXPECT_EQ(ta[0].hash.size(), 64u);
}

TEST(ConfigHash, ChangesWithAValueButNotWithWordsOrDevice) {
  json a = base();
  auto h = [](json doc) { return expand_trials(resolve_config_json(doc, "x", "", {}))[0].hash; };
  std::string h0 = h(a);
  json b = a;
  b["optim"]["momentum"] = 0.5;
  EXPECT_NE(h(b), h0);
  json c = a;
  c["train"]["epochs"] = 2.0;  // the same value written as a float: coerced to the declared int
  EXPECT_EQ(h(c), h0);
  json d = a;
  d["description"] = "words";
  d["train"]["device"] = "cpu";
  EXPECT_EQ(h(d), h0);
}

TEST(ConfigHash, KeysAddedLaterLeaveStoredTrialsTheirHashes) {
  // The hash of configs/fmnist_lenet.json's trial as the build before optim.sam_rho and the
  // sharpness measures computed it. If this changes, every stored trial is orphaned: change it
  // only on purpose (a new kLabVersion), never as a side effect of a new key.
  auto trials = expand_trials(resolve_config(std::string(EMPIRIC_SOURCE_DIR) +
                                                 "/configs/fmnist_lenet.json",
                                             "", {}));
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(trials[0].hash.substr(0, 12), "36800ee77213");
  // A new key at a value other than its default is part of the identity.
  auto sam = expand_trials(resolve_config(std::string(EMPIRIC_SOURCE_DIR) +
                                              "/configs/fmnist_lenet.json",
                                          "", {"optim.sam_rho=0.05"}));
  EXPECT_NE(sam[0].hash, trials[0].hash);
  // TF32 matmuls compute another run: part of the identity when on.
  auto tf32 = expand_trials(resolve_config(std::string(EMPIRIC_SOURCE_DIR) +
                                               "/configs/fmnist_lenet.json",
                                           "", {"train.tf32=true"}));
  EXPECT_NE(tf32[0].hash, trials[0].hash);
  // Fewer metrics recorded: another record, another identity.
  auto held =
      expand_trials(resolve_config(std::string(EMPIRIC_SOURCE_DIR) + "/configs/fmnist_lenet.json",
                                   "", {"train.eval_sets=held_out"}));
  EXPECT_NE(held[0].hash, trials[0].hash);
}

TEST(ConfigHash, TrialsDifferBySeedAndAxis) {
  auto trials = expand_trials(resolve_config_json(base(), "x", "", {}));
  ASSERT_EQ(trials.size(), 4u);
  std::set<std::string> hashes;
  for (const auto& t : trials) hashes.insert(t.hash);
  EXPECT_EQ(hashes.size(), 4u);
  EXPECT_EQ(trials[0].config["optim"]["lr"], 0.1);
  EXPECT_EQ(trials[0].seed, 0);
  EXPECT_EQ(trials[1].seed, 1);
  EXPECT_EQ(trials[2].config["optim"]["lr"], 0.01);
}

TEST(ConfigHash, SweepingAVariantFillsThatVariantsDefaults) {
  json doc = base();
  doc["sweep"] = json::parse(R"({"optim.name": ["sgd", "adam"]})");
  auto trials = expand_trials(resolve_config_json(doc, "x", "", {}));
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_TRUE(trials[2].config["optim"].contains("betas"));
  EXPECT_FALSE(trials[2].config["optim"].contains("momentum"));
}

TEST(ConfigHash, SweepingAMapValuedKeySetsEachMapWhole) {
  // optim.lr_mult is a key whose values are objects: each is that key's value, not a section
  // merged over the config (which wrote "/optim.lr_mult" at the top level), and {} clears the
  // base's map rather than merging into it.
  json doc = base();
  doc["optim"]["lr_mult"] = {{"body.3", 2.0}};
  doc["sweep"] = json::parse(R"({"optim.lr_mult": [{}, {"body.1": 0}]})");
  auto trials = expand_trials(resolve_config_json(doc, "x", "", {}));
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_EQ(trials[0].config["optim"]["lr_mult"], json::object());
  EXPECT_EQ(trials[2].config["optim"]["lr_mult"], json::parse(R"({"body.1": 0})"));
  EXPECT_FALSE(trials[0].config.contains("optim.lr_mult"));
}

TEST(PrintableConfig, EveryShippedConfigPrintedResolvesToTheSameTrials) {
  // `empiric config` printed every section's defaults: the other labs' sections, the training
  // keys an lr_range lab ignores, and an SGD momentum under a sweep's Adam arm, each refused when
  // the printed config was read back.
  int checked = 0;
  for (const auto& f :
       std::filesystem::directory_iterator(std::string(EMPIRIC_SOURCE_DIR) + "/configs")) {
    const json doc = load_json_file(f.path().string());
    for (const std::string preset : {"", "quick"}) {
      if (!preset.empty() && !doc.contains("presets")) continue;
      SCOPED_TRACE(f.path().filename().string() + " preset " + preset);
      const ResolvedConfig r = resolve_config_json(doc, f.path().string(), preset, {});
      std::vector<std::string> want, got;
      for (const auto& t : expand_trials(r)) want.push_back(t.hash);
      try {
        const ResolvedConfig back = resolve_config_json(printable_config(r), "printed", "", {});
        for (const auto& t : expand_trials(back)) got.push_back(t.hash);
      } catch (const ConfigError& e) {
        ADD_FAILURE() << e.what();
      }
      EXPECT_EQ(got, want);
      ++checked;
    }
  }
  EXPECT_GE(checked, 100);
}

TEST(PrintableConfig, KeepsOnlyWhatTheLabReads) {
  json doc = base();
  doc["lab"] = "lr_range";
  doc["train"].erase("epochs");
  doc.erase("presets");
  const json printed = printable_config(resolve_config_json(doc, "x", "", {}));
  EXPECT_TRUE(printed.contains("range"));
  EXPECT_FALSE(printed.contains("lottery"));
  EXPECT_FALSE(printed.contains("measure"));
  EXPECT_TRUE(printed["train"].contains("batch_size"));
  EXPECT_FALSE(printed["train"].contains("epochs"));
  EXPECT_TRUE(printed["optim"].contains("momentum"));  // (defaults filled where they apply)
}

TEST(Sha256, MatchesFipsTestVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 56 bytes: the padding spills into a second block.
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Schema, DocsMatchTheDeclaration) {
  std::ifstream in(std::string(EMPIRIC_SOURCE_DIR) + "/docs/CONFIG.md");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), schema_markdown())
      << "regenerate with: empiric keys --markdown > docs/CONFIG.md";
}

}  // namespace
}  // namespace empiric

namespace empiric {
namespace {

TEST(WriteFileWhole, TheTemporaryFilesOfAKilledWriterAreRemovedAndNoOneElses) {
  testing::TempDir dir;
  const pid_t gone = fork();  // a process that has ended (and been reaped)
  if (gone == 0) _exit(0);
  ASSERT_GT(gone, 0);
  waitpid(gone, nullptr, 0);
  const auto old = std::filesystem::file_time_type::clock::now() - std::chrono::minutes(5);
  auto temporary = [&](const std::string& name, pid_t pid, bool stale) {
    const std::string path = dir.write(name + ".tmp." + std::to_string(pid) + ".7", "half");
    if (stale) std::filesystem::last_write_time(path, old);
    return path;
  };
  const std::string killed = temporary("population-1.pt", gone, true),
                    fresh = temporary("population-2.pt", gone, false),  // (another machine's?)
      mine = temporary("population-3.pt", getpid(), true),
                    kept = dir.write("population-4.pt", "whole");
  write_file_whole(dir.file("done.pt"), "whole");
  EXPECT_EQ(remove_abandoned_writes(dir.path()), 1);
  EXPECT_FALSE(std::filesystem::exists(killed));
  for (const auto& path : {fresh, mine, kept, dir.file("done.pt")})
    EXPECT_TRUE(std::filesystem::exists(path)) << path;
  EXPECT_EQ(remove_abandoned_writes(dir.file("no such folder")), 0);
}

}  // namespace
}  // namespace empiric
