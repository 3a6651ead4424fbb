// Significance of a difference between two rows of a sweep table: Student's t distribution (our own
// incomplete-beta evaluation, no statistics library) and the two confidence intervals a seed sweep
// needs — Welch's for two independent samples with unequal variances, and the paired interval for
// runs that share their seeds (same seed = same data order and, per variant, the same draw of
// initial weights from the seed, so the per-seed differences remove the seed's shared part).
//
// Textbook definitions (e.g. Welch 1947; any statistics text):
//   Welch:   d = x̄_a − x̄_b,  se² = s_a²/n_a + s_b²/n_b,
//            ν = se⁴ / ((s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1))   (Welch–Satterthwaite),
//            d ± t_{(1+c)/2, ν} · se.
//   Paired:  d_i = a_i − b_i over the n common seeds,  d̄ ± t_{(1+c)/2, n−1} · s_d/√n.
#pragma once
#include <string>
#include <vector>

namespace mgl::harness::stats {

// P(T ≤ t) for Student's t with ν > 0 degrees of freedom (ν need not be an integer; Welch's is
// not). Through the regularised incomplete beta function: P(|T| > t) = I_{ν/(ν+t²)}(ν/2, 1/2).
// Accurate to about 1e-14 absolute.
double student_t_cdf(double t, double df);

// The p-quantile of Student's t with ν > 0 degrees of freedom, 0 < p < 1 (e.g. p = 0.975 for a
// two-sided 95 % interval). Solved from the CDF by bisection to about 1e-12 relative.
// Throws std::invalid_argument outside those ranges.
double student_t_quantile(double p, double df);

// The regularised incomplete beta function I_x(a, b), a, b > 0, 0 ≤ x ≤ 1 (continued fraction).
double incomplete_beta(double x, double a, double b);

enum class IntervalKind { none, welch, paired };
const char* to_string(IntervalKind k);

// A confidence interval for a difference of means (a − b).
struct Interval {
  IntervalKind kind = IntervalKind::none;
  double diff = 0;         // the difference of means (paired: the mean of the differences)
  double low = 0, high = 0;  // the interval; equal to diff when kind == none
  double se = 0, df = 0;   // standard error of diff and degrees of freedom (0 when none)
  double t = 0;            // the t quantile used
  int n_a = 0, n_b = 0;    // values used from each side (paired: both = the pairs)
  std::string why_none;    // kind == none: why no interval could be formed
  // The marker: an interval was formed and it does not contain 0.
  bool excludes_zero() const { return kind != IntervalKind::none && (low > 0 || high < 0); }
};

// Welch's interval for mean(a) − mean(b); needs ≥ 2 values on each side and some spread.
Interval welch_interval(const std::vector<double>& a, const std::vector<double>& b, double confidence = 0.95);
// The paired interval for mean(a_i − b_i); a and b are the values of the same seeds, in the same
// order; needs ≥ 2 pairs and differences that are not all equal.
Interval paired_interval(const std::vector<double>& a, const std::vector<double>& b, double confidence = 0.95);

}  // namespace mgl::harness::stats
