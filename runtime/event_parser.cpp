#include "runtime/event_parser.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <simdjson.h>
#include <string>
#include <utility>
#include <vector>

namespace meterflow::runtime {

const char* to_string(reject_reason reason) {
  switch (reason) {
  case reject_reason::bad_json:
    return "bad_json";
  case reject_reason::missing_field:
    return "missing_field";
  case reject_reason::bad_field:
    return "bad_field";
  case reject_reason::too_large:
    return "too_large";
  case reject_reason::bad_time:
    return "bad_time";
  case reject_reason::bad_value:
    return "bad_value";
  }
  return "unknown";
}

namespace {

namespace od = simdjson::ondemand;

constexpr std::size_t max_id_bytes = 128;
constexpr std::size_t max_metadata_bytes = 16 * 1024;
// Nesting limit of the walk below, under simdjson's own (1024), which its On-Demand API only
// asserts in debug builds.
constexpr int max_depth = 512;

enum class json_kind : std::uint8_t { absent, null, string, number, boolean, object, array };

json_kind kind_of(od::json_type t) {
  switch (t) {
  case od::json_type::object:
    return json_kind::object;
  case od::json_type::array:
    return json_kind::array;
  case od::json_type::string:
    return json_kind::string;
  case od::json_type::number:
    return json_kind::number;
  case od::json_type::boolean:
    return json_kind::boolean;
  case od::json_type::null:
    break;
  }
  return json_kind::null;
}

std::string_view trim_trailing_space(std::string_view token) {
  while (!token.empty()) {
    char c = token.back();
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      break;
    token.remove_suffix(1);
  }
  return token;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view s) {
  std::size_t i = 0, n = s.size();
  if (i < n && s[i] == '-')
    ++i;
  if (i >= n || !is_digit(s[i]))
    return false;
  if (s[i] == '0')
    ++i;
  else
    while (i < n && is_digit(s[i]))
      ++i;
  if (i < n && s[i] == '.') {
    ++i;
    if (i >= n || !is_digit(s[i]))
      return false;
    while (i < n && is_digit(s[i]))
      ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-'))
      ++i;
    if (i >= n || !is_digit(s[i]))
      return false;
    while (i < n && is_digit(s[i]))
      ++i;
  }
  return i == n;
}

// Minimal JSON escaping: '"', '\\' and control characters; everything else (including UTF-8)
// is copied as is, so one string has exactly one canonical spelling.
void append_escaped(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

// `digits` (no sign, no leading zeros, more than 18 of them) + `delta`, where |delta| < 10^18:
// the sign of the sum is the sign of the big operand.
std::string add_to_big(bool negative, std::string_view digits, std::int64_t delta) {
  std::string magnitude(digits);
  bool add = (delta < 0) == negative;
  std::uint64_t d = delta < 0 ? 0 - static_cast<std::uint64_t>(delta) : delta;
  int carry = 0;
  for (std::size_t i = magnitude.size(); i-- > 0;) {
    int digit = magnitude[i] - '0';
    int operand = static_cast<int>(d % 10) + carry;
    d /= 10;
    if (add) {
      digit += operand;
      carry = digit / 10;
      digit %= 10;
    } else {
      digit -= operand;
      carry = digit < 0 ? 1 : 0;
      digit += carry * 10;
    }
    magnitude[i] = static_cast<char>('0' + digit);
    if (d == 0 && carry == 0)
      break;
  }
  if (carry)
    magnitude.insert(magnitude.begin(), '1');
  magnitude.erase(0, std::min(magnitude.find_first_not_of('0'), magnitude.size() - 1));
  return negative ? "-" + magnitude : magnitude;
}

// Writes a syntactically valid JSON number by value: a plain decimal (the format of
// pricing::decimal::to_string) when it fits a decimal (magnitude < 10^26, at most 12 fractional
// digits), otherwise "d[.ddd]e<exp>" with the significant digits only. "1.0" and "1" give "1";
// "1e400" and "10e399" give "1e400".
void append_canonical_number(std::string& out, std::string_view raw) {
  // Fast path: an integer without exponent is its own canonical form, except "-0".
  if (raw.size() <= pricing::decimal::max_integer_digits &&
      raw.find_first_of(".eE") == std::string_view::npos && raw != "-0") {
    out += raw;
    return;
  }
  bool negative = raw.front() == '-';
  if (negative)
    raw.remove_prefix(1);
  std::size_t exp_at = raw.find_first_of("eE");
  std::string_view mantissa = raw.substr(0, exp_at);
  std::string_view exponent = exp_at == std::string_view::npos ? "" : raw.substr(exp_at + 1);
  std::size_t point = mantissa.find('.');
  std::string_view int_part = mantissa.substr(0, point);
  std::string_view frac_part = point == std::string_view::npos ? "" : mantissa.substr(point + 1);

  // Significant digits d_first..d_last of int_part + frac_part.
  auto digit_at = [&](std::size_t i) {
    return i < int_part.size() ? int_part[i] : frac_part[i - int_part.size()];
  };
  std::size_t total = int_part.size() + frac_part.size();
  std::size_t first = 0;
  while (first < total && digit_at(first) == '0')
    ++first;
  if (first == total) {
    out += '0';
    return;
  }
  std::size_t last = total - 1;
  while (digit_at(last) == '0')
    --last;
  auto significant = static_cast<std::int64_t>(last - first + 1);
  // value = 0.d_first...d_last x 10^(exponent + adjust)
  std::int64_t adjust =
      static_cast<std::int64_t>(int_part.size()) - static_cast<std::int64_t>(first);

  bool exp_negative = false;
  if (!exponent.empty() && (exponent.front() == '+' || exponent.front() == '-')) {
    exp_negative = exponent.front() == '-';
    exponent.remove_prefix(1);
  }
  exponent.remove_prefix(std::min(exponent.find_first_not_of('0'), exponent.size()));

  if (negative)
    out += '-';
  auto append_digits = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i)
      out += digit_at(i);
  };
  auto append_mantissa = [&] {
    out += digit_at(first);
    if (significant > 1) {
      out += '.';
      append_digits(first + 1, last + 1);
    }
    out += 'e';
  };

