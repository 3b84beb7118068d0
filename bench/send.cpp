#include "bench/send.hpp"

#include "runtime/kafka_producer.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <future>
#include <httplib.h>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace meterflow::bench {

namespace {

using clock = std::chrono::steady_clock;

// When batch `index` is due: start + index × batch / rate (exact integer nanoseconds).
clock::time_point due_time(clock::time_point start, std::uint64_t index, const send_options& o) {
  if (o.rate == 0)
    return clock::now();
  const auto events = static_cast<unsigned __int128>(index) * o.batch;
  return start +
         std::chrono::nanoseconds(static_cast<std::int64_t>(events * 1'000'000'000u / o.rate));
}

// What the sending threads share: counters, latencies and the first error.
class tally {
public:
  void add(std::size_t events, std::int64_t latency_ns, const std::string& error) {
    sent_ += events;
    std::lock_guard lock(mutex_);
    report_.batches += 1;
    report_.events += events;
    report_.latency_ns.push_back(latency_ns);
    if (!error.empty()) {
      report_.failed_batches += 1;
      report_.failed_events += events;
      if (report_.first_error.empty())
        report_.first_error = error;
    }
  }
  std::uint64_t sent() const { return sent_; }
  send_report finish(double seconds) {
    std::lock_guard lock(mutex_);
    std::sort(report_.latency_ns.begin(), report_.latency_ns.end());
    report_.seconds = seconds;
    return std::move(report_);
  }

private:
  std::atomic<std::uint64_t> sent_{0};
  std::mutex mutex_;
  send_report report_;
};

// A progress line every 5 s until `done` says the sending has ended.
template <class Done>
void report_progress(const send_options& o, const tally& t, std::size_t total,
                     clock::time_point start, Done done) {
  auto next = start + std::chrono::seconds(5);
  while (!done()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!o.progress || clock::now() < next)
      continue;
    next += std::chrono::seconds(5);
    const double s = std::chrono::duration<double>(clock::now() - start).count();
    *o.progress << "meterflow-loadgen: sent " << t.sent() << " of " << total << " events, "
                << static_cast<std::uint64_t>(static_cast<double>(t.sent()) / s) << " events/s"
                << std::endl;
  }
}

std::size_t batch_count(std::size_t lines, std::size_t batch) {
  return (lines + batch - 1) / batch;
}

void send_http(const std::vector<std::string_view>& lines, const send_options& o, tally& t,
               clock::time_point start) {
  const std::size_t batches = batch_count(lines.size(), o.batch);
  std::atomic<std::size_t> next{0}, finished{0};
  std::vector<std::thread> connections;
  for (std::size_t c = 0; c < o.connections; ++c)
    connections.emplace_back([&] {
      httplib::Client client(o.target.host, o.target.port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(60, 0);
      if (!o.api_key.empty())
        client.set_bearer_token_auth(o.api_key.c_str());
      std::string body;
      for (std::size_t i; (i = next++) < batches;) {
        const auto first = i * o.batch, last = std::min(lines.size(), first + o.batch);
        body.clear();
        for (auto k = first; k < last; ++k) {
          body += lines[k];
          body += '\n';
        }
        const auto due = due_time(start, i, o);
        std::this_thread::sleep_until(due);
        const auto res = client.Post("/v1/events", body, "application/x-ndjson");
        const auto latency = (clock::now() - due).count();
        std::string error;
        if (!res)
          error = "batch " + std::to_string(i) + ": no answer from " + o.target.url + " (" +
                  httplib::to_string(res.error()) + ")";
        else if (res->status != 202)
          error = "batch " + std::to_string(i) + ": HTTP " + std::to_string(res->status) + " " +
                  res->body.substr(0, 300);
        t.add(last - first, latency, error);
      }
      ++finished;
    });
  report_progress(o, t, lines.size(), start, [&] { return finished == connections.size(); });
  for (auto& c : connections)
    c.join();
}

void send_kafka(const std::vector<std::string_view>& lines, const send_options& o, tally& t,
                clock::time_point start) {
  // One producer on one thread; this one reports progress, and get() passes on its errors.
  auto sending = std::async(std::launch::async, [&] {
    runtime::kafka_producer producer({o.target.brokers, o.topic, o.kafka_properties});
    const std::size_t batches = batch_count(lines.size(), o.batch);
    for (std::size_t i = 0; i < batches; ++i) {
      const auto first = i * o.batch, last = std::min(lines.size(), first + o.batch);
      const auto due = due_time(start, i, o);
      std::this_thread::sleep_until(due);
      for (auto k = first; k < last; ++k)
        producer.send(lines[k]);
      std::string error;
      for (const auto& r : producer.flush())
        if (!r.delivered() && error.empty())
          error = "batch " + std::to_string(i) + ": " + r.error;
      t.add(last - first, (clock::now() - due).count(), error);
    }
  });
  report_progress(o, t, lines.size(), start, [&] {
    return sending.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  });
  sending.get();
}

} // namespace

send_target parse_send_target(std::string_view url) {
  send_target t;
  t.url = std::string(url);
  const auto bad = [&](const std::string& why) {
    return std::invalid_argument("--send " + std::string(url) + ": " + why +
                                 " (expected http://HOST:PORT or kafka://HOST:PORT[,...])");
  };
  if (url.substr(0, 8) == "kafka://") {
    t.kind = send_target::scheme::kafka;
    t.brokers = std::string(url.substr(8));
    if (t.brokers.empty())
      throw bad("no brokers");
    return t;
  }
  if (url.substr(0, 7) != "http://")
    throw bad(url.substr(0, 8) == "https://" ? "https is not supported" : "unknown scheme");
  std::string_view rest = url.substr(7);
  if (!rest.empty() && rest.back() == '/')
    rest.remove_suffix(1);
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    throw bad("no host:port");
  t.host = std::string(rest.substr(0, colon));
  const std::string_view port = rest.substr(colon + 1);
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), t.port);
  if (ec != std::errc() || end != port.data() + port.size() || t.port < 1 || t.port > 65535)
    throw bad("the port is not a number in 1..65535");
  return t;
}

double send_report::latency_ms(double q) const {
  if (latency_ns.empty())
    return 0;
  const auto rank = static_cast<std::size_t>(
      std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(latency_ns.size())));
  return static_cast<double>(latency_ns[std::max<std::size_t>(rank, 1) - 1]) / 1e6;
}

send_report send_lines(const std::vector<std::string_view>& lines, const send_options& options) {
  if (options.batch == 0 || options.connections == 0)
    throw std::invalid_argument("batch and connections must be at least 1");
  tally t;
  const auto start = clock::now();
  if (options.target.kind == send_target::scheme::http)
    send_http(lines, options, t, start);
  else
    send_kafka(lines, options, t, start);
  return t.finish(std::chrono::duration<double>(clock::now() - start).count());
}

} // namespace meterflow::bench
