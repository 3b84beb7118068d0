#include "actors/partition_actor.hpp"

#include "actors/invoice_actor.hpp"
#include "actors/rating_actor.hpp"
#include "actors/window_actor.hpp"
#include "persistence/ids.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace meterflow::actors {

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

} // namespace

// --- admit: deduplicate and store ---------------------------------------------------------

std::vector<persistence::append_outcome>
partition_actor_state::admit(std::vector<sequenced_event>&& events) {
  std::vector<persistence::event> batch;
  std::vector<std::uint64_t> positions;
  batch.reserve(events.size());
  positions.reserve(events.size());
  for (sequenced_event& se : events) {
    batch.push_back(std::move(se.event));
    positions.push_back(se.seq);
  }
  // Accepted events are appended in order, after everything stored before.
  auto next_index = static_cast<std::uint32_t>(store->size());
  std::vector<persistence::append_outcome> outcomes =
      store->append_batch(std::move(batch), positions);
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    switch (outcomes[i]) {
    case persistence::append_outcome::accepted:
      ++counters.accepted;
      pending.emplace_back(positions[i], next_index++);
      break;
    case persistence::append_outcome::replayed:
      // Stored before a restart, not yet processed: it goes through the engine again.
      pending.emplace_back(positions[i], *store->index_at(positions[i]));
      break;
    case persistence::append_outcome::duplicate:
      ++counters.duplicates;
      break;
    case persistence::append_outcome::conflict:
      ++counters.conflicts;
      break;
    }
  }
  return outcomes;
}

// --- apply: events between watermark steps ------------------------------------------------

void partition_actor_state::start(std::vector<watermark_step> steps, bool end_of_input,
                                  std::function<void()> done) {
  job_ = job{std::move(steps), 0, 0, end_of_input, false, true, std::move(done)};
  resume();
}

// Runs the job until a step waits for replies (the last reply resumes it) or the job ends.
void partition_actor_state::resume() {
  if (running_)
    return; // a step completed without waiting: the loop below goes on
  running_ = true;
  while (job_.active && !waiting_) {
    if (!fatal_.empty()) {
      job_.next_event = pending.size();
      job_.next_step = job_.steps.size();
      job_.finished = true;
    }
    if (job_.next_event < pending.size() &&
        (job_.next_step == job_.steps.size() ||
         job_.steps[job_.next_step].seq >= pending[job_.next_event].first)) {
      add_event(pending[job_.next_event++].second);
    } else if (job_.next_step < job_.steps.size()) {
      const watermark_step s = job_.steps[job_.next_step++];
      begin_step(s.seq, s.watermark, false);
    } else if (job_.end_of_input && !job_.finished) {
      job_.finished = true;
      begin_step(end_of_input_step, watermark_max, true);
    } else {
      flush_inputs();
      pending.clear();
      job_.active = false;
      auto done = std::move(job_.done);
      done();
    }
  }
  running_ = false;
}

void partition_actor_state::add_event(std::uint32_t index) {
  const persistence::event_view e = store->at(index);
  const std::string customer_id(e.customer_id);
  const timestamp start = pricing::window_start(e.event_time, cfg->window_size);
  const timestamp end = start + cfg->window_size;
  const bool very_late = watermark >= plus(end, cfg->allowed_lateness);
  bool metered = false;
  for (const config::meter& m : cfg->meters) {
    if (m.event_type != e.event_type)
      continue;
    auto reading = read_meter(m, e);
    if (!reading)
      continue;
    metered = true;
    ++counters.meter_feeds;
    if (very_late) {
      dirty_scopes[{customer_id, m.metric, pricing::period_of(e.event_time).start}].insert(start);
      continue;
    }
    auto& slot = windows[{customer_id, m.metric, start}];
    if (!slot) {
      slot = std::make_unique<window_entry>();
      // A window actor whose window is final takes the new one; else a new actor.
      if (idle_windows.empty()) {
        slot->handle = self->spawn<caf::linked + caf::lazy_init>(window, parent());
      } else {
        slot->handle = std::move(idle_windows.back());
        idle_windows.pop_back();
      }
      slot->customer_id = customer_id;
      slot->meter = &m;
      slot->start = start;
      slot->end = end;
      to_close.emplace(end, slot.get());
      to_finalize.emplace(plus(end, cfg->allowed_lateness), slot.get());
    }
    if (slot->inputs.empty())
      with_inputs.push_back(slot.get());
    slot->inputs.push_back({e.event_time, e.event_id.data(), std::move(*reading)});
    if (slot->closed && !slot->dirty) {
      slot->dirty = true;
      dirty_closing.push_back(slot.get());
    }
  }
  if (!metered) {
    ++counters.unmetered;
    return;
  }
  ++counters.metered;
  if (very_late)
    ++counters.very_late;
  else if (watermark >= end)
    ++counters.late;
}

