// The load generator's sending mode (bench/send.hpp): target URLs, latency quantiles, and the
// real thing: `meterflow-loadgen --send` against the HTTP service and straight to Kafka, both on
// librdkafka's mock cluster. The lines that arrive must be the lines the generator writes to a
// file for the same flags, and a target rate must stretch the run to its schedule.

#include "actors/dataflow.hpp"
#include "bench/send.hpp"
#include "runtime/http_server.hpp"
#include "runtime/kafka_mock.hpp"
#include "support/kafka_topic.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

using namespace meterflow;
using namespace meterflow::runtime;

namespace {

constexpr int partitions = 4;
const std::string api_key = "bench-key-0123456789abcdef";
const std::string generator_flags = "--events 3000 --customers 40 --seed 11 --duplicate-rate 0.05";

// The lines the generator writes to a file for `generator_flags`.
std::vector<std::string> generated_lines(const std::string& dir) {
  const std::string file = dir + "/events.ndjson";
  const auto r = test::run_shell(test::shell_quote(METERFLOW_LOADGEN) + " " + generator_flags +
                                 " --out " + test::shell_quote(file) + " 2>/dev/null");
  REQUIRE(r.status == 0);
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  REQUIRE(lines.size() == 3000);
  return lines;
}

std::string temp_dir() {
  char pattern[] = "/tmp/meterflow-send-XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  return pattern;
}

// The generated lines (their file in a directory removed at the end) and a mock cluster with
// `topic`, where the lines are to arrive.
struct send_fixture {
  explicit send_fixture(const std::string& topic) { cluster.create_topic(topic, partitions); }
  ~send_fixture() { std::filesystem::remove_all(dir); }
  send_fixture(const send_fixture&) = delete;
  send_fixture& operator=(const send_fixture&) = delete;

  std::string dir = temp_dir();
  std::vector<std::string> lines = generated_lines(dir);
  mock_kafka_cluster cluster{1};
};

// "sent N events in B batches ... in S s: ... F failed batches" from the summary line.
struct summary {
  std::uint64_t events = 0, batches = 0, failed = 0;
  double seconds = 0;
};
summary parse_summary(const std::string& out) {
  static const std::regex re(
      R"(sent (\d+) events in (\d+) batches to \S+ in ([0-9.]+) s: .* (\d+) failed batches)");
  std::smatch m;
  REQUIRE(std::regex_search(out, m, re));
  return {std::stoull(m[1]), std::stoull(m[2]), std::stoull(m[4]), std::stod(m[3])};
}

test::process_result send(const std::string& url, const std::string& more) {
  return test::run_shell(test::shell_quote(METERFLOW_LOADGEN) + " " + generator_flags + " --send " +
                         test::shell_quote(url) + " " + more + " 2>&1");
}

} // namespace

TEST_CASE("loadgen --send: target URLs", "[bench]") {
  const auto http = bench::parse_send_target("http://127.0.0.1:8080/");
  CHECK(http.kind == bench::send_target::scheme::http);
  CHECK(http.host == "127.0.0.1");
  CHECK(http.port == 8080);
  const auto kafka = bench::parse_send_target("kafka://a:9092,b:9092");
  CHECK(kafka.kind == bench::send_target::scheme::kafka);
  CHECK(kafka.brokers == "a:9092,b:9092");

  const std::pair<const char*, const char*> bad[] = {{"https://h:443", "https is not supported"},
                                                     {"ftp://h:21", "unknown scheme"},
                                                     {"http://h", "no host:port"},
                                                     {"http://:80", "no host:port"},
                                                     {"http://h:0", "1..65535"},
                                                     {"http://h:70000", "1..65535"},
                                                     {"http://h:8o", "1..65535"},
                                                     {"kafka://", "no brokers"}};
  for (const auto& [url, why] : bad) {
    INFO(url);
    CHECK_THROWS_WITH(bench::parse_send_target(url), Catch::Contains(why));
  }
}

TEST_CASE("loadgen --send: latency quantiles are nearest-rank", "[bench]") {
  bench::send_report r;
  CHECK(r.latency_ms(0.99) == 0);
  for (std::int64_t ms = 1; ms <= 200; ++ms)
    r.latency_ns.push_back(ms * 1'000'000);
  CHECK(r.latency_ms(0.50) == Approx(100));
  CHECK(r.latency_ms(0.99) == Approx(198));
  CHECK(r.latency_ms(1.0) == Approx(200));
  CHECK(r.latency_ms(0.0) == Approx(1));
}

