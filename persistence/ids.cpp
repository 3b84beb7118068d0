#include "persistence/ids.hpp"

#include <openssl/sha.h>

namespace meterflow::persistence {

std::string content_id(std::initializer_list<std::string_view> parts) {
  std::string key;
  bool first = true;
  for (std::string_view p : parts) {
    if (!first)
      key += '\x1f';
    key.append(p);
    first = false;
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(2 * SHA256_DIGEST_LENGTH, '0');
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    out[static_cast<size_t>(2 * i)] = hex[digest[i] >> 4];
    out[static_cast<size_t>(2 * i + 1)] = hex[digest[i] & 0xF];
  }
  return out;
}

packed_id::packed_id(std::string_view id) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    return -1;
  };
  if (id.size() == 64) {
    std::array<std::uint64_t, 4> words{};
    bool hex = true;
    for (std::size_t i = 0; i < 64 && hex; ++i) {
      const int v = nibble(id[i]);
      hex = v >= 0;
      words[i / 16] = (words[i / 16] << 4) | static_cast<std::uint64_t>(v & 0xF);
    }
    if (hex) {
      words_ = words;
      return;
    }
  }
  text_ = std::make_shared<const std::string>(id);
}

std::string packed_id::str() const {
  if (text_)
    return *text_;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (std::size_t i = 0; i < 64; ++i)
    out[i] = hex[(words_[i / 16] >> (60 - 4 * (i % 16))) & 0xF];
  return out;
}

} // namespace meterflow::persistence