// One message per window with the events it got since the last one.
void partition_actor_state::flush_inputs() {
  for (window_entry* w : with_inputs) {
    window_inputs in{std::move(w->inputs), std::nullopt};
    if (!w->opened) {
      in.opens = window_identity{w->customer_id, w->meter, w->start, w->end};
      w->opened = true;
    }
    self->send(w->handle, add_atom::value, std::move(in));
  }
  with_inputs.clear();
}

// --- a watermark step ---------------------------------------------------------------------

void partition_actor_state::begin_step(std::uint64_t seq, timestamp to, bool finishing) {
  const timestamp from = watermark;
  if (to <= from && !finishing)
    return;
  work_ = step_work{};
  work_.seq = seq;
  work_.finishing = finishing;
  watermark = std::max(to, from);
  // (1) Windows entering closing emit a provisional aggregate; closing windows that took
  // stragglers emit an updated one; windows that finalize in this step skip it.
  while (!to_close.empty() && to_close.begin()->first <= to) {
    window_entry* w = to_close.begin()->second;
    to_close.erase(to_close.begin());
    w->closed = true;
    if (!w->dirty) {
      w->dirty = true;
      dirty_closing.push_back(w);
    }
  }
  for (window_entry* w : dirty_closing) {
    w->dirty = false;
    if (plus(w->end, cfg->allowed_lateness) > to)
      work_.provisional.push_back(w);
  }
  dirty_closing.clear();
  // (2) Final windows, then (stage_rating) period-level meters of final periods.
  while (!to_finalize.empty() && to_finalize.begin()->first <= to) {
    window_entry* w = to_finalize.begin()->second;
    to_finalize.erase(to_finalize.begin());
    auto it = windows.find({w->customer_id, w->meter->metric, w->start});
    work_.finalizing.push_back(std::move(it->second));
    windows.erase(it);
  }
  // (3) Pending re-rates when the watermark crosses a correction interval.
  work_.interval_crossed =
      floor_div(from, cfg->correction_interval) < floor_div(to, cfg->correction_interval);
  // Periods and invoices that become final are taken by their stages below, after the final
  // windows (which may open their scopes) and the re-rates.
  auto due = [to](const auto& index) { return !index.empty() && index.begin()->first <= to; };
  const bool work = !work_.provisional.empty() || !work_.finalizing.empty() || due(period_close) ||
                    due(invoice_due) || (work_.interval_crossed && !dirty_scopes.empty()) ||
                    finishing;
  if (!work)
    return;
  flush_inputs(); // the windows take their events before they close or finalize
  waiting_ = true;
  stage_windows();
}

void partition_actor_state::stage_windows() {
  for (window_entry* w : work_.provisional)
    tell(w->handle, close_atom::value, work_.seq);
  for (auto& w : work_.finalizing) {
    tell(w->handle, finalize_atom::value, work_.seq);
    idle_windows.push_back(w->handle); // its next window comes after the final aggregate
  }
  then([this] { stage_rating(); });
}

// Final windows go to their rating scope in window order.
void partition_actor_state::stage_rating() {
  std::sort(work_.finals.begin(), work_.finals.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first, a.second.start) < std::tie(b.first, b.second.start);
  });
  std::map<scope_entry*, rating_input> inputs;
  for (auto& w : work_.finalizing) {
    // Create the scopes of this step's final windows (the window entries still know the meter).
    scope_for(w->customer_id, *w->meter, pricing::period_of(w->start));
  }
  for (auto& [key, final] : work_.finals) {
    scope_entry* scope = scopes.at(key).get();
    rating_input& in = inputs[scope];
    in.step = work_.seq;
    in.finals.push_back(std::move(final));
  }
  while (!period_close.empty() && period_close.begin()->first <= watermark) {
    rating_input& in = inputs[period_close.begin()->second];
    period_close.erase(period_close.begin());
    in.step = work_.seq;
    in.close_period = true;
  }
  work_.finalizing.clear();
  work_.finals.clear();
  for (auto& [scope, in] : inputs)
    tell(scope->handle, rate_atom::value, std::move(in));
  then([this] { stage_interval_rerates(); });
}