  if (exponent.size() > 18) {
    // Far outside any decimal; only the exponent's spelling needs normalizing.
    append_mantissa();
    out += add_to_big(exp_negative, exponent, adjust - 1);
    return;
  }
  std::int64_t e = 0;
  for (char c : exponent)
    e = e * 10 + (c - '0');
  std::int64_t x = (exp_negative ? -e : e) + adjust;

  bool fits_decimal =
      x <= pricing::decimal::max_integer_digits && significant - x <= pricing::decimal::scale;
  if (!fits_decimal) {
    append_mantissa();
    out += std::to_string(x - 1);
    return;
  }
  if (x <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-x), '0');
    append_digits(first, last + 1);
  } else if (x >= significant) {
    append_digits(first, last + 1);
    out.append(static_cast<std::size_t>(x - significant), '0');
  } else {
    append_digits(first, first + static_cast<std::size_t>(x));
    out += '.';
    append_digits(first + static_cast<std::size_t>(x), last + 1);
  }
}

std::string describe(simdjson::error_code e) {
  switch (e) {
  case simdjson::EMPTY:
    return "json: empty line";
  case simdjson::UTF8_ERROR:
    return "json: invalid UTF-8";
  case simdjson::UNESCAPED_CHARS:
    return "json: unescaped control character in a string";
  case simdjson::UNCLOSED_STRING:
    return "json: unterminated string";
  case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
    return "json: truncated, unbalanced or followed by trailing content";
  case simdjson::TAPE_ERROR:
    return "json: malformed (misplaced comma, brace or key, or an invalid literal)";
  case simdjson::STRING_ERROR:
    return "json: invalid string escape";
  case simdjson::DEPTH_ERROR:
    return "json: nested too deeply";
  default:
    return std::string("json: ") + simdjson::error_message(e);
  }
}

std::string quoted(std::string_view key) {
  std::string out;
  append_escaped(out, key.substr(0, 64));
  return out;
}

