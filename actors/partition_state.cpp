#include "actors/partition_state.hpp"

#include "persistence/ids.hpp"

#include <algorithm>
#include <xxhash.h>

namespace meterflow::actors {

using persistence::aggregate_kind;
using persistence::aggregate_record;
using persistence::charge_record;
using persistence::charge_trigger;
using pricing::format_rfc3339;

namespace {

// floor(a / b) for the watermark's correction-interval test; -infinity maps below everything.
timestamp floor_div(timestamp a, timestamp b) {
  if (a == watermark_min)
    return watermark_min;
  if (a == watermark_max)
    return watermark_max;
  timestamp q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

// `t + d` saturating at the watermark's +infinity.
timestamp plus(timestamp t, pricing::duration d) {
  return t > watermark_max - d ? watermark_max : t + d;
}

} // namespace

std::uint32_t partition_of(const std::string& customer_id, std::uint32_t partitions) {
  return static_cast<std::uint32_t>(XXH3_64bits(customer_id.data(), customer_id.size()) %
                                    partitions);
}

struct partition_state::impl {
  impl(const config::configuration& c, persistence::event_store& s, partition_state& o)
      : cfg(c), store(s), owner(o) {}

  const config::configuration& cfg;
  persistence::event_store& store;
  partition_state& owner;
  partition_output out;
  std::uint64_t emit_seq = 0;
  std::uint64_t step = 0; // the step being processed

  // The current charge of a window (or of a period, for period-level meters).
  struct current_charge {
    std::string charge_id;
    decimal quantity;
    decimal amount;
    pricing::rounding_mode rounding = pricing::rounding_mode::half_even;
  };

  struct final_window {
    window_aggregate aggregate;
    std::string aggregation_id;
    std::uint32_t revision = 0;
    std::optional<current_charge> charge;
    std::optional<decimal> unpriced_quantity; // the quantity it is listed with when unpriced
  };

  struct invoice_scope;

  // Customer x metric x period: the final windows, the running cumulative quantity and the
  // charges in force.
  struct period_scope {
    const config::meter* meter = nullptr;
    std::string customer_id;
    pricing::period period;
    std::map<timestamp, final_window> windows; // by window start
    decimal cumulative;
    bool closed = false; // period-level meters: rated at period close
    std::optional<current_charge> period_charge;
    std::optional<decimal> period_unpriced_quantity;
    std::string period_aggregation_id;
    invoice_scope* invoice = nullptr;
  };

  // Customer x period: the invoice accumulator.
  struct invoice_scope {
    std::string customer_id;
    pricing::period period;
    std::map<std::string, period_scope*> metrics;
    bool issued = false;
    int corrections = 0;
    struct billed_line {
      decimal quantity;
      decimal amount;
      std::set<std::string> charge_ids; // the charges behind what was billed
    };
    std::map<std::string, billed_line> billed;
    decimal billed_subtotal, billed_credits, billed_total;
  };

  struct open_window {
    std::string customer_id;
    const config::meter* meter = nullptr;
    timestamp start = 0;
    timestamp end = 0;
    window_aggregate aggregate;
    std::uint32_t revisions = 0; // aggregate revisions emitted so far
    bool closed = false;
    bool dirty = false; // changed since its last provisional emission
  };

  using window_key = std::tuple<std::string, std::string, timestamp>; // customer, metric, start
  std::map<window_key, std::unique_ptr<open_window>> windows;
  std::multimap<timestamp, open_window*> to_close;    // by end
  std::multimap<timestamp, open_window*> to_finalize; // by end + lateness
  std::vector<open_window*> dirty_closing;

  using scope_key = std::tuple<std::string, std::string, timestamp>; // customer, metric, period
  std::map<scope_key, std::unique_ptr<period_scope>> scopes;
  std::multimap<timestamp, period_scope*> period_close; // period-level meters, by end + L
  using invoice_key = std::pair<std::string, timestamp>;
  std::map<invoice_key, std::unique_ptr<invoice_scope>> invoices;
  std::multimap<timestamp, invoice_scope*> invoice_due; // by period end + L
  // Scopes marked by very late events, with the windows those events fell into: only those
  // windows can differ from their final aggregate (a final window takes no other events).
  std::map<rerate_scope, std::set<timestamp>> dirty_scopes;

