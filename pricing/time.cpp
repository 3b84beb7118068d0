#include "pricing/time.hpp"

#include <cstdio>
#include <cstring>

namespace meterflow::pricing {

namespace {

bool is_leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(int y, unsigned m) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

// Reads exactly `count` digits at text[pos]; -1 when they are not all digits.
int read_digits(std::string_view text, size_t pos, size_t count) {
  if (pos + count > text.size())
    return -1;
  int v = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    char c = text[i];
    if (c < '0' || c > '9')
      return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

error bad_time(std::string_view text, const char* why) {
  return error{errc::bad_syntax,
               std::string(why) + ": \"" + std::string(text.substr(0, 64)) + "\""};
}

timestamp floor_div(timestamp a, duration b) {
  timestamp q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

} // namespace

std::int64_t days_from_civil(int year, unsigned month, unsigned day) {
  // Days since 1970-01-01 in the proleptic Gregorian calendar, counting eras of 400 years
  // that start on March 1st so the leap day is the last day of a year.
  const int y = year - (month <= 2 ? 1 : 0);
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned year_of_era = static_cast<unsigned>(y - era * 400);
  const unsigned shifted_month = month > 2 ? month - 3 : month + 9;
  const unsigned day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return static_cast<std::int64_t>(era) * 146097 + day_of_era - 719468;
}

civil_date civil_from_days(std::int64_t days) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned day_of_era = static_cast<unsigned>(days - era * 146097);
  const unsigned year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const unsigned day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned shifted_month = (5 * day_of_year + 2) / 153;
  const unsigned day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
  const unsigned month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
  const int year = static_cast<int>(year_of_era + era * 400) + (month <= 2 ? 1 : 0);
  return {year, month, day};
}

result<timestamp> parse_rfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM); 't' and 'z' are allowed (RFC 3339 5.6).
  if (text.size() < 20)
    return bad_time(text, "not an RFC 3339 date-time");
  const int year = read_digits(text, 0, 4);
  const int month = read_digits(text, 5, 2);
  const int day = read_digits(text, 8, 2);
  const int hour = read_digits(text, 11, 2);
  const int minute = read_digits(text, 14, 2);
  const int second = read_digits(text, 17, 2);
  const char sep = text[10];
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0 || text[4] != '-' ||
      text[7] != '-' || text[13] != ':' || text[16] != ':' || (sep != 'T' && sep != 't'))
    return bad_time(text, "not an RFC 3339 date-time");
  if (month < 1 || month > 12 || day < 1 ||
      static_cast<unsigned>(day) > days_in_month(year, static_cast<unsigned>(month)))
    return bad_time(text, "invalid calendar date");
  if (hour > 23 || minute > 59)
    return bad_time(text, "invalid time of day");
  if (second == 60)
    return bad_time(text, "leap seconds are not accepted");
  if (second > 59)
    return bad_time(text, "invalid time of day");
  size_t pos = 19;
  std::int64_t micros = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (++digits > 6)
        return bad_time(text, "more than 6 fractional second digits");
      micros = micros * 10 + (text[pos] - '0');
      ++pos;
    }
    if (digits == 0)
      return bad_time(text, "not an RFC 3339 date-time");
    for (size_t d = digits; d < 6; ++d)
      micros *= 10;
  }
  if (pos >= text.size())
    return bad_time(text, "missing time zone (Z or +HH:MM)");
  std::int64_t offset_minutes = 0;
  if (text[pos] == 'Z' || text[pos] == 'z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    const int oh = read_digits(text, pos + 1, 2);
    const int om = read_digits(text, pos + 4, 2);
    if (oh < 0 || om < 0 || pos + 3 >= text.size() || text[pos + 3] != ':' || oh > 23 || om > 59)
      return bad_time(text, "invalid time zone offset");
    offset_minutes = (text[pos] == '-' ? -1 : 1) * (oh * 60 + om);
    pos += 6;
  } else {
    return bad_time(text, "missing time zone (Z or +HH:MM)");
  }
  if (pos != text.size())
    return bad_time(text, "trailing characters after the time zone");
  const std::int64_t days =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t seconds =
      days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  const timestamp t = seconds * microseconds_per_second + micros;
  if (t < min_timestamp || t > max_timestamp)
    return error{errc::out_of_range,
                 "outside 1970-9999 UTC: \"" + std::string(text.substr(0, 64)) + "\""};
  return t;
}

std::string format_rfc3339(timestamp t) {
  const rfc3339_text text = rfc3339(t);
  return std::string(text.data, text.size);
}

