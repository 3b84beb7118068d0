#pragma once

// The values that flow through the engine's stages (SEMANTICS §2-§7), without CAF: watermark
// steps, the records every stage emits and the key that orders them.
//
// Everything a stage emits carries an `order_key` built from the input alone (the step = the
// input sequence number of the event whose watermark advance caused it), so merging the output
// of any number of partitions and stage actors by key gives the same files whatever the
// partitioning and scheduling.

#include "actors/window_state.hpp"
#include "config/config.hpp"
#include "persistence/ids.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace meterflow::actors {

inline constexpr timestamp watermark_min = std::numeric_limits<timestamp>::min();
inline constexpr timestamp watermark_max = std::numeric_limits<timestamp>::max();
inline constexpr std::uint64_t end_of_input_step = std::numeric_limits<std::uint64_t>::max();

// An accepted event's position in the input (its 1-based line number) and the watermark in
// force after it, when it advanced the watermark.
struct watermark_step {
  std::uint64_t seq = 0;
  timestamp watermark = watermark_min;
};

// The single batch source's watermark rule (SEMANTICS §4): an accepted event at input
// position `seq` moves the watermark to `event_time - max_out_of_orderness` when that is
// higher; each move is a step. Returns whether it moved.
inline bool advance_watermark(timestamp& watermark, std::vector<watermark_step>& steps,
                              std::uint64_t seq, timestamp event_time,
                              pricing::duration max_out_of_orderness) {
  const timestamp candidate = event_time - max_out_of_orderness;
  if (candidate <= watermark)
    return false;
  watermark = candidate;
  steps.push_back({seq, watermark});
  return true;
}

struct sequenced_event {
  std::uint64_t seq = 0;
  persistence::event event;
};

enum class phase : std::uint8_t {
  provisional = 1,
  finalize = 2,
  rerate = 3,
  period_rerate = 4,
  invoice = 5
};

struct order_key {
  std::uint64_t step = 0;
  phase stage = phase::provisional;
  timestamp t = 0;
  std::string customer_id;
  std::string metric;
  std::uint64_t seq = 0;
  friend auto operator<=>(const order_key&, const order_key&) = default;
};

template <class Record>
struct keyed {
  order_key key;
  Record record;
};

// A (customer, metric, period) marked for re-rating by very late events.
struct rerate_scope {
  std::string customer_id;
  std::string metric;
  timestamp period_start = 0;
  friend auto operator<=>(const rerate_scope&, const rerate_scope&) = default;
};

struct partition_counters {
  partition_counters& operator+=(const partition_counters& o) {
    accepted += o.accepted;
    duplicates += o.duplicates;
    conflicts += o.conflicts;
    unmetered += o.unmetered;
    very_late += o.very_late;
    late += o.late;
    metered += o.metered;
    meter_feeds += o.meter_feeds;
    rerates += o.rerates;
    return *this;
  }

  std::uint64_t accepted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t conflicts = 0;
  std::uint64_t unmetered = 0;
  std::uint64_t very_late = 0;
  std::uint64_t late = 0;        // accepted into a closing window
  std::uint64_t metered = 0;     // accepted events feeding at least one meter
  std::uint64_t meter_feeds = 0; // (event, meter) pairs: an event can feed several meters
  std::uint64_t rerates = 0;
};

struct partition_output {
  std::vector<keyed<persistence::aggregate_record>> aggregates;
  std::vector<keyed<persistence::charge_record>> charges;
  std::vector<keyed<persistence::unpriced_window>> unpriced;
  std::vector<keyed<persistence::invoice_record>> invoices;
  std::vector<keyed<persistence::rerate_run>> rerate_runs; // automatic re-rates (very late events)

