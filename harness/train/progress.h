// The trainer's step line: printed every log_every steps as plain text, or, on a terminal (or with
// trainer.progress = "bar"), a progress bar redrawn every step; trainer.progress = "off" is silent.
#pragma once
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

namespace mgl::harness {

class Progress {
 public:
  Progress(const std::string& mode, int64_t total, int64_t log_every) : total_(total), log_every_(log_every) {
    const bool tty = isatty(fileno(stderr));
    bar_ = mode == "bar" || (mode == "auto" && tty);
    off_ = mode == "off";
  }
  // A step line: printed every log_every steps (and at the end) as plain text; on a terminal the
  // bar line is redrawn every step.
  void step(int64_t step, const std::string& line, bool log_now) {
    if (off_) return;
    if (bar_) {
      int width = 100;
      winsize w{};
      if (ioctl(fileno(stderr), TIOCGWINSZ, &w) == 0 && w.ws_col > 20) width = w.ws_col;
      const int bar_w = 24;
      const int filled = int(bar_w * double(step) / double(std::max<int64_t>(1, total_)));
      std::string s = "[" + std::string(filled, '#') + std::string(bar_w - filled, '.') + "] " + line;
      if (int(s.size()) > width - 1) s.resize(width - 1);
      std::fprintf(stderr, "\r\033[K%s", s.c_str());
      if (log_now && step == total_) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else if (log_now) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  }
  void message(const std::string& s) {
    if (off_) return;
    if (bar_) std::fprintf(stderr, "\r\033[K");
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  }
  int64_t log_every() const { return log_every_; }

 private:
  int64_t total_, log_every_;
  bool bar_ = false, off_ = false;
};

}  // namespace mgl::harness
