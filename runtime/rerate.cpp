#include "runtime/rerate.hpp"

#include "actors/invoice_state.hpp"
#include "actors/rating_state.hpp"
#include "persistence/ids.hpp"
#include "persistence/pg_store.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

namespace meterflow::runtime {

namespace {

using actors::current_charge;
using pricing::decimal;
using pricing::timestamp;

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

// What the store holds of one customer x metric x period: the latest final aggregate revision
// of each window and the charges in force, by window start.
struct stored_scope {
  std::map<timestamp, persistence::aggregate_record> finals;
  std::map<timestamp, current_charge> charges;
};

// The stored records of every scope of the re-rate, read period by period in a few queries
// (one per period for every customer, or one per customer and period for a list), not one per
// window: by (customer, metric, period start), and the invoices by (customer, period start).
struct stored_records {
  std::map<std::tuple<std::string, std::string, timestamp>, stored_scope> scopes;
  std::map<std::pair<std::string, timestamp>, std::vector<persistence::invoice_record>> invoices;

  void add(persistence::pg_record_reader::rerate_inputs&& in, timestamp period_start) {
    for (auto& a : in.final_aggregates) {
      const timestamp start = a.window_start;
      scopes[{a.customer_id, a.metric, period_start}].finals.emplace(start, std::move(a));
    }
    for (const auto& c : in.current_charges)
      scopes[{c.customer_id, c.metric, period_start}].charges[c.window_start] =
          actors::current_charge_of(c);
    for (auto& i : in.invoices)
      invoices[{i.customer_id, period_start}].push_back(std::move(i));
  }
  const stored_scope& scope(const std::string& customer, const std::string& metric,
                            timestamp period_start) const {
    static const stored_scope none;
    auto it = scopes.find({customer, metric, period_start});
    return it == scopes.end() ? none : it->second;
  }
};

// One customer x metric x period as the store holds it, ready to re-rate.
std::unique_ptr<actors::rating_state>
restore_scope(const config::configuration& cfg, const stored_scope& stored,
              const persistence::event_store& events, const std::string& customer,
              const config::meter& meter, const pricing::period& period,
              std::set<timestamp>& windows) {
  auto scope = std::make_unique<actors::rating_state>(cfg, events, customer, meter, period);
  std::map<std::string_view, persistence::event_view> by_id;
  for (std::uint32_t index : events.events_of(customer)) {
    const persistence::event_view e = events.at(index);
    if (e.event_type != meter.event_type || e.event_time < period.start ||
        e.event_time >= period.end)
      continue;
    by_id[e.event_id] = e;
    windows.insert(pricing::window_start(e.event_time, cfg.window_size));
  }
  const std::map<timestamp, current_charge>& charges = stored.charges;
  if (!config::is_additive(meter.kind)) {
    auto it = charges.find(period.start);
    if (it != charges.end())
      scope->restore_period_charge(it->second); // period-level meters: the period's charge
  }
  for (timestamp start : windows) {
    const auto found = stored.finals.find(start);
    if (found == stored.finals.end())
      continue; // never final: a very late event the engine has not re-rated yet
    const persistence::aggregate_record* latest = &found->second;
    actors::window_aggregate aggregate(meter.kind);
    for (const auto& id : latest->event_ids) {
      auto e = by_id.find(id);
      if (e == by_id.end())
        throw persistence::store_error("aggregate " + latest->aggregation_id + " names event " +
                                       id + ", which is not in the store");
      auto reading = actors::read_meter(meter, e->second);
      if (reading)
        aggregate.add(e->second, *reading);
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

std::string list_or_all(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : ",") + item;
  return out.empty() ? "all" : out;
}

} // namespace

nlohmann::json to_json(const rerate_comparison& c) {
  return {{"customer_id", c.customer_id},
          {"metric", c.metric},
          {"period", c.period},
          {"before", c.before.to_string()},
          {"after", c.after.to_string()},
          {"delta", (c.after - c.before).to_string()},
          {"windows_changed", c.windows_changed}};
}

rerate_outcome rerate(const config::configuration& cfg, const rerate_spec& spec) {
  if (spec.to < spec.from)
    throw std::invalid_argument("the scope ends (" + pricing::period_id(spec.to) +
                                ") before it starts (" + pricing::period_id(spec.from) + ")");
  if (spec.reason.empty())
    throw std::invalid_argument("a re-rate needs a reason");
  std::vector<const config::meter*> meters;
  for (const auto& m : cfg.meters)
    if (spec.metrics.empty())
      meters.push_back(&m);
  for (const auto& name : spec.metrics) {
    const config::meter* m = cfg.find_meter(name);
    if (!m)
      throw std::invalid_argument("no meter \"" + name + "\" in the configuration");
    meters.push_back(m);
  }

  auto records = persistence::make_pg_record_store(spec.store_url);
  std::vector<std::unique_ptr<persistence::pg_event_store>> stores;
  for (std::uint32_t p = 0; p < spec.partitions; ++p)
    stores.push_back(persistence::pg_event_store::load(spec.store_url, static_cast<int>(p)));
  std::set<std::string> customers(spec.customers.begin(), spec.customers.end());
  if (spec.customers.empty())
    for (const auto& s : stores)
      for (std::uint32_t i = 0; i < s->size(); ++i)
        customers.emplace(s->at(i).customer_id);
  const timestamp watermark = stored_watermark(cfg, *records, stores);
  stored_records stored;
  {
    const auto reader = persistence::pg_record_reader::connect(spec.store_url);
    for (pricing::period period = spec.from; period.start <= spec.to.start;
         period = pricing::next_period(period)) {
      if (spec.customers.empty())
        stored.add(reader->rerate_inputs_of(std::nullopt, period), period.start);
      else
        for (const std::string& customer : customers)
          stored.add(reader->rerate_inputs_of(customer, period), period.start);
    }
  }

  rerate_outcome outcome;
  persistence::record_batch batch;
  for (const std::string& customer : customers) {
    const persistence::event_store& events =
        *stores[actors::partition_of(customer, spec.partitions)];
    for (pricing::period period = spec.from; period.start <= spec.to.start;
         period = pricing::next_period(period)) {
      actors::invoice_state invoice(cfg, customer, period);
      if (auto it = stored.invoices.find({customer, period.start}); it != stored.invoices.end())
        invoice.restore(it->second);
      const pricing::price_book* book = cfg.price_book_for(customer);
      for (const config::meter& m : cfg.meters) {
        std::set<timestamp> windows;
        auto scope = restore_scope(cfg, stored.scope(customer, m.metric, period.start), events,
                                   customer, m, period, windows);
        const bool in_scope =
            std::find(meters.begin(), meters.end(), &m) != meters.end() && !windows.empty();
        if (in_scope) {
          rerate_comparison row{customer,
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
          outcome.totals[row.currency].first += row.before;
          outcome.totals[row.currency].second += row.after;
          outcome.comparisons.push_back(std::move(row));
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

  nlohmann::json scope_json = {{"customers", list_or_all(spec.customers)},
                               {"metrics", list_or_all(spec.metrics)},
                               {"from", pricing::period_id(spec.from)},
                               {"to", pricing::period_id(spec.to)}};
  nlohmann::json result = nlohmann::json::array();
  for (const auto& r : outcome.comparisons)
    if (r.windows_changed > 0)
      result.push_back(to_json(r));
  persistence::rerate_run run;
  run.trigger = "manual";
  run.reason = spec.reason;
  run.scope_json = scope_json.dump();
  run.result_json = nlohmann::json{{"changes", result}}.dump();
  for (const auto& c : batch.charges)
    run.superseding_charge_ids.push_back(c.charge_id);
  for (const auto& i : batch.invoices)
    run.correction_invoice_ids.push_back(i.invoice_id);
  run.rerate_run_id =
      persistence::content_id({"rerate_run", run.scope_json, run.reason, run.result_json,
                               std::to_string(records->rerate_runs().size())});
  outcome.rerate_run_id = run.rerate_run_id;
  if (!spec.dry_run) {
    batch.rerate_runs.push_back(std::move(run));
    try {
      records->append(batch);
      outcome.recorded = true;
    } catch (const std::invalid_argument& e) {
      outcome.refused = e.what();
    }
  }
  outcome.superseding_charges = std::move(batch.charges);
  outcome.correction_invoices = std::move(batch.invoices);
  return outcome;
}

} // namespace meterflow::runtime
