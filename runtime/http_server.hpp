#pragma once

// The HTTP front end of the live service (docs/api.md): POST /v1/events validates events with
// the engine's own parser and publishes the valid ones to Kafka, answering 202 only once Kafka
// acknowledged them durably; GET /healthz and GET /metrics. Every route except /healthz needs an
// API key, including routes added later through server().
//
// Publishing is a group commit: one producer thread takes the lines of all waiting requests
// from a queue, sends them, flushes once and hands each request its own delivery reports. The
// queue holds at most `http.max_in_flight_events` events (the in-flight budget of the whole
// service); a request that does not fit is answered 429, never queued without bound.
//
// Duplicate answers are best-effort: an event is `duplicate` when its (customer_id, event_id)
// is in the store's telemetry_events (with a store URL), was accepted earlier by this process
// (a bounded cache of recent keys) or came earlier in the same request. Two requests carrying
// the same event at the same time may both be accepted; the engine's exact deduplication counts
// it once.

#include "config/config.hpp"
#include "runtime/kafka_producer.hpp"
#include "runtime/service_metrics.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

namespace httplib {
class Server;
}

namespace meterflow::runtime {

// Where and how the service runs; who may call it and how much a request may carry come from the
// configuration's "http" section (config::http_settings).
struct http_service_options {
  std::string host = "127.0.0.1";
  int port = 8080; // 0: any free port, port() tells which
  // Without API keys in the configuration start() refuses to serve unless this is set.
  bool allow_unauthenticated = false;
  std::size_t threads = 8; // connections served at once
  std::size_t keep_alive_max_count = 100;
  std::chrono::seconds write_timeout{5};
  // Kafka's message.timeout.ms: a line not acknowledged by then is answered 503.
  std::chrono::milliseconds delivery_timeout{10'000};
  // Accepted (customer_id, event_id) keys remembered for duplicate answers (32 bytes each,
  // rounded up to a power of two).
  std::size_t recent_keys = 1 << 20;
  kafka_producer_options kafka;
  std::optional<std::string> store_url; // PostgreSQL: duplicates of stored events
};

class http_service {
public:
  http_service(const config::configuration& cfg, http_service_options options,
               service_metrics& metrics);
  ~http_service(); // stops
  http_service(const http_service&) = delete;
  http_service& operator=(const http_service&) = delete;

  // For more routes, registered before start(); the API-key check covers them. Their latency
  // is labelled with the request path, ids replaced by "{id}".
  httplib::Server& server();

  // Binds, starts the producer and serves on background threads. Throws std::runtime_error
  // when it cannot listen, or when there are no API keys and allow_unauthenticated is not set.
  void start();
  // Stops accepting, answers the requests in progress, joins every thread. Idempotent.
  void stop();
  int port() const; // the bound port, after start()

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace meterflow::runtime
