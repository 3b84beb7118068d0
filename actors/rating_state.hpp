#pragma once

// The rating stage of one customer x metric x period (SEMANTICS §5.3, §7): the final windows
// in window order, the running cumulative quantity and the charge in force for each window
// (or for the period, for period-level meters). It also re-rates its scope from the raw events
// when very late events fall into it. Pure C++: the rating actor feeds it and forwards what it
// emits.

#include "actors/dataflow.hpp"

#include <map>
#include <optional>
#include <set>

namespace meterflow::actors {

class rating_state {
public:
  // `store` is the partition's event store; it is read only while the partition waits for
  // this stage (re-rating), never while it appends.
  rating_state(const config::configuration& cfg, const persistence::event_store& store,
               std::string customer_id, const config::meter& meter, pricing::period period);

  // Final windows arrive in window order; additive meters rate each one incrementally.
  void add_final(std::uint64_t step, window_final&& w);
  // Period-level meters: one charge on the period quantity when the period is final.
  void close_period(std::uint64_t step);
  // Re-aggregates the `changed` final windows from the raw events stored up to input position
  // `step`, re-rates every final window in window order with the price books as configured
  // now, and supersedes the charges that changed.
  void rerate(std::uint64_t step, phase p, const std::set<timestamp>& changed, timestamp watermark);

  // Re-rating a scope of the store (`meterflow rerate`): its final windows and current
  // charges as stored, before rerate(). `unpriced_quantity` is the quantity a window without a
  // charge was listed with.
  void restore_window(timestamp start, window_aggregate&& aggregate, std::string aggregation_id,
                      std::uint32_t revision, std::optional<current_charge> charge,
                      std::optional<decimal> unpriced_quantity);
  // Period-level meters: the period's stored charge; the period counts as rated.
  void restore_period_charge(current_charge charge);
  // A resumed service: after replaying the stored events, the charges in force are the ones the
  // store holds (a manual re-rate may have superseded what the replay computed). Emits the
  // line updates for the invoice stage.
  void adopt(const std::map<timestamp, current_charge>& stored);
  // What the invoice accumulator needs of this scope now: every final window (or the period).
  std::vector<line_update> lines() const;
  // The sum of the amounts of the charges in force.
  decimal charged() const;

  stage_output take_output();

private:
  struct final_window {
    window_aggregate aggregate;
    persistence::packed_id aggregation_id; // packed: one per final window, kept all period
    std::uint32_t revision = 0;
    std::optional<current_charge> charge;
  };
  struct rated {
    std::optional<pricing::charge_explanation> charge;
    pricing::unpriced_reason reason = pricing::unpriced_reason::none;
    std::string price_book_id;
  };

  rated rate(timestamp window_start, decimal before, decimal after) const;
  template <class SourceIds>
  void emit_rating(phase p, timestamp order_t, timestamp start, timestamp end,
                   const persistence::packed_id& aggregation_id, SourceIds&& source_ids,
                   decimal quantity, rated&& r, persistence::charge_trigger trigger,
                   std::optional<current_charge>& current,
                   std::optional<decimal>& unpriced_quantity, bool only_if_changed);
  // emit_rating for a final window, with the quantity it is listed with as unpriced.
  template <class SourceIds>
  void rate_window(phase p, timestamp order_t, timestamp start, final_window& fw,
                   SourceIds&& source_ids, decimal quantity, rated&& r,
                   persistence::charge_trigger trigger, bool only_if_changed);
  void rate_period(phase p, persistence::charge_trigger trigger, bool only_if_changed);
  void update_line(timestamp window_start, decimal quantity,
                   const std::optional<current_charge>& charge);

  const config::configuration& cfg_;
  const persistence::event_store& store_;
  std::string customer_id_;
  const config::meter& meter_;
  pricing::period period_;
  std::map<timestamp, final_window> windows_; // by window start
  // The quantity each unpriced window is listed with: kept apart, since few windows are
  // unpriced and every final window is kept all period.
  std::map<timestamp, decimal> unpriced_;
  decimal cumulative_;
  bool closed_ = false; // period-level meters: rated at period close
  std::optional<current_charge> period_charge_;
  std::optional<decimal> period_unpriced_quantity_;
  persistence::packed_id period_aggregation_id_;
  emitter emit_;
  stage_output out_;
};

} // namespace meterflow::actors
