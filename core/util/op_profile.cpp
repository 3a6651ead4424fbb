#include "core/util/op_profile.h"

#include <ATen/record_function.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>

namespace mgl {
namespace {

using Clock = std::chrono::steady_clock;

struct Frame {
  std::string name;
  Clock::time_point start;
  double child_ms = 0;
};

std::mutex g_mu;
std::map<std::string, OpProfile::Row> g_rows;
std::atomic<bool> g_active{false};
int g_callers = 0;  // MEGALODON_OP_PROFILE_CALLERS, read when a profile starts
thread_local std::vector<Frame> t_stack;

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  t_stack.push_back({fn.name(), Clock::now(), 0.0});
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
  (void)fn;
  if (t_stack.empty()) return;
  Frame f = std::move(t_stack.back());
  t_stack.pop_back();
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - f.start).count();
  if (!t_stack.empty()) t_stack.back().child_ms += ms;
  std::lock_guard<std::mutex> lock(g_mu);
  std::string key = f.name;
  for (int i = 0; i < g_callers && i < static_cast<int>(t_stack.size()); ++i)
    key += " < " + t_stack[t_stack.size() - 1 - i].name;
  auto& r = g_rows[key];
  r.name = key;
  r.calls += 1;
  r.total_ms += ms;
  r.self_ms += ms - f.child_ms;
}

}  // namespace

OpProfile::OpProfile() {
  TORCH_CHECK(!g_active.exchange(true), "OpProfile: one profile at a time");
  clear();
  const char* callers = std::getenv("MEGALODON_OP_PROFILE_CALLERS");
  g_callers = callers ? std::max(0, std::atoi(callers)) : 0;
  handle_ = at::addGlobalCallback(at::RecordFunctionCallback(&on_start, &on_end)
                                      .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
}

OpProfile::~OpProfile() {
  at::removeCallback(handle_);
  g_active.store(false);
}

void OpProfile::clear() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_rows.clear();
}

std::vector<OpProfile::Row> OpProfile::rows() const {
  std::vector<Row> out;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (const auto& [name, r] : g_rows) out.push_back(r);
  }
  std::sort(out.begin(), out.end(), [](const Row& a, const Row& b) { return a.self_ms > b.self_ms; });
  return out;
}

}  // namespace mgl
