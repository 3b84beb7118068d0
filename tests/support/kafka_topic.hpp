#pragma once

// Reads back what a test published to a topic of librdkafka's mock cluster.

#include "runtime/kafka_client.hpp"
#include "runtime/kafka_mock.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace meterflow::test {

struct topic_message {
  std::int32_t partition;
  std::string key;
  std::string payload;
};

// Every message of the topic's `partitions` partitions, read by partition assignment (no
// consumer group: no join wait).
inline std::vector<topic_message> read_topic(const runtime::mock_kafka_cluster& cluster,
                                             const std::string& topic, int partitions) {
  using namespace std::chrono_literals;
  auto conf = runtime::make_kafka_conf({}, {{"bootstrap.servers", cluster.bootstrap()},
                                            {"group.id", "test-topic-reader"},
                                            {"enable.auto.commit", "false"},
                                            {"auto.offset.reset", "earliest"}});
  auto consumer = runtime::make_kafka_handle(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(consumer.get());
  std::map<std::int32_t, std::int64_t> ends;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0, high = 0;
    REQUIRE(rd_kafka_query_watermark_offsets(consumer.get(), topic.c_str(), p, &low, &high, 5000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR);
    ends[p] = high;
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  REQUIRE(rd_kafka_assign(consumer.get(), list) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(list);
  std::size_t expected = 0;
  for (const auto& [p, end] : ends)
    expected += static_cast<std::size_t>(end);
  std::vector<topic_message> out;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), 100);
    if (!m)
      continue;
    if (!m->err)
      out.push_back({m->partition, std::string(static_cast<const char*>(m->key), m->key_len),
                     std::string(static_cast<const char*>(m->payload), m->len)});
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(consumer.get());
  REQUIRE(out.size() == expected);
  return out;
}

} // namespace meterflow::test