  std::vector<std::pair<std::uint64_t, std::uint32_t>> pending; // (seq, store index) to apply

  // --- emission ------------------------------------------------------------------------

  order_key key(phase p, timestamp t, const std::string& customer, const std::string& metric) {
    return order_key{step, p, t, customer, metric, emit_seq++};
  }

  std::string aggregation_id(const std::string& customer, const std::string& metric,
                             timestamp start, std::uint32_t revision) {
    return persistence::content_id(
        {"aggregate", customer, metric, format_rfc3339(start), std::to_string(revision)});
  }

  aggregate_record make_aggregate(const std::string& customer, const std::string& metric,
                                  timestamp start, timestamp end, std::uint32_t revision,
                                  aggregate_kind kind, const window_aggregate& agg) {
    aggregate_record r;
    r.aggregation_id = aggregation_id(customer, metric, start, revision);
    r.customer_id = customer;
    r.metric = metric;
    r.window_start = start;
    r.window_end = end;
    r.revision = revision;
    r.kind = kind;
    r.is_final = kind != aggregate_kind::provisional;
    r.value = agg.quantity();
    r.event_count = agg.event_count();
    r.event_ids = agg.sorted_event_ids();
    return r;
  }

  // Emits an aggregate revision and returns its id.
  std::string emit_aggregate(phase p, timestamp order_t, aggregate_record&& r) {
    std::string id = r.aggregation_id;
    out.aggregates.push_back({key(p, order_t, r.customer_id, r.metric), std::move(r)});
    return id;
  }

  // --- scopes ----------------------------------------------------------------------------

  invoice_scope& invoice_for(const std::string& customer, const pricing::period& period) {
    auto& slot = invoices[{customer, period.start}];
    if (!slot) {
      slot = std::make_unique<invoice_scope>();
      slot->customer_id = customer;
      slot->period = period;
      invoice_due.emplace(plus(period.end, cfg.allowed_lateness), slot.get());
    }
    return *slot;
  }

  period_scope& scope_for(const std::string& customer, const config::meter& m,
                          const pricing::period& period) {
    auto& slot = scopes[{customer, m.metric, period.start}];
    if (!slot) {
      slot = std::make_unique<period_scope>();
      slot->meter = &m;
      slot->customer_id = customer;
      slot->period = period;
      slot->invoice = &invoice_for(customer, period);
      slot->invoice->metrics[m.metric] = slot.get();
      if (!config::is_additive(m.kind))
        period_close.emplace(plus(period.end, cfg.allowed_lateness), slot.get());
    }
    return *slot;
  }

  // --- rating ----------------------------------------------------------------------------

  struct rated {
    std::optional<pricing::charge_explanation> charge;
    pricing::unpriced_reason reason = pricing::unpriced_reason::none;
    std::string price_book_id;
  };

  rated rate(const std::string& customer, const std::string& metric, timestamp window_start,
             decimal before, decimal after) {
    rated r;
    const pricing::price_book* book = cfg.price_book_for(customer);
    if (book)
      r.price_book_id = book->id;
    const auto found = pricing::lookup_price(book, metric, window_start);
    r.reason = found.reason;
    if (found.reason == pricing::unpriced_reason::none)
      r.charge =
          pricing::rate_increment(*book, *found.version, *found.model, before, after).value();
    return r;
  }

