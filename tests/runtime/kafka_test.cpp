// The Kafka building blocks against librdkafka's mock cluster (the real protocol, in process):
// the producer's keys and partitions, the consumer source's exactly-once hand-over of offsets
// across a restart and a rebalance, and `meterflow devkafka` + `meterflow produce`.

#include "actors/dataflow.hpp"
#include "runtime/kafka_mock.hpp"
#include "runtime/kafka_producer.hpp"
#include "runtime/kafka_source.hpp"
#include "support/process.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace meterflow::runtime;
using meterflow::actors::partition_of;
using namespace std::chrono_literals;

namespace {

constexpr int partitions = 4;

std::vector<std::string> example_lines() {
  std::ifstream in(std::string(METERFLOW_SOURCE_DIR) + "/examples/events.ndjson");
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);)
    lines.push_back(l);
  return lines;
}

std::string key_of(const std::string& line) {
  customer_key_reader reader;
  return std::string(reader.read(line).value_or(""));
}

// Group timings for the mock (librdkafka 2.0.2): its first join waits a fixed 3 s, during
// which the joining member sends nothing, so session.timeout.ms must be longer than that or the
// mock drops the member and the join never completes; a later rebalance waits
// session.timeout.ms - 1 s.
kafka_source_options source_options(const mock_kafka_cluster& cluster, const std::string& topic,
                                    const std::string& group) {
  return {cluster.bootstrap(),
          topic,
          group,
          {{"session.timeout.ms", "4500"},
           {"heartbeat.interval.ms", "100"},
           {"fetch.wait.max.ms", "20"}}};
}

void produce_all(const mock_kafka_cluster& cluster, const std::string& topic,
                 const std::vector<std::string>& lines) {
  kafka_producer producer({cluster.bootstrap(), topic, {{"linger.ms", "1"}}});
  for (const auto& l : lines)
    producer.send(l);
  for (const auto& r : producer.flush())
    REQUIRE(r.delivered());
}

// What the engine's store does with a source's batches: events and offsets in one commit.
struct offset_store {
  std::mutex mutex;
  std::map<std::pair<std::int32_t, std::int64_t>, int> stored; // (partition, offset) -> times
  std::multiset<std::string> payloads;
  kafka_offsets offsets;

  void commit(const std::vector<kafka_message>& batch, const kafka_offsets& positions) {
    std::lock_guard lock(mutex);
    for (const auto& m : batch) {
      ++stored[{m.partition, m.offset}];
      payloads.insert(m.payload);
    }
    for (const auto& [p, o] : positions)
      offsets[p] = o;
  }
  kafka_offsets offsets_of(const std::vector<std::int32_t>& assigned) {
    std::lock_guard lock(mutex);
    kafka_offsets out;
    for (auto p : assigned)
      if (offsets.count(p))
        out[p] = offsets[p];
    return out;
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return payloads.size();
  }
  bool exactly_once(const std::vector<std::string>& lines) {
    std::lock_guard lock(mutex);
    for (const auto& [where, times] : stored)
      if (times != 1)
        return false;
    return payloads == std::multiset<std::string>(lines.begin(), lines.end());
  }
};

template <typename Condition>
bool wait_until(Condition done, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// Polls batches into the store, each committed with the positions, until `done` or `limit`.
template <typename Condition>
bool consume_until(kafka_source& source, offset_store& store, Condition done,
                   std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    store.commit(source.poll(500, 100ms), source.positions());
  }
  return true;
}

} // namespace

TEST_CASE("customer_key_reader: the top-level customer_id string, unescaped", "[kafka]") {
  customer_key_reader r;
  CHECK(r.read(R"({"event_id":"e1","customer_id":"c1","value":"2"})") == "c1");
  CHECK(r.read(R"({"customer_id":"c\u0031"})") == "c1");
  CHECK(r.read(R"({"customer\u005fid":"c2"})") == "c2");
  CHECK(r.read(R"({"metadata":{"customer_id":"inner"},"customer_id":"outer"})") == "outer");
  CHECK_FALSE(r.read(R"({"metadata":{"customer_id":"inner"}})"));
  CHECK_FALSE(r.read(R"({"customer_id":null})"));
  CHECK_FALSE(r.read(R"({"customer_id":17})"));
  CHECK_FALSE(r.read(R"(["customer_id","c1"])"));
  CHECK_FALSE(r.read(R"({"event_id":"broken",)"));
  CHECK_FALSE(r.read(""));
}

