#pragma once

// The driver of `run` and `serve`: the source side of the actor graph and its supervisor. It
// routes batches of validated events to the partition actors (admit: dedup + store), hands them
// the watermark steps to apply, restarts a crashed partition from the store (budget 3), and
// passes everything the partitions emit to the sink, which orders it and writes files and the
// store.
//
// Two kinds of source:
//  - one logical source (a file): every partition runs from the start and applies the same
//    watermark steps, computed in input order (SEMANTICS §4, batch mode); the input position is
//    the line number;
//  - a partitioned stream (Kafka): partition p of the engine reads partition p of the topic,
//    starts when the partition is assigned and stops when it is revoked; each has its own
//    watermark steps, input position (stream_position) and progress in the store.

#include "actors/faults.hpp"
#include "actors/partition_actor.hpp"
#include "config/config.hpp"
#include "persistence/pg_store.hpp"
#include "runtime/run_sink.hpp"
#include "runtime/sink_thread.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace meterflow::runtime {

// Test-only fault hooks, from the environment so no user-facing option exposes them:
//   METERFLOW_TEST_FAULT=crash_partition:P:B   partition P throws while applying batch B
//   METERFLOW_TEST_FAULT=crash_stage:S:N       the N-th message a stage S (window, rating or
//                                              invoice) handles throws
//   METERFLOW_TEST_FAULT=break_chain           drop the last charge before reconciling
struct fault_hooks {
  std::uint32_t crash_partition = 0;
  std::uint64_t crash_batch = 0;
  bool break_chain = false;
};
fault_hooks read_fault_hooks();

// The one progress line on a terminal's stderr.
class progress_line {
public:
  explicit progress_line(bool enabled);
  void update(std::uint64_t events, pricing::timestamp watermark, std::size_t open_windows);
  void done();

private:
  using clock = std::chrono::steady_clock;
  bool enabled_;
  clock::time_point start_, last_;
};

// A stream message's input position: partition × 2^40 + offset + 1. Unique across the topic's
// partitions (rejected lines are keyed by it), increasing with the offset within a partition,
// never 0 (0 means "nothing yet").
constexpr std::uint64_t stream_position(std::int32_t partition, std::int64_t offset) {
  return (static_cast<std::uint64_t>(partition) << 40) + static_cast<std::uint64_t>(offset) + 1;
}
// The partition of the message at `position`.
constexpr std::int32_t partition_of_position(std::uint64_t position) {
  return static_cast<std::int32_t>(position >> 40);
}
// The offset of the message after the one at `position`.
constexpr std::int64_t next_offset_after(std::uint64_t position) {
  return static_cast<std::int64_t>(position & ((std::uint64_t{1} << 40) - 1));
}

struct driver_options {
  std::uint32_t partitions = 4;
  fault_hooks faults;
  std::optional<std::string> out_dir, store_url;
  // serve: continue from the store's committed progress.
  bool resume = false;
  // A partitioned stream: partitions start with start_partition(); the progress of partition p
  // is recorded under stream_source + p ("kafka:telemetry-events:3").
  std::optional<std::string> stream_source;
};

// Where a started stream partition resumes.
struct stream_resume {
  std::uint64_t position = 0; // of the last message whose records are committed; 0: none
  pricing::timestamp watermark = actors::watermark_min; // after it
  bool finished = false; // its input was drained to the end before (serve --drain)
};

class engine_driver {
public:
  using timestamp = pricing::timestamp;
  static constexpr const char* file_progress_source = "events";

  // A file source starts every partition; a stream starts none.
  engine_driver(caf::actor_system& sys, const config::configuration& cfg,
                const driver_options& options);
  // Stops the partitions and waits for them: they use the stores this driver owns.
  ~engine_driver();

  // --- one logical source ---
  // The input position whose records are all committed (0: nothing yet), and whether the
  // store's input was processed to its end already.
  std::uint64_t committed_position() const { return applied_upto_[0]; }
  bool finished_before() const { return finished_before_; }
  // One batch: admit, compute the watermark steps in input order, and start applying them. The
  // partitions apply while the caller parses the next batch; the next call (or finish())
  // collects their reports first.
  void process(std::vector<actors::sequenced_event>&& events, std::vector<std::string>&& raws,
               bool end_of_input);
  // Collects the batch being applied and writes (and commits) its records now, rather than
  // with the next batch: for a source that waits for more input.
  void commit_applied();
  // Collects the last batch's reports and waits for the sink to write every earlier batch.
  void finish();
  timestamp watermark() const { return watermark_; }

