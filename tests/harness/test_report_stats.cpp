// The statistics behind the significance columns of sweep tables (harness/report/stats.h).
// Oracles: the printed Student t table (three decimals, as in any statistics text), the closed forms
// of t for ν = 1 (Cauchy) and ν = 2, the normal limit, and Welch / paired intervals worked by hand
// on small data sets (the arithmetic is in the comments; the quantiles of non-integer ν were
// computed independently with mpmath's regularised incomplete beta to 17 digits).
#include <catch2/catch.hpp>

#include <cmath>
#include <stdexcept>

#include "harness/report/stats.h"

using namespace mgl::harness::stats;

namespace {
constexpr double kPi = 3.14159265358979323846;
}

TEST_CASE("t quantiles match the printed t table", "[report][stats]") {
  struct Row {
    double p, df, t;
  };
  // One-sided upper quantiles t_{p, ν} as printed (rounded to 3 decimals).
  const Row table[] = {
      {0.975, 1, 12.706}, {0.975, 2, 4.303},  {0.975, 3, 3.182},  {0.975, 4, 2.776},  {0.975, 5, 2.571},
      {0.975, 6, 2.447},  {0.975, 7, 2.365},  {0.975, 8, 2.306},  {0.975, 9, 2.262},  {0.975, 10, 2.228},
      {0.975, 15, 2.131}, {0.975, 20, 2.086}, {0.975, 30, 2.042}, {0.975, 60, 2.000}, {0.975, 120, 1.980},
      {0.95, 1, 6.314},   {0.95, 2, 2.920},   {0.95, 3, 2.353},   {0.95, 4, 2.132},   {0.95, 5, 2.015},
      {0.95, 10, 1.812},  {0.95, 30, 1.697},  {0.995, 1, 63.657}, {0.995, 2, 9.925},  {0.995, 3, 5.841},
      {0.995, 5, 4.032},  {0.995, 10, 3.169}, {0.995, 30, 2.750}, {0.9, 1, 3.078},    {0.9, 10, 1.372},
  };
  for (const Row& r : table) {
    INFO("p = " << r.p << ", df = " << r.df);
    REQUIRE(std::abs(student_t_quantile(r.p, r.df) - r.t) <= 0.0005 + 1e-9);
    REQUIRE(student_t_quantile(1.0 - r.p, r.df) == Approx(-student_t_quantile(r.p, r.df)).epsilon(1e-12));
  }
}

TEST_CASE("t quantiles: closed forms, the normal limit, non-integer ν and the CDF round trip", "[report][stats]") {
  for (double p : {0.6, 0.9, 0.975, 0.995, 0.9995}) {
    INFO("p = " << p);
    // ν = 1 is the Cauchy distribution: t = tan(π(p − ½)).
    REQUIRE(student_t_quantile(p, 1) == Approx(std::tan(kPi * (p - 0.5))).epsilon(1e-10));
    // ν = 2: t = (2p − 1) / √(2p(1 − p)).
    REQUIRE(student_t_quantile(p, 2) == Approx((2 * p - 1) / std::sqrt(2 * p * (1 - p))).epsilon(1e-10));
  }
  REQUIRE(student_t_quantile(0.975, 1e8) == Approx(1.959963984540054).epsilon(1e-7));
  // Welch's ν is rarely an integer (mpmath, 17 digits).
  REQUIRE(student_t_quantile(0.975, 25.0 / 17.0) == Approx(6.1881149407692548).epsilon(1e-10));
  REQUIRE(student_t_quantile(0.975, 3.7) == Approx(2.8675207071911894).epsilon(1e-10));
  REQUIRE(student_t_quantile(0.975, 0.5) == Approx(164.55767348048853).epsilon(1e-9));
  for (double df : {0.7, 1.0, 2.5, 6.0, 40.0})
    for (double p : {0.01, 0.3, 0.5, 0.8, 0.975}) {
      INFO("df = " << df << ", p = " << p);
      REQUIRE(student_t_cdf(student_t_quantile(p, df), df) == Approx(p).margin(1e-12));
    }
  REQUIRE(student_t_cdf(0, 3) == 0.5);
  REQUIRE(incomplete_beta(0.3, 2, 3) == Approx(0.3483).epsilon(1e-12));  // Σ_{j=2..4} C(4,j) xʲ(1−x)⁴⁻ʲ = 0.2646 + 0.0756 + 0.0081
  REQUIRE_THROWS_AS(student_t_quantile(1.0, 3), std::invalid_argument);
  REQUIRE_THROWS_AS(student_t_quantile(0.5, 0), std::invalid_argument);
}

