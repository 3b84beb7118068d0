#pragma once

// Exact fixed-point decimal (SEMANTICS §1): 12 fractional digits, magnitude below 10^26,
// stored as a signed 128-bit count of 10^-12 units. Every operation is checked: a result at or
// beyond the bound is an error, never a wrap. Products are computed exactly (256-bit) and
// rounded back to 12 digits with an explicit rounding mode.

#include "pricing/result.hpp"

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace meterflow::pricing {

enum class rounding_mode { half_even, half_up };

const char* to_string(rounding_mode mode);
result<rounding_mode> parse_rounding_mode(std::string_view text);

class decimal {
public:
  using rep = __int128;
  static constexpr int scale = 12;
  static constexpr int max_integer_digits = 26;

  constexpr decimal() = default;

  static result<decimal> from_units(rep units);
  static decimal from_int(std::int64_t value);
  // JSON number syntax: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. A value needing more than
  // 12 fractional digits (after trailing zeros) is bad_precision; magnitude >= 10^26 is overflow.
  static result<decimal> parse(std::string_view text);

  constexpr rep units() const { return units_; }
  constexpr bool is_zero() const { return units_ == 0; }
  constexpr bool is_negative() const { return units_ < 0; }
  constexpr decimal operator-() const { return decimal(-units_); }

  // Plain decimal, no exponent, no trailing zeros ("1234", "0.5", "-12.000001").
  std::string to_string() const;
  // Exactly `digits` fractional digits (0..12), rounding with `mode`; never "-0.00".
  std::string to_fixed(int digits, rounding_mode mode) const;

  // Rounds to `digits` fractional digits (0..12); overflow only when rounding up past the bound.
  result<decimal> round(int digits, rounding_mode mode) const;
  bool is_integer() const;

  friend constexpr auto operator<=>(decimal a, decimal b) = default;
  friend constexpr bool operator==(decimal a, decimal b) = default;

  // Checked arithmetic returning errors.
  static result<decimal> add(decimal a, decimal b);
  static result<decimal> sub(decimal a, decimal b);
  // Exact product rounded to 12 fractional digits.
  static result<decimal> mul(decimal a, decimal b, rounding_mode mode);
  // The number of whole `size` packages needed to cover `a`: ceil(a / size), size > 0.
  static result<decimal> packages(decimal a, decimal size);

private:
  // Stored 8-byte aligned: a 16-byte alignment would pad every record that holds a decimal
  // beside 8-byte fields, and a run keeps several such records per window (x86-64 loads an
  // 8-byte-aligned __int128 as two words at no extra cost).
  typedef rep packed_rep __attribute__((aligned(8)));
  constexpr explicit decimal(rep units) : units_(units) {}
  packed_rep units_ = 0;
};
static_assert(sizeof(decimal) == 16 && alignof(decimal) == 8);

// Throwing conveniences for engine code, where overflow ends the run (exit status 3).
decimal operator+(decimal a, decimal b);
decimal operator-(decimal a, decimal b);
decimal& operator+=(decimal& a, decimal b);
decimal& operator-=(decimal& a, decimal b);

} // namespace meterflow::pricing
