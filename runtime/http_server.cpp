#include "runtime/http_server.hpp"

#include "runtime/event_parser.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <future>
#include <httplib.h>
#include <mutex>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pqxx/pqxx>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>
#define XXH_STATIC_LINKING_ONLY // XXH3_state_t on the stack
#include <xxhash.h>

namespace meterflow::runtime {

namespace {

using clock_type = std::chrono::steady_clock;

spdlog::logger& http_logger() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("http"))
      return existing;
    return spdlog::stderr_color_mt("http");
  }();
  return *logger;
}

// --- JSON text -------------------------------------------------------------------------------

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += ch;
    }
  }
  out += '"';
}

std::string error_body(std::string_view error, std::string_view detail) {
  std::string out = "{\"error\":";
  append_json_string(out, error);
  out += ",\"detail\":";
  append_json_string(out, detail);
  out += "}";
  return out;
}

// A structural JSON scanner without recursion: it checks the grammar (RFC 8259, except UTF-8,
// which the event parser checks), limits the nesting depth before anything recursive sees the
// text, and writes the value compactly (whitespace outside strings dropped, every token as
// written: numbers keep their spelling, so no value passes through floating point).
class json_scanner {
public:
  json_scanner(std::string_view text, std::size_t max_depth) : in_(text), max_depth_(max_depth) {}

