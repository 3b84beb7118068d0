#pragma once

// The state of one partition actor: the customers whose `customer_id` hashes to it, their
// deduplicated events, open windows, final windows with their current charges, invoices and
// pending re-rates (SEMANTICS §2-§7). Pure C++ (no CAF): the actor feeds it batches and
// watermark steps and forwards what it emits.
//
// Everything it emits carries an `order_key` built from the input alone (the step = the input
// sequence number of the event whose watermark advance caused it), so merging the output of
// any number of partitions by key gives the same files whatever the partitioning.

#include "actors/window_state.hpp"
#include "config/config.hpp"
#include "persistence/records.hpp"
#include "persistence/store.hpp"

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
  std::vector<std::pair<std::uint64_t, std::string>> conflicts; // (line, detail)

  bool empty() const {
    return aggregates.empty() && charges.empty() && unpriced.empty() && invoices.empty() &&
           conflicts.empty();
  }
};

class partition_state {
public:
  partition_state(const config::configuration& cfg, persistence::event_store& store);
  ~partition_state();
  partition_state(const partition_state&) = delete;
  partition_state& operator=(const partition_state&) = delete;

  // Phase 1 of a batch: deduplicates and stores the events (in order); returns one outcome per
  // event. Accepted events wait for apply().
  std::vector<persistence::append_outcome> admit(std::vector<sequenced_event>&& events);

  // Phase 2: applies the admitted events interleaved with the source's watermark steps of the
  // same batch (every step of the batch, from every partition's events), in input order.
  void apply(const std::vector<watermark_step>& steps);

  // End of a batch input: the watermark goes to +infinity; every window finalizes, every
  // pending re-rate runs and every period's invoice is issued.
  void finish();

  // Rebuilds the state after a crash from the store: replays the stored events up to input
  // position `applied_upto` against the watermark `history` (discarding what that re-emits,
  // which was delivered before). With `queue_later_events` the later stored events wait for
  // the next apply() (a partition restarted within a run); without, they come back from the
  // source as `replayed` (a restarted service reading its input again).
  void restore(const std::vector<watermark_step>& history, std::uint64_t applied_upto,
               bool queue_later_events = true);

  partition_output take_output();
  const partition_counters& counters() const { return counters_; }
  std::size_t open_windows() const;
  timestamp watermark() const { return watermark_; }

private:
  struct impl;
  std::unique_ptr<impl> impl_;
  partition_counters counters_;
  timestamp watermark_ = watermark_min;
};

// Routes a customer to one of `partitions` partitions (the same hash the Kafka key would use).
std::uint32_t partition_of(const std::string& customer_id, std::uint32_t partitions);

} // namespace meterflow::actors