void partition_actor_state::stage_interval_rerates() {
  if (!work_.interval_crossed)
    return stage_due_invoices();
  rerates(
      phase::rerate, [](const rerate_scope&) { return true; }, [this] { stage_due_invoices(); });
}

void partition_actor_state::stage_due_invoices() {
  while (!invoice_due.empty() && invoice_due.begin()->first <= watermark) {
    work_.due.push_back(invoice_due.begin()->second);
    invoice_due.erase(invoice_due.begin());
  }
  if (work_.due.empty())
    return stage_end_of_input();
  std::set<invoice_key> due_keys;
  for (invoice_entry* inv : work_.due)
    due_keys.insert({inv->customer_id, inv->period.start});
  rerates(
      phase::period_rerate,
      [due_keys](const rerate_scope& s) {
        return due_keys.count({s.customer_id, s.period_start});
      },
      [this] {
        for (invoice_entry* inv : work_.due)
          tell(inv->handle, issue_atom::value, invoice_request{work_.seq, watermark, false});
        then([this] { stage_end_of_input(); });
      });
}

// The end of input: whatever is still dirty (its period's invoice was issued earlier) runs now.
void partition_actor_state::stage_end_of_input() {
  if (!work_.finishing)
    return step_done();
  rerates(
      phase::rerate, [](const rerate_scope&) { return true; }, [this] { step_done(); });
}

void partition_actor_state::step_done() {
  waiting_ = false;
  resume();
}

// --- re-rating (SEMANTICS §7) -------------------------------------------------------------

void partition_actor_state::rerates(phase p, const std::function<bool(const rerate_scope&)>& wanted,
                                    std::function<void()> next) {
  // The scopes re-rated, by the invoice (customer x period) they belong to.
  std::map<invoice_entry*, nlohmann::json> touched;
  const std::size_t charges_before = out_.charges.size();
  for (auto it = dirty_scopes.begin(); it != dirty_scopes.end();) {
    if (!wanted(it->first)) {
      ++it;
      continue;
    }
    const rerate_scope& s = it->first;
    ++counters.rerates;
    scope_entry& scope =
        scope_for(s.customer_id, *cfg->find_meter(s.metric), pricing::period_of(s.period_start));
    nlohmann::json windows = nlohmann::json::array();
    for (timestamp start : it->second)
      windows.push_back(pricing::format_rfc3339(start));
    touched[scope.invoice].push_back({{"metric", s.metric}, {"windows", std::move(windows)}});
    tell(scope.handle, rerate_atom::value,
         rerate_request{work_.seq, p, std::move(it->second), watermark});
    it = dirty_scopes.erase(it);
  }
  if (touched.empty())
    return then(std::move(next));
  then([this, p, charges_before, touched = std::move(touched), next = std::move(next)]() mutable {
    const std::size_t invoices_before = out_.invoices.size();
    std::set<invoice_entry*> invoices;
    for (const auto& [inv, scopes] : touched)
      invoices.insert(inv);
    settle(std::move(invoices), [this, p, charges_before, invoices_before,
                                 touched = std::move(touched), next = std::move(next)]() mutable {
      for (auto& [inv, scopes] : touched)
        record_rerate_run(p, *inv, std::move(scopes), charges_before, invoices_before);
      next();
    });
  });
}

