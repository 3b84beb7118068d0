#include "pricing/decimal.hpp"

#include <catch2/catch.hpp>
#include <random>

using meterflow::pricing::decimal;
using meterflow::pricing::errc;
using meterflow::pricing::rounding_mode;

namespace {

decimal d(const char* text) {
  return decimal::parse(text).value();
}

} // namespace

TEST_CASE("decimal parses JSON number syntax exactly", "[pricing][decimal]") {
  struct row {
    const char* text;
    const char* canonical;
  };
  const row rows[] = {
      {"0", "0"},
      {"-0", "0"},
      {"1", "1"},
      {"1234", "1234"},
      {"0.10", "0.1"},
      {"-12.000001", "-12.000001"},
      {"1e3", "1000"},
      {"1.5E+2", "150"},
      {"25e-1", "2.5"},
      {"0.000000000001", "0.000000000001"},
      {"1.0000000000000", "1"}, // 13 digits, but the 13th is a trailing zero
      {"99999999999999999999999999.999999999999", "99999999999999999999999999.999999999999"},
      {"0e999999999999", "0"},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto v = decimal::parse(r.text);
    REQUIRE(v);
    CHECK(v->to_string() == r.canonical);
  }
}

TEST_CASE("decimal rejects bad syntax, precision and magnitude", "[pricing][decimal]") {
  struct row {
    const char* text;
    errc code;
  };
  const row rows[] = {
      {"", errc::bad_syntax},
      {"abc", errc::bad_syntax},
      {"+1", errc::bad_syntax},
      {".5", errc::bad_syntax},
      {"1,5", errc::bad_syntax},
      {"01", errc::bad_syntax},
      {"1.", errc::bad_syntax},
      {"1e", errc::bad_syntax},
      {"NaN", errc::bad_syntax},
      {"Infinity", errc::bad_syntax},
      {" 1", errc::bad_syntax},
      {"1 ", errc::bad_syntax},
      {"0x10", errc::bad_syntax},
      {"--1", errc::bad_syntax},
      {"0.0000000000001", errc::bad_precision},
      {"1e-13", errc::bad_precision},
      {"1e-999999999999", errc::bad_precision},
      {"1e26", errc::overflow},
      {"100000000000000000000000000", errc::overflow},
      {"-1e26", errc::overflow},
      {"1e999999999999", errc::overflow},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto v = decimal::parse(r.text);
    REQUIRE_FALSE(v);
    CHECK(v.error_value().code == r.code);
  }
}

TEST_CASE("decimal parse of a million-digit number fails fast without wrapping",
          "[pricing][decimal]") {
  std::string huge(1'000'000, '9');
  auto v = decimal::parse(huge);
  REQUIRE_FALSE(v);
  CHECK(v.error_value().code == errc::overflow);
  std::string tiny = "0." + std::string(1'000'000, '0') + "1";
  auto t = decimal::parse(tiny);
  REQUIRE_FALSE(t);
  CHECK(t.error_value().code == errc::bad_precision);
}

TEST_CASE("decimal formats whole parts on both sides of 2^64", "[pricing][decimal]") {
  // The formatter divides in 64 bits below 2^64 and in 128 bits above.
  for (const char* text :
       {"18446744073709551615", "18446744073709551616", "18446744073709551617.25",
        "-18446744073709551616.000000000001", "99999999999999999999999999.999999999999",
        "10000000000000000000", "9999999999999999999.5", "1", "0.000000000001"})
    CHECK(d(text).to_string() == text);
  CHECK(d("18446744073709551616.5").to_fixed(2, rounding_mode::half_up) ==
        "18446744073709551616.50");
}

TEST_CASE("decimal parse and format round-trip (property)", "[pricing][decimal]") {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    // Random value with up to 26 integer and 12 fractional digits.
    const int int_digits = static_cast<int>(rng() % 27);
    const int frac_digits = static_cast<int>(rng() % 13);
    std::string s = rng() % 2 ? "-" : "";
    if (int_digits == 0) {
      s += "0";
    } else {
      s += static_cast<char>('1' + rng() % 9);
      for (int k = 1; k < int_digits; ++k)
        s += static_cast<char>('0' + rng() % 10);
    }
    if (frac_digits > 0) {
      s += '.';
      for (int k = 0; k < frac_digits; ++k)
        s += static_cast<char>('0' + rng() % 10);
    }
    auto v = decimal::parse(s);
    REQUIRE(v);
    const std::string formatted = v->to_string();
    auto again = decimal::parse(formatted);
    REQUIRE(again);
    CHECK(*again == *v);
    CHECK(again->to_string() == formatted);
  }
}

