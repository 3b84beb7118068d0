#pragma once

// Sends event lines to a running meterflow at a target rate (issue 8): to the HTTP API
// (POST /v1/events, NDJSON batches over keep-alive connections) or straight to the Kafka topic
// the engine reads. The load generator uses it for `--send`.
//
// Open loop: batch i is due at start + i × batch / rate whether or not earlier batches were
// answered, and its latency runs from that due time to its answer (202 from the API; every
// message acknowledged by the in-sync replicas from Kafka). A target that falls behind shows
// as latency, not as a lower offered rate: the load does not wait for the system it measures
// (no coordinated omission). With HTTP, at most `connections` batches are in flight; a batch
// that waits for a free connection counts that wait as latency too.

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace meterflow::bench {

struct send_target {
  enum class scheme { http, kafka };
  scheme kind = scheme::http;
  std::string host;    // http
  int port = 0;        // http
  std::string brokers; // kafka: host:port[,host:port...]
  std::string url;     // as given, for messages
};

// "http://HOST:PORT" or "kafka://HOST:PORT[,HOST:PORT...]"; throws std::invalid_argument
// naming what is wrong.
send_target parse_send_target(std::string_view url);

struct send_options {
  send_target target;
  std::string api_key;                                 // http: the bearer token
  std::string topic = "telemetry-events";              // kafka
  std::map<std::string, std::string> kafka_properties; // kafka: more librdkafka settings
  std::uint64_t rate = 0;           // events per second; 0: each batch when it can go
  std::size_t batch = 1000;         // events per request (http) or per flush (kafka)
  std::size_t connections = 4;      // http: keep-alive connections, one batch each at a time
  std::ostream* progress = nullptr; // a line every 5 s while sending
};

struct send_report {
  std::uint64_t events = 0, batches = 0;
  std::uint64_t failed_batches = 0, failed_events = 0;
  double seconds = 0;
  std::vector<std::int64_t> latency_ns; // one per batch, sorted
  std::string first_error;              // of the first failed batch

  // The latency at quantile q in [0, 1] (nearest rank), in milliseconds; 0 without batches.
  double latency_ms(double q) const;
};

// Sends `lines` in order, `batch` at a time. Failed batches are counted, not retried.
send_report send_lines(const std::vector<std::string_view>& lines, const send_options& options);

} // namespace meterflow::bench
