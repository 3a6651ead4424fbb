#include "harness/report/stats.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace mgl::harness::stats {

namespace {

// The continued fraction of I_x(a, b) (its standard expansion, evaluated by the modified Lentz
// method): I_x(a, b) = x^a (1−x)^b / (a B(a, b)) · 1 / (1 + d_1/(1 + d_2/(1 + …))) with
//   d_{2m+1} = −(a+m)(a+b+m) x / ((a+2m)(a+2m+1)),   d_{2m} = m(b−m) x / ((a+2m−1)(a+2m)).
// It converges quickly for x < (a+1)/(a+b+2); the caller uses the symmetry otherwise.
double beta_continued_fraction(double x, double a, double b) {
  constexpr double kTiny = 1e-300, kEps = 1e-16;
  double f = 1.0, c = 1.0, d = 0.0;
  for (int i = 1; i <= 10000; ++i) {
    const int m = i / 2;
    const double coeff = (i % 2 == 1) ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                                      : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    d = 1.0 + coeff * d;
    if (std::abs(d) < kTiny) d = kTiny;
    d = 1.0 / d;
    c = 1.0 + coeff / c;
    if (std::abs(c) < kTiny) c = kTiny;
    const double delta = c * d;
    f *= delta;
    if (std::abs(delta - 1.0) < kEps) break;
  }
  return f;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// Sample variance (n − 1), two-pass.
double variance_of(const std::vector<double>& v, double mean) {
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return ss / static_cast<double>(v.size() - 1);
}

void check_confidence(double c) {
  if (!(c > 0 && c < 1)) throw std::invalid_argument(fmt::format("confidence must lie in (0, 1), got {}", c));
}

Interval none(double diff, int n_a, int n_b, std::string why) {
  Interval i;
  i.diff = i.low = i.high = diff;
  i.n_a = n_a;
  i.n_b = n_b;
  i.why_none = std::move(why);
  return i;
}

void finish(Interval& i, double confidence) {
  i.t = student_t_quantile(0.5 + confidence / 2.0, i.df);
  i.low = i.diff - i.t * i.se;
  i.high = i.diff + i.t * i.se;
}

}  // namespace

double incomplete_beta(double x, double a, double b) {
  if (!(a > 0 && b > 0) || !(x >= 0 && x <= 1))
    throw std::invalid_argument(fmt::format("incomplete_beta: need a, b > 0 and 0 <= x <= 1, got x={} a={} b={}", x, a, b));
  if (x == 0 || x == 1) return x;
  const double log_front =
      a * std::log(x) + b * std::log1p(-x) - (std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b));
  if (x < (a + 1) / (a + b + 2)) return std::exp(log_front) / (a * beta_continued_fraction(x, a, b));
  return 1.0 - std::exp(log_front) / (b * beta_continued_fraction(1.0 - x, b, a));
}

double student_t_cdf(double t, double df) {
  if (!(df > 0)) throw std::invalid_argument(fmt::format("student_t_cdf: degrees of freedom must be > 0, got {}", df));
  if (std::isnan(t)) return t;
  if (std::isinf(t)) return t > 0 ? 1.0 : 0.0;
  // P(|T| > |t|) = I_{ν/(ν+t²)}(ν/2, 1/2); ν/(ν+t²) is formed as 1/(1 + t²/ν) to keep it exact for large ν.
  const double tail = incomplete_beta(1.0 / (1.0 + t * t / df), df / 2.0, 0.5);
  return t >= 0 ? 1.0 - tail / 2.0 : tail / 2.0;
}

double student_t_quantile(double p, double df) {
  if (!(p > 0 && p < 1)) throw std::invalid_argument(fmt::format("student_t_quantile: p must lie in (0, 1), got {}", p));
  if (!(df > 0) || std::isinf(df))
    throw std::invalid_argument(fmt::format("student_t_quantile: degrees of freedom must be finite and > 0, got {}", df));
  if (p == 0.5) return 0.0;
  // Solve the two-sided tail P(|T| > t) = 2·min(p, 1 − p) for t > 0: the tail falls monotonically
  // from 1 at t = 0, so bracket and bisect (robust for any ν, including the heavy ν < 1 tails).
  const double target = 2.0 * std::min(p, 1.0 - p);
  auto tail = [df](double t) { return incomplete_beta(1.0 / (1.0 + t * t / df), df / 2.0, 0.5); };
  double lo = 0.0, hi = 1.0;
  while (tail(hi) > target) {
    lo = hi;
    hi *= 2.0;
    if (hi > 1e300) break;
  }
  for (int i = 0; i < 400 && hi - lo > 1e-13 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (tail(mid) > target ? lo : hi) = mid;
  }
  const double t = 0.5 * (lo + hi);
  return p > 0.5 ? t : -t;
}

const char* to_string(IntervalKind k) {
  switch (k) {
    case IntervalKind::welch: return "welch";
    case IntervalKind::paired: return "paired";
    case IntervalKind::none: return "none";
  }
  return "none";
}

Interval welch_interval(const std::vector<double>& a, const std::vector<double>& b, double confidence) {
  check_confidence(confidence);
  const int na = static_cast<int>(a.size()), nb = static_cast<int>(b.size());
  if (na == 0 || nb == 0) return none(std::numeric_limits<double>::quiet_NaN(), na, nb, "no value on one side");
  const double ma = mean_of(a), mb = mean_of(b);
  if (na < 2 || nb < 2)
    return none(ma - mb, na, nb, fmt::format("an interval needs at least 2 seeds on each side (have {} and {})", na, nb));
  const double va = variance_of(a, ma) / na, vb = variance_of(b, mb) / nb;  // s²/n
  if (!(va + vb > 0)) return none(ma - mb, na, nb, "no spread over seeds on either side: the interval is undefined");
  Interval i;
  i.kind = IntervalKind::welch;
  i.diff = ma - mb;
  i.n_a = na;
  i.n_b = nb;
  i.se = std::sqrt(va + vb);
  i.df = (va + vb) * (va + vb) / (va * va / (na - 1) + vb * vb / (nb - 1));
  finish(i, confidence);
  return i;
}

Interval paired_interval(const std::vector<double>& a, const std::vector<double>& b, double confidence) {
  check_confidence(confidence);
  if (a.size() != b.size())
    throw std::invalid_argument(fmt::format("paired_interval: {} and {} values are not pairs", a.size(), b.size()));
  const int n = static_cast<int>(a.size());
  if (n == 0) return none(std::numeric_limits<double>::quiet_NaN(), 0, 0, "no common seed");
  std::vector<double> d(a.size());
  for (size_t k = 0; k < a.size(); ++k) d[k] = a[k] - b[k];
  const double md = mean_of(d);
  if (n < 2) return none(md, n, n, "a paired interval needs at least 2 common seeds (have 1)");
  const double vd = variance_of(d, md);
  if (!(vd > 0)) return none(md, n, n, "the per-seed differences are all equal: the interval is undefined");
  Interval i;
  i.kind = IntervalKind::paired;
  i.diff = md;
  i.n_a = i.n_b = n;
  i.se = std::sqrt(vd / n);
  i.df = n - 1;
  finish(i, confidence);
  return i;
}

}  // namespace mgl::harness::stats
