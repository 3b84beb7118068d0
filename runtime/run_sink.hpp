#pragma once

// Collects what the partitions emit during a batch run, puts it into the deterministic global
// order (by order_key) and streams the run's files (SEMANTICS §10). Every record a batch emits
// has a step inside that batch, so each batch is sorted and written on its own: memory holds
// one batch of records, not the run's history. The reconciliation inputs are accumulated on
// the way (current aggregates, current charges, invoices).

#include "actors/dataflow.hpp"
#include "persistence/json_format.hpp"
#include "persistence/store.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace meterflow::runtime {

struct source_counters {
  std::uint64_t received = 0; // non-blank lines
  std::uint64_t rejected = 0; // invalid lines (conflicts are counted by the partitions)
};

// The output directory cannot be made or its files opened (a sink is made before any input is
// read).
class output_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// The file name of an invoice under DIR/invoices/ ("inv_c1_2024-01.json").
std::string invoice_file_name(const std::string& invoice_id);

// What reconciliation needs of the records, accumulated as they stream by. Hash maps: one
// entry per window and per current charge, looked up once per record. An entry holds an
// interned customer x metric scope and packed ids, not strings: a run keeps one entry per
// window and per charge until its end, so their size is the run's memory per event.
struct chain_totals {
  // last_scopes_ points into scopes_of_customer_: moving keeps the map's nodes, copying not.
  chain_totals() = default;
  chain_totals(chain_totals&&) = default;
  chain_totals& operator=(chain_totals&&) = default;
  chain_totals(const chain_totals&) = delete;
  chain_totals& operator=(const chain_totals&) = delete;
  struct scope {
    std::string customer_id, metric, currency;
  };
  std::vector<scope> scopes; // customer x metric x currency, interned
  // The index of a scope in `scopes`, adding it the first time.
  std::uint32_t scope_of(const std::string& customer_id, const std::string& metric,
                         const std::string& currency = "");

  struct window_key {
    std::uint32_t scope = 0; // of customer x metric (no currency)
    pricing::timestamp start = 0;
    friend bool operator==(const window_key&, const window_key&) = default;
    friend auto operator<=>(const window_key&, const window_key&) = default;
  };
  // noexcept: the hash maps then keep no hash code beside each entry (libstdc++).
  struct window_key_hash {
    std::size_t operator()(const window_key& k) const noexcept {
      return (static_cast<std::size_t>(k.start) * 0x9E3779B97F4A7C15ull) ^ k.scope;
    }
  };
  struct aggregate_summary {
    std::uint64_t event_count = 0;
    pricing::decimal value;
  };
  struct charge_summary {
    std::uint32_t scope = 0; // customer x metric x currency
    pricing::timestamp period_start = 0;
    pricing::decimal quantity, amount;
  };
  std::unordered_map<window_key, aggregate_summary, window_key_hash>
      current_aggregates; // last final revision
  std::unordered_map<persistence::packed_id, charge_summary, persistence::packed_id::hasher>
      current_charges; // by charge id
  // Every charge id seen is current or superseded: kept apart, a run holds one set entry per
  // re-rated charge instead of one per charge.
  std::unordered_set<persistence::packed_id, persistence::packed_id::hasher> superseded_charge_ids;
  std::uint64_t charges = 0, aggregate_revisions = 0, duplicate_charge_ids = 0;
  std::string broken_links;                        // charges superseding one that is not current
  std::map<window_key, pricing::decimal> unpriced; // latest listing per window
  std::vector<persistence::unpriced_window> unpriced_listings;

private:
  // Looked up once per record, so it must not allocate or chase pointers: the customer by
  // transparent hashing (no key built), or not at all when the record before had the same
  // customer (records come sorted by customer within a step); then the customer's few scopes
  // by an interned metric x currency number.
  struct text_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using customer_scopes = std::vector<std::pair<std::uint32_t, std::uint32_t>>; // (mc, scope)
  std::unordered_map<std::string, customer_scopes, text_hash, std::equal_to<>> scopes_of_customer_;
  std::vector<std::pair<std::string, std::string>>
      metric_currencies_; // interned (metric, currency)
  std::string last_customer_;
  customer_scopes* last_scopes_ = nullptr; // of last_customer_ (map nodes do not move)
};

