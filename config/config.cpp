#include "config/config.hpp"

#include "pricing/decimal.hpp"
#include "pricing/price_model.hpp"
#include "pricing/time.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

namespace meterflow::config {

namespace {

using json = nlohmann::json;
using pricing::timestamp;

constexpr std::size_t max_identifier_bytes = 128;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw config_error(path + ": " + problem);
}

// A value quoted and escaped as in JSON, so the message shows exactly what the file holds.
std::string in_quotes(std::string_view text) {
  return json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
}

bool is_simple_key(std::string_view key) {
  if (key.empty() || (key[0] >= '0' && key[0] <= '9'))
    return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// "window" + "size" -> "window.size"; keys that are not plain identifiers are bracketed
// ("prices[\"cpu hours\"]") so the path stays unambiguous.
std::string key_path(const std::string& parent, std::string_view key) {
  if (!is_simple_key(key))
    return parent + "[" + in_quotes(key) + "]";
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string index_path(const std::string& parent, std::size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

// Joins a path with a message from pricing::validate, which names fields relative to the value
// it checked ("tiers[1].up_to: ..."). A message without such a field name is attached as is.
std::string prefixed(const std::string& path, const std::string& relative_message) {
  auto colon = relative_message.find(": ");
  bool names_field =
      colon != std::string::npos && colon > 0 &&
      std::all_of(relative_message.begin(), relative_message.begin() + colon, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '[' || c == ']' || c == '"';
      });
  if (!names_field)
    return path + ": " + relative_message;
  return path + (relative_message[0] == '[' ? "" : ".") + relative_message;
}

// The parser keeps the last of two equal keys; a config file with both is almost always a
// mistake, so the callback below records the first one with its path.
class duplicate_key_finder {
public:
  bool operator()(int, json::parse_event_t event, json& parsed) {
    switch (event) {
    case json::parse_event_t::object_start:
    case json::parse_event_t::array_start:
      enter_element();
      frames_.push_back(frame{event == json::parse_event_t::object_start, {}, {}, 0, 0});
      break;
    case json::parse_event_t::key: {
      frame& top = frames_.back();
      top.key = parsed.get<std::string>();
      if (!top.keys.insert(top.key).second && !first_)
        first_ = path() + ": duplicate key";
      break;
    }
    case json::parse_event_t::value:
      enter_element();
      break;
    case json::parse_event_t::object_end:
    case json::parse_event_t::array_end:
      frames_.pop_back();
      break;
    }
    return true;
  }

  const std::optional<std::string>& first_duplicate() const { return first_; }

private:
  struct frame {
    bool is_object;
    std::set<std::string> keys;
    std::string key;
    std::size_t next_index;
    std::size_t index;
  };

  void enter_element() {
    if (!frames_.empty() && !frames_.back().is_object)
      frames_.back().index = frames_.back().next_index++;
  }

  std::string path() const {
    std::string result;
    for (const frame& f : frames_)
      result = f.is_object ? key_path(result, f.key) : index_path(result, f.index);
    return result;
  }

  std::vector<frame> frames_;
  std::optional<std::string> first_;
};

json parse_json(const std::string& text) {
  auto finder = std::make_shared<duplicate_key_finder>();
  json document;
  try {
    document = json::parse(text, [finder](int depth, json::parse_event_t event, json& parsed) {
      return (*finder)(depth, event, parsed);
    });
  } catch (const json::parse_error& e) {
    // what() is "[json.exception.parse_error.N] parse error at line L, column C: <detail>".
    // The detail quotes the input it last read, which may be any bytes; keep the message ASCII.
    std::string what = e.what();
    auto detail = what.find(": ", what.find(']'));
    what = detail == std::string::npos ? what : what.substr(detail + 2);
    std::replace_if(
        what.begin(), what.end(), [](char c) { return c < 0x20 || c > 0x7e; }, '?');
    throw config_error("config: invalid JSON at byte " + std::to_string(e.byte) + ": " + what);
  }
  if (finder->first_duplicate())
    throw config_error(*finder->first_duplicate());
  return document;
}

// --- field access ---------------------------------------------------------------------------

void check_keys(const json& object, const std::string& path,
                std::initializer_list<std::string_view> allowed) {
  for (const auto& item : object.items())
    if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end())
      fail(key_path(path, item.key()), "unknown key");
}

// Optional fields: absent and null mean the same (the default).
const json* optional_field(const json& object, std::string_view key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null())
    return nullptr;
  return &*it;
}

const json& required_field(const json& object, const std::string& path, std::string_view key) {
  const json* value = optional_field(object, key);
  if (!value)
    fail(key_path(path, key), "missing");
  return *value;
}

const json& expect_object(const json& value, const std::string& path) {
  if (!value.is_object())
    fail(path, "expected an object");
  return value;
}

const json& expect_array(const json& value, const std::string& path) {
  if (!value.is_array())
    fail(path, "expected an array");
  return value;
}

std::string expect_string(const json& value, const std::string& path) {
  if (!value.is_string())
    fail(path, "expected a string");
  return value.get<std::string>();
}

std::string expect_non_empty(const json& value, const std::string& path) {
  std::string text = expect_string(value, path);
  if (text.empty())
    fail(path, "must not be empty");
  return text;
}

// Names that meet event fields or output ids follow the rules of event ids (SEMANTICS §2).
std::string expect_identifier(const json& value, const std::string& path) {
  std::string text = expect_non_empty(value, path);
  if (text.size() > max_identifier_bytes)
    fail(path, "longer than 128 bytes");
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; }))
    fail(path, "must be printable ASCII");
  return text;
}

