// `meterflow devkafka` and `meterflow produce`: a Kafka cluster and a producer for development,
// tests and benchmarks (docs/kafka.md).

#include "pricing/time.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"
#include "runtime/kafka_mock.hpp"
#include "runtime/kafka_producer.hpp"
#include "runtime/line_reader.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <pthread.h>

namespace meterflow::runtime {

const char* const devkafka_usage =
    R"(Usage: meterflow devkafka [--brokers N] [--partitions P] [--topic NAME]

Starts librdkafka's mock Kafka cluster in this process: brokers on ephemeral ports of
127.0.0.1 that speak the Kafka protocol, keeping everything in memory (nothing survives the
process). Creates the topic, prints one line `bootstrap=HOST:PORT[,HOST:PORT...]` on standard
output, and runs until SIGTERM or SIGINT. For development and tests; see docs/kafka.md for a
real cluster.

Options:
  --brokers N        brokers (default 1)
  --partitions P     partitions of the topic (default 4, as serve's --partitions)
  --topic NAME       the topic to create (default telemetry-events)
  --help             show this text

Exit status: 0 stopped by SIGTERM or SIGINT, 2 bad arguments or the cluster cannot start.
)";

const char* const produce_usage =
    R"(Usage: meterflow produce --brokers ADDR --topic T --events FILE [options]

Publishes every line of FILE (- reads standard input; blank lines are skipped) to topic T,
keyed by its customer_id (a line without a customer_id string goes under the empty key, for
the engine to reject and record), with an idempotent producer and acks=all, and waits until
the cluster acknowledged every line. Prints the count and the rate on standard error. A
development and benchmark tool; see docs/kafka.md.

Options:
  --brokers ADDR             bootstrap servers, HOST:PORT[,HOST:PORT...] (devkafka prints them)
  --topic T                  topic
  --events FILE              NDJSON events, one per line; - reads standard input
  --timeout DURATION         a line not acknowledged within it fails (default 30s; librdkafka's
                             message.timeout.ms)
  --kafka-properties FILE    more librdkafka properties, name=value lines (TLS, SASL, ...)
  --help                     show this text

Exit status: 0 every line acknowledged, 1 a line was not (the first failure is named), 2 bad
arguments.
)";

namespace {

// Lines between two waits for their acknowledgements: bounds the reports held in memory.
constexpr std::size_t flush_every = 100'000;

void require_no_positional(const command_line& cl) {
  if (!cl.positional.empty())
    throw usage_error("unexpected argument \"" + cl.positional.front() + "\"");
}

std::string message_timeout_ms(const command_line& cl) {
  const std::string text = cl.optional("timeout").value_or("30s");
  const auto timeout = pricing::parse_duration(text);
  constexpr pricing::duration max_ms = 2'147'483'647; // librdkafka's limit
  if (!timeout || *timeout < 1000 || *timeout / 1000 > max_ms)
    throw usage_error("--timeout: expected a duration from 1ms to 24d (e.g. \"30s\"), got \"" +
                      text + "\"");
  return std::to_string(*timeout / 1000);
}

} // namespace

int devkafka_command(const std::vector<std::string>& args) {
  const auto cl = parse_command_line(args, {"brokers", "partitions", "topic"}, {});
  require_no_positional(cl);
  const auto brokers = static_cast<int>(cl.count("brokers", 1, 16));
  const auto partitions = static_cast<int>(cl.count("partitions", 4, 4096));
  const std::string topic = cl.optional("topic").value_or("telemetry-events");
  // Blocked before librdkafka starts its threads, which inherit the mask: the signals then
  // reach sigwait below and no other thread.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  try {
    mock_kafka_cluster cluster(brokers);
    cluster.create_topic(topic, partitions);
    std::cout << "bootstrap=" << cluster.bootstrap() << std::endl;
    std::cerr << "meterflow devkafka: mock Kafka cluster of " << brokers << " broker(s), topic "
              << topic << " with " << partitions << " partitions; SIGTERM or Ctrl-C stops it\n";
    int signal = 0;
    sigwait(&stop, &signal);
    std::cerr << "meterflow devkafka: stopped by " << (signal == SIGINT ? "SIGINT" : "SIGTERM")
              << "\n";
  } catch (const kafka_error& e) {
    std::cerr << "meterflow devkafka: " << e.what() << "\n";
    return exit_usage;
  }
  return exit_ok;
}

int produce_command(const std::vector<std::string>& args) {
  const auto cl =
      parse_command_line(args, {"brokers", "topic", "events", "timeout", "kafka-properties"}, {});
  require_no_positional(cl);
  kafka_producer_options options;
  options.brokers = cl.required("brokers");
  options.topic = cl.required("topic");
  try {
    if (const auto file = cl.optional("kafka-properties"))
      options.properties = load_kafka_properties(*file);
    options.properties["message.timeout.ms"] = message_timeout_ms(cl);
  } catch (const kafka_error& e) {
    throw usage_error(std::string("--kafka-properties: ") + e.what());
  }
  line_reader reader(cl.required("events"));
  std::optional<kafka_producer> started;
  try {
    started.emplace(options);
  } catch (const kafka_error& e) {
    throw usage_error(e.what());
  }
  kafka_producer& producer = *started;

  const auto start = std::chrono::steady_clock::now();
  std::uint64_t sent = 0, failed = 0;
  std::string first_failure;
  std::vector<std::uint64_t> lines; // of the lines not yet acknowledged, in send order
  const auto wait_for_acknowledgements = [&] {
    const auto reports = producer.flush();
    for (std::size_t i = 0; i < reports.size(); ++i)
      if (!reports[i].delivered() && failed++ == 0)
        first_failure = "line " + std::to_string(lines[i]) + ": " + reports[i].error;
    lines.clear();
  };
  std::string_view line;
  std::uint64_t line_no = 0;
  while (reader.next(line, line_no)) {
    if (line.find_first_not_of(" \t") == std::string_view::npos)
      continue;
    producer.send(line);
    lines.push_back(line_no);
    ++sent;
    if (lines.size() == flush_every)
      wait_for_acknowledgements();
  }
  wait_for_acknowledgements();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failed > 0) {
    std::cerr << "meterflow produce: " << failed << " of " << sent
              << " events not acknowledged by the cluster; first: " << first_failure << "\n";
    return exit_check_failed;
  }
  char rate[64];
  std::snprintf(rate, sizeof rate, "%.2f s (%.0f events/s)", seconds,
                seconds > 0 ? static_cast<double>(sent) / seconds : 0.0);
  std::cerr << "meterflow produce: " << sent << " events acknowledged on " << options.topic
            << " in " << rate << "\n";
  return exit_ok;
}

} // namespace meterflow::runtime