  // One value starting at the current position, nested at `depth` already; appends it to out.
  bool value(std::string& out, std::size_t depth);
  // The elements of a top-level array, each compact; stops with an error after `max_count`.
  bool array_elements(std::vector<std::string>& out, std::size_t max_count, bool& too_many);
  // Only whitespace left.
  bool at_end() {
    skip_space();
    return pos_ == in_.size() || fail("trailing content after the JSON value");
  }
  const std::string& error() const { return error_; }

private:
  bool fail(std::string_view what) {
    if (error_.empty()) {
      std::size_t line = 1, column = 1;
      for (std::size_t i = 0; i < pos_ && i < in_.size(); ++i, ++column)
        if (in_[i] == '\n')
          line += 1, column = 0;
      error_ = "byte " + std::to_string(pos_) + " (line " + std::to_string(line) + ", column " +
               std::to_string(column) + "): " + std::string(what);
    }
    return false;
  }
  void skip_space() {
    while (pos_ < in_.size() &&
           (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r'))
      ++pos_;
  }
  bool peek(char c) {
    skip_space();
    return pos_ < in_.size() && in_[pos_] == c;
  }
  bool expect(char c, std::string& out, std::string_view what) {
    if (!peek(c))
      return fail(pos_ == in_.size() ? "unexpected end of input" : what);
    out += c;
    ++pos_;
    return true;
  }
  bool string(std::string& out);
  bool number(std::string& out);
  bool literal(std::string& out);
  bool scalar(std::string& out);

  std::string_view in_;
  std::size_t pos_ = 0;
  std::size_t max_depth_;
  std::string error_;
};

bool json_scanner::string(std::string& out) {
  const std::size_t start = pos_++;
  while (pos_ < in_.size()) {
    auto c = static_cast<unsigned char>(in_[pos_]);
    if (c == '"') {
      ++pos_;
      out.append(in_.substr(start, pos_ - start));
      return true;
    }
    if (c < 0x20)
      return fail("control character in a string");
    if (c == '\\') {
      if (++pos_ == in_.size())
        break;
      const char e = in_[pos_];
      if (e == 'u') {
        for (int k = 0; k < 4; ++k)
          if (++pos_ >= in_.size() || !std::isxdigit(static_cast<unsigned char>(in_[pos_])))
            return fail("invalid \\u escape");
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return fail("invalid escape in a string");
      }
    }
    ++pos_;
  }
  return fail("unterminated string");
}

bool json_scanner::number(std::string& out) {
  const std::size_t start = pos_;
  auto digits = [&] {
    const std::size_t from = pos_;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9')
      ++pos_;
    return pos_ > from;
  };
  if (in_[pos_] == '-')
    ++pos_;
  if (pos_ < in_.size() && in_[pos_] == '0')
    ++pos_;
  else if (!digits())
    return fail("invalid number");
  if (pos_ < in_.size() && in_[pos_] == '.') {
    ++pos_;
    if (!digits())
      return fail("invalid number: no digit after the decimal point");
  }
  if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
    ++pos_;
    if (pos_ < in_.size() && (in_[pos_] == '+' || in_[pos_] == '-'))
      ++pos_;
    if (!digits())
      return fail("invalid number: no digit in the exponent");
  }
  out.append(in_.substr(start, pos_ - start));
  return true;
}

bool json_scanner::literal(std::string& out) {
  for (std::string_view word : {"true", "false", "null"})
    if (in_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      out.append(word);
      return true;
    }
  return fail("invalid literal");
}

bool json_scanner::scalar(std::string& out) {
  const char c = in_[pos_];
  if (c == '"')
    return string(out);
  if (c == '-' || (c >= '0' && c <= '9'))
    return number(out);
  if (c == 't' || c == 'f' || c == 'n')
    return literal(out);
  return fail("unexpected character, expected a JSON value");
}

bool json_scanner::value(std::string& out, std::size_t depth) {
  std::vector<char> open; // closing brackets of the open containers, innermost last
  for (;;) {
    // Here a value is expected.
    skip_space();
    if (pos_ == in_.size())
      return fail("unexpected end of input");
    const char c = in_[pos_];
    if (c == '{' || c == '[') {
      if (depth + open.size() + 1 > max_depth_)
        return fail("nested deeper than " + std::to_string(max_depth_) + " levels");
      out += c;
      ++pos_;
      open.push_back(c == '{' ? '}' : ']');
      if (peek(open.back())) {
        out += open.back();
        ++pos_;
        open.pop_back();
      } else {
        if (c == '{') {
          if (!peek('"'))
            return fail(pos_ == in_.size() ? "unexpected end of input" : "expected a key");
          if (!string(out) || !expect(':', out, "expected ':'"))
            return false;
        }
        continue;
      }
    } else if (!scalar(out)) {
      return false;
    }
    // After a value: close containers until a comma asks for the next value.
    for (;;) {
      if (open.empty())
        return true;
      skip_space();
      if (pos_ == in_.size())
        return fail("unexpected end of input");
      if (in_[pos_] == open.back()) {
        out += open.back();
        ++pos_;
        open.pop_back();
        continue;
      }
      if (!expect(',', out, open.back() == '}' ? "expected ',' or '}'" : "expected ',' or ']'"))
        return false;
      if (open.back() == '}') {
        if (!peek('"'))
          return fail(pos_ == in_.size() ? "unexpected end of input" : "expected a key");
        if (!string(out) || !expect(':', out, "expected ':'"))
          return false;
      }
      break;
    }
  }
}

bool json_scanner::array_elements(std::vector<std::string>& out, std::size_t max_count,
                                  bool& too_many) {
  std::string ignored;
  if (!expect('[', ignored, "expected '['"))
    return false;
  if (peek(']')) {
    ++pos_;
    return true;
  }
  for (;;) {
    if (out.size() == max_count) {
      too_many = true;
      return false;
    }
    out.emplace_back();
    if (!value(out.back(), 1))
      return false;
    if (peek(']')) {
      ++pos_;
      return true;
    }
    if (!expect(',', ignored, "expected ',' or ']'"))
      return false;
  }
}

// --- duplicates ------------------------------------------------------------------------------

struct event_key {
  std::uint64_t high, low;
  bool operator==(const event_key&) const = default;
};
struct event_key_hash {
  std::size_t operator()(const event_key& k) const { return k.low; }
};

// 128 bits of XXH3 of the event id, seeded with the customer's hash: a distinct key per
// (customer_id, event_id) pair with overwhelming probability, without building a string.
event_key key_of(const persistence::event& e) {
  const XXH128_hash_t h =
      XXH3_128bits_withSeed(e.event_id.data(), e.event_id.size(),
                            XXH3_64bits(e.customer_id.data(), e.customer_id.size()));
  return {h.high64, h.low64};
}

std::uint64_t payload_fingerprint(const persistence::event& e) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  auto field = [&](std::string_view text) {
    const std::uint64_t size = text.size(); // the sizes keep the concatenation unambiguous
    XXH3_64bits_update(&state, &size, sizeof size);
    XXH3_64bits_update(&state, text.data(), text.size());
  };
  XXH3_64bits_update(&state, &e.event_time, sizeof e.event_time);
  field(e.event_type);
  field(e.value.to_string());
  field(e.metadata);
  return XXH3_64bits_digest(&state);
}

