#include "runtime/event_parser.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using meterflow::config::aggregation;
using meterflow::config::configuration;
using meterflow::pricing::decimal;
using meterflow::runtime::event_parser;
using meterflow::runtime::parse_outcome;
using meterflow::runtime::reject_reason;

namespace {

configuration test_config() {
  configuration cfg;
  cfg.meters.push_back({"api_calls", "api_call", aggregation::count, std::nullopt});
  cfg.meters.push_back({"gb_stored", "storage", aggregation::sum, "bytes"});
  cfg.meters.push_back({"peak_level", "gauge", aggregation::max, "level"});
  cfg.meters.push_back({"active_users", "login", aggregation::unique_count, "user"});
  return cfg;
}

// 2024-01-15T10:00:00Z in microseconds.
constexpr std::int64_t jan15_10h = 1'705'312'800'000'000;

std::string event_line(const std::string& extra) {
  return R"({"event_id":"e-1","customer_id":"c1","event_type":"api_call",)"
         R"("event_time":"2024-01-15T10:00:00Z")" +
         extra + "}";
}

std::string metadata_of(event_parser& parser, const std::string& metadata) {
  auto outcome = parser.parse(event_line(R"(,"metadata":)" + metadata));
  INFO(metadata << " -> " << outcome.detail);
  REQUIRE(outcome.ok());
  return outcome.event->metadata;
}

} // namespace

