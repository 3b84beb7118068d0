// `meterflow serve --kafka` end to end: events produced to librdkafka's mock cluster (`meterflow
// devkafka`, the real protocol), read by serve as a consumer group, stored in PostgreSQL. The
// record must equal what `meterflow serve` makes of the same events read from a file, through
// restarts at random points and through a rebalance between two members.

#include "actors/dataflow.hpp"
#include "pricing/decimal.hpp"
#include "pricing/time.hpp"
#include "runtime/kafka_producer.hpp"
#include "support/pg_test_schema.hpp"
#include "support/process.hpp"
#include "support/store_fingerprint.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <httplib.h>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sys/wait.h>
#include <thread>
#include <tuple>

namespace pricing = meterflow::pricing;
using meterflow::test::background_meterflow;
using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;

namespace {

namespace fs = std::filesystem;

const std::string examples = std::string(METERFLOW_SOURCE_DIR) + "/examples";
const std::string config = examples + "/config.json";

// A mock cluster with the telemetry topic in 4 partitions (the engine's default).
class dev_cluster {
public:
  dev_cluster() : process_({"devkafka", "--partitions", "4"}) {
    const auto line = process_.read_line(std::chrono::seconds(20));
    REQUIRE(line);
    REQUIRE(line->rfind("bootstrap=", 0) == 0);
    bootstrap_ = line->substr(10);
  }
  const std::string& bootstrap() const { return bootstrap_; }
  void produce(const std::string& events_file) const {
    REQUIRE(run_meterflow("produce --brokers " + shell_quote(bootstrap_) +
                          " --topic telemetry-events --events " + shell_quote(events_file) +
                          " 2>/dev/null")
                .status == 0);
  }

private:
  background_meterflow process_;
  std::string bootstrap_;
};

// A temporary directory for one test.
struct scratch_dir {
  fs::path path;
  explicit scratch_dir(const std::string& name)
      : path(fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~scratch_dir() { fs::remove_all(path); }
};

// The consumer group's timing with the mock cluster (docs/kafka.md): rebalances wait
// session.timeout.ms - 1 s, and a member that was killed holds its partitions until its
// session times out.
std::string fast_group_properties(const fs::path& dir) {
  const fs::path file = dir / "kafka.properties";
  std::ofstream(file) << "session.timeout.ms=4500\n";
  return file.string();
}

// The record of the same events read from a file: what every stream run must end with.
void serve_file(const std::string& store, const std::string& events) {
  REQUIRE(run_meterflow("serve --quiet --config " + shell_quote(config) + " --events " +
                        shell_quote(events) + " --store " + shell_quote(store) + " > /dev/null")
              .status == 0);
}

long stored_events(const std::string& conninfo) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  if (!tx.exec1("SELECT to_regclass('telemetry_events') IS NOT NULL")[0].as<bool>())
    return 0; // serve has not created the schema yet
  return tx.exec1("SELECT count(*) FROM telemetry_events")[0].as<long>();
}

// The messages whose records serve committed, over every partition of the topic.
long committed_messages(const std::string& conninfo) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  if (!tx.exec1("SELECT to_regclass('serve_progress') IS NOT NULL")[0].as<bool>())
    return 0;
  return tx
      .exec1("SELECT coalesce(sum(position & ((1::bigint << 40) - 1)), 0) FROM (SELECT DISTINCT "
             "ON (source) position FROM serve_progress WHERE source LIKE 'kafka:%' ORDER BY "
             "source, progress_seq DESC) p")[0]
      .as<long>();
}

std::vector<std::string> lines_of(const std::string& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string l; std::getline(in, l);)
    lines.push_back(l);
  return lines;
}