// The keys this process got acknowledged, with their payload fingerprints: a 4-way
// set-associative table of fixed size, so memory and time per key stay constant. A full set
// forgets one of its keys; the answer is best-effort anyway (the engine deduplicates exactly).
class recent_keys {
public:
  explicit recent_keys(std::size_t capacity)
      : sets_(std::max<std::size_t>(std::bit_ceil(capacity) / ways, 1)), slots_(sets_ * ways),
        locks_(std::min<std::size_t>(sets_, 64)) {}

  std::optional<std::uint64_t> find(const event_key& k) const {
    const std::size_t set = k.low % sets_;
    std::lock_guard lock(locks_[set % locks_.size()]);
    for (std::size_t w = 0; w < ways; ++w) {
      const slot& s = slots_[set * ways + w];
      if (s.used && s.key == k)
        return s.payload;
    }
    return std::nullopt;
  }

  void insert(const event_key& k, std::uint64_t payload) {
    const std::size_t set = k.low % sets_;
    std::lock_guard lock(locks_[set % locks_.size()]);
    slot* target = nullptr;
    for (std::size_t w = 0; w < ways && !target; ++w) {
      slot& s = slots_[set * ways + w];
      if (!s.used || s.key == k)
        target = &s;
    }
    if (!target) // a full set: the high bits pick which key goes, evenly
      target = &slots_[set * ways + (k.high >> 62)];
    *target = {k, payload, true};
  }

private:
  static constexpr std::size_t ways = 4;
  struct slot {
    event_key key{0, 0};
    std::uint64_t payload = 0;
    bool used = false;
  };
  std::size_t sets_;
  std::vector<slot> slots_;
  mutable std::vector<std::mutex> locks_;
};

// The stored versions of keys, from the store's telemetry_events: one query per request.
class stored_events {
public:
  explicit stored_events(std::string url) : url_(std::move(url)) {}

  // (customer_id, event_id) -> payload fingerprint of the stored event. Best-effort: when the
  // store cannot be asked, the answer is empty and logged (the engine still deduplicates).
  std::unordered_map<event_key, std::uint64_t, event_key_hash>
  lookup(const std::vector<const persistence::event*>& events) {
    std::unordered_map<event_key, std::uint64_t, event_key_hash> found;
    if (events.empty())
      return found;
    std::string customers = "{", ids = "{";
    for (const auto* e : events) {
      append_array_element(customers, e->customer_id);
      append_array_element(ids, e->event_id);
    }
    customers.back() = '}';
    ids.back() = '}';
    std::lock_guard lock(mutex_);
    try {
      if (!connection_)
        connection_ = std::make_unique<pqxx::connection>(url_);
      pqxx::nontransaction tx(*connection_);
      const auto rows = tx.exec_params(
          "SELECT e.customer_id, e.event_id, e.event_type, e.value::text,"
          " coalesce(e.metadata_canonical, ''),"
          " (extract(epoch FROM e.event_time - timestamptz 'epoch') * 1000000)::bigint"
          " FROM telemetry_events e JOIN unnest($1::text[], $2::text[]) AS k(c, i)"
          " ON e.customer_id = k.c AND e.event_id = k.i",
          customers, ids);
      for (const auto& row : rows) {
        persistence::event e;
        e.customer_id = row[0].as<std::string>();
        e.event_id = row[1].as<std::string>();
        e.event_type = row[2].as<std::string>();
        auto value = pricing::decimal::parse(row[3].as<std::string>());
        if (value)
          e.value = *value;
        e.metadata = row[4].as<std::string>();
        e.event_time = row[5].as<std::int64_t>();
        found.emplace(key_of(e), payload_fingerprint(e));
      }
    } catch (const std::exception& e) {
      connection_.reset();
      http_logger().warn(
          "store lookup failed, duplicates not checked against the store error=\"{}\"", e.what());
    }
    return found;
  }

private:
  static void append_array_element(std::string& out, std::string_view text) {
    out += '"';
    for (char c : text) {
      if (c == '"' || c == '\\')
        out += '\\';
      out += c;
    }
    out += "\",";
  }

  std::string url_;
  std::mutex mutex_;
  std::unique_ptr<pqxx::connection> connection_;
};

// --- publishing ------------------------------------------------------------------------------

// Group commit over one kafka_producer (one thread at a time): the lines of all requests that
// are waiting go out together, and one flush answers them all.
class group_publisher {
public:
  explicit group_publisher(kafka_producer_options options) : options_(std::move(options)) {
    producer_ = std::make_unique<kafka_producer>(options_);
    thread_ = std::thread([this] { run(); });
  }
  ~group_publisher() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  // Blocks until every line has its delivery report (at the latest after the delivery
  // timeout); the reports are in the order of the lines.
  std::vector<delivery_report> publish(const std::vector<std::string_view>& lines) {
    batch b{&lines, {}};
    auto reports = b.done.get_future();
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(&b);
    }
    wake_.notify_one();
    return reports.get();
  }

