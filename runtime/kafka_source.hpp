#pragma once

// A Kafka consumer-group member that reads event lines for the engine with exactly-once
// hand-over to its store: librdkafka commits nothing (enable.auto.commit=false,
// enable.auto.offset.store=false). The caller stores each batch's events together with
// positions() in one database transaction and, when partitions are assigned, tells the source
// where its store says to go on; a partition the store knows nothing about is read from its
// beginning. A stored offset the topic no longer holds (deleted by retention) is an error, not a
// silent jump to the earliest or latest message.
//
// Rebalances are eager (partition.assignment.strategy=range): every partition is revoked, then
// the new assignment is handed out. Hooks and poll() run on the caller's thread.

#include "runtime/kafka_client.hpp"

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace meterflow::runtime {

struct kafka_message {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key; // the producer's: customer_id, or empty
  std::string payload;
  // The message's timestamp in ms since the epoch, as the producer (CreateTime) or the broker
  // (LogAppendTime) set it; -1 when it has none. Arrival time, for audit only: never event time.
  std::int64_t timestamp_ms = -1;
};

// Partition -> the offset of the next message to read.
using kafka_offsets = std::map<std::int32_t, std::int64_t>;

struct kafka_source_options {
  std::string brokers; // bootstrap.servers
  std::string topic;
  std::string group_id;
  // More librdkafka properties (security.*, session.timeout.ms, ...). Those the guarantees
  // above rest on are set by the source and cannot be overridden.
  kafka_properties properties;
};

struct kafka_source_hooks {
  // Partitions given to this member. Returns the offsets the caller's store holds for them.
  std::function<kafka_offsets(const std::vector<std::int32_t>&)> assigned;
  // Partitions taken away. The caller must store what it received from them before returning:
  // their next owner starts from the offsets in the store. Messages of theirs that poll() had
  // fetched but not returned yet are dropped (the next owner reads them).
  std::function<void(const std::vector<std::int32_t>&)> revoked;
};

class kafka_source {
public:
  // Joins the group and subscribes; partitions come with a later poll().
  kafka_source(const kafka_source_options& options, kafka_source_hooks hooks);
  ~kafka_source(); // close(), errors logged
  kafka_source(const kafka_source&) = delete;
  kafka_source& operator=(const kafka_source&) = delete;

  // Up to `max_messages` messages, waiting at most `max_wait` for them (fewer, or none, when
  // that passes), in the order of each partition. Rebalance hooks run inside it. Throws
  // kafka_error on an error that reading on would turn into a loss (offset out of range,
  // fatal client error), and rethrows what a hook threw.
  std::vector<kafka_message> poll(std::size_t max_messages, std::chrono::milliseconds max_wait);

  // For every assigned partition with a known position: the offset after the last message
  // poll() returned, else the offset `assigned` gave. What to store with the returned events.
  const kafka_offsets& positions() const { return positions_; }
  // The partitions this member holds, ascending.
  const std::vector<std::int32_t>& assignment() const { return assignment_; }

  // The topic's number of partitions, from the cluster's metadata. Throws kafka_error when the
  // cluster does not answer within `timeout` or does not know the topic.
  std::int32_t partition_count(std::chrono::milliseconds timeout);
  // For every assigned partition, the offset after the last message the cluster holds (its
  // high watermark), asked of the cluster. Throws kafka_error.
  kafka_offsets end_offsets(std::chrono::milliseconds timeout);
  // The messages the assigned partitions hold after this member's positions, from the offsets
  // the last fetches reported (no request; 0 before the first fetch).
  std::int64_t cached_lag() const;
  // The offsets of the first message the cluster holds of `partition` (retention deletes older
  // ones) and of the one after its last, asked of the cluster. Throws kafka_error.
  std::pair<std::int64_t, std::int64_t> offset_range(std::int32_t partition,
                                                     std::chrono::milliseconds timeout);

  // Leaves the group: `revoked` runs for the partitions held. Idempotent; nothing but
  // destruction may follow.
  void close();

private:
  friend struct kafka_source_callbacks;
  void rebalance(rd_kafka_resp_err_t reason, rd_kafka_topic_partition_list_t* partitions);
  void assign(rd_kafka_topic_partition_list_t* partitions);
  void revoke(const std::vector<std::int32_t>& partitions);
  void rethrow_failure();

  kafka_source_hooks hooks_;
  kafka_offsets positions_;
  std::vector<std::int32_t> assignment_;
  std::vector<kafka_message> batch_; // being filled by poll()
  std::exception_ptr failure_;       // thrown inside a librdkafka callback
  kafka_handle_ptr handle_;
  std::string topic_;
  bool closed_ = false;
};

} // namespace meterflow::runtime