  // Emits a charge (or an unpriced window) for a window or a period and makes it current.
  // With `only_if_changed` (re-rating), nothing is emitted when quantity and amount are those of
  // the current charge. An unpriced window is listed again only when its quantity changed (a
  // re-rate may also bring a window that was never rated), so the last listing always holds
  // the quantity reconciliation expects.
  // `source_ids()` gives the charge's source event ids; it runs only when a charge is emitted.
  template <class SourceIds>
  void emit_rating(phase p, timestamp order_t, period_scope& scope, timestamp start, timestamp end,
                   const std::string& aggregation_id, SourceIds&& source_ids, decimal quantity,
                   rated&& r, charge_trigger trigger, std::optional<current_charge>& current,
                   std::optional<decimal>& unpriced_quantity, bool only_if_changed) {
    if (!r.charge) {
      if (unpriced_quantity == quantity)
        return; // listed with this quantity already
      unpriced_quantity = quantity;
      persistence::unpriced_window u;
      u.customer_id = scope.customer_id;
      u.metric = scope.meter->metric;
      u.window_start = start;
      u.window_end = end;
      u.quantity = quantity;
      u.reason = r.reason;
      u.price_book_id = r.price_book_id;
      out.unpriced.push_back({key(p, order_t, u.customer_id, u.metric), std::move(u)});
      return;
    }
    if (only_if_changed && current && current->quantity == quantity &&
        current->amount == r.charge->amount)
      return;
    charge_record c;
    c.customer_id = scope.customer_id;
    c.metric = scope.meter->metric;
    c.window_start = start;
    c.window_end = end;
    c.aggregation_id = aggregation_id;
    c.quantity = quantity;
    c.trigger = trigger;
    if (current)
      c.supersedes_charge_id = current->charge_id;
    c.charge_id = persistence::content_id({"charge", c.customer_id, c.metric, format_rfc3339(start),
                                           c.supersedes_charge_id.value_or("")});
    c.calculation = std::move(*r.charge);
    c.source_event_ids = source_ids();
    c.source_event_count = c.source_event_ids.size();
    current = current_charge{c.charge_id, quantity, c.amount(), c.calculation.rounding};
    out.charges.push_back({key(p, order_t, c.customer_id, c.metric), std::move(c)});
  }

  // A final window enters its period scope and, for additive meters, is rated.
  void finalize_window(open_window& w) {
    const std::string& metric = w.meter->metric;
    const std::uint32_t revision = w.revisions++;
    std::string id = emit_aggregate(phase::finalize, w.end,
                                    make_aggregate(w.customer_id, metric, w.start, w.end, revision,
                                                   aggregate_kind::final, w.aggregate));
    period_scope& scope = scope_for(w.customer_id, *w.meter, pricing::period_of(w.start));
    final_window& fw =
        scope.windows.emplace(w.start, final_window{std::move(w.aggregate), {}, revision, {}, {}})
            .first->second;
    fw.aggregation_id = std::move(id);
    if (!config::is_additive(w.meter->kind))
      return;
    const decimal q = fw.aggregate.quantity();
    const decimal after = scope.cumulative + q;
    emit_rating(
        phase::finalize, w.end, scope, w.start, w.end, fw.aggregation_id,
        [&] { return fw.aggregate.sorted_event_ids(); }, q,
        rate(w.customer_id, metric, w.start, scope.cumulative, after), charge_trigger::window_final,
        fw.charge, fw.unpriced_quantity, false);
    scope.cumulative = after;
  }

  // Period-level meters: one charge per period on the period quantity, rated with the version
  // of the period's last window.
  void rate_period(phase p, period_scope& scope, charge_trigger trigger, bool only_if_changed) {
    std::vector<const window_aggregate*> aggs;
    std::uint64_t event_count = 0;
    for (auto& [start, fw] : scope.windows) {
      aggs.push_back(&fw.aggregate);
      event_count += fw.aggregate.event_count();
    }
    auto sources = [&] {
      std::vector<std::string> ids;
      for (auto& [start, fw] : scope.windows)
        for (auto& id : fw.aggregate.sorted_event_ids())
          ids.push_back(std::move(id));
      return ids;
    };
    const decimal q = window_aggregate::period_quantity(scope.meter->kind, aggs);
    scope.period_aggregation_id = persistence::content_id(
        {"period_aggregate", scope.customer_id, scope.meter->metric,
         format_rfc3339(scope.period.start), std::to_string(event_count), q.to_string()});
    const timestamp last_window = scope.period.end - cfg.window_size;
    emit_rating(p, scope.period.end, scope, scope.period.start, scope.period.end,
                scope.period_aggregation_id, sources, q,
                rate(scope.customer_id, scope.meter->metric, last_window, decimal(), q), trigger,
                scope.period_charge, scope.period_unpriced_quantity, only_if_changed);
    scope.closed = true;
  }

  // --- events and watermark ------------------------------------------------------------

