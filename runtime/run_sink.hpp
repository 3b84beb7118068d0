#pragma once

// Collects what the partitions emit during a batch run, merges it into the deterministic
// global order (by order_key) and writes the run's files (SEMANTICS §10).

#include "actors/partition_state.hpp"
#include "persistence/json_format.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace meterflow::runtime {

struct source_counters {
  std::uint64_t received = 0; // non-blank lines
  std::uint64_t rejected = 0; // invalid lines (conflicts are counted by the partitions)
};

// The file name of an invoice under DIR/invoices/ ("inv_c1_2024-01.json").
std::string invoice_file_name(const std::string& invoice_id);

class run_sink {
public:
  void add(actors::partition_output&& out);
  void add_rejected(persistence::rejected_line&& r) { rejected_.push_back(std::move(r)); }
  void set_counters(const source_counters& source, const actors::partition_counters& partitions);

  // Sorts everything into its global order. Call once, after the last add().
  void seal();

  const std::vector<actors::keyed<persistence::aggregate_record>>& aggregates() const {
    return aggregates_;
  }
  const std::vector<actors::keyed<persistence::charge_record>>& charges() const { return charges_; }
  std::vector<actors::keyed<persistence::charge_record>>& mutable_charges() { return charges_; }
  const std::vector<actors::keyed<persistence::unpriced_window>>& unpriced() const {
    return unpriced_;
  }
  const std::vector<actors::keyed<persistence::invoice_record>>& invoices() const {
    return invoices_;
  }
  const std::vector<persistence::rejected_line>& rejected() const { return rejected_; }
  const source_counters& source() const { return source_; }
  const actors::partition_counters& partitions() const { return partitions_; }

  // Writes invoices/, charges.ndjson, aggregates.ndjson, rejected.ndjson, unpriced.ndjson.
  void write(const std::filesystem::path& dir) const;

private:
  std::vector<actors::keyed<persistence::aggregate_record>> aggregates_;
  std::vector<actors::keyed<persistence::charge_record>> charges_;
  std::vector<actors::keyed<persistence::unpriced_window>> unpriced_;
  std::vector<actors::keyed<persistence::invoice_record>> invoices_;
  std::vector<persistence::rejected_line> rejected_;
  source_counters source_;
  actors::partition_counters partitions_;
};

} // namespace meterflow::runtime