// Posts `lines` as NDJSON, 1,000 per request as a client would, each answered 202; returns the
// answers' counts by outcome.
std::map<std::string, long> post_events(httplib::Client& api,
                                        const std::vector<std::string>& lines) {
  std::map<std::string, long> answered;
  for (std::size_t from = 0; from < lines.size(); from += 1000) {
    std::string body;
    for (std::size_t i = from; i < std::min(lines.size(), from + 1000); ++i)
      body += lines[i] + "\n";
    const auto r = api.Post("/v1/events", body, "application/x-ndjson");
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 202);
    const auto answer = nlohmann::json::parse(r->body);
    for (const char* outcome : {"accepted", "duplicate", "rejected"})
      answered[outcome] += answer[outcome].get<long>();
  }
  return answered;
}

// What every test here starts with: the PostgreSQL server (none: skipped), a scratch
// directory, consumer-group properties and the mock cluster.
struct stream_fixture {
  std::optional<std::string> server = meterflow::test::pg_server();
  scratch_dir dir;
  std::string properties;
  std::optional<dev_cluster> cluster;
  explicit stream_fixture(const std::string& name)
      : dir(name), properties(fast_group_properties(dir.path)) {
    if (server)
      cluster.emplace();
    else
      WARN("METERFLOW_TEST_PG is not set: skipped");
  }

  // `serve --drain` of `store` from the cluster, with `more` options.
  meterflow::test::process_result drain(const std::string& store, const std::string& more = "",
                                        const std::string& config_file = config) const {
    return run_meterflow("serve --drain --quiet --config " + shell_quote(config_file) +
                         " --store " + shell_quote(store) + " --kafka " +
                         shell_quote(cluster->bootstrap()) + " --kafka-properties " +
                         shell_quote(properties) + more);
  }
};

// What differs by construction between a file and a stream: a rejected line's position (and a
// re-rate run's id, made from the position that triggered it) is a line number in one and a
// partition and offset in the other, and the provisional aggregates follow each Kafka
// partition's own watermark rather than the file's (the final ones are the same).
const std::set<std::string> stream_specific = {"rejected_events", "rerate_runs",
                                               "aggregated_usage"};

} // namespace

TEST_CASE("serve --kafka --drain: the record of a batch of events equals serve on the same file, "
          "reconciled; started again it changes nothing",
          "[cli][serve][kafka][postgresql]") {
  stream_fixture f("meterflow_stream_drain");
  if (!f.server)
    return;
  meterflow::test::pg_test_schema from_file(*f.server, false), from_kafka(*f.server, false);
  const auto& [dir, properties, cluster] = std::tie(f.dir, f.properties, *f.cluster);
  const std::string events = examples + "/events.ndjson";
  cluster.produce(events);
  serve_file(from_file.conninfo(), events);

  const auto drained =
      f.drain(from_kafka.conninfo(), " --report " + shell_quote((dir.path / "report").string()));
  INFO(drained.out);
  REQUIRE(drained.status == 0);
  CHECK_THAT(drained.out, Catch::Contains("drained telemetry-events: 12740 messages read"));
  CHECK_THAT(drained.out, Catch::Contains("reconciliation: ok"));
  meterflow::test::check_stores_equal(from_file.conninfo(), from_kafka.conninfo(), stream_specific);
  {
    // The same rejected lines and reasons, each under its partition and offset.
    const auto rejected = [](const std::string& conninfo) {
      pqxx::connection c(conninfo);
      pqxx::nontransaction tx(c);
      return std::string(tx.exec1("SELECT count(*) || ' ' || md5(string_agg(reason || ':' || "
                                  "encode(raw, 'hex'), ',' ORDER BY reason, raw)) FROM "
                                  "rejected_events")[0]
                             .c_str());
    };
    CHECK(rejected(from_kafka.conninfo()) == rejected(from_file.conninfo()));
    pqxx::connection c(from_kafka.conninfo());
    pqxx::nontransaction tx(c);
    CHECK(tx.exec1("SELECT count(*) FROM serve_progress WHERE source LIKE "
                   "'kafka:telemetry-events:%' AND finished")[0]
              .as<int>() == 4);
  }

  const auto before = meterflow::test::store_fingerprint(from_kafka.conninfo());
  const auto again = f.drain(from_kafka.conninfo());
  CHECK(again.status == 0);
  CHECK_THAT(again.out, Catch::Contains("0 messages read"));
  CHECK(meterflow::test::store_fingerprint(from_kafka.conninfo()) == before);
}

