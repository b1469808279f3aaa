// Measures of a trained model, computed at the end of a trial and stored with it.
//
//   top_hessian_eigenvalue  the largest eigenvalue of the training loss's Hessian on a fixed
//                           subset, by power iteration on Hessian-vector products (double
//                           backward), until the estimate changes by less than `tol` (relative).
//                           Power iteration finds the eigenvalue of largest magnitude: when that
//                           is a negative one l, a second iteration on H - l I finds the top.
//   gradient_noise_scale    B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018, appendix A),
//                           from mean squared gradient norms at two batch sizes:
//                           E|G_B|^2 = |G|^2 + tr(Sigma) / B, solved for |G|^2 and tr(Sigma).
//   hessian_trace           Hutchinson's estimator E[v^T H v] = tr H over Rademacher v, with the
//                           standard error of the mean over its samples.
//   eps_sharpness           Keskar et al. 2017: the largest loss rise in the box
//                           |delta_i| <= eps (|w_i| + 1), found by projected sign-gradient ascent
//                           from a random point of the box until the largest rise stops
//                           growing, as 100 (L_max - L) / (1 + L).
//   sigma_sharpness         the mean loss rise under w_i + sigma |w_i| z_i, z ~ N(0, 1): a
//                           magnitude-aware PAC-Bayes style measure (Jiang et al. 2020). It is
//                           unchanged by the ReLU rescaling of Dinh et al. 2017; the Hessian
//                           measures are not.
//   landscape               filter-normalized random directions (Li et al. 2018), the loss on a
//                           2-D grid along two of them and on the line between two solutions.
//
// The algorithms take the parameters and a closure that evaluates the loss at their current
// values, so they are tested on plain quadratics; the Net overloads bind a model and a data set.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/datasets.h"
#include "models/models.h"
#include "train/loss.h"

