#include "actors/rating_state.hpp"

#include "persistence/ids.hpp"

#include <algorithm>

namespace meterflow::actors {

using persistence::aggregate_kind;
using persistence::charge_record;
using persistence::charge_trigger;
using pricing::format_rfc3339;

rating_state::rating_state(const config::configuration& cfg, const persistence::event_store& store,
                           std::string customer_id, const config::meter& meter,
                           pricing::period period)
    : cfg_(cfg), store_(store), customer_id_(std::move(customer_id)), meter_(meter),
      period_(period) {}

rating_state::rated rating_state::rate(timestamp window_start, decimal before,
                                       decimal after) const {
  rated r;
  const pricing::price_book* book = cfg_.price_book_for(customer_id_);
  if (book)
    r.price_book_id = book->id;
  const auto found = pricing::lookup_price(book, meter_.metric, window_start);
  r.reason = found.reason;
  if (found.reason == pricing::unpriced_reason::none)
    r.charge = pricing::rate_increment(*book, *found.version, *found.model, before, after).value();
  return r;
}

void rating_state::update_line(timestamp window_start, decimal quantity,
                               const std::optional<current_charge>& charge) {
  out_.lines.push_back({meter_.metric, window_start, quantity, charge});
}

// Emits a charge (or an unpriced window) for a window or a period and makes it current.
// With `only_if_changed` (re-rating), nothing is emitted when quantity and amount are those of
// the current charge. An unpriced window is listed again only when its quantity changed (a
// re-rate may also bring a window that was never rated), so the last listing always holds
// the quantity reconciliation expects.
// `source_ids()` gives the charge's source event ids; it runs only when a charge is emitted.
template <class SourceIds>
void rating_state::emit_rating(phase p, timestamp order_t, timestamp start, timestamp end,
                               const persistence::packed_id& aggregation_id, SourceIds&& source_ids,
                               decimal quantity, rated&& r, charge_trigger trigger,
                               std::optional<current_charge>& current,
                               std::optional<decimal>& unpriced_quantity, bool only_if_changed) {
  if (!r.charge) {
    if (unpriced_quantity == quantity)
      return; // listed with this quantity already
    unpriced_quantity = quantity;
    persistence::unpriced_window u;
    u.customer_id = customer_id_;
    u.metric = meter_.metric;
    u.window_start = start;
    u.window_end = end;
    u.quantity = quantity;
    u.reason = r.reason;
    u.price_book_id = r.price_book_id;
    out_.records.unpriced.push_back({emit_.key(p, order_t, customer_id_, meter_.metric), u});
    return;
  }
  if (only_if_changed && current && current->quantity == quantity &&
      current->amount == r.charge->amount)
    return;
  charge_record c;
  c.customer_id = customer_id_;
  c.metric = meter_.metric;
  c.window_start = start;
  c.window_end = end;
  c.aggregation_id = aggregation_id.str();
  c.quantity = quantity;
  c.trigger = trigger;
  if (current)
    c.supersedes_charge_id = current->charge_id.str();
  c.charge_id = persistence::content_id({"charge", c.customer_id, c.metric, pricing::rfc3339(start),
                                         c.supersedes_charge_id.value_or("")});
  c.calculation = std::move(*r.charge);
  c.source_event_ids = source_ids();
  c.source_event_count = c.source_event_ids.size();
  current = current_charge_of(c);
  out_.records.charges.push_back({emit_.key(p, order_t, c.customer_id, c.metric), std::move(c)});
}

template <class SourceIds>
void rating_state::rate_window(phase p, timestamp order_t, timestamp start, final_window& fw,
                               SourceIds&& source_ids, decimal quantity, rated&& r,
                               charge_trigger trigger, bool only_if_changed) {
  auto listed = unpriced_.find(start);
  std::optional<decimal> unpriced;
  if (listed != unpriced_.end())
    unpriced = listed->second;
  emit_rating(p, order_t, start, start + cfg_.window_size, fw.aggregation_id,
              std::forward<SourceIds>(source_ids), quantity, std::move(r), trigger, fw.charge,
              unpriced, only_if_changed);
  if (unpriced)
    unpriced_.insert_or_assign(start, *unpriced);
}

void rating_state::add_final(std::uint64_t step, window_final&& w) {
  emit_.step = step;
  persistence::id_list event_ids = std::move(w.event_ids);
  // Final windows come in window order: the end is the right hint (O(1), no walk down the tree).
  final_window& fw = windows_
                         .insert_or_assign(windows_.end(), w.start,
                                           final_window{std::move(w.aggregate),
                                                        persistence::packed_id(w.aggregation_id),
                                                        w.revision,
                                                        {}})
                         ->second;
  unpriced_.erase(w.start); // a window final anew starts unlisted, as it starts uncharged
  if (!config::is_additive(meter_.kind))
    return;
  const decimal q = fw.aggregate.quantity();
  const decimal after = cumulative_ + q;
  rate_window(
      phase::finalize, w.end, w.start, fw,
      [&] {
        // The final aggregate's list when the window stage sent it (a restore may not).
        return event_ids.size() == fw.aggregate.event_count()
                   ? std::move(event_ids)
                   : persistence::id_list(fw.aggregate.sorted_event_ids());
      },
      q, rate(w.start, cumulative_, after), charge_trigger::window_final, false);
  cumulative_ = after;
  update_line(w.start, q, fw.charge);
}

void rating_state::close_period(std::uint64_t step) {
  emit_.step = step;
  if (!closed_)
    rate_period(phase::finalize, charge_trigger::period_close, false);
}

// Period-level meters: one charge per period on the period quantity, rated with the version
// of the period's last window.
void rating_state::rate_period(phase p, charge_trigger trigger, bool only_if_changed) {
  std::vector<const window_aggregate*> aggs;
  std::uint64_t event_count = 0;
  for (auto& [start, fw] : windows_) {
    aggs.push_back(&fw.aggregate);
    event_count += fw.aggregate.event_count();
  }
  auto sources = [&] {
    std::vector<std::string> ids;
    for (auto& [start, fw] : windows_)
      for (auto& id : fw.aggregate.sorted_event_ids())
        ids.push_back(std::move(id));
    return ids;
  };
  const decimal q = window_aggregate::period_quantity(meter_.kind, aggs);
  period_aggregation_id_ = persistence::packed_id(persistence::content_id(
      {"period_aggregate", customer_id_, meter_.metric, format_rfc3339(period_.start),
       std::to_string(event_count), q.to_string()}));
  const timestamp last_window = period_.end - cfg_.window_size;
  emit_rating(p, period_.end, period_.start, period_.end, period_aggregation_id_, sources, q,
              rate(last_window, decimal(), q), trigger, period_charge_, period_unpriced_quantity_,
              only_if_changed);
  closed_ = true;
  update_line(period_.start, period_charge_ ? period_charge_->quantity : decimal(), period_charge_);
}

void rating_state::rerate(std::uint64_t step, phase p, const std::set<timestamp>& changed,
                          timestamp watermark) {
  emit_.step = step;
  std::map<timestamp, window_aggregate> fresh;
  // Only events in the changed windows count: their times are read from the store's compact
  // array, and the events themselves (scattered over the store) only when in range. A hot
  // customer has ~10% of all events, and each very late event re-rates its scope.
  const timestamp from = changed.empty() ? 0 : std::max(*changed.begin(), period_.start);
  const timestamp until =
      changed.empty() ? 0 : std::min(*changed.rbegin() + cfg_.window_size, period_.end);
  const std::vector<std::uint32_t>& indexes = store_.events_of(customer_id_);
  const std::vector<timestamp>& times = store_.event_times_of(customer_id_);
  for (std::size_t i = 0; i < indexes.size(); ++i) {
    if (times[i] < from || times[i] >= until)
      continue;
    const std::uint32_t index = indexes[i];
    // The partition stores a whole batch before it applies its later events: the re-rate sees
    // the input up to the step that runs it, whatever the batch size or a restore replays.
    if (store_.source_position(index) > step)
      continue;
    const persistence::event_view e = store_.at(index);
    if (e.event_type != meter_.event_type)
      continue;
    const timestamp start = pricing::window_start(e.event_time, cfg_.window_size);
    if (!changed.count(start))
      continue;
    if (plus(start + cfg_.window_size, cfg_.allowed_lateness) > watermark)
      continue; // not final yet: the window stage owns it
    auto reading = read_meter(meter_, e);
    if (!reading)
      continue;
    fresh.try_emplace(start, meter_.kind).first->second.add(e, *reading);
  }
  for (auto& [start, agg] : fresh) {
    auto it = windows_.find(start);
    if (it != windows_.end() && it->second.aggregate.same_content(agg))
      continue;
    const std::uint32_t revision = it == windows_.end() ? 0 : it->second.revision + 1;
    persistence::aggregate_record r =
        make_aggregate_record(customer_id_, meter_.metric, start, start + cfg_.window_size,
                              revision, aggregate_kind::reaggregated, agg);
    if (it == windows_.end())
      it = windows_.emplace(start, final_window{window_aggregate(meter_.kind), {}, 0, {}}).first;
    it->second.aggregate = std::move(agg);
    it->second.revision = revision;
    it->second.aggregation_id = persistence::packed_id(r.aggregation_id);
    out_.records.aggregates.push_back(
        {emit_.key(p, period_.start, customer_id_, meter_.metric), std::move(r)});
  }
  if (config::is_additive(meter_.kind)) {
    decimal cumulative;
    for (auto& [start, fw] : windows_) {
      const decimal q = fw.aggregate.quantity();
      const decimal after = cumulative + q;
      rate_window(
          p, period_.start, start, fw, [&] { return fw.aggregate.sorted_event_ids(); }, q,
          rate(start, cumulative, after), charge_trigger::rerate, true);
      cumulative = after;
      update_line(start, q, fw.charge);
    }
    cumulative_ = cumulative;
  } else if (closed_ || plus(period_.end, cfg_.allowed_lateness) <= watermark) {
    rate_period(p, charge_trigger::rerate, closed_);
  }
}

void rating_state::restore_window(timestamp start, window_aggregate&& aggregate,
                                  std::string aggregation_id, std::uint32_t revision,
                                  std::optional<current_charge> charge,
                                  std::optional<decimal> unpriced_quantity) {
  const decimal q = aggregate.quantity();
  windows_.insert_or_assign(start, final_window{std::move(aggregate),
                                                persistence::packed_id(aggregation_id), revision,
                                                std::move(charge)});
  if (unpriced_quantity)
    unpriced_.insert_or_assign(start, *unpriced_quantity);
  else
    unpriced_.erase(start);
  cumulative_ += q;
}

void rating_state::restore_period_charge(current_charge charge) {
  period_charge_ = std::move(charge);
  closed_ = true;
}

void rating_state::adopt(const std::map<timestamp, current_charge>& stored) {
  for (auto& [start, fw] : windows_) {
    auto it = stored.find(start);
    if (it == stored.end())
      continue;
    fw.charge = it->second;
    unpriced_.erase(start);
  }
  if (!config::is_additive(meter_.kind) && closed_) {
    auto it = stored.find(period_.start);
    if (it != stored.end()) {
      period_charge_ = it->second;
      period_unpriced_quantity_.reset();
    }
  }
  for (line_update& l : lines())
    out_.lines.push_back(std::move(l));
}

std::vector<line_update> rating_state::lines() const {
  std::vector<line_update> out;
  if (!config::is_additive(meter_.kind)) {
    if (closed_)
      out.push_back({meter_.metric, period_.start,
                     period_charge_ ? period_charge_->quantity : decimal(), period_charge_});
    return out;
  }
  for (const auto& [start, fw] : windows_)
    out.push_back({meter_.metric, start, fw.aggregate.quantity(), fw.charge});
  return out;
}

decimal rating_state::charged() const {
  decimal sum;
  if (period_charge_)
    sum += period_charge_->amount;
  for (const auto& [start, fw] : windows_)
    if (fw.charge)
      sum += fw.charge->amount;
  return sum;
}

stage_output rating_state::take_output() {
  stage_output o = std::move(out_);
  out_ = {};
  return o;
}

} // namespace meterflow::actors