  void add_event(std::uint32_t index) {
    const persistence::event& e = store.at(index);
    const timestamp start = pricing::window_start(e.event_time, cfg.window_size);
    const timestamp end = start + cfg.window_size;
    const bool very_late = owner.watermark_ >= plus(end, cfg.allowed_lateness);
    bool metered = false;
    for (const config::meter& m : cfg.meters) {
      if (m.event_type != e.event_type)
        continue;
      auto reading = read_meter(m, e);
      if (!reading)
        continue;
      metered = true;
      ++owner.counters_.meter_feeds;
      if (very_late) {
        dirty_scopes[{e.customer_id, m.metric, pricing::period_of(e.event_time).start}].insert(
            start);
        continue;
      }
      auto& slot = windows[{e.customer_id, m.metric, start}];
      if (!slot) {
        slot = std::make_unique<open_window>(
            open_window{e.customer_id, &m, start, end, window_aggregate(m.kind), 0, false, false});
        to_close.emplace(end, slot.get());
        to_finalize.emplace(plus(end, cfg.allowed_lateness), slot.get());
      }
      slot->aggregate.add(e, *reading);
      if (slot->closed && !slot->dirty) {
        slot->dirty = true;
        dirty_closing.push_back(slot.get());
      }
    }
    if (!metered) {
      ++owner.counters_.unmetered;
      return;
    }
    ++owner.counters_.metered;
    if (very_late)
      ++owner.counters_.very_late;
    else if (owner.watermark_ >= end)
      ++owner.counters_.late;
  }

  void advance(std::uint64_t step_seq, timestamp to) {
    const timestamp from = owner.watermark_;
    if (to <= from)
      return;
    step = step_seq;
    owner.watermark_ = to;
    // (1) Windows entering closing emit a provisional aggregate; closing windows that took
    // stragglers emit an updated one.
    while (!to_close.empty() && to_close.begin()->first <= to) {
      open_window* w = to_close.begin()->second;
      to_close.erase(to_close.begin());
      w->closed = true;
      w->dirty = true;
      dirty_closing.push_back(w);
    }
    if (!dirty_closing.empty()) {
      for (open_window* w : dirty_closing) {
        w->dirty = false;
        if (plus(w->end, cfg.allowed_lateness) <= to)
          continue; // finalizes below
        emit_aggregate(phase::provisional, w->end,
                       make_aggregate(w->customer_id, w->meter->metric, w->start, w->end,
                                      w->revisions++, aggregate_kind::provisional, w->aggregate));
      }
      dirty_closing.clear();
    }
    // (2) Final windows are rated, in window order; then period-level meters of closed periods.
    while (!to_finalize.empty() && to_finalize.begin()->first <= to) {
      open_window* w = to_finalize.begin()->second;
      to_finalize.erase(to_finalize.begin());
      finalize_window(*w);
      windows.erase({w->customer_id, w->meter->metric, w->start});
    }
    while (!period_close.empty() && period_close.begin()->first <= to) {
      period_scope* scope = period_close.begin()->second;
      period_close.erase(period_close.begin());
      if (!scope->closed)
        rate_period(phase::finalize, *scope, charge_trigger::period_close, false);
    }
    // (3) Pending re-rates when the watermark crosses a correction interval.
    if (floor_div(from, cfg.correction_interval) < floor_div(to, cfg.correction_interval))
      run_rerates(phase::rerate, [](const rerate_scope&) { return true; });
    // (4) Invoices of periods that became final, after their pending re-rates.
    std::vector<invoice_scope*> due;
    while (!invoice_due.empty() && invoice_due.begin()->first <= to) {
      due.push_back(invoice_due.begin()->second);
      invoice_due.erase(invoice_due.begin());
    }
    if (!due.empty()) {
      std::set<std::pair<std::string, timestamp>> due_keys;
      for (invoice_scope* inv : due)
        due_keys.insert({inv->customer_id, inv->period.start});
      run_rerates(phase::period_rerate, [&](const rerate_scope& s) {
        return due_keys.count({s.customer_id, s.period_start}) > 0;
      });
      for (invoice_scope* inv : due)
        if (!inv->issued)
          issue_invoice(*inv);
    }
  }

  // --- re-rating (SEMANTICS §7) ----------------------------------------------------------