enum class walk_mode {
  validate,  // check the syntax only
  keys,      // also reject duplicate keys (metadata already known to be too large)
  canonical, // also write the canonical form
};

// A top-level field the parser reads; `text` is a string's unescaped content or a number's raw
// token, pointing into the simdjson buffers of the current line.
struct top_field {
  json_kind kind = json_kind::absent;
  std::string_view text;
};

// An object member while its object is canonicalized: offsets into `arena_`.
struct member {
  std::size_t key_at, key_size, value_at, value_size;
  json_kind kind;
};

struct meter_field {
  std::string metric;
  std::string event_type;
  std::string field;
  bool needs_value; // sum, max, latest read a decimal from the field
};

} // namespace

struct event_parser::impl {
  explicit impl(const config::configuration& cfg);
  parse_outcome parse(std::string_view line);

private:
  bool read_fields(std::size_t size);
  bool read_top_field(od::value v, top_field& out);
  bool read_metadata(od::value v);
  bool walk(od::value v, walk_mode mode, int depth, json_kind& kind);
  bool walk_object(od::object o, walk_mode mode, int depth, bool root);
  bool fail_json(simdjson::error_code e) {
    problem_ = describe(e);
    return false;
  }
  bool fail_json(std::string detail) {
    problem_ = std::move(detail);
    return false;
  }
  parse_outcome validate();

  std::vector<meter_field> meter_fields_;
  od::parser parser_;
  std::unique_ptr<char[]> buffer_;
  std::size_t buffer_capacity_ = 0;

  // Per-line state, reset by parse().
  top_field event_id_, customer_id_, event_type_, event_time_, value_;
  json_kind metadata_kind_ = json_kind::absent;
  bool metadata_too_large_ = false;
  std::string problem_;
  // Scratch for canonical metadata: unescaped keys and canonical values of the objects being
  // walked; members_ is a stack of the open objects' members (the root's stay for meter fields).
  std::string arena_;
  std::vector<member> members_;
  std::size_t root_members_ = 0;
  std::string assembly_;
  bool metadata_ready_ = false; // assembly_ holds the root's canonical text
};

event_parser::impl::impl(const config::configuration& cfg) {
  for (const auto& m : cfg.meters)
    if (m.field)
      meter_fields_.push_back(
          {m.metric, m.event_type, *m.field,
           m.kind != config::aggregation::unique_count && m.kind != config::aggregation::count});
}

parse_outcome event_parser::impl::parse(std::string_view line) {
  event_id_ = customer_id_ = event_type_ = event_time_ = value_ = top_field{};
  metadata_kind_ = json_kind::absent;
  metadata_too_large_ = false;
  arena_.clear();
  members_.clear();
  root_members_ = 0;
  metadata_ready_ = false;

  // simdjson reads up to SIMDJSON_PADDING bytes past the end of the input.
  std::size_t needed = line.size() + simdjson::SIMDJSON_PADDING;
  if (needed > buffer_capacity_) {
    buffer_capacity_ = std::max(needed, 2 * buffer_capacity_);
    buffer_ = std::make_unique<char[]>(buffer_capacity_);
  }
  std::memcpy(buffer_.get(), line.data(), line.size());
  std::memset(buffer_.get() + line.size(), 0, simdjson::SIMDJSON_PADDING);

  if (!read_fields(line.size()))
    return {std::nullopt, reject_reason::bad_json, std::move(problem_)};
  return validate();
}

