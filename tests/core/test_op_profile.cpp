// The CPU per-operator profile behind `bench model --breakdown` (core/util/op_profile.h): calls and
// self times per operator, and the rows split by caller under MEGALODON_OP_PROFILE_CALLERS.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "core/util/op_profile.h"

namespace {
const mgl::OpProfile::Row* find(const std::vector<mgl::OpProfile::Row>& rows, const std::string& name) {
  for (const auto& r : rows)
    if (r.name == name) return &r;
  return nullptr;
}
}  // namespace

TEST_CASE("OpProfile counts each operator's calls, and splits them by caller when asked", "[profile]") {
  torch::Tensor a = torch::randn({64, 64}), b = torch::randn({64, 64});
  {
    unsetenv("MEGALODON_OP_PROFILE_CALLERS");
    mgl::OpProfile prof;
    for (int i = 0; i < 3; ++i) (void)torch::mm(a, b);
    auto rows = prof.rows();
    const auto* mm = find(rows, "aten::mm");
    REQUIRE(mm);
    CHECK(mm->calls == 3);
    CHECK(mm->self_ms >= 0.0);
    CHECK(mm->total_ms >= mm->self_ms);
    for (size_t i = 1; i < rows.size(); ++i) CHECK(rows[i - 1].self_ms >= rows[i].self_ms);  // sorted
  }
  {
    setenv("MEGALODON_OP_PROFILE_CALLERS", "1", 1);
    mgl::OpProfile prof;
    // contiguous() of a transpose copies: aten::copy_ runs under aten::clone (under contiguous).
    (void)a.t().contiguous();
    unsetenv("MEGALODON_OP_PROFILE_CALLERS");
    auto rows = prof.rows();
    const auto* copy = find(rows, "aten::copy_ < aten::clone");
    INFO("rows: " << rows.size());
    REQUIRE(copy);
    CHECK(copy->calls == 1);
    CHECK_FALSE(find(rows, "aten::copy_"));  // no row without its caller
  }
  CHECK_THROWS_WITH(([] {
                      mgl::OpProfile one;
                      mgl::OpProfile two;
                    }()),
                    Catch::Contains("one profile at a time"));
}