TEST_CASE("accepted events and their parsed fields", "[event_parser]") {
  struct row {
    std::string line;
    std::string event_id, customer_id, event_type;
    std::int64_t event_time;
    std::string value;
    std::string metadata;
  };
  const std::string long_id(128, 'a');
  const std::vector<row> rows = {
      {R"({"event_id":"e-1","event_time":"2024-01-15T10:00:00.123Z","customer_id":"c1",)"
       R"("event_type":"api_call","value":"1","metadata":{"region":"eu"}})",
       "e-1", "c1", "api_call", jan15_10h + 123'000, "1", R"({"region":"eu"})"},
      {event_line(""), "e-1", "c1", "api_call", jan15_10h, "1", ""},
      {event_line(R"(,"value":null,"metadata":null)"), "e-1", "c1", "api_call", jan15_10h, "1", ""},
      {event_line(R"(,"value":2.5)"), "e-1", "c1", "api_call", jan15_10h, "2.5", ""},
      {event_line(R"(,"value":"1e3")"), "e-1", "c1", "api_call", jan15_10h, "1000", ""},
      {event_line(R"(,"value":-0.000000000001)"), "e-1", "c1", "api_call", jan15_10h,
       "-0.000000000001", ""},
      {event_line(R"(,"value":1.50000000000000000000)"), "e-1", "c1", "api_call", jan15_10h, "1.5",
       ""},
      {event_line(R"(,"value":99999999999999999999999999e-1)"), "e-1", "c1", "api_call", jan15_10h,
       "9999999999999999999999999.9", ""},
      {event_line(R"(,"value":0)"), "e-1", "c1", "api_call", jan15_10h, "0", ""},
      {event_line(R"(,"metadata":{})"), "e-1", "c1", "api_call", jan15_10h, "1", "{}"},
      // Offsets, unknown fields, whitespace, escapes.
      {R"({"event_id":"e-2","customer_id":"c2","event_type":"api_call",)"
       R"("event_time":"2024-01-15T11:30:00.5+01:30"})",
       "e-2", "c2", "api_call", jan15_10h + 500'000, "1", ""},
      {event_line(R"(,"ingestion_time":"x","extra":[1,{"y":null,"y2":true}],"n":1e999)"), "e-1",
       "c1", "api_call", jan15_10h, "1", ""},
      {" \t{ \"event_id\" : \"e\\u002d3\" , \"customer_id\":\"c\\/1\",\"event_type\":\"api_call\","
       "\"event_time\":\"2024-01-15T10:00:00Z\" } \t ",
       "e-3", "c/1", "api_call", jan15_10h, "1", ""},
      {R"({"event_id":")" + long_id +
           R"(","customer_id":"c1","event_type":"x y",)"
           R"("event_time":"1970-01-01T00:00:00Z"})",
       long_id, "c1", "x y", 0, "1", ""},
      {R"({"event_id":"~!","customer_id":"c1","event_type":"unmetered",)"
       R"("event_time":"9999-12-31T23:59:59.999999Z"})",
       "~!", "c1", "unmetered", 253'402'300'799'999'999, "1", ""},
      // Meter fields.
      {R"({"event_id":"s1","customer_id":"c1","event_type":"storage",)"
       R"("event_time":"2024-01-15T10:00:00Z","metadata":{"bytes":1024}})",
       "s1", "c1", "storage", jan15_10h, "1", R"({"bytes":1024})"},
      {R"({"event_id":"s2","customer_id":"c1","event_type":"storage",)"
       R"("event_time":"2024-01-15T10:00:00Z","metadata":{"bytes":"1.5e3","z":1}})",
       "s2", "c1", "storage", jan15_10h, "1", R"({"bytes":"1.5e3","z":1})"},
      {R"({"event_id":"g1","customer_id":"c1","event_type":"gauge",)"
       R"("event_time":"2024-01-15T10:00:00Z","metadata":{"level":-3.25}})",
       "g1", "c1", "gauge", jan15_10h, "1", R"({"level":-3.25})"},
      {R"({"event_id":"l1","customer_id":"c1","event_type":"login",)"
       R"("event_time":"2024-01-15T10:00:00Z","metadata":{"user":"u\u00e9"}})",
       "l1", "c1", "login", jan15_10h, "1", "{\"user\":\"u\xc3\xa9\"}"},
      {R"({"event_id":"l2","customer_id":"c1","event_type":"login",)"
       R"("event_time":"2024-01-15T10:00:00Z","metadata":{"user":{"id":7}}})",
       "l2", "c1", "login", jan15_10h, "1", R"({"user":{"id":7}})"},
  };
  event_parser parser(test_config());
  for (const auto& r : rows) {
    INFO(r.line);
    auto outcome = parser.parse(r.line);
    INFO(outcome.detail);
    REQUIRE(outcome.ok());
    CHECK(outcome.detail.empty());
    CHECK(outcome.event->event_id == r.event_id);
    CHECK(outcome.event->customer_id == r.customer_id);
    CHECK(outcome.event->event_type == r.event_type);
    CHECK(outcome.event->event_time == r.event_time);
    CHECK(outcome.event->value.to_string() == r.value);
    CHECK(outcome.event->metadata == r.metadata);
  }
}

TEST_CASE("rejected lines and their reasons", "[event_parser]") {
  struct row {
    std::string name;
    std::string line;
    reject_reason reason;
    std::string detail; // a substring of the expected detail
  };
  const std::string ids = R"("event_id":"e-1","customer_id":"c1","event_type":"api_call",)";
  const std::string ok_time = R"("event_time":"2024-01-15T10:00:00Z")";
  auto with_time = [&](const std::string& time) {
    return "{" + ids + R"("event_time":)" + time + "}";
  };
  const std::string big_string(1 << 20, 'x');
  std::string many_ones;
  for (int i = 0; i < 17 * 1024 / 2; ++i)
    many_ones += "1,";
  const std::vector<row> rows = {
      // bad_json
      {"empty line", "", reject_reason::bad_json, "json:"},
      {"blank line", "  \t ", reject_reason::bad_json, "json:"},
      {"malformed", R"({"event_id":"e-1",})", reject_reason::bad_json, "json:"},
      {"missing colon", R"({"event_id" "e-1"})", reject_reason::bad_json, "json:"},
      {"truncated", event_line("").substr(0, 60), reject_reason::bad_json, "json:"},
      {"truncated after value", "{" + ids + ok_time, reject_reason::bad_json, "json:"},
      {"binary garbage", std::string("\x00\x01\x02\xff\xfe{}", 7), reject_reason::bad_json,
       "json:"},
      {"invalid UTF-8 in a string", event_line(",\"metadata\":{\"a\":\"\xc3\x28\"}"),
       reject_reason::bad_json, "UTF-8"},
      {"overlong UTF-8", event_line(",\"x\":\"\xc0\xaf\""), reject_reason::bad_json, "UTF-8"},
      {"raw control character", event_line(",\"x\":\"a\tb\""), reject_reason::bad_json, "json:"},
      {"array instead of object", "[" + event_line("") + "]", reject_reason::bad_json,
       "not an object"},
      {"string document", R"("event")", reject_reason::bad_json, "not an object"},
      {"trailing garbage", event_line("") + " x", reject_reason::bad_json, "json:"},
      {"trailing brace", event_line("") + "}", reject_reason::bad_json, "trailing"},
      {"two objects", event_line("") + event_line(""), reject_reason::bad_json, "json:"},
      {"NaN literal", event_line(R"(,"value":NaN)"), reject_reason::bad_json, "json:"},
      {"Infinity literal", event_line(R"(,"value":Infinity)"), reject_reason::bad_json, "json:"},
      {"negative Infinity", event_line(R"(,"value":-Infinity)"), reject_reason::bad_json, "json:"},
      {"JSON number +1", event_line(R"(,"value":+1)"), reject_reason::bad_json, "json:"},
      {"JSON number .5", event_line(R"(,"value":.5)"), reject_reason::bad_json, "json:"},
      {"JSON number 01", event_line(R"(,"value":01)"), reject_reason::bad_json, "invalid number"},
      {"JSON number 1.", event_line(R"(,"value":1.)"), reject_reason::bad_json, "invalid number"},
      {"bad literal", event_line(R"(,"x":tru)"), reject_reason::bad_json, "invalid literal"},
      {"bad nested number", event_line(R"(,"x":[1,-])"), reject_reason::bad_json, "json:"},
      {"bad escape", event_line(R"(,"x":"\q")"), reject_reason::bad_json, "json:"},
      {"lone surrogate", event_line(R"(,"x":"\ud800")"), reject_reason::bad_json, "json:"},
      {"duplicate event_id", event_line(R"(,"event_id":"e-2")"), reject_reason::bad_json,
       "duplicate key \"event_id\""},
      {"duplicate null value", event_line(R"(,"value":null,"value":2)"), reject_reason::bad_json,
       "duplicate key \"value\""},
      {"duplicate metadata", event_line(R"(,"metadata":{},"metadata":{})"), reject_reason::bad_json,
       "duplicate key \"metadata\""},
      {"duplicate key in metadata", event_line(R"(,"metadata":{"a":1,"b":2,"a":1})"),
       reject_reason::bad_json, "metadata: duplicate key \"a\""},
      {"duplicate nested key", event_line(R"(,"metadata":{"a":[{"k":1,"k":2}]})"),
       reject_reason::bad_json, "metadata: duplicate key \"k\""},
      {"escaped duplicate key", event_line(R"(,"metadata":{"a":1,"\u0061":1})"),
       reject_reason::bad_json, "duplicate key"},
      {"too deep", event_line(",\"x\":" + std::string(5000, '[') + std::string(5000, ']')),
       reject_reason::bad_json, "json:"},
      // missing_field
      {"no event_id", R"({"customer_id":"c1","event_type":"api_call",)" + ok_time + "}",
       reject_reason::missing_field, "event_id: missing"},
      {"null customer_id",
       R"({"event_id":"e-1","customer_id":null,"event_type":"api_call",)" + ok_time + "}",
       reject_reason::missing_field, "customer_id: missing"},
      {"empty event_type",
       R"({"event_id":"e-1","customer_id":"c1","event_type":"",)" + ok_time + "}",
       reject_reason::missing_field, "event_type: empty"},
      {"empty event_id", R"({"event_id":"","customer_id":"c1","event_type":"a",)" + ok_time + "}",
       reject_reason::missing_field, "event_id: empty"},
      {"no event_time", "{" + ids + R"("value":1})", reject_reason::missing_field,
       "event_time: missing"},
      {"null event_time", with_time("null"), reject_reason::missing_field, "event_time: missing"},
      {"empty event_time", with_time(R"("")"), reject_reason::missing_field, "event_time: missing"},
      {"missing meter field",
       R"({"event_id":"s1","customer_id":"c1","event_type":"storage",)" + ok_time +
           R"(,"metadata":{"byte":1}})",
       reject_reason::missing_field, "metadata.bytes: missing (meter gb_stored)"},
      {"meter field without metadata",
       R"({"event_id":"s1","customer_id":"c1","event_type":"storage",)" + ok_time + "}",
       reject_reason::missing_field, "metadata.bytes: missing (meter gb_stored)"},
      {"null meter field",
       R"({"event_id":"l1","customer_id":"c1","event_type":"login",)" + ok_time +
           R"(,"metadata":{"user":null}})",
       reject_reason::missing_field, "metadata.user: missing (meter active_users)"},
      // bad_field
      {"numeric event_id", R"({"event_id":1,"customer_id":"c1","event_type":"a",)" + ok_time + "}",
       reject_reason::bad_field, "event_id: not a string"},
      {"object customer_id",
       R"({"event_id":"e","customer_id":{"id":"c1"},"event_type":"a",)" + ok_time + "}",
       reject_reason::bad_field, "customer_id: not a string"},
      {"boolean event_type",
       R"({"event_id":"e","customer_id":"c1","event_type":true,)" + ok_time + "}",
       reject_reason::bad_field, "event_type: not a string"},
      {"id with newline escape",
       R"({"event_id":"e\n1","customer_id":"c1","event_type":"a",)" + ok_time + "}",
       reject_reason::bad_field, "event_id: character outside printable ASCII"},
      {"id with DEL",
       "{\"event_id\":\"e\x7f\",\"customer_id\":\"c1\",\"event_type\":\"a\"," + ok_time + "}",
       reject_reason::bad_field, "event_id: character outside"},
      {"id with UTF-8",
       R"({"event_id":"e","customer_id":"caf\u00e9","event_type":"a",)" + ok_time + "}",
       reject_reason::bad_field, "customer_id: character outside"},
      {"metadata array", event_line(R"(,"metadata":[1,2])"), reject_reason::bad_field,
       "metadata: not an object"},
      {"metadata string", event_line(R"(,"metadata":"{}")"), reject_reason::bad_field,
       "metadata: not an object"},
      // too_large
      {"id of 129 bytes",
       R"({"event_id":")" + std::string(129, 'e') + R"(","customer_id":"c1","event_type":"a",)" +
           ok_time + "}",
       reject_reason::too_large, "event_id: longer than 128 bytes"},
      {"metadata of 16385 bytes",
       event_line(R"(,"metadata":{"k":")" + std::string(16377, 'x') + R"("})"),
       reject_reason::too_large, "metadata: larger than 16384 bytes"},
      {"metadata of 17 KiB in an array", event_line(R"(,"metadata":{"k":[)" + many_ones + "1]}"),
       reject_reason::too_large, "metadata:"},
      {"1 MB line", event_line(R"(,"metadata":{"a":{"b":[")" + big_string + R"("]}})"),
       reject_reason::too_large, "metadata:"},
      // bad_time
      {"event_time number", with_time("1705312800"), reject_reason::bad_time,
       "event_time: not a string"},
      {"no zone", with_time(R"("2024-01-15T10:00:00")"), reject_reason::bad_time, "event_time:"},
      {"not a time", with_time(R"("yesterday")"), reject_reason::bad_time, "event_time:"},
      {"leap second", with_time(R"("2016-12-31T23:59:60Z")"), reject_reason::bad_time,
       "event_time:"},
      {"Feb 30", with_time(R"("2024-02-30T10:00:00Z")"), reject_reason::bad_time, "event_time:"},
      {"year 1969", with_time(R"("1969-12-31T23:59:59Z")"), reject_reason::bad_time, "event_time:"},
      {"before 1970 by offset", with_time(R"("1970-01-01T00:30:00+01:00")"),
       reject_reason::bad_time, "event_time:"},
      {"7 fraction digits", with_time(R"("2024-01-15T10:00:00.1234567Z")"), reject_reason::bad_time,
       "event_time:"},
      // bad_value
      {"13 fractional digits", event_line(R"(,"value":0.0000000000001)"), reject_reason::bad_value,
       "value: more than 12 fractional digits"},
      {"13 fractional digits string", event_line(R"(,"value":"1.0000000000001")"),
       reject_reason::bad_value, "value: more than 12 fractional digits"},
      {"string NaN", event_line(R"(,"value":"NaN")"), reject_reason::bad_value, "value:"},
      {"string abc", event_line(R"(,"value":"abc")"), reject_reason::bad_value, "value:"},
      {"string +1", event_line(R"(,"value":"+1")"), reject_reason::bad_value, "value:"},
      {"string .5", event_line(R"(,"value":".5")"), reject_reason::bad_value, "value:"},
      {"string 1,5", event_line(R"(,"value":"1,5")"), reject_reason::bad_value, "value:"},
      {"string with spaces", event_line(R"(,"value":" 1")"), reject_reason::bad_value, "value:"},
      {"empty string", event_line(R"(,"value":"")"), reject_reason::bad_value, "value:"},
      {"value 1e26", event_line(R"(,"value":1e26)"), reject_reason::bad_value,
       "value: magnitude at or above 10^26"},
      {"value -1e26", event_line(R"(,"value":"-1e26")"), reject_reason::bad_value,
       "value: magnitude"},
      {"value 1e400", event_line(R"(,"value":1e400)"), reject_reason::bad_value,
       "value: magnitude"},
      {"value boolean", event_line(R"(,"value":true)"), reject_reason::bad_value,
       "value: not a number"},
      {"value object", event_line(R"(,"value":{"v":1})"), reject_reason::bad_value,
       "value: not a number"},
      {"meter field non-numeric",
       R"({"event_id":"s1","customer_id":"c1","event_type":"storage",)" + ok_time +
           R"(,"metadata":{"bytes":"lots"}})",
       reject_reason::bad_value, "metadata.bytes: not JSON number syntax (meter gb_stored)"},
      {"meter field boolean",
       R"({"event_id":"g1","customer_id":"c1","event_type":"gauge",)" + ok_time +
           R"(,"metadata":{"level":true}})",
       reject_reason::bad_value, "metadata.level: not a number"},
      {"meter field escaped string",
       R"({"event_id":"g1","customer_id":"c1","event_type":"gauge",)" + ok_time +
           R"(,"metadata":{"level":"1\n"}})",
       reject_reason::bad_value, "metadata.level: not a number"},
      {"meter field too precise",
       R"({"event_id":"s1","customer_id":"c1","event_type":"storage",)" + ok_time +
           R"(,"metadata":{"bytes":1e-13}})",
       reject_reason::bad_value, "metadata.bytes: more than 12 fractional digits"},
      {"meter field too large",
       R"({"event_id":"s1","customer_id":"c1","event_type":"storage",)" + ok_time +
           R"(,"metadata":{"bytes":"1e30"}})",
       reject_reason::bad_value, "metadata.bytes: magnitude"},
      // The first failing check in the order of §11 wins.
      {"event_id before customer_id", R"({"event_id":5,"customer_id":null})",
       reject_reason::bad_field, "event_id:"},
      {"ids before event_time", R"({"event_id":"e","customer_id":"","event_time":"x"})",
       reject_reason::missing_field, "customer_id:"},
      {"event_time before value",
       R"({"value":"x","event_id":"e-1","customer_id":"c1","event_type":"api_call","event_time":"x"})",
       reject_reason::bad_time, "event_time:"},
      {"value before metadata", event_line(R"(,"metadata":[],"value":"x")"),
       reject_reason::bad_value, "value:"},
      {"metadata before meter field",
       R"({"event_id":"s1","customer_id":"c1","event_type":"storage",)" + ok_time +
           R"(,"metadata":7})",
       reject_reason::bad_field, "metadata: not an object"},
      {"bad_json before everything", R"({"event_id":1,"metadata":{"a":1,"a":2}})",
       reject_reason::bad_json, "duplicate key"},
  };
  event_parser parser(test_config());
  for (const auto& r : rows) {
    INFO(r.name);
    auto outcome = parser.parse(r.line);
    INFO(outcome.detail);
    REQUIRE_FALSE(outcome.ok());
    CHECK(to_string(outcome.reason) == std::string(to_string(r.reason)));
    CHECK_THAT(outcome.detail, Catch::Contains(r.detail));
  }
}

TEST_CASE("metadata size limit counts the canonical form", "[event_parser]") {
  event_parser parser(test_config());
  // {"k":"..."} is 8 bytes plus the string.
  auto exact =
      parser.parse(event_line(R"(,"metadata":{"k":")" + std::string(16376, 'x') + R"("})"));
  REQUIRE(exact.ok());
  CHECK(exact.event->metadata.size() == 16384);
  // Whitespace and number spellings do not count.
  auto padded = parser.parse(
      event_line(R"(,"metadata":  { "k" : ")" + std::string(16376, 'x') + R"(" , "n" : null })"));
  CHECK(padded.reason == reject_reason::too_large);
  auto spelled = parser.parse(event_line(R"(,"metadata":{"k":")" + std::string(16370, 'x') +
                                         R"(","n":1.000000000000000000000000000})"));
  REQUIRE(spelled.ok());
  CHECK(spelled.event->metadata.size() == 16384);
}

