#include "runtime/kafka_client.hpp"

#include <fstream>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace meterflow::runtime {

namespace {

std::string trimmed(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos)
    return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

} // namespace

kafka_properties load_kafka_properties(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw kafka_error(path + ": cannot open");
  kafka_properties properties;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    line = trimmed(line);
    if (line.empty() || line[0] == '#')
      continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos || trimmed(line.substr(0, eq)).empty())
      throw kafka_error(path + ":" + std::to_string(line_no) + ": expected name=value");
    properties[trimmed(line.substr(0, eq))] = trimmed(line.substr(eq + 1));
  }
  return properties;
}

spdlog::logger& kafka_logger() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_color_mt("kafka");
    l->set_level(spdlog::level::warn);
    return l;
  }();
  return *logger;
}

namespace {

// librdkafka logs with syslog levels from its own threads; spdlog loggers are thread-safe.
extern "C" void forward_log(const rd_kafka_t* rk, int level, const char* facility,
                            const char* message) {
  const auto spd = level <= 3   ? spdlog::level::err
                   : level == 4 ? spdlog::level::warn
                   : level <= 6 ? spdlog::level::info
                                : spdlog::level::debug;
  kafka_logger().log(spd, "client={} facility={} {}", rd_kafka_name(rk), facility, message);
}

void set_property(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char reason[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), reason, sizeof reason) !=
      RD_KAFKA_CONF_OK)
    throw kafka_error("kafka property " + name + "=" + value + ": " + reason);
}

} // namespace

kafka_conf_ptr make_kafka_conf(const kafka_properties& properties,
                               const kafka_properties& required) {
  kafka_conf_ptr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), forward_log);
  for (const kafka_properties* props : {&properties, &required})
    for (const auto& [name, value] : *props)
      set_property(conf.get(), name, value);
  return conf;
}

kafka_handle_ptr make_kafka_handle(rd_kafka_type_t type, kafka_conf_ptr conf) {
  char reason[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), reason, sizeof reason);
  if (!rk)
    throw kafka_error(std::string("cannot create the Kafka client: ") + reason);
  conf.release(); // rd_kafka_new owns it now
  return kafka_handle_ptr(rk);
}

} // namespace meterflow::runtime
