// `meterflow serve --kafka`: the live service. The engine reads the telemetry topic as a member
// of a consumer group: engine partition p reads Kafka partition p (the producer partitions by
// meterflow's customer hash), with its own watermark (SEMANTICS §4, streaming mode) that an idle
// partition has advanced to the minimum of the active ones. Each poll's messages are admitted
// (deduplicated and stored), applied, and committed to PostgreSQL with every partition's
// progress; a restart, or a partition's next owner after a rebalance, resumes from the progress
// in the store, so every message is counted exactly once.

#include "config/config.hpp"
#include "persistence/pg_schema.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"
#include "runtime/engine_driver.hpp"
#include "runtime/event_parser.hpp"
#include "runtime/http_server.hpp"
#include "runtime/http_store_routes.hpp"
#include "runtime/kafka_source.hpp"
#include "runtime/partition_watermarks.hpp"
#include "runtime/rerate.hpp"
#include "runtime/service_metrics.hpp"

#include <caf/actor_system_config.hpp>
#include <deque>
#include <future>
#include <iostream>
#include <mutex>
#include <pqxx/pqxx>
#include <set>
#include <unistd.h>

namespace meterflow::runtime {

namespace {

using namespace meterflow::actors;
using clock = std::chrono::steady_clock;

constexpr auto kafka_timeout = std::chrono::seconds(10);

struct stream_options {
  config::configuration cfg;
  std::string store_url;
  kafka_source_options kafka;
  std::uint64_t threads = 2, batch_size = 8192;
  std::uint32_t partitions = 4;
  bool drain = false, quiet = false;
  std::optional<std::pair<std::string, int>> listen; // the HTTP API's host and port
  bool allow_unauthenticated = false;
};

// "HOST:PORT" (port 0: any free port).
std::pair<std::string, int> parse_listen(const std::string& text) {
  const auto colon = text.rfind(':');
  const std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (colon == 0 || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535)
    throw usage_error("--listen: \"" + text + "\" is not HOST:PORT (e.g. 127.0.0.1:8080)");
  return {text.substr(0, colon), std::stoi(port)};
}

// Work the HTTP API hands to the engine's thread, which runs it between two polls: a re-rate
// writes charges and invoices the running partitions must adopt, so it cannot run beside them.
class engine_jobs {
public:
  engine_jobs() = default;
  engine_jobs(const engine_jobs&) = delete;
  engine_jobs& operator=(const engine_jobs&) = delete;
  ~engine_jobs() { cancel(); }

  // What is waiting fails, and what comes later is refused: callers (HTTP threads) must not
  // wait for an engine that is gone.
  void cancel() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    for (auto& j : jobs_)
      j.cancel();
    jobs_.clear();
  }

  // From another thread: waits until the engine ran `work`, and returns what it returned.
  template <class R>
  R run(std::function<R()> work) {
    auto promise = std::make_shared<std::promise<R>>();
    auto result = promise->get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closed_)
        throw std::runtime_error("the service is stopping");
      jobs_.push_back({[promise, work = std::move(work)] {
                         try {
                           promise->set_value(work());
                         } catch (...) {
                           promise->set_exception(std::current_exception());
                         }
                       },
                       [promise] {
                         promise->set_exception(std::make_exception_ptr(
                             std::runtime_error("the service is stopping")));
                       }});
    }
    return result.get();
  }

  // On the engine's thread: runs what is waiting.
  void run_pending() {
    std::deque<job> jobs;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs.swap(jobs_);
    }
    for (auto& j : jobs)
      j.run();
  }

  // Runs what is waiting and refuses what comes later.
  void close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    run_pending();
  }

private:
  struct job {
    std::function<void()> run, cancel;
  };
  std::mutex mutex_;
  std::deque<job> jobs_;
  bool closed_ = false;
};

