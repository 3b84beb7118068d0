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

} // namespace meterflow::persistence
