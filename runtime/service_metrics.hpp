#pragma once

// Metrics of the live service (HTTP ingest and the engine behind it) in the Prometheus text
// exposition format 0.0.4. Thread-safe: the HTTP workers, the producer thread and `serve` update
// it while /metrics reads it. Durations are kept as integer nanoseconds and printed as exact
// decimal seconds, so the text is deterministic for the same observations.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace meterflow::runtime {

class service_metrics {
public:
  // Upper bounds of the request latency histogram, in nanoseconds (+Inf is implicit).
  static constexpr std::array<std::int64_t, 13> latency_buckets_ns = {
      1'000'000,     2'500'000,     5'000'000,     10'000'000,  25'000'000,
      50'000'000,    100'000'000,   250'000'000,   500'000'000, 1'000'000'000,
      2'500'000'000, 5'000'000'000, 10'000'000'000};

  // HTTP ingest: per event outcome of POST /v1/events
  void count_events(std::uint64_t received, std::uint64_t accepted, std::uint64_t duplicate,
                    std::uint64_t rejected);
  // Valid events Kafka did not acknowledge (answered 503, to be retried by the client).
  void count_failed_events(std::uint64_t failed);
  // route = the pattern ("/v1/events"), never the raw path, so the label set stays bounded.
  void observe_request(std::string_view route, int status, std::chrono::nanoseconds latency);
  // Events read from requests and not yet answered (parsed, queued or waiting for Kafka).
  void set_in_flight_events(std::size_t n);

  // engine side (set by serve)
  void set_watermark_lag(std::int32_t partition, std::chrono::milliseconds lag);
  void remove_partition(std::int32_t partition);
  void set_open_windows(std::size_t n);
  void set_queue_depth(std::size_t n); // events buffered between ingest and the engine
  void count_engine_events(std::uint64_t accepted, std::uint64_t duplicate, std::uint64_t rejected);

  std::string prometheus_text() const;

private:
  struct histogram {
    std::array<std::uint64_t, latency_buckets_ns.size()> counts{}; // not cumulative
    std::uint64_t count = 0;
    std::int64_t sum_ns = 0;
  };

  std::atomic<std::uint64_t> http_received_{0}, http_accepted_{0}, http_duplicate_{0},
      http_rejected_{0}, http_failed_{0};
  std::atomic<std::uint64_t> engine_accepted_{0}, engine_duplicate_{0}, engine_rejected_{0};
  std::atomic<std::size_t> in_flight_events_{0}, open_windows_{0}, queue_depth_{0};

  mutable std::mutex mutex_; // guards the maps below
  std::map<std::int32_t, std::int64_t> watermark_lag_ms_;
  std::map<std::pair<std::string, int>, histogram> requests_; // (route, status)
};

// Exposition helpers, public for their tests.
// A label value with '\\', '"' and newline escaped as the text format requires.
std::string escape_label_value(std::string_view value);
// 1'500'000 ns -> "0.0015", 2'000'000'000 -> "2", -250'000'000 -> "-0.25".
std::string format_seconds(std::int64_t nanoseconds);

} // namespace meterflow::runtime