class run_sink {
public:
  // With `out_dir`, the files are written there; with `retain`, every record is also kept in
  // memory (for tests and tools that inspect a run).
  explicit run_sink(std::optional<std::filesystem::path> out_dir = std::nullopt,
                    bool retain = true);

  void add(actors::partition_output&& out);
  void add_rejected(persistence::rejected_line&& r) { pending_rejected_.push_back(std::move(r)); }
  void add_rejected(std::vector<persistence::rejected_line>&& rs) {
    pending_rejected_.insert(pending_rejected_.end(), std::make_move_iterator(rs.begin()),
                             std::make_move_iterator(rs.end()));
  }
  // Orders and writes what was added since the last flush; rejected lines up to input line
  // `upto_line` (later ones may still be joined by earlier-numbered conflicts).
  void flush(std::uint64_t upto_line);
  // A partitioned stream: orders and writes everything added, and appends it to the store with
  // the partitions' progress and watermark advances, in one transaction.
  void flush_all(std::vector<persistence::source_progress> progress,
                 std::vector<persistence::watermark_advance> advances);
  void set_counters(const source_counters& source, const actors::partition_counters& partitions);
  // Every flushed batch of records is also appended to `store` (the system of record), with
  // the input position it covers as the progress of `source`, in the same transaction.
  void set_record_store(persistence::record_store* store, std::string source) {
    store_ = store;
    progress_source_ = std::move(source);
  }
  // Test-only fault hook: the last charge of the run is neither written nor counted. Set it
  // before the first add().
  void drop_last_charge() { drop_last_charge_ = true; }
  // Flushes everything and closes the files. Call once, after the last add(); the store
  // records the input as finished at `last_position`.
  void seal(std::uint64_t last_position = 0, bool finished = true);

  const std::vector<actors::keyed<persistence::aggregate_record>>& aggregates() const {
    return aggregates_;
  }
  const std::vector<actors::keyed<persistence::charge_record>>& charges() const { return charges_; }
  const std::vector<actors::keyed<persistence::unpriced_window>>& unpriced() const {
    return unpriced_;
  }
  const std::vector<actors::keyed<persistence::invoice_record>>& invoices() const {
    return invoices_;
  }
  const std::vector<persistence::rejected_line>& rejected() const { return rejected_; }
  const source_counters& source() const { return source_; }
  const actors::partition_counters& partitions() const { return partitions_; }
  const chain_totals& totals() const { return totals_; }

private:
  void take_charge(actors::keyed<persistence::charge_record>&& k);
  void append_to_store(std::uint64_t position, bool finished);
  void write_charge(const actors::keyed<persistence::charge_record>& k);

  std::optional<std::filesystem::path> dir_;
  bool retain_;
  persistence::record_store* store_ = nullptr;
  std::string progress_source_;
  persistence::record_batch to_store_; // what this flush appends to store_
  std::ofstream charges_file_, aggregates_file_, unpriced_file_, rejected_file_;
  std::string buffer_;
  std::set<std::string> stale_invoice_files_;
  actors::partition_output pending_;
  std::vector<persistence::rejected_line> pending_rejected_;
  std::optional<actors::keyed<persistence::charge_record>> held_charge_; // the latest charge
  bool drop_last_charge_ = false;

  std::vector<actors::keyed<persistence::aggregate_record>> aggregates_;
  std::vector<actors::keyed<persistence::charge_record>> charges_;
  std::vector<actors::keyed<persistence::unpriced_window>> unpriced_;
  std::vector<actors::keyed<persistence::invoice_record>> invoices_;
  std::vector<persistence::rejected_line> rejected_;
  source_counters source_;
  actors::partition_counters partitions_;
  chain_totals totals_;
};

} // namespace meterflow::runtime