TEST_CASE("canonical metadata compares JSON values", "[event_parser]") {
  event_parser parser(test_config());
  const std::vector<std::pair<std::string, std::string>> equal = {
      {R"({"b":1,"a":2})", R"({"a":2,"b":1})"},
      {R"({"a":1})", " {\n \"a\" :\t1 } "},
      {R"({"n":1.0})", R"({"n":1})"},
      {R"({"n":1e2})", R"({"n":100.000})"},
      {R"({"n":-0})", R"({"n":0.0e5})"},
      {R"({"n":1e400})", R"({"n":10e399})"},
      {R"({"n":1e400})", R"({"n":0.0001e404})"},
      {R"({"n":1.5e-20})", R"({"n":0.000000000000000000015})"},
      {R"({"n":12345678901234567890123456789})", R"({"n":1.2345678901234567890123456789e28})"},
      {R"({"n":1e100000000000000000000000})", R"({"n":0.1e100000000000000000000001})"},
      {R"({"n":1e-100000000000000000000000})", R"({"n":100e-100000000000000000000002})"},
      {R"({"s":"\u0041\/\u00e9"})", "{\"s\":\"A/\xc3\xa9\"}"},
      {R"({"z":{"y":[3,{"b":true,"a":null}],"x":"1"},"a":[]})",
       R"({"a":[],"z":{"x":"1","y":[3.0,{"a":null,"b":true}]}})"},
  };
  for (const auto& [a, b] : equal) {
    INFO(a << " vs " << b);
    CHECK(metadata_of(parser, a) == metadata_of(parser, b));
  }
  const std::vector<std::pair<std::string, std::string>> different = {
      {R"({"a":"2"})", R"({"a":2})"},
      {R"({"a":[1,2]})", R"({"a":[2,1]})"},
      {R"({"a":1})", R"({"a":1.000000000001})"},
      {R"({"a":1e400})", R"({"a":1e401})"},
      {R"({"a":1e100000000000000000000000})", R"({"a":1e100000000000000000000001})"},
      {R"({"a":null})", R"({})"},
      {R"({"a":true})", R"({"a":"true"})"},
      {R"({"a":{}})", R"({"a":[]})"},
      {R"({"A":1})", R"({"a":1})"},
  };
  for (const auto& [a, b] : different) {
    INFO(a << " vs " << b);
    CHECK(metadata_of(parser, a) != metadata_of(parser, b));
  }
  // Absent and null metadata are both "".
  CHECK(parser.parse(event_line(R"(,"metadata":null)")).event->metadata.empty());
}