namespace empiric {

using json = nlohmann::json;

struct EigenEstimate {
  double value = 0;
  int iterations = 0;  // in all (both iterations when shifted)
  bool converged = false;
  double shift = 0;  // the negative eigenvalue of larger magnitude than the top, when there was one
  // |H v - value v| at the last iterate (|v| = 1): some eigenvalue of H (not always the top)
  // lies within it of the value, and it is near 0 only once v is an eigenvector. The iteration
  // stops when the value changes by at most tol (relative) and the residual is at most
  // sqrt(tol) of the value; with close top eigenvalues that can still be percents below the top
  // (tol 1e-2, eigenvalues 1, 0.9, 0.85: 4 % in the median of 20 starts).
  double residual = NAN;
};

// The loss at the parameters' current values, with its autograd graph.
using LossFn = std::function<torch::Tensor()>;

// The top eigenvalue of the Hessian of `loss` in `params` by power iteration on Hessian-vector
// products from a random start (seeded), shifted by a negative eigenvalue of larger magnitude
// when the first iteration finds one. The model's own: in eval mode (dropout off).
EigenEstimate top_hessian_eigenvalue(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                     const Loss& loss, int max_iterations, double tol,
                                     uint64_t seed);
EigenEstimate top_hessian_eigenvalue(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                     int max_iterations, double tol, uint64_t seed);

struct NoiseScale {
  double b_simple = 0, gradient_sq = 0, trace_sigma = 0;
};

NoiseScale gradient_noise_scale(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                const Loss& loss, int64_t small_batch, int64_t big_batch,
                                int repeats, uint64_t seed);
// The estimates from the mean squared gradient norms at two batch sizes (McCandlish et al. 2018),
// for batches drawn without replacement from `examples` (0: i.i.d. draws): then
// E|G_B|^2 = |G|^2 + a_B tr(Sigma) with a_B = (n - B) / (B (n - 1)), not 1 / B, and the i.i.d.
// formulas bias |G|^2 by -tr(Sigma) / (n - 1) and tr(Sigma) by a factor n / (n - 1), inflating
// B_simple by (n / (n - 1)) / (1 - B_simple / (n - 1)).
NoiseScale noise_scale_from(double small_sq, double big_sq, int64_t small_batch, int64_t big_batch,
                            int64_t examples = 0);
// The measures b_simple, gradient_sq and trace_sigma, into out (b_simple null where |G|^2 or
// tr(Sigma) came out <= 0, non-finite values null).
void put_noise_scale(const NoiseScale& ns, json& out);

struct TraceEstimate {
  double value = 0, std_error = 0;
  int samples = 0;
};

TraceEstimate hutchinson_trace(const std::vector<torch::Tensor>& params, const LossFn& loss,
                               int samples, uint64_t seed);

// Projected sign-gradient ascent of half a box a step, from a random point of the box, for at
// most `max_steps` steps; with tol > 0 it stops once the largest loss found has risen by no more
// than tol times the rise so far over the last kEpsSharpnessWindow steps (core/config.h):
// converged. A corner of a convex quadratic is four steps away, but a trained ReLU network's
// ascent climbs for tens of steps: at a fixed 10 steps Q98's sharpest networks measured 7 to 30 %
// low. Leaves the parameters as they were.
struct EpsSharpness {
  double value = NAN;  // 100 (L_max - L) / (1 + L); NaN where a loss was not finite
  int steps = 0;       // ascent steps taken
  bool converged = false;
};
EpsSharpness eps_sharpness(const std::vector<torch::Tensor>& params, const LossFn& loss, double eps,
                           int max_steps, double tol, uint64_t seed);

struct SigmaSharpness {
  double mean_rise = 0, std_error = 0;
};
SigmaSharpness sigma_sharpness(const std::vector<torch::Tensor>& params, const LossFn& loss,
                               double sigma, int samples, uint64_t seed);

// One direction per parameter: random normal, then each filter (a slice along dim 0: a Linear
// row, a conv output channel) rescaled to the norm of the same filter of the weights; parameters
// of dim < 2 (biases, batch norm) get zeros, as in Li et al. 2018.
std::vector<torch::Tensor> filter_normalized_direction(const std::vector<torch::Tensor>& params,
                                                       at::Generator& gen);

// loss(w0 + a d1 + b d2) for a, b on an n x n grid over [-span, span]^2 (row-major, a slowest),
// each point set with one multi-tensor axpby pass. Leaves the parameters at w0.
std::vector<double> loss_surface(const std::vector<torch::Tensor>& params, const LossFn& loss,
                                 const std::vector<torch::Tensor>& d1,
                                 const std::vector<torch::Tensor>& d2, double span, int n);

// Sets the parameters to (1 - t) from + t to, one axpby pass each, for `points` values of t
// evenly from t_lo to t_hi, and calls at(t) at each; the parameters end at `to`'s values.
void along_line(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& from,
                const std::vector<torch::Tensor>& to, double t_lo, double t_hi, int points,
                const std::function<void(double)>& at);

// Dinh et al. 2017: multiplies the first Linear (or Conv) layer's weights and bias by alpha and
// the next one's weights by 1 / alpha. For alpha > 0 and a ReLU (positively homogeneous)
// activation between them the network computes exactly the same function. Throws UserError when
// the model has fewer than two such layers.
void rescale_relu_layers(Net& model, double alpha);

// Keskar et al. 2017's figure: the line from a trained model (t = 0) through `partner` (t = 1),
// another solution of the same architecture, with loss and accuracy on training and test
// examples at each point, and how much the training loss rises a quarter of the segment beyond
// each end.
json interpolation_curve(Net& model, Net& partner, const Dataset& data, const Loss& loss,
                         int64_t samples, double t_lo, double t_hi, int points);

// Guo et al. 2017's expected calibration error of class scores (logits) against labels: the
// examples fall into `bins` equal-width bins of confidence (the largest softmax probability;
// bin i holds (i / bins, (i + 1) / bins]), and ECE = sum over bins of (n_bin / n) |accuracy in
// the bin - mean confidence in the bin|.
struct Calibration {
  double ece = 0;
  double confidence = 0;  // mean confidence
  double accuracy = 0;
};
Calibration calibration_error(const torch::Tensor& logits, const torch::Tensor& labels, int bins);

// Per-class results of class scores against labels, over the classes the labels hold: the mean
// and the smallest of the classes' recalls, and the largest share of predictions one class gets.
struct PerClass {
  double balanced_accuracy = 0;
  double min_recall = 0;
  double max_prediction_share = 0;
};
PerClass per_class_results(const torch::Tensor& logits, const torch::Tensor& labels);

// The macro one-vs-rest ROC AUC of class scores (logits) against labels: for each class with
// examples of it and of others, the Mann-Whitney probability that one of its examples has a
// higher softmax probability for it than one of the others (ties count half, by midranks),
// averaged over those classes. NaN when the logits are not finite or no class qualifies.
double macro_auc(const torch::Tensor& logits, const torch::Tensor& labels);

// Accuracy against test labels of which a share `rate` (rounded to whole examples, drawn from
// `seed`) is flipped, each to a uniformly drawn other class, and the clean accuracy estimated back
// from it: with K classes and flips to the others alike, acc_noisy = acc (1 - rate K / (K - 1)) +
// rate / (K - 1), so acc = (acc_noisy - rate / (K - 1)) / (1 - rate K / (K - 1)) (needs
// rate < (K - 1) / K). `rate` is the share actually flipped.
struct NoisyLabelAccuracy {  // (clean, noisy and corrected NaN for non-finite logits)
  double clean = 0, noisy = 0, corrected = 0, rate = 0;
};
NoisyLabelAccuracy noisy_label_accuracy(const torch::Tensor& logits, const torch::Tensor& labels,
                                        double rate, uint64_t seed);

// The share of the units entering a ReLU-family activation (ReLU, LeakyReLU, PReLU; a channel
// of a convolution's output) whose input is at most 0 for every example of x, in eval mode; x goes
// through the network `chunk` examples at a time.
double dead_unit_fraction(Net& model, const torch::Tensor& x, int64_t chunk = 1024);

// The share of the entries of the weight tensors (two or more dimensions: not biases, batch-norm
// scales or PReLU slopes) whose magnitude is below `tol`.
double zero_fraction(const std::vector<torch::Tensor>& params, double tol);

// The norms of the loss's gradient with respect to the first and the last weight tensors (two or
// more dimensions) of `model`, in eval mode, on (x, y); `last` is NaN when there is only one.
struct GradientFlow {
  double first = 0, last = 0;
};
GradientFlow gradient_flow(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                           const Loss& loss);

// Accuracy on (x, y) with dropout off (`off`, eval mode), and with dropout left on and every
// other layer in eval mode: of one stochastic pass (`one_pass`) and of the mean softmax of
// `samples` passes (`mc_mean`, Monte Carlo dropout), in chunks of `batch` examples. Draws from
// the model's dropout generator (on a CPU the trial's own, continuing from where training left
// it; on a GPU torch's default one).
struct DropoutAccuracy {
  double off = 0, one_pass = 0, mc_mean = 0;
};
DropoutAccuracy dropout_accuracy(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                 int samples, int64_t batch);

// The measures a validated "measure" section asks for, as name -> value (JSON null when a
// measure could not be computed: a non-finite model, or B_simple when the |G|^2 estimate is not
// positive, which happens near a minimum unless noise_repeats is large).
json compute_measures(const json& measure, Net& model, const Dataset& data, const Loss& loss,
                      uint64_t seed);

}  // namespace empiric