  template <class Filter>
  void run_rerates(phase p, Filter wanted) {
    std::vector<std::pair<rerate_scope, std::set<timestamp>>> batch;
    for (auto it = dirty_scopes.begin(); it != dirty_scopes.end();) {
      if (wanted(it->first)) {
        batch.emplace_back(it->first, std::move(it->second));
        it = dirty_scopes.erase(it);
      } else {
        ++it;
      }
    }
    if (batch.empty())
      return;
    std::set<invoice_scope*> touched;
    for (const auto& [scope, windows] : batch)
      touched.insert(rerate(p, scope, windows));
    for (invoice_scope* inv : touched)
      settle_after_rerate(*inv);
  }

  // Re-aggregates a scope's `changed` final windows from the raw events, re-rates all its final
  // windows in window order with the price books as configured now, and supersedes the charges
  // that changed.
  invoice_scope* rerate(phase p, const rerate_scope& s, const std::set<timestamp>& changed) {
    ++owner.counters_.rerates;
    const config::meter& m = *cfg.find_meter(s.metric);
    const pricing::period period = pricing::period_of(s.period_start);
    period_scope& scope = scope_for(s.customer_id, m, period);
    const timestamp wm = owner.watermark_;

    std::map<timestamp, window_aggregate> fresh;
    for (std::uint32_t index : store.events_of(s.customer_id)) {
      // admit() stores a whole batch before apply() reaches its later events: the re-rate sees
      // the input up to the step that runs it, whatever the batch size or a restore replays.
      if (store.source_position(index) > step)
        continue;
      const persistence::event& e = store.at(index);
      if (e.event_type != m.event_type || e.event_time < period.start || e.event_time >= period.end)
        continue;
      const timestamp start = pricing::window_start(e.event_time, cfg.window_size);
      if (!changed.count(start))
        continue;
      if (plus(start + cfg.window_size, cfg.allowed_lateness) > wm)
        continue; // not final yet: the window stage owns it
      auto reading = read_meter(m, e);
      if (!reading)
        continue;
      fresh.try_emplace(start, m.kind).first->second.add(e, *reading);
    }
    for (auto& [start, agg] : fresh) {
      auto it = scope.windows.find(start);
      if (it != scope.windows.end() && it->second.aggregate.same_content(agg))
        continue;
      const std::uint32_t revision = it == scope.windows.end() ? 0 : it->second.revision + 1;
      std::string id =
          emit_aggregate(p, period.start,
                         make_aggregate(s.customer_id, m.metric, start, start + cfg.window_size,
                                        revision, aggregate_kind::reaggregated, agg));
      if (it == scope.windows.end())
        it = scope.windows.emplace(start, final_window{window_aggregate(m.kind), {}, 0, {}, {}})
                 .first;
      it->second.aggregate = std::move(agg);
      it->second.revision = revision;
      it->second.aggregation_id = std::move(id);
    }
    if (config::is_additive(m.kind)) {
      decimal cumulative;
      for (auto& [start, fw] : scope.windows) {
        const decimal q = fw.aggregate.quantity();
        const decimal after = cumulative + q;
        emit_rating(
            p, period.start, scope, start, start + cfg.window_size, fw.aggregation_id,
            [&] { return fw.aggregate.sorted_event_ids(); }, q,
            rate(s.customer_id, m.metric, start, cumulative, after), charge_trigger::rerate,
            fw.charge, fw.unpriced_quantity, true);
        cumulative = after;
      }
      scope.cumulative = cumulative;
    } else if (scope.closed || plus(period.end, cfg.allowed_lateness) <= wm) {
      rate_period(p, scope, charge_trigger::rerate, scope.closed);
    }
    return scope.invoice;
  }

  // --- invoices (SEMANTICS §6-§7) ---------------------------------------------------------

  struct invoice_totals {
    std::map<std::string, persistence::invoice_line> lines; // by metric
    std::string currency;
    decimal subtotal, credits, total;
    std::vector<std::string> credit_reasons;
    bool has_charge = false;
  };

