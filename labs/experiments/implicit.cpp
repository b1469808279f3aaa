#include "experiments/implicit.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <stdexcept>

namespace empiric {
namespace {

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
double norm(const Vec& a) { return std::sqrt(dot(a, a)); }
Vec minus(const Vec& a, const Vec& b) {
  Vec out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = a[i] - b[i];
  return out;
}
// X v (n) and X^T u (d).
Vec times(const Matrix& x, const Vec& v) {
  Vec out(size_t(x.rows), 0.0);
  for (int64_t r = 0; r < x.rows; ++r) {
    const double* row = &x.a[size_t(r * x.cols)];
    double s = 0;
    for (int64_t c = 0; c < x.cols; ++c) s += row[c] * v[size_t(c)];
    out[size_t(r)] = s;
  }
  return out;
}
Vec times_t(const Matrix& x, const Vec& u) {
  Vec out(size_t(x.cols), 0.0);
  for (int64_t r = 0; r < x.rows; ++r) {
    const double* row = &x.a[size_t(r * x.cols)];
    const double ur = u[size_t(r)];
    for (int64_t c = 0; c < x.cols; ++c) out[size_t(c)] += row[c] * ur;
  }
  return out;
}

// Solves (X X^T) a = b by Cholesky; throws when X X^T is not positive definite.
Vec gram_solve(const Matrix& x, const Vec& b) {
  const int64_t n = x.rows;
  Matrix g(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t c = 0; c < x.cols; ++c) s += x(i, c) * x(j, c);
      g(i, j) = g(j, i) = s;
    }
  Matrix l(n, n);
  for (int64_t j = 0; j < n; ++j) {
    double s = g(j, j);
    for (int64_t k = 0; k < j; ++k) s -= l(j, k) * l(j, k);
    if (!(s > 1e-300)) throw std::runtime_error("X X^T is singular: X has no full row rank");
    l(j, j) = std::sqrt(s);
    for (int64_t i = j + 1; i < n; ++i) {
      double t = g(i, j);
      for (int64_t k = 0; k < j; ++k) t -= l(i, k) * l(j, k);
      l(i, j) = t / l(j, j);
    }
  }
  Vec z(static_cast<size_t>(n), 0.0), a(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double s = b[size_t(i)];
    for (int64_t k = 0; k < i; ++k) s -= l(i, k) * z[size_t(k)];
    z[size_t(i)] = s / l(i, i);
  }
  for (int64_t i = n - 1; i >= 0; --i) {
    double s = z[size_t(i)];
    for (int64_t k = i + 1; k < n; ++k) s -= l(k, i) * a[size_t(k)];
    a[size_t(i)] = s / l(i, i);
  }
  return a;
}

// Steps in 1..total at which the lab records: `points` log-spaced (fewer where rounding makes
// neighbours equal), always including the last.
std::vector<long long> log_steps(long long total, int points) {
  std::set<long long> s;
  for (int k = 0; k < points; ++k) {
    const double e = points == 1 ? 1.0 : double(k) / double(points - 1);
    s.insert(std::max(1LL, std::llround(std::exp(e * std::log(double(total))))));
  }
  s.insert(total);
  return {s.begin(), s.end()};
}

// Least-squares slope of ys against xs.
double slope(const std::vector<double>& xs, const std::vector<double>& ys) {
  if (xs.size() < 2) return NAN;
  double mx = 0, my = 0;
  for (size_t i = 0; i < xs.size(); ++i) mx += xs[i], my += ys[i];
  mx /= double(xs.size());
  my /= double(ys.size());
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < xs.size(); ++i)
    sxy += (xs[i] - mx) * (ys[i] - my), sxx += (xs[i] - mx) * (xs[i] - mx);
  return sxx > 0 ? sxy / sxx : NAN;
}

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(); }

// The iterate left the floats (a step size past the stable range): where it was first seen.
json diverged(long long at) { return {{"diverged_step", at}}; }

