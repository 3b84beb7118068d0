#pragma once

// Content-derived ids (SEMANTICS §1, §11): hex SHA-256 of a canonical key whose parts are
// joined with the unit separator 0x1F, which no id or RFC 3339 time can contain.

#include <array>
#include <compare>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

namespace meterflow::persistence {

std::string content_id(std::initializer_list<std::string_view> parts);

// An id held in memory for as long as a run lasts (current charges, what an invoice billed,
// reconciliation's sets): a content id (64 lowercase hex digits) is kept as its 32 bytes, with
// no allocation, instead of a 64-character string on the heap. Any other text (a store may
// hold ids this engine did not make) is kept as is. Exact: str() gives back the id it was made
// from, and two packed ids are equal exactly when their ids are.
class packed_id {
public:
  packed_id() = default;
  explicit packed_id(std::string_view id);

  std::string str() const;
  std::size_t hash() const { return text_ ? std::hash<std::string>()(*text_) : words_[0]; }

  friend bool operator==(const packed_id& a, const packed_id& b) {
    return a.words_ == b.words_ && (a.text_ ? b.text_ && *a.text_ == *b.text_ : !b.text_);
  }
  friend std::strong_ordering operator<=>(const packed_id& a, const packed_id& b) {
    if (a.text_ || b.text_) {
      if (!a.text_ || !b.text_)
        return a.text_ ? std::strong_ordering::greater : std::strong_ordering::less;
      return *a.text_ <=> *b.text_;
    }
    return a.words_ <=> b.words_;
  }

  struct hasher {
    std::size_t operator()(const packed_id& id) const { return id.hash(); }
  };

private:
  std::array<std::uint64_t, 4> words_{};
  std::shared_ptr<const std::string> text_; // ids that are not 64 lowercase hex digits
};

} // namespace meterflow::persistence