  bool empty() const {
    return aggregates.empty() && charges.empty() && unpriced.empty() && invoices.empty() &&
           rerate_runs.empty();
  }
  // Moves `other`'s records after these (merging stages, partitions or batches).
  void append(partition_output&& other) {
    auto move_all = [](auto& to, auto& from) {
      to.insert(to.end(), std::make_move_iterator(from.begin()),
                std::make_move_iterator(from.end()));
    };
    move_all(aggregates, other.aggregates);
    move_all(charges, other.charges);
    move_all(unpriced, other.unpriced);
    move_all(invoices, other.invoices);
    move_all(rerate_runs, other.rerate_runs);
  }
  // Every kind of record in its global order.
  void sort_by_key() {
    sort_records(aggregates);
    sort_records(charges);
    sort_records(unpriced);
    sort_records(invoices);
    sort_records(rerate_runs);
  }

private:
  // Records are large (a charge holds some twenty strings and its id lists): they are not
  // swapped around by the sort. Their positions are sorted, and each record moves once. Input
  // that is in order already (one stage's output often is) is only checked.
  template <class Record>
  static void sort_records(std::vector<keyed<Record>>& v) {
    const auto by_key = [](const auto& a, const auto& b) { return a.key < b.key; };
    if (std::is_sorted(v.begin(), v.end(), by_key))
      return;
    std::vector<std::uint32_t> order(v.size());
    for (std::uint32_t i = 0; i < order.size(); ++i)
      order[i] = i;
    // Ties (which order keys do not have) keep their input order.
    std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      const auto c = v[a].key <=> v[b].key;
      return c < 0 || (c == 0 && a < b);
    });
    std::vector<keyed<Record>> sorted;
    sorted.reserve(v.size());
    for (std::uint32_t i : order)
      sorted.push_back(std::move(v[i]));
    v = std::move(sorted);
  }
};

// `t + d` saturating at the watermark's +infinity.
inline timestamp plus(timestamp t, pricing::duration d) {
  return t > watermark_max - d ? watermark_max : t + d;
}

// Numbers the records of one emitter (a stage actor) in emission order: with the step, phase,
// time, customer and metric of the record, a key no other emitter produces.
class emitter {
public:
  std::uint64_t step = 0; // the step being processed
  order_key key(phase p, timestamp t, const std::string& customer, const std::string& metric) {
    return order_key{step, p, t, customer, metric, seq_++};
  }

private:
  std::uint64_t seq_ = 0;
};

// An event for a window actor, with what it contributes to the window's meter. The event id
// lives in the partition's append-only store, which never moves what it holds.
struct window_input {
  timestamp event_time = 0;
  const char* event_id = nullptr; // NUL-terminated
  meter_reading reading;
};

// A final window on its way from the window stage to the rating stage.
struct window_final {
  timestamp start = 0;
  timestamp end = 0;
  std::uint32_t revision = 0;
  std::string aggregation_id;
  window_aggregate aggregate{config::aggregation::count};
  persistence::id_list event_ids; // the final aggregate record's, for the window's charge
};

// The current charge of a window (or of a period, for period-level meters).
struct current_charge {
  persistence::packed_id charge_id;
  decimal quantity;
  decimal amount;
  pricing::rounding_mode rounding = pricing::rounding_mode::half_even;
};

inline current_charge current_charge_of(const persistence::charge_record& c) {
  return {persistence::packed_id(c.charge_id), c.quantity, c.amount(), c.calculation.rounding};
}

// What the invoice accumulator of a customer x period needs of a rating scope: for one final
// window (or the period, for period-level meters, keyed by the period start) its quantity and
// its current charge, if priced.
struct line_update {
  std::string metric;
  timestamp window_start = 0;
  decimal quantity;
  std::optional<current_charge> charge;
};

// What a stage actor emitted for one request: records for the sink, line updates for the
// invoice stage, and `fatal` when an amount overflowed (the run stops with exit status 3).
struct stage_output {
  partition_output records;
  std::vector<line_update> lines;
  std::string fatal;
};

// Runs one request on a stage's state and takes what it emitted. An amount that reaches 10^26
// cannot be represented: the reply says so, and the run stops with exit status 3.
template <class State, class F>
stage_output run_stage(State& state, F&& work) {
  try {
    work(state);
  } catch (const pricing::bad_result_access& e) {
    stage_output out = state.take_output();
    out.fatal = e.what();
    return out;
  }
  return state.take_output();
}

// Routes a customer to one of `partitions` partitions (the same hash the Kafka key would use).
std::uint32_t partition_of(std::string_view customer_id, std::uint32_t partitions);

} // namespace meterflow::actors
