// `meterflow run`: the batch pipeline on the embedded default (file/stdin source, in-memory
// store). The driver is the source and the supervisor: it reads and validates lines, routes
// batches to the partition actors, advances the single batch watermark in input order from
// their dedup outcomes, restarts a crashed partition from the store, and hands everything
// the partitions emit to the sink.

#include "actors/faults.hpp"
#include "actors/partition_actor.hpp"
#include "config/config.hpp"
#include "persistence/memory_store.hpp"
#include "persistence/pg_schema.hpp"
#include "persistence/pg_store.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"
#include "runtime/event_parser.hpp"
#include "runtime/line_reader.hpp"
#include "runtime/reconciliation.hpp"
#include "runtime/run_sink.hpp"

#include <atomic>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <pqxx/pqxx>
#include <thread>
#include <unistd.h>

namespace meterflow::runtime {

const char* const serve_usage =
    R"(Usage: meterflow serve --config CONFIG --store URL --events EVENTS.ndjson [options]

The durable engine on PostgreSQL: processes the events of EVENTS.ndjson in file order like
`meterflow run`, committing each batch's events with their input position and the batch's
records (aggregates, charges, invoices, rejected lines) with the progress through the input.
Killed at any point (even kill -9) and started again with the same arguments, it rebuilds its
state from the store (stored events replayed against the watermark they imply), skips the lines
whose records are committed, and goes on: nothing is lost and nothing is counted twice. At the
end of the input the watermark goes to +infinity, every period is invoiced and the input is
marked finished; starting it again then does nothing.

Options:
  --config CONFIG      configuration file (JSON, see docs/configuration.md)
  --store URL          PostgreSQL (postgresql:// URL or libpq keyword string); the schema is
                       created or upgraded first
  --events FILE        NDJSON events, one per line
  --threads N          worker threads (default 2)
  --partitions N       partition actors (default 4; keep it the same across restarts)
  --batch-size N       events per batch and per commit (default 8192)
  --follow             at the end of the file, wait for more lines (processing and committing
                       what arrived) until SIGTERM or SIGINT, which commit and exit 0
  --quiet              no progress output
  --report DIR         when it stops, write the store's reconciliation (as `meterflow
                       reconcile`) to DIR/reconciliation.json; exit 1 if a check fails
  --help               show this text

Exit status: 0 done, 1 a check of --report failed, 2 bad arguments, configuration or store,
3 an amount reached 10^26, 4 an engine failure.
)";

const char* const run_usage =
    R"(Usage: meterflow run --config CONFIG --events EVENTS.ndjson --out DIR [options]

Runs the whole pipeline on a batch of events (SEMANTICS §10): validation, deduplication,
hourly event-time windows with watermarks and allowed lateness, incremental rating,
invoices with credits, automatic re-rating of very late events with correction invoices,
and reconciliation. Events are processed in file order as one source.

Writes into DIR (created if missing):
  invoices/<invoice_id>.json   standard and correction invoices
  charges.ndjson               every charge, superseded ones included, in emission order
  aggregates.ndjson            every aggregate revision (provisional, final, re-aggregated)
  rejected.ndjson              {"line","reason","detail","raw"} per rejected line or conflict
  unpriced.ndjson              windows with no applicable price (never billed at zero)
  reconciliation.json          every check of the chain with expected, actual and ok

Options:
  --config CONFIG      configuration file (JSON, see docs/configuration.md)
  --events FILE        NDJSON events, one per line; - reads standard input
  --out DIR            output directory
  --threads N          worker threads of the actor system (default 2)
  --partitions N       partition actors; customers are hashed onto them (default 4)
  --batch-size N       events per batch between the source and the partitions (default 8192)
  --store URL          also keep the system of record in PostgreSQL (a postgresql:// URL
                       or libpq keyword string); the schema is created or upgraded first,
                       and the database must not hold events yet (docs/postgresql.md)
  --quiet              no progress line on stderr
  --help               show this text

Output files are byte-identical for the same inputs, whatever --threads, --partitions and
--batch-size are.
Exit status: 0 reconciled, 1 a reconciliation check failed, 2 bad arguments or
configuration, 3 an amount reached 10^26, 4 an engine failure (a partition crashed
beyond its restart budget).
)";

namespace {

using namespace meterflow::actors;

constexpr int exit_engine_failure = 4;
constexpr int restart_budget = 3;

// Test-only fault hooks, from the environment so no user-facing option exposes them:
//   METERFLOW_TEST_FAULT=crash_partition:P:B   partition P throws while applying batch B
//   METERFLOW_TEST_FAULT=crash_stage:S:N       the N-th message a stage S (window, rating or
//                                              invoice) handles throws
//   METERFLOW_TEST_FAULT=break_chain           drop the last charge before reconciling
struct fault_hooks {
  std::uint32_t crash_partition = 0;
  std::uint64_t crash_batch = 0;
  bool break_chain = false;
};

fault_hooks read_fault_hooks() {
  fault_hooks f;
  const char* env = std::getenv("METERFLOW_TEST_FAULT");
  if (!env)
    return f;
  const std::string spec = env;
  if (spec == "break_chain") {
    f.break_chain = true;
  } else if (spec.rfind("crash_partition:", 0) == 0) {
    const auto rest = spec.substr(16);
    const auto colon = rest.find(':');
    f.crash_partition = static_cast<std::uint32_t>(std::stoul(rest.substr(0, colon)));
    f.crash_batch = std::stoull(rest.substr(colon + 1));
  } else if (spec.rfind("crash_stage:", 0) == 0) {
    const auto rest = spec.substr(12);
    const auto colon = rest.find(':');
    const std::string stage = rest.substr(0, colon);
    const actors::stage_kind kind = stage == "window"   ? actors::stage_kind::window
                                    : stage == "rating" ? actors::stage_kind::rating
                                                        : actors::stage_kind::invoice;
    actors::stage_fault_countdown(kind) = std::stoull(rest.substr(colon + 1));
  }
  return f;
}

class progress_line {
public:
  explicit progress_line(bool enabled) : enabled_(enabled), start_(clock::now()), last_(start_) {}

  void update(std::uint64_t events, timestamp watermark, std::size_t open_windows) {
    if (!enabled_)
      return;
    const auto now = clock::now();
    if (now - last_ < std::chrono::milliseconds(250))
      return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    std::cerr << "\r  " << events << " events  "
              << static_cast<std::uint64_t>(secs > 0 ? static_cast<double>(events) / secs : 0)
              << " events/s  watermark "
              << (watermark == watermark_min ? std::string("-")
                                             : pricing::format_rfc3339(watermark))
              << "  windows open " << open_windows << "    " << std::flush;
  }
  void done() {
    if (enabled_)
      std::cerr << "\r" << std::string(100, ' ') << "\r" << std::flush;
  }

private:
  using clock = std::chrono::steady_clock;
  bool enabled_;
  clock::time_point start_, last_;
};

bool manually_rerated(const persistence::record_store& records) {
  for (const auto& run : records.rerate_runs())
    if (run.trigger == "manual")
      return true;
  return false;
}

class driver {
public:
  // With `store_url`, events and records go to PostgreSQL as well (the store must hold no
  // events yet: a batch run starts from an empty system of record).
  // With `resume` (serve), a store that holds events continues where its committed progress
  // left off: every partition replays its stored events up to that input position against the
  // watermark steps they imply, and the source skips the lines up to it.
  driver(caf::actor_system& sys, const config::configuration& cfg, std::uint32_t partitions,
         fault_hooks faults, const std::optional<std::string>& out_dir,
         const std::optional<std::string>& store_url, bool resume = false)
      : sys_(sys), self_(sys), cfg_(cfg), faults_(faults), sink_(out_dir, false) {
    for (std::uint32_t p = 0; p < partitions; ++p) {
      slots_.emplace_back();
      if (store_url) {
        auto store = persistence::pg_event_store::load(*store_url, static_cast<int>(p));
        if (store->size() > 0 && !resume)
          throw usage_error("--store: the database already holds events (partition " +
                            std::to_string(p) + " has " + std::to_string(store->size()) +
                            "); a batch run starts from an empty store (meterflow serve "
                            "continues one)");
        slots_.back().store = std::move(store);
      } else {
        slots_.back().store = std::make_unique<persistence::memory_store>();
      }
    }
    if (store_url && resume) {
      check_partitioning(*store_url, partitions);
      service_lock_ = persistence::pg_service_lock::try_acquire(*store_url);
      if (!service_lock_)
        throw usage_error("--store: another meterflow serve (or a meterflow rerate) is using "
                          "this store; one service per store");
    }
    if (store_url) {
      records_ = persistence::make_pg_record_store(*store_url);
      sink_.set_record_store(records_.get(), progress_source);
      if (resume)
        resume_from(records_->progress(progress_source));
      // A resumed service rebuilds its state by replaying the stored events; a manual re-rate
      // recorded charges and correction invoices that the replay does not know, so the
      // partitions then adopt what the store holds.
      adopt_stored_ = resume && !finished_before_ && manually_rerated(*records_);
    }
    if (finished_before_)
      return; // nothing to do: no partition needs to run
    for (std::uint32_t p = 0; p < partitions; ++p)
      spawn(p, resumed_);
  }

  static constexpr const char* progress_source = "events";

  // The input position whose records are all committed (0: nothing yet), and whether the
  // store's input was processed to its end already.
  std::uint64_t committed_position() const { return applied_upto_; }
  bool finished_before() const { return finished_before_; }

  // Stops the partitions and waits for them: they use the stores this driver owns.
  ~driver() {
    for (auto& s : slots_) {
      if (!s.handle)
        continue;
      self_->demonitor(s.handle.address());
      self_->send_exit(s.handle, caf::exit_reason::user_shutdown);
      self_->wait_for(s.handle);
    }
  }

  // One batch: route, admit (dedup + store) in parallel, compute the watermark steps, and
  // start applying them. The partitions apply while the caller parses the next batch; the
  // next call (or finish()) collects their reports first.
  void process(std::vector<sequenced_event>&& events, std::vector<std::string>&& raws,
               bool end_of_input) {
    collect();
    ++batch_no_;
    const auto n = static_cast<std::uint32_t>(slots_.size());
    std::vector<event_batch> routed(n);
    std::vector<std::pair<std::uint32_t, std::uint32_t>> where; // (partition, index in batch)
    where.reserve(events.size());
    for (auto& se : events) {
      const std::uint32_t p = partition_of(se.event.customer_id, n);
      where.emplace_back(p, static_cast<std::uint32_t>(routed[p].events.size()));
      routed[p].events.push_back(std::move(se));
    }
    // Keep each event's seq and time before the batches move into the partitions.
    std::vector<std::vector<std::pair<std::uint64_t, timestamp>>> meta(n);
    for (std::uint32_t p = 0; p < n; ++p)
      for (const auto& se : routed[p].events)
        meta[p].emplace_back(se.seq, se.event.event_time);

    std::vector<std::vector<persistence::append_outcome>> outcomes(n);
    std::uint32_t expected = 0;
    for (std::uint32_t p = 0; p < n; ++p) {
      if (routed[p].events.empty())
        continue;
      routed[p].batch = batch_no_;
      self_->send(slots_[p].handle, admit_atom::value, std::move(routed[p]));
      ++expected;
    }
    for (std::uint32_t received = 0; received < expected;) {
      self_->receive(
          [&](admit_result& r) {
            outcomes[r.partition] = std::move(r.outcomes);
            ++received;
          },
          [&](const caf::down_msg& down) {
            throw std::runtime_error("a partition failed while storing a batch: " +
                                     sys_.render(down.reason));
          });
    }
    // The watermark advances in input order with accepted events only.
    steps_ = watermark_steps{};
    steps_.batch = batch_no_;
    steps_.end_of_input = end_of_input;
    for (size_t i = 0; i < where.size(); ++i) {
      const auto [p, k] = where[i];
      const auto [seq, time] = meta[p][k];
      switch (outcomes[p][k]) {
      case persistence::append_outcome::accepted:
      case persistence::append_outcome::replayed:
        advance_watermark(watermark_, steps_.steps, seq, time, cfg_.max_out_of_orderness);
        break;
      case persistence::append_outcome::duplicate:
        ++duplicates_;
        break;
      case persistence::append_outcome::conflict:
        ++conflicts_;
        sink_.add_rejected({seq, "event_id_conflict",
                            "an event with this customer_id and event_id and a different "
                            "payload was accepted earlier; the first one stands",
                            std::move(raws[i])});
        break;
      }
    }
    for (std::uint32_t p = 0; p < n; ++p)
      self_->send(slots_[p].handle, apply_atom::value, steps_);
    applying_ = true;
    // While the partitions apply this batch, the previous batch's records go to disk.
    sink_.flush(applied_upto_);
    flushed_upto_ = applied_upto_;
    if (!where.empty())
      batch_upto_ = meta[where.back().first][where.back().second].first;
  }

  // Waits for every partition's report of the batch being applied. Supervision: a partition
  // that fails while applying is restarted (up to the restart budget), rebuilds its state from
  // the store, and gets the batch again.
  void collect() {
    if (!applying_)
      return;
    applying_ = false;
    const auto n = static_cast<std::uint32_t>(slots_.size());
    std::vector<bool> done(n, false);
    for (std::uint32_t received = 0; received < n;) {
      self_->receive(
          [&](partition_report& r) {
            if (!r.fatal.empty() && fatal_.empty())
              fatal_ = r.fatal;
            slots_[r.partition].counters = r.counters;
            slots_[r.partition].open_windows = r.open_windows;
            sink_.add(std::move(r.output));
            done[r.partition] = true;
            ++received;
          },
          [&](const caf::down_msg& down) {
            std::uint32_t p = 0;
            while (p < n && slots_[p].handle.address() != down.source)
              ++p;
            if (p == n || done[p])
              return;
            restart(p, sys_.render(down.reason));
            self_->send(slots_[p].handle, apply_atom::value, steps_);
          });
    }
    history_.insert(history_.end(), steps_.steps.begin(), steps_.steps.end());
    applied_upto_ = batch_upto_;
  }

  // Collects the last batch's reports.
  void finish() { collect(); }

  // Collects the batch being applied and writes (and commits) its records now, rather than
  // with the next batch: for a source that waits for more input.
  void commit_applied() {
    collect();
    if (applied_upto_ > flushed_upto_) {
      sink_.flush(applied_upto_);
      flushed_upto_ = applied_upto_;
    }
  }

  run_sink& sink() { return sink_; }
  timestamp watermark() const { return watermark_; }
  std::size_t open_windows() const {
    std::size_t n = 0;
    for (const auto& s : slots_)
      n += s.open_windows;
    return n;
  }
  partition_counters counters() const {
    partition_counters total;
    for (const auto& s : slots_)
      total += s.counters;
    total.accepted = 0;
    for (const auto& s : slots_)
      total.accepted += s.store->size(); // the system of record
    total.duplicates = duplicates_;
    total.conflicts = conflicts_;
    return total;
  }
  const std::string& fatal() const { return fatal_; }

private:
  struct slot {
    partition_actor handle;
    std::unique_ptr<persistence::event_store> store;
    int restarts = 0;
    partition_counters counters;
    std::size_t open_windows = 0;
  };

  // Events are stored per partition: a store written with another partition count would split
  // customers (and their deduplication) across partitions, so it is refused.
  void check_partitioning(const std::string& store_url, std::uint32_t partitions) {
    const auto wrong = [&] {
      return usage_error("--partitions: the store was written with a different number of "
                         "partitions; start serve with the same --partitions as before");
    };
    if (persistence::pg_event_store::load(store_url, static_cast<int>(partitions))->size() > 0)
      throw wrong();
    for (std::uint32_t p = 0; p < partitions; ++p)
      for (std::uint32_t i = 0; i < slots_[p].store->size(); ++i)
        if (partition_of(slots_[p].store->at(i).customer_id, partitions) != p)
          throw wrong();
  }

  // Rebuilds the watermark history of the committed input from the stored events: the steps
  // are the accepted events, in input order, that raised the watermark.
  void resume_from(const std::optional<persistence::source_progress>& progress) {
    if (!progress)
      return;
    finished_before_ = progress->finished;
    applied_upto_ = progress->position;
    std::vector<std::pair<std::uint64_t, timestamp>> stored;
    for (const auto& s : slots_)
      for (std::uint32_t i = 0; i < s.store->size(); ++i)
        if (s.store->source_position(i) <= applied_upto_)
          stored.emplace_back(s.store->source_position(i), s.store->at(i).event_time);
    std::sort(stored.begin(), stored.end());
    for (const auto& [position, time] : stored)
      advance_watermark(watermark_, history_, position, time, cfg_.max_out_of_orderness);
    resumed_ = true;
  }

  void spawn(std::uint32_t p, bool restore) {
    const std::uint64_t crash =
        faults_.crash_batch && faults_.crash_partition == p && slots_[p].restarts == 0
            ? faults_.crash_batch
            : 0;
    // A service resuming re-reads its later lines; a crashed partition does not.
    const bool queue_later_events = !resumed_ || slots_[p].handle != nullptr;
    // A partition on PostgreSQL blocks on its writes: it gets a thread of its own, off the
    // scheduler its stage actors run on.
    slots_[p].handle =
        records_ ? sys_.spawn<caf::detached>(partition, p, &cfg_, slots_[p].store.get(), crash)
                 : sys_.spawn(partition, p, &cfg_, slots_[p].store.get(), crash);
    self_->monitor(slots_[p].handle);
    if (!restore)
      return;
    wait_for(p, "rebuild its state from the store", restore_atom::value,
             restore_request{history_, applied_upto_, queue_later_events});
    if (adopt_stored_)
      wait_for(p, "adopt the stored charges", adopt_atom::value, stored_state_of(p));
  }

  // Sends partition `p` a request and waits for its (empty) report.
  template <class... Ts>
  void wait_for(std::uint32_t p, const char* what, Ts&&... xs) {
    self_->request(slots_[p].handle, caf::infinite, std::forward<Ts>(xs)...)
        .receive([](partition_report&) {},
                 [&](caf::error& e) {
                   throw std::runtime_error("partition " + std::to_string(p) + " could not " +
                                            what + ": " + sys_.render(e));
                 });
  }

  // The current charges and the invoices the store holds for partition `p`'s customers.
  stored_state stored_state_of(std::uint32_t p) const {
    stored_state out;
    std::set<std::string> customers;
    const persistence::event_store& events = *slots_[p].store;
    for (std::uint32_t i = 0; i < events.size(); ++i)
      customers.insert(events.at(i).customer_id);
    for (const std::string& customer : customers) {
      std::set<timestamp> periods;
      for (const config::meter& m : cfg_.meters)
        for (const auto& c : records_->current_charges(customer, m.metric)) {
          const timestamp period = pricing::period_of(c.window_start).start;
          periods.insert(period);
          out.charges[{customer, m.metric, period}].by_window[c.window_start] =
              current_charge_of(c);
        }
      for (timestamp period : periods)
        out.invoices[{customer, period}].invoices =
            records_->invoices_of(customer, pricing::period_of(period));
    }
    return out;
  }

  void restart(std::uint32_t p, const std::string& why) {
    if (++slots_[p].restarts > restart_budget)
      throw std::runtime_error("partition " + std::to_string(p) + " failed " +
                               std::to_string(slots_[p].restarts) +
                               " times, beyond its restart budget: " + why);
    std::cerr << "meterflow run: partition " << p << " failed (" << why
              << "); restarting it from the store (restart " << slots_[p].restarts << " of "
              << restart_budget << ")\n";
    spawn(p, true);
  }

  caf::actor_system& sys_;
  caf::scoped_actor self_;
  const config::configuration& cfg_;
  fault_hooks faults_;
  std::vector<slot> slots_;
  std::unique_ptr<persistence::record_store> records_;
  run_sink sink_;
  std::uint64_t batch_no_ = 0;
  timestamp watermark_ = watermark_min;
  std::vector<watermark_step> history_;
  std::uint64_t applied_upto_ = 0;
  bool resumed_ = false, finished_before_ = false;
  std::unique_ptr<persistence::pg_service_lock> service_lock_; // serve: held while it runs
  bool adopt_stored_ = false;      // the store was re-rated by hand: partitions adopt its charges
  std::uint64_t flushed_upto_ = 0; // records written through this input position
  watermark_steps steps_;          // the batch being applied
  std::uint64_t batch_upto_ = 0;   // its last input position
  bool applying_ = false;
  std::uint64_t duplicates_ = 0, conflicts_ = 0;
  std::string fatal_;
};

void print_summary(const run_sink& sink, const reconciliation_report& report,
                   const std::string& out_dir) {
  const auto& counts = report.json["counts"];
  std::cout << "meterflow run: " << counts["received"] << " events received, " << counts["accepted"]
            << " accepted, " << counts["duplicates"] << " duplicates, " << counts["conflicts"]
            << " conflicts, " << counts["rejected"] << " rejected, " << counts["very_late"]
            << " very late (" << counts["rerates"] << " re-rates)\n";
  std::cout << "invoices:\n";
  for (const auto& k : sink.invoices()) {
    const auto& inv = k.record;
    const auto j = persistence::to_json(inv);
    std::cout << "  " << inv.invoice_id << "  " << persistence::to_string(inv.type) << "  "
              << inv.customer_id << "  " << pricing::period_id(inv.period);
    if (inv.corrects_invoice_id)
      std::cout << "  corrects " << *inv.corrects_invoice_id;
    std::cout << "\n";
    for (const auto& l : j["line_items"])
      std::cout << "      " << l["metric"].get<std::string>() << "  quantity "
                << l["quantity"].get<std::string>() << "  " << inv.currency << " "
                << l["amount"].get<std::string>() << "\n";
    std::cout << "      subtotal " << j["subtotal"].get<std::string>() << "  credits "
              << j["credits_applied"].get<std::string>() << "  total "
              << j["total"].get<std::string>() << " " << inv.currency << "\n";
  }
  std::cout << "reconciliation: " << (report.ok ? "ok" : "FAILED") << " ("
            << report.json["checks"].size() << " checks, " << report.json["unpriced_windows"].size()
            << " unpriced windows)\n";
  if (!report.ok)
    for (const auto& c : report.json["checks"])
      if (!c["ok"].get<bool>())
        std::cout << "  FAILED " << c["check"].get<std::string>() << ": expected "
                  << c["expected"].get<std::string>() << ", actual "
                  << c["actual"].get<std::string>()
                  << (c.contains("detail") ? " (" + c["detail"].get<std::string>() + ")" : "")
                  << "\n";
  std::cout << "output: " << out_dir << "\n";
}

} // namespace

namespace {

struct pipeline_options {
  bool serve = false;
  config::configuration cfg;
  std::string events_path;
  std::optional<std::string> out_dir, store_url;
  std::uint64_t threads = 2, batch_size = 8192;
  std::uint32_t partitions = 4;
  bool quiet = false;
  bool follow = false; // serve: wait for more lines at the end of the file, until SIGTERM
};

std::atomic<bool> stop_requested{false};
extern "C" void request_stop(int) {
  stop_requested = true;
}

pipeline_options parse_pipeline_options(const std::vector<std::string>& args, bool serve) {
  std::set<std::string> options = {"config",     "events",     "threads",
                                   "partitions", "batch-size", "store"};
  if (!serve)
    options.insert("out");
  const auto cl = parse_command_line(args, options,
                                     serve ? std::set<std::string>{"quiet", "follow"}
                                           : std::set<std::string>{"quiet"});
  if (!cl.positional.empty())
    throw usage_error("unexpected argument \"" + cl.positional.front() + "\"");
  pipeline_options o;
  o.serve = serve;
  o.cfg = config::load_file(cl.required("config"));
  o.events_path = cl.required("events");
  if (!serve)
    o.out_dir = cl.required("out");
  o.threads = cl.count("threads", 2, 256);
  o.partitions = static_cast<std::uint32_t>(cl.count("partitions", 4, 4096));
  o.batch_size = cl.count("batch-size", 8192, 1'000'000);
  o.quiet = cl.flag("quiet");
  o.follow = cl.flag("follow");
  if (o.follow) { // from here on a SIGTERM commits what was read and stops cleanly
    std::signal(SIGTERM, request_stop);
    std::signal(SIGINT, request_stop);
  }
  o.store_url = serve ? std::optional<std::string>(cl.required("store")) : cl.optional("store");
  if (o.store_url) {
    try {
      pqxx::connection connection(*o.store_url);
      persistence::migrate(connection);
    } catch (const std::exception& e) {
      throw usage_error(std::string("--store: ") + e.what());
    }
  }
  return o;
}

// The pipeline of `run` and `serve`: read, validate, batch, admit, apply, write.
int run_pipeline(const pipeline_options& o) {
  const char* const name = o.serve ? "meterflow serve" : "meterflow run";
  const config::configuration& cfg = o.cfg;
  line_reader reader(o.events_path); // throws usage_error when the file cannot be opened
  if (o.follow)
    reader.follow();
  caf::actor_system_config sys_cfg;
  sys_cfg.set("scheduler.max-threads", o.threads);
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{sys_cfg};
  const fault_hooks faults = read_fault_hooks();

  event_parser parser(cfg);
  source_counters source;
  progress_line progress(!o.quiet && ::isatty(STDERR_FILENO));
  reconciliation_report report;
  {
    std::optional<driver> started;
    try {
      started.emplace(sys, cfg, o.partitions, faults, o.out_dir, o.store_url, o.serve);
    } catch (const persistence::store_error& e) {
      throw usage_error(std::string("--store: ") + e.what());
    }
    driver& d = *started;
    if (faults.break_chain)
      d.sink().drop_last_charge();
    if (d.finished_before()) {
      std::cout << name << ": the input was processed to its end before (through line "
                << d.committed_position() << "); nothing to do\n";
      return exit_ok;
    }
    const std::uint64_t resume_after = d.committed_position();
    if (o.serve && resume_after > 0 && !o.quiet)
      std::cerr << name << ": resuming after line " << resume_after
                << " (the records up to it are committed)\n";
    std::vector<sequenced_event> batch;
    std::vector<std::string> raws;
    batch.reserve(o.batch_size);
    std::string_view line;
    std::uint64_t line_no = 0;
    try {
      for (;;) {
        while (!stop_requested && reader.next(line, line_no)) {
          if (line_no <= resume_after)
            continue; // committed before a restart
          if (line.find_first_not_of(" \t") == std::string_view::npos)
            continue; // blank lines are skipped
          ++source.received;
          parse_outcome parsed = parser.parse(line);
          if (!parsed.ok()) {
            ++source.rejected;
            d.sink().add_rejected(
                {line_no, to_string(parsed.reason), std::move(parsed.detail), std::string(line)});
            continue;
          }
          batch.push_back({line_no, std::move(*parsed.event)});
          raws.emplace_back(line);
          if (batch.size() >= o.batch_size) {
            d.process(std::move(batch), std::move(raws), false);
            batch.clear();
            raws.clear();
            progress.update(source.received, d.watermark(), d.open_windows());
            if (!d.fatal().empty())
              break;
          }
        }
        if (!o.follow || stop_requested || !d.fatal().empty())
          break;
        // Following: what arrived is processed and committed while waiting for more.
        if (!batch.empty()) {
          d.process(std::move(batch), std::move(raws), false);
          batch.clear();
          raws.clear();
        }
        d.commit_applied();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (d.fatal().empty())
        d.process(std::move(batch), std::move(raws), !o.follow);
      d.finish();
    } catch (const pricing::bad_result_access& e) {
      // A total reached 10^26 while the records were being summed.
      progress.done();
      std::cerr << name << ": " << e.what() << "; stopping (exit status 3)\n";
      return exit_overflow;
    } catch (const std::runtime_error& e) {
      progress.done();
      std::cerr << name << ": " << e.what() << "\n";
      return exit_engine_failure;
    }
    progress.done();
    if (!d.fatal().empty()) {
      std::cerr << name << ": " << d.fatal()
                << "; stopping: the output directory holds the records written so far and no "
                   "reconciliation.json (exit status 3)\n";
      return exit_overflow;
    }
    run_sink& sink = d.sink();
    sink.set_counters(source, d.counters());
    sink.seal(line_no, !o.follow);
    if (o.follow) {
      std::cout << name << ": stopped; committed through line " << line_no
                << " (start it again to go on)\n";
      return exit_ok;
    }
    if (o.serve) {
      std::cout << name << ": read " << source.received << " events after line " << resume_after
                << ", committed through line " << line_no << "; " << sink.invoices().size()
                << " invoices issued in this session\n";
      return exit_ok;
    }
    report = reconcile(sink, cfg);
    std::ofstream(std::filesystem::path(*o.out_dir) / "reconciliation.json")
        << report.json.dump(2) << '\n';
    print_summary(sink, report, *o.out_dir);
  }
  return report.ok ? exit_ok : exit_check_failed;
}

} // namespace

int run_command(const std::vector<std::string>& args) {
  return run_pipeline(parse_pipeline_options(args, false));
}

int serve_command(const std::vector<std::string>& args) {
  const report_option report = take_report_option(args);
  const pipeline_options o = parse_pipeline_options(report.args, true);
  const int status = run_pipeline(o);
  if (status != exit_ok || !report.dir)
    return status;
  return write_store_report(*report.dir, *o.store_url, o.cfg);
}

} // namespace meterflow::runtime