json run_least_squares(const json& s, std::mt19937_64& rng, const ImplicitPoint& on_point,
                       const std::function<void(long long, long long)>& on_progress) {
  const int64_t n = s["n"], d = s["dim"];
  const long long steps = s["steps"];
  std::normal_distribution<double> normal;
  Matrix x(n, d);
  for (auto& v : x.a) v = normal(rng);
  Vec w_true(static_cast<size_t>(d), 0.0), y(static_cast<size_t>(n), 0.0);
  for (auto& v : w_true) v = normal(rng) / std::sqrt(double(d));
  const Vec clean = times(x, w_true);
  for (int64_t i = 0; i < n; ++i) y[size_t(i)] = clean[size_t(i)] + s["noise"].get<double>() * normal(rng);
  Vec w(size_t(d), 0.0);
  const double init = s["init_scale"];
  if (init > 0)
    for (auto& v : w) v = init * normal(rng);
  const Vec w0 = w;

  const Vec w_plus = min_norm_solution(x, y);
  Vec predicted = null_space_part(x, w0);
  for (size_t i = 0; i < predicted.size(); ++i) predicted[i] += w_plus[i];
  const double smooth = gram_top_eigenvalue(x);
  const double lr = s["lr"].get<double>() > 0 ? s["lr"].get<double>() : 1.0 / smooth;
  const double plus_norm = norm(w_plus), y_norm = norm(y);

  std::vector<std::pair<std::string, double>> last;
  long long done = 0;
  for (long long at : log_steps(steps, s["log_points"])) {
    w = gd_least_squares(x, y, w, lr, at - done);
    done = at;
    last = {{"residual", norm(minus(times(x, w), y)) / y_norm},
            {"rel_dist_min_norm", norm(minus(w, w_plus)) / plus_norm},
            {"rel_dist_predicted", norm(minus(w, predicted)) / plus_norm},
            {"norm_ratio", norm(w) / plus_norm}};
    if (!std::isfinite(norm(w))) return diverged(at);
    if (on_point) on_point(at, last);
    if (on_progress) on_progress(at, steps);
  }
  json out;
  for (const auto& [k, v] : last) out[k] = finite_or_null(v);
  out["steps"] = steps;
  out["lr"] = lr;
  out["smoothness"] = smooth;
  out["lr_x_smoothness"] = lr * smooth;
  out["min_norm"] = plus_norm;
  out["init_null_part"] = norm(null_space_part(x, w0)) / plus_norm;
  out["n"] = n;
  out["dim"] = d;
  return out;
}

