// `meterflow reconcile`: the reconciliation chain of SEMANTICS §8 over the PostgreSQL system
// of record, on demand; and the report `meterflow serve --report DIR` writes when it stops.

#include "persistence/store.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"
#include "runtime/store_reconciliation.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace meterflow::runtime {

const char* const reconcile_usage =
    R"(Usage: meterflow reconcile --store URL [--config CONFIG] [--period YYYY-MM | --daily YYYY-MM-DD]
                          [--format text|json] [--json FILE]

Checks the reconciliation chain of the PostgreSQL system of record (SEMANTICS §8): events ->
aggregates -> charges -> invoice lines -> ledger, with the daily checks: all events processed,
aggregations finalized, charges rated, charges invoiced, no duplicates, totals that match
across the stages. Prints each check with expected, actual and ok, and for a failed one what
differs and what to do (re-process, void, investigate). Reads only; works while `serve` runs
(one snapshot). docs/cli.md defines every check.

Options:
  --store URL       the PostgreSQL system of record (postgresql:// URL or libpq keyword string)
  --config CONFIG   the configuration the store was written with: its meters, windows,
                    lateness and correction interval; without it the checks of events,
                    aggregates and charges against each other are skipped
  --period YYYY-MM  only that calendar month (UTC): its events, windows, charges, invoices
  --daily YYYY-MM-DD  only that day's events, windows and charges (UTC); the invoice and
                    ledger checks cover the invoices of its month
  --format F        text (default: a table) or json (the report, like a batch run's
                    reconciliation.json)
  --json FILE       also write the JSON report to FILE
  --help            show this text

Exit status: 0 every check holds, 1 a check failed, 2 bad arguments, configuration or an
unreachable store (or one whose schema is not current: run `meterflow migrate`).
)";

namespace {

reconcile_scope scope_of(const command_line& cl) {
  const auto period = cl.optional("period");
  const auto daily = cl.optional("daily");
  if (period && daily)
    throw usage_error("--period and --daily exclude each other");
  if (period) {
    const auto p = pricing::parse_period(*period);
    if (!p)
      throw usage_error("--period: " + p.error_value().message);
    return {p->start, p->end, *period};
  }
  if (daily) {
    std::optional<pricing::timestamp> day;
    if (daily->size() == 10)
      if (const auto t = pricing::parse_rfc3339(*daily + "T00:00:00Z"))
        day = *t;
    if (!day)
      throw usage_error("--daily: expected a day YYYY-MM-DD, got \"" + *daily + "\"");
    return {*day, *day + pricing::microseconds_per_day, *daily};
  }
  return {std::nullopt, std::nullopt, "store"};
}

reconciliation_report reconcile_or_usage_error(const std::string& store_url,
                                               const config::configuration* cfg,
                                               const reconcile_scope& scope) {
  try {
    return reconcile_store(store_url, cfg, scope);
  } catch (const persistence::store_error& e) {
    throw usage_error(std::string("--store: ") + e.what());
  }
}

void write_json(const std::filesystem::path& path, const reconciliation_report& report) {
  std::ofstream out(path);
  out << report.json.dump(2) << '\n';
  if (!out)
    throw usage_error("cannot write " + path.string());
}

std::string text_of(const nlohmann::ordered_json& j) {
  return j.is_string() ? j.get<std::string>() : j.dump();
}

// What failed, what differs and what to do: one paragraph per failed check.
void print_failures(const reconciliation_report& report) {
  for (const auto& c : report.json["checks"]) {
    if (c["ok"].get<bool>())
      continue;
    std::cout << "FAILED " << c["check"].get<std::string>() << ": expected "
              << c["expected"].get<std::string>() << ", actual " << c["actual"].get<std::string>()
              << "\n";
    if (c.contains("detail"))
      std::cout << "  " << c["detail"].get<std::string>() << "\n";
    if (c.contains("action"))
      std::cout << "  what to do: " << c["action"].get<std::string>() << "\n";
  }
}

void print_summary_line(const reconciliation_report& report) {
  std::cout << "reconciliation: " << (report.ok ? "ok" : "FAILED") << " ("
            << report.json["checks"].size() << " checks, " << report.json["unpriced_windows"].size()
            << " unpriced windows)\n";
}

void print_table(const reconciliation_report& report) {
  const auto& j = report.json;
  const auto& scope = j["scope"];
  const auto& store = j["store"];
  std::cout << "meterflow reconcile: " << scope["name"].get<std::string>();
  if (!scope["from"].is_null())
    std::cout << " [" << text_of(scope["from"]) << ", " << text_of(scope["to"]) << ")";
  std::cout << "; store committed through line " << store["committed_through"] << ", "
            << (store["finished"].get<bool>() ? "input processed to its end" : "input open")
            << ", watermark " << text_of(store["watermark"]) << "\n\n";
  std::size_t width[3] = {5, 8, 6};
  for (const auto& c : j["checks"]) {
    width[0] = std::max(width[0], c["check"].get<std::string>().size());
    width[1] = std::max(width[1], c["expected"].get<std::string>().size());
    width[2] = std::max(width[2], c["actual"].get<std::string>().size());
  }
  auto row = [&](const std::string& a, const std::string& b, const std::string& c,
                 const std::string& d) {
    std::cout << a << std::string(width[0] - a.size() + 2, ' ') << b
              << std::string(width[1] - b.size() + 2, ' ') << c
              << std::string(width[2] - c.size() + 2, ' ') << d << "\n";
  };
  row("check", "expected", "actual", "ok");
  for (const auto& c : j["checks"])
    row(c["check"].get<std::string>(), c["expected"].get<std::string>(),
        c["actual"].get<std::string>(), c["ok"].get<bool>() ? "ok" : "FAILED");
  if (j.contains("skipped"))
    for (const auto& s : j["skipped"])
      std::cout << "skipped: " << s.get<std::string>() << "\n";
  std::cout << "\ncounts:";
  for (const auto& [name, value] : j["counts"].items())
    std::cout << " " << name << " " << value;
  std::cout << "\ntotals:";
  for (const auto& [name, value] : j["totals"].items())
    std::cout << " " << name << " " << value.get<std::string>();
  std::cout << "\n";
  for (const auto& u : j["unpriced_windows"])
    std::cout << "unpriced: " << u.dump() << "\n";
  print_summary_line(report);
  print_failures(report);
}

} // namespace

