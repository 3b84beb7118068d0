// The Prometheus text of service_metrics: HELP/TYPE lines, cumulative histogram buckets, exact
// seconds and escaped label values.

#include "runtime/service_metrics.hpp"

#include <catch2/catch.hpp>

using namespace meterflow::runtime;
using namespace std::chrono_literals;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

} // namespace

TEST_CASE("format_seconds: exact decimal seconds from integer nanoseconds", "[http]") {
  CHECK(format_seconds(0) == "0");
  CHECK(format_seconds(1'500'000) == "0.0015");
  CHECK(format_seconds(2'000'000'000) == "2");
  CHECK(format_seconds(-250'000'000) == "-0.25");
  CHECK(format_seconds(1) == "0.000000001");
  CHECK(format_seconds(INT64_MIN) == "-9223372036.854775808");
}

TEST_CASE("escape_label_value: backslash, quote and newline", "[http]") {
  CHECK(escape_label_value(R"(a\b"c)") == R"(a\\b\"c)");
  CHECK(escape_label_value("x\ny") == "x\\ny");
  CHECK(escape_label_value("/v1/events") == "/v1/events");
}

TEST_CASE("service_metrics: the text exposition format", "[http]") {
  service_metrics m;
  m.count_events(10, 6, 3, 1);
  m.count_events(1, 1, 0, 0);
  m.count_failed_events(2);
  m.count_engine_events(5, 1, 0);
  m.set_open_windows(7);
  m.set_queue_depth(3);
  m.set_in_flight_events(42);
  m.set_watermark_lag(1, 1500ms);
  m.set_watermark_lag(0, -20ms);
  m.set_watermark_lag(2, 1s);
  m.remove_partition(2);
  m.observe_request("/v1/events", 202, 3ms);
  m.observe_request("/v1/events", 202, 1ms); // on a bound: in that bucket (le is inclusive)
  m.observe_request("/v1/events", 202, 20s);
  m.observe_request("/v1/\"x\"\\", 400, 0ns);
  const std::string text = m.prometheus_text();

  CHECK(has_line(text, "# HELP meterflow_http_events_total Events received by POST /v1/events, "
                       "by outcome."));
  CHECK(has_line(text, "# TYPE meterflow_http_events_total counter"));
  CHECK(has_line(text, R"(meterflow_http_events_total{outcome="received"} 11)"));
  CHECK(has_line(text, R"(meterflow_http_events_total{outcome="accepted"} 7)"));
  CHECK(has_line(text, R"(meterflow_http_events_total{outcome="duplicate"} 3)"));
  CHECK(has_line(text, R"(meterflow_http_events_total{outcome="rejected"} 1)"));
  CHECK(has_line(text, R"(meterflow_http_events_total{outcome="failed"} 2)"));
  CHECK(has_line(text, R"(meterflow_engine_events_total{outcome="accepted"} 5)"));
  CHECK(has_line(text, "# TYPE meterflow_open_windows gauge"));
  CHECK(has_line(text, "meterflow_open_windows 7"));
  CHECK(has_line(text, "meterflow_queue_depth 3"));
  CHECK(has_line(text, "meterflow_http_in_flight_events 42"));
  CHECK(has_line(text, R"(meterflow_watermark_lag_seconds{partition="0"} -0.02)"));
  CHECK(has_line(text, R"(meterflow_watermark_lag_seconds{partition="1"} 1.5)"));
  CHECK(text.find(R"(partition="2")") == std::string::npos);

  CHECK(has_line(text, "# TYPE meterflow_http_request_duration_seconds histogram"));
  const std::string labels = R"(route="/v1/events",code="202")";
  CHECK(has_line(text,
                 "meterflow_http_request_duration_seconds_bucket{" + labels + R"(,le="0.001"} 1)"));
  CHECK(has_line(text, "meterflow_http_request_duration_seconds_bucket{" + labels +
                           R"(,le="0.0025"} 1)"));
  CHECK(has_line(text,
                 "meterflow_http_request_duration_seconds_bucket{" + labels + R"(,le="0.005"} 2)"));
  CHECK(has_line(text,
                 "meterflow_http_request_duration_seconds_bucket{" + labels + R"(,le="10"} 2)"));
  CHECK(has_line(text,
                 "meterflow_http_request_duration_seconds_bucket{" + labels + R"(,le="+Inf"} 3)"));
  CHECK(has_line(text, "meterflow_http_request_duration_seconds_sum{" + labels + "} 20.004"));
  CHECK(has_line(text, "meterflow_http_request_duration_seconds_count{" + labels + "} 3"));
  CHECK(has_line(
      text, R"(meterflow_http_request_duration_seconds_count{route="/v1/\"x\"\\",code="400"} 1)"));
  // Every sample line belongs to a family announced before it.
  std::string announced;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.rfind("# TYPE ", 0) == 0)
      announced = line.substr(7, line.find(' ', 7) - 7);
    else if (line[0] != '#')
      CHECK(line.rfind(announced, 0) == 0);
  }
  CHECK(text.back() == '\n');
}