// An automatic re-rate of a customer's period is recorded like a manual one (SEMANTICS §7):
// what triggered it, its scope and the documents it created, with an id made from the input
// alone (the same whatever the partitioning).
void partition_actor_state::record_rerate_run(phase p, const invoice_entry& inv,
                                              nlohmann::json scopes, std::size_t charges_before,
                                              std::size_t invoices_before) {
  persistence::rerate_run run;
  run.trigger = "very_late_events";
  run.reason = p == phase::period_rerate ? "very late events, before the period's invoice"
               : work_.finishing         ? "very late events, at the end of the input"
                                         : "very late events, at a correction interval";
  // This re-rate's records are those appended since it started, of this customer and period.
  auto ours = [&](const auto& k) {
    return k.record.customer_id == inv.customer_id &&
           pricing::period_of(k.record.window_start) == inv.period;
  };
  std::vector<const keyed<persistence::charge_record>*> charges;
  for (std::size_t i = charges_before; i < out_.charges.size(); ++i)
    if (ours(out_.charges[i]))
      charges.push_back(&out_.charges[i]);
  std::sort(charges.begin(), charges.end(), [](auto* a, auto* b) { return a->key < b->key; });
  for (auto* c : charges)
    run.superseding_charge_ids.push_back(c->record.charge_id);
  for (std::size_t i = invoices_before; i < out_.invoices.size(); ++i) {
    const auto& r = out_.invoices[i].record;
    if (r.customer_id == inv.customer_id && r.period == inv.period)
      run.correction_invoice_ids.push_back(r.invoice_id);
  }
  std::sort(run.correction_invoice_ids.begin(), run.correction_invoice_ids.end());
  run.scope_json = nlohmann::json{{"customer_id", inv.customer_id},
                                  {"period", pricing::period_id(inv.period)},
                                  {"metrics", std::move(scopes)}}
                       .dump();
  run.result_json = nlohmann::json{{"superseding_charges", run.superseding_charge_ids.size()},
                                   {"invoices", run.correction_invoice_ids.size()}}
                        .dump();
  run.rerate_run_id =
      persistence::content_id({"rerate_run", std::to_string(work_.seq),
                               std::to_string(static_cast<int>(p)), run.scope_json});
  out_.rerate_runs.push_back(
      {order_key{work_.seq, p, inv.period.start, inv.customer_id, "", 0}, std::move(run)});
}

// After re-rates: each touched invoice issues a correction (or its standard invoice).
void partition_actor_state::settle(std::set<invoice_entry*> touched, std::function<void()> next) {
  for (invoice_entry* inv : touched)
    tell(inv->handle, issue_atom::value, invoice_request{work_.seq, watermark, true});
  then(std::move(next));
}

// --- requests and replies -----------------------------------------------------------------

template <class Handle, class... Ts>
void partition_actor_state::tell(const Handle& h, Ts&&... xs) {
  ++outstanding_;
  self->send(h, std::forward<Ts>(xs)...);
}

void partition_actor_state::replied() {
  if (--outstanding_ > 0)
    return;
  auto next = std::move(next_);
  next_ = nullptr;
  next();
}

void partition_actor_state::then(std::function<void()> next) {
  if (outstanding_ == 0)
    next();
  else
    next_ = std::move(next);
}

// A stage's records go to the partition's output.
void partition_actor_state::on_done(stage_output& o) {
  out_.append(std::move(o.records));
  if (!o.fatal.empty() && fatal_.empty())
    fatal_ = o.fatal;
  replied();
}

// A final window waits for its rating scope (stage_rating), which takes the scope's final
// windows in window order whatever order the windows replied in.
void partition_actor_state::on_final(finalized_window& f) {
  const persistence::aggregate_record& r = f.output.records.aggregates.back().record;
  scope_key scope{r.customer_id, r.metric, pricing::period_of(r.window_start).start};
  work_.finals.emplace_back(std::move(scope), std::move(f.final));
  on_done(f.output);
}

// --- scopes -------------------------------------------------------------------------------

partition_actor_state::invoice_entry&
partition_actor_state::invoice_for(const std::string& customer, const pricing::period& period) {
  auto& slot = invoices[{customer, period.start}];
  if (!slot) {
    slot = std::make_unique<invoice_entry>();
    slot->handle = self->spawn<caf::linked>(invoice, parent(), cfg, customer, period);
    slot->customer_id = customer;
    slot->period = period;
    invoice_due.emplace(plus(period.end, cfg->allowed_lateness), slot.get());
  }
  return *slot;
}