TEST_CASE("canonical metadata text", "[event_parser]") {
  event_parser parser(test_config());
  const std::vector<std::pair<std::string, std::string>> rows = {
      {R"({ "b" : [ 1 , 2.50 , -0.0 ] , "a" : { "d" : false , "c" : null } })",
       R"({"a":{"c":null,"d":false},"b":[1,2.5,0]})"},
      // Keys sort by their UTF-8 bytes.
      {"{\"\xc3\xa9\":1,\"z\":2,\"Z\":3,\"\":4}", "{\"\":4,\"Z\":3,\"z\":2,\"\xc3\xa9\":1}"},
      // Minimal escaping.
      {R"({"s":"q\"b\\s\/t\tn\nc\u0001d\u007f\u2028"})",
       "{\"s\":\"q\\\"b\\\\s/t\\tn\\nc\\u0001d\x7f\xe2\x80\xa8\"}"},
      {R"({"k\n":"v"})", R"({"k\n":"v"})"},
      // Numbers: plain decimals inside the decimal range, exponent form outside it.
      {R"({"a":1E+3,"b":-1.25e-2,"c":0.000000000001,"d":1e-13,"e":99999999999999999999999999,)"
       R"("f":1e26,"g":-12.5e30,"h":1e-400})",
       R"({"a":1000,"b":-0.0125,"c":0.000000000001,"d":1e-13,"e":99999999999999999999999999,)"
       R"("f":1e26,"g":-1.25e31,"h":1e-400})"},
      {R"({"a":1e99999999999999999999,"b":-0.012e-99999999999999999999})",
       R"({"a":1e99999999999999999999,"b":-1.2e-100000000000000000001})"},
  };
  for (const auto& [in, out] : rows) {
    INFO(in);
    CHECK(metadata_of(parser, in) == out);
    // The canonical form is a fixed point.
    CHECK(metadata_of(parser, out) == out);
  }
}