decimal expect_decimal(const json& value, const std::string& path) {
  std::string text;
  if (value.is_string())
    text = value.get<std::string>();
  else if (value.is_number_integer())
    text = value.dump();
  else if (value.is_number())
    fail(path, "give decimals as strings (\"0.10\") to keep them exact");
  else
    fail(path, "expected a decimal string");
  auto parsed = decimal::parse(text);
  if (!parsed)
    fail(path, parsed.error_value().message);
  return *parsed;
}

decimal expect_non_negative(const json& value, const std::string& path) {
  decimal amount = expect_decimal(value, path);
  if (amount.is_negative())
    fail(path, "must not be negative");
  return amount;
}

duration expect_duration(const json& value, const std::string& path) {
  std::string text = expect_string(value, path);
  auto parsed = pricing::parse_duration(text);
  if (!parsed)
    fail(path, parsed.error_value().message);
  return *parsed;
}

timestamp expect_time(const json& value, const std::string& path) {
  std::string text = expect_string(value, path);
  auto parsed = pricing::parse_rfc3339(text);
  if (!parsed)
    fail(path, parsed.error_value().message);
  return *parsed;
}

// --- sections -------------------------------------------------------------------------------

void parse_window(const json& root, configuration& config) {
  const json* section = optional_field(root, "window");
  if (!section)
    return;
  expect_object(*section, "window");
  check_keys(*section, "window", {"size", "allowed_lateness"});
  if (const json* size = optional_field(*section, "size")) {
    config.window_size = expect_duration(*size, "window.size");
    if (config.window_size <= 0)
      fail("window.size", "must be positive");
    if (pricing::microseconds_per_day % config.window_size != 0)
      fail("window.size", "must divide one day exactly (" +
                              pricing::format_duration(config.window_size) + " does not)");
  }
  if (const json* lateness = optional_field(*section, "allowed_lateness"))
    config.allowed_lateness = expect_duration(*lateness, "window.allowed_lateness");
}

void parse_corrections(const json& root, configuration& config) {
  const json* section = optional_field(root, "corrections");
  if (!section)
    return;
  expect_object(*section, "corrections");
  check_keys(*section, "corrections", {"interval"});
  if (const json* interval = optional_field(*section, "interval")) {
    config.correction_interval = expect_duration(*interval, "corrections.interval");
    if (config.correction_interval <= 0)
      fail("corrections.interval", "must be positive");
  }
}

