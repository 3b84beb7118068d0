#pragma once

// A value or an error, for the pure functions of pricing/ (the project's C++20 has no
// std::expected). Errors carry a code for programs and a message for people.

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace meterflow::pricing {

enum class errc {
  bad_syntax,    // text that is not what the function accepts
  bad_precision, // more fractional digits than the type holds
  overflow,      // a magnitude at or beyond the type's bound
  out_of_range,  // a well-formed value outside the accepted domain
  invalid,       // a structurally invalid argument (e.g. a bad tier table)
};

const char* to_string(errc code);

struct error {
  errc code;
  std::string message;
};

class bad_result_access : public std::runtime_error {
public:
  explicit bad_result_access(const error& e) : std::runtime_error(e.message), code(e.code) {}
  errc code;
};

template <class T>
class [[nodiscard]] result {
public:
  result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  result(error e) : state_(std::in_place_index<1>, std::move(e)) {}

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  const T& value() const& {
    if (!has_value())
      throw bad_result_access(std::get<1>(state_));
    return std::get<0>(state_);
  }
  T&& value() && {
    if (!has_value())
      throw bad_result_access(std::get<1>(state_));
    return std::get<0>(std::move(state_));
  }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }
  const error& error_value() const { return std::get<1>(state_); }

private:
  std::variant<T, error> state_;
};

template <>
class [[nodiscard]] result<void> {
public:
  result() = default;
  result(error e) : error_(std::move(e)), ok_(false) {}
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const {
    if (!ok_)
      throw bad_result_access(error_);
  }
  const error& error_value() const { return error_; }

private:
  error error_{};
  bool ok_ = true;
};

} // namespace meterflow::pricing