private:
  struct batch {
    const std::vector<std::string_view>* lines;
    std::promise<std::vector<delivery_report>> done;
  };

  void run() {
    for (;;) {
      std::vector<batch*> taken;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty())
          return; // stopping, and every request answered
        taken.assign(queue_.begin(), queue_.end());
        queue_.clear();
      }
      send(taken);
    }
  }

  void send(const std::vector<batch*>& taken) {
    std::vector<delivery_report> reports;
    try {
      if (!producer_)
        producer_ = std::make_unique<kafka_producer>(options_);
      for (const batch* b : taken)
        for (std::string_view line : *b->lines)
          producer_->send(line);
      reports = producer_->flush();
    } catch (const std::exception& e) {
      http_logger().error("kafka publish failed error=\"{}\"", e.what());
    }
    std::size_t at = 0;
    std::string first_error;
    for (batch* b : taken) {
      std::vector<delivery_report> own;
      for (std::size_t i = 0; i < b->lines->size(); ++i, ++at) {
        own.push_back(at < reports.size() ? reports[at]
                                          : delivery_report{-1, -1, "producer unavailable"});
        if (!own.back().delivered() && first_error.empty())
          first_error = own.back().error;
      }
      b->done.set_value(std::move(own));
    }
    if (first_error.empty())
      return;
    // A fresh producer after any failure: an idempotent producer may be left in a fatal state
    // (fenced, out of sequence) that would refuse every later line.
    http_logger().warn("kafka did not acknowledge lines first_error=\"{}\"", first_error);
    producer_.reset();
  }

  kafka_producer_options options_;
  std::unique_ptr<kafka_producer> producer_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<batch*> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

// --- requests --------------------------------------------------------------------------------

// Per-worker scratch: which route answered (the latency label) and when the request began.
thread_local std::string_view current_route;
thread_local clock_type::time_point request_started;

using sha256_digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

sha256_digest sha256(std::string_view text) {
  sha256_digest d;
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d.data());
  return d;
}

// Path segments that look like ids become "{id}", so the label set stays small.
std::string route_of_path(const std::string& path) {
  std::string out;
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos)
      end = path.size();
    std::string_view segment(path.data() + start, end - start);
    const bool word = !segment.empty() && std::all_of(segment.begin(), segment.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || c == '-';
    });
    out += '/';
    out += word || segment == "v1" ? std::string(segment) : std::string("{id}");
    start = end + 1;
  }
  return out;
}

struct event_result {
  std::string event_id; // empty when the event has none (rejected before it was read)
  const char* status = "rejected";
  std::string reason;
  std::string detail;
};

