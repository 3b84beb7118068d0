#include "pricing/time.hpp"

#include <catch2/catch.hpp>
#include <random>

namespace p = meterflow::pricing;

namespace {

p::timestamp t(const char* text) {
  return p::parse_rfc3339(text).value();
}
constexpr p::duration hour = 3600 * p::microseconds_per_second;

} // namespace

TEST_CASE("RFC 3339 parses to UTC microseconds", "[pricing][time]") {
  CHECK(t("1970-01-01T00:00:00Z") == 0);
  CHECK(t("2024-01-15T10:00:00.123Z") == 1705312800123000);
  CHECK(t("2024-01-15T11:00:00.123+01:00") == t("2024-01-15T10:00:00.123Z"));
  CHECK(t("2024-01-15T05:30:00-04:30") == t("2024-01-15T10:00:00Z"));
  CHECK(t("2024-02-29T00:00:00.000001Z") == t("2024-02-29T00:00:00Z") + 1);
  CHECK(t("2024-01-15t10:00:00z") == t("2024-01-15T10:00:00Z"));
  CHECK(t("9999-12-31T23:59:59.999999Z") == p::max_timestamp);
}

TEST_CASE("RFC 3339 rejects what is not a valid instant", "[pricing][time]") {
  const char* bad[] = {
      "2024-01-15T10:00:00",          // no zone
      "2024-01-15 10:00:00Z",         // space separator
      "2024-02-30T00:00:00Z",         // invalid date
      "2023-02-29T00:00:00Z",         // not a leap year
      "2024-13-01T00:00:00Z",         // month 13
      "2024-01-15T24:00:00Z",         // hour 24
      "2016-12-31T23:59:60Z",         // leap second
      "2024-01-15T10:00:00.1234567Z", // 7 fraction digits
      "2024-01-15T10:00:00.Z",        // empty fraction
      "1969-12-31T23:59:59Z",         // before 1970
      "1970-01-01T00:30:00+01:00",    // before 1970 in UTC
      "10000-01-01T00:00:00Z",        // year 10000
      "2024-01-15T10:00:00+1:00",     // short offset
      "2024-01-15T10:00:00Zjunk",     // trailing text
      "",
      "not a time",
  };
  for (const char* b : bad) {
    INFO(b);
    CHECK_FALSE(p::parse_rfc3339(b));
  }
}

TEST_CASE("RFC 3339 formatting is canonical UTC and round-trips", "[pricing][time]") {
  CHECK(p::format_rfc3339(0) == "1970-01-01T00:00:00Z");
  CHECK(p::format_rfc3339(t("2024-01-15T10:00:00.120Z")) == "2024-01-15T10:00:00.12Z");
  CHECK(p::format_rfc3339(t("2024-01-31T23:59:50+00:00")) == "2024-01-31T23:59:50Z");
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const p::timestamp x =
        static_cast<p::timestamp>(rng() % static_cast<std::uint64_t>(p::max_timestamp));
    CHECK(p::parse_rfc3339(p::format_rfc3339(x)).value() == x);
  }
}

TEST_CASE("civil date conversion agrees day by day", "[pricing][time]") {
  std::int64_t days = 0;
  for (int y = 1970; y < 2100; ++y)
    for (unsigned m = 1; m <= 12; ++m)
      for (unsigned dd = 1; dd <= 31; ++dd) {
        const auto c = p::civil_from_days(days);
        if (c.year != y || c.month != m || c.day != dd)
          continue; // day dd does not exist in this month
        REQUIRE(p::days_from_civil(y, m, dd) == days);
        ++days;
      }
  CHECK(days == p::days_from_civil(2100, 1, 1));
}

TEST_CASE("durations", "[pricing][time]") {
  CHECK(p::parse_duration("90s").value() == 90 * p::microseconds_per_second);
  CHECK(p::parse_duration("5m").value() == 300 * p::microseconds_per_second);
  CHECK(p::parse_duration("1h").value() == hour);
  CHECK(p::parse_duration("1d").value() == p::microseconds_per_day);
  CHECK(p::parse_duration("0s").value() == 0);
  CHECK(p::parse_duration("250ms").value() == 250'000);
  CHECK_FALSE(p::parse_duration("1"));
  CHECK_FALSE(p::parse_duration("h"));
  CHECK_FALSE(p::parse_duration("1w"));
  CHECK_FALSE(p::parse_duration("-1h"));
  CHECK_FALSE(p::parse_duration("1.5h"));
  CHECK_FALSE(p::parse_duration("99999999999999999999d"));
  CHECK(p::format_duration(hour) == "1h");
  CHECK(p::format_duration(90 * p::microseconds_per_second) == "90s");
  CHECK(p::format_duration(15 * 60 * p::microseconds_per_second) == "15m");
}

TEST_CASE("windows are epoch-aligned", "[pricing][time]") {
  CHECK(p::window_start(t("2024-01-15T10:59:59.999999Z"), hour) == t("2024-01-15T10:00:00Z"));
  CHECK(p::window_start(t("2024-01-15T11:00:00Z"), hour) == t("2024-01-15T11:00:00Z"));
  CHECK(p::window_start(t("2024-01-15T10:17:00Z"), 15 * 60 * p::microseconds_per_second) ==
        t("2024-01-15T10:15:00Z"));
  CHECK(p::is_window_aligned(t("2024-01-15T00:00:00Z"), p::microseconds_per_day));
  CHECK_FALSE(p::is_window_aligned(t("2024-01-15T00:30:00Z"), hour));
}

TEST_CASE("billing periods are calendar months in UTC", "[pricing][time]") {
  // The seed: a call at 23:59:50 on January 31st is January usage.
  const p::period jan = p::period_of(t("2024-01-31T23:59:50Z"));
  CHECK(p::period_id(jan) == "2024-01");
  CHECK(jan.start == t("2024-01-01T00:00:00Z"));
  CHECK(jan.end == t("2024-02-01T00:00:00Z"));
  CHECK(p::period_id(p::period_of(t("2024-02-01T00:00:00Z"))) == "2024-02");
  // An offset that crosses midnight into February in UTC.
  CHECK(p::period_id(p::period_of(t("2024-01-31T23:30:00-01:00"))) == "2024-02");
  const p::period feb = p::next_period(jan);
  CHECK(feb.end - feb.start == 29 * p::microseconds_per_day); // leap year
  CHECK(p::period_id(p::next_period(p::parse_period("2024-12").value())) == "2025-01");
  CHECK(p::parse_period("2024-01").value() == jan);
  CHECK_FALSE(p::parse_period("2024-1"));
  CHECK_FALSE(p::parse_period("2024-13"));
  CHECK_FALSE(p::parse_period("24-01"));
}
