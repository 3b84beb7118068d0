#include "runtime/reconciliation.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <tuple>
#include <vector>

namespace meterflow::runtime {

using pricing::decimal;
using pricing::format_rfc3339;

namespace {

std::string num(std::uint64_t n) {
  return std::to_string(n);
}

} // namespace

void check_list::add_bool(std::string name, bool ok, std::string expected, std::string actual,
                          std::string detail, std::string action) {
  ok_ = ok_ && ok;
  nlohmann::ordered_json j = {{"check", std::move(name)},
                              {"expected", std::move(expected)},
                              {"actual", std::move(actual)},
                              {"ok", ok}};
  if (!ok && !detail.empty())
    j["detail"] = std::move(detail);
  if (!ok && !action.empty())
    j["action"] = std::move(action);
  checks_.push_back(std::move(j));
}

decimal minor_unit(const std::string& currency) {
  decimal::rep units = 1;
  for (int d = pricing::currency_minor_units(currency); d < decimal::scale; ++d)
    units *= 10;
  return decimal::from_units(units).value();
}

reconciliation_report reconcile(const run_sink& sink, const config::configuration& cfg) {
  check_list checks;
  const auto& src = sink.source();
  const auto& part = sink.partitions();
  const chain_totals& t = sink.totals();
  // Whether a scope's meter is additive, looked up once per interned scope (not per window).
  std::vector<std::int8_t> additive_scope(t.scopes.size(), -1);
  auto additive = [&](std::uint32_t scope) {
    auto& known = additive_scope[scope];
    if (known < 0) {
      const config::meter* m = cfg.find_meter(t.scopes[scope].metric);
      known = m && config::is_additive(m->kind) ? 1 : 0;
    }
    return known == 1;
  };

  // 1. Events: accepted = received - duplicates - conflicts - rejected.
  checks.add("accepted = received - duplicates - conflicts - rejected",
             num(src.received - part.duplicates - part.conflicts - src.rejected),
             num(part.accepted));

  // 2. Every metered event feeds the current final aggregate of each of its meters.
  std::uint64_t event_count = 0;
  decimal additive_quantity;
  for (const auto& [key, a] : t.current_aggregates) {
    event_count += a.event_count;
    if (additive(key.scope))
      additive_quantity += a.value;
  }
  checks.add("metered event feeds = sum of event_count over current final aggregates",
             num(part.meter_feeds), num(event_count));

  // 3. Quantities: aggregates = current charges + listed unpriced windows (additive meters).
  decimal charged_quantity;
  using scope_key = std::tuple<std::string, std::string, std::string>; // customer, period, metric
  // Summed by interned scope and period first: one entry per window would build three strings.
  std::map<std::pair<std::uint32_t, pricing::timestamp>, decimal> charged_by_scope;
  for (const auto& [id, c] : t.current_charges) {
    if (additive(c.scope))
      charged_quantity += c.quantity;
    charged_by_scope[{c.scope, c.period_start}] += c.amount;
  }
  std::map<scope_key, decimal> charged_amount;
  std::map<std::string, std::string> currency_of; // customer -> currency
  for (const auto& [key, amount] : charged_by_scope) {
    const chain_totals::scope& s = t.scopes[key.first];
    charged_amount[{s.customer_id, pricing::period_id(pricing::period_of(key.second)), s.metric}] +=
        amount;
    currency_of[s.customer_id] = s.currency;
  }
  decimal unpriced_quantity;
  for (const auto& [key, q] : t.unpriced)
    if (additive(key.scope))
      unpriced_quantity += q;
  checks.add("sum of current aggregate quantities = sum of current charge quantities + unpriced",
             additive_quantity.to_string(), (charged_quantity + unpriced_quantity).to_string());
  checks.add("no charge id twice", "0", num(t.duplicate_charge_ids));
  checks.add_bool("every supersedes_charge_id names a current earlier charge",
                  t.broken_links.empty(), "none missing",
                  t.broken_links.empty() ? "none missing" : "missing", t.broken_links);

  // 4. Invoices: line sums, credits, and per customer/period/metric the charges.
  std::map<scope_key, decimal> invoiced_amount;
  decimal invoice_totals, ledger;
  std::string bad_invoices;
  for (const auto& k : sink.invoices()) {
    const auto& inv = k.record;
    decimal lines;
    for (const auto& l : inv.line_items) {
      lines += l.amount;
      invoiced_amount[{inv.customer_id, pricing::period_id(inv.period), l.metric}] += l.amount;
    }
    if (lines != inv.subtotal || inv.subtotal - inv.credits_applied != inv.total)
      bad_invoices += " " + inv.invoice_id;
    invoice_totals += inv.total;
    ledger += inv.total; // the ledger books each issued invoice's total once
  }
  checks.add_bool("per invoice: sum of lines = subtotal and subtotal - credits = total",
                  bad_invoices.empty(), "all invoices",
                  bad_invoices.empty() ? "all invoices" : "mismatch", bad_invoices);
  std::string mismatched;
  std::set<scope_key> all_scopes;
  for (const auto& [k, v] : charged_amount)
    all_scopes.insert(k);
  for (const auto& [k, v] : invoiced_amount)
    all_scopes.insert(k);
  for (const auto& k : all_scopes) {
    const decimal charged = charged_amount.count(k) ? charged_amount.at(k) : decimal();
    const decimal invoiced = invoiced_amount.count(k) ? invoiced_amount.at(k) : decimal();
    decimal diff = charged - invoiced;
    if (diff.is_negative())
      diff = -diff;
    const auto cur = currency_of.find(std::get<0>(k));
    if (diff >= minor_unit(cur == currency_of.end() ? "USD" : cur->second))
      mismatched += " " + std::get<0>(k) + "/" + std::get<1>(k) + "/" + std::get<2>(k) +
                    " charges " + charged.to_string() + " invoiced " + invoiced.to_string() + ";";
  }
  checks.add_bool("per customer, period, metric: |charges - invoice lines| < one minor unit",
                  mismatched.empty(), "all match", mismatched.empty() ? "all match" : "mismatch",
                  mismatched);
  checks.add("sum of invoice totals = ledger revenue", invoice_totals.to_string(),
             ledger.to_string());

  auto unpriced_list = nlohmann::ordered_json::array();
  for (const auto& u : t.unpriced_listings)
    unpriced_list.push_back(persistence::to_json(u));

  reconciliation_report report;
  report.ok = checks.ok();
  report.json = {{"ok", report.ok},
                 {"counts",
                  {{"received", src.received},
                   {"accepted", part.accepted},
                   {"duplicates", part.duplicates},
                   {"conflicts", part.conflicts},
                   {"rejected", src.rejected},
                   {"metered", part.metered},
                   {"unmetered", part.unmetered},
                   {"late", part.late},
                   {"very_late", part.very_late},
                   {"rerates", part.rerates},
                   {"aggregate_revisions", t.aggregate_revisions},
                   {"charges", t.charges},
                   {"invoices", sink.invoices().size()}}},
                 {"totals",
                  {{"aggregate_quantity", additive_quantity.to_string()},
                   {"charge_quantity", charged_quantity.to_string()},
                   {"invoice_totals", invoice_totals.to_string()},
                   {"ledger_revenue", ledger.to_string()}}},
                 {"checks", checks.take()},
                 {"unpriced_windows", std::move(unpriced_list)}};
  return report;
}

} // namespace meterflow::runtime