TEST_CASE("kafka properties: a name=value file, and librdkafka's refusals named", "[kafka]") {
  const auto path = std::filesystem::temp_directory_path() /
                    ("meterflow_kafka_" + std::to_string(::getpid()) + ".properties");
  std::ofstream(path) << "# TLS\n\n  security.protocol = SSL \nsasl.password=a=b\n";
  CHECK(load_kafka_properties(path.string()) ==
        kafka_properties{{"security.protocol", "SSL"}, {"sasl.password", "a=b"}});
  std::ofstream(path) << "security.protocol\n";
  CHECK_THROWS_WITH(load_kafka_properties(path.string()),
                    path.string() + ":1: expected name=value");
  std::filesystem::remove(path);

  CHECK_THROWS_WITH(make_kafka_conf({{"linger.mss", "1"}}),
                    Catch::StartsWith("kafka property linger.mss=1: "));
  // What the guarantees rest on wins over the caller's properties.
  auto conf = make_kafka_conf({{"acks", "0"}}, {{"acks", "all"}});
  char value[16];
  std::size_t size = sizeof value;
  REQUIRE(rd_kafka_conf_get(conf.get(), "acks", value, &size) == RD_KAFKA_CONF_OK);
  CHECK(std::string(value) == "-1");
}

TEST_CASE("kafka: every example line produced is consumed once, each customer on its engine "
          "partition",
          "[kafka]") {
  const auto lines = example_lines();
  REQUIRE(lines.size() == 12740);
  mock_kafka_cluster cluster(3);
  cluster.create_topic("events", partitions);

  kafka_producer producer({cluster.bootstrap(), "events", {{"linger.ms", "1"}}});
  for (const auto& l : lines)
    producer.send(l);
  const auto reports = producer.flush();
  REQUIRE(reports.size() == lines.size());
  std::map<std::int32_t, std::vector<std::size_t>> sent; // partition -> line indexes in order
  for (std::size_t i = 0; i < lines.size(); ++i) {
    REQUIRE(reports[i].delivered());
    CHECK(reports[i].partition ==
          static_cast<std::int32_t>(partition_of(key_of(lines[i]), partitions)));
    sent[reports[i].partition].push_back(i);
  }
  CHECK(producer.flush().empty());

  std::vector<std::int32_t> assigned;
  kafka_source source(source_options(cluster, "events", "all-once"),
                      {[&](const std::vector<std::int32_t>& p) {
                         assigned = p;
                         return kafka_offsets{};
                       },
                       {}});
  std::vector<kafka_message> consumed;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (consumed.size() < lines.size() && std::chrono::steady_clock::now() < deadline)
    for (auto& m : source.poll(1000, 100ms))
      consumed.push_back(std::move(m));
  CHECK(source.poll(1000, 300ms).empty()); // nothing more
  CHECK(assigned == std::vector<std::int32_t>{0, 1, 2, 3});
  REQUIRE(consumed.size() == lines.size());

  std::map<std::int32_t, std::vector<const kafka_message*>> by_partition;
  for (const auto& m : consumed) {
    CHECK(m.key == key_of(m.payload));
    CHECK(m.partition == static_cast<std::int32_t>(partition_of(m.key, partitions)));
    CHECK(m.timestamp_ms > 0);
    by_partition[m.partition].push_back(&m);
  }
  // Per partition: offsets 0, 1, 2, ... and the lines in the order they were sent.
  kafka_offsets expected_positions;
  for (const auto& [p, msgs] : by_partition) {
    REQUIRE(msgs.size() == sent[p].size());
    for (std::size_t k = 0; k < msgs.size(); ++k) {
      CHECK(msgs[k]->offset == static_cast<std::int64_t>(k));
      CHECK(msgs[k]->payload == lines[sent[p][k]]);
    }
    expected_positions[p] = static_cast<std::int64_t>(msgs.size());
  }
  CHECK(source.positions() == expected_positions);
}