  invoice_totals compute(const invoice_scope& inv) {
    invoice_totals t;
    const pricing::price_book* book = cfg.price_book_for(inv.customer_id);
    t.currency = book ? book->currency : "";
    const int digits = pricing::currency_minor_units(t.currency);
    for (const auto& [metric, scope] : inv.metrics) {
      persistence::invoice_line line;
      line.metric = metric;
      decimal sum;
      std::optional<pricing::rounding_mode> mode;
      bool any = false;
      auto take = [&](const std::optional<current_charge>& c) {
        if (!c)
          return;
        any = true;
        sum += c->amount;
        mode = c->rounding; // the latest current charge's version decides the rounding
        line.charge_ids.push_back(c->charge_id);
      };
      if (config::is_additive(scope->meter->kind)) {
        for (const auto& [start, fw] : scope->windows) {
          line.quantity += fw.aggregate.quantity();
          take(fw.charge);
        }
      } else {
        take(scope->period_charge);
        if (scope->period_charge)
          line.quantity = scope->period_charge->quantity;
      }
      if (!any)
        continue;
      t.has_charge = true;
      line.amount = sum.round(digits, mode.value_or(pricing::rounding_mode::half_even)).value();
      t.subtotal += line.amount;
      t.lines.emplace(metric, std::move(line));
    }
    decimal credits;
    if (const config::customer* c = cfg.find_customer(inv.customer_id))
      for (const auto& cr : c->credits)
        if (cr.period == inv.period) {
          credits += cr.amount;
          t.credit_reasons.push_back(cr.reason);
        }
    const decimal ceiling = t.subtotal.is_negative() ? decimal() : t.subtotal;
    t.credits = credits < ceiling ? credits : ceiling;
    t.total = t.subtotal - t.credits;
    return t;
  }

  persistence::invoice_record invoice_header(const invoice_scope& inv, const invoice_totals& t,
                                             std::string id) {
    persistence::invoice_record r;
    r.invoice_id = std::move(id);
    r.customer_id = inv.customer_id;
    r.period = inv.period;
    r.currency = t.currency;
    r.status = "issued";
    r.credit_reasons = t.credit_reasons;
    return r;
  }

  std::string standard_invoice_id(const invoice_scope& inv) {
    return "inv_" + inv.customer_id + "_" + pricing::period_id(inv.period);
  }

  void emit_invoice(persistence::invoice_record&& r) {
    out.invoices.push_back({key(phase::invoice, r.period.start, r.customer_id, ""), std::move(r)});
  }

  void remember_billed(invoice_scope& inv, const invoice_totals& t) {
    inv.billed.clear();
    for (const auto& [metric, line] : t.lines)
      inv.billed[metric] = {
          line.quantity, line.amount, {line.charge_ids.begin(), line.charge_ids.end()}};
    inv.billed_subtotal = t.subtotal;
    inv.billed_credits = t.credits;
    inv.billed_total = t.total;
  }

  void issue_invoice(invoice_scope& inv) {
    invoice_totals t = compute(inv);
    if (!t.has_charge)
      return; // no charge, no invoice; a later re-rate may still bring one
    persistence::invoice_record r = invoice_header(inv, t, standard_invoice_id(inv));
    for (auto& [metric, line] : t.lines) {
      line.line_item_id = persistence::content_id({"line", r.invoice_id, metric});
      r.line_items.push_back(line);
    }
    r.subtotal = t.subtotal;
    r.credits_applied = t.credits;
    r.total = t.total;
    inv.issued = true;
    remember_billed(inv, t);
    emit_invoice(std::move(r));
  }