partition_actor_state::scope_entry&
partition_actor_state::scope_for(const std::string& customer, const config::meter& m,
                                 const pricing::period& period) {
  auto& slot = scopes[{customer, m.metric, period.start}];
  if (!slot) {
    slot = std::make_unique<scope_entry>();
    slot->invoice = &invoice_for(customer, period);
    slot->handle = self->spawn<caf::linked>(rating, parent(), slot->invoice->handle, cfg,
                                            static_cast<const persistence::event_store*>(store),
                                            customer, &m, period);
    slot->meter = &m;
    if (!config::is_additive(m.kind))
      period_close.emplace(plus(period.end, cfg->allowed_lateness), slot.get());
  }
  return *slot;
}

void partition_actor_state::adopt(stored_state&& stored, std::function<void()> done) {
  for (auto& [key, scope] : scopes) {
    auto it = stored.charges.find(key);
    if (it != stored.charges.end())
      tell(scope->handle, adopt_atom::value, std::move(it->second));
  }
  // The invoices adopt after the ratings, whose line updates reach them first.
  then([this, stored_invoices = std::move(stored.invoices), done = std::move(done)]() mutable {
    for (auto& [key, inv] : invoices) {
      auto it = stored_invoices.find(key);
      tell(inv->handle, adopt_atom::value,
           it == stored_invoices.end() ? actors::stored_invoices{} : std::move(it->second));
    }
    then(std::move(done));
  });
}

partition_actor partition_actor_state::parent() {
  return caf::actor_cast<partition_actor>(self);
}

partition_report partition_actor_state::report() {
  partition_report r;
  r.partition = partition;
  r.output = std::move(out_);
  out_ = {};
  r.output.sort_by_key();
  r.counters = counters;
  r.open_windows = windows.size();
  r.watermark = watermark;
  r.fatal = fatal_;
  return r;
}

// --- the actor ----------------------------------------------------------------------------

partition_actor::behavior_type
partition(partition_actor::stateful_pointer<partition_actor_state> self, std::uint32_t index,
          const config::configuration* cfg, persistence::event_store* store,
          std::uint64_t crash_at_batch) {
  auto& st = self->state;
  st.self = self;
  st.partition = index;
  st.cfg = cfg;
  st.store = store;
  st.crash_at_batch = crash_at_batch;
  return {[self](done_atom, stage_output& o) { self->state.on_done(o); },
          [self](final_atom, finalized_window& f) { self->state.on_final(f); },
          [self](admit_atom, event_batch& batch) -> admit_result {
            return {self->state.partition, self->state.admit(std::move(batch.events))};
          },
          [self](apply_atom, watermark_steps& steps) {
            auto& st = self->state;
            if (steps.batch != 0 && steps.batch == st.crash_at_batch)
              throw std::runtime_error("injected fault: partition " + std::to_string(st.partition) +
                                       " crashed applying batch " + std::to_string(steps.batch));
            auto rp = self->make_response_promise<partition_report>();
            st.start(std::move(steps.steps), steps.end_of_input,
                     [self, rp]() mutable { rp.deliver(self->state.report()); });
            return rp;
          },
          [self](adopt_atom, stored_state& stored) {
            auto rp = self->make_response_promise<partition_report>();
            self->state.adopt(std::move(stored), [self, rp]() mutable {
              partition_report r = self->state.report();
              r.output = {}; // adopting emits no record
              rp.deliver(std::move(r));
            });
            return rp;
          },
          // Rebuilds every stage from the store after a crash: replays the stored events up to
          // input position `applied_upto` against the watermark history, discarding what that
          // re-emits (it was delivered before the crash).
          [self](restore_atom, restore_request& req) {
            auto& st = self->state;
            for (std::uint32_t i = 0; i < st.store->size(); ++i)
              if (st.store->source_position(i) <= req.applied_upto)
                st.pending.emplace_back(st.store->source_position(i), i);
            auto rp = self->make_response_promise<partition_report>();
            const bool queue_later = req.queue_later_events;
            const std::uint64_t upto = req.applied_upto;
            st.start(std::move(req.history), false, [self, rp, queue_later, upto]() mutable {
              auto& st = self->state;
              partition_report r = st.report();
              r.output = {}; // already delivered before the crash
              st.counters.accepted = st.store->size();
              if (queue_later)
                for (std::uint32_t i = 0; i < st.store->size(); ++i)
                  if (st.store->source_position(i) > upto)
                    st.pending.emplace_back(st.store->source_position(i), i);
              rp.deliver(std::move(r));
            });
            return rp;
          }};
}

} // namespace meterflow::actors
