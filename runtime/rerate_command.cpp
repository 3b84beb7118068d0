// `meterflow rerate`: a manual re-rate of a scope of the system of record (SEMANTICS §7) with
// the price books as configured now. It rebuilds each customer x metric x period's final
// windows and current charges from the store, re-aggregates them from the raw events, re-rates
// them with the engine's own rating and invoice stages (rating_state, invoice_state), and
// appends the superseding charges, the correction invoices and the run in one transaction.

#include "actors/invoice_state.hpp"
#include "actors/rating_state.hpp"
#include "persistence/ids.hpp"
#include "persistence/json_format.hpp"
#include "persistence/pg_store.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"
#include "runtime/store_reconciliation.hpp"

#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
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

using actors::current_charge;
using pricing::decimal;
using pricing::timestamp;

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

struct comparison {
  std::string customer_id, metric, period, currency;
  decimal before, after;
  std::size_t windows_changed = 0;
};

// The batch watermark of the stored input: +infinity once its end was processed.
timestamp
stored_watermark(const config::configuration& cfg, const persistence::record_store& records,
                 const std::vector<std::unique_ptr<persistence::pg_event_store>>& stores) {
  const auto progress = records.progress("events");
  if (progress && progress->finished)
    return actors::watermark_max;
  timestamp latest = actors::watermark_min;
  for (const auto& s : stores)
    for (std::uint32_t i = 0; i < s->size(); ++i)
      latest = std::max(latest, s->at(i).event_time);
  return latest == actors::watermark_min ? latest : latest - cfg.max_out_of_orderness;
}