  // After a re-rate: a correction for an issued period whose rounded amounts changed, or the
  // standard invoice of a final period that had none.
  void settle_after_rerate(invoice_scope& inv) {
    if (!inv.issued) {
      if (plus(inv.period.end, cfg.allowed_lateness) <= owner.watermark_)
        issue_invoice(inv);
      return;
    }
    invoice_totals t = compute(inv);
    persistence::invoice_record r = invoice_header(
        inv, t, standard_invoice_id(inv) + "_c" + std::to_string(inv.corrections + 1));
    r.type = persistence::invoice_type::correction;
    r.corrects_invoice_id = standard_invoice_id(inv);
    for (auto& [metric, line] : t.lines) {
      const auto billed = inv.billed.find(metric);
      const decimal billed_amount = billed == inv.billed.end() ? decimal() : billed->second.amount;
      const decimal billed_quantity =
          billed == inv.billed.end() ? decimal() : billed->second.quantity;
      if (line.amount == billed_amount)
        continue;
      persistence::invoice_line delta = line;
      delta.amount = line.amount - billed_amount;
      delta.quantity = line.quantity - billed_quantity;
      // The charges this correction bills: those that are current now and were not billed.
      if (billed != inv.billed.end())
        std::erase_if(delta.charge_ids,
                      [&](const std::string& id) { return billed->second.charge_ids.count(id); });
      delta.line_item_id = persistence::content_id({"line", r.invoice_id, metric});
      r.line_items.push_back(std::move(delta));
    }
    if (r.line_items.empty())
      return; // no change, no document
    r.subtotal = t.subtotal - inv.billed_subtotal;
    r.credits_applied = t.credits - inv.billed_credits;
    r.total = t.total - inv.billed_total;
    ++inv.corrections;
    remember_billed(inv, t);
    emit_invoice(std::move(r));
  }
};

partition_state::partition_state(const config::configuration& cfg, persistence::event_store& store)
    : impl_(std::make_unique<impl>(cfg, store, *this)) {}

partition_state::~partition_state() = default;

std::vector<persistence::append_outcome>
partition_state::admit(std::vector<sequenced_event>&& events) {
  std::vector<persistence::event> batch;
  std::vector<std::uint64_t> positions;
  batch.reserve(events.size());
  positions.reserve(events.size());
  for (sequenced_event& se : events) {
    batch.push_back(std::move(se.event));
    positions.push_back(se.seq);
  }
  auto& store = impl_->store;
  // Accepted events are appended in order, after everything stored before.
  auto next_index = static_cast<std::uint32_t>(store.size());
  std::vector<persistence::append_outcome> outcomes =
      store.append_batch(std::move(batch), positions);
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    switch (outcomes[i]) {
    case persistence::append_outcome::accepted:
      ++counters_.accepted;
      impl_->pending.emplace_back(positions[i], next_index++);
      break;
    case persistence::append_outcome::replayed:
      // Stored before a restart, not yet processed: it goes through the engine again.
      impl_->pending.emplace_back(positions[i], *store.index_at(positions[i]));
      break;
    case persistence::append_outcome::duplicate:
      ++counters_.duplicates;
      break;
    case persistence::append_outcome::conflict:
      ++counters_.conflicts;
      break;
    }
  }
  return outcomes;
}

void partition_state::apply(const std::vector<watermark_step>& steps) {
  size_t next_step = 0;
  for (const auto& [seq, index] : impl_->pending) {
    while (next_step < steps.size() && steps[next_step].seq < seq) {
      impl_->advance(steps[next_step].seq, steps[next_step].watermark);
      ++next_step;
    }
    impl_->add_event(index);
  }
  for (; next_step < steps.size(); ++next_step)
    impl_->advance(steps[next_step].seq, steps[next_step].watermark);
  impl_->pending.clear();
}

void partition_state::finish() {
  impl_->advance(end_of_input_step, watermark_max);
  // Whatever is still dirty (its period's invoice was issued earlier) runs now.
  impl_->step = end_of_input_step;
  impl_->run_rerates(phase::rerate, [](const rerate_scope&) { return true; });
}

void partition_state::restore(const std::vector<watermark_step>& history,
                              std::uint64_t applied_upto, bool queue_later_events) {
  auto& store = impl_->store;
  for (std::uint32_t i = 0; i < store.size(); ++i)
    if (store.source_position(i) <= applied_upto)
      impl_->pending.emplace_back(store.source_position(i), i);
  apply(history);
  impl_->out = {}; // already delivered before the crash
  counters_.accepted = store.size();
  if (!queue_later_events)
    return;
  for (std::uint32_t i = 0; i < store.size(); ++i)
    if (store.source_position(i) > applied_upto)
      impl_->pending.emplace_back(store.source_position(i), i);
}

partition_output partition_state::take_output() {
  partition_output o = std::move(impl_->out);
  impl_->out = {};
  return o;
}

std::size_t partition_state::open_windows() const {
  return impl_->windows.size();
}

} // namespace meterflow::actors