int reconcile_command(const std::vector<std::string>& args) {
  const auto cl =
      parse_command_line(args, {"store", "config", "period", "daily", "format", "json"}, {});
  if (!cl.positional.empty())
    throw usage_error("unexpected argument \"" + cl.positional.front() + "\"");
  const std::string format = cl.optional("format").value_or("text");
  if (format != "text" && format != "json")
    throw usage_error("--format: expected text or json, got \"" + format + "\"");
  const reconcile_scope scope = scope_of(cl);
  std::optional<config::configuration> cfg;
  if (const auto path = cl.optional("config"))
    cfg = config::load_file(*path);
  const auto report = reconcile_or_usage_error(cl.required("store"), cfg ? &*cfg : nullptr, scope);
  if (const auto path = cl.optional("json"))
    write_json(*path, report);
  if (format == "json")
    std::cout << report.json.dump(2) << "\n";
  else
    print_table(report);
  return report.ok ? exit_ok : exit_check_failed;
}

report_option take_report_option(const std::vector<std::string>& args) {
  report_option out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::optional<std::string> dir;
    if (args[i] == "--report") {
      if (i + 1 >= args.size())
        throw usage_error("option --report needs a value");
      dir = args[++i];
    } else if (args[i].rfind("--report=", 0) == 0) {
      dir = args[i].substr(9);
    } else {
      out.args.push_back(args[i]);
      continue;
    }
    if (out.dir)
      throw usage_error("option --report given twice");
    std::error_code ec;
    std::filesystem::create_directories(*dir, ec);
    if (ec)
      throw usage_error("--report: cannot create " + *dir + ": " + ec.message());
    out.dir = std::move(dir);
  }
  return out;
}

int write_store_report(const std::string& dir, const std::string& store_url,
                       const config::configuration& cfg) {
  reconciliation_report report;
  try {
    report = reconcile_store(store_url, &cfg, {std::nullopt, std::nullopt, "store"});
  } catch (const persistence::store_error& e) {
    std::cerr << "meterflow serve: no reconciliation report: " << e.what() << "\n";
    return exit_check_failed;
  }
  const auto path = std::filesystem::path(dir) / "reconciliation.json";
  write_json(path, report);
  print_summary_line(report);
  print_failures(report);
  std::cout << "report: " << path.string() << "\n";
  return report.ok ? exit_ok : exit_check_failed;
}

bool print_scope_reconciliation(const std::string& store_url, const config::configuration& cfg,
                                const reconcile_scope& scope) {
  const reconciliation_report report = reconcile_store(store_url, &cfg, scope);
  std::cout << scope.name << " ";
  print_summary_line(report);
  print_failures(report);
  return report.ok;
}

} // namespace meterflow::runtime
