#pragma once

// Runs the built `meterflow` binary for end-to-end CLI tests.

#include <array>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <sys/wait.h>

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

// `args` is appended verbatim to the binary's path; quote each argument with shell_quote.
inline process_result run_meterflow(const std::string& args) {
  const std::string cmd = shell_quote(METERFLOW_BINARY) + " " + args;
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

} // namespace meterflow::test