stream_options parse_stream_options(const std::vector<std::string>& args) {
  const auto cl =
      parse_command_line(args,
                         {"config", "store", "kafka", "topic", "group", "kafka-properties",
                          "threads", "partitions", "batch-size", "listen"},
                         {"drain", "quiet", "allow-unauthenticated"});
  if (!cl.positional.empty())
    throw usage_error("unexpected argument \"" + cl.positional.front() + "\"");
  stream_options o;
  o.cfg = config::load_file(cl.required("config"));
  o.store_url = cl.required("store");
  o.kafka.brokers = cl.required("kafka");
  o.kafka.topic = cl.optional("topic").value_or("telemetry-events");
  o.kafka.group_id = cl.optional("group").value_or("meterflow");
  if (const auto file = cl.optional("kafka-properties")) {
    try {
      o.kafka.properties = load_kafka_properties(*file);
    } catch (const std::exception& e) {
      throw usage_error(std::string("--kafka-properties: ") + e.what());
    }
  }
  o.threads = cl.count("threads", 2, 256);
  o.partitions = static_cast<std::uint32_t>(cl.count("partitions", 4, 4096));
  o.batch_size = cl.count("batch-size", 8192, 1'000'000);
  o.drain = cl.flag("drain");
  o.quiet = cl.flag("quiet");
  if (const auto listen = cl.optional("listen"))
    o.listen = parse_listen(*listen);
  o.allow_unauthenticated = cl.flag("allow-unauthenticated");
  if (o.drain && o.listen)
    throw usage_error("--drain and --listen: a drained service stops at the end of the topic; "
                      "serve the API from a service that goes on");
  try {
    pqxx::connection connection(o.store_url);
    persistence::migrate(connection);
  } catch (const std::exception& e) {
    throw usage_error(std::string("--store: ") + e.what());
  }
  return o;
}

// The engine's side of the consumer: what each assigned partition has reached.
class stream_service {
public:
  stream_service(caf::actor_system& sys, const stream_options& o)
      : o_(o), cfg_(priced(o)),
        driver_(sys, cfg_,
                driver_options{o.partitions, read_fault_hooks(), std::nullopt, o.store_url, true,
                               "kafka:" + o.kafka.topic + ":"}),
        watermarks_(o.cfg.max_out_of_orderness, o.cfg.idle_timeout), parser_(o.cfg) {}

  // Price versions published through the API (POST /v1/price-books/{id}/versions) since the
  // last look: the engine rates with them from now on. Between two polls, when no stage runs:
  // the stages look their price book up in the engine's configuration at every rating.
  void refresh_price_books() {
    driver_.collect(); // nothing in flight (process() commits what it applies)
    cfg_.price_books = priced(o_).price_books;
  }

  // The source whose hooks these are, once it exists.
  void attach(kafka_source* source) { source_client_ = source; }

  kafka_source_hooks hooks() {
    return {[this](const std::vector<std::int32_t>& ps) { return assigned(ps); },
            [this](const std::vector<std::int32_t>& ps) { revoked(ps); }};
  }

  // One poll's messages (possibly none): admit, apply the watermark steps and idle advances,
  // commit.
  void process(std::vector<kafka_message>&& messages) {
    const auto now = clock::now();
    std::map<std::uint32_t, std::uint64_t> upto;
    std::vector<sequenced_event> batch;
    std::vector<std::string> raws;
    for (kafka_message& m : messages) {
      const auto p = static_cast<std::uint32_t>(m.partition);
      const std::uint64_t position = stream_position(m.partition, m.offset);
      upto[p] = position;
      watermarks_.activity(m.partition, now);
      if (finished_.count(p))
        throw std::runtime_error(
            "partition " + std::to_string(p) + " of " + o_.kafka.topic +
            " was drained to its end before (serve --drain): its periods are invoiced, and it "
            "has a new message at offset " +
            std::to_string(m.offset) + "; a live service needs a store of its own");
      ++source_.received;
      parse_outcome parsed = parser_.parse(m.payload);
      if (!parsed.ok()) {
        reject(position, to_string(parsed.reason), std::move(parsed.detail), m.payload);
        continue;
      }
      const std::uint32_t owner = partition_of(parsed.event->customer_id, o_.partitions);
      if (owner != p) {
        reject(position, "wrong_partition",
               "customer_id \"" + parsed.event->customer_id + "\" belongs to partition " +
                   std::to_string(owner) + " of " + std::to_string(o_.partitions) +
                   "; producers must partition by meterflow's customer hash (docs/kafka.md)",
               m.payload);
        continue;
      }
      batch.push_back({position, std::move(*parsed.event)});
      raws.push_back(std::move(m.payload));
    }
    std::vector<std::pair<std::uint64_t, timestamp>> order;
    order.reserve(batch.size());
    for (const auto& se : batch)
      order.emplace_back(se.seq, se.event.event_time);
    const auto outcomes = batch.empty() ? std::vector<persistence::append_outcome>{}
                                        : driver_.admit(std::move(batch), std::move(raws));

    std::map<std::uint32_t, watermark_steps> steps;
    for (std::size_t i = 0; i < order.size(); ++i) {
      if (outcomes[i] != persistence::append_outcome::accepted &&
          outcomes[i] != persistence::append_outcome::replayed)
        continue;
      const std::int32_t p = partition_of_position(order[i].first);
      const timestamp before = watermarks_.of(p);
      const timestamp after = watermarks_.observe(p, order[i].second, now);
      if (after > before)
        steps[static_cast<std::uint32_t>(p)].steps.push_back({order[i].first, after});
    }
    // Idle partitions move up to the active ones: not derivable from their events, so each
    // move is stored with the progress it belongs to.
    std::map<std::int32_t, timestamp> before;
    for (const auto& [p, position] : position_)
      before[p] = watermarks_.of(p);
    watermarks_.advance(now);
    std::vector<persistence::watermark_advance> advances;
    for (const auto& [p, was] : before) {
      const timestamp now_at = watermarks_.of(p);
      if (now_at <= was)
        continue;
      const auto up = static_cast<std::uint32_t>(p);
      const std::uint64_t at = upto.count(up) ? upto[up] : position_[p];
      steps[up].steps.push_back({at, now_at});
      advances.push_back({driver_.source_of(up), at, now_at});
    }
    for (const auto& [p, position] : upto)
      position_[static_cast<std::int32_t>(p)] = position;
    if (messages.empty() && advances.empty())
      return;
    driver_.apply(std::move(steps), upto);
    driver_.commit_stream(std::move(advances));
  }