rfc3339_text rfc3339(timestamp t) {
  const timestamp day_index = floor_div(t, microseconds_per_day);
  const timestamp in_day = t - day_index * microseconds_per_day;
  const civil_date date = civil_from_days(day_index);
  const std::int64_t secs = in_day / microseconds_per_second;
  std::int64_t micros = in_day % microseconds_per_second;
  // Hand-formatted: this runs for every time of every record written.
  rfc3339_text text;
  char* const buf = text.data;
  std::memcpy(buf, "0000-00-00T00:00:00", 19);
  auto put = [&](int pos, std::int64_t value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10)
      buf[pos + i] = static_cast<char>('0' + value % 10);
  };
  put(0, date.year, 4);
  put(5, date.month, 2);
  put(8, date.day, 2);
  put(11, secs / 3600, 2);
  put(14, secs / 60 % 60, 2);
  put(17, secs % 60, 2);
  int n = 19;
  if (micros != 0) {
    buf[n++] = '.';
    int digits = 6;
    while (micros % 10 == 0) {
      micros /= 10;
      --digits;
    }
    put(n, micros, digits);
    n += digits;
  }
  buf[n++] = 'Z';
  text.size = static_cast<std::uint8_t>(n);
  return text;
}

result<duration> parse_duration(std::string_view text) {
  size_t i = 0;
  std::int64_t n = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (n > 1'000'000'000'000)
      return error{errc::out_of_range, "duration too large: \"" + std::string(text) + "\""};
    n = n * 10 + (text[i] - '0');
    ++i;
  }
  std::string_view unit = text.substr(i);
  if (i == 0 || unit.empty())
    return error{errc::bad_syntax,
                 "not a duration (expected e.g. \"90s\", \"5m\", \"1h\", \"1d\"): \"" +
                     std::string(text) + "\""};
  duration per;
  if (unit == "us")
    per = 1;
  else if (unit == "ms")
    per = 1000;
  else if (unit == "s")
    per = microseconds_per_second;
  else if (unit == "m")
    per = 60 * microseconds_per_second;
  else if (unit == "h")
    per = 3600 * microseconds_per_second;
  else if (unit == "d")
    per = microseconds_per_day;
  else
    return error{errc::bad_syntax, "unknown duration unit \"" + std::string(unit) +
                                       "\" (expected us, ms, s, m, h or d)"};
  if (n > max_timestamp / per)
    return error{errc::out_of_range, "duration too large: \"" + std::string(text) + "\""};
  return n * per;
}

std::string format_duration(duration d) {
  struct unit_name {
    duration size;
    const char* name;
  };
  static constexpr unit_name units[] = {{microseconds_per_day, "d"},
                                        {3600 * microseconds_per_second, "h"},
                                        {60 * microseconds_per_second, "m"},
                                        {microseconds_per_second, "s"},
                                        {1000, "ms"}};
  if (d == 0)
    return "0s";
  for (const auto& u : units)
    if (d % u.size == 0)
      return std::to_string(d / u.size) + u.name;
  return std::to_string(d) + "us";
}

timestamp window_start(timestamp t, duration size) {
  return floor_div(t, size) * size;
}

bool is_window_aligned(timestamp t, duration size) {
  return t % size == 0;
}

period period_of(timestamp t) {
  const civil_date date = civil_from_days(floor_div(t, microseconds_per_day));
  period p;
  p.year = date.year;
  p.month = static_cast<int>(date.month);
  p.start = days_from_civil(date.year, date.month, 1) * microseconds_per_day;
  const int next_year = date.month == 12 ? date.year + 1 : date.year;
  const unsigned next_month = date.month == 12 ? 1 : date.month + 1;
  p.end = days_from_civil(next_year, next_month, 1) * microseconds_per_day;
  return p;
}

period next_period(const period& p) {
  return period_of(p.end);
}

std::string period_id(const period& p) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d", p.year, p.month);
  return buf;
}

result<period> parse_period(std::string_view text) {
  const int year = read_digits(text, 0, 4);
  const int month = read_digits(text, 5, 2);
  if (text.size() != 7 || year < 1970 || text[4] != '-' || month < 1 || month > 12)
    return error{errc::bad_syntax,
                 "not a billing period (expected YYYY-MM): \"" + std::string(text) + "\""};
  return period_of(days_from_civil(year, static_cast<unsigned>(month), 1) * microseconds_per_day);
}

} // namespace meterflow::pricing