  // --- a partitioned stream ---
  // Starts partition p from the store: rebuilds its state up to its committed progress.
  stream_resume start_partition(std::uint32_t p);
  // Collects, commits, and stops partition p (revoked).
  void stop_partition(std::uint32_t p);
  bool running(std::uint32_t p) const { return slots_[p].handle != nullptr; }
  // Admits a batch (every event of a running partition) and returns each event's outcome, in
  // input order. Conflicts are recorded as rejected lines.
  std::vector<persistence::append_outcome> admit(std::vector<actors::sequenced_event>&& events,
                                                 std::vector<std::string>&& raws);
  // Starts applying each running partition's steps (absent: none); `upto[p]` is the position
  // of the partition's last message of the batch.
  void apply(std::map<std::uint32_t, actors::watermark_steps>&& steps,
             const std::map<std::uint32_t, std::uint64_t>& upto);
  // Collects and commits every record emitted so far with the running partitions' progress
  // and `advances` (idle partitions' watermark moves), in one transaction.
  void commit_stream(std::vector<persistence::watermark_advance> advances, bool finished = false);
  // After a re-rate wrote superseding charges and corrections to the store: every running
  // partition adopts the charges and invoices the store now holds for its customers.
  void adopt_stored();

  // --- both ---
  // Waits for every partition's report of the batch being applied. Supervision: a partition
  // that fails while applying is restarted (up to the restart budget), rebuilds its state from
  // the store, and gets the batch again.
  void collect();
  // A line the source rejected (or a conflict): written with the batch that covers its line.
  void add_rejected(persistence::rejected_line&& r);
  // The sink, with everything collected so far handed to it: a file source's sink writes on a
  // thread of its own (sink_thread), which this waits for.
  run_sink& sink();
  std::size_t open_windows() const;
  actors::partition_counters counters() const;
  // A stream partition's progress source in the store ("kafka:telemetry-events:3").
  std::string source_of(std::uint32_t p) const {
    return *options_.stream_source + std::to_string(p);
  }
  const std::string& fatal() const { return fatal_; }

private:
  struct slot {
    actors::partition_actor handle;
    std::unique_ptr<persistence::event_store> store;
    int restarts = 0;
    actors::partition_counters counters;
    std::size_t open_windows = 0;
    // Stream: this partition's steps so far, the batch's steps, and positions.
    std::vector<actors::watermark_step> history;
    actors::watermark_steps steps;
    bool applying = false;
  };

  std::unique_ptr<persistence::event_store> open_store(std::uint32_t p) const;
  void check_partitioning(const std::string& store_url);
  void resume_from(const std::optional<persistence::source_progress>& progress);
  void spawn(std::uint32_t p, bool restore);
  template <class... Ts>
  void wait_for(std::uint32_t p, const char* what, Ts&&... xs);
  actors::stored_state stored_state_of(std::uint32_t p) const;
  void restart(std::uint32_t p, const std::string& why);
  std::vector<actors::watermark_step>& history_of(std::uint32_t p) {
    return stream() ? slots_[p].history : history_;
  }
  bool stream() const { return options_.stream_source.has_value(); }
  // What a partition reported goes to the sink (through the sink thread for a file source).
  void stage(actors::partition_output&& output);
  // Writes what was collected, and rejected lines up to `upto_line`: on the sink thread for a
  // file source (returning at once), else now.
  void flush_sink(std::uint64_t upto_line);
  // Waits for the sink thread and hands the sink what is still staged, without writing it.
  void settle_sink();

  caf::actor_system& sys_;
  caf::scoped_actor self_;
  const config::configuration& cfg_;
  driver_options options_;
  std::vector<slot> slots_;
  std::unique_ptr<persistence::record_store> records_;
  run_sink sink_;
  // A file source: what the partitions reported and the rejected lines since the last flush,
  // and the thread that writes them (declared after sink_: it stops before the sink goes).
  actors::partition_output staged_;
  std::vector<persistence::rejected_line> staged_rejected_;
  std::unique_ptr<sink_thread> writer_;
  std::uint64_t batch_no_ = 0;
  timestamp watermark_ = actors::watermark_min; // file: the one source's
  std::vector<actors::watermark_step> history_; // file: every partition's
  // By partition for a stream; a file uses [0] for all: the last input position applied, the
  // last one whose records were flushed, the batch being applied's last one.
  std::vector<std::uint64_t> applied_upto_, flushed_upto_, batch_upto_;
  bool resumed_ = false, finished_before_ = false;
  std::unique_ptr<persistence::pg_service_lock> service_lock_; // serve: held while it runs
  bool adopt_stored_ = false; // the store was re-rated by hand: partitions adopt its charges
  std::uint64_t duplicates_ = 0, conflicts_ = 0;
  std::string fatal_;
};

} // namespace meterflow::runtime
