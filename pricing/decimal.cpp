#include "pricing/decimal.hpp"

#include <array>
#include <cstdint>
#include <limits>

namespace meterflow::pricing {

namespace {

using u128 = unsigned __int128;
using i128 = __int128;

constexpr i128 pow10(int n) {
  i128 r = 1;
  for (int i = 0; i < n; ++i)
    r *= 10;
  return r;
}

constexpr i128 unit = pow10(decimal::scale);
// |units| must stay below 10^(26 + 12).
constexpr i128 bound = pow10(decimal::max_integer_digits + decimal::scale);

bool in_bounds(i128 units) {
  return units < bound && units > -bound;
}

error overflow_error(const char* what) {
  return {errc::overflow, std::string(what) + ": magnitude reaches 10^26"};
}

// Rounds the quotient q with remainder r of a division by d (d > 0, |r| < d, r has q's sign or
// is zero) to the nearest integer per `mode`.
i128 round_quotient(i128 q, i128 r, i128 d, rounding_mode mode) {
  if (r == 0)
    return q;
  u128 twice = static_cast<u128>(r < 0 ? -r : r) * 2;
  bool away = twice > static_cast<u128>(d) ||
              (twice == static_cast<u128>(d) && (mode == rounding_mode::half_up || (q & 1) != 0));
  if (!away)
    return q;
  return r < 0 ? q - 1 : q + 1;
}

std::string digits_of(u128 v) {
  if (v == 0)
    return "0";
  char buf[48];
  int n = 0;
  // 128-bit division is a library call: only the part above 2^64 takes it.
  while (v > std::numeric_limits<std::uint64_t>::max()) {
    buf[n++] = static_cast<char>('0' + static_cast<int>(v % 10));
    v /= 10;
  }
  for (auto w = static_cast<std::uint64_t>(v); w > 0; w /= 10)
    buf[n++] = static_cast<char>('0' + static_cast<int>(w % 10));
  std::string s(static_cast<size_t>(n), '0');
  for (int i = 0; i < n; ++i)
    s[static_cast<size_t>(i)] = buf[n - 1 - i];
  return s;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

} // namespace

const char* to_string(errc code) {
  switch (code) {
  case errc::bad_syntax:
    return "bad_syntax";
  case errc::bad_precision:
    return "bad_precision";
  case errc::overflow:
    return "overflow";
  case errc::out_of_range:
    return "out_of_range";
  case errc::invalid:
    return "invalid";
  }
  return "unknown";
}

const char* to_string(rounding_mode mode) {
  return mode == rounding_mode::half_up ? "half_up" : "half_even";
}

result<rounding_mode> parse_rounding_mode(std::string_view text) {
  if (text == "half_even")
    return rounding_mode::half_even;
  if (text == "half_up")
    return rounding_mode::half_up;
  return error{errc::bad_syntax, "unknown rounding mode \"" + std::string(text) +
                                     "\" (expected half_even or half_up)"};
}

result<decimal> decimal::from_units(rep units) {
  if (!in_bounds(units))
    return overflow_error("decimal");
  return decimal(units);
}

decimal decimal::from_int(std::int64_t value) {
  return decimal(static_cast<i128>(value) * unit);
}

result<decimal> decimal::parse(std::string_view text) {
  const auto bad = [&] {
    return error{errc::bad_syntax, "not a decimal number: \"" + std::string(text.substr(0, 64)) +
                                       (text.size() > 64 ? "...\"" : "\"")};
  };
  size_t i = 0;
  const size_t n = text.size();
  bool negative = false;
  if (i < n && text[i] == '-') {
    negative = true;
    ++i;
  }
  // Integer part: 0 | [1-9][0-9]*
  size_t int_begin = i;
  if (i >= n || !is_digit(text[i]))
    return bad();
  if (text[i] == '0') {
    ++i;
  } else {
    while (i < n && is_digit(text[i]))
      ++i;
  }
  size_t int_end = i;
  size_t frac_begin = i, frac_end = i;
  if (i < n && text[i] == '.') {
    ++i;
    frac_begin = i;
    while (i < n && is_digit(text[i]))
      ++i;
    frac_end = i;
    if (frac_end == frac_begin)
      return bad();
  }
  // Exponent, saturated: anything beyond 10^9 is out of every bound anyway.
  std::int64_t exponent = 0;
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < n && (text[i] == '+' || text[i] == '-')) {
      exp_negative = text[i] == '-';
      ++i;
    }
    if (i >= n || !is_digit(text[i]))
      return bad();
    while (i < n && is_digit(text[i])) {
      if (exponent < 1'000'000'000)
        exponent = exponent * 10 + (text[i] - '0');
      ++i;
    }
    if (exp_negative)
      exponent = -exponent;
  }
  if (i != n)
    return bad();

