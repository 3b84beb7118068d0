#include "runtime/cli.hpp"

#include "config/config.hpp"
#include "pricing/result.hpp"
#include "runtime/commands.hpp"

#include <atomic>
#include <charconv>
#include <csignal>
#include <iostream>

namespace meterflow::runtime {

namespace {

const char* const main_usage = R"(meterflow - exact usage metering and invoicing

Usage: meterflow <command> [options]

Commands:
  run       events to invoices: the whole pipeline on a batch of events
  serve     the durable engine on PostgreSQL: resumable after a crash, nothing lost or doubled
  explain   how a charge or an invoice of a run came about
  invoice   show an invoice of the store, change its status (paid, void), or render it as PDF
  rerate    re-rate a scope of the store with the price books as configured now
  quote     price a quantity under the price book version in force at a time
  reconcile check the reconciliation chain of the PostgreSQL store (--store URL)
  migrate   create or upgrade the PostgreSQL schema (--store URL)
  devkafka  run an in-process mock Kafka cluster for development and tests
  produce   publish an events file to a Kafka topic, keyed by customer (dev and bench tool)
  help      show this text, or `meterflow help <command>` for a command's options
  version   print the version

Run `meterflow <command> --help` for a command's options.
Exit status: 0 ok, 1 a check failed, 2 bad arguments or configuration, 3 a total reached 10^26.
)";

struct command {
  const char* name;
  int (*run)(const std::vector<std::string>&);
  const char* const* usage;
};

const command commands[] = {
    {"quote", quote_command, &quote_usage},
    {"run", run_command, &run_usage},
    {"serve", serve_command, &serve_usage},
    {"explain", explain_command, &explain_usage},
    {"invoice", invoice_command, &invoice_usage},
    {"migrate", migrate_command, &migrate_usage},
    {"reconcile", reconcile_command, &reconcile_usage},
    {"rerate", rerate_command, &rerate_usage},
    {"devkafka", devkafka_command, &devkafka_usage},
    {"produce", produce_command, &produce_usage},
};

const command* find_command(const std::string& name) {
  for (const auto& c : commands)
    if (name == c.name)
      return &c;
  return nullptr;
}

} // namespace

const std::string& command_line::required(const std::string& name) const {
  auto it = options.find(name);
  if (it == options.end())
    throw usage_error("missing required option --" + name);
  return it->second;
}

std::optional<std::string> command_line::optional(const std::string& name) const {
  auto it = options.find(name);
  if (it == options.end())
    return std::nullopt;
  return it->second;
}

std::uint64_t command_line::count(const std::string& name, std::uint64_t fallback,
                                  std::uint64_t max) const {
  const auto v = optional(name);
  if (!v)
    return fallback;
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || end != v->data() + v->size() || n == 0 || n > max)
    throw usage_error("--" + name + ": expected a whole number from 1 to " + std::to_string(max) +
                      ", got \"" + *v + "\"");
  return n;
}

command_line parse_command_line(const std::vector<std::string>& args,
                                const std::set<std::string>& value_options,
                                const std::set<std::string>& flag_options) {
  command_line out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
      out.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (flag_options.count(name)) {
      if (value)
        throw usage_error("option --" + name + " takes no value");
      out.flags.insert(name);
    } else if (value_options.count(name)) {
      if (!value) {
        if (i + 1 >= args.size())
          throw usage_error("option --" + name + " needs a value");
        value = args[++i];
      }
      if (out.options.count(name))
        throw usage_error("option --" + name + " given twice");
      out.options[name] = *value;
    } else {
      throw usage_error("unknown option --" + name);
    }
  }
  return out;
}

int main_entry(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << main_usage;
    return exit_usage;
  }
  const std::string name = args.front();
  args.erase(args.begin());
  if (name == "help" || name == "--help" || name == "-h") {
    const command* c = args.empty() ? nullptr : find_command(args.front());
    std::cout << (c ? *c->usage : main_usage);
    return exit_ok;
  }
  if (name == "version" || name == "--version") {
    std::cout << "meterflow 0.1.0\n";
    return exit_ok;
  }
  const command* c = find_command(name);
  if (!c) {
    std::cerr << "meterflow: unknown command \"" << name << "\"\n\n" << main_usage;
    return exit_usage;
  }
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::cout << *c->usage;
      return exit_ok;
    }
  try {
    return c->run(args);
  } catch (const usage_error& e) {
    std::cerr << "meterflow " << name << ": " << e.what() << "\n\n" << *c->usage;
    return exit_usage;
  } catch (const config::config_error& e) {
    std::cerr << "meterflow " << name << ": configuration error: " << e.what() << "\n";
    return exit_usage;
  } catch (const pricing::bad_result_access& e) {
    std::cerr << "meterflow " << name << ": " << e.what() << "\n";
    return e.code == pricing::errc::overflow ? exit_overflow : exit_usage;
  }
}

namespace {
std::atomic<bool> stop_flag{false};
extern "C" void on_stop_signal(int) {
  stop_flag = true;
}
} // namespace

void handle_stop_signals() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
}

bool stop_requested() {
  return stop_flag;
}

} // namespace meterflow::runtime