TEST_CASE("loadgen --send http: every generated line reaches the API, paced by --rate",
          "[bench][http]") {
  send_fixture f("telemetry-events");
  const auto& lines = f.lines;
  auto cfg = config::load_file(std::string(METERFLOW_SOURCE_DIR) + "/examples/config.json");
  cfg.http.api_keys = {{"bench", api_key}};
  cfg.http.max_events_per_request = 500;
  cfg.http.max_in_flight_events = 1000;
  service_metrics metrics;
  http_service_options options;
  options.port = 0;
  options.kafka = {f.cluster.bootstrap(), "telemetry-events", {{"linger.ms", "1"}}};
  http_service service(cfg, options, metrics);
  service.start();
  const std::string url = "http://127.0.0.1:" + std::to_string(service.port());

  SECTION("accepted at 10,000 events/s") {
    // 6 batches of 500 at 10,000/s: the last is due at 0.25 s, so the run cannot be shorter.
    const auto r = send(url, "--api-key " + api_key + " --rate 10000 --batch 500 --connections 2");
    INFO(r.out);
    REQUIRE(r.status == 0);
    const auto s = parse_summary(r.out);
    CHECK(s.events == 3000);
    CHECK(s.batches == 6);
    CHECK(s.failed == 0);
    CHECK(s.seconds >= 0.25);

    // Every distinct event reached the topic, and nothing else did. The API answers replays as
    // duplicates best-effort: two connections may carry the same event at the same time, and
    // both copies are published (docs/api.md; the engine stores it once).
    const auto key_of = [](const std::string& line) {
      const auto j = nlohmann::json::parse(line);
      return j.at("customer_id").get<std::string>() + "/" + j.at("event_id").get<std::string>();
    };
    std::set<std::string> distinct, published;
    for (const auto& line : lines)
      distinct.insert(key_of(line));
    REQUIRE(distinct.size() < lines.size()); // the flags make duplicates
    const std::set<std::string> sent(lines.begin(), lines.end());
    const auto messages = test::read_topic(f.cluster, "telemetry-events", partitions);
    CHECK(messages.size() <= lines.size());
    for (const auto& m : messages) {
      CHECK(sent.count(m.payload) > 0);
      published.insert(key_of(m.payload));
    }
    CHECK(published == distinct);
  }
  SECTION("a wrong API key fails every batch, and says so") {
    const auto r = send(url, "--api-key wrong-key-0123456789abcdef --batch 1000");
    CHECK(r.status == 1);
    CHECK(parse_summary(r.out).failed == 3);
    CHECK(r.out.find("HTTP 401") != std::string::npos);
  }
}

TEST_CASE("loadgen --send kafka: every line on its customer's partition, in order",
          "[bench][kafka]") {
  send_fixture f("bench-events");
  const auto& lines = f.lines;
  const auto r = send("kafka://" + f.cluster.bootstrap(),
                      "--topic bench-events --rate 12000 --batch 1000"
                      " --kafka-property max.in.flight.requests.per.connection=1");
  INFO(r.out);
  REQUIRE(r.status == 0);
  const auto s = parse_summary(r.out);
  CHECK(s.events == 3000);
  CHECK(s.batches == 3);
  CHECK(s.seconds >= 2000.0 / 12000);

  // Kafka keeps every line, replays included; each partition holds its lines in file order.
  const auto messages = test::read_topic(f.cluster, "bench-events", partitions);
  REQUIRE(messages.size() == lines.size());
  std::map<std::int32_t, std::vector<std::string>> expected, got;
  for (const auto& line : lines) {
    const auto customer = nlohmann::json::parse(line).at("customer_id").get<std::string>();
    expected[static_cast<std::int32_t>(actors::partition_of(customer, partitions))].push_back(line);
  }
  for (const auto& m : messages) {
    CHECK(m.key == nlohmann::json::parse(m.payload).at("customer_id").get<std::string>());
    got[m.partition].push_back(m.payload);
  }
  CHECK(got == expected);
}