TEST_CASE("decimal rounding at the half, both modes", "[pricing][decimal]") {
  struct row {
    const char* value;
    int digits;
    const char* half_even;
    const char* half_up;
  };
  const row rows[] = {
      {"0.125", 2, "0.12", "0.13"},
      {"0.135", 2, "0.14", "0.14"},
      {"-0.125", 2, "-0.12", "-0.13"},
      {"-0.135", 2, "-0.14", "-0.14"},
      {"2.5", 0, "2", "3"},
      {"3.5", 0, "4", "4"},
      {"-2.5", 0, "-2", "-3"},
      {"0.1250000001", 2, "0.13", "0.13"},
      {"0.1249999999", 2, "0.12", "0.12"},
      {"-0.004", 2, "0.00", "0.00"},
      {"-0.005", 2, "0.00", "-0.01"},
      {"118.72", 2, "118.72", "118.72"},
      {"1.0005", 3, "1.000", "1.001"},
  };
  for (const auto& r : rows) {
    INFO(r.value << " to " << r.digits);
    CHECK(d(r.value).to_fixed(r.digits, rounding_mode::half_even) == r.half_even);
    CHECK(d(r.value).to_fixed(r.digits, rounding_mode::half_up) == r.half_up);
  }
}

TEST_CASE("decimal products are exact, then rounded to 12 digits", "[pricing][decimal]") {
  CHECK(decimal::mul(d("1234"), d("0.08"), rounding_mode::half_even)->to_string() == "98.72");
  CHECK(decimal::mul(d("10234"), d("0.02"), rounding_mode::half_even)->to_string() == "204.68");
  // 0.000001 x 0.0000005 = 5e-13: exactly half of the last digit.
  CHECK(decimal::mul(d("0.000001"), d("0.0000005"), rounding_mode::half_even)->is_zero());
  CHECK(decimal::mul(d("0.000001"), d("0.0000005"), rounding_mode::half_up)->to_string() ==
        "0.000000000001");
  CHECK(decimal::mul(d("-0.000001"), d("0.0000015"), rounding_mode::half_even)->to_string() ==
        "-0.000000000002");
  // Large operands that need the full 256-bit intermediate.
  CHECK(decimal::mul(d("12345678901234.123456789012"), d("1000000000.5"), rounding_mode::half_even)
            ->to_string() == "12345678907406962907406.073728394506");
  CHECK(decimal::mul(d("99999999999999999999999999"), d("0.5"), rounding_mode::half_up)
            ->to_string() == "49999999999999999999999999.5");
}

TEST_CASE("decimal overflow is detected, never wrapped", "[pricing][decimal]") {
  const decimal max = d("99999999999999999999999999.999999999999");
  CHECK(decimal::add(max, d("0.000000000001")).error_value().code == errc::overflow);
  CHECK(decimal::sub(-max, d("0.000000000001")).error_value().code == errc::overflow);
  CHECK(decimal::mul(max, d("2"), rounding_mode::half_even).error_value().code == errc::overflow);
  CHECK(decimal::mul(max, max, rounding_mode::half_even).error_value().code == errc::overflow);
  CHECK(decimal::mul(d("10000000000000"), d("10000000000000"), rounding_mode::half_even)
            .error_value()
            .code == errc::overflow);
  CHECK(decimal::mul(d("1000000000000"), d("10000000000000"), rounding_mode::half_even)
            ->to_string() == "10000000000000000000000000");
  CHECK(max.round(0, rounding_mode::half_up).error_value().code == errc::overflow);
  CHECK_THROWS_AS(max + d("1"), meterflow::pricing::bad_result_access);
  decimal::rep ten_to_38 = 1;
  for (int i = 0; i < 38; ++i)
    ten_to_38 *= 10;
  CHECK(decimal::from_units(ten_to_38).error_value().code == errc::overflow);
  CHECK(decimal::from_units(-ten_to_38).error_value().code == errc::overflow);
  CHECK(decimal::from_units(ten_to_38 - 1));
}

TEST_CASE("decimal package counts round up", "[pricing][decimal]") {
  CHECK(decimal::packages(d("250"), d("100"))->to_string() == "3");
  CHECK(decimal::packages(d("200"), d("100"))->to_string() == "2");
  CHECK(decimal::packages(d("0.5"), d("100"))->to_string() == "1");
  CHECK(decimal::packages(d("0"), d("100"))->is_zero());
  CHECK_FALSE(decimal::packages(d("1"), d("0")));
  CHECK(
      decimal::packages(d("99999999999999999999999999"), d("0.000000000001")).error_value().code ==
      errc::overflow);
}
