#pragma once

// Event time (SEMANTICS §2, §4): UTC microseconds since the Unix epoch, RFC 3339 parsing and
// formatting, durations, epoch-aligned windows and calendar-month billing periods.

#include "pricing/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace meterflow::pricing {

using timestamp = std::int64_t; // UTC microseconds since 1970-01-01T00:00:00Z
using duration = std::int64_t;  // microseconds

inline constexpr duration microseconds_per_second = 1'000'000;
inline constexpr duration microseconds_per_day = 86'400 * microseconds_per_second;

// First and last accepted instants: years 1970 through 9999.
inline constexpr timestamp min_timestamp = 0;
inline constexpr timestamp max_timestamp = 253'402'300'799'999'999; // 9999-12-31T23:59:59.999999Z

// RFC 3339 date-time with 'Z' or a numeric offset and 0-6 fraction digits. Rejects invalid
// calendar dates, leap seconds (:60) and instants outside 1970-9999 UTC.
result<timestamp> parse_rfc3339(std::string_view text);
// "YYYY-MM-DDTHH:MM:SSZ", with ".ffffff" (trailing zeros trimmed) only when non-zero.
std::string format_rfc3339(timestamp t);
// The same text without a heap allocation (20 characters do not fit a short std::string), for
// the paths that format a time for every record: it converts to std::string_view.
struct rfc3339_text {
  char data[32];
  std::uint8_t size = 0;
  operator std::string_view() const { return {data, size}; }
};
rfc3339_text rfc3339(timestamp t);

// "<n>us|ms|s|m|h|d", a non-negative integer count: "90s", "5m", "1h", "1d".
result<duration> parse_duration(std::string_view text);
// The largest unit that divides the duration exactly: 3600000000 -> "1h".
std::string format_duration(duration d);

// Tumbling epoch-aligned windows [start, start + size).
timestamp window_start(timestamp t, duration size);
bool is_window_aligned(timestamp t, duration size);

// Calendar-month billing period in UTC: [first day 00:00, first day of next month 00:00).
struct period {
  timestamp start = 0;
  timestamp end = 0;
  int year = 1970;
  int month = 1;
  friend bool operator==(const period&, const period&) = default;
  friend auto operator<=>(const period& a, const period& b) { return a.start <=> b.start; }
};

period period_of(timestamp t);
period next_period(const period& p);
// "2024-01".
std::string period_id(const period& p);
result<period> parse_period(std::string_view text);

// Civil date helpers (proleptic Gregorian).
std::int64_t days_from_civil(int year, unsigned month, unsigned day);
struct civil_date {
  int year;
  unsigned month;
  unsigned day;
};
civil_date civil_from_days(std::int64_t days);

} // namespace meterflow::pricing