bool event_parser::impl::read_fields(std::size_t size) {
  od::document doc;
  if (auto e = parser_.iterate(buffer_.get(), size, buffer_capacity_).get(doc))
    return fail_json(e);
  od::json_type type;
  if (auto e = doc.type().get(type))
    return fail_json(e);
  if (type != od::json_type::object)
    return fail_json("json: not an object");
  od::object object;
  if (auto e = doc.get_object().get(object))
    return fail_json(e);
  for (auto result : object) {
    od::field field;
    std::string_view key;
    if (auto e = std::move(result).get(field))
      return fail_json(e);
    if (auto e = field.unescaped_key().get(key))
      return fail_json(e);
    od::value value = field.value();
    top_field* target = nullptr;
    if (key == "event_id")
      target = &event_id_;
    else if (key == "customer_id")
      target = &customer_id_;
    else if (key == "event_type")
      target = &event_type_;
    else if (key == "event_time")
      target = &event_time_;
    else if (key == "value")
      target = &value_;
    else if (key == "metadata") {
      if (metadata_kind_ != json_kind::absent)
        return fail_json("json: duplicate key \"metadata\"");
      if (!read_metadata(value))
        return false;
      continue;
    }
    if (!target) {
      json_kind ignored;
      if (!walk(value, walk_mode::validate, 1, ignored))
        return false;
      continue;
    }
    // Which of two values a reader takes is unspecified by RFC 8259, so neither is taken.
    if (target->kind != json_kind::absent)
      return fail_json("json: duplicate key " + quoted(key));
    if (!read_top_field(value, *target))
      return false;
  }
  if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS)
    return fail_json("json: trailing content after the object");
  return true;
}

bool event_parser::impl::read_top_field(od::value v, top_field& out) {
  od::json_type type;
  if (auto e = v.type().get(type))
    return fail_json(e);
  out.kind = kind_of(type);
  switch (type) {
  case od::json_type::string:
    if (auto e = v.get_string().get(out.text))
      return fail_json(e);
    return true;
  case od::json_type::number:
    out.text = trim_trailing_space(v.raw_json_token());
    if (!is_json_number(out.text))
      return fail_json("json: invalid number");
    return true;
  default:
    json_kind ignored;
    return walk(v, walk_mode::validate, 1, ignored);
  }
}

bool event_parser::impl::read_metadata(od::value v) {
  od::json_type type;
  if (auto e = v.type().get(type))
    return fail_json(e);
  metadata_kind_ = kind_of(type);
  if (type != od::json_type::object) {
    json_kind ignored;
    return walk(v, walk_mode::validate, 1, ignored);
  }
  od::object object;
  if (auto e = v.get_object().get(object))
    return fail_json(e);
  return walk_object(object, walk_mode::canonical, 1, true);
}

bool event_parser::impl::walk(od::value v, walk_mode mode, int depth, json_kind& kind) {
  if (depth > max_depth)
    return fail_json(simdjson::DEPTH_ERROR);
  od::json_type type;
  if (auto e = v.type().get(type))
    return fail_json(e);
  kind = kind_of(type);
  switch (type) {
  case od::json_type::object: {
    od::object object;
    if (auto e = v.get_object().get(object))
      return fail_json(e);
    return walk_object(object, mode, depth + 1, false);
  }
  case od::json_type::array: {
    od::array array;
    if (auto e = v.get_array().get(array))
      return fail_json(e);
    std::size_t start = arena_.size();
    if (mode == walk_mode::canonical)
      arena_ += '[';
    bool first = true;
    for (auto result : array) {
      od::value element;
      if (auto e = std::move(result).get(element))
        return fail_json(e);
      if (mode == walk_mode::canonical && !std::exchange(first, false))
        arena_ += ',';
      json_kind element_kind;
      if (!walk(element, mode, depth + 1, element_kind))
        return false;
      if (mode == walk_mode::canonical && arena_.size() - start > max_metadata_bytes)
        metadata_too_large_ = true;
      if (metadata_too_large_ && mode == walk_mode::canonical)
        mode = walk_mode::keys;
    }
    if (mode == walk_mode::canonical)
      arena_ += ']';
    return true;
  }
  case od::json_type::string: {
    std::string_view text;
    if (auto e = v.get_string().get(text))
      return fail_json(e);
    if (mode == walk_mode::canonical)
      append_escaped(arena_, text);
    return true;
  }
  case od::json_type::number: {
    std::string_view token = trim_trailing_space(v.raw_json_token());
    if (!is_json_number(token))
      return fail_json("json: invalid number");
    if (mode == walk_mode::canonical)
      append_canonical_number(arena_, token);
    return true;
  }
  case od::json_type::boolean:
  case od::json_type::null: {
    std::string_view token = trim_trailing_space(v.raw_json_token());
    if (token != "true" && token != "false" && token != "null")
      return fail_json("json: invalid literal");
    if (mode == walk_mode::canonical)
      arena_ += token;
    return true;
  }
  }
  return fail_json("json: unknown value type");
}

