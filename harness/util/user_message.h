#pragma once
// An error as a user sees it. LibTorch's messages carry a C++ backtrace ("Exception raised from ...",
// "frame #0: ..."), also when one of our messages quotes them; a user gets the message without it.
// The backtrace stays when $MEGALODON_DEBUG is set (the CLI's --debug flag sets it).
#include <exception>
#include <string>

namespace mgl::harness {
std::string user_message(const std::exception& e);
}  // namespace mgl::harness
