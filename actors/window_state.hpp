#pragma once

// The aggregation of one customer x metric x window (SEMANTICS §3), shared by the window
// stage and the re-rater so both compute aggregates with the same code.

#include "config/config.hpp"
#include "persistence/event.hpp"
#include "persistence/records.hpp"

#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace meterflow::actors {

using pricing::decimal;
using pricing::timestamp;

// What an event contributes to a meter: a decimal (count/sum/max/latest) or, for unique_count,
// the canonical JSON text of the metadata field. Empty when the event lacks a valid field
// (the source rejects such events, so this only guards against misuse).
struct meter_reading {
  decimal value;
  std::string distinct_key;
};
std::optional<meter_reading> read_meter(const config::meter& m, const persistence::event_view& e);

// The raw canonical JSON text of a top-level key of a canonical metadata object.
std::optional<std::string> metadata_field(std::string_view canonical_metadata,
                                          std::string_view key);

class window_aggregate {
public:
  explicit window_aggregate(config::aggregation kind) : kind_(kind) {}
  window_aggregate(const window_aggregate& other);
  window_aggregate& operator=(const window_aggregate& other);
  window_aggregate(window_aggregate&&) noexcept = default;
  window_aggregate& operator=(window_aggregate&&) noexcept = default;

  // `e`'s event id must outlive the aggregate: events live in the append-only store, and the
  // aggregate keeps a pointer to the (NUL-terminated) event id instead of a copy.
  void add(const persistence::event_view& e, const meter_reading& reading) {
    add(e.event_time, e.event_id.data(), reading);
  }
  void add(timestamp event_time, const char* event_id, const meter_reading& reading);
  // The window quantity: count, sum, max, distinct count or latest value.
  decimal quantity() const;
  std::uint64_t event_count() const { return event_count_; }
  // Source event ids ordered by (event_time, event_id): independent of arrival order.
  std::vector<std::string> sorted_event_ids() const;
  bool same_content(const window_aggregate& other) const {
    return event_count_ == other.event_count_ && quantity() == other.quantity();
  }

  // Period-level quantity (SEMANTICS §3) over the windows of one period.
  static decimal period_quantity(config::aggregation kind,
                                 const std::vector<const window_aggregate*>& windows);

private:
  struct source {
    timestamp event_time;
    const char* event_id;
    friend bool operator<(const source& a, const source& b) {
      return a.event_time != b.event_time ? a.event_time < b.event_time
                                          : std::strcmp(a.event_id, b.event_id) < 0;
    }
  };
  // What only max, latest and unique_count meters need, allocated for those: a run keeps every
  // final window of a period, and count and sum windows are most of them.
  struct extras {
    std::optional<decimal> max;
    std::optional<std::pair<source, decimal>> latest;
    std::set<std::string> distinct;
  };
  extras& extra();
  config::aggregation kind_;
  std::uint64_t event_count_ = 0;
  decimal sum_;
  std::unique_ptr<extras> extra_;
  std::vector<source> sources_;
};

// The id of revision `revision` of a window's aggregate: the same for the window stage and the
// re-rater, so a re-aggregation names the revision it adds.
std::string aggregation_id(const std::string& customer, const std::string& metric,
                           timestamp window_start, std::uint32_t revision);

persistence::aggregate_record make_aggregate_record(const std::string& customer,
                                                    const std::string& metric, timestamp start,
                                                    timestamp end, std::uint32_t revision,
                                                    persistence::aggregate_kind kind,
                                                    const window_aggregate& aggregate);

} // namespace meterflow::actors