// One customer x metric x period as the store holds it, ready to re-rate.
std::unique_ptr<actors::rating_state>
restore_scope(const config::configuration& cfg, const persistence::record_store& records,
              const persistence::event_store& events, const std::string& customer,
              const config::meter& meter, const pricing::period& period,
              std::set<timestamp>& windows) {
  auto scope = std::make_unique<actors::rating_state>(cfg, events, customer, meter, period);
  std::map<std::string, const persistence::event*> by_id;
  for (std::uint32_t index : events.events_of(customer)) {
    const persistence::event& e = events.at(index);
    if (e.event_type != meter.event_type || e.event_time < period.start ||
        e.event_time >= period.end)
      continue;
    by_id[e.event_id] = &e;
    windows.insert(pricing::window_start(e.event_time, cfg.window_size));
  }
  std::map<timestamp, current_charge> charges;
  for (const auto& c : records.current_charges(customer, meter.metric))
    if (c.window_start >= period.start && c.window_start < period.end)
      charges[c.window_start] = actors::current_charge_of(c);
  if (!config::is_additive(meter.kind)) {
    auto it = charges.find(period.start);
    if (it != charges.end())
      scope->restore_period_charge(it->second); // period-level meters: the period's charge
  }
  for (timestamp start : windows) {
    std::optional<persistence::aggregate_record> latest;
    for (auto& a : records.aggregate_revisions(customer, meter.metric, start))
      if (a.is_final)
        latest = std::move(a);
    if (!latest)
      continue; // never final: a very late event the engine has not re-rated yet
    actors::window_aggregate aggregate(meter.kind);
    for (const auto& id : latest->event_ids) {
      auto e = by_id.find(id);
      if (e == by_id.end())
        throw persistence::store_error("aggregate " + latest->aggregation_id + " names event " +
                                       id + ", which is not in the store");
      auto reading = actors::read_meter(meter, *e->second);
      if (reading)
        aggregate.add(*e->second, *reading);
    }
    std::optional<current_charge> charge;
    if (config::is_additive(meter.kind)) {
      auto c = charges.find(start);
      if (c != charges.end())
        charge = c->second;
    }
    const decimal quantity = aggregate.quantity();
    scope->restore_window(start, std::move(aggregate), latest->aggregation_id, latest->revision,
                          charge, charge ? std::nullopt : std::optional<decimal>(quantity));
  }
  return scope;
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
  std::vector<const config::meter*> meters;
  const std::string metric_list = cl.optional("metrics").value_or("all");
  if (metric_list == "all") {
    for (const auto& m : cfg.meters)
      meters.push_back(&m);
  } else {
    for (const auto& name : split_list(metric_list)) {
      const config::meter* m = cfg.find_meter(name);
      if (!m)
        throw usage_error("--metrics: no meter \"" + name + "\" in the configuration");
      meters.push_back(m);
    }
  }

  std::unique_ptr<persistence::pg_service_lock> service;
  std::unique_ptr<persistence::record_store> records;
  std::vector<std::unique_ptr<persistence::pg_event_store>> stores;
  try {
    // A running service would go on from charges this re-rate supersedes.
    service = persistence::pg_service_lock::try_acquire(cl.required("store"));
    if (!service)
      throw usage_error("--store: a meterflow serve is running on this store; stop it (SIGTERM) "
                        "before a manual re-rate, and start it again afterwards");
    records = persistence::make_pg_record_store(cl.required("store"));
    for (std::uint32_t p = 0; p < partitions; ++p)
      stores.push_back(
          persistence::pg_event_store::load(cl.required("store"), static_cast<int>(p)));
  } catch (const persistence::store_error& e) {
    throw usage_error(std::string("--store: ") + e.what());
  }
  std::set<std::string> customers;
  const std::string customer_list = cl.optional("customers").value_or("all");
  if (customer_list == "all") {
    for (const auto& s : stores)
      for (std::uint32_t i = 0; i < s->size(); ++i)
        customers.insert(s->at(i).customer_id);
  } else {
    for (const auto& c : split_list(customer_list))
      customers.insert(c);
  }
  const timestamp watermark = stored_watermark(cfg, *records, stores);

  persistence::record_batch batch;
  std::vector<comparison> rows;
  for (const std::string& customer : customers) {
    const persistence::event_store& events = *stores[actors::partition_of(customer, partitions)];
    for (pricing::period period = from; period.start <= to.start;
         period = pricing::next_period(period)) {
      actors::invoice_state invoice(cfg, customer, period);
      invoice.restore(records->invoices_of(customer, period));
      const pricing::price_book* book = cfg.price_book_for(customer);
      for (const config::meter& m : cfg.meters) {
        std::set<timestamp> windows;
        auto scope = restore_scope(cfg, *records, events, customer, m, period, windows);
        const bool in_scope =
            std::find(meters.begin(), meters.end(), &m) != meters.end() && !windows.empty();
        if (in_scope) {
          comparison row{customer,
                         m.metric,
                         pricing::period_id(period),
                         book ? book->currency : "",
                         scope->charged(),
                         {},
                         0};
          scope->rerate(actors::end_of_input_step, actors::phase::rerate, windows, watermark);
          row.after = scope->charged();
          actors::stage_output out = scope->take_output();
          row.windows_changed = out.records.charges.size();
          for (auto& k : out.records.aggregates)
            batch.aggregates.push_back(std::move(k.record));
          for (auto& k : out.records.charges)
            batch.charges.push_back(std::move(k.record));
          for (auto& k : out.records.unpriced)
            batch.unpriced.push_back(std::move(k.record));
          rows.push_back(std::move(row));
        }
        invoice.update(scope->lines());
      }
      // A period not issued yet needs no correction: its draft shows the new charges.
      if (invoice.issued()) {
        invoice.settle(actors::end_of_input_step, watermark);
        for (auto& k : invoice.take_output().records.invoices)
          batch.invoices.push_back(std::move(k.record));
      }
    }
  }

  // The comparison, per customer, metric and period, and a total per currency.
  std::map<std::string, std::pair<decimal, decimal>> totals;
  std::cout << std::left << std::setw(16) << "customer" << std::setw(14) << "metric" << std::setw(9)
            << "period" << std::right << std::setw(16) << "before" << std::setw(16) << "after"
            << std::setw(16) << "delta" << std::setw(9) << "windows"
            << "\n";
  for (const auto& r : rows) {
    std::cout << std::left << std::setw(16) << r.customer_id << std::setw(14) << r.metric
              << std::setw(9) << r.period << std::right << std::setw(16) << r.before.to_string()
              << std::setw(16) << r.after.to_string() << std::setw(16)
              << (r.after - r.before).to_string() << std::setw(9) << r.windows_changed << "\n";
    totals[r.currency].first += r.before;
    totals[r.currency].second += r.after;
  }
  for (const auto& [currency, t] : totals)
    std::cout << "total " << currency << ": before " << t.first.to_string() << ", after "
              << t.second.to_string() << ", delta " << (t.second - t.first).to_string() << "\n";

  nlohmann::json scope_json = {{"customers", customer_list},
                               {"metrics", metric_list},
                               {"from", pricing::period_id(from)},
                               {"to", pricing::period_id(to)}};
  nlohmann::json result = nlohmann::json::array();
  for (const auto& r : rows)
    if (r.windows_changed > 0)
      result.push_back({{"customer_id", r.customer_id},
                        {"metric", r.metric},
                        {"period", r.period},
                        {"before", r.before.to_string()},
                        {"after", r.after.to_string()},
                        {"delta", (r.after - r.before).to_string()},
                        {"windows_changed", r.windows_changed}});
  persistence::rerate_run run;
  run.trigger = "manual";
  run.reason = reason;
  run.scope_json = scope_json.dump();
  run.result_json = nlohmann::json{{"changes", result}}.dump();
  for (const auto& c : batch.charges)
    run.superseding_charge_ids.push_back(c.charge_id);
  for (const auto& i : batch.invoices)
    run.correction_invoice_ids.push_back(i.invoice_id);
  run.rerate_run_id =
      persistence::content_id({"rerate_run", run.scope_json, run.reason, run.result_json,
                               std::to_string(records->rerate_runs().size())});

  std::cout << batch.charges.size() << " superseding charges, " << batch.invoices.size()
            << " correction invoices";
  for (const auto& i : batch.invoices)
    std::cout << (&i == &batch.invoices.front() ? ": " : ", ") << i.invoice_id << " ("
              << i.total.to_string() << " " << i.currency << ")";
  std::cout << "\n";
  if (dry_run) {
    std::cout << "dry run: nothing written\n";
    return exit_ok;
  }
  batch.rerate_runs.push_back(std::move(run));
  try {
    records->append(batch);
  } catch (const std::invalid_argument& e) {
    std::cerr << "meterflow rerate: the store refused the re-rate: " << e.what() << "\n";
    return exit_check_failed;
  }
  std::cout << "recorded re-rate run " << batch.rerate_runs.front().rerate_run_id << "\n";
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
