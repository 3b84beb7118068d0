#include "runtime/kafka_source.hpp"

#include <algorithm>

namespace meterflow::runtime {

struct kafka_source_callbacks {
  static void rebalance(rd_kafka_resp_err_t reason, rd_kafka_topic_partition_list_t* partitions,
                        void* opaque) {
    static_cast<kafka_source*>(opaque)->rebalance(reason, partitions);
  }
};

namespace {

extern "C" void on_rebalance(rd_kafka_t*, rd_kafka_resp_err_t reason,
                             rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  kafka_source_callbacks::rebalance(reason, partitions, opaque);
}

std::vector<std::int32_t> partition_ids(const rd_kafka_topic_partition_list_t* list) {
  std::vector<std::int32_t> ids;
  for (int i = 0; i < list->cnt; ++i)
    ids.push_back(list->elems[i].partition);
  std::sort(ids.begin(), ids.end());
  return ids;
}

} // namespace

kafka_source::kafka_source(const kafka_source_options& options, kafka_source_hooks hooks)
    : hooks_(std::move(hooks)), topic_(options.topic) {
  auto conf = make_kafka_conf(options.properties, {{"bootstrap.servers", options.brokers},
                                                   {"group.id", options.group_id},
                                                   {"enable.auto.commit", "false"},
                                                   {"enable.auto.offset.store", "false"},
                                                   {"auto.offset.reset", "error"},
                                                   {"partition.assignment.strategy", "range"}});
  rd_kafka_conf_set_rebalance_cb(conf.get(), on_rebalance);
  rd_kafka_conf_set_opaque(conf.get(), this);
  handle_ = make_kafka_handle(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(handle_.get());
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, options.topic.c_str(), RD_KAFKA_PARTITION_UA);
  const auto err = rd_kafka_subscribe(handle_.get(), topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err)
    throw kafka_error("cannot subscribe to " + options.topic + ": " + rd_kafka_err2str(err));
}

kafka_source::~kafka_source() {
  try {
    close();
  } catch (const std::exception& e) {
    kafka_logger().error("event=close_failed reason=\"{}\"", e.what());
  }
}

void kafka_source::close() {
  if (closed_)
    return;
  closed_ = true;
  const auto err = rd_kafka_consumer_close(handle_.get());
  handle_.reset();
  rethrow_failure();
  if (err)
    throw kafka_error(std::string("leaving the consumer group: ") + rd_kafka_err2str(err));
}

void kafka_source::rethrow_failure() {
  if (failure_)
    std::rethrow_exception(std::exchange(failure_, nullptr));
}

// librdkafka runs this inside poll() or close(); an exception must not cross its C frames.
void kafka_source::rebalance(rd_kafka_resp_err_t reason,
                             rd_kafka_topic_partition_list_t* partitions) {
  try {
    if (reason == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      assign(partitions);
      return;
    }
    // Anything else is a failed rebalance: the partitions are lost all the same.
    if (reason != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
      kafka_logger().error("event=rebalance_failed reason=\"{}\"", rd_kafka_err2str(reason));
    revoke(partition_ids(partitions));
  } catch (...) {
    failure_ = std::current_exception();
    rd_kafka_assign(handle_.get(), nullptr); // hold nothing the caller does not know about
  }
}

void kafka_source::assign(rd_kafka_topic_partition_list_t* partitions) {
  const auto ids = partition_ids(partitions);
  const kafka_offsets stored = hooks_.assigned ? hooks_.assigned(ids) : kafka_offsets{};
  for (int i = 0; i < partitions->cnt; ++i) {
    auto& p = partitions->elems[i];
    const auto it = stored.find(p.partition);
    p.offset = it == stored.end() ? RD_KAFKA_OFFSET_BEGINNING : it->second;
    if (it != stored.end())
      positions_[p.partition] = it->second;
  }
  if (const auto err = rd_kafka_assign(handle_.get(), partitions))
    throw kafka_error(std::string("cannot take the assigned partitions: ") + rd_kafka_err2str(err));
  assignment_ = ids;
  kafka_logger().info("event=assigned partitions={}", ids.size());
}

void kafka_source::revoke(const std::vector<std::int32_t>& partitions) {
  const auto revoked = [&](std::int32_t p) {
    return std::binary_search(partitions.begin(), partitions.end(), p);
  };
  std::erase_if(batch_, [&](const kafka_message& m) { return revoked(m.partition); });
  // The hook sees the positions of what was returned, the last moment they are known here.
  if (hooks_.revoked)
    hooks_.revoked(partitions);
  std::erase_if(positions_, [&](const auto& entry) { return revoked(entry.first); });
  std::erase_if(assignment_, revoked);
  if (const auto err = rd_kafka_assign(handle_.get(), nullptr))
    throw kafka_error(std::string("cannot give back the revoked partitions: ") +
                      rd_kafka_err2str(err));
  kafka_logger().info("event=revoked partitions={}", partitions.size());
}

std::vector<kafka_message> kafka_source::poll(std::size_t max_messages,
                                              std::chrono::milliseconds max_wait) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + max_wait;
  batch_.clear();
  while (batch_.size() < max_messages) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    rd_kafka_message_t* m =
        rd_kafka_consumer_poll(handle_.get(), static_cast<int>(std::max<long>(left.count(), 0)));
    if (failure_) {
      if (m)
        rd_kafka_message_destroy(m);
      rethrow_failure();
    }
    if (!m) {
      if (left.count() <= 0)
        break;
      continue;
    }
    if (m->err) {
      const std::string what = rd_kafka_message_errstr(m);
      const auto err = m->err;
      const auto partition = m->partition;
      rd_kafka_message_destroy(m);
      char fatal[512];
      if (err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
          rd_kafka_fatal_error(handle_.get(), fatal, sizeof fatal))
        throw kafka_error("partition " + std::to_string(partition) + ": " + what);
      kafka_logger().warn("event=consumer_error partition={} reason=\"{}\"", partition, what);
      continue;
    }
    kafka_message& out = batch_.emplace_back();
    out.partition = m->partition;
    out.offset = m->offset;
    if (m->key)
      out.key.assign(static_cast<const char*>(m->key), m->key_len);
    if (m->payload)
      out.payload.assign(static_cast<const char*>(m->payload), m->len);
    out.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
    rd_kafka_message_destroy(m);
  }
  for (const auto& m : batch_)
    positions_[m.partition] = m.offset + 1;
  return std::exchange(batch_, {});
}

