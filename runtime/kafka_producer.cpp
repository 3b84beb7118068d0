#include "runtime/kafka_producer.hpp"

#include "actors/dataflow.hpp"

#include <cstring>
#include <simdjson.h>

namespace meterflow::runtime {

struct customer_key_reader::impl {
  simdjson::ondemand::parser parser;
  std::string buffer; // the line and simdjson's padding
};

customer_key_reader::customer_key_reader() : impl_(std::make_unique<impl>()) {}

customer_key_reader::~customer_key_reader() = default;

std::optional<std::string_view> customer_key_reader::read(std::string_view line) {
  namespace od = simdjson::ondemand;
  auto& buffer = impl_->buffer;
  buffer.assign(line);
  buffer.append(simdjson::SIMDJSON_PADDING, '\0');
  od::document doc;
  od::object object;
  if (impl_->parser.iterate(buffer.data(), line.size(), buffer.size()).get(doc) ||
      doc.get_object().get(object))
    return std::nullopt;
  // Field by field with unescaped keys, as the event parser reads them.
  for (auto result : object) {
    od::field field;
    std::string_view key;
    if (std::move(result).get(field) || field.unescaped_key().get(key))
      return std::nullopt;
    if (key != "customer_id")
      continue;
    std::string_view customer_id;
    if (field.value().get_string().get(customer_id))
      return std::nullopt;
    return customer_id;
  }
  return std::nullopt;
}

// librdkafka calls back through C; these reach the producer's private state.
struct kafka_producer_callbacks {
  // Runs inside rd_kafka_poll/rd_kafka_flush on the sending thread.
  static void delivered(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    auto& producer = *static_cast<kafka_producer*>(opaque);
    auto& report = producer.reports_[reinterpret_cast<std::uintptr_t>(message->_private)];
    report.partition = message->partition;
    report.offset = message->offset;
    if (message->err)
      report.error = rd_kafka_err2str(message->err);
    --producer.pending_;
  }

  // The engine's customer routing (see the header); librdkafka calls it from its threads.
  static std::int32_t partition(const rd_kafka_topic_t*, const void* key, std::size_t key_size,
                                std::int32_t partitions, void*, void*) {
    const std::string customer_id =
        key_size ? std::string(static_cast<const char*>(key), key_size) : std::string();
    return static_cast<std::int32_t>(
        actors::partition_of(customer_id, static_cast<std::uint32_t>(partitions)));
  }
};

namespace {
extern "C" void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque) {
  kafka_producer_callbacks::delivered(rk, message, opaque);
}
extern "C" std::int32_t on_partition(const rd_kafka_topic_t* topic, const void* key,
                                     std::size_t key_size, std::int32_t partitions,
                                     void* topic_opaque, void* message_opaque) {
  return kafka_producer_callbacks::partition(topic, key, key_size, partitions, topic_opaque,
                                             message_opaque);
}
} // namespace

kafka_producer::kafka_producer(const kafka_producer_options& options) {
  auto conf = make_kafka_conf(
      options.properties,
      {{"bootstrap.servers", options.brokers}, {"enable.idempotence", "true"}, {"acks", "all"}});
  rd_kafka_conf_set_dr_msg_cb(conf.get(), on_delivery);
  rd_kafka_conf_set_opaque(conf.get(), this);
  handle_ = make_kafka_handle(RD_KAFKA_PRODUCER, std::move(conf));
  // A copy of the defaults: topic-level properties (acks, message.timeout.ms) set above live
  // there, and a fresh topic configuration would drop them.
  rd_kafka_topic_conf_t* topic_conf = rd_kafka_default_topic_conf_dup(handle_.get());
  rd_kafka_topic_conf_set_partitioner_cb(topic_conf, on_partition);
  topic_.reset(rd_kafka_topic_new(handle_.get(), options.topic.c_str(), topic_conf));
  if (!topic_) {
    rd_kafka_topic_conf_destroy(topic_conf);
    throw kafka_error("topic " + options.topic + ": " + rd_kafka_err2str(rd_kafka_last_error()));
  }
}

kafka_producer::~kafka_producer() {
  // Lines never flushed are given up; their reports go nowhere.
  rd_kafka_purge(handle_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(handle_.get(), 0);
}

void kafka_producer::send(std::string_view line) {
  // An empty key, not a null one: librdkafka spreads null keys at random.
  const std::string_view key = keys_.read(line).value_or(std::string_view(""));
  const auto index = reports_.size();
  reports_.emplace_back();
  ++pending_;
  for (;;) {
    const auto err = rd_kafka_producev(
        handle_.get(), RD_KAFKA_V_RKT(topic_.get()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(line.data()), line.size()),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(index)), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
      return;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      reports_[index].error = rd_kafka_err2str(err);
      --pending_;
      return;
    }
    rd_kafka_poll(handle_.get(), 100); // deliveries make room
  }
}

std::vector<delivery_report> kafka_producer::flush() {
  while (pending_ > 0)
    rd_kafka_flush(handle_.get(), 100);
  return std::exchange(reports_, {});
}

} // namespace meterflow::runtime
