#include "runtime/partition_watermarks.hpp"

#include <algorithm>
#include <optional>

namespace meterflow::runtime {

partition_watermarks::partition_watermarks(pricing::duration max_out_of_orderness,
                                           pricing::duration idle_timeout)
    : max_out_of_orderness_(max_out_of_orderness), idle_timeout_(idle_timeout) {}

void partition_watermarks::assign(std::int32_t partition, timestamp watermark,
                                  clock::time_point now) {
  partitions_[partition] = {watermark, now, false};
}

void partition_watermarks::revoke(std::int32_t partition) {
  partitions_.erase(partition);
}

void partition_watermarks::activity(std::int32_t partition, clock::time_point now) {
  auto& p = partitions_.at(partition);
  p.last_activity = now;
  p.idle = false;
}

partition_watermarks::timestamp
partition_watermarks::observe(std::int32_t partition, timestamp event_time, clock::time_point now) {
  activity(partition, now);
  auto& p = partitions_.at(partition);
  p.watermark = std::max(p.watermark, event_time - max_out_of_orderness_);
  return p.watermark;
}

partition_watermarks::timestamp partition_watermarks::advance(clock::time_point now) {
  std::optional<timestamp> active_min;
  for (auto& [id, p] : partitions_) {
    // In microseconds: a timeout of years would overflow the clock's nanoseconds.
    const auto quiet = std::chrono::duration_cast<std::chrono::microseconds>(now - p.last_activity);
    p.idle = idle_timeout_ > 0 && quiet.count() >= idle_timeout_;
    if (!p.idle)
      active_min = std::min(active_min.value_or(p.watermark), p.watermark);
  }
  if (active_min)
    source_ = std::max(source_, *active_min);
  for (auto& [id, p] : partitions_)
    if (p.idle)
      p.watermark = std::max(p.watermark, source_);
  return source_;
}

} // namespace meterflow::runtime