bool is_chunked(const httplib::Request& req) {
  std::string te = req.get_header_value("Transfer-Encoding");
  std::transform(te.begin(), te.end(), te.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return te.find("chunked") != std::string::npos;
}

enum class body_format { json, ndjson };

std::optional<body_format> format_of(const std::string& content_type) {
  std::string_view type(content_type);
  std::string_view params;
  if (auto semicolon = type.find(';'); semicolon != std::string_view::npos) {
    params = type.substr(semicolon + 1);
    type = type.substr(0, semicolon);
  }
  while (!type.empty() && type.back() == ' ')
    type.remove_suffix(1);
  std::string lower(type);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string charset(params);
  std::transform(charset.begin(), charset.end(), charset.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (charset.find("charset=") != std::string::npos &&
      charset.find("charset=utf-8") == std::string::npos &&
      charset.find("charset=\"utf-8\"") == std::string::npos)
    return std::nullopt;
  if (lower == "application/json")
    return body_format::json;
  if (lower == "application/x-ndjson")
    return body_format::ndjson;
  return std::nullopt;
}

} // namespace

struct http_service::impl {
  impl(const config::configuration& cfg, http_service_options opts, service_metrics& m)
      : config(cfg), options(std::move(opts)), metrics(m), recent(options.recent_keys) {
    for (const auto& k : config.http.api_keys)
      keys.push_back({k.name, sha256(k.key)});
    options.kafka.properties["message.timeout.ms"] =
        std::to_string(options.delivery_timeout.count());
    // Every request waits for its produce round trip: Nagle's algorithm would add a delayed ACK
    // (40 ms) to many of them. The caller's properties may still say otherwise.
    options.kafka.properties.emplace("socket.nagle.disable", "true");
    if (options.store_url)
      store.emplace(*options.store_url);
    install_routes();
  }

  void install_routes();
  httplib::Server::HandlerResponse authenticate(const httplib::Request& req,
                                                httplib::Response& res);
  void post_events(const httplib::Request& req, httplib::Response& res,
                   const httplib::ContentReader& reader);
  void answer_events(const std::vector<std::string_view>& lines, body_format format,
                     httplib::Response& res);

  // Takes n events from the in-flight budget, or nothing when they do not fit.
  bool reserve(std::size_t n) {
    std::size_t current = in_flight.load();
    do {
      if (current + n > config.http.max_in_flight_events)
        return false;
    } while (!in_flight.compare_exchange_weak(current, current + n));
    metrics.set_in_flight_events(current + n);
    return true;
  }
  void release(std::size_t n) { metrics.set_in_flight_events(in_flight -= n); }

  std::unique_ptr<event_parser> take_parser() {
    {
      std::lock_guard lock(parsers_mutex);
      if (!parsers.empty()) {
        auto p = std::move(parsers.back());
        parsers.pop_back();
        return p;
      }
    }
    return std::make_unique<event_parser>(config);
  }
  void return_parser(std::unique_ptr<event_parser> p) {
    std::lock_guard lock(parsers_mutex);
    parsers.push_back(std::move(p));
  }

  struct key_digest {
    std::string name;
    sha256_digest digest;
  };

  config::configuration config;
  http_service_options options;
  service_metrics& metrics;
  std::vector<key_digest> keys;
  httplib::Server server;
  std::thread listener;
  int bound_port = -1;
  bool running = false;
  std::unique_ptr<group_publisher> publisher;
  std::atomic<std::size_t> in_flight{0};
  recent_keys recent;
  std::optional<stored_events> store;
  std::mutex parsers_mutex;
  std::vector<std::unique_ptr<event_parser>> parsers;
};

void http_service::impl::install_routes() {
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_started = clock_type::now();
    current_route = {};
    return authenticate(req, res);
  });
  server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    std::string route;
    if (!current_route.empty())
      route = current_route;
    else if (res.status == 401 || res.status == 404 || res.status == 411 || res.status == 400)
      route = "unmatched"; // before or without routing: the path may be anything
    else
      route = route_of_path(req.path);
    // A request refused while its headers were read never passed the pre-routing handler.
    const auto latency = request_started == clock_type::time_point{}
                             ? clock_type::duration{}
                             : clock_type::now() - request_started;
    metrics.observe_request(route, res.status, latency);
    current_route = {};
    request_started = {};
  });
  // Errors the library answers itself (malformed request line or headers, a header line over
  // its 8 KiB limit, no route) get the JSON error body of every other error.
  server.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty())
          return httplib::Server::HandlerResponse::Unhandled;
        std::string error = "http_error", detail = "HTTP status " + std::to_string(res.status);
        switch (res.status) {
        case 400:
          error = "bad_request";
          detail = "malformed HTTP request (request line, a header line longer than 8192 bytes, "
                   "or a body shorter than its Content-Length)";
          break;
        case 404:
          error = "not_found";
          detail = "no route for " + req.method + " " + req.path;
          break;
        case 413:
          error = "too_large";
          detail = "body larger than the limit";
          break;
        case 414:
          error = "uri_too_long";
          detail = "request line longer than 8192 bytes";
          break;
        default:
          break;
        }
        res.set_content(error_body(error, detail), "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }));
  server.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        http_logger().error("request failed method={} path=\"{}\" error=\"{}\"", req.method,
                            req.path, what);
        res.status = 500;
        res.set_content(error_body("internal", "the request failed; see the server log"),
                        "application/json");
      });

  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    current_route = "/healthz";
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    current_route = "/metrics";
    res.set_content(metrics.prometheus_text(), "text/plain; version=0.0.4");
  });
  server.Post("/v1/events", [this](const httplib::Request& req, httplib::Response& res,
                                   const httplib::ContentReader& reader) {
    current_route = "/v1/events";
    post_events(req, res, reader);
  });

  const auto& http = config.http;
  server.set_read_timeout(std::chrono::microseconds(http.read_timeout));
  server.set_write_timeout(options.write_timeout);
  server.set_keep_alive_max_count(options.keep_alive_max_count);
  // The library writes headers and body separately: with Nagle's algorithm the body would wait
  // for the client's delayed ACK (40 ms per answer).
  server.set_tcp_nodelay(true);
  // Other routes read whole bodies into memory: the same limit (chunked bodies are refused
  // for them in authenticate(), the library does not limit those).
  server.set_payload_max_length(http.max_body_bytes);
  const std::size_t threads = std::max<std::size_t>(options.threads, 1);
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
}

