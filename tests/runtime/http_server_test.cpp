// The HTTP ingest server against librdkafka's mock cluster: per-event answers, duplicates,
// authentication, limits, backpressure (429), Kafka refusing (503), hostile input, and what ends
// up in the topic: exactly the accepted events, once each, on their customer's partition.

#include "actors/dataflow.hpp"
#include "runtime/http_server.hpp"
#include "runtime/kafka_mock.hpp"
#include "support/kafka_topic.hpp"
#include "support/pg_test_schema.hpp"

#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <future>
#include <httplib.h>
#include <map>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <random>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace meterflow;
using namespace meterflow::runtime;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

constexpr int partitions = 4;
constexpr std::int16_t produce_api_key =
    0; // Kafka's Produce request (librdkafka's produce_api_key is private)
const std::string api_key = "test-key-0123456789abcdef";

std::string event(const std::string& id, const std::string& customer = "c1",
                  const std::string& value = "1") {
  return R"({"event_id":")" + id + R"(","event_time":"2024-01-15T10:00:00Z","customer_id":")" +
         customer + R"(","event_type":"storage","value":")" + value + R"("})";
}

struct server_fixture {
  explicit server_fixture(
      const std::string& topic_name,
      std::function<void(config::configuration&, http_service_options&)> adjust = {})
      : cluster(1), topic(topic_name) {
    cluster.create_topic(topic, partitions);
    cfg = config::load_file(std::string(METERFLOW_SOURCE_DIR) + "/examples/config.json");
    cfg.http.api_keys = {{"test", api_key}, {"other", "other-key-0123456789abcdef"}};
    cfg.http.read_timeout = 1'000'000;
    http_service_options options;
    options.port = 0;
    options.kafka = {cluster.bootstrap(), topic, {{"linger.ms", "1"}}};
    options.delivery_timeout = 3000ms;
    if (adjust)
      adjust(cfg, options);
    service = std::make_unique<http_service>(cfg, options, metrics);
    service->start();
  }

  httplib::Client client(const std::string& key = api_key) const {
    httplib::Client c("127.0.0.1", service->port());
    if (!key.empty())
      c.set_bearer_token_auth(key.c_str());
    c.set_read_timeout(30, 0);
    return c;
  }

  httplib::Result post(const std::string& body,
                       const std::string& type = "application/json") const {
    return client().Post("/v1/events", body, type.c_str());
  }

  // Publishes and checks the answer: statuses by index.
  std::vector<std::string> statuses(const httplib::Result& res) const {
    REQUIRE(res);
    const json j = json::parse(res->body);
    std::vector<std::string> out;
    for (const auto& r : j.at("results"))
      out.push_back(r.at("status").get<std::string>());
    return out;
  }

  mock_kafka_cluster cluster;
  std::string topic;
  config::configuration cfg;
  service_metrics metrics;
  std::unique_ptr<http_service> service;
};

// The topic holds exactly `accepted`, once each, keyed by customer on partition_of(customer).
void check_topic(const server_fixture& f, const std::multiset<std::string>& accepted) {
  const auto messages = test::read_topic(f.cluster, f.topic, partitions);
  std::multiset<std::string> payloads;
  for (const auto& m : messages) {
    payloads.insert(m.payload);
    const std::string customer = json::parse(m.payload).at("customer_id").get<std::string>();
    CHECK(m.key == customer);
    CHECK(m.partition == static_cast<std::int32_t>(actors::partition_of(customer, partitions)));
  }
  CHECK(payloads == accepted);
}

} // namespace