  // serve --drain: every assigned partition read to the end the cluster holds.
  bool caught_up(kafka_source& source) {
    if (source.assignment().empty())
      return false;
    const kafka_offsets ends = source.end_offsets(kafka_timeout);
    for (const auto& [p, end] : ends) {
      const auto it = position_.find(p);
      const std::int64_t next =
          it == position_.end() || it->second == 0 ? 0 : next_offset_after(it->second);
      if (next < end)
        return false;
    }
    return true;
  }

  // The end of a drained input: the watermark of every partition goes to +infinity, every
  // period is invoiced, and the partitions are recorded as finished.
  void finish() {
    std::map<std::uint32_t, watermark_steps> steps;
    for (const auto& [p, position] : position_)
      if (!finished_.count(static_cast<std::uint32_t>(p)))
        steps[static_cast<std::uint32_t>(p)].end_of_input = true;
    driver_.apply(std::move(steps), {});
    driver_.commit_stream({}, true);
  }

  void stop() { driver_.commit_stream({}); }

  // A re-rate asked for through the API, between two polls: the records so far are committed,
  // the re-rate prices with the engine's books (and the versions published since), and the
  // running partitions adopt what it recorded.
  rerate_outcome rerate_now(rerate_spec spec) {
    refresh_price_books();
    spec.store_url = o_.store_url;
    spec.partitions = o_.partitions;
    rerate_outcome outcome = rerate(cfg_, spec);
    if (outcome.recorded)
      driver_.adopt_stored();
    return outcome;
  }

  // The engine's gauges and counters for GET /metrics.
  void report(service_metrics& metrics, std::int64_t queue_depth) {
    metrics.set_open_windows(driver_.open_windows());
    metrics.set_queue_depth(static_cast<std::size_t>(std::max<std::int64_t>(0, queue_depth)));
    const timestamp now = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    for (const auto& [p, position] : position_) {
      const timestamp wm = watermarks_.of(p);
      if (wm != watermark_min && wm != watermark_max)
        metrics.set_watermark_lag(p, std::chrono::milliseconds((now - wm) / 1000));
    }
    for (const std::int32_t p : std::exchange(revoked_, {}))
      metrics.remove_partition(p);
    const partition_counters c = driver_.counters();
    metrics.count_engine_events(c.accepted - reported_.accepted,
                                c.duplicates - reported_.duplicates,
                                source_.rejected - reported_rejected_);
    reported_ = c;
    reported_rejected_ = source_.rejected;
  }

