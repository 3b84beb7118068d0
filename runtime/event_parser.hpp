#pragma once

// Parses and validates one NDJSON line into an event (SEMANTICS §2 and §11) with simdjson.
// The first failing check, in the order of §11, is the reject reason.

#include "config/config.hpp"
#include "persistence/event.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace meterflow::runtime {

enum class reject_reason { bad_json, missing_field, bad_field, too_large, bad_time, bad_value };
const char* to_string(reject_reason reason);

struct parse_outcome {
  std::optional<persistence::event> event; // set when valid
  reject_reason reason = reject_reason::bad_json;
  std::string detail; // human-readable: which field and why ("event_time: leap second")

  bool ok() const { return event.has_value(); }
};

class event_parser {
public:
  explicit event_parser(const config::configuration& cfg);
  ~event_parser();
  event_parser(const event_parser&) = delete;
  event_parser& operator=(const event_parser&) = delete;

  // `line` is one physical line without its terminator (a trailing '\r' already dropped).
  parse_outcome parse(std::string_view line);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace meterflow::runtime
