#pragma once

// The sink as a pipeline stage of its own: a thread that puts each batch's records in order and
// writes them (run_sink::flush) while the driver reads, validates and admits the next batches
// and the partitions apply them. Batches are written one after another in the order they were
// submitted, so the files are the same as when the driver writes them itself.
//
// At most `max_queued` batches wait: a slow disk holds the driver back instead of letting the
// records pile up in memory. A failure while writing (a full disk, a total reaching 10^26) is
// rethrown to the driver, with its type, at its next submit() or drain(); nothing after the
// failed batch is written.

#include "actors/dataflow.hpp"
#include "persistence/records.hpp"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace meterflow::runtime {

class run_sink;

class sink_thread {
public:
  struct batch {
    actors::partition_output output;
    std::vector<persistence::rejected_line> rejected;
    std::uint64_t upto_line = 0; // run_sink::flush's argument
  };

  explicit sink_thread(run_sink& sink, std::size_t max_queued = 2);
  // Writes what is queued (unless a batch failed) and stops the thread.
  ~sink_thread();
  sink_thread(const sink_thread&) = delete;
  sink_thread& operator=(const sink_thread&) = delete;

  // Queues a batch, waiting while `max_queued` batches wait already.
  void submit(batch&& b);
  // Waits until every submitted batch is written: the sink may then be used directly.
  void drain();

private:
  void loop();
  void rethrow_failure(); // with mutex_ held

  run_sink& sink_;
  const std::size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<batch> queue_;
  bool busy_ = false, stopping_ = false;
  std::exception_ptr failure_;
  std::thread thread_;
};

} // namespace meterflow::runtime