void parse_watermark(const json& root, configuration& config) {
  const json* section = optional_field(root, "watermark");
  if (!section)
    return;
  expect_object(*section, "watermark");
  check_keys(*section, "watermark", {"max_out_of_orderness", "idle_timeout"});
  if (const json* ooo = optional_field(*section, "max_out_of_orderness"))
    config.max_out_of_orderness = expect_duration(*ooo, "watermark.max_out_of_orderness");
  if (const json* idle = optional_field(*section, "idle_timeout"))
    config.idle_timeout = expect_duration(*idle, "watermark.idle_timeout");
}

aggregation parse_aggregation(const json& value, const std::string& path) {
  std::string text = expect_non_empty(value, path);
  for (auto kind : {aggregation::count, aggregation::sum, aggregation::max,
                    aggregation::unique_count, aggregation::latest})
    if (text == to_string(kind))
      return kind;
  fail(path, "unknown aggregation " + in_quotes(text) +
                 " (expected count, sum, max, unique_count, latest)");
}

void parse_meters(const json& root, configuration& config) {
  const json& meters = expect_array(required_field(root, "", "meters"), "meters");
  if (meters.empty())
    fail("meters", "expected at least one meter");
  for (std::size_t i = 0; i < meters.size(); ++i) {
    std::string path = index_path("meters", i);
    const json& object = expect_object(meters[i], path);
    check_keys(object, path, {"metric", "event_type", "aggregation", "field"});
    meter m;
    m.metric = expect_identifier(required_field(object, path, "metric"), path + ".metric");
    if (config.find_meter(m.metric))
      fail(path + ".metric", "duplicate metric " + in_quotes(m.metric));
    m.event_type =
        expect_identifier(required_field(object, path, "event_type"), path + ".event_type");
    m.kind = parse_aggregation(required_field(object, path, "aggregation"), path + ".aggregation");
    if (const json* field = optional_field(object, "field")) {
      if (m.kind == aggregation::count)
        fail(path + ".field", "not allowed on a count meter (it counts events)");
      m.field = expect_non_empty(*field, path + ".field");
    } else if (m.kind == aggregation::unique_count) {
      fail(path + ".field", "required for a unique_count meter");
    }
    config.meters.push_back(std::move(m));
  }
}

std::vector<pricing::tier> parse_tiers(const json& value, const std::string& path) {
  const json& tiers = expect_array(value, path);
  std::vector<pricing::tier> result;
  for (std::size_t i = 0; i < tiers.size(); ++i) {
    std::string tier_path = index_path(path, i);
    const json& object = expect_object(tiers[i], tier_path);
    check_keys(object, tier_path, {"up_to", "unit_price", "flat_fee"});
    pricing::tier t;
    if (const json* up_to = optional_field(object, "up_to"))
      t.up_to = expect_decimal(*up_to, tier_path + ".up_to");
    t.unit_price =
        expect_decimal(required_field(object, tier_path, "unit_price"), tier_path + ".unit_price");
    if (const json* fee = optional_field(object, "flat_fee"))
      t.flat_fee = expect_decimal(*fee, tier_path + ".flat_fee");
    result.push_back(std::move(t));
  }
  return result;
}

// The fields a model kind takes besides "model" and "free_units".
bool is_field_of(pricing::model_kind kind, std::string_view key) {
  switch (kind) {
  case pricing::model_kind::flat:
    return key == "unit_price";
  case pricing::model_kind::tiered:
  case pricing::model_kind::volume:
    return key == "tiers";
  case pricing::model_kind::package:
    return key == "package_size" || key == "package_price";
  }
  return false;
}