json run_separable(const json& s, std::mt19937_64& rng, const ImplicitPoint& on_point,
                   const std::function<void(long long, long long)>& on_progress) {
  const int64_t n = s["n"], d = s["dim"];
  const long long steps = s["steps"];
  const double margin = s["margin"];
  std::normal_distribution<double> normal;
  Vec w_true(static_cast<size_t>(d), 0.0);
  for (auto& v : w_true) v = normal(rng);
  const double wn = norm(w_true);
  for (auto& v : w_true) v /= wn;
  Matrix x(n, d);
  Vec y(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int tries = 0;; ++tries) {
      Vec row(static_cast<size_t>(d), 0.0);
      for (auto& v : row) v = normal(rng);
      const double m = dot(row, w_true);
      if (tries == 100000)
        throw std::runtime_error("no point " + std::to_string(margin) +
                                 " or farther from the separator in 100,000 draws");
      if (std::abs(m) >= margin) {
        for (int64_t c = 0; c < d; ++c) x(i, c) = row[size_t(c)];
        y[size_t(i)] = m >= 0 ? 1.0 : -1.0;
        break;
      }
    }
  }
  const Vec svm = max_margin_direction(x, y);
  const double svm_margin = normalized_margin(x, y, svm);
  const double smooth = gram_top_eigenvalue(x) / 4.0;  // logistic loss: sigma' <= 1/4
  const double lr = s["lr"].get<double>() > 0 ? s["lr"].get<double>() : 1.0 / smooth;
  Vec w(size_t(d), 0.0);
  const double init = s["init_scale"];
  if (init > 0)
    for (auto& v : w) v = init * normal(rng);

  // Soudry et al. (2018): w(t) = w_svm ln t + rho(t) with rho(t) bounded, from which the angle to
  // w_svm falls like 1 / ln t. The part of w off the SVM direction is rho's: it settles.
  const double svm_norm = norm(svm);
  const auto perp = [&](const Vec& v) {
    Vec out = v;
    const double a = dot(v, svm) / (svm_norm * svm_norm);
    for (size_t c = 0; c < out.size(); ++c) out[c] -= a * svm[c];
    return out;
  };
  std::vector<std::pair<long long, Vec>> kept;
  std::vector<std::pair<std::string, double>> last;
  long long done = 0;
  for (long long at : log_steps(steps, s["log_points"])) {
    for (; done < at; ++done) {
      const Vec m = times(x, w);
      Vec u(static_cast<size_t>(n), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const double z = y[size_t(i)] * m[size_t(i)];
        // d/dz log(1 + e^-z) = -1 / (1 + e^z), scaled by y_i / n.
        u[size_t(i)] = -y[size_t(i)] / (1.0 + std::exp(z)) / double(n);
      }
      const Vec g = times_t(x, u);
      for (int64_t c = 0; c < d; ++c) w[size_t(c)] -= lr * g[size_t(c)];
    }
    const Vec m = times(x, w);
    double loss = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double z = y[size_t(i)] * m[size_t(i)];
      loss += (z > 0 ? std::log1p(std::exp(-z)) : -z + std::log1p(std::exp(z))) / double(n);
    }
    last = {{"angle_deg", angle_degrees(w, svm)},
            {"w_norm", norm(w)},
            {"off_svm_norm", norm(perp(w))},
            {"margin_ratio", normalized_margin(x, y, w) / svm_margin},
            {"train_loss", loss}};
    if (!std::isfinite(norm(w))) return diverged(at);
    kept.emplace_back(at, w);
    if (on_point) on_point(at, last);
    if (on_progress) on_progress(at, steps);
  }
  // The recorded step nearest T / `factor`.
  const auto nearest = [&](double factor) {
    size_t best = 0;
    for (size_t k = 1; k < kept.size(); ++k)
      if (std::abs(std::log(double(kept[k].first) * factor / double(steps))) <
          std::abs(std::log(double(kept[best].first) * factor / double(steps))))
        best = k;
    return best;
  };
  // How far rho(t) = w(t) - w_svm ln t moved from the k-th recorded step to the l-th, over how far
  // w_svm ln t moved.
  const auto drift = [&](size_t k, size_t l) {
    const double ln_ratio = std::log(double(kept[l].first) / double(kept[k].first));
    Vec moved = minus(kept[l].second, kept[k].second);
    for (size_t c = 0; c < moved.size(); ++c) moved[c] -= svm[c] * ln_ratio;
    return norm(moved) / (svm_norm * ln_ratio);
  };
  const size_t end = kept.size() - 1, early = nearest(100.0), middle = nearest(10.0);
  // |w| against ln t over the last two decades.
  std::vector<double> lnt, norms;
  for (size_t k = early; k <= end; ++k) {
    lnt.push_back(std::log(double(kept[k].first)));
    norms.push_back(norm(kept[k].second));
  }
  const double angle_early = angle_degrees(kept[early].second, svm);
  json out;
  for (const auto& [k, v] : last) out[k == "angle_deg" ? "angle_end" : k] = finite_or_null(v);
  out["angle_at_1pct"] = finite_or_null(angle_early);
  out["angle_drop"] = finite_or_null(angle_early - last[0].second);
  out["angle_x_log_t"] = finite_or_null(last[0].second * std::log(double(steps)));
  out["residual_drift"] = finite_or_null(drift(early, end));
  // A settling rho moves less in the last decade than in the one before; a w turning toward some
  // other direction v than w_svm's would move as much (rho = (v - w_svm) ln t).
  out["residual_drift_ratio"] = finite_or_null(drift(middle, end) / drift(early, middle));
  const double norm_slope = slope(lnt, norms);
  out["norm_log_slope"] = finite_or_null(norm_slope);
  out["norm_slope_over_svm_norm"] = finite_or_null(norm_slope / svm_norm);
  out["svm_norm"] = norm(svm);
  out["svm_margin"] = svm_margin;
  out["steps"] = steps;
  out["lr"] = lr;
  out["smoothness"] = smooth;
  out["n"] = n;
  out["dim"] = d;
  return out;
}

}  // namespace

Vec min_norm_solution(const Matrix& x, const Vec& y) { return times_t(x, gram_solve(x, y)); }

Vec null_space_part(const Matrix& x, const Vec& w0) {
  return minus(w0, times_t(x, gram_solve(x, times(x, w0))));
}

