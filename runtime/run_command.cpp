// `meterflow run`: the batch pipeline on the embedded default (file/stdin source, in-memory
// store). The driver is the source and the supervisor: it reads and validates lines, routes
// batches to the partition actors, advances the single batch watermark in input order from
// their dedup outcomes, restarts a crashed partition from the store, and hands everything
// the partitions emit to the sink.

#include "config/config.hpp"
#include "persistence/pg_schema.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"
#include "runtime/engine_driver.hpp"
#include "runtime/event_parser.hpp"
#include "runtime/line_reader.hpp"
#include "runtime/reconciliation.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <pqxx/pqxx>
#include <thread>
#include <unistd.h>

namespace meterflow::runtime {

const char* const serve_usage =
    R"(Usage: meterflow serve --config CONFIG --store URL --kafka BROKERS [options]
       meterflow serve --config CONFIG --store URL --events EVENTS.ndjson [options]

The durable engine on PostgreSQL.

With --kafka, the live service: it reads the topic as a member of a consumer group. Engine
partition p reads Kafka partition p (producers partition by meterflow's customer hash, as
`meterflow produce` and the HTTP API do) with its own watermark; a partition without messages
for watermark.idle_timeout is moved up to the others. Every poll's events are stored with
their partition and offset, and the records they lead to (aggregates, charges, invoices,
rejected messages) are committed with every partition's progress in one transaction. Killed at
any point and started again, or when a rebalance hands a partition to another member, the
partition resumes from the progress in the store: nothing is lost and nothing is counted twice.
Periods are invoiced as each partition's watermark passes them; SIGTERM or SIGINT commit and
exit 0.

With --events, it processes the file in order like `meterflow run`, committing each batch's
events and records with the progress through the file; started again with the same arguments
after a kill it resumes after the committed line. At the end of the file the watermark goes to
+infinity, every period is invoiced and the input is marked finished.

Options:
  --config CONFIG      configuration file (JSON, see docs/configuration.md)
  --store URL          PostgreSQL (postgresql:// URL or libpq keyword string); the schema is
                       created or upgraded first
  --threads N          worker threads (default 2)
  --partitions N       partition actors (default 4; keep it the same across restarts; with
                       --kafka the topic must have exactly N partitions)
  --batch-size N       events per batch and per commit (default 8192)
  --quiet              no progress output
  --report DIR         when it stops, write the store's reconciliation (as `meterflow
                       reconcile`) to DIR/reconciliation.json; exit 1 if a check fails
  --help               show this text
Kafka (docs/kafka.md):
  --kafka BROKERS      bootstrap servers, host:port[,host:port...] (`meterflow devkafka`
                       prints one for development)
  --topic TOPIC        default telemetry-events
  --group ID           consumer group (default meterflow); members of one group share the
                       store, each writing the partitions it was assigned
  --kafka-properties FILE  more librdkafka settings, name=value lines (TLS, SASL, timeouts)
  --drain              read every assigned partition to the end the cluster holds, then end
                       the input like a file: the watermark goes to +infinity and every
                       period is invoiced (backfills and tests; the partitions are finished)
HTTP API (docs/api.md), with --kafka:
  --listen HOST:PORT   serve the API there: POST /v1/events publishes to the topic, the other
                       routes read and administer the store; port 0 takes a free port (the
                       line http=HOST:PORT on standard output tells which)
  --allow-unauthenticated  serve without API keys when the configuration has none (local
                       demos only; otherwise serve refuses to start)
File:
  --events FILE        NDJSON events, one per line
  --follow             at the end of the file, wait for more lines (processing and committing
                       what arrived) until SIGTERM or SIGINT, which commit and exit 0

Exit status: 0 done, 1 a check of --report failed, 2 bad arguments, configuration or store,
3 an amount reached 10^26, 4 an engine failure (Kafka unreachable or out of range included).
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
    handle_stop_signals();
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
    std::optional<engine_driver> started;
    try {
      started.emplace(sys, cfg,
                      driver_options{o.partitions, faults, o.out_dir, o.store_url, o.serve, {}});
    } catch (const persistence::store_error& e) {
      throw usage_error(std::string("--store: ") + e.what());
    } catch (const output_error& e) {
      throw usage_error(std::string("--out: ") + e.what());
    }
    engine_driver& d = *started;
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
        while (!stop_requested() && reader.next(line, line_no)) {
          if (line_no <= resume_after)
            continue; // committed before a restart
          if (line.find_first_not_of(" \t") == std::string_view::npos)
            continue; // blank lines are skipped
          ++source.received;
          parse_outcome parsed = parser.parse(line);
          if (!parsed.ok()) {
            ++source.rejected;
            d.add_rejected(
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
        if (!o.follow || stop_requested() || !d.fatal().empty())
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
    run_sink* sealed = nullptr;
    try {
      run_sink& sink = d.sink(); // waits for the sink thread, which can fail writing
      sink.set_counters(source, d.counters());
      sink.seal(line_no, !o.follow);
      sealed = &sink;
    } catch (const pricing::bad_result_access&) {
      throw; // a total reaching 10^26: exit status 3, as everywhere
    } catch (const std::runtime_error& e) {
      std::cerr << name << ": " << e.what() << "\n";
      return exit_engine_failure;
    }
    run_sink& sink = *sealed;
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
    {
      const auto path = std::filesystem::path(*o.out_dir) / "reconciliation.json";
      std::ofstream out(path);
      out << report.json.dump(2) << '\n';
      out.close();
      if (!out) {
        std::cerr << name << ": write failed: " << path.string() << "\n";
        return exit_engine_failure;
      }
    }
    print_summary(sink, report, *o.out_dir);
    // Every file is written and closed, and every record committed: the process ends here
    // rather than taking the run's state down piece by piece (at 1M events, freeing the events,
    // windows and totals took 0.7 s on one thread); the kernel reclaims it at once.
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(report.ok ? exit_ok : exit_check_failed);
  }
  return report.ok ? exit_ok : exit_check_failed;
}

} // namespace

int run_command(const std::vector<std::string>& args) {
  return run_pipeline(parse_pipeline_options(args, false));
}

int serve_command(const std::vector<std::string>& args) {
  const report_option report = take_report_option(args);
  if (std::find(report.args.begin(), report.args.end(), "--kafka") != report.args.end())
    return serve_stream_command(report.args, report.dir);
  const pipeline_options o = parse_pipeline_options(report.args, true);
  const int status = run_pipeline(o);
  if (status != exit_ok || !report.dir)
    return status;
  return write_store_report(*report.dir, *o.store_url, o.cfg);
}

} // namespace meterflow::runtime
