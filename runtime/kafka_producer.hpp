#pragma once

// Publishes raw NDJSON event lines to a Kafka topic, keyed by customer_id, and reports for
// every line whether the cluster acknowledged it durably. An ingestion front end (the HTTP API)
// answers 202 only after flush() reported its lines delivered.
//
// Partitioning: a line goes to partition partition_of(customer_id, partition count), the hash
// the engine routes customers with, so with as many topic partitions as engine partitions
// Kafka partition p holds exactly the customers engine partition p owns, and one customer's
// events are always in one partition, in the order they were sent.
//
// A line without a customer_id string (absent, null, not a string, not a JSON object) cannot be
// billed, but it is published anyway, under the empty key: the engine rejects it with its
// reason and records it in its rejected output (SEMANTICS §2: nothing is dropped silently).

#include "runtime/kafka_client.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meterflow::runtime {

// Reads the customer_id of an event line without validating the rest (simdjson On-Demand
// stops at the field).
class customer_key_reader {
public:
  customer_key_reader();
  ~customer_key_reader();
  customer_key_reader(const customer_key_reader&) = delete;
  customer_key_reader& operator=(const customer_key_reader&) = delete;

  // The unescaped value of the line's top-level "customer_id" when it is a JSON string; the
  // view stays valid until the next call.
  std::optional<std::string_view> read(std::string_view line);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct kafka_producer_options {
  std::string brokers; // bootstrap.servers
  std::string topic;
  // More librdkafka properties: security.protocol, sasl.*, message.timeout.ms, linger.ms, ...
  kafka_properties properties;
};

struct delivery_report {
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::string error; // empty when acknowledged by all in-sync replicas
  bool delivered() const { return error.empty(); }
};

// Idempotent (enable.idempotence=true, acks=all): retries never duplicate or reorder a line
// within a partition. One thread at a time.
class kafka_producer {
public:
  explicit kafka_producer(const kafka_producer_options& options);
  ~kafka_producer();
  kafka_producer(const kafka_producer&) = delete;
  kafka_producer& operator=(const kafka_producer&) = delete;

  // Queues a copy of the line; waits while librdkafka's local queue is full.
  void send(std::string_view line);

  // Waits until every line sent since the last flush is acknowledged or has failed (a failure
  // comes at the latest after message.timeout.ms) and returns their reports in send order.
  std::vector<delivery_report> flush();

private:
  friend struct kafka_producer_callbacks;
  struct topic_deleter {
    void operator()(rd_kafka_topic_t* t) const { rd_kafka_topic_destroy(t); }
  };

  std::vector<delivery_report> reports_; // of the lines sent since the last flush
  std::size_t pending_ = 0;              // of those, the ones without a report yet
  customer_key_reader keys_;
  kafka_handle_ptr handle_;
  std::unique_ptr<rd_kafka_topic_t, topic_deleter> topic_; // released before handle_
};

} // namespace meterflow::runtime