Vec gd_least_squares(const Matrix& x, const Vec& y, Vec w, double lr, long long steps) {
  const double scale = lr / double(x.rows);
  for (long long s = 0; s < steps; ++s) {
    Vec r = times(x, w);
    for (size_t i = 0; i < r.size(); ++i) r[i] -= y[i];
    const Vec g = times_t(x, r);
    for (size_t c = 0; c < w.size(); ++c) w[c] -= scale * g[c];
  }
  return w;
}

double gram_top_eigenvalue(const Matrix& x) {
  Vec v(size_t(x.cols), 1.0);
  double lambda = 0;
  for (int it = 0; it < 1000; ++it) {
    const double vn = norm(v);
    if (vn == 0) return 0;
    for (auto& e : v) e /= vn;
    Vec next = times_t(x, times(x, v));
    for (auto& e : next) e /= double(x.rows);
    const double estimate = dot(v, next);
    v = std::move(next);
    if (it > 5 && std::abs(estimate - lambda) <= 1e-12 * std::abs(estimate)) return estimate;
    lambda = estimate;
  }
  return lambda;
}

Vec max_margin_direction(const Matrix& x, const Vec& y, double tol, int max_sweeps) {
  // Dual: max sum(a) - |sum a_i y_i x_i|^2 / 2 over a >= 0, w = sum a_i y_i x_i. Exact coordinate
  // maximization: a_i <- max(0, a_i + (1 - y_i x_i.w) / |x_i|^2).
  const int64_t n = x.rows, d = x.cols;
  Vec a(static_cast<size_t>(n), 0.0), w(static_cast<size_t>(d), 0.0), sq(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += x(i, c) * x(i, c);
    sq[size_t(i)] = s;
  }
  for (int sweep = 0; sweep < max_sweeps; ++sweep) {
    double biggest = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (sq[size_t(i)] == 0) continue;
      double m = 0;
      for (int64_t c = 0; c < d; ++c) m += x(i, c) * w[size_t(c)];
      const double old = a[size_t(i)];
      const double next = std::max(0.0, old + (1.0 - y[size_t(i)] * m) / sq[size_t(i)]);
      const double delta = next - old;
      if (delta == 0) continue;
      a[size_t(i)] = next;
      for (int64_t c = 0; c < d; ++c) w[size_t(c)] += delta * y[size_t(i)] * x(i, c);
      biggest = std::max(biggest, std::abs(delta) * std::sqrt(sq[size_t(i)]));
    }
    if (!std::isfinite(norm(w)) || norm(w) > 1e12)
      throw std::runtime_error("the data are not linearly separable through the origin");
    if (biggest <= tol * std::max(1.0, norm(w))) return w;
  }
  // Out of passes: not the SVM yet (on data that are not separable the dual weights grow without
  // end while w stays bounded), so not a direction to measure angles against.
  if (normalized_margin(x, y, w) <= 0)
    throw std::runtime_error("the data are not linearly separable through the origin");
  throw std::runtime_error("the max-margin solver did not converge in " +
                           std::to_string(max_sweeps) + " passes");
}

double normalized_margin(const Matrix& x, const Vec& y, const Vec& w) {
  const double wn = norm(w);
  if (wn == 0) return 0;
  const Vec m = times(x, w);
  double lowest = INFINITY;
  for (size_t i = 0; i < m.size(); ++i) lowest = std::min(lowest, y[i] * m[i]);
  return lowest / wn;
}

double angle_degrees(const Vec& a, const Vec& b) {
  const double na = norm(a), nb = norm(b);
  if (na == 0 || nb == 0) return 0;
  // theta = 2 atan2(|u - v|, |u + v|) for unit u, v: exact at every angle, where acos(u.v) loses
  // half the digits near 0 and 180 degrees.
  double minus2 = 0, plus2 = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double u = a[i] / na, v = b[i] / nb;
    minus2 += (u - v) * (u - v);
    plus2 += (u + v) * (u + v);
  }
  return 2.0 * std::atan2(std::sqrt(minus2), std::sqrt(plus2)) * 180.0 / M_PI;
}

json run_implicit(const json& section, uint64_t seed, const ImplicitPoint& on_point,
                  const std::function<void(long long, long long)>& on_progress) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + 102);
  if (section["problem"] == "least_squares") {
    return run_least_squares(section, rng, on_point, on_progress);
  }
  return run_separable(section, rng, on_point, on_progress);
}

}  // namespace empiric
