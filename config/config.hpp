#pragma once

// The JSON configuration of SEMANTICS §9, loaded and validated into typed structs.
// Every problem is reported as one `config_error` whose message starts with the field path
// ("price_books[0].versions[1].effective_from: not on a 1h window boundary").

#include "pricing/price_book.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace meterflow::config {

using pricing::decimal;
using pricing::duration;

enum class aggregation { count, sum, max, unique_count, latest };
const char* to_string(aggregation a);
// count and sum are additive (rated per window); the others are rated per period.
bool is_additive(aggregation a);

struct meter {
  std::string metric;
  std::string event_type;
  aggregation kind = aggregation::count;
  std::optional<std::string> field; // a metadata key; for sum/max/latest replaces `value`
};

struct credit {
  pricing::period period;
  decimal amount;
  std::string reason;
};

struct customer {
  std::string customer_id;
  std::optional<std::string> price_book; // else the default
  std::vector<credit> credits;
};

struct api_key {
  std::string name; // who calls: logged, never the key
  std::string key;
};

// The HTTP API (optional "http" section): who may call it and how much one request may carry.
struct http_settings {
  std::vector<api_key> api_keys;
  std::size_t max_body_bytes = 16 * 1024 * 1024;
  std::size_t max_events_per_request = 10'000;
  std::size_t max_json_depth = 32;
  std::size_t max_in_flight_events = 100'000;
  duration read_timeout = 5'000'000; // 5s without a byte from the client ends the request
};

struct configuration {
  duration window_size = 3'600'000'000;          // 1h
  duration allowed_lateness = 3'600'000'000;     // 1h
  duration correction_interval = 86'400'000'000; // 1d
  duration max_out_of_orderness = 60'000'000;    // 1m
  duration idle_timeout = 30'000'000;            // 30s
  std::vector<meter> meters;
  std::vector<pricing::price_book> price_books;
  std::optional<std::string> default_price_book;
  std::vector<customer> customers;
  http_settings http;

  const meter* find_meter(const std::string& metric) const;
  const pricing::price_book* find_price_book(const std::string& id) const;
  const customer* find_customer(const std::string& customer_id) const;
  // The customer's book, else the default; nullptr when neither exists (no_price_book).
  const pricing::price_book* price_book_for(const std::string& customer_id) const;
};

class config_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Parses and validates; throws config_error naming the field and the problem.
configuration parse(const std::string& json_text);
configuration load_file(const std::string& path);

// One price book version (an element of `price_books[].versions`) published after the versions
// `book` has: parsed against the configuration's meters and validated with `book` as a whole
// (unique name, bounds on window boundaries). Throws config_error naming the field.
pricing::price_book_version parse_price_book_version(const std::string& json_text,
                                                     const configuration& config,
                                                     const pricing::price_book& book);

} // namespace meterflow::config