TEST_CASE("kafka: a source restarted with the offsets it reported resumes without loss or "
          "duplication",
          "[kafka]") {
  const auto lines = example_lines();
  mock_kafka_cluster cluster(1);
  cluster.create_topic("restart", partitions);
  produce_all(cluster, "restart", lines);

  offset_store store;
  const auto hooks = [&] {
    return kafka_source_hooks{[&](const auto& p) { return store.offsets_of(p); }, {}};
  };
  {
    kafka_source first(source_options(cluster, "restart", "billing"), hooks());
    REQUIRE(consume_until(
        first, store, [&] { return store.size() >= lines.size() / 2; }, 30s));
    // A batch read but never committed: the store has not seen it, so it must come again.
    CHECK_FALSE(first.poll(500, 5s).empty());
  }
  const auto stored_before = store.size();
  REQUIRE(stored_before < lines.size());

  kafka_source second(source_options(cluster, "restart", "billing"), hooks());
  CHECK(consume_until(
      second, store, [&] { return store.size() >= lines.size(); }, 30s));
  store.commit(second.poll(1000, 300ms), second.positions()); // anything more: a duplicate
  CHECK(store.exactly_once(lines));
}

TEST_CASE("kafka: a stored offset the topic does not hold stops the source instead of skipping",
          "[kafka]") {
  mock_kafka_cluster cluster(1);
  cluster.create_topic("retention", 1);
  produce_all(cluster, "retention", {R"({"event_id":"e1","customer_id":"c1"})"});
  kafka_source source(source_options(cluster, "retention", "billing"),
                      {[](const auto&) {
                         return kafka_offsets{{0, 1000}};
                       },
                       {}});
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  bool stopped = false;
  while (!stopped && std::chrono::steady_clock::now() < deadline) {
    try {
      const auto batch = source.poll(100, 100ms);
      CHECK(batch.empty());
    } catch (const kafka_error& e) {
      CHECK_THAT(e.what(), Catch::Contains("partition 0"));
      stopped = true;
    }
  }
  CHECK(stopped);
}

TEST_CASE("kafka: two sources in one group split the partitions; together they read every "
          "message once",
          "[kafka]") {
  const auto lines = example_lines();
  const std::vector<std::string> first_half(lines.begin(), lines.begin() + lines.size() / 2);
  const std::vector<std::string> second_half(lines.begin() + lines.size() / 2, lines.end());
  mock_kafka_cluster cluster(1);
  cluster.create_topic("split", partitions);

  offset_store store;
  struct member {
    std::mutex mutex;
    std::vector<std::int32_t> assignment;
    int assigned_calls = 0, revoked_calls = 0;
    std::atomic<std::size_t> consumed{0};
    bool foreign = false; // consumed from a partition it did not hold
    std::vector<std::int32_t> held() {
      std::lock_guard lock(mutex);
      return assignment;
    }
  };
  std::atomic<bool> stop{false};
  const auto run = [&](member& me) {
    kafka_source source(source_options(cluster, "split", "billing"),
                        {[&](const std::vector<std::int32_t>& p) {
                           std::lock_guard lock(me.mutex);
                           me.assignment = p;
                           ++me.assigned_calls;
                           return store.offsets_of(p);
                         },
                         [&](const std::vector<std::int32_t>&) {
                           std::lock_guard lock(me.mutex);
                           me.assignment.clear();
                           ++me.revoked_calls;
                         }});
    while (!stop) {
      const auto batch = source.poll(500, 50ms);
      const auto held = me.held();
      for (const auto& m : batch)
        if (std::find(held.begin(), held.end(), m.partition) == held.end())
          me.foreign = true;
      store.commit(batch, source.positions());
      me.consumed += batch.size();
    }
  };

  member a, b;
  std::thread ta(run, std::ref(a));
  REQUIRE(wait_until([&] { return a.held().size() == partitions; }, 20s));
  produce_all(cluster, "split", first_half);
  REQUIRE(wait_until([&] { return store.size() == first_half.size(); }, 20s));

  const std::size_t a_before_split = a.consumed;
  std::thread tb(run, std::ref(b));
  const bool split = wait_until(
      [&] {
        auto ha = a.held(), hb = b.held();
        if (ha.empty() || hb.empty())
          return false;
        std::set<std::int32_t> all(ha.begin(), ha.end());
        all.insert(hb.begin(), hb.end());
        return all.size() == partitions && ha.size() + hb.size() == partitions;
      },
      20s);
  if (split)
    produce_all(cluster, "split", second_half);
  const bool complete = wait_until([&] { return store.size() >= lines.size(); }, 20s);
  std::this_thread::sleep_for(300ms); // anything beyond would be a duplicate
  stop = true;
  ta.join();
  tb.join();
  REQUIRE(split);
  REQUIRE(complete);
  CHECK(a.revoked_calls >= 1); // the second member's join took partitions from the first
  CHECK(b.assigned_calls >= 1);
  CHECK(a.consumed > a_before_split); // both read some of the second half
  CHECK(b.consumed > 0);
  CHECK_FALSE(a.foreign);
  CHECK_FALSE(b.foreign);
  CHECK(store.exactly_once(lines));
}

