// `meterflow rerate`: a manual re-rate of a scope of the system of record (SEMANTICS §7) with
// the price books as configured now (runtime/rerate.hpp does it), under the service lock, with
// the comparison printed and the re-rated periods reconciled.

#include "persistence/pg_store.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"
#include "runtime/rerate.hpp"
#include "runtime/store_reconciliation.hpp"

#include <iomanip>
#include <iostream>
#include <sstream>

namespace meterflow::runtime {

const char* const rerate_usage =
    R"(Usage: meterflow rerate --config CONFIG --store URL --from PERIOD [--to PERIOD]
                        [--customers a,b|all] [--metrics m|all] --reason TEXT [--dry-run]
                        [--partitions N]

Re-rates a scope of the store with the price books of CONFIG (SEMANTICS §7): every final window
of the scope is re-aggregated from the raw events and re-rated in window order; a window whose
charge changes gets a new charge that supersedes the old one, an issued period whose rounded
amounts change gets a correction invoice (inv_<customer>_<period>_c<n>) that links to the
standard invoice. Nothing is updated: every change is a new record. Running the same re-rate
again finds nothing to change and creates no document. Each run is recorded in rerate_runs.
Stop `meterflow serve` on the store before a manual re-rate (a running one is detected and the
re-rate refused); started again, it adopts the re-rated charges and invoices.

Options:
  --config CONFIG     the configuration: meters and the price books as published now
  --store URL         the PostgreSQL system of record
  --from PERIOD       first billing period of the scope (YYYY-MM)
  --to PERIOD         last billing period of the scope (default: --from)
  --customers LIST    comma-separated customer ids, or all (default all)
  --metrics LIST      comma-separated metrics, or all (default all)
  --reason TEXT       why (recorded with the run)
  --dry-run           print the comparison and write nothing
  --partitions N      the partition count the store was written with (default 4)
  --help              show this text

Output: one line per customer, metric and period with the amount charged before and after,
the delta and the windows whose charge changed; a total per currency; the documents created;
then the reconciliation of each re-rated period (meterflow reconcile --period).
Exit status: 0 done and reconciled, 1 the store refused the records or a reconciliation check
failed, 2 bad arguments, configuration or store, 3 an amount reached 10^26.
)";

namespace {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty())
      out.push_back(item);
  return out;
}

pricing::period period_option(const std::string& name, const std::string& text) {
  auto p = pricing::parse_period(text);
  if (!p)
    throw usage_error("--" + name + ": expected a billing period like 2024-01, got \"" + text +
                      "\"");
  return *p;
}

} // namespace

int rerate_command(const std::vector<std::string>& args) {
  const auto cl = parse_command_line(
      args, {"config", "store", "from", "to", "customers", "metrics", "reason", "partitions"},
      {"dry-run"});
  if (!cl.positional.empty())
    throw usage_error("unexpected argument \"" + cl.positional.front() + "\"");
  const config::configuration cfg = config::load_file(cl.required("config"));
  const pricing::period from = period_option("from", cl.required("from"));
  const pricing::period to = period_option("to", cl.optional("to").value_or(cl.required("from")));
  if (to < from)
    throw usage_error("--to: " + pricing::period_id(to) + " is before --from " +
                      pricing::period_id(from));
  const std::string reason = cl.required("reason");
  if (reason.empty())
    throw usage_error("--reason: say why the scope is re-rated");
  const bool dry_run = cl.flag("dry-run");
  const auto partitions = static_cast<std::uint32_t>(cl.count("partitions", 4, 4096));
  const std::string metric_list = cl.optional("metrics").value_or("all");
  if (metric_list != "all")
    for (const auto& name : split_list(metric_list))
      if (!cfg.find_meter(name))
        throw usage_error("--metrics: no meter \"" + name + "\" in the configuration");

  rerate_spec spec{cl.required("store"), from, to, {}, {}, reason, dry_run, partitions};
  if (metric_list != "all")
    spec.metrics = split_list(metric_list);
  const std::string customer_list = cl.optional("customers").value_or("all");
  if (customer_list != "all")
    spec.customers = split_list(customer_list);
  std::unique_ptr<persistence::pg_service_lock> service;
  rerate_outcome outcome;
  try {
    // A running service would go on from charges this re-rate supersedes.
    service = persistence::pg_service_lock::try_acquire(spec.store_url);
    if (!service)
      throw usage_error("--store: a meterflow serve is running on this store; stop it (SIGTERM) "
                        "before a manual re-rate, and start it again afterwards");
    outcome = rerate(cfg, spec);
  } catch (const persistence::store_error& e) {
    throw usage_error(std::string("--store: ") + e.what());
  }

  // The comparison, per customer, metric and period, and a total per currency.
  std::cout << std::left << std::setw(16) << "customer" << std::setw(14) << "metric" << std::setw(9)
            << "period" << std::right << std::setw(16) << "before" << std::setw(16) << "after"
            << std::setw(16) << "delta" << std::setw(9) << "windows"
            << "\n";
  for (const auto& r : outcome.comparisons) {
    std::cout << std::left << std::setw(16) << r.customer_id << std::setw(14) << r.metric
              << std::setw(9) << r.period << std::right << std::setw(16) << r.before.to_string()
              << std::setw(16) << r.after.to_string() << std::setw(16)
              << (r.after - r.before).to_string() << std::setw(9) << r.windows_changed << "\n";
  }
  for (const auto& [currency, t] : outcome.totals)
    std::cout << "total " << currency << ": before " << t.first.to_string() << ", after "
              << t.second.to_string() << ", delta " << (t.second - t.first).to_string() << "\n";

  const auto& invoices = outcome.correction_invoices;
  std::cout << outcome.superseding_charges.size() << " superseding charges, " << invoices.size()
            << " correction invoices";
  for (const auto& i : invoices)
    std::cout << (&i == &invoices.front() ? ": " : ", ") << i.invoice_id << " ("
              << i.total.to_string() << " " << i.currency << ")";
  std::cout << "\n";
  if (dry_run) {
    std::cout << "dry run: nothing written\n";
    return exit_ok;
  }
  if (!outcome.recorded) {
    std::cerr << "meterflow rerate: the store refused the re-rate: " << outcome.refused << "\n";
    return exit_check_failed;
  }
  std::cout << "recorded re-rate run " << outcome.rerate_run_id << "\n";
  // SEMANTICS §7 step 6: reconcile the re-rated periods.
  bool reconciled = true;
  try {
    for (pricing::period period = from; period.start <= to.start;
         period = pricing::next_period(period))
      reconciled &= print_scope_reconciliation(
          cl.required("store"), cfg, {period.start, period.end, pricing::period_id(period)});
  } catch (const persistence::store_error& e) {
    std::cerr << "meterflow rerate: the re-rate is recorded, but its reconciliation failed: "
              << e.what() << "\n";
    return exit_check_failed;
  }
  return reconciled ? exit_ok : exit_check_failed;
}

} // namespace meterflow::runtime
