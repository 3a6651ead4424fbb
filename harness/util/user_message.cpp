#include "harness/util/user_message.h"

#include <c10/util/Exception.h>

#include <cstdlib>

namespace mgl::harness {
std::string user_message(const std::exception& e) {
  if (std::getenv("MEGALODON_DEBUG")) return e.what();
  std::string msg = e.what();
  if (auto c = dynamic_cast<const c10::Error*>(&e)) msg = c->what_without_backtrace();
  for (const char* marker : {"\nException raised from ", "\nframe #0:", "\nTraceback of TorchScript"}) {
    const size_t at = msg.find(marker);
    if (at != std::string::npos) msg.erase(at);
  }
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}
}  // namespace mgl::harness