pricing::price_model parse_model(const json& value, const std::string& path) {
  const json& object = expect_object(value, path);
  check_keys(object, path,
             {"model", "unit_price", "tiers", "package_size", "package_price", "free_units"});
  std::string kind_path = path + ".model";
  std::string kind_text = expect_non_empty(required_field(object, path, "model"), kind_path);
  auto kind = pricing::parse_model_kind(kind_text);
  if (!kind)
    fail(kind_path, kind.error_value().message);

  pricing::price_model model;
  model.kind = *kind;
  for (const auto& item : object.items()) {
    const std::string& key = item.key();
    if (key != "model" && key != "free_units" && !is_field_of(model.kind, key))
      fail(key_path(path, key), "not a field of a " + kind_text + " model");
  }

  switch (model.kind) {
  case pricing::model_kind::flat:
    model.unit_price =
        expect_decimal(required_field(object, path, "unit_price"), path + ".unit_price");
    break;
  case pricing::model_kind::tiered:
  case pricing::model_kind::volume:
    model.tiers = parse_tiers(required_field(object, path, "tiers"), path + ".tiers");
    break;
  case pricing::model_kind::package:
    model.package_size =
        expect_decimal(required_field(object, path, "package_size"), path + ".package_size");
    model.package_price =
        expect_decimal(required_field(object, path, "package_price"), path + ".package_price");
    break;
  }
  if (const json* free_units = optional_field(object, "free_units"))
    model.free_units = expect_decimal(*free_units, path + ".free_units");

  if (auto valid = pricing::validate(model); !valid)
    throw config_error(prefixed(path, valid.error_value().message));
  return model;
}

pricing::price_book_version parse_version(const json& value, const std::string& path,
                                          const configuration& config) {
  const json& object = expect_object(value, path);
  check_keys(object, path, {"version", "effective_from", "effective_until", "rounding", "prices"});
  pricing::price_book_version version;
  version.version = expect_identifier(required_field(object, path, "version"), path + ".version");
  version.effective_from =
      expect_time(required_field(object, path, "effective_from"), path + ".effective_from");
  if (const json* until = optional_field(object, "effective_until"))
    version.effective_until = expect_time(*until, path + ".effective_until");
  if (const json* rounding = optional_field(object, "rounding")) {
    std::string text = expect_non_empty(*rounding, path + ".rounding");
    auto mode = pricing::parse_rounding_mode(text);
    if (!mode)
      fail(path + ".rounding", mode.error_value().message);
    version.rounding = *mode;
  }
  std::string prices_path = path + ".prices";
  const json& prices = expect_object(required_field(object, path, "prices"), prices_path);
  for (const auto& item : prices.items()) {
    std::string model_path = key_path(prices_path, item.key());
    if (!config.find_meter(item.key()))
      fail(model_path, "no meter defines this metric");
    version.prices.emplace(item.key(), parse_model(item.value(), model_path));
  }
  return version;
}

void parse_price_books(const json& root, configuration& config) {
  const json& books = expect_array(required_field(root, "", "price_books"), "price_books");
  for (std::size_t i = 0; i < books.size(); ++i) {
    std::string path = index_path("price_books", i);
    const json& object = expect_object(books[i], path);
    check_keys(object, path, {"id", "currency", "versions"});
    pricing::price_book book;
    book.id = expect_identifier(required_field(object, path, "id"), path + ".id");
    if (config.find_price_book(book.id))
      fail(path + ".id", "duplicate price book id " + in_quotes(book.id));
    book.currency = expect_non_empty(required_field(object, path, "currency"), path + ".currency");
    std::string versions_path = path + ".versions";
    const json& versions = expect_array(required_field(object, path, "versions"), versions_path);
    for (std::size_t v = 0; v < versions.size(); ++v)
      book.versions.push_back(parse_version(versions[v], index_path(versions_path, v), config));
    if (auto valid = pricing::validate(book, config.window_size); !valid)
      throw config_error(prefixed(path, valid.error_value().message));
    config.price_books.push_back(std::move(book));
  }
}

void parse_default_price_book(const json& root, configuration& config) {
  const json* value = optional_field(root, "default_price_book");
  if (!value)
    return;
  std::string id = expect_non_empty(*value, "default_price_book");
  if (!config.find_price_book(id))
    fail("default_price_book", "unknown price book " + in_quotes(id));
  config.default_price_book = std::move(id);
}