httplib::Server::HandlerResponse http_service::impl::authenticate(const httplib::Request& req,
                                                                  httplib::Response& res) {
  using result = httplib::Server::HandlerResponse;
  auto refuse = [&](int status, std::string_view error, std::string_view detail) {
    res.status = status;
    // The body of a refused request is not read: the connection cannot be reused.
    res.set_header("Connection", "close");
    res.set_content(error_body(error, detail), "application/json");
    return result::Handled;
  };
  if (req.path == "/healthz")
    return result::Unhandled;
  if (req.path != "/v1/events" && is_chunked(req))
    return refuse(411, "length_required",
                  "a chunked body is accepted on POST /v1/events only; send Content-Length");
  if (keys.empty())
    return result::Unhandled; // allow_unauthenticated, checked by start()

  const std::string header = req.get_header_value("Authorization");
  std::string_view token;
  if (header.size() > 7 &&
      (header.compare(0, 7, "Bearer ") == 0 || header.compare(0, 7, "bearer ") == 0))
    token = std::string_view(header).substr(7);
  const sha256_digest presented = sha256(token);
  // Every key is compared, in constant time over equal-length digests: neither the time nor the
  // order reveals how much of a key matched or which key it was.
  const key_digest* match = nullptr;
  for (const auto& k : keys)
    if (CRYPTO_memcmp(k.digest.data(), presented.data(), presented.size()) == 0)
      match = &k;
  if (match && !token.empty()) {
    http_logger().debug("request method={} path=\"{}\" key={} remote={}", req.method, req.path,
                        match->name, req.remote_addr);
    return result::Unhandled;
  }
  http_logger().warn("unauthenticated request method={} path=\"{}\" remote={} reason={}",
                     req.method, req.path, req.remote_addr,
                     header.empty() ? "no_authorization" : "wrong_key");
  res.set_header("WWW-Authenticate", header.empty()
                                         ? "Bearer realm=\"meterflow\""
                                         : "Bearer realm=\"meterflow\", error=\"invalid_token\"");
  return refuse(401, "unauthorized",
                header.empty() ? "missing Authorization: Bearer <api key>"
                               : "the API key in Authorization is not valid");
}

