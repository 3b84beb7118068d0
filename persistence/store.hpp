#pragma once

// The system of record (SEMANTICS §1): append-only raw events and the records derived from
// them. Two implementations share one contract (tests/persistence/store_contract_test.cpp):
// memory (the embedded default) and PostgreSQL (production).
//
// Raw events are held per partition (an event_store per partition actor) and are memory
// resident in both implementations for re-aggregation; PostgreSQL adds durability: a batch's
// accepted events and the source position it came from commit in one transaction, and an
// event counts as seen only after that commit.

#include "persistence/event.hpp"
#include "persistence/records.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace meterflow::persistence {

// A storage failure (the database is unreachable, a write was refused): nothing of the call
// that threw was stored. A request the record itself refuses (changing a published version, an
// invoice status the lifecycle does not allow, a record pointing at one that is not stored) is
// std::invalid_argument instead, and likewise stores nothing.
class store_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// `replayed`: the event is stored already *from the same input position* — a restarted
// service reading again what it had stored before its records were committed. It is not a
// duplicate: the engine processes it as the accepted event it was.
enum class append_outcome { accepted, duplicate, conflict, replayed };

class event_store {
public:
  virtual ~event_store() = default;

  // Deduplicates `events` (in order) against everything stored and against each other, and
  // durably appends the accepted ones; `positions[i]` is where events[i] came from (its input
  // line or Kafka offset). Returns one outcome per event. Throws on a storage failure: then
  // nothing of the batch counts as seen.
  virtual std::vector<append_outcome> append_batch(std::vector<event>&& events,
                                                   const std::vector<std::uint64_t>& positions) = 0;

  // Read side, in append order. A view of a stored event stays valid for the store's life.
  virtual std::size_t size() const = 0;
  virtual event_view at(std::uint32_t index) const = 0;
  virtual std::uint64_t source_position(std::uint32_t index) const = 0;
  // Indexes of the customer's events, in append order.
  virtual const std::vector<std::uint32_t>& events_of(const std::string& customer_id) const = 0;
  // The event times of events_of(customer_id), position for position: a scan for a time range
  // (a re-rate's windows) reads this compact array and touches only the events in range.
  virtual const std::vector<pricing::timestamp>&
  event_times_of(const std::string& customer_id) const = 0;
  // The index of the event stored from input position `source_position`, if any.
  virtual std::optional<std::uint32_t> index_at(std::uint64_t source_position) const = 0;
};

// A price book version as published (publication order is the order of publish() calls).
struct published_version {
  std::string price_book_id;
  std::string currency;
  std::string version;
  std::string definition_json; // the version's JSON as configured (canonical, compact)
};

struct status_event {
  std::string invoice_id;
  std::string status; // draft, issued, paid, void
  std::string actor;
  std::string reason;
};

struct ledger_entry {
  std::string invoice_id;
  std::string customer_id;
  std::string currency;
  decimal amount;   // the invoice total; a reversal is the negated total
  std::string kind; // invoice | reversal
};

// How far a service got through its input: every record derived from input positions up to
// `position` is stored (committed with them); `finished` once the end of a finite input was
// processed (the watermark went to +infinity).
struct source_progress {
  std::string source;
  std::uint64_t position = 0;
  bool finished = false;
};

// A streaming source's partition whose watermark was advanced without an event of its own
// (it was idle, SEMANTICS §4): after the events up to input `position`, its watermark became
// `watermark`. With the partition's stored events these rebuild its watermark history.
struct watermark_advance {
  std::string source;
  std::uint64_t position = 0;
  timestamp watermark = 0;
};

// The records a run emits, already in global emission order.
struct record_batch {
  std::vector<aggregate_record> aggregates;
  std::vector<charge_record> charges;
  std::vector<unpriced_window> unpriced;
  std::vector<invoice_record> invoices;
  std::vector<rejected_line> rejected;
  std::vector<rerate_run> rerate_runs = {};
  std::vector<source_progress> progress = {}; // committed with the records
  std::vector<watermark_advance> watermark_advances = {};
};

class record_store {
public:
  virtual ~record_store() = default;

  // Appends records in order (emission order continues across calls). Idempotent by id:
  // appending a record whose id is already stored (aggregation_id, charge_id, invoice_id,
  // rejected line) changes nothing, so a replay after a crash never duplicates. An unpriced
  // window's id is its content (customer, metric, window start, quantity, reason).
  // All or nothing: a charge must supersede a stored (or earlier appended) charge that nothing
  // supersedes yet, and a correction must correct a stored invoice; otherwise the call throws
  // std::invalid_argument and stores nothing. Appending an invoice records its status as the
  // first status event and, when that status is "issued", books its total in the ledger.
  virtual void append(const record_batch& batch) = 0;

  // Every aggregate revision of a window, by revision.
  virtual std::vector<aggregate_record> aggregate_revisions(const std::string& customer_id,
                                                            const std::string& metric,
                                                            timestamp window_start) const = 0;
  // Every charge in emission order, superseded ones included.
  virtual std::vector<charge_record> charges() const = 0;
  // The charges no later charge supersedes, for a customer and metric, by window start.
  virtual std::vector<charge_record> current_charges(const std::string& customer_id,
                                                     const std::string& metric) const = 0;
  virtual std::optional<invoice_record> invoice(const std::string& invoice_id) const = 0;
  // The standard invoice and its corrections, in issue order.
  virtual std::vector<invoice_record> invoices_of(const std::string& customer_id,
                                                  const pricing::period& period) const = 0;
  // Unpriced windows and rejected lines, in emission order.
  virtual std::vector<unpriced_window> unpriced() const = 0;
  virtual std::vector<rejected_line> rejected() const = 0;
  // Re-rate runs, in the order they were recorded.
  virtual std::vector<rerate_run> rerate_runs() const = 0;
  // The latest progress appended for `source`.
  virtual std::optional<source_progress> progress(const std::string& source) const = 0;
  // The watermark advances appended for `source`, by position.
  virtual std::vector<watermark_advance> watermark_advances(const std::string& source) const = 0;

  // Invoice lifecycle as appended status events; the current status is the latest one. Allowed:
  // draft -> issued -> paid | void, for a stored invoice (else std::invalid_argument). Issuing
  // books the invoice's total in the ledger, voiding an issued invoice books its reversal.
  virtual void append_status(const status_event& e) = 0;
  virtual std::optional<std::string> current_status(const std::string& invoice_id) const = 0;
  virtual std::vector<ledger_entry> ledger() const = 0;

  // Price books: append-only versions in publication order. Publishing a version name that
  // exists with a different definition, or into a book of another currency, throws
  // std::invalid_argument; the same definition again changes nothing.
  virtual void publish(const published_version& v) = 0;
  virtual std::vector<published_version> versions(const std::string& price_book_id) const = 0;
};

std::unique_ptr<record_store> make_memory_record_store();

// The invoice lifecycle, shared by every store: draft -> issued -> paid | void, each change
// with an actor, and a reason when voiding. Throws std::invalid_argument naming the problem.
void check_status_change(const std::string& current, const status_event& change);

} // namespace meterflow::persistence