std::int32_t kafka_source::partition_count(std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* metadata = nullptr;
  const auto err =
      rd_kafka_metadata(handle_.get(), 1, nullptr, &metadata, static_cast<int>(timeout.count()));
  if (err)
    throw kafka_error("cannot read the cluster's metadata: " + std::string(rd_kafka_err2str(err)));
  std::int32_t count = -1;
  for (int i = 0; i < metadata->topic_cnt; ++i)
    if (metadata->topics[i].topic == topic_ && !metadata->topics[i].err)
      count = metadata->topics[i].partition_cnt;
  rd_kafka_metadata_destroy(metadata);
  if (count < 0)
    throw kafka_error("the cluster has no topic " + topic_ +
                      " (create it with as many partitions as the engine's --partitions)");
  return count;
}

kafka_offsets kafka_source::end_offsets(std::chrono::milliseconds timeout) {
  kafka_offsets out;
  for (const std::int32_t p : assignment_)
    out[p] = offset_range(p, timeout).second;
  return out;
}

std::int64_t kafka_source::cached_lag() const {
  std::int64_t lag = 0;
  for (const std::int32_t p : assignment_) {
    std::int64_t low = 0, high = 0;
    if (rd_kafka_get_watermark_offsets(handle_.get(), topic_.c_str(), p, &low, &high) || high < 0)
      continue;
    const auto position = positions_.find(p);
    lag +=
        std::max<std::int64_t>(0, high - (position == positions_.end() ? low : position->second));
  }
  return lag;
}

std::pair<std::int64_t, std::int64_t>
kafka_source::offset_range(std::int32_t partition, std::chrono::milliseconds timeout) {
  std::int64_t low = 0, high = 0;
  if (const auto err = rd_kafka_query_watermark_offsets(
          handle_.get(), topic_.c_str(), partition, &low, &high, static_cast<int>(timeout.count())))
    throw kafka_error("cannot read the offsets of partition " + std::to_string(partition) + ": " +
                      rd_kafka_err2str(err));
  return {low, high};
}

} // namespace meterflow::runtime
