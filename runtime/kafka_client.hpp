#pragma once

// What the Kafka producer, consumer source and dev cluster share: librdkafka handles that free
// themselves, configuration that names the property it refuses, and librdkafka's log routed to
// the "kafka" spdlog logger (stderr) instead of its own printing.

#include <librdkafka/rdkafka.h>
#include <map>
#include <memory>
#include <spdlog/logger.h>
#include <stdexcept>
#include <string>

namespace meterflow::runtime {

class kafka_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// librdkafka properties by name ("bootstrap.servers", "session.timeout.ms", ...).
using kafka_properties = std::map<std::string, std::string>;

struct kafka_conf_deleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using kafka_conf_ptr = std::unique_ptr<rd_kafka_conf_t, kafka_conf_deleter>;

struct kafka_handle_deleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using kafka_handle_ptr = std::unique_ptr<rd_kafka_t, kafka_handle_deleter>;

// A Java-style client properties file: `name=value` lines, `#` comments, blank lines; spaces
// around names and values are dropped. Throws kafka_error naming the file and line.
kafka_properties load_kafka_properties(const std::string& path);

// The module's named logger; warnings and errors by default.
spdlog::logger& kafka_logger();

// A configuration with `properties` set (a later entry of `required` wins over the same name in
// `properties`: what meterflow's guarantees rest on cannot be overridden) and the log routed to
// kafka_logger(). Throws kafka_error naming a property librdkafka refuses.
kafka_conf_ptr make_kafka_conf(const kafka_properties& properties,
                               const kafka_properties& required = {});

// Creates the client; `conf` is consumed. Throws kafka_error with librdkafka's reason.
kafka_handle_ptr make_kafka_handle(rd_kafka_type_t type, kafka_conf_ptr conf);

} // namespace meterflow::runtime
