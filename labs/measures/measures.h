// Measures of a trained model, computed at the end of a trial and stored with it.
//
//   top_hessian_eigenvalue  the largest eigenvalue of the training loss's Hessian on a fixed
//                           subset, by power iteration on Hessian-vector products (double
//                           backward), until the estimate changes by less than `tol` (relative).
//   gradient_noise_scale    B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018, appendix A),
//                           from mean squared gradient norms at two batch sizes:
//                           E|G_B|^2 = |G|^2 + tr(Sigma) / B, solved for |G|^2 and tr(Sigma).
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "data/datasets.h"
#include "models/models.h"

namespace empiric {

using json = nlohmann::json;

struct EigenEstimate {
  double value = 0;
  int iterations = 0;
  bool converged = false;
};

EigenEstimate top_hessian_eigenvalue(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                     bool regression, int max_iterations, double tol,
                                     uint64_t seed);

struct NoiseScale {
  double b_simple = 0, gradient_sq = 0, trace_sigma = 0;
};

NoiseScale gradient_noise_scale(Net& model, const torch::Tensor& x, const torch::Tensor& y,
                                bool regression, int64_t small_batch, int64_t big_batch,
                                int repeats, uint64_t seed);

// The measures a validated "measure" section asks for, as name -> value (JSON null when a
// measure could not be computed: a non-finite model, or B_simple when the |G|^2 estimate is not
// positive, which happens near a minimum unless noise_repeats is large).
json compute_measures(const json& measure, Net& model, const Dataset& data, uint64_t seed);

}  // namespace empiric
