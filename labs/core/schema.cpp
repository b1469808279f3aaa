#include "core/schema.h"

#include <algorithm>
#include <map>
#include <sstream>

namespace empiric {
namespace {

using Choices = std::vector<std::string>;
using Only = std::vector<std::string>;
constexpr double kTiny = 1e-12;  // "> 0" for numbers

Field num(std::string key, double def, std::optional<double> lo, std::optional<double> hi,
          std::string doc, Only only = {}) {
  return {std::move(key), FieldType::Number, def, lo, hi, {}, std::move(doc), std::move(only)};
}
Field integer(std::string key, long long def, std::optional<double> lo, std::optional<double> hi,
              std::string doc, Only only = {}) {
  return {std::move(key), FieldType::Int, def, lo, hi, {}, std::move(doc), std::move(only)};
}
Field boolean(std::string key, bool def, std::string doc, Only only = {}) {
  return {std::move(key), FieldType::Bool, def, {}, {}, {}, std::move(doc), std::move(only)};
}
Field choice(std::string key, std::string def, Choices choices, std::string doc, Only only = {}) {
  return {std::move(key), FieldType::String, def, {}, {}, std::move(choices),
          std::move(doc), std::move(only)};
}
Field text(std::string key, std::string def, std::string doc, Only only = {}) {
  return {std::move(key), FieldType::String, def, {}, {}, {}, std::move(doc), std::move(only)};
}
Field list(std::string key, FieldType type, json def, std::optional<double> lo, std::string doc,
           Only only = {}) {
  return {std::move(key), type, std::move(def), lo, {}, {}, std::move(doc), std::move(only)};
}

const Choices kImageSets = {"fashion_mnist", "mnist", "cifar10"};
const Choices kSynthetic = {"xor", "spirals", "blobs", "teacher", "linear"};
const Choices kActivations = {"relu", "leaky_relu", "prelu", "tanh", "sigmoid", "gelu", "swish"};
const Choices kNetworks = {"mlp", "lenet_300_100", "convnet", "linear"};

Choices concat(Choices a, const Choices& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<Section> build() {
  std::vector<Section> s;
  s.push_back({"",
               "Top-level keys",
               "",
               {
                   choice("lab", "train", {"train", "lr_range", "lottery", "implicit"},
                          "lab driver: train (a training run per trial), lr_range (Smith's LR "
                          "range test per trial, section range), lottery (iterative magnitude "
                          "pruning with rewinding and controls, section lottery) or implicit "
                          "(gradient descent on a linear model, in double precision, against "
                          "its closed-form implicit bias; section implicit)"),
                   integer("question", 0, 0, 102, "question number this config answers (0: none)"),
                   text("title", "", "one-line title shown in reports"),
                   text("description", "", "what the lab does and why"),
                   {"seeds",
                    FieldType::Seeds,
                    json::array({0}),
                    0,
                    {},
                    {},
                    "seed list, or a count n meaning seeds 0..n-1",
                    {}},
               }});
  s.push_back(
      {"data",
       "Dataset and its transformations",
       "name",
       {
           choice("name", "fashion_mnist", concat(kImageSets, kSynthetic), "dataset"),
           text("path", "",
                "directory holding the dataset files (default for fashion_mnist: the "
                "dataset-fashion-mnist package; a relative path is from where empiric runs, and "
                "the trial stores it absolute)",
                kImageSets),
           integer("train_subset", 0, 0, {},
                   "use n training examples, the first after a seeded shuffle (0: all); "
                   "data.validation is carved from these n"),
           integer("test_subset", 0, 0, {}, "use n test examples (0: all)"),
           integer("validation", 0, 0, {},
                   "examples carved from the training split (after train_subset) for early "
                   "stopping and validation metrics; their labels stay clean (label_noise and "
                   "random_labels change the training examples left)"),
           num("label_noise", 0.0, 0.0, 1.0,
               "fraction of training labels flipped to a different class (recorded)"),
           num("random_labels", 0.0, 0.0, 1.0,
               "fraction of training labels replaced by uniformly random labels"),
           num("imbalance", 1.0, kTiny, 1.0,
               "class c of K keeps imbalance^(c/(K-1)) of its training examples (at least one): "
               "on classes of equal size, the rarest class count over the most frequent (1: as "
               "is)"),
           boolean("standardize", true,
                   "standardize inputs with statistics of the training split only"),
           choice("standardize_per", "channel", {"channel", "feature"},
                  "what standardization takes statistics over: each channel (an image's "
                  "pixels of one channel together) or each input feature (every pixel on its "
                  "own, as a tabular scaler does; a feature constant in training is only "
                  "centred); for synthetic tasks both are per feature"),
           num("feature_scale", 0.0, 0.0, 6.0,
               "features in mixed units: input feature j (every pixel of an image) is "
               "multiplied by 10^u_j, u_j uniform in [-s, s] and drawn from the seed, before "
               "standardization; this is s (0: off)"),
           integer("n_train", 1000, 4, 1e7, "training examples of a synthetic task", kSynthetic),
           integer("n_test", 1000, 4, 1e7,
                   "test examples of a synthetic task (drawn after the training examples from the "
                   "same task: another n_train draws another test set of it)",
                   kSynthetic),
           integer("dim", 2, 1, 1e5, "input dimension", {"blobs", "teacher", "linear"}),
           integer("classes", 3, 2, 1000, "number of classes", {"blobs", "spirals"}),
           num("noise", 0.1, 0.0, {}, "noise level of a synthetic task", kSynthetic),
           integer("teacher_width", 32, 1, 1e5, "hidden width of the teacher MLP", {"teacher"}),
       }});
  s.push_back(
      {"model",
       "Model (name -> factory)",
       "name",
       {
           choice("name", "lenet_300_100", {"mlp", "lenet_300_100", "convnet", "linear", "tree"},
                  "model (tree: a CART classification tree on the flattened inputs, grown by "
                  "Gini impurity, trained by no optimizer: the optim, schedule and training "
                  "keys do nothing for it)"),
           list("widths", FieldType::IntList, json::array({300, 100}), 1,
                "hidden layer widths (at most 1,000 layers)", {"mlp"}),
           choice("activation", "relu", kActivations, "hidden activation",
                  {"mlp", "lenet_300_100", "convnet"}),
           boolean("bias", true, "layers have biases", kNetworks),
           num("dropout", 0.0, 0.0, 0.95,
               "dropout probability after each hidden activation (in a convnet, its dense "
               "layers' only)",
               {"mlp", "lenet_300_100", "convnet"}),
           boolean("batch_norm", false, "batch norm before each hidden activation",
                   {"mlp", "lenet_300_100", "convnet"}),
           choice("init", "default", {"default", "xavier", "kaiming", "zeros", "normal"},
                  "weight initialization (default: torch's; xavier: Glorot uniform; kaiming: He "
                  "normal, fan-in, with ReLU's gain sqrt(2) whatever the activation; zeros; "
                  "normal: N(0, init_scale^2)). Weights only: biases keep torch's default "
                  "U(-1/sqrt(fan_in), 1/sqrt(fan_in)) except under zeros, and batch norm's "
                  "scale and PReLU's slope keep theirs (1, 0.25) under every choice",
                  kNetworks),
           num("init_scale", 1.0, 0.0, {},
               "multiplier on the initial weights; the std for init=normal", kNetworks),
           list("channels", FieldType::IntList, json::array({64, 64}), 1,
                "conv channels; a 2x2 max-pool follows every second conv (Conv-2: [64,64], "
                "Conv-4: [64,64,128,128]; at most 1,000)",
                {"convnet"}),
           list("dense", FieldType::IntList, json::array({256, 256}), 1,
                "widths of the dense layers after the convs (at most 1,000)", {"convnet"}),
           integer("max_depth", 12, 0, 64, "deepest a leaf may be (the root is depth 0)", {"tree"}),
           integer("min_leaf", 1, 1, {}, "fewest training examples a leaf may hold", {"tree"}),
           integer("bins", 32, 2, 256,
                   "candidate thresholds per feature: at most bins - 1 of its training values, "
                   "at evenly spaced quantiles",
                   {"tree"}),
       }});
  s.push_back(
      {"optim",
       "Optimizer",
       "name",
       {
           choice("name", "sgd", {"sgd", "adam", "adamw", "rmsprop"}, "optimizer"),
           num("lr", 0.1, kTiny, {}, "base learning rate (before schedule and batch scaling)"),
           num("momentum", 0.0, 0.0, 0.999999, "momentum", {"sgd", "rmsprop"}),
           boolean("nesterov", false, "Nesterov momentum", {"sgd"}),
           num("weight_decay", 0.0, 0.0, {}, "L2 weight decay (decoupled for adamw)"),
           num("l1", 0.0, 0.0, {}, "L1 penalty on the weights, added to the gradient"),
           list("betas", FieldType::NumberList, json::array({0.9, 0.999}), 0.0,
                "Adam betas [beta1, beta2]", {"adam", "adamw"}),
           num("eps", 1e-8, kTiny, {}, "denominator epsilon", {"adam", "adamw", "rmsprop"}),
           num("alpha", 0.99, 0.0, 1.0, "RMSProp smoothing constant", {"rmsprop"}),
           num("clip_norm", 0.0, 0.0, {}, "clip the global gradient norm to this (0: off)"),
           num("grad_noise", 0.0, 0.0, {},
               "annealed Gaussian gradient noise (Neelakantan et al. 2015): after L1 and "
               "clipping, every gradient element gets N(0, eta / (1 + t)^gamma) at step t; this "
               "is eta (0: off)"),
           num("grad_noise_gamma", 0.55, 0.0, {}, "the noise variance's decay exponent gamma"),
           num("sam_rho", 0.0, 0.0, {},
               "sharpness-aware minimization (Foret et al. 2021): step with the gradient at "
               "w + rho g/|g|, two forward/backward passes per step (0: off)"),
           {"lr_mult",
            FieldType::NumberMap,
            json::object(),
            0.0,
            {},
            {},
            "per-layer LR multipliers: parameter-name prefix -> multiplier (whole name parts: "
            "body.1 holds body.1.weight, not body.11.weight; the longest matching prefix wins; "
            "one matching no parameter is refused)",
            {}},
           choice("impl", "fused", {"fused", "torch"},
                  "fused: empiric's multi-tensor kernels (CPU or CUDA); torch: torch::optim",
                  {"sgd", "adam", "adamw"}),
       }});
  s.push_back(
      {"schedule",
       "Learning-rate schedule (times in epochs; fractions of the whole run)",
       "name",
       {
           choice(
               "name", "constant",
               {"constant", "step", "multistep", "exponential", "cosine", "cosine_restarts",
                "onecycle", "wsd"},
               "schedule after warmup (onecycle: torch's OneCycleLR for the LR only, its momentum "
               "not cycled)"),
           num("warmup_epochs", 0.0, 0.0, {},
               "linear warmup: step k of w (from 0) at (k + 1) / w of the base LR (step, multistep "
               "and exponential count their "
               "epochs from the start of training, warmup included; the other schedules run over "
               "the steps after it; refused with onecycle, which warms up by itself)"),
           integer("warmup_steps", 0, 0, {},
                   "the warmup counted in steps, the same at every batch size (0: warmup_epochs "
                   "decides; setting both is refused)"),
           num("step_epochs", 30.0, kTiny, {}, "epochs between decays (a fraction: steps)",
               {"step"}),
           num("gamma", 0.1, kTiny, 1.0, "decay factor (per step, milestone or epoch)",
               {"step", "multistep", "exponential"}),
           list("milestones", FieldType::NumberList, json::array(), 0.0,
                "epochs at which the LR is multiplied by gamma (a fraction: from that step on)",
                {"multistep"}),
           num("min_lr_frac", 0.0, 0.0, 1.0,
               "final LR as a fraction of the base LR, reached at the end of the run (after its "
               "last step, as torch's CosineAnnealingLR with T_max the run's steps: the last step "
               "taken is one step of the decay above it; cosine_restarts: at the end of each "
               "period, so a run that ends inside one ends above it)",
               {"cosine", "cosine_restarts", "wsd"}),
           num("restart_epochs", 1.0, kTiny, {}, "length of the first cosine period (SGDR)",
               {"cosine_restarts"}),
           num("restart_mult", 1.0, 1.0, {}, "each period is this many times the one before",
               {"cosine_restarts"}),
           num("pct_start", 0.3, 0.0, 1.0, "fraction of the run spent rising", {"onecycle"}),
           num("div_factor", 25.0, 1.0, {}, "initial LR = max LR / div_factor", {"onecycle"}),
           num("final_div_factor", 1e4, 1.0, {}, "final LR = initial LR / final_div_factor",
               {"onecycle"}),
           num("decay_frac", 0.2, 0.0, 1.0, "fraction of the run spent in the final linear decay",
               {"wsd"}),
           choice("scale_rule", "none", {"none", "linear", "sqrt"},
                  "scale the base LR with batch_size / base_batch"),
           integer("base_batch", 128, 1, {}, "batch size the base LR is given for"),
       }});
  s.push_back(
      {"train",
       "Training loop",
       "",
       {
           integer("epochs", 10, 0, {}, "epochs to train (ignored when steps > 0)"),
           integer("steps", 0, 0, {}, "train exactly this many steps instead of epochs (0: off)"),
           integer("batch_size", 128, 1, {}, "mini-batch size"),
           choice(
               "loss", "auto",
               {"auto", "cross_entropy", "mse_softmax", "mse_logits", "cross_entropy_on_softmax"},
               "the loss trained, evaluated (train_loss, test_loss) and measured: auto "
               "(cross-entropy for classification, squared error for regression), "
               "cross_entropy (softmax cross-entropy on the logits), mse_softmax (squared "
               "error between the softmax probabilities and one-hot labels, summed over the "
               "classes: the Brier score), mse_logits (the same on the raw outputs, Hui & "
               "Belkin 2021) or cross_entropy_on_softmax (cross-entropy fed softmax outputs "
               "as logits: the mismatch of a model that ends in softmax trained with a loss "
               "that applies its own); all but auto are for classification"),
           choice("class_weights", "none", {"none", "balanced"},
                  "weight each class's loss terms in the training step: balanced gives class c "
                  "the weight n / (classes x n_c) from the training split's counts (rare classes "
                  "count more; sklearn's \"balanced\"); evaluations and measures report the "
                  "unweighted loss; within a batch the weights are normalized by their sum, so a "
                  "batch of one class (train.order=by_class) is not reweighted; classification "
                  "only"),
           choice("order", "reshuffle", {"reshuffle", "fixed", "by_class"},
                  "the order examples are visited in: reshuffle (a new seeded permutation every "
                  "epoch), fixed (one seeded permutation, the same every epoch) or by_class "
                  "(sorted by label, each class's examples in a seeded order, the same every "
                  "epoch: batches of one class at a time; classification only)"),
           integer("eval_batch_size", 2000, 1, {}, "batch size for evaluation passes"),
           integer("eval_every_steps", 0, 0, {},
                   "also evaluate every n steps (0: epoch ends only)"),
           choice("eval_sets", "all", {"all", "held_out"},
                  "what evaluations pass over: \"all\" (the training, test and validation sets) "
                  "or \"held_out\" (test and validation; the training set only at the last "
                  "evaluation, for the summary; train_loss_recent, the mean loss of the steps "
                  "since the evaluation before within the epoch, stands in for it), as Frankle & "
                  "Carbin evaluate: "
                  "a pass over the whole training set at every evaluation can cost more than the "
                  "training. "
                  "target_train_loss, target_train_acc and stop_train_loss need \"all\""),
           integer("max_evals", 0, 0, {},
                   "evaluate at most this many epoch ends, evenly spaced, and always the last "
                   "(0: every epoch end); for runs of hundreds of short epochs, where evaluation "
                   "would cost more than training. eval_every_steps evaluations come on top; "
                   "early_stop_patience counts evaluations"),
           integer("early_stop_patience", 0, 0, {},
                   "stop after n evaluations without a better validation loss (0: off; needs "
                   "data.validation > 0)"),
           num("stop_train_loss", 0.0, 0.0, {},
               "stop at the first evaluated epoch end whose training loss is at or below this, up "
               "to epochs (Jiang et al. 2020 train every model to the same loss; summary "
               "reached_train_loss says whether it got there; 0: off)"),
           num("target_train_loss", 0.0, 0.0, {},
               "record the first evaluation whose training loss is at or below this: summary "
               "steps_to_train_loss, samples_to_train_loss, flops_to_train_loss (0: off)"),
           num("target_train_acc", 0.0, 0.0, 1.0,
               "likewise for a training accuracy at or above this (steps_to_train_acc, ...)"),
           num("target_test_acc", 0.0, 0.0, 1.0,
               "likewise for a test accuracy at or above this (steps_to_test_acc, ...)"),
           boolean("stop_at_targets", false,
                   "end the trial at the evaluation where every set target has been reached"),
           num("divergence_loss", 1e3, kTiny, {},
               "a training loss above this (or NaN/Inf) ends the trial as diverged"),
           boolean("checkpoint", true,
                   "checkpoint at epoch ends (trials alone and populations) so a killed sweep "
                   "resumes"),
           num("checkpoint_every_s", 5.0, 0.0, {},
               "seconds at least between two checkpoints (0: every epoch end); a kill loses at "
               "most about this much training"),
           choice("device", "auto", {"auto", "cpu", "cuda"}, "where to train"),
           integer("threads", 0, 0, 256, "CPU threads for torch (0: torch's default)"),
           text("population", "auto",
                "train trials that differ only in seed, optim.lr/momentum/weight_decay, "
                "model.init_scale, label noise, random labels and schedule as one batched model "
                "(dense "
                "stacks, "
                "fused SGD, Adam or AdamW; no interpolation partner, targets or early stopping; "
                "measures "
                "are taken per member): \"auto\" (up to 16 members "
                "on a CPU, 64 on a GPU, fewer when their data sets would not fit in memory), "
                "\"off\", or at most N members (refused when they would not fit); each "
                "member's results equal training it alone to float rounding (which thousands of "
                "steps, or "
                "Adam's first steps, can amplify)"),
           choice("cuda_graphs", "auto", {"auto", "off"},
                  "on a GPU, capture the training step (forward, backward, fused optimizer step) "
                  "and each evaluation pass as CUDA graphs and replay them; \"auto\" falls back "
                  "to eager where capture is not possible (SAM, gradient noise, clipping, "
                  "optim.impl=torch, rmsprop) and says why once"),
           boolean("tf32", false,
                   "on a GPU, let cuBLAS round float32 matmul inputs to TF32 (tensor cores; a "
                   "10-bit mantissa) while training: large matmuls several times faster, results "
                   "that differ from float32 in the third or fourth digit (convolutions follow "
                   "torch's default, TF32 in cuDNN either way); no effect on a CPU"),
           text("mask_file", "",
                "train with the masks (and from the init) in this file, e.g. a lottery ticket: "
                "results/artifacts/<chain>/round_N.pt"),
       }});
  s.push_back(
      {"measure",
       "Measures computed at the end of each finished trial and stored with it",
       "",
       {
           boolean("hessian_top", false,
                   "top eigenvalue of the training loss's Hessian (power iteration on "
                   "Hessian-vector products), with hessian_top_residual |Hv - value v|, near 0 "
                   "only once the iterate is an eigenvector (some eigenvalue lies within it)"),
           integer("hessian_samples", 1000, 1, {},
                   "training examples the Hessian, sharpness and surface measures are taken on"),
           num("hessian_tol", 1e-3, kTiny, 1.0,
               "stop when the estimate changes by less (relative) and its residual is within "
               "sqrt(tol) of it"),
           integer("hessian_max_iter", 100, 1, {}, "most power iterations"),
           boolean("noise_scale", false,
                   "gradient noise scale B_simple = tr(Sigma)/|G|^2 from two batch sizes"),
           list("noise_batches", FieldType::IntList, json::array({32, 1024}), 1,
                "the two batch sizes [small, big]"),
           integer("noise_repeats", 20, 1, {}, "gradients averaged per batch size"),
           boolean("hessian_trace", false,
                   "trace of the Hessian by Hutchinson's estimator (Rademacher probes), with its "
                   "standard error"),
           integer("trace_samples", 30, 2, {}, "Hutchinson probes"),
           boolean("eps_sharpness", false,
                   "Keskar et al. 2017: 100 (max loss in the box |d_i| <= eps (|w_i| + 1) - loss) "
                   "/ (1 + loss), by projected ascent"),
           num("eps", 1e-3, kTiny, 1.0, "the box's relative size"),
           integer("eps_steps", 100, 4, {},
                   "most projected sign-gradient ascent steps, of half a box each (a convex "
                   "quadratic's corner is 4 away; a trained network's ascent climbs for tens)"),
           num("eps_tol", 1e-3, 0.0, 1.0,
               "the ascent stops once its largest rise grew by no more than this share over the "
               "last 10 steps (eps_sharpness_converged); 0: every one of eps_steps"),
           boolean("sigma_sharpness", false,
                   "mean loss rise under w_i + sigma |w_i| z_i, z ~ N(0, 1) (magnitude-aware, "
                   "PAC-Bayes style)"),
           num("sigma", 0.05, kTiny, {}, "relative size of the Gaussian perturbation"),
           integer("sigma_samples", 20, 2, {}, "perturbations averaged"),
           num("dinh_alpha", 0.0, 0.0, {},
               "Dinh et al. 2017: also take the measures after scaling the first layer by alpha "
               "and the second by 1/alpha (the same function), stored as <measure>_dinh and "
               "<measure>_dinh_ratio with dinh_output_change (0: off)"),
           integer("surface_grid", 0, 0, 101,
                   "the loss on an n x n grid along two filter-normalized random directions (Li et "
                   "al. 2018), stored as the measure surface (0: off)"),
           num("surface_span", 1.0, kTiny, {}, "the grid covers [-span, span] in each direction"),
           integer("interpolate_batch", 0, 0, {},
                   "Keskar et al. 2017's line: also train the same config, seed and init at this "
                   "batch size, and store the loss and accuracy (training and test, "
                   "hessian_samples examples each) on the line from this solution (t = 0) through "
                   "that one (t = 1) as the measure interpolation, with interp_rise_here and "
                   "interp_rise_partner, the training-loss rises a quarter segment beyond each "
                   "end (0: off; refused with model.batch_norm and in the lottery lab)"),
           integer("interpolate_points", 25, 2, 1001, "points on the line"),
           list("interpolate_range", FieldType::NumberList, json::array({-0.5, 1.5}), {},
                "[t_lo, t_hi]"),
           boolean("hessian_init", false,
                   "also the top Hessian eigenvalue at initialization, stored in the summary with "
                   "its convergence and residual, and lr_x_hessian_init = base LR x that "
                   "eigenvalue (GD on a quadratic is stable below 2) when the estimate converged "
                   "to a positive value; kept for diverged trials too"),
           boolean(
               "grad_flow_init", false,
               "at initialization, the norms of the training loss's gradient with respect to "
               "the first and the last weight matrices (or filters), on hessian_samples "
               "training examples in eval mode: summary grad_norm_first_init, "
               "grad_norm_last_init and grad_ratio_init = first / last (Frobenius norms, so the "
               "layers' shapes enter too: compare the ratio across depths or starts; null "
               "for a model with one weight matrix; kept for diverged trials too)"),
           boolean("dead_units", false,
                   "dead_unit_frac: the share of the hidden units after a ReLU-family activation "
                   "(channels, in a convnet) whose input is at most 0 on every example of the "
                   "training split, in eval mode: for ReLU, units that pass no gradient on any "
                   "of them"),
           boolean("calibration", false,
                   "Guo et al. 2017 on the whole test set: the expected calibration error "
                   "test_ece (the examples' share-weighted gap between accuracy and mean "
                   "confidence, the largest softmax probability, over equal-width confidence "
                   "bins), test_confidence and test_overconfidence (mean confidence minus "
                   "accuracy); classification only"),
           integer("calibration_bins", 15, 2, 1000, "confidence bins of the calibration error"),
           boolean("dropout_test", false,
                   "Srivastava et al. 2014 on the whole test set: test_acc_dropout_on, the "
                   "accuracy of one pass with dropout left on (the other layers, batch norm "
                   "included, in eval mode), and test_acc_mc, the accuracy of the mean softmax "
                   "of mc_samples such passes (Monte Carlo dropout, Gal & Ghahramani 2016), "
                   "each against the pass with dropout off (which inverted dropout's 1 / (1 - p) "
                   "scaling in training makes the weight-scaling approximation of their mean): "
                   "test_dropout_on_cost (off minus one pass) and test_mc_minus_off; the mean is "
                   "of the softmax of the outputs, whatever train.loss; needs model.dropout > 0; "
                   "classification only"),
           integer("mc_samples", 20, 1, 1000, "dropout passes averaged for test_acc_mc"),
           num("noisy_test_labels", 0.0, 0.0, 0.5,
               "evaluate against noisy labels: flip this share of the test labels (seeded), each "
               "to a uniformly drawn other class, and store test_acc_noisy (accuracy against "
               "them), test_acc_noisy_drop (clean minus noisy), test_acc_corrected (the clean "
               "accuracy estimated from the noisy one and the known rate r: (acc_noisy - r / (K "
               "- 1)) / (1 - r K / (K - 1))) and test_acc_correction_error (its distance from "
               "the clean accuracy); the model and test_acc are untouched (0: off; below (K - "
               "1) / K for K classes; classification only)"),
           boolean("sparsity", false,
                   "weight_zero_frac: the share of weights (matrices and filters, not biases) "
                   "whose magnitude is below sparsity_tol (refused with pruning masks, whose zeros "
                   "it would count)"),
           num("sparsity_tol", 1e-3, kTiny, {},
               "the magnitude below which a weight counts as zero"),
           boolean("per_class", false,
                   "per-class results on the whole test set: test_balanced_acc (the mean of the "
                   "classes' recalls), test_min_recall (the worst class's) and "
                   "test_max_pred_share (the largest share of predictions given to one class: 1 "
                   "when the model predicts a single class); classification only"),
           boolean("auc", false,
                   "test_auc on the whole test set: the area under the ROC curve of each class's "
                   "softmax probability against the rest (the chance that a random example of "
                   "the class scores above a random other; ties count half), averaged over the "
                   "classes (macro one-vs-rest); classification only"),
       }});
  s.push_back(
      {"lottery",
       "Lottery tickets (lab lottery): iterative magnitude pruning with rewinding; every round is "
       "a trial",
       "",
       {
           integer("rounds", 10, 1, 60, "pruning rounds after the dense round 0"),
           num("rate", 0.2, 0.0, 0.99,
               "fraction of the remaining weights pruned per round (hidden layers; every layer "
               "when global)"),
           num("output_rate", 0.1, 0.0, 0.99,
               "fraction of the output layer's remaining weights pruned per round (layer-wise)"),
           choice("scope", "layerwise", {"layerwise", "global"},
                  "prune each weight tensor by its own magnitudes, or all by one threshold"),
           integer("rewind_step", 0, 0, {},
                   "surviving weights go back to their values after this many steps of the "
                   "dense run (0: the initialization, Frankle & Carbin 2019; > 0: late "
                   "rewinding, Frankle et al. 2020, except that the rewound network then "
                   "trains the whole run again from step 0 of the schedule and data order, "
                   "where Frankle et al. train steps k to T: under a constant LR only the "
                   "step count and the data order differ)"),
           boolean("one_shot", false,
                   "prune the dense network's trained weights straight to each round's "
                   "sparsity instead of iteratively"),
           choice("control", "ticket", {"ticket", "reinit", "random_prune"},
                  "ticket: the pruned, rewound network; reinit: the ticket's mask on a new "
                  "initialization; random_prune: a random mask with the ticket's per-layer "
                  "sparsity"),
           integer("round", 0, 0, 60, "set on each trial: its round (0: the dense network)"),
       }});
  s.push_back(
      {"implicit",
       "Implicit bias of gradient descent (lab implicit): a linear model trained by full-batch "
       "GD in double precision on a synthetic problem drawn from the trial's seed, against the "
       "solution the theory says GD picks",
       "",
       {
           choice("problem", "least_squares", {"least_squares", "separable"},
                  "least_squares: an under-determined regression (n < dim), compared with the "
                  "minimum-norm (pseudo-inverse) solution; separable: logistic loss on linearly "
                  "separable data, compared with the hard-margin SVM direction (Soudry et al. "
                  "2018)"),
           integer("n", 50, 2, 1e5, "training examples"),
           integer("dim", 200, 1, 1e5, "input dimension"),
           integer("steps", 10000, 1, {}, "gradient-descent steps"),
           num("lr", 0.0, 0.0, {},
               "step size (0: 1 / the loss's smoothness constant L, a safe step: the "
               "convergence proofs allow up to 2 / L)"),
           num("init_scale", 0.0, 0.0, {},
               "std of the Gaussian initial weights (0: start from zero, as the theorems do)"),
           num("noise", 0.1, 0.0, {}, "std of the label noise (least_squares)"),
           num("margin", 0.1, 0.0, 3.0,
               "separable: points closer than this to the true separator are redrawn (at most 3: "
               "a Gaussian point lies that far 1 time in 370)"),
           integer("log_points", 40, 2, 1000,
                   "log-spaced steps at which the iterate is compared with the solution (fewer "
                   "where rounding merges early steps)"),
       }});
  s.push_back(
      {"range",
       "LR range test (lab lr_range): one run whose LR rises exponentially, one step per LR",
       "",
       {
           num("start_lr", 1e-6, kTiny, {}, "LR of the first step"),
           num("end_lr", 10.0, kTiny, {}, "LR of the last step"),
           integer("steps", 300, 2, {}, "steps from start_lr to end_lr"),
           num("smoothing", 0.9, 0.0, 0.999, "beta of the loss's moving average (0: raw)"),
           num("stop_factor", 4.0, 1.0, {},
               "stop when the smoothed loss exceeds this times its lowest value (or is not "
               "finite): the divergence that ends a range test"),
       }});
  return s;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string number_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

std::string type_name(FieldType t) {
  switch (t) {
    case FieldType::Int:
      return "int";
    case FieldType::Number:
      return "number";
    case FieldType::Bool:
      return "bool";
    case FieldType::String:
      return "string";
    case FieldType::IntList:
      return "int list";
    case FieldType::NumberList:
      return "number list";
    case FieldType::StringList:
      return "string list";
    case FieldType::NumberMap:
      return "object of numbers";
    case FieldType::Seeds:
      return "int or int list";
  }
  return "?";
}

}  // namespace

const Field* Section::find(const std::string& key) const {
  for (const auto& f : fields)
    if (f.key == key) return &f;
  return nullptr;
}

const std::vector<Section>& config_schema() {
  static const std::vector<Section> schema = build();
  return schema;
}

const Section* find_section(const std::string& name) {
  for (const auto& s : config_schema())
    if (s.name == name) return &s;
  return nullptr;
}

std::string describe_allowed(const Field& f) {
  // Keys whose values config.cpp checks further than their type and bounds say.
  static const std::map<std::string, std::string> checked_further = {
      {"population", "\"auto\", \"off\" or a member count >= 1"},
      {"betas", "two numbers in [0, 1)"},
      {"noise_batches", "two integers >= 1, the first smaller"},
      {"interpolate_range", "two numbers, the first smaller"},
      {"eps_steps", "an integer >= 4 (more than 10 while eps_sharpness is on and eps_tol > 0)"},
      {"milestones", "a list of numbers >= 0, none below the one before"},
      {"end_lr", "a number above start_lr"},
      {"epochs", "an integer >= 0 (0 only with steps > 0, or in lab lr_range)"},
      {"nesterov", "true or false (true only with momentum > 0)"},
  };
  if (auto it = checked_further.find(f.key); it != checked_further.end()) return it->second;
  std::string range;
  if (f.min && *f.min == kTiny && !f.max) {
    range = " > 0";
  } else if (f.min && f.max) {
    range = " in [" + number_text(*f.min) + ", " + number_text(*f.max) + "]";
  } else if (f.min) {
    range = " >= " + number_text(*f.min);
  } else if (f.max) {
    range = " <= " + number_text(*f.max);
  }
  switch (f.type) {
    case FieldType::Int:
      return "an integer" + range;
    case FieldType::Number:
      return "a number" + range;
    case FieldType::Bool:
      return "true or false";
    case FieldType::String:
      return f.choices.empty() ? "a string" : "one of: " + join(f.choices, ", ");
    case FieldType::IntList:
      return "a list of integers" + range;
    case FieldType::NumberList:
      return "a list of numbers" + range;
    case FieldType::StringList:
      return "a list of strings";
    case FieldType::NumberMap:
      return "an object mapping names to numbers" + range;
    case FieldType::Seeds:
      return "a seed count n in [1, 100000] or a list of distinct integer seeds in [0, 2147483647]";
  }
  return "";
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    // "optimizer" for "optim": a known key that the word starts with (or the other way round).
    if (c.size() >= 3 && word.size() >= 3 && (word.rfind(c, 0) == 0 || c.rfind(word, 0) == 0))
      return c;
  }
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::string unknown_key_message(const std::string& key, const std::vector<std::string>& known) {
  std::string msg = "unknown key";
  std::string guess = did_you_mean(key, known);
  if (!guess.empty()) msg += " (did you mean \"" + guess + "\"?)";
  msg += "; allowed: ";
  for (size_t i = 0; i < known.size(); ++i) msg += (i ? ", " : "") + known[i];
  return msg;
}

std::string schema_markdown() {
  std::ostringstream os;
  os << "# Config keys\n\nGenerated by `empiric keys --markdown` from the schema in "
        "labs/core/schema.cpp; a test checks that this file matches it.\n";
  for (const auto& s : config_schema()) {
    os << "\n## " << (s.name.empty() ? "(top level)" : s.name) << "\n\n" << s.doc << ".";
    if (!s.variant_key.empty())
      os << " Keys marked *only* apply to some values of `" << s.variant_key << "`.";
    os << "\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
    for (const auto& f : s.fields) {
      os << "| `" << f.key << "` | " << type_name(f.type) << " | `" << f.default_value.dump()
         << "` | " << describe_allowed(f) << " | " << f.doc;
      if (!f.only_for.empty()) os << " (*only* " << join(f.only_for, ", ") << ")";
      os << " |\n";
    }
  }
  os << "\n## sweep\n\nAn object mapping a dotted key (`optim.lr`) to the list of values a grid "
        "takes there; trials are the grid times the seeds.\n\n## presets\n\nAn object mapping a "
        "preset name (`quick`, `full`) to a partial config merged over the base before "
        "overrides.\n";
  return os.str();
}

}  // namespace empiric