TEST_CASE("serve --kafka: killed at random points and started again, nothing is lost or counted "
          "twice",
          "[cli][serve][kafka][postgresql]") {
  stream_fixture f("meterflow_stream_kill");
  if (!f.server)
    return;
  meterflow::test::pg_test_schema from_file(*f.server, false), from_kafka(*f.server, false);
  const auto& [properties, cluster] = std::tie(f.properties, *f.cluster);
  const std::string events = examples + "/events.ndjson";
  cluster.produce(events);
  serve_file(from_file.conninfo(), events);
  const long total = stored_events(from_file.conninfo());

  // SIGKILL once a seeded random number of events is stored (small batches: many commits),
  // three times, then a start that drains the topic.
  const unsigned seed = std::random_device{}();
  INFO("kill points seed " << seed);
  std::mt19937 random(seed);
  long last = 0;
  for (int kill = 0; kill < 3; ++kill) {
    // Somewhere in the first half of what is left.
    const long at = last + std::uniform_int_distribution<long>(1, (total - last) / 2)(random);
    background_meterflow serve({"serve", "--kafka", cluster.bootstrap(), "--config", config,
                                "--store", from_kafka.conninfo(), "--kafka-properties", properties,
                                "--batch-size", "97", "--quiet"});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (stored_events(from_kafka.conninfo()) < at && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    serve.stop(SIGKILL);
    const long stored = stored_events(from_kafka.conninfo());
    CHECK(stored >= at);
    CHECK(stored < total); // killed before the end
    last = stored;
  }
  const auto drained = f.drain(from_kafka.conninfo());
  REQUIRE(drained.status == 0);
  CHECK(stored_events(from_kafka.conninfo()) == total);
  meterflow::test::check_stores_equal(from_file.conninfo(), from_kafka.conninfo(), stream_specific);
  CHECK(run_meterflow("reconcile --config " + shell_quote(config) + " --store " +
                      shell_quote(from_kafka.conninfo()) + " > /dev/null")
            .status == 0);
}

TEST_CASE("serve --kafka: two members of a group share the partitions; a rebalance hands them "
          "over through the store",
          "[cli][serve][kafka][postgresql]") {
  stream_fixture f("meterflow_stream_group");
  if (!f.server)
    return;
  meterflow::test::pg_test_schema from_file(*f.server, false), from_kafka(*f.server, false);
  const auto& [dir, properties, cluster] = std::tie(f.dir, f.properties, *f.cluster);
  const std::string events = examples + "/events.ndjson";
  serve_file(from_file.conninfo(), events);
  const std::vector<std::string> member = {
      "serve",    "--kafka", cluster.bootstrap(),   "--config",
      config,     "--store", from_kafka.conninfo(), "--kafka-properties",
      properties, "--quiet"};

  // The first member takes every partition and the first half of the events.
  const std::vector<std::string> lines = lines_of(events);
  const fs::path first_half = dir.path / "first.ndjson", second_half = dir.path / "second.ndjson";
  {
    std::ofstream a(first_half), b(second_half);
    for (std::size_t i = 0; i < lines.size(); ++i)
      (i < lines.size() / 2 ? a : b) << lines[i] << '\n';
  }
  background_meterflow first(member);
  cluster.produce(first_half.string());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (stored_events(from_kafka.conninfo()) < 6000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(stored_events(from_kafka.conninfo()) >= 6000);

  // A second member joins: the group rebalances, the first one commits and gives up half of
  // the partitions, which the second restores from the store. Then the rest of the events.
  background_meterflow second(member);
  std::this_thread::sleep_for(std::chrono::seconds(6));
  cluster.produce(second_half.string());
  const long total = stored_events(from_file.conninfo());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  while (stored_events(from_kafka.conninfo()) < total && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(stored_events(from_kafka.conninfo()) == total);
  // Each member held two partitions when it stopped (its summary lists them).
  const auto held = [](background_meterflow& m) {
    int partitions = 0;
    while (const auto line = m.read_line(std::chrono::seconds(5)))
      partitions += line->rfind("  partition ", 0) == 0 ? 1 : 0;
    return partitions;
  };
  first.signal(SIGTERM); // both at once: the first to leave would rebalance the other
  CHECK(second.stop(SIGTERM) == 0);
  CHECK(first.stop(SIGTERM) == 0);
  CHECK(held(first) == 2);
  CHECK(held(second) == 2);

  // Drained to the end by one member, the record equals the file's.
  const auto drained = f.drain(from_kafka.conninfo());
  REQUIRE(drained.status == 0);
  meterflow::test::check_stores_equal(from_file.conninfo(), from_kafka.conninfo(), stream_specific);
}

TEST_CASE("serve --kafka --listen: events posted over HTTP in batches of 1,000 end as the record "
          "of serve on the same file; the API reads the live draft back",
          "[cli][serve][kafka][http][postgresql]") {
  stream_fixture f("meterflow_stream_http");
  if (!f.server)
    return;
  meterflow::test::pg_test_schema from_file(*f.server, false), from_http(*f.server, false);
  const auto& [properties, cluster] = std::tie(f.properties, *f.cluster);
  const std::string events = examples + "/events.ndjson";
  serve_file(from_file.conninfo(), events);

  background_meterflow serve({"serve", "--kafka", cluster.bootstrap(), "--config", config,
                              "--store", from_http.conninfo(), "--kafka-properties", properties,
                              "--listen", "127.0.0.1:0", "--quiet"});
  const auto listening = serve.read_line(std::chrono::seconds(30));
  REQUIRE(listening);
  REQUIRE(listening->rfind("http=127.0.0.1:", 0) == 0);
  httplib::Client api("127.0.0.1", std::stoi(listening->substr(15)));
  api.set_bearer_token_auth("demo-key-not-a-secret"); // examples/config.json's demo key
  api.set_read_timeout(30, 0);

  const std::map<std::string, long> answered = post_events(api, lines_of(events));
  // The file's 4 invalid lines and its conflicting copy are refused at the door, its 2 exact
  // duplicates answered as such; everything else is durable in Kafka.
  CHECK(answered.at("accepted") == 12733);
  CHECK(answered.at("duplicate") == 2);
  CHECK(answered.at("rejected") == 5);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  // Every message's records committed (each accepted event is one message).
  while (committed_messages(from_http.conninfo()) < 12733 &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(committed_messages(from_http.conninfo()) == 12733);
  CHECK(stored_events(from_http.conninfo()) == 12733);

  // The live draft of a customer whose January is complete projects what the file's run billed.
  const auto usage = api.Get("/v1/customers/c_recon/usage?period=2024-01");
  REQUIRE(usage);
  REQUIRE(usage->status == 200);
  const auto draft = nlohmann::json::parse(usage->body);
  REQUIRE(draft["projected_invoice"].is_object());
  {
    pqxx::connection c(from_file.conninfo());
    pqxx::nontransaction tx(c);
    const auto billed = tx.exec1("SELECT total::numeric::text FROM invoices WHERE invoice_id = "
                                 "'inv_c_recon_2024-01'")[0]
                            .as<std::string>();
    CHECK(pricing::decimal::parse(draft["projected_invoice"]["total"].get<std::string>()).value() ==
          pricing::decimal::parse(billed).value());
  }
  const auto metrics = api.Get("/metrics");
  REQUIRE(metrics);
  CHECK_THAT(metrics->body, Catch::Contains("meterflow_http_events_total{outcome=\"accepted\"} "
                                            "12733"));
  CHECK_THAT(metrics->body, Catch::Contains("meterflow_engine_events_total{outcome=\"accepted\"} "
                                            "12733"));
  CHECK(serve.stop(SIGTERM) == 0);

  // Drained to the end, the record equals the file's, but for what was refused at the door
  // (the file's run records it as rejected lines; the API answered it to the client).
  const auto drained = f.drain(from_http.conninfo());
  REQUIRE(drained.status == 0);
  meterflow::test::check_stores_equal(from_file.conninfo(), from_http.conninfo(), stream_specific);
}

TEST_CASE("serve --kafka --listen: a re-rate through the API while the service runs is adopted by "
          "the engine, which bills later very late events on top of it",
          "[cli][serve][kafka][http][rerate][postgresql]") {
  stream_fixture f("meterflow_stream_rerate");
  if (!f.server)
    return;
  meterflow::test::pg_test_schema live(*f.server, false);
  const auto& [dir, properties, cluster] = std::tie(f.dir, f.properties, *f.cluster);
  background_meterflow serve({"serve", "--kafka", cluster.bootstrap(), "--config", config,
                              "--store", live.conninfo(), "--kafka-properties", properties,
                              "--listen", "127.0.0.1:0", "--quiet"});
  const auto listening = serve.read_line(std::chrono::seconds(30));
  REQUIRE(listening);
  httplib::Client api("127.0.0.1", std::stoi(listening->substr(15)));
  api.set_bearer_token_auth("demo-key-not-a-secret");
  api.set_read_timeout(60, 0);
  const auto post = [&](const std::string& path, const std::string& body, const char* type) {
    const auto r = api.Post(path.c_str(), body, type);
    REQUIRE(r);
    INFO(path << ": " << r->body);
    return std::make_pair(r->status, nlohmann::json::parse(r->body));
  };
  const auto issued = [&](const std::string& invoice) {
    pqxx::connection c(live.conninfo());
    pqxx::nontransaction tx(c);
    return tx.exec_params1("SELECT count(*) FROM invoices WHERE invoice_id = $1", invoice)[0]
               .as<int>() == 1;
  };

  const std::vector<std::string> all = lines_of(examples + "/events.ndjson");
  post_events(api, all);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!issued("inv_c_flat_2024-01") && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(issued("inv_c_flat_2024-01"));

  // A corrected price for the second half of January, published and applied by a re-rate
  // while the engine runs.
  const nlohmann::json corrected = {{"version", "v2-corrected"},
                                    {"effective_from", "2024-01-15T00:00:00Z"},
                                    {"effective_until", "2024-02-01T00:00:00Z"},
                                    {"prices",
                                     {{"api_calls", {{"model", "flat"}, {"unit_price", "0.09"}}},
                                      {"gb_stored", {{"model", "flat"}, {"unit_price", "0.05"}}}}}};
  CHECK(post("/v1/price-books/pb_flat/versions", corrected.dump(), "application/json").first ==
        201);
  const auto [status, rerated] = post(
      "/v1/rerate", R"({"from":"2024-01","customers":["c_flat"],"reason":"dispute: v2 corrected"})",
      "application/json");
  REQUIRE(status == 201);
  REQUIRE(rerated["correction_invoices"].size() == 1);

  // Then a very late January call of the same customer and a later one that moves its
  // watermark on: the engine re-rates on top of the adopted charges (a charge superseding one
  // that is no longer current would be refused by the store, and serve would stop).
  const std::vector<std::string> later = {
      R"({"event_id":"late-after-rerate","customer_id":"c_flat","event_type":"api_call",)"
      R"("event_time":"2024-01-20T10:00:00Z"})",
      R"({"event_id":"feb-after-rerate","customer_id":"c_flat","event_type":"api_call",)"
      R"("event_time":"2024-02-25T10:00:00Z"})"};
  CHECK(post_events(api, later).at("accepted") == 2);
  while (stored_events(live.conninfo()) < 12735 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(stored_events(live.conninfo()) == 12735);
  CHECK(serve.stop(SIGTERM) == 0);
  const auto drained =
      f.drain(live.conninfo(), " --report " + shell_quote((dir.path / "report").string()));
  INFO(drained.out);
  REQUIRE(drained.status == 0);
  CHECK_THAT(drained.out, Catch::Contains("reconciliation: ok"));

  // SEMANTICS §7: what the store billed c_flat for January, invoice and corrections together,
  // is what a fresh run with the corrected prices and every event bills.
  nlohmann::json corrected_config;
  std::ifstream(config) >> corrected_config;
  for (auto& book : corrected_config["price_books"])
    if (book["id"] == "pb_flat")
      book["versions"].push_back(corrected);
  std::ofstream(dir.path / "corrected.json") << corrected_config.dump();
  {
    std::ofstream out(dir.path / "events.ndjson");
    for (const auto& l : all)
      out << l << '\n';
    for (const auto& l : later)
      out << l << '\n';
  }
  REQUIRE(run_meterflow("run --quiet --config " +
                        shell_quote((dir.path / "corrected.json").string()) + " --events " +
                        shell_quote((dir.path / "events.ndjson").string()) + " --out " +
                        shell_quote((dir.path / "fresh").string()) + " > /dev/null")
              .status == 0);
  pricing::decimal fresh;
  for (const auto& e : fs::directory_iterator(dir.path / "fresh" / "invoices")) {
    nlohmann::json invoice;
    std::ifstream(e.path()) >> invoice;
    if (invoice["customer_id"] == "c_flat" && invoice["period"]["start"] == "2024-01-01T00:00:00Z")
      fresh += pricing::decimal::parse(invoice["total"].get<std::string>()).value();
  }
  pqxx::connection c(live.conninfo());
  pqxx::nontransaction tx(c);
  const auto billed = tx.exec1("SELECT sum(total)::text FROM invoices WHERE customer_id = 'c_flat' "
                               "AND period_start = '2024-01-01T00:00:00Z'")[0]
                          .as<std::string>();
  CHECK(pricing::decimal::parse(billed).value() == fresh);
  CHECK(tx.exec1("SELECT count(*) FROM invoices WHERE customer_id = 'c_flat' AND type = "
                 "'correction' AND period_start = '2024-01-01T00:00:00Z'")[0]
            .as<int>() >= 3); // the first very late event's, the API's and the later one's
}

TEST_CASE("serve --kafka: idle partitions' watermark advances are stored, and a restart replays "
          "them",
          "[cli][serve][kafka][postgresql]") {
  stream_fixture f("meterflow_stream_idle");
  if (!f.server)
    return;
  meterflow::test::pg_test_schema from_file(*f.server, false), from_kafka(*f.server, false);
  const auto& [dir, properties, cluster] = std::tie(f.dir, f.properties, *f.cluster);
  const std::string events = examples + "/events.ndjson";
  serve_file(from_file.conninfo(), events);
  // Partitions go idle after a second without messages: once a partition has delivered its
  // events, it is moved up to the ones still reading (or, all idle, to where they stopped).
  nlohmann::json idle_config;
  std::ifstream(config) >> idle_config;
  idle_config["watermark"]["idle_timeout"] = "1s";
  const std::string idle_config_file = (dir.path / "idle.json").string();
  std::ofstream(idle_config_file) << idle_config.dump();

  // Whether a partition goes idle while another still reads must not depend on how fast the
  // engine runs: the partition whose events reach furthest in event time is produced last,
  // after the others went idle. Its watermark then passes theirs, and they are moved up.
  meterflow::runtime::customer_key_reader keys;
  const std::vector<std::string> lines = lines_of(events);
  std::vector<std::uint32_t> partition_of_line;
  std::map<std::uint32_t, pricing::timestamp> latest; // per partition: its latest event time
  for (const std::string& line : lines) {
    const auto customer = keys.read(line);
    const std::uint32_t p =
        meterflow::actors::partition_of(customer ? std::string(*customer) : std::string(), 4);
    partition_of_line.push_back(p);
    const auto event = nlohmann::json::parse(line, nullptr, false);
    if (event.is_object() && event.contains("event_time") && event["event_time"].is_string())
      if (const auto t = pricing::parse_rfc3339(event["event_time"].get<std::string>()))
        latest[p] = std::max(latest[p], *t);
  }
  REQUIRE(latest.size() >= 2); // the example's customers fill three of the four partitions
  const std::uint32_t last = std::max_element(latest.begin(), latest.end(), [](auto& a, auto& b) {
                               return a.second < b.second;
                             })->first;
  const fs::path early = dir.path / "early.ndjson", late = dir.path / "late.ndjson";
  long early_count = 0;
  {
    std::ofstream a(early), b(late);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      (partition_of_line[i] == last ? b : a) << lines[i] << '\n';
      early_count += partition_of_line[i] == last ? 0 : 1;
    }
  }

  const auto advances = [&] {
    pqxx::connection c(from_kafka.conninfo());
    pqxx::nontransaction tx(c);
    if (!tx.exec1("SELECT to_regclass('watermark_advances') IS NOT NULL")[0].as<bool>())
      return 0L;
    // Of partitions that had events before they went idle.
    return tx.exec1("SELECT count(*) FROM watermark_advances WHERE position > 0")[0].as<long>();
  };
  {
    cluster.produce(early.string());
    background_meterflow serve({"serve", "--kafka", cluster.bootstrap(), "--config",
                                idle_config_file, "--store", from_kafka.conninfo(),
                                "--kafka-properties", properties, "--quiet"});
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (committed_messages(from_kafka.conninfo()) < early_count &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    REQUIRE(committed_messages(from_kafka.conninfo()) == early_count);
    std::this_thread::sleep_for(std::chrono::seconds(2)); // the others are idle now
    cluster.produce(late.string());
    until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((committed_messages(from_kafka.conninfo()) < 12740 || advances() == 0) &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    serve.stop(SIGKILL);
  }
  REQUIRE(committed_messages(from_kafka.conninfo()) == 12740);
  REQUIRE(advances() > 0);

  // Started again, each partition replays its events and its stored advances; drained, the
  // stored events and final aggregates are the file's, and so is the money. An idle move is a
  // wall-clock decision that can cross a correction interval earlier than the file's
  // watermark did, so very late events may be re-rated at another step: which charges
  // supersede which, and how the corrections group, may differ (docs/semantics.md).
  const auto drained =
      f.drain(from_kafka.conninfo(), " --report " + shell_quote((dir.path / "report").string()),
              idle_config_file);
  INFO(drained.out);
  REQUIRE(drained.status == 0);
  CHECK_THAT(drained.out, Catch::Contains("reconciliation: ok"));
  std::set<std::string> regrouped = stream_specific;
  regrouped.insert({"rated_charges", "invoices", "invoice_line_items", "ledger_entries",
                    "rerate_run_documents"});
  meterflow::test::check_stores_equal(from_file.conninfo(), from_kafka.conninfo(), regrouped);
  const auto money = [](const std::string& conninfo) {
    pqxx::connection c(conninfo);
    pqxx::nontransaction tx(c);
    const std::string invoiced = tx.exec1(R"sql(
      SELECT coalesce(string_agg(customer_id || ' ' || p || ' ' || t, ', ' ORDER BY customer_id, p), '')
      FROM (SELECT customer_id, period_start::text AS p, sum(total)::text AS t
            FROM invoices GROUP BY 1, 2) i)sql")[0]
                                     .c_str();
    const std::string charged = tx.exec1(R"sql(
      SELECT coalesce(string_agg(customer_id || ' ' || metric || ' ' || p || ' ' || a, ', '
                                 ORDER BY customer_id, metric, p), '')
      FROM (SELECT customer_id, metric, date_trunc('month', window_start)::text AS p,
                   sum(amount)::text AS a
            FROM current_charges GROUP BY 1, 2, 3) c)sql")[0]
                                    .c_str();
    return invoiced + " | " + charged;
  };
  const std::string expected = money(from_file.conninfo());
  CHECK_FALSE(expected.empty());
  CHECK(money(from_kafka.conninfo()) == expected);
}
