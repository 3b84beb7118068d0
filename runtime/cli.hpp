#pragma once

// Command-line parsing shared by every `meterflow` command: `--name value`, `--name=value`,
// boolean `--flag`s and positional arguments, with errors that name the offending argument.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace meterflow::runtime {

// Process exit statuses (documented in docs/cli.md).
enum exit_status : int {
  exit_ok = 0,
  exit_check_failed = 1,   // reconciliation failed, or a quote found no price
  exit_usage = 2,          // bad arguments or configuration
  exit_overflow = 3,       // a total reached 10^26
  exit_engine_failure = 4, // a partition crashed beyond its restart budget, Kafka failed
};

// A service that runs until told to stop: from the call on, SIGTERM and SIGINT set the flag
// stop_requested() reads (the service then commits what it has and exits 0).
void handle_stop_signals();
bool stop_requested();

class usage_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct command_line {
  std::map<std::string, std::string> options;
  std::set<std::string> flags;
  std::vector<std::string> positional;

  // The option's value; throws usage_error naming it when it is missing.
  const std::string& required(const std::string& name) const;
  std::optional<std::string> optional(const std::string& name) const;
  // The option as a whole number from 1 to `max`, `fallback` when absent; usage_error otherwise.
  std::uint64_t count(const std::string& name, std::uint64_t fallback, std::uint64_t max) const;
  bool flag(const std::string& name) const { return flags.count(name) > 0; }
};

// `value_options` take a value, `flag_options` do not; anything else is a usage_error.
command_line parse_command_line(const std::vector<std::string>& args,
                                const std::set<std::string>& value_options,
                                const std::set<std::string>& flag_options);

// The entry point behind main(): dispatches to the command named by argv[1].
int main_entry(int argc, char** argv);

} // namespace meterflow::runtime