TEST_CASE("metadata numbers in the decimal range match pricing::decimal", "[event_parser]") {
  event_parser parser(test_config());
  for (std::string number :
       {"0", "-0", "1", "-1", "1.0", "0.5", "12.000001", "-12.000001", "1e3", "1.5E+2",
        "123456789e-12", "0.000000000001", "99999999999999999999999999",
        "-99999999999999999999999999.999999999999", "1234.5678e-4", "100e-2"}) {
    INFO(number);
    auto parsed = decimal::parse(number);
    REQUIRE(parsed.has_value());
    CHECK(metadata_of(parser, R"({"n":)" + number + "}") == R"({"n":)" + parsed->to_string() + "}");
  }
}

TEST_CASE("one parser gives independent results line by line", "[event_parser]") {
  const std::vector<std::string> lines = {
      R"({"event_id":"s1","customer_id":"c1","event_type":"storage","event_time":"2024-01-15T10:00:00Z","value":"7","metadata":{"bytes":5,"b":[1,{"x":2}]}})",
      event_line(R"(,"metadata":{"a":1,"a":2})"),
      event_line(""),
      event_line(R"(,"value":"1.0000000000001")"),
      R"({"event_id":"s2","customer_id":"c2","event_type":"storage","event_time":"2024-01-15T10:00:00Z"})",
      event_line(R"(,"metadata":{"k":")" + std::string(20000, 'x') + R"("})"),
      event_line(R"(,"metadata":{"z":1})"),
      "{\"event_id\":\"\xff\"}",
      event_line(R"(,"value":3)"),
      R"({"event_id":"e-9"})",
      event_line(R"(,"metadata":{"b":{"c":[1,2,3]}})"),
  };
  auto same = [](const parse_outcome& a, const parse_outcome& b) {
    if (a.ok() != b.ok())
      return false;
    if (!a.ok())
      return a.reason == b.reason && a.detail == b.detail;
    return a.event->event_id == b.event->event_id && a.event->customer_id == b.event->customer_id &&
           a.event->same_payload(*b.event);
  };
  event_parser shared(test_config());
  for (int round = 0; round < 3; ++round) {
    for (const auto& line : lines) {
      INFO(line.substr(0, 200));
      event_parser fresh(test_config());
      CHECK(same(shared.parse(line), fresh.parse(line)));
    }
  }
  // Results do not alias the parser's buffers.
  auto first = shared.parse(lines[0]);
  auto second = shared.parse(lines[6]);
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(first.event->event_id == "s1");
  CHECK(first.event->metadata == R"({"b":[1,{"x":2}],"bytes":5})");
  CHECK(first.event->value == decimal::from_int(7));
  CHECK(second.event->metadata == R"({"z":1})");
}

TEST_CASE("reject reasons have machine-readable names", "[event_parser]") {
  CHECK(std::string(to_string(reject_reason::bad_json)) == "bad_json");
  CHECK(std::string(to_string(reject_reason::missing_field)) == "missing_field");
  CHECK(std::string(to_string(reject_reason::bad_field)) == "bad_field");
  CHECK(std::string(to_string(reject_reason::too_large)) == "too_large");
  CHECK(std::string(to_string(reject_reason::bad_time)) == "bad_time");
  CHECK(std::string(to_string(reject_reason::bad_value)) == "bad_value");
}