credit parse_credit(const json& value, const std::string& path, const pricing::price_book* book) {
  const json& object = expect_object(value, path);
  check_keys(object, path, {"period", "amount", "reason"});
  credit c;
  std::string period_path = path + ".period";
  std::string period_text = expect_string(required_field(object, path, "period"), period_path);
  auto period = pricing::parse_period(period_text);
  if (!period)
    fail(period_path, period.error_value().message);
  c.period = *period;
  std::string amount_path = path + ".amount";
  c.amount = expect_non_negative(required_field(object, path, "amount"), amount_path);
  // A credit finer than the currency's minor unit could never be applied to an invoice exactly.
  if (book) {
    int digits = pricing::currency_minor_units(book->currency);
    auto rounded = c.amount.round(digits, pricing::rounding_mode::half_even);
    if (!rounded || *rounded != c.amount)
      fail(amount_path, "more fractional digits than " + book->currency + " has (" +
                            std::to_string(digits) + ")");
  }
  c.reason = expect_non_empty(required_field(object, path, "reason"), path + ".reason");
  return c;
}

void parse_customers(const json& root, configuration& config) {
  const json* value = optional_field(root, "customers");
  if (!value)
    return;
  const json& customers = expect_array(*value, "customers");
  for (std::size_t i = 0; i < customers.size(); ++i) {
    std::string path = index_path("customers", i);
    const json& object = expect_object(customers[i], path);
    check_keys(object, path, {"customer_id", "price_book", "credits"});
    customer c;
    c.customer_id =
        expect_identifier(required_field(object, path, "customer_id"), path + ".customer_id");
    if (config.find_customer(c.customer_id))
      fail(path + ".customer_id", "duplicate customer " + in_quotes(c.customer_id));
    if (const json* book = optional_field(object, "price_book")) {
      std::string id = expect_non_empty(*book, path + ".price_book");
      if (!config.find_price_book(id))
        fail(path + ".price_book", "unknown price book " + in_quotes(id));
      c.price_book = std::move(id);
    }
    const pricing::price_book* book =
        c.price_book
            ? config.find_price_book(*c.price_book)
            : (config.default_price_book ? config.find_price_book(*config.default_price_book)
                                         : nullptr);
    if (const json* credits = optional_field(object, "credits")) {
      std::string credits_path = path + ".credits";
      expect_array(*credits, credits_path);
      for (std::size_t k = 0; k < credits->size(); ++k)
        c.credits.push_back(parse_credit((*credits)[k], index_path(credits_path, k), book));
    }
    config.customers.push_back(std::move(c));
  }
}

std::size_t expect_positive_integer(const json& value, const std::string& path) {
  if (!value.is_number_integer() || value.get<std::int64_t>() < 1)
    fail(path, "expected a positive integer");
  return value.get<std::size_t>();
}

void parse_http(const json& root, configuration& config) {
  const json* section = optional_field(root, "http");
  if (!section)
    return;
  expect_object(*section, "http");
  check_keys(*section, "http",
             {"api_keys", "max_body_bytes", "max_events_per_request", "max_json_depth",
              "max_in_flight_events", "read_timeout"});
  http_settings& http = config.http;
  if (const json* keys = optional_field(*section, "api_keys")) {
    expect_array(*keys, "http.api_keys");
    for (std::size_t i = 0; i < keys->size(); ++i) {
      std::string path = index_path("http.api_keys", i);
      const json& object = expect_object((*keys)[i], path);
      check_keys(object, path, {"name", "key"});
      api_key k;
      k.name = expect_identifier(required_field(object, path, "name"), path + ".name");
      // The key itself never appears in a message: config errors end up in logs.
      k.key = expect_string(required_field(object, path, "key"), path + ".key");
      if (k.key.size() < 16)
        fail(path + ".key", "shorter than 16 bytes");
      if (!std::all_of(k.key.begin(), k.key.end(), [](char c) { return c > 0x20 && c <= 0x7e; }))
        fail(path + ".key", "must be printable ASCII without spaces");
      for (const auto& other : http.api_keys) {
        if (other.name == k.name)
          fail(path + ".name", "duplicate key name " + in_quotes(k.name));
        if (other.key == k.key)
          fail(path + ".key", "the same key as " + in_quotes(other.name));
      }
      http.api_keys.push_back(std::move(k));
    }
  }
  if (const json* v = optional_field(*section, "max_body_bytes"))
    http.max_body_bytes = expect_positive_integer(*v, "http.max_body_bytes");
  if (const json* v = optional_field(*section, "max_events_per_request"))
    http.max_events_per_request = expect_positive_integer(*v, "http.max_events_per_request");
  if (const json* v = optional_field(*section, "max_json_depth")) {
    http.max_json_depth = expect_positive_integer(*v, "http.max_json_depth");
    if (http.max_json_depth < 2)
      fail("http.max_json_depth", "must be at least 2 (an array of event objects)");
  }
  if (const json* v = optional_field(*section, "max_in_flight_events"))
    http.max_in_flight_events = expect_positive_integer(*v, "http.max_in_flight_events");
  if (http.max_in_flight_events < http.max_events_per_request)
    fail("http.max_in_flight_events",
         "smaller than http.max_events_per_request: a full request could never be admitted");
  if (const json* v = optional_field(*section, "read_timeout")) {
    http.read_timeout = expect_duration(*v, "http.read_timeout");
    if (http.read_timeout < 1000)
      fail("http.read_timeout", "must be at least 1ms");
  }
}

} // namespace

