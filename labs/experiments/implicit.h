// The implicit lab (Q102): full-batch gradient descent on a linear model, in double precision, set
// beside the solution that theory says gradient descent picks among the many that fit.
//   least_squares  under-determined regression (n < dim) from w = 0: GD stays in the row space of
//                  X, so it converges to the minimum-norm interpolant X^T (X X^T)^-1 y (the
//                  pseudo-inverse solution). From w0 != 0 it converges to that plus w0's
//                  null-space part, which the lab also checks.
//   separable      logistic loss on linearly separable data from w = 0: the loss has no minimum,
//                  |w| grows like log t and the direction w/|w| converges to the hard-margin SVM
//                  direction (Soudry et al. 2018), with an angle shrinking like 1/log t.
// Torch-free: small dense problems in plain C++, so every number is exact to double precision.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace empiric {

using json = nlohmann::json;

// Row-major n x d.
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> a;
  Matrix() = default;
  Matrix(int64_t r, int64_t c) : rows(r), cols(c), a(size_t(r * c), 0.0) {}
  double& operator()(int64_t r, int64_t c) { return a[size_t(r * cols + c)]; }
  double operator()(int64_t r, int64_t c) const { return a[size_t(r * cols + c)]; }
};

using Vec = std::vector<double>;

// X^T (X X^T)^-1 y by a Cholesky solve of the n x n Gram matrix (X must have full row rank).
Vec min_norm_solution(const Matrix& x, const Vec& y);
// w0 minus its projection on the row space of X: the part gradient descent never changes.
Vec null_space_part(const Matrix& x, const Vec& w0);
// `steps` of w <- w - lr X^T (X w - y) / n (the gradient of |Xw - y|^2 / 2n), from w0.
Vec gd_least_squares(const Matrix& x, const Vec& y, Vec w0, double lr, long long steps);
// The largest eigenvalue of X^T X / n (power iteration): the least-squares loss's smoothness.
double gram_top_eigenvalue(const Matrix& x);

// The hard-margin SVM through the origin: argmin |w| s.t. y_i x_i.w >= 1 (labels +-1), by
// coordinate ascent on its dual. Throws std::runtime_error if the data are not separable or the
// solver has not converged within max_sweeps passes.
Vec max_margin_direction(const Matrix& x, const Vec& y, double tol = 1e-12,
                         int max_sweeps = 200000);
// min_i y_i x_i.w / |w|.
double normalized_margin(const Matrix& x, const Vec& y, const Vec& w);
// The angle between two vectors in degrees (0 when either is zero).
double angle_degrees(const Vec& a, const Vec& b);

// One trial of the lab: the problem drawn from `seed`, GD run, the comparison recorded. Calls
// `on_point(step, values)` at the section's log-spaced steps (up to log_points of them) and `on_progress(done, total)` now
// and then; returns the summary.
using ImplicitPoint =
    std::function<void(long long, const std::vector<std::pair<std::string, double>>&)>;
json run_implicit(const json& section, uint64_t seed, const ImplicitPoint& on_point,
                  const std::function<void(long long, long long)>& on_progress);

}  // namespace empiric
