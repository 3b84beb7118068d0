#include "runtime/service_metrics.hpp"

namespace meterflow::runtime {

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_seconds(std::int64_t nanoseconds) {
  const bool negative = nanoseconds < 0;
  // Through unsigned, so the most negative value has a magnitude too.
  const std::uint64_t magnitude = negative ? 0 - static_cast<std::uint64_t>(nanoseconds)
                                           : static_cast<std::uint64_t>(nanoseconds);
  std::string out = negative ? "-" : "";
  out += std::to_string(magnitude / 1'000'000'000);
  std::uint64_t fraction = magnitude % 1'000'000'000;
  if (fraction == 0)
    return out;
  std::string digits = std::to_string(fraction);
  digits.insert(0, 9 - digits.size(), '0');
  digits.erase(digits.find_last_not_of('0') + 1);
  return out + "." + digits;
}

void service_metrics::count_events(std::uint64_t received, std::uint64_t accepted,
                                   std::uint64_t duplicate, std::uint64_t rejected) {
  http_received_ += received;
  http_accepted_ += accepted;
  http_duplicate_ += duplicate;
  http_rejected_ += rejected;
}

void service_metrics::count_failed_events(std::uint64_t failed) {
  http_failed_ += failed;
}

void service_metrics::observe_request(std::string_view route, int status,
                                      std::chrono::nanoseconds latency) {
  const std::int64_t ns = latency.count();
  std::lock_guard lock(mutex_);
  auto& h = requests_[{std::string(route), status}];
  ++h.count;
  h.sum_ns += ns;
  for (std::size_t i = 0; i < latency_buckets_ns.size(); ++i)
    if (ns <= latency_buckets_ns[i]) {
      ++h.counts[i];
      break;
    }
}

void service_metrics::set_in_flight_events(std::size_t n) {
  in_flight_events_ = n;
}

void service_metrics::set_watermark_lag(std::int32_t partition, std::chrono::milliseconds lag) {
  std::lock_guard lock(mutex_);
  watermark_lag_ms_[partition] = lag.count();
}

void service_metrics::remove_partition(std::int32_t partition) {
  std::lock_guard lock(mutex_);
  watermark_lag_ms_.erase(partition);
}

void service_metrics::set_open_windows(std::size_t n) {
  open_windows_ = n;
}

void service_metrics::set_queue_depth(std::size_t n) {
  queue_depth_ = n;
}

void service_metrics::count_engine_events(std::uint64_t accepted, std::uint64_t duplicate,
                                          std::uint64_t rejected) {
  engine_accepted_ += accepted;
  engine_duplicate_ += duplicate;
  engine_rejected_ += rejected;
}

namespace {

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels,
            const std::string& value) {
  out.append(name);
  if (!labels.empty())
    out.append("{").append(labels).append("}");
  out.append(" ").append(value).append("\n");
}

void outcomes(std::string& out, std::string_view name,
              std::initializer_list<std::pair<const char*, std::uint64_t>> values) {
  for (const auto& [outcome, n] : values)
    sample(out, name, std::string("outcome=\"") + outcome + "\"", std::to_string(n));
}

} // namespace

std::string service_metrics::prometheus_text() const {
  std::string out;
  header(out, "meterflow_http_events_total", "counter",
         "Events received by POST /v1/events, by outcome.");
  outcomes(out, "meterflow_http_events_total",
           {{"received", http_received_.load()},
            {"accepted", http_accepted_.load()},
            {"duplicate", http_duplicate_.load()},
            {"rejected", http_rejected_.load()},
            {"failed", http_failed_.load()}});
  header(out, "meterflow_http_in_flight_events", "gauge",
         "Events read from requests and not answered yet.");
  sample(out, "meterflow_http_in_flight_events", "", std::to_string(in_flight_events_.load()));
  header(out, "meterflow_engine_events_total", "counter",
         "Events processed by the engine, by outcome.");
  outcomes(out, "meterflow_engine_events_total",
           {{"accepted", engine_accepted_.load()},
            {"duplicate", engine_duplicate_.load()},
            {"rejected", engine_rejected_.load()}});
  header(out, "meterflow_open_windows", "gauge", "Windows not final yet.");
  sample(out, "meterflow_open_windows", "", std::to_string(open_windows_.load()));
  header(out, "meterflow_queue_depth", "gauge",
         "Events buffered between ingestion and the engine.");
  sample(out, "meterflow_queue_depth", "", std::to_string(queue_depth_.load()));

  std::lock_guard lock(mutex_);
  header(out, "meterflow_watermark_lag_seconds", "gauge",
         "Wall-clock time minus the partition's watermark.");
  for (const auto& [partition, lag_ms] : watermark_lag_ms_)
    sample(out, "meterflow_watermark_lag_seconds",
           "partition=\"" + std::to_string(partition) + "\"", format_seconds(lag_ms * 1'000'000));

  const std::string_view name = "meterflow_http_request_duration_seconds";
  header(out, name, "histogram", "HTTP request latency, by route pattern and status code.");
  for (const auto& [key, h] : requests_) {
    const std::string labels = "route=\"" + escape_label_value(key.first) + "\",code=\"" +
                               std::to_string(key.second) + "\"";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < latency_buckets_ns.size(); ++i) {
      cumulative += h.counts[i];
      sample(out, std::string(name) + "_bucket",
             labels + ",le=\"" + format_seconds(latency_buckets_ns[i]) + "\"",
             std::to_string(cumulative));
    }
    sample(out, std::string(name) + "_bucket", labels + ",le=\"+Inf\"", std::to_string(h.count));
    sample(out, std::string(name) + "_sum", labels, format_seconds(h.sum_ns));
    sample(out, std::string(name) + "_count", labels, std::to_string(h.count));
  }
  return out;
}

} // namespace meterflow::runtime