// Canonical form: members sorted by the bytes of their unescaped keys. In canonical mode the
// object's canonical text replaces its scratch in `arena_` (the root's stays in `assembly_`).
bool event_parser::impl::walk_object(od::object o, walk_mode mode, int depth, bool root) {
  std::size_t start = arena_.size();
  std::size_t base = members_.size();
  for (auto result : o) {
    od::field field;
    std::string_view key;
    if (auto e = std::move(result).get(field))
      return fail_json(e);
    if (auto e = field.unescaped_key().get(key))
      return fail_json(e);
    od::value value = field.value();
    if (mode == walk_mode::validate) {
      json_kind ignored;
      if (!walk(value, mode, depth, ignored))
        return false;
      continue;
    }
    member m{arena_.size(), key.size(), 0, 0, json_kind::null};
    arena_ += key;
    m.value_at = arena_.size();
    if (!walk(value, mode, depth, m.kind))
      return false;
    m.value_size = arena_.size() - m.value_at;
    members_.push_back(m);
    // The canonical object is at least as long as its unescaped keys and canonical values.
    if (mode == walk_mode::canonical && arena_.size() - start > max_metadata_bytes)
      metadata_too_large_ = true;
    if (metadata_too_large_ && mode == walk_mode::canonical)
      mode = walk_mode::keys;
  }
  if (mode == walk_mode::validate)
    return true;

  const char* data = arena_.data();
  auto key_of = [data](const member& m) { return std::string_view(data + m.key_at, m.key_size); };
  auto first = members_.begin() + static_cast<std::ptrdiff_t>(base);
  std::sort(first, members_.end(),
            [&](const member& a, const member& b) { return key_of(a) < key_of(b); });
  auto duplicate = std::adjacent_find(first, members_.end(), [&](const member& a, const member& b) {
    return key_of(a) == key_of(b);
  });
  if (duplicate != members_.end())
    return fail_json("metadata: duplicate key " + quoted(key_of(*duplicate)));

  if (mode == walk_mode::canonical) {
    assembly_.clear();
    assembly_ += '{';
    for (auto it = first; it != members_.end(); ++it) {
      if (it != first)
        assembly_ += ',';
      append_escaped(assembly_, key_of(*it));
      assembly_ += ':';
      assembly_.append(data + it->value_at, it->value_size);
    }
    assembly_ += '}';
    if (assembly_.size() > max_metadata_bytes)
      metadata_too_large_ = true;
  }
  if (root) {
    // The root's members stay in place: meter fields are looked up in them.
    root_members_ = members_.size();
    metadata_ready_ = mode == walk_mode::canonical;
    return true;
  }
  members_.resize(base);
  arena_.resize(start);
  if (mode == walk_mode::canonical)
    arena_ += assembly_;
  return true;
}