const char* to_string(aggregation a) {
  switch (a) {
  case aggregation::count:
    return "count";
  case aggregation::sum:
    return "sum";
  case aggregation::max:
    return "max";
  case aggregation::unique_count:
    return "unique_count";
  case aggregation::latest:
    return "latest";
  }
  return "unknown";
}

bool is_additive(aggregation a) {
  return a == aggregation::count || a == aggregation::sum;
}

const meter* configuration::find_meter(const std::string& metric) const {
  auto it = std::find_if(meters.begin(), meters.end(),
                         [&](const meter& m) { return m.metric == metric; });
  return it == meters.end() ? nullptr : &*it;
}

const pricing::price_book* configuration::find_price_book(const std::string& id) const {
  auto it = std::find_if(price_books.begin(), price_books.end(),
                         [&](const pricing::price_book& b) { return b.id == id; });
  return it == price_books.end() ? nullptr : &*it;
}

const customer* configuration::find_customer(const std::string& customer_id) const {
  auto it = std::find_if(customers.begin(), customers.end(),
                         [&](const customer& c) { return c.customer_id == customer_id; });
  return it == customers.end() ? nullptr : &*it;
}

const pricing::price_book* configuration::price_book_for(const std::string& customer_id) const {
  if (const customer* c = find_customer(customer_id); c && c->price_book)
    return find_price_book(*c->price_book);
  return default_price_book ? find_price_book(*default_price_book) : nullptr;
}

configuration parse(const std::string& json_text) {
  json root = parse_json(json_text);
  if (!root.is_object())
    throw config_error("config: expected a JSON object at the top level");
  check_keys(root, "",
             {"window", "corrections", "watermark", "meters", "price_books", "default_price_book",
              "customers", "http"});
  configuration config;
  // Sections in dependency order: books need the window size and the meters, customers the books.
  parse_window(root, config);
  parse_corrections(root, config);
  parse_watermark(root, config);
  parse_meters(root, config);
  parse_price_books(root, config);
  parse_default_price_book(root, config);
  parse_customers(root, config);
  parse_http(root, config);
  return config;
}

configuration load_file(const std::string& path) {
  struct closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, closer> file(std::fopen(path.c_str(), "rb"));
  if (!file)
    throw config_error("config: cannot read " + path + ": " + std::strerror(errno));
  std::string text;
  char buffer[65536];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0)
    text.append(buffer, n);
  if (std::ferror(file.get()))
    throw config_error("config: cannot read " + path + ": " + std::strerror(errno));
  return parse(text);
}

pricing::price_book_version parse_price_book_version(const std::string& json_text,
                                                     const configuration& config,
                                                     const pricing::price_book& book) {
  pricing::price_book_version version = parse_version(parse_json(json_text), "version", config);
  pricing::price_book with = book;
  with.versions.push_back(version);
  if (auto valid = pricing::validate(with, config.window_size); !valid)
    throw config_error(valid.error_value().message);
  return version;
}

} // namespace meterflow::config