  // Significant digits: the integer and fraction digits without leading and trailing zeros.
  // value = N x 10^k where N is those digits read as an integer.
  std::string_view int_digits = text.substr(int_begin, int_end - int_begin);
  std::string_view frac_digits = text.substr(frac_begin, frac_end - frac_begin);
  std::int64_t k = exponent - static_cast<std::int64_t>(frac_digits.size());
  // Walk the concatenation int_digits + frac_digits without building it.
  const size_t total = int_digits.size() + frac_digits.size();
  auto digit_at = [&](size_t j) {
    return j < int_digits.size() ? int_digits[j] : frac_digits[j - int_digits.size()];
  };
  size_t first = 0;
  while (first < total && digit_at(first) == '0')
    ++first;
  if (first == total)
    return decimal(0);
  size_t last = total; // one past the last non-zero digit
  while (digit_at(last - 1) == '0') {
    --last;
    ++k;
  }
  const std::int64_t significant = static_cast<std::int64_t>(last - first);
  if (k + scale < 0)
    return error{errc::bad_precision,
                 "more than 12 fractional digits: \"" + std::string(text.substr(0, 64)) + "\""};
  if (significant + k > max_integer_digits)
    return error{errc::overflow, "magnitude reaches 10^26: \"" + std::string(text.substr(0, 64)) +
                                     (text.size() > 64 ? "...\"" : "\"")};
  i128 units = 0;
  for (size_t j = first; j < last; ++j)
    units = units * 10 + (digit_at(j) - '0');
  for (std::int64_t z = 0; z < k + scale; ++z)
    units *= 10;
  return decimal(negative ? -units : units);
}

std::string decimal::to_string() const {
  u128 magnitude = static_cast<u128>(units_ < 0 ? -units_ : units_);
  u128 whole = magnitude / static_cast<u128>(unit);
  u128 frac = magnitude % static_cast<u128>(unit);
  std::string s = units_ < 0 ? "-" : "";
  s += digits_of(whole);
  if (frac != 0) {
    std::string f = digits_of(frac);
    f.insert(0, static_cast<size_t>(scale) - f.size(), '0');
    while (f.back() == '0')
      f.pop_back();
    s += '.';
    s += f;
  }
  return s;
}

result<decimal> decimal::round(int digits, rounding_mode mode) const {
  if (digits < 0 || digits > scale)
    return error{errc::invalid, "rounding digits must be within 0..12"};
  const i128 d = pow10(scale - digits);
  i128 q = round_quotient(units_ / d, units_ % d, d, mode);
  return from_units(q * d);
}

std::string decimal::to_fixed(int digits, rounding_mode mode) const {
  decimal r = round(digits, mode).value();
  u128 magnitude = static_cast<u128>(r.units_ < 0 ? -r.units_ : r.units_);
  u128 whole = magnitude / static_cast<u128>(unit);
  u128 frac = magnitude % static_cast<u128>(unit);
  std::string s = r.units_ < 0 ? "-" : "";
  s += digits_of(whole);
  if (digits > 0) {
    std::string f = digits_of(frac);
    f.insert(0, static_cast<size_t>(scale) - f.size(), '0');
    s += '.';
    s += f.substr(0, static_cast<size_t>(digits));
  }
  return s;
}

bool decimal::is_integer() const {
  return units_ % unit == 0;
}

result<decimal> decimal::add(decimal a, decimal b) {
  i128 r = a.units_ + b.units_; // cannot wrap: both below 10^38 < 2^126
  if (!in_bounds(r))
    return overflow_error("sum");
  return decimal(r);
}

result<decimal> decimal::sub(decimal a, decimal b) {
  i128 r = a.units_ - b.units_;
  if (!in_bounds(r))
    return overflow_error("difference");
  return decimal(r);
}

result<decimal> decimal::mul(decimal a, decimal b, rounding_mode mode) {
  const bool negative = (a.units_ < 0) != (b.units_ < 0);
  const u128 x = static_cast<u128>(a.units_ < 0 ? -a.units_ : a.units_);
  const u128 y = static_cast<u128>(b.units_ < 0 ? -b.units_ : b.units_);
  // 128 x 128 -> 256-bit product in four 64-bit limbs (little-endian).
  const std::uint64_t x0 = static_cast<std::uint64_t>(x), x1 = static_cast<std::uint64_t>(x >> 64);
  const std::uint64_t y0 = static_cast<std::uint64_t>(y), y1 = static_cast<std::uint64_t>(y >> 64);
  std::array<std::uint64_t, 4> p{};
  const u128 p00 = static_cast<u128>(x0) * y0;
  const u128 p01 = static_cast<u128>(x0) * y1;
  const u128 p10 = static_cast<u128>(x1) * y0;
  const u128 p11 = static_cast<u128>(x1) * y1;
  p[0] = static_cast<std::uint64_t>(p00);
  u128 mid = (p00 >> 64) + static_cast<std::uint64_t>(p01) + static_cast<std::uint64_t>(p10);
  p[1] = static_cast<std::uint64_t>(mid);
  u128 high = (mid >> 64) + (p01 >> 64) + (p10 >> 64) + static_cast<std::uint64_t>(p11);
  p[2] = static_cast<std::uint64_t>(high);
  p[3] = static_cast<std::uint64_t>((high >> 64) + (p11 >> 64));
  // Divide by 10^12 (fits in 64 bits), keeping the remainder for rounding.
  const std::uint64_t d = static_cast<std::uint64_t>(unit);
  std::array<std::uint64_t, 4> q{};
  u128 rem = 0;
  for (int i = 3; i >= 0; --i) {
    u128 cur = (rem << 64) | p[static_cast<size_t>(i)];
    q[static_cast<size_t>(i)] = static_cast<std::uint64_t>(cur / d);
    rem = cur % d;
  }
  if (q[3] != 0 || q[2] != 0 || (q[1] >> 63) != 0)
    return overflow_error("product");
  i128 quotient = static_cast<i128>((static_cast<u128>(q[1]) << 64) | q[0]);
  i128 remainder = static_cast<i128>(rem);
  if (negative) {
    quotient = -quotient;
    remainder = -remainder;
  }
  return from_units(round_quotient(quotient, remainder, static_cast<i128>(d), mode));
}

result<decimal> decimal::packages(decimal a, decimal size) {
  if (size.units_ <= 0)
    return error{errc::invalid, "package size must be positive"};
  if (a.units_ <= 0)
    return decimal(0);
  i128 count = a.units_ / size.units_ + (a.units_ % size.units_ != 0 ? 1 : 0);
  if (count >= bound / unit)
    return overflow_error("package count");
  return decimal(count * unit);
}

decimal operator+(decimal a, decimal b) {
  return decimal::add(a, b).value();
}
decimal operator-(decimal a, decimal b) {
  return decimal::sub(a, b).value();
}
decimal& operator+=(decimal& a, decimal b) {
  return a = a + b;
}
decimal& operator-=(decimal& a, decimal b) {
  return a = a - b;
}

} // namespace meterflow::pricing
