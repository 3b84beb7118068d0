#pragma once

// Runs the built `meterflow` binary for end-to-end CLI tests.

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace meterflow::test {

struct process_result {
  int status = -1;
  std::string out; // stdout (stderr goes to the test's stderr unless redirected in `args`)
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

// Runs a shell command line; quote each argument with shell_quote.
inline process_result run_shell(const std::string& cmd) {
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe)
    throw std::runtime_error("popen failed: " + cmd);
  process_result r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0)
    r.out.append(buf.data(), n);
  const int raw = ::pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

// `args` is appended verbatim to the binary's path; quote each argument with shell_quote.
inline process_result run_meterflow(const std::string& args) {
  return run_shell(shell_quote(METERFLOW_BINARY) + " " + args);
}

// `meterflow ARGS...` running in the background, its stdout read line by line; stderr goes to
// the test's stderr. Killed (SIGKILL) on destruction if still running.
class background_meterflow {
public:
  explicit background_meterflow(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe(fds) != 0)
      throw std::runtime_error("pipe failed");
    std::vector<char*> argv{const_cast<char*>(METERFLOW_BINARY)};
    for (const auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0)
      throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execv(METERFLOW_BINARY, argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
  }
  ~background_meterflow() {
    if (pid_ > 0)
      stop(SIGKILL);
    ::close(out_);
  }
  background_meterflow(const background_meterflow&) = delete;
  background_meterflow& operator=(const background_meterflow&) = delete;

  // The next line of its stdout (without the newline); nullopt at its end or after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string line;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{out_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        return std::nullopt;
      char c;
      if (::read(out_, &c, 1) != 1)
        return std::nullopt;
      if (c == '\n')
        return line;
      line += c;
    }
  }

  // Sends `signal` without waiting.
  void signal(int signal) { ::kill(pid_, signal); }
  // Sends `signal` and waits: the exit status, or -1 when a signal ended it.
  int stop(int signal) {
    ::kill(pid_, signal);
    int raw = 0;
    ::waitpid(pid_, &raw, 0);
    pid_ = -1;
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  }

private:
  pid_t pid_ = -1;
  int out_ = -1;
};

} // namespace meterflow::test
