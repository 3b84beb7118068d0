#pragma once

// The watermarks of a streaming source (SEMANTICS §4), one per Kafka partition: a partition's
// watermark is the greatest event time of its accepted events minus
// watermark.max_out_of_orderness and never moves backwards. The source watermark is the minimum
// over the assigned partitions that are not idle. A partition without messages for
// watermark.idle_timeout is idle: it stops holding the source back and is advanced to the
// source watermark, so the windows of its quiet customers still close; a message makes it
// active again. Plain C++: the caller passes the monotonic time, so tests control idleness.

#include "actors/dataflow.hpp"

#include <chrono>
#include <cstdint>
#include <map>

namespace meterflow::runtime {

class partition_watermarks {
public:
  using clock = std::chrono::steady_clock;
  using timestamp = pricing::timestamp;

  // An idle timeout of 0 turns idleness off: a partition holds the source back until revoked.
  partition_watermarks(pricing::duration max_out_of_orderness, pricing::duration idle_timeout);

  // A partition given to the source with the watermark it had reached (from the store;
  // actors::watermark_min when new). It holds the source back from `now` on, until it goes
  // idle: it may have a backlog to deliver.
  void assign(std::int32_t partition, timestamp watermark, clock::time_point now);
  void revoke(std::int32_t partition);

  // A message of the partition at `now` (any: accepted, duplicate, rejected): it is active.
  void activity(std::int32_t partition, clock::time_point now);
  // An accepted event of the partition (activity too). Returns the partition's watermark.
  timestamp observe(std::int32_t partition, timestamp event_time, clock::time_point now);

  // Marks idle the partitions whose last message (or assignment) is idle_timeout old or older,
  // moves the source watermark up to the minimum over the active ones (it stays when none is
  // active) and the idle ones up to it. Returns the source watermark.
  timestamp advance(clock::time_point now);

  timestamp source() const { return source_; }
  // Of an assigned partition (std::out_of_range otherwise).
  timestamp of(std::int32_t partition) const { return partitions_.at(partition).watermark; }
  bool idle(std::int32_t partition) const { return partitions_.at(partition).idle; }

private:
  struct tracked_partition {
    timestamp watermark = actors::watermark_min;
    clock::time_point last_activity;
    bool idle = false;
  };

  pricing::duration max_out_of_orderness_;
  pricing::duration idle_timeout_;
  std::map<std::int32_t, tracked_partition> partitions_;
  timestamp source_ = actors::watermark_min;
};

} // namespace meterflow::runtime