  std::string fatal() const { return driver_.fatal(); }
  const source_counters& source() const { return source_; }
  partition_counters counters() const { return driver_.counters(); }
  std::size_t open_windows() const { return driver_.open_windows(); }
  std::size_t invoices() { return driver_.sink().invoices().size(); }
  timestamp watermark() const { return watermarks_.source(); }
  const std::map<std::int32_t, std::uint64_t>& positions() const { return position_; }

private:
  kafka_offsets assigned(const std::vector<std::int32_t>& partitions) {
    kafka_offsets offsets;
    for (const std::int32_t p : partitions) {
      if (p < 0 || static_cast<std::uint32_t>(p) >= o_.partitions)
        throw usage_error("--partitions: " + o_.kafka.topic + " has a partition " +
                          std::to_string(p) + ", the engine " + std::to_string(o_.partitions) +
                          " partitions; give the topic exactly --partitions partitions");
      const stream_resume r = driver_.start_partition(static_cast<std::uint32_t>(p));
      if (r.finished)
        finished_.insert(static_cast<std::uint32_t>(p));
      watermarks_.assign(p, r.watermark, clock::now());
      position_[p] = r.position;
      if (r.position > 0)
        offsets[p] = next_offset_after(r.position);
      else
        warn_if_truncated(p);
      if (!o_.quiet)
        std::cerr << "meterflow serve: partition " << p << " assigned, resuming at offset "
                  << (r.position > 0 ? next_offset_after(r.position) : 0) << "\n";
    }
    return offsets;
  }

  void revoked(const std::vector<std::int32_t>& partitions) {
    for (const std::int32_t p : partitions) {
      driver_.stop_partition(static_cast<std::uint32_t>(p));
      revoked_.push_back(p);
      watermarks_.revoke(p);
      position_.erase(p);
      finished_.erase(static_cast<std::uint32_t>(p));
      if (!o_.quiet)
        std::cerr << "meterflow serve: partition " << p << " revoked, its records committed\n";
    }
  }

  // A partition the store never read starts at its first message the cluster still holds:
  // older ones were deleted by retention before the engine saw them, and cannot be billed.
  void warn_if_truncated(std::int32_t p) {
    if (!source_client_)
      return;
    const std::int64_t first = source_client_->offset_range(p, kafka_timeout).first;
    if (first > 0)
      std::cerr << "meterflow serve: warning: partition " << p << " of " << o_.kafka.topic
                << " starts at offset " << first << ": the cluster no longer holds its first "
                << first << " messages (deleted by retention before this store read them); "
                << "they are not in the store and are not billed\n";
  }

  void reject(std::uint64_t position, std::string reason, std::string detail,
              const std::string& raw) {
    ++source_.rejected;
    driver_.add_rejected({position, std::move(reason), std::move(detail), raw});
  }

  // The configuration's price books followed by the versions published in the store.
  static config::configuration priced(const stream_options& o) {
    return with_published_versions(o.cfg, o.store_url);
  }

  const stream_options& o_;
  config::configuration cfg_; // the engine's: the configuration with the published versions
  engine_driver driver_;
  partition_watermarks watermarks_;
  event_parser parser_;
  source_counters source_;
  std::map<std::int32_t, std::uint64_t> position_; // the last message's, by running partition
  std::set<std::uint32_t> finished_;               // drained before
  kafka_source* source_client_ = nullptr;
  partition_counters reported_; // what report() counted so far
  std::uint64_t reported_rejected_ = 0;
  std::vector<std::int32_t> revoked_; // since the last report()
};