TEST_CASE("Welch's interval on hand-worked examples", "[report][stats]") {
  SECTION("unequal variances and sizes, integer ν") {
    // a = {9, 9, 12}: mean 10, s² = (1 + 1 + 4)/2 = 3, s²/n = 1.
    // b = {1, 3, 5, 7, 9}: mean 5, s² = (16 + 4 + 0 + 4 + 16)/4 = 10, s²/n = 2.
    // d = 5, se = √3, ν = 3² / (1²/2 + 2²/4) = 9 / 1.5 = 6, t_{.975,6} = 2.447 (table).
    const Interval i = welch_interval({9, 9, 12}, {1, 3, 5, 7, 9});
    REQUIRE(i.kind == IntervalKind::welch);
    REQUIRE(i.diff == Approx(5.0));
    REQUIRE(i.se == Approx(std::sqrt(3.0)));
    REQUIRE(i.df == Approx(6.0));
    REQUIRE(i.t == Approx(2.44691185114497).epsilon(1e-10));
    REQUIRE(i.low == Approx(0.7618243521744983).epsilon(1e-10));
    REQUIRE(i.high == Approx(9.2381756478255017).epsilon(1e-10));
    REQUIRE(i.excludes_zero());
    REQUIRE(i.n_a == 3);
    REQUIRE(i.n_b == 5);
  }
  SECTION("n = 2 on each side, equal variances: ν = 2") {
    // a = {1, 3}: mean 2, s² = 2; b = {4, 6}: mean 5, s² = 2; se = √(1 + 1), ν = 4 / (1 + 1) = 2.
    const Interval i = welch_interval({1, 3}, {4, 6});
    REQUIRE(i.diff == Approx(-3.0));
    REQUIRE(i.df == Approx(2.0));
    REQUIRE(i.low == Approx(-3.0 - 4.3026527297494639 * std::sqrt(2.0)).epsilon(1e-10));
    REQUIRE(i.high == Approx(-3.0 + 4.3026527297494639 * std::sqrt(2.0)).epsilon(1e-10));
    REQUIRE(!i.excludes_zero());  // [−9.08, 3.08]: two seeds each cannot resolve a difference of 3 here
  }
  SECTION("n = 2, unequal variances: a fractional ν") {
    // a = {0, 2}: s²/n = 2/2 = 1; b = {10, 14}: s²/n = 8/2 = 4; d = 1 − 12 = −11, se = √5,
    // ν = 25 / (1/1 + 16/1) = 25/17.
    const Interval i = welch_interval({0, 2}, {10, 14});
    REQUIRE(i.df == Approx(25.0 / 17.0));
    REQUIRE(i.low == Approx(-24.837045660142139).epsilon(1e-10));
    REQUIRE(i.high == Approx(2.8370456601421385).epsilon(1e-10));
    REQUIRE(!i.excludes_zero());
  }
  SECTION("too few values or no spread: no interval, the reason given") {
    const Interval one = welch_interval({3}, {1, 2, 3});
    REQUIRE(one.kind == IntervalKind::none);
    REQUIRE(one.diff == Approx(1.0));
    REQUIRE(!one.excludes_zero());
    REQUIRE(one.why_none.find("at least 2") != std::string::npos);
    const Interval flat = welch_interval({2, 2}, {1, 1});
    REQUIRE(flat.kind == IntervalKind::none);
    REQUIRE(!flat.excludes_zero());
  }
}

TEST_CASE("paired interval on hand-worked examples", "[report][stats]") {
  SECTION("five pairs") {
    // d = a − b = {1, 2, 3, 4, 5}: mean 3, s_d² = 10/4 = 2.5, se = √(2.5/5) = √0.5, ν = 4,
    // t_{.975,4} = 2.776 (table): 3 ± 2.7764451·0.7071068 = [1.0368, 4.9632].
    const Interval i = paired_interval({3, 5, 7, 9, 11}, {2, 3, 4, 5, 6});
    REQUIRE(i.kind == IntervalKind::paired);
    REQUIRE(i.diff == Approx(3.0));
    REQUIRE(i.df == 4.0);
    REQUIRE(i.se == Approx(std::sqrt(0.5)));
    REQUIRE(i.low == Approx(1.0367568385224423).epsilon(1e-10));
    REQUIRE(i.high == Approx(4.9632431614775577).epsilon(1e-10));
    REQUIRE(i.excludes_zero());
  }
  SECTION("n = 2: ν = 1 and the Cauchy quantile") {
    // d = {1, 3}: mean 2, s_d = √2, se = 1, t_{.975,1} = 12.706: [−10.706, 14.706].
    const Interval i = paired_interval({5, 8}, {4, 5});
    REQUIRE(i.df == 1.0);
    REQUIRE(i.se == Approx(1.0));
    REQUIRE(i.low == Approx(2.0 - 12.706204736174705).epsilon(1e-10));
    REQUIRE(i.high == Approx(2.0 + 12.706204736174705).epsilon(1e-10));
    REQUIRE(!i.excludes_zero());
  }
  SECTION("pairing removes what the seed shares: Welch cannot tell, the paired interval can") {
    const std::vector<double> a{10.1, 12.2, 9.9}, b{10.0, 12.0, 9.7};  // d = {0.1, 0.2, 0.2}
    REQUIRE(!welch_interval(a, b).excludes_zero());
    const Interval p = paired_interval(a, b);
    REQUIRE(p.diff == Approx(0.5 / 3.0));
    REQUIRE(p.excludes_zero());
  }
  SECTION("one pair, identical differences, mismatched lengths") {
    REQUIRE(paired_interval({1}, {0}).kind == IntervalKind::none);
    REQUIRE(paired_interval({1, 2}, {0, 1}).kind == IntervalKind::none);  // d = {1, 1}: no spread
    REQUIRE_THROWS_AS(paired_interval({1, 2}, {0}), std::invalid_argument);
  }
}
