// Catch2 v3 behind the Catch2 v2 header the tests include (<catch2/catch.hpp>). CMake puts this
// folder on the include path only when the Catch2 found is v3 (Debian trixie; bookworm has v2),
// so the tests are written once against v2's spellings and this header maps the few that v3
// renamed: Catch::Contains (string) → Catch::Matchers::ContainsSubstring, the string matchers
// in namespace Catch, Approx at global scope, and CATCH_CONFIG_MAIN.
#pragma once

#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <string>

namespace Catch {
inline Matchers::StringContainsMatcher Contains(const std::string& s, CaseSensitive cs = CaseSensitive::Yes) {
  return Matchers::ContainsSubstring(s, cs);
}
using Matchers::EndsWith;
using Matchers::StartsWith;
}  // namespace Catch

using Catch::Approx;

#ifdef CATCH_CONFIG_MAIN
#include <catch2/catch_session.hpp>
int main(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
#endif
