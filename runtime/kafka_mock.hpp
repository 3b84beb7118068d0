#pragma once

// librdkafka's mock cluster: in-process brokers that speak the real Kafka protocol, for
// `meterflow devkafka` and the tests. No replication or persistence: a development stand-in
// for a real cluster, never a store of record.

#include "runtime/kafka_client.hpp"

#include <librdkafka/rdkafka_mock.h>
#include <string>

namespace meterflow::runtime {

class mock_kafka_cluster {
public:
  // Starts `brokers` brokers on ephemeral ports of 127.0.0.1.
  explicit mock_kafka_cluster(int brokers);
  ~mock_kafka_cluster();
  mock_kafka_cluster(const mock_kafka_cluster&) = delete;
  mock_kafka_cluster& operator=(const mock_kafka_cluster&) = delete;

  // Replicated on up to 3 brokers, so acks=all waits for more than the leader where it can.
  void create_topic(const std::string& topic, int partitions);
  // "host:port,host:port,...": what clients take as bootstrap.servers.
  std::string bootstrap() const;
  rd_kafka_mock_cluster_t* get() const { return cluster_; }

private:
  int brokers_;
  kafka_handle_ptr owner_; // the mock cluster lives on a client handle
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

} // namespace meterflow::runtime
