#pragma once

// The PostgreSQL store (production; docs/postgresql.md). Raw events stay memory resident for
// re-aggregation as in the memory store: pg_event_store keeps a memory_store as its read side
// and dedup index, and a batch enters it only after the batch committed. Records are written
// in one transaction per append and read back by SQL. A store is given a `postgresql://` URL
// or a libpq keyword string, and needs the schema of `meterflow migrate` (pg_schema.hpp).

#include "persistence/memory_store.hpp"
#include "persistence/store.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace meterflow::persistence {

class pg_event_store final : public event_store {
public:
  // Connects and loads partition `partition`'s stored events, in append order, into the read
  // side and the dedup index. `partition` is the engine partition that owns the customers, so
  // a database keeps its partition count. `source` names the input whose consumed positions
  // are committed with the events. Throws store_error (unreachable, schema not current).
  static std::unique_ptr<pg_event_store> load(const std::string& conninfo, int partition,
                                              std::string source = "events");
  ~pg_event_store() override;

  // Deduplicates like the memory store, then writes the accepted events (COPY) and a
  // source_offsets row (the batch's highest position and its dedup counts) in one transaction.
  // The events count as seen once it committed; on a throw (store_error) none of them do.
  std::vector<append_outcome> append_batch(std::vector<event>&& events,
                                           const std::vector<std::uint64_t>& positions) override;

  std::size_t size() const override { return events_.size(); }
  event_view at(std::uint32_t index) const override { return events_.at(index); }
  std::uint64_t source_position(std::uint32_t index) const override {
    return events_.source_position(index);
  }
  const std::vector<std::uint32_t>& events_of(const std::string& customer_id) const override {
    return events_.events_of(customer_id);
  }
  const std::vector<pricing::timestamp>&
  event_times_of(const std::string& customer_id) const override {
    return events_.event_times_of(customer_id);
  }
  std::optional<std::uint32_t> index_at(std::uint64_t source_position) const override {
    return events_.index_at(source_position);
  }

  // The highest committed source position of this partition and source, batches of duplicates
  // included; none before the first batch.
  std::optional<std::uint64_t> consumed_position() const { return consumed_; }

private:
  struct connection;
  pg_event_store(std::unique_ptr<connection> c, int partition, std::string source);
  void write(const std::vector<event>& events, const std::vector<std::uint64_t>& positions,
             const std::vector<std::uint32_t>& accepted, std::uint64_t position, int duplicates,
             int conflicts);

  std::unique_ptr<connection> connection_;
  int partition_;
  std::string source_;
  memory_store events_;
  std::optional<std::uint64_t> consumed_;
};

// The store's one service: `meterflow serve` holds it while it runs, and commands that must not
// run beside a service (`meterflow rerate`) take it as well. A session-level advisory lock on a
// connection of its own: PostgreSQL releases it when the holder ends, even by a crash.
class pg_service_lock {
public:
  // Nothing when another process holds it. Throws store_error (unreachable, schema not current).
  // `shared`: the members of one consumer group share the store, each writing the partitions
  // it was assigned; they exclude the exclusive holders (a file-fed serve, rerate) and are
  // excluded by them.
  static std::unique_ptr<pg_service_lock> try_acquire(const std::string& conninfo,
                                                      bool shared = false);
  ~pg_service_lock();

private:
  struct connection;
  explicit pg_service_lock(std::unique_ptr<connection> c);
  std::unique_ptr<connection> connection_;
};

// Reads of the HTTP API that only the PostgreSQL store answers (by period, by charge id, pages
// of invoices): the memory store keeps no such indexes. One connection; not thread-safe. Each
// call reads in one snapshot; throws store_error when the store cannot be read.
class pg_record_reader {
public:
  static std::unique_ptr<pg_record_reader> connect(const std::string& conninfo);
  ~pg_record_reader();

  // Every price book with a published version, by id.
  std::vector<std::string> price_book_ids() const;
  // A customer's billing period, read in one snapshot (a running service may be appending):
  // of the windows that start in it every aggregate revision (by metric, window start,
  // revision), the charges in force (by metric, window start) and the unpriced listings; its
  // invoices in issue order, `status` their current status.
  struct customer_period {
    std::vector<aggregate_record> aggregates;
    std::vector<charge_record> current_charges;
    std::vector<unpriced_window> unpriced;
    std::vector<invoice_record> invoices;
  };
  customer_period period_of(const std::string& customer_id, const pricing::period& period) const;
  // What re-rating a billing period needs, for one customer or (nullopt) every customer, read in
  // one snapshot with four queries whatever the number of windows: the latest final aggregate
  // revision of each window that starts in the period (by customer, metric, window start), the
  // charges in force (same order) and the invoices with their lines (in issue order).
  struct rerate_inputs {
    std::vector<aggregate_record> final_aggregates;
    std::vector<charge_record> current_charges;
    std::vector<invoice_record> invoices;
  };
  rerate_inputs rerate_inputs_of(const std::optional<std::string>& customer_id,
                                 const pricing::period& period) const;
  std::optional<charge_record> charge(const std::string& charge_id) const;
  // The charge that supersedes `charge_id`, if one does.
  std::optional<charge_record> superseding(const std::string& charge_id) const;

  struct invoice_filter {
    std::optional<std::string> customer_id;
    std::optional<pricing::period> period;
    std::size_t limit = 100;
    std::size_t offset = 0;
  };
  // Invoices in issue order, `status` their current status.
  std::vector<invoice_record> invoices(const invoice_filter& filter) const;

private:
  struct connection;
  explicit pg_record_reader(std::unique_ptr<connection> c);
  std::unique_ptr<connection> connection_;
};

// The run's records in PostgreSQL. Throws store_error when the database is unreachable or its
// schema is not current.
std::unique_ptr<record_store> make_pg_record_store(const std::string& conninfo);

} // namespace meterflow::persistence
