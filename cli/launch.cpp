// `megalodon launch`: N local processes of one megalodon subcommand, with the rendezvous
// environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT). A convenience for one machine; on clusters use torchrun or srun (README).
//
// When a rank fails (non-zero exit, or killed by a signal) the launcher stops the others
// (SIGTERM, then SIGKILL after --grace seconds) and reports which rank failed and how; a rank
// that hangs makes the others fail their next collective after dist.timeout_s. With
// --max-restarts K the job is started again (a `train` command gets --resume, so it continues
// from the last checkpoint), as torchrun's --max-restarts does.
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"

namespace mgl::cli {
namespace {

const char* kLaunchHelp = R"(usage: megalodon launch -n N [options] -- <subcommand> [args...]
Runs N processes of `megalodon <subcommand> args...` on this machine as one distributed job (c10d:
Gloo on CPUs, NCCL on GPUs), each with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR
and MASTER_PORT set as torchrun sets them. Example:
  megalodon launch -n 4 -- train experiments/lm/small/kjv_megalodon.toml dist.chunk_parallel=2

  -n, --nproc N        processes (ranks) to start
  --master-port P      TCP port of the rendezvous store (default: a free port)
  --max-restarts K     start the job again up to K times after a failure (train gets --resume)
  --grace S            seconds between SIGTERM and SIGKILL when stopping the ranks (default 10)
  --threads T          OMP_NUM_THREADS for each rank (default: cores / N, at least 1)
)";

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 29500;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 29500;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "ended";
}

// Runs one attempt; returns 0 when every rank exited 0, else 1 (after stopping the rest).
int run_once(const std::vector<std::string>& cmd, int n, int port, int threads, double grace) {
  std::map<pid_t, int> ranks;
  for (int r = 0; r < n; ++r) {
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("megalodon launch: fork");
      for (auto& [p, _] : ranks) kill(p, SIGKILL);
      return 1;
    }
    if (pid == 0) {
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(n).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(n).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      if (threads > 0) setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
      std::vector<char*> argv;
      std::string self = "/proc/self/exe";
      argv.push_back(const_cast<char*>("megalodon"));
      for (const auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(self.c_str(), argv.data());
      std::perror("megalodon launch: exec");
      _exit(127);
    }
    ranks[pid] = r;
  }
  int failed_rank = -1;
  std::string failure;
  size_t left = ranks.size();
  while (left > 0) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto it = ranks.find(pid);
    if (it == ranks.end()) continue;
    const int r = it->second;
    ranks.erase(it);
    --left;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && failed_rank < 0) {
      failed_rank = r;
      failure = describe_status(status);
      std::fprintf(stderr, "megalodon launch: rank %d %s; stopping the other %zu rank(s)\n", r, failure.c_str(),
                   left);
      for (auto& [p, _] : ranks) kill(p, SIGTERM);
      // Reap within the grace period, then SIGKILL whatever is left.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace);
      while (!ranks.empty() && std::chrono::steady_clock::now() < deadline) {
        pid_t q = waitpid(-1, &status, WNOHANG);
        if (q > 0) {
          ranks.erase(q);
          --left;
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
      for (auto& [p, rr] : ranks) {
        std::fprintf(stderr, "megalodon launch: rank %d did not stop within %.0f s; killing it\n", rr, grace);
        kill(p, SIGKILL);
      }
    }
  }
  if (failed_rank >= 0) {
    std::fprintf(stderr, "megalodon launch: the job failed: rank %d %s\n", failed_rank, failure.c_str());
    return 1;
  }
  return 0;
}

int launch_main(const std::vector<std::string>& args) {
  int n = 0, port = 0, restarts = 0, threads = 0;
  double grace = 10;
  std::vector<std::string> cmd;
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
        return args[++i];
      };
      auto number = [&](const std::string& v) {
        size_t used = 0;
        const long x = std::stol(v, &used);
        if (used != v.size() || x < 0) throw std::invalid_argument(a + ": expected a non-negative integer, got '" + v + "'");
        return static_cast<int>(x);
      };
      if (a == "--help" || a == "-h") {
        std::fputs(kLaunchHelp, stdout);
        return 0;
      } else if (a == "-n" || a == "--nproc") {
        n = number(value());
      } else if (a == "--master-port") {
        port = number(value());
      } else if (a == "--max-restarts") {
        restarts = number(value());
      } else if (a == "--threads") {
        threads = number(value());
      } else if (a == "--grace") {
        grace = number(value());
      } else if (a == "--") {
        cmd.assign(args.begin() + static_cast<long>(i) + 1, args.end());
        break;
      } else {
        throw std::invalid_argument("unknown option '" + a + "' (the command goes after --)");
      }
    }
    if (n < 1) throw std::invalid_argument("-n N (N >= 1) is required");
    if (cmd.empty()) throw std::invalid_argument("no command: megalodon launch -n N -- <subcommand> [args...]");
    if (cmd[0] == "launch") throw std::invalid_argument("launch cannot launch itself");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "megalodon launch: %s\n%s", e.what(), kLaunchHelp);
    return 2;
  }
  if (threads == 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / n);
  for (int attempt = 0;; ++attempt) {
    const int p = port > 0 ? port : free_port();
    const int rc = run_once(cmd, n, p, threads, grace);
    if (rc == 0) return 0;
    if (attempt >= restarts) return rc;
    std::fprintf(stderr, "megalodon launch: restarting the job (%d of %d)\n", attempt + 1, restarts);
    if (cmd[0] == "train" && std::find(cmd.begin(), cmd.end(), "--resume") == cmd.end()) cmd.push_back("--resume");
  }
}

const Command kLaunch{"launch", "run N local processes of a subcommand as one distributed job (torchrun-style env)",
                      launch_main};

}  // namespace
}  // namespace mgl::cli