TEST_CASE("meterflow devkafka prints a bootstrap address meterflow produce sends to; SIGTERM "
          "stops it",
          "[kafka][cli]") {
  using meterflow::test::run_meterflow;
  using meterflow::test::shell_quote;
  meterflow::test::background_meterflow devkafka(
      {"devkafka", "--partitions", "3", "--topic", "cli-events"});
  const auto first = devkafka.read_line(20s);
  REQUIRE(first);
  REQUIRE(first->rfind("bootstrap=", 0) == 0);
  const std::string bootstrap = first->substr(10);

  const std::string events = std::string(METERFLOW_SOURCE_DIR) + "/examples/events.ndjson";
  const auto sent = run_meterflow("produce --brokers " + shell_quote(bootstrap) +
                                  " --topic cli-events --events " + shell_quote(events) + " 2>&1");
  CHECK(sent.status == 0);
  CHECK_THAT(sent.out, Catch::Contains("12740 events acknowledged on cli-events"));

  {
    // The topic holds them all, in its 3 partitions.
    auto client =
        make_kafka_handle(RD_KAFKA_CONSUMER, make_kafka_conf({{"bootstrap.servers", bootstrap}}));
    std::int64_t total = 0;
    for (std::int32_t p = 0; p < 3; ++p) {
      std::int64_t low = 0, high = 0;
      REQUIRE(rd_kafka_query_watermark_offsets(client.get(), "cli-events", p, &low, &high, 5000) ==
              RD_KAFKA_RESP_ERR_NO_ERROR);
      total += high - low;
    }
    CHECK(total == 12740);
  }

  CHECK(devkafka.stop(SIGTERM) == 0);
}

TEST_CASE("meterflow produce: a line the cluster does not acknowledge fails the command, named",
          "[kafka][cli]") {
  using meterflow::test::run_meterflow;
  using meterflow::test::shell_quote;
  const std::string events = std::string(METERFLOW_SOURCE_DIR) + "/examples/events.ndjson";
  // Nothing listens on port 1: every line times out.
  const auto r = run_meterflow("produce --brokers 127.0.0.1:1 --topic t --timeout 1s --events " +
                               shell_quote(events) + " 2>&1");
  CHECK(r.status == 1);
  CHECK_THAT(r.out, Catch::Contains("12740 of 12740 events not acknowledged") &&
                        Catch::Contains("first: line 1: Local: Message timed out"));

  CHECK(run_meterflow("produce --brokers 127.0.0.1:1 --topic t --timeout 0s --events " +
                      shell_quote(events) + " 2>/dev/null")
            .status == 2);
  CHECK(
      run_meterflow("produce --topic t --events " + shell_quote(events) + " 2>/dev/null").status ==
      2);
}