void http_service::impl::post_events(const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& reader) {
  const auto& limits = config.http;
  auto refuse = [&](int status, std::string_view error, const std::string& detail) {
    res.status = status;
    res.set_content(error_body(error, detail), "application/json");
  };
  // Refusals before the body is read leave it on the connection, which then cannot be reused.
  auto refuse_unread = [&](int status, std::string_view error, const std::string& detail) {
    res.set_header("Connection", "close");
    refuse(status, error, detail);
  };
  const auto format = format_of(req.get_header_value("Content-Type"));
  if (!format)
    return refuse_unread(415, "unsupported_media_type",
                         "Content-Type \"" + req.get_header_value("Content-Type").substr(0, 100) +
                             "\": send application/json (one event or an array) or "
                             "application/x-ndjson (one event per line), in UTF-8");
  const std::string too_large_detail =
      "body larger than " + std::to_string(limits.max_body_bytes) + " bytes (http.max_body_bytes)";
  if (req.has_header("Content-Length")) {
    const std::string length = req.get_header_value("Content-Length");
    if (length.size() > 19 || std::strtoull(length.c_str(), nullptr, 10) > limits.max_body_bytes)
      return refuse_unread(413, "too_large", too_large_detail);
  }

  std::string body;
  bool too_large = false;
  const bool complete = reader([&](const char* data, std::size_t n) {
    if (body.size() + n > limits.max_body_bytes) {
      too_large = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (too_large)
    return refuse_unread(413, "too_large", too_large_detail);
  if (!complete)
    return refuse_unread(400, "bad_request", "the body ended early or was not sent in time");

  std::vector<std::string> compact; // the events of a JSON body, re-written one line each
  std::vector<std::string_view> lines;
  const std::string too_many_detail = "more than " + std::to_string(limits.max_events_per_request) +
                                      " events (http.max_events_per_request)";
  if (*format == body_format::json) {
    json_scanner scanner(body, limits.max_json_depth);
    const auto first = body.find_first_not_of(" \t\r\n");
    bool too_many = false;
    bool ok;
    if (first != std::string::npos && body[first] == '[') {
      ok = scanner.array_elements(compact, limits.max_events_per_request, too_many) &&
           scanner.at_end();
    } else {
      compact.emplace_back();
      ok = scanner.value(compact.back(), 0) && scanner.at_end();
    }
    if (too_many)
      return refuse(413, "too_many_events", too_many_detail);
    if (!ok)
      return refuse(400, "bad_json", "the body is not JSON: " + scanner.error());
    lines.assign(compact.begin(), compact.end());
  } else {
    std::size_t start = 0;
    while (start < body.size()) {
      std::size_t end = body.find('\n', start);
      if (end == std::string::npos)
        end = body.size();
      std::string_view line(body.data() + start, end - start);
      start = end + 1;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
        line.remove_suffix(1);
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
        line.remove_prefix(1);
      if (line.empty())
        continue;
      if (lines.size() == limits.max_events_per_request)
        return refuse(413, "too_many_events", too_many_detail);
      lines.push_back(line);
    }
  }
  if (lines.empty())
    return refuse(400, "no_events", "the body holds no event");
  if (!reserve(lines.size())) {
    res.set_header("Retry-After", "1");
    return refuse(429, "overloaded",
                  "the service holds " + std::to_string(limits.max_in_flight_events) +
                      " events in flight (http.max_in_flight_events); retry later");
  }
  const std::size_t n = lines.size();
  try {
    answer_events(lines, *format, res);
  } catch (...) {
    release(n);
    throw;
  }
  release(n);
}

void http_service::impl::answer_events(const std::vector<std::string_view>& lines,
                                       body_format format, httplib::Response& res) {
  const std::size_t n = lines.size();
  std::vector<event_result> results(n);
  std::vector<std::optional<persistence::event>> events(n);
  {
    auto parser = take_parser();
    std::string scratch;
    for (std::size_t i = 0; i < n; ++i) {
      if (format == body_format::ndjson) {
        // JSON bodies were scanned whole; a line is checked here, before the parser recurses.
        json_scanner scanner(lines[i], config.http.max_json_depth);
        scratch.clear();
        if (!scanner.value(scratch, 0) || !scanner.at_end()) {
          results[i].reason = "bad_json";
          results[i].detail = "json: " + scanner.error();
          continue;
        }
      }
      auto outcome = parser->parse(lines[i]);
      if (!outcome.ok()) {
        results[i].reason = to_string(outcome.reason);
        results[i].detail = std::move(outcome.detail);
        continue;
      }
      events[i] = std::move(outcome.event);
      results[i].event_id = events[i]->event_id;
    }
    return_parser(std::move(parser));
  }

  // Duplicates: earlier in this request, accepted earlier by this process, in the store.
  std::vector<event_key> keys(n);
  std::vector<std::uint64_t> payloads(n);
  auto settle = [&](std::size_t i, std::uint64_t known_payload, const std::string& where) {
    if (known_payload == payloads[i]) {
      results[i].status = "duplicate";
      results[i].reason = "duplicate";
      results[i].detail = where;
    } else {
      results[i].reason = "event_id_conflict";
      results[i].detail = where + " with a different payload (event_time, event_type, value or "
                                  "metadata); the first version stands";
    }
  };
  std::unordered_map<event_key, std::size_t, event_key_hash> first_in_request;
  std::vector<std::size_t> candidates;
  for (std::size_t i = 0; i < n; ++i) {
    if (!events[i])
      continue;
    keys[i] = key_of(*events[i]);
    payloads[i] = payload_fingerprint(*events[i]);
    auto [it, fresh] = first_in_request.emplace(keys[i], i);
    if (!fresh)
      settle(i, payloads[it->second],
             "same customer_id and event_id as index " + std::to_string(it->second) +
                 " of this request");
    else if (auto known = recent.find(keys[i]))
      settle(i, *known, "already accepted");
    else
      candidates.push_back(i);
  }
  if (store && !candidates.empty()) {
    std::vector<const persistence::event*> asked;
    for (std::size_t i : candidates)
      asked.push_back(&*events[i]);
    const auto stored = store->lookup(asked);
    std::erase_if(candidates, [&](std::size_t i) {
      auto it = stored.find(keys[i]);
      if (it == stored.end())
        return false;
      settle(i, it->second, "already stored");
      return true;
    });
  }

  std::size_t accepted = 0, failed = 0;
  if (!candidates.empty()) {
    std::vector<std::string_view> publish;
    for (std::size_t i : candidates)
      publish.push_back(lines[i]);
    const auto reports = publisher->publish(publish);
    for (std::size_t k = 0; k < candidates.size(); ++k) {
      const std::size_t i = candidates[k];
      if (reports[k].delivered()) {
        results[i].status = "accepted";
        recent.insert(keys[i], payloads[i]);
        ++accepted;
      } else {
        results[i].status = "failed";
        results[i].reason = "unavailable";
        results[i].detail = "not acknowledged by Kafka (" + reports[k].error + "); retry";
        ++failed;
      }
    }
  }

  std::size_t duplicate = 0, rejected = 0;
  std::string body = "{\"results\":[";
  for (std::size_t i = 0; i < n; ++i) {
    const auto& r = results[i];
    duplicate += std::string_view(r.status) == "duplicate";
    rejected += std::string_view(r.status) == "rejected";
    if (i)
      body += ',';
    body += "{\"index\":" + std::to_string(i) + ",\"event_id\":";
    if (r.event_id.empty())
      body += "null";
    else
      append_json_string(body, r.event_id);
    body += ",\"status\":\"";
    body += r.status;
    body += '"';
    if (!r.reason.empty()) {
      body += ",\"reason\":";
      append_json_string(body, r.reason);
      body += ",\"detail\":";
      append_json_string(body, r.detail);
    }
    body += '}';
  }
  body +=
      "],\"accepted\":" + std::to_string(accepted) + ",\"duplicate\":" + std::to_string(duplicate) +
      ",\"rejected\":" + std::to_string(rejected) + ",\"failed\":" + std::to_string(failed) + "}";
  metrics.count_events(n, accepted, duplicate, rejected);
  if (failed)
    metrics.count_failed_events(failed);

  if (failed) {
    res.status = 503;
    res.set_header("Retry-After", "1");
  } else if (accepted + duplicate == 0) {
    res.status = 400;
  } else {
    res.status = 202;
  }
  res.set_content(std::move(body), "application/json");
  http_logger().debug("events received={} accepted={} duplicate={} rejected={} failed={}", n,
                      accepted, duplicate, rejected, failed);
}

http_service::http_service(const config::configuration& cfg, http_service_options options,
                           service_metrics& metrics)
    : impl_(std::make_unique<impl>(cfg, std::move(options), metrics)) {}

http_service::~http_service() {
  stop();
}

httplib::Server& http_service::server() {
  return impl_->server;
}

void http_service::start() {
  auto& s = *impl_;
  if (s.running)
    return;
  if (s.keys.empty() && !s.options.allow_unauthenticated)
    throw std::runtime_error("http: no API keys in the configuration (http.api_keys); refusing "
                             "to serve without authentication unless explicitly allowed");
  s.publisher = std::make_unique<group_publisher>(s.options.kafka);
  const std::string where = s.options.host + ":" + std::to_string(s.options.port);
  s.bound_port = s.options.port == 0 ? s.server.bind_to_any_port(s.options.host)
                 : s.server.bind_to_port(s.options.host, s.options.port) ? s.options.port
                                                                         : -1;
  if (s.bound_port < 0) {
    s.publisher.reset();
    throw std::runtime_error("http: cannot listen on " + where);
  }
  s.listener = std::thread([&s] { s.server.listen_after_bind(); });
  // Until the listener runs, the library's stop() would not stop it.
  while (!s.server.is_running())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  s.running = true;
  http_logger().info("listening host={} port={} api_keys={} topic={}", s.options.host, s.bound_port,
                     s.keys.size(), s.options.kafka.topic);
  if (s.keys.empty())
    http_logger().warn("serving without authentication (allow_unauthenticated)");
}

void http_service::stop() {
  auto& s = *impl_;
  if (!s.running)
    return;
  s.server.stop();
  s.listener.join(); // the workers answered their requests: the publisher is idle
  s.publisher.reset();
  s.running = false;
  http_logger().info("stopped port={}", s.bound_port);
}

int http_service::port() const {
  return impl_->bound_port;
}

} // namespace meterflow::runtime
