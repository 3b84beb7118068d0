// meterflow-http-bench: HTTP ingest throughput and latency (issue 6). Starts librdkafka's mock
// cluster and the HTTP service in this process, then N clients post NDJSON batches of an events
// file (bench/loadgen.cpp) over keep-alive connections; every batch must be answered 202.
// Prints events/s and the p50/p99 request latency. Clients, server and brokers share the
// machine's cores, so the figure is a lower bound for a server alone.
//
// With --serve it only serves: the HTTP service on the mock cluster, nothing consuming the topic,
// until SIGTERM or SIGINT. It prints `http=HOST:PORT` and `key=KEY` for a client such as
// `meterflow-loadgen --send` (bench/ingest.sh).

#include "config/config.hpp"
#include "runtime/http_server.hpp"
#include "runtime/kafka_mock.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <httplib.h>
#include <iostream>
#include <spdlog/spdlog.h>
#include <string>
#include <thread>
#include <vector>

namespace {

const char* const usage_text = R"(Usage: meterflow-http-bench --config FILE --events FILE [options]
       meterflow-http-bench --config FILE --serve [options]

Options:
  --clients N       concurrent clients, one keep-alive connection each (default 4)
  --batch N         events per request (default 1000)
  --partitions N    topic partitions (default 4)
  --brokers N       mock brokers; the topic is replicated on up to 3 (default 1)
  --threads N       HTTP worker threads (default: clients + 2)
  --serve           serve until SIGTERM or SIGINT instead of posting the events file
)";

struct options {
  std::string config, events;
  std::size_t clients = 4, batch = 1000, threads = 0;
  int partitions = 4, brokers = 1;
  bool serve = false;
};

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc)
        throw std::runtime_error(arg + ": missing value");
      return argv[++i];
    };
    if (arg == "--config")
      o.config = next();
    else if (arg == "--events")
      o.events = next();
    else if (arg == "--clients")
      o.clients = std::stoul(next());
    else if (arg == "--batch")
      o.batch = std::stoul(next());
    else if (arg == "--partitions")
      o.partitions = std::stoi(next());
    else if (arg == "--brokers")
      o.brokers = std::stoi(next());
    else if (arg == "--threads")
      o.threads = std::stoul(next());
    else if (arg == "--serve")
      o.serve = true;
    else
      throw std::runtime_error("unknown option " + arg);
  }
  if (o.config.empty() || (o.events.empty() && !o.serve) || o.clients == 0 || o.batch == 0)
    throw std::runtime_error("--config and --events (or --serve) are required");
  return o;
}

} // namespace

int main(int argc, char** argv) {
  using namespace meterflow;
  options o;
  try {
    o = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "meterflow-http-bench: " << e.what() << "\n" << usage_text;
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  // --serve waits for these signals instead of handling them: blocked before any thread starts,
  // so every thread inherits the mask.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  if (o.serve)
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::vector<std::string> bodies;
  std::size_t events = 0;
  {
    std::ifstream in(o.events);
    std::string line, body;
    std::size_t in_body = 0;
    while (std::getline(in, line)) {
      body += line;
      body += '\n';
      if (++in_body == o.batch) {
        bodies.push_back(std::move(body));
        body.clear();
        events += in_body;
        in_body = 0;
      }
    }
    if (in_body) {
      bodies.push_back(std::move(body));
      events += in_body;
    }
  }

  runtime::mock_kafka_cluster cluster(o.brokers);
  cluster.create_topic("telemetry-events", o.partitions);
  auto cfg = config::load_file(o.config);
  const std::string key = "bench-key-0123456789abcdef";
  cfg.http.api_keys = {{"bench", key}};
  cfg.http.max_events_per_request = std::max<std::size_t>(o.batch, 1);
  cfg.http.max_in_flight_events = o.batch * o.clients;
  runtime::service_metrics metrics;
  runtime::http_service_options service_options;
  service_options.port = 0;
  service_options.threads = o.threads ? o.threads : o.clients + 2;
  // The mock broker does not set TCP_NODELAY (real brokers do): with several produce requests
  // in flight on a connection, its later answers wait for a delayed ACK, 40 ms each flush. One
  // request at a time keeps the figure about meterflow, not about the mock.
  service_options.kafka = {
      cluster.bootstrap(), "telemetry-events", {{"max.in.flight.requests.per.connection", "1"}}};
  runtime::http_service service(cfg, service_options, metrics);
  if (o.serve) {
    service.start();
    std::printf("http=127.0.0.1:%d\nkey=%s\n", service.port(), key.c_str());
    std::fflush(stdout);
    int signal = 0;
    sigwait(&stop, &signal);
    service.stop();
    return 0;
  }
  service.start();

  std::atomic<std::size_t> next{0}, failures{0};
  std::vector<std::vector<std::int64_t>> latencies(o.clients);
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (std::size_t c = 0; c < o.clients; ++c)
    clients.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", service.port());
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_bearer_token_auth(key.c_str());
      client.set_read_timeout(60, 0);
      for (std::size_t i; (i = next++) < bodies.size();) {
        const auto t0 = std::chrono::steady_clock::now();
        auto res = client.Post("/v1/events", bodies[i], "application/x-ndjson");
        latencies[c].push_back((std::chrono::steady_clock::now() - t0).count());
        if (!res || res->status != 202) {
          if (failures++ == 0)
            std::cerr << "request " << i << ": "
                      << (res ? std::to_string(res->status) + " " + res->body.substr(0, 300)
                              : httplib::to_string(res.error()))
                      << "\n";
        }
      }
    });
  for (auto& t : clients)
    t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  service.stop();

  std::vector<std::int64_t> all;
  for (const auto& l : latencies)
    all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto percentile_ms = [&](double p) {
    if (all.empty())
      return 0.0;
    return static_cast<double>(
               all[static_cast<std::size_t>(p * static_cast<double>(all.size() - 1))]) /
           1e6;
  };
  std::printf("events %zu requests %zu clients %zu batch %zu: %.0f events/s, %.2f s, "
              "latency p50 %.1f ms p99 %.1f ms, failed requests %zu\n",
              events, bodies.size(), o.clients, o.batch, static_cast<double>(events) / seconds,
              seconds, percentile_ms(0.50), percentile_ms(0.99), failures.load());
  return failures.load() == 0 ? 0 : 1;
}
