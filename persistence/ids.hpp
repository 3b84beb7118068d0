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
#include <vector>

namespace meterflow::persistence {

std::string content_id(std::initializer_list<std::string_view> parts);

// An id held in memory for as long as a run lasts (current charges, invoice lines,
// reconciliation's sets): 32 bytes with no allocation. A content id (64 lowercase hex digits)
// is kept as its 256 bits. Any other text (a store may hold ids this engine did not make) is
// interned once per process in a table that is never freed, and kept as a marker and the
// address of its one copy. Exact: str() gives back the id it was made from, and two packed ids
// are equal exactly when their ids are.
class packed_id {
public:
  packed_id() = default;
  explicit packed_id(std::string_view id);

  std::string str() const;
  std::size_t hash() const { return static_cast<std::size_t>(words_[0] ^ words_[3]); }

  friend bool operator==(const packed_id& a, const packed_id& b) { return a.words_ == b.words_; }
  friend std::strong_ordering operator<=>(const packed_id& a, const packed_id& b) {
    const std::string* at = a.text();
    const std::string* bt = b.text();
    if (at || bt) { // text ids order after content ids, and among themselves as text
      if (!at || !bt)
        return at ? std::strong_ordering::greater : std::strong_ordering::less;
      return *at <=> *bt;
    }
    return a.words_ <=> b.words_;
  }

  struct hasher {
    std::size_t operator()(const packed_id& id) const { return id.hash(); }
  };

private:
  // A text id: words 0-2 hold these, word 3 the address of the interned text. A content id
  // whose first 192 bits equal them is interned as text as well, so the two never mix.
  static constexpr std::array<std::uint64_t, 3> text_marker = {
      0x6d65746572666c6fULL, 0x772d746578742d69ULL, 0x642d6d61726b6572ULL};
  static bool marked(const std::array<std::uint64_t, 4>& words) {
    return words[0] == text_marker[0] && words[1] == text_marker[1] && words[2] == text_marker[2];
  }
  const std::string* text() const {
    if (!marked(words_))
      return nullptr;
    return reinterpret_cast<const std::string*>(static_cast<std::uintptr_t>(words_[3]));
  }
  std::array<std::uint64_t, 4> words_{};
};

// Lists of ids between their text form (JSON, SQL, documents) and their packed one.
std::vector<packed_id> pack_ids(const std::vector<std::string>& ids);
std::vector<std::string> id_strings(const std::vector<packed_id>& ids);

} // namespace meterflow::persistence