int serve_stream(const stream_options& o) {
  handle_stop_signals();
  caf::actor_system_config sys_cfg;
  sys_cfg.set("scheduler.max-threads", o.threads);
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{sys_cfg};
  progress_line progress(!o.quiet && ::isatty(STDERR_FILENO));
  const char* const name = "meterflow serve";

  std::optional<stream_service> started;
  try {
    started.emplace(sys, o);
  } catch (const persistence::store_error& e) {
    throw usage_error(std::string("--store: ") + e.what());
  }
  stream_service& service = *started;
  try {
    kafka_source source(o.kafka, service.hooks());
    service.attach(&source);
    const std::int32_t partitions = source.partition_count(kafka_timeout);
    if (partitions != static_cast<std::int32_t>(o.partitions))
      throw usage_error("--partitions: " + o.kafka.topic + " has " + std::to_string(partitions) +
                        " partitions and the engine " + std::to_string(o.partitions) +
                        "; they must be equal (engine partition p reads Kafka partition p)");
    if (!o.quiet)
      std::cerr << name << ": reading " << o.kafka.topic << " at " << o.kafka.brokers
                << " as group " << o.kafka.group_id << (o.drain ? " until its end" : "") << "\n";

    // The HTTP API: ingest to the same topic, reads and admin on the same store.
    service_metrics metrics;
    std::optional<http_service> http;
    engine_jobs jobs;
    // However this scope ends, the API stops before the engine: a re-rate request waiting for
    // the engine fails rather than waits forever.
    struct api_stopper {
      std::optional<http_service>& http;
      engine_jobs& jobs;
      ~api_stopper() {
        jobs.cancel();
        if (http)
          http->stop();
      }
    } stop_api{http, jobs};
    if (o.listen) {
      http_service_options h;
      h.host = o.listen->first;
      h.port = o.listen->second;
      h.allow_unauthenticated = o.allow_unauthenticated;
      h.kafka = {o.kafka.brokers, o.kafka.topic, o.kafka.properties};
      h.store_url = o.store_url;
      http.emplace(o.cfg, h, metrics);
      add_store_routes(http->server(),
                       {&o.cfg, o.store_url, [&jobs, &service](const rerate_spec& spec) {
                          return jobs.run<rerate_outcome>(
                              [&service, spec] { return service.rerate_now(spec); });
                        }});
      try {
        http->start();
      } catch (const std::runtime_error& e) {
        throw usage_error(std::string("--listen: ") + e.what());
      }
      // One line for tools that start serve on port 0 (as devkafka's bootstrap= line).
      std::cout << "http=" << h.host << ":" << http->port() << std::endl;
      if (!o.quiet)
        std::cerr << name << ": HTTP API on http://" << h.host << ":" << http->port() << "\n";
    }

    bool drained = false;
    auto books_read = clock::now();
    while (!stop_requested()) {
      auto messages = source.poll(o.batch_size, std::chrono::milliseconds(200));
      const bool idle = messages.empty();
      service.process(std::move(messages));
      if (!service.fatal().empty())
        break;
      jobs.run_pending();
      service.report(metrics, source.cached_lag());
      if (o.listen && clock::now() - books_read > std::chrono::seconds(2)) {
        service.refresh_price_books();
        books_read = clock::now();
      }
      progress.update(service.source().received, service.watermark(), service.open_windows());
      if (o.drain && idle && service.caught_up(source)) {
        service.finish();
        drained = true;
        break;
      }
    }
    jobs.close();
    jobs.cancel();
    if (http)
      http->stop();
    if (!drained && service.fatal().empty())
      service.stop();
    progress.done();
    if (!service.fatal().empty()) {
      std::cerr << name << ": " << service.fatal() << "; stopping (exit status 3)\n";
      return exit_overflow;
    }
    const auto counters = service.counters();
    std::cout << name << ": " << (drained ? "drained " : "stopped; ") << o.kafka.topic << ": "
              << service.source().received << " messages read, " << service.source().rejected
              << " rejected, " << counters.duplicates << " duplicates, " << counters.conflicts
              << " conflicts; " << service.invoices() << " invoices issued in this session\n";
    for (const auto& [p, position] : service.positions())
      std::cout << "  partition " << p << ": committed through offset "
                << (position > 0 ? std::to_string(next_offset_after(position) - 1) : "-") << "\n";
  } catch (const kafka_error& e) {
    progress.done();
    std::cerr << name << ": Kafka: " << e.what() << "\n";
    return exit_engine_failure;
  } catch (const pricing::bad_result_access& e) {
    progress.done();
    std::cerr << name << ": " << e.what() << "; stopping (exit status 3)\n";
    return exit_overflow;
  } catch (const usage_error&) {
    throw;
  } catch (const std::runtime_error& e) {
    progress.done();
    std::cerr << name << ": " << e.what() << "\n";
    return exit_engine_failure;
  }
  return exit_ok;
}

} // namespace

int serve_stream_command(const std::vector<std::string>& args,
                         const std::optional<std::string>& report_dir) {
  const stream_options o = parse_stream_options(args);
  const int status = serve_stream(o);
  if (status != exit_ok || !report_dir)
    return status;
  return write_store_report(*report_dir, o.store_url, o.cfg);
}

} // namespace meterflow::runtime