namespace {

// Connects, sends `text` and returns the socket (or -1).
int raw_connect(int port, const std::string& text) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  if (::send(fd, text.data(), text.size(), MSG_NOSIGNAL) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The status line and headers of the answer on `fd` (at most 5 s).
std::string read_answer_head(int fd) {
  timeval wait{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  char buffer[4096];
  std::string answer;
  for (ssize_t got; answer.find("\r\n\r\n") == std::string::npos &&
                    (got = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
    answer.append(buffer, static_cast<std::size_t>(got));
  return answer;
}

template <typename Condition>
bool eventually(Condition done) {
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!done() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  return done();
}

} // namespace

TEST_CASE("http: one event, an array, NDJSON; per-event answers and duplicates", "[http]") {
  server_fixture f("ingest");
  std::multiset<std::string> accepted;

  auto one = f.post(event("e1"));
  REQUIRE(one);
  CHECK(one->status == 202);
  CHECK(f.statuses(one) == std::vector<std::string>{"accepted"});
  accepted.insert(event("e1"));

  // An array: re-serialised compactly, one line per element, numbers as written.
  auto array = f.post("[\n  " + event("e2", "c2") +
                      ",\n  {\"event_id\": \"e3\", \"event_time\": "
                      "\"2024-01-15T10:00:00Z\", \"customer_id\": \"c3\", \"event_type\": "
                      "\"storage\", \"value\": 0.10}\n]");
  REQUIRE(array);
  CHECK(array->status == 202);
  CHECK(f.statuses(array) == std::vector<std::string>{"accepted", "accepted"});
  accepted.insert(event("e2", "c2"));
  accepted.insert(R"({"event_id":"e3","event_time":"2024-01-15T10:00:00Z","customer_id":"c3",)"
                  R"("event_type":"storage","value":0.10})");

  // NDJSON with a blank line, an invalid event, a duplicate of an earlier request, a duplicate
  // within the request and a conflicting version of an earlier event.
  const std::string bad_time = R"({"event_id":"e5","event_time":"yesterday","customer_id":"c1",)"
                               R"("event_type":"storage"})";
  auto mixed = f.post(event("e4", "c4") + "\r\n\n" + bad_time + "\n" + event("e1") + "\n" +
                          event("e4", "c4") + "\n" + event("e2", "c2", "7") + "\n",
                      "application/x-ndjson");
  REQUIRE(mixed);
  CHECK(mixed->status == 202);
  CHECK(f.statuses(mixed) ==
        std::vector<std::string>{"accepted", "rejected", "duplicate", "duplicate", "rejected"});
  const json body = json::parse(mixed->body);
  CHECK(body.at("results")[1].at("reason") == "bad_time");
  CHECK(body.at("results")[1].at("event_id").is_null());
  CHECK(body.at("results")[2].at("event_id") == "e1");
  CHECK(body.at("results")[3].at("detail") == "same customer_id and event_id as index 0 of this "
                                              "request");
  CHECK(body.at("results")[4].at("reason") == "event_id_conflict");
  CHECK(body.at("accepted") == 1);
  CHECK(body.at("duplicate") == 2);
  CHECK(body.at("rejected") == 2);
  accepted.insert(event("e4", "c4"));

  // All invalid: 400 with the same per-event body.
  auto invalid = f.post("[" + bad_time + ",{\"event_id\":\"x\"}]");
  REQUIRE(invalid);
  CHECK(invalid->status == 400);
  CHECK(f.statuses(invalid) == std::vector<std::string>{"rejected", "rejected"});
  CHECK(json::parse(invalid->body).at("results")[1].at("reason") == "missing_field");

  const std::string metrics = f.metrics.prometheus_text();
  CHECK(metrics.find(R"(meterflow_http_events_total{outcome="accepted"} 4)") != std::string::npos);
  CHECK(metrics.find(R"(meterflow_http_events_total{outcome="duplicate"} 2)") != std::string::npos);
  CHECK(eventually([&] {
    return f.metrics.prometheus_text().find(R"(route="/v1/events",code="202")") !=
           std::string::npos;
  }));
  check_topic(f, accepted);
}

TEST_CASE("http: API keys, content types, size limits, health and metrics", "[http]") {
  server_fixture f("limits", [](config::configuration& cfg, http_service_options&) {
    cfg.http.max_body_bytes = 4096;
    cfg.http.max_events_per_request = 3;
  });

  auto health = f.client("").Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->body == R"({"status":"ok"})");

  auto anonymous = f.client("").Post("/v1/events", event("a1"), "application/json");
  REQUIRE(anonymous);
  CHECK(anonymous->status == 401);
  CHECK(anonymous->get_header_value("WWW-Authenticate").rfind("Bearer", 0) == 0);
  CHECK(json::parse(anonymous->body).at("error") == "unauthorized");
  auto wrong =
      f.client("test-key-0123456789abcdeX").Post("/v1/events", event("a1"), "application/json");
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  CHECK(f.client("test-key-0123456789abcdeX").Get("/metrics")->status == 401);
  auto basic = f.client("");
  basic.set_basic_auth("test", api_key.c_str());
  CHECK(basic.Get("/metrics")->status == 401);

  auto second_key = f.client("other-key-0123456789abcdef").Get("/metrics");
  REQUIRE(second_key);
  CHECK(second_key->status == 200);
  CHECK(second_key->get_header_value("Content-Type") == "text/plain; version=0.0.4");
  CHECK(second_key->body.find("# TYPE meterflow_http_events_total counter") != std::string::npos);
  // The latency is observed once the answer is written, just after the client has it.
  CHECK(eventually([&] {
    return f.metrics.prometheus_text().find(R"(route="/metrics",code="200")") != std::string::npos;
  }));
  CHECK(eventually([&] {
    return f.metrics.prometheus_text().find(R"(route="unmatched",code="401")") != std::string::npos;
  }));
  // Routes added by other modules read whole bodies: a chunked one (unbounded in the library)
  // is refused.
  const int chunked_elsewhere = raw_connect(
      f.service->port(), "POST /v1/other HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + api_key +
                             "\r\nContent-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
  REQUIRE(chunked_elsewhere >= 0);
  CHECK(read_answer_head(chunked_elsewhere).rfind("HTTP/1.1 411", 0) == 0);
  ::close(chunked_elsewhere);
  // An unknown route needs a key too, then answers a JSON 404.
  CHECK(f.client("").Get("/v1/nothing")->status == 401);
  auto missing = f.client().Get("/v1/nothing");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(json::parse(missing->body).at("error") == "not_found");

  auto form = f.post(event("a1"), "application/x-www-form-urlencoded");
  REQUIRE(form);
  CHECK(form->status == 415);
  CHECK(json::parse(form->body).at("error") == "unsupported_media_type");
  CHECK(f.post(event("a1"), "application/json; charset=latin1")->status == 415);
  CHECK(f.post(event("a1"), "application/json; charset=utf-8")->status == 202);

  auto big = f.post("[" + event(std::string(5000, 'x')) + "]");
  REQUIRE(big);
  CHECK(big->status == 413);
  CHECK(json::parse(big->body).at("error") == "too_large");
  auto many =
      f.post("[" + event("a2") + "," + event("a3") + "," + event("a4") + "," + event("a5") + "]");
  REQUIRE(many);
  CHECK(many->status == 413);
  CHECK(json::parse(many->body).at("error") == "too_many_events");
  auto many_lines =
      f.post(event("a2") + "\n" + event("a3") + "\n" + event("a4") + "\n" + event("a5"),
             "application/x-ndjson");
  REQUIRE(many_lines);
  CHECK(many_lines->status == 413);
  // A chunked body over the limit is cut off while it is read (a raw socket: the answer comes
  // before the body is sent completely, which a library client may report as a failed write).
  std::string chunks;
  for (int i = 0; i < 8; ++i)
    chunks += "400\r\n" + std::string(1024, ' ') + "\r\n";
  const int chunked = raw_connect(
      f.service->port(), "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + api_key +
                             "\r\nContent-Type: application/json\r\nTransfer-Encoding: "
                             "chunked\r\n\r\n" +
                             chunks + "0\r\n\r\n");
  REQUIRE(chunked >= 0);
  CHECK(read_answer_head(chunked).rfind("HTTP/1.1 413", 0) == 0);
  ::close(chunked);
  auto empty = f.post("[]");
  REQUIRE(empty);
  CHECK(empty->status == 400);
  CHECK(json::parse(empty->body).at("error") == "no_events");
  check_topic(f, {event("a1")});
}

TEST_CASE("http: the service refuses to start without API keys unless allowed", "[http]") {
  mock_kafka_cluster cluster(1);
  cluster.create_topic("nokeys", 1);
  auto cfg = config::load_file(std::string(METERFLOW_SOURCE_DIR) + "/examples/config.json");
  cfg.http.api_keys.clear(); // the examples carry a demo key
  service_metrics metrics;
  http_service_options options;
  options.port = 0;
  options.kafka = {cluster.bootstrap(), "nokeys", {}};
  http_service refused(cfg, options, metrics);
  CHECK_THROWS_WITH(refused.start(), Catch::Contains("no API keys"));
  options.allow_unauthenticated = true;
  http_service open(cfg, options, metrics);
  open.start();
  httplib::Client c("127.0.0.1", open.port());
  auto res = c.Post("/v1/events", event("open-1"), "application/json");
  REQUIRE(res);
  CHECK(res->status == 202);
}

TEST_CASE("http: 429 when the in-flight budget is used up, never queued without bound", "[http]") {
  server_fixture f("busy", [](config::configuration& cfg, http_service_options& options) {
    cfg.http.max_in_flight_events = 4;
    cfg.http.max_events_per_request = 4;
    options.delivery_timeout = 10s;
  });
  // The producer's id and the metadata first, so the slow broker below delays produce only.
  auto warm = f.post(event("b0"));
  REQUIRE(warm);
  REQUIRE(warm->status == 202);
  // A slow broker holds the first request's events in flight.
  rd_kafka_mock_broker_set_rtt(f.cluster.get(), 1, 1000);
  std::string first_body = "[" + event("b1") + "," + event("b2") + "," + event("b3") + "]";
  auto first = std::async(std::launch::async, [&] { return f.post(first_body); });
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (f.metrics.prometheus_text().find("meterflow_http_in_flight_events 3\n") ==
             std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  auto busy = f.post("[" + event("b4") + "," + event("b5") + "]");
  REQUIRE(busy);
  CHECK(busy->status == 429);
  CHECK(busy->get_header_value("Retry-After") == "1");
  CHECK(json::parse(busy->body).at("error") == "overloaded");
  auto fits = f.post(event("b6")); // one more still fits
  REQUIRE(fits);
  CHECK(fits->status == 202);
  auto done = first.get();
  REQUIRE(done);
  CHECK(done->status == 202);
  rd_kafka_mock_broker_set_rtt(f.cluster.get(), 1, 0);
  auto after = f.post("[" + event("b4") + "," + event("b5") + "]");
  REQUIRE(after);
  CHECK(after->status == 202);
  CHECK(f.metrics.prometheus_text().find("meterflow_http_in_flight_events 0\n") !=
        std::string::npos);
  check_topic(f, {event("b0"), event("b1"), event("b2"), event("b3"), event("b4"), event("b5"),
                  event("b6")});
}

TEST_CASE("http: 503 when Kafka does not acknowledge, and those events are not claimed", "[http]") {
  server_fixture f("refusing", [](config::configuration&, http_service_options& options) {
    options.delivery_timeout = 800ms;
  });
  std::vector<rd_kafka_resp_err_t> errors(500, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
  rd_kafka_mock_push_request_errors_array(f.cluster.get(), produce_api_key, errors.size(),
                                          errors.data());
  const std::string body = "[" + event("r1") + "," + event("r2", "c2") + ",{\"event_id\":1}]";
  auto refused = f.post(body);
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->get_header_value("Retry-After") == "1");
  CHECK(f.statuses(refused) == std::vector<std::string>{"failed", "failed", "rejected"});
  CHECK(json::parse(refused->body).at("accepted") == 0);
  CHECK(json::parse(refused->body).at("results")[0].at("reason") == "unavailable");

  rd_kafka_mock_clear_request_errors(f.cluster.get(), produce_api_key);
  // Not remembered as accepted: the retry publishes them.
  auto retried = f.post(body);
  REQUIRE(retried);
  CHECK(retried->status == 202);
  CHECK(f.statuses(retried) == std::vector<std::string>{"accepted", "accepted", "rejected"});
  check_topic(f, {event("r1"), event("r2", "c2")});
}

TEST_CASE("http: hostile input gets its status and the server keeps serving", "[http]") {
  server_fixture f("hostile", [](config::configuration& cfg, http_service_options&) {
    cfg.http.max_body_bytes = 4 * 1024 * 1024;
  });
  std::multiset<std::string> accepted;
  int normal = 0;
  auto still_serves = [&] {
    const std::string e = event("ok-" + std::to_string(normal++));
    auto res = f.post(e);
    REQUIRE(res);
    CHECK(res->status == 202);
    accepted.insert(e);
  };

  std::mt19937_64 random(7);
  std::string noise(64 * 1024, '\0');
  for (auto& c : noise)
    c = static_cast<char>(random());
  auto bytes = f.post(noise);
  REQUIRE(bytes);
  CHECK(bytes->status == 400);
  CHECK(json::parse(bytes->body)
            .at("detail")
            .get<std::string>()
            .rfind("the body is not JSON: "
                   "byte ",
                   0) == 0);
  auto noise_lines = f.post(noise.substr(0, 2000), "application/x-ndjson");
  REQUIRE(noise_lines);
  CHECK((noise_lines->status == 400 || noise_lines->status == 413));
  still_serves();

  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  auto nested = f.post(deep);
  REQUIRE(nested);
  CHECK(nested->status == 400);
  CHECK(json::parse(nested->body).at("detail").get<std::string>().find("nested deeper than 32") !=
        std::string::npos);
  const std::string deep_metadata = R"({"event_id":"deep","event_time":"2024-01-15T10:00:00Z",)"
                                    R"("customer_id":"c1","event_type":"api_call","metadata":)" +
                                    std::string(100'000, '{') + "}";
  auto nested_line = f.post(deep_metadata, "application/x-ndjson");
  REQUIRE(nested_line);
  CHECK(nested_line->status == 400);
  CHECK(json::parse(nested_line->body).at("results")[0].at("reason") == "bad_json");
  still_serves();

  const std::string digits(1'000'000, '7');
  const auto started = std::chrono::steady_clock::now();
  auto huge_value = f.post(R"({"event_id":"n1","event_time":"2024-01-15T10:00:00Z",)"
                           R"("customer_id":"c1","event_type":"storage","value":)" +
                           digits + "}");
  auto huge_metadata = f.post(R"({"event_id":"n2","event_time":"2024-01-15T10:00:00Z",)"
                              R"("customer_id":"c1","event_type":"api_call","metadata":{"n":)" +
                              digits + "}}");
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  REQUIRE(huge_value);
  CHECK(huge_value->status == 400);
  CHECK(json::parse(huge_value->body).at("results")[0].at("reason") == "bad_value");
  REQUIRE(huge_metadata);
  CHECK(huge_metadata->status == 400);
  CHECK(json::parse(huge_metadata->body).at("results")[0].at("reason") == "too_large");
  still_serves();

  auto invalid_utf8 = f.post(R"({"event_id":"u1","event_time":"2024-01-15T10:00:00Z",)"
                             R"("customer_id":"c1","event_type":"api_call","metadata":{"k":")"
                             "\xff\xfe"
                             R"("}})");
  REQUIRE(invalid_utf8);
  CHECK(invalid_utf8->status == 400);
  CHECK(json::parse(invalid_utf8->body).at("results")[0].at("detail") == "json: invalid UTF-8");
  still_serves();

  auto huge_header_client = f.client();
  huge_header_client.set_default_headers({{"X-Padding", std::string(100'000, 'h')}});
  auto huge_header = huge_header_client.Post("/v1/events", event("h1"), "application/json");
  REQUIRE(huge_header);
  CHECK(huge_header->status == 400);
  CHECK(json::parse(huge_header->body).at("error") == "bad_request");
  still_serves();

  for (const std::string& key : std::vector<std::string>{"", "x", "test-key-0123456789abcde",
                                                         api_key + "f", std::string(4000, 'k')}) {
    auto res = f.client(key).Post("/v1/events", event("w1"), "application/json");
    REQUIRE(res);
    CHECK(res->status == 401);
  }
  still_serves();

  // A slow client: half a request, then silence. Others are served meanwhile, and the server
  // drops it after its read timeout (1 s here).
  const int slow = raw_connect(
      f.service->port(), "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Authorization: Bearer " +
                             api_key + "\r\nContent-Length: 1000\r\n\r\n{\"event_id\"");
  REQUIRE(slow >= 0);
  still_serves();
  const auto stalled = std::chrono::steady_clock::now();
  const std::string answer = read_answer_head(slow);
  ::close(slow);
  CHECK(std::chrono::steady_clock::now() - stalled < 4s);
  INFO("the slow client got: " << answer);
  CHECK(answer.rfind("HTTP/1.1 400", 0) == 0);
  still_serves();

  check_topic(f, accepted);
}

TEST_CASE("http: events already in the store are duplicates, other versions conflicts",
          "[http][pg]") {
  const auto server = test::pg_server();
  if (!server) {
    WARN("METERFLOW_TEST_PG not set: skipping the PostgreSQL duplicate test");
    return;
  }
  test::pg_test_schema schema(*server);
  {
    pqxx::connection c(schema.conninfo());
    pqxx::work tx(c);
    tx.exec("INSERT INTO telemetry_events (customer_id, event_id, event_type, event_time, value,"
            " metadata, metadata_canonical, partition, append_seq, source_position) VALUES"
            " ('c1', 's1', 'storage', '2024-01-15T10:00:00Z', 1, NULL, NULL, 0, 0, 0),"
            " ('c1', 's2', 'storage', '2024-01-15T10:00:00Z', 2.5, NULL, NULL, 0, 1, 1)");
    tx.commit();
  }
  server_fixture f("stored", [&](config::configuration&, http_service_options& options) {
    options.store_url = schema.conninfo();
  });
  auto res = f.post("[" + event("s1") + "," + event("s2", "c1", "2.500") + "," +
                    event("s2", "c1", "3") + "," + event("s3") + "]");
  REQUIRE(res);
  CHECK(res->status == 202);
  CHECK(f.statuses(res) ==
        std::vector<std::string>{"duplicate", "duplicate", "rejected", "accepted"});
  CHECK(json::parse(res->body).at("results")[2].at("reason") == "event_id_conflict");
  check_topic(f, {event("s3")});
}
