#include "runtime/kafka_mock.hpp"

#include <algorithm>

namespace meterflow::runtime {

mock_kafka_cluster::mock_kafka_cluster(int brokers)
    : brokers_(brokers), owner_(make_kafka_handle(RD_KAFKA_PRODUCER, make_kafka_conf({}))) {
  cluster_ = rd_kafka_mock_cluster_new(owner_.get(), brokers);
  if (!cluster_)
    throw kafka_error("cannot start a mock Kafka cluster of " + std::to_string(brokers) +
                      " brokers");
}

mock_kafka_cluster::~mock_kafka_cluster() {
  rd_kafka_mock_cluster_destroy(cluster_);
}

void mock_kafka_cluster::create_topic(const std::string& topic, int partitions) {
  const auto err =
      rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, std::min(brokers_, 3));
  if (err)
    throw kafka_error("cannot create topic " + topic + ": " + rd_kafka_err2str(err));
}

std::string mock_kafka_cluster::bootstrap() const {
  return rd_kafka_mock_cluster_bootstraps(cluster_);
}

} // namespace meterflow::runtime
