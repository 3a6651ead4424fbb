// What a user sees of an error (issue 23): LibTorch's C++ backtrace is cut from every message, its
// own errors and ours quoting them, unless $MEGALODON_DEBUG is set (the CLI's --debug). Oracle: the
// markers LibTorch writes before a backtrace, checked present in the raw message first.
#include <catch2/catch.hpp>

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "harness/util/user_message.h"

namespace {
bool has_backtrace(const std::string& s) {
  return s.find("Exception raised from") != std::string::npos || s.find("frame #") != std::string::npos;
}

// A c10::Error thrown the way LibTorch throws its own (TORCH_CHECK), caught as std::exception.
std::string torch_error_what() {
  try {
    TORCH_CHECK(false, "expected a 2-D tensor, got 3 dimensions");
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

struct DebugEnv {
  explicit DebugEnv(bool on) {
    const char* old = std::getenv("MEGALODON_DEBUG");
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (on)
      setenv("MEGALODON_DEBUG", "1", 1);
    else
      unsetenv("MEGALODON_DEBUG");
  }
  ~DebugEnv() {
    if (had_)
      setenv("MEGALODON_DEBUG", old_.c_str(), 1);
    else
      unsetenv("MEGALODON_DEBUG");
  }
  bool had_ = false;
  std::string old_;
};
}  // namespace

TEST_CASE("user_message cuts LibTorch's backtrace unless --debug", "[errors]") {
  const std::string raw = torch_error_what();
  REQUIRE(has_backtrace(raw));  // the premise: LibTorch's what() carries one
  try {
    TORCH_CHECK(false, "expected a 2-D tensor, got 3 dimensions");
  } catch (const std::exception& e) {
    {
      DebugEnv env(false);
      const std::string msg = mgl::harness::user_message(e);
      CHECK(msg.find("expected a 2-D tensor, got 3 dimensions") != std::string::npos);
      CHECK_FALSE(has_backtrace(msg));
      CHECK(msg.find('\n') == std::string::npos);
    }
    {
      DebugEnv env(true);
      CHECK(mgl::harness::user_message(e) == std::string(e.what()));
      CHECK(has_backtrace(mgl::harness::user_message(e)));
    }
  }
  // Our own error quoting LibTorch's message: the quote's backtrace goes, our text stays.
  const std::runtime_error ours(fmt::format("model.pt: cannot read it: {}", raw));
  {
    DebugEnv env(false);
    const std::string msg = mgl::harness::user_message(ours);
    CHECK(msg.rfind("model.pt: cannot read it: ", 0) == 0);
    CHECK(msg.find("expected a 2-D tensor") != std::string::npos);
    CHECK_FALSE(has_backtrace(msg));
  }
  {
    DebugEnv env(true);
    CHECK(has_backtrace(mgl::harness::user_message(ours)));
  }
  // A message without a backtrace is left as it is, trailing blanks aside.
  DebugEnv env(false);
  CHECK(mgl::harness::user_message(std::runtime_error("data.tsv:3: unknown token 'FOO'\n")) ==
        "data.tsv:3: unknown token 'FOO'");
}