parse_outcome event_parser::impl::validate() {
  auto reject = [](reject_reason reason, std::string detail) {
    return parse_outcome{std::nullopt, reason, std::move(detail)};
  };
  struct id_field {
    const char* name;
    const top_field& field;
  };
  for (const auto& [name, field] :
       {id_field{"event_id", event_id_}, id_field{"customer_id", customer_id_},
        id_field{"event_type", event_type_}}) {
    if (field.kind == json_kind::absent || field.kind == json_kind::null)
      return reject(reject_reason::missing_field, std::string(name) + ": missing");
    if (field.kind != json_kind::string)
      return reject(reject_reason::bad_field, std::string(name) + ": not a string");
    if (field.text.empty())
      return reject(reject_reason::missing_field, std::string(name) + ": empty");
    if (field.text.size() > max_id_bytes)
      return reject(reject_reason::too_large, std::string(name) + ": longer than 128 bytes");
    for (char c : field.text)
      if (c < 0x20 || c > 0x7e)
        return reject(reject_reason::bad_field,
                      std::string(name) + ": character outside printable ASCII");
  }

  persistence::event event;
  if (event_time_.kind == json_kind::absent || event_time_.kind == json_kind::null ||
      (event_time_.kind == json_kind::string && event_time_.text.empty()))
    return reject(reject_reason::missing_field, "event_time: missing");
  if (event_time_.kind != json_kind::string)
    return reject(reject_reason::bad_time, "event_time: not a string");
  auto time = pricing::parse_rfc3339(event_time_.text);
  if (!time)
    return reject(reject_reason::bad_time, "event_time: " + time.error_value().message);
  event.event_time = *time;

  if (value_.kind == json_kind::number || value_.kind == json_kind::string) {
    auto value = pricing::decimal::parse(value_.text);
    if (!value) {
      switch (value.error_value().code) {
      case pricing::errc::bad_syntax:
        return reject(reject_reason::bad_value, "value: not JSON number syntax");
      case pricing::errc::bad_precision:
        return reject(reject_reason::bad_value, "value: more than 12 fractional digits");
      case pricing::errc::overflow:
        return reject(reject_reason::bad_value, "value: magnitude at or above 10^26");
      default:
        return reject(reject_reason::bad_value, "value: " + value.error_value().message);
      }
    }
    event.value = *value;
  } else if (value_.kind != json_kind::absent && value_.kind != json_kind::null) {
    return reject(reject_reason::bad_value, "value: not a number or a numeric string");
  }

  if (metadata_kind_ != json_kind::absent && metadata_kind_ != json_kind::null &&
      metadata_kind_ != json_kind::object)
    return reject(reject_reason::bad_field, "metadata: not an object");
  if (metadata_too_large_)
    return reject(reject_reason::too_large, "metadata: larger than 16384 bytes as canonical JSON");

  for (const auto& meter : meter_fields_) {
    if (meter.event_type != event_type_.text)
      continue;
    auto where = [&meter] { return "metadata." + meter.field; };
    auto first = members_.begin();
    auto last = first + static_cast<std::ptrdiff_t>(root_members_);
    auto found = std::lower_bound(first, last, meter.field, [&](const member& m, const auto& key) {
      return std::string_view(arena_.data() + m.key_at, m.key_size) < key;
    });
    if (found == last ||
        std::string_view(arena_.data() + found->key_at, found->key_size) != meter.field ||
        found->kind == json_kind::null)
      return reject(reject_reason::missing_field,
                    where() + ": missing (meter " + meter.metric + ")");
    if (!meter.needs_value)
      continue;
    std::string_view text(arena_.data() + found->value_at, found->value_size);
    // A canonical string is quoted; it holds a number only without escapes.
    if (found->kind == json_kind::string && text.find('\\') == std::string_view::npos)
      text = text.substr(1, text.size() - 2);
    else if (found->kind != json_kind::number)
      return reject(reject_reason::bad_value,
                    where() + ": not a number or a numeric string (meter " + meter.metric + ")");
    auto value = pricing::decimal::parse(text);
    if (!value) {
      const char* why = "not JSON number syntax";
      if (value.error_value().code == pricing::errc::bad_precision)
        why = "more than 12 fractional digits";
      else if (value.error_value().code == pricing::errc::overflow)
        why = "magnitude at or above 10^26";
      return reject(reject_reason::bad_value,
                    where() + ": " + why + " (meter " + meter.metric + ")");
    }
  }

  event.event_id.assign(event_id_.text);
  event.customer_id.assign(customer_id_.text);
  event.event_type.assign(event_type_.text);
  if (metadata_ready_)
    event.metadata.assign(assembly_);
  return {std::move(event), reject_reason::bad_json, {}};
}

event_parser::event_parser(const config::configuration& cfg) : impl_(std::make_unique<impl>(cfg)) {}

event_parser::~event_parser() = default;

parse_outcome event_parser::parse(std::string_view line) {
  return impl_->parse(line);
}

} // namespace meterflow::runtime
