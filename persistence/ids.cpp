#include "persistence/ids.hpp"

#include <memory>
#include <mutex>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdexcept>
#include <unordered_set>

namespace meterflow::persistence {

std::string content_id(std::initializer_list<std::string_view> parts) {
  // SHA256() looks the algorithm up in OpenSSL 3's provider registry on every call (a fetch
  // under a read lock: ~60% of the id's cost in a profile); the algorithm is fetched once and
  // each thread reuses one digest context. The parts are fed one by one, never joined.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(),
                                                                            EVP_MD_CTX_free);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  unsigned int length = 0;
  bool ok = sha256 && ctx && EVP_DigestInit_ex2(ctx.get(), sha256, nullptr);
  bool first = true;
  for (std::string_view p : parts) {
    if (!first)
      ok = ok && EVP_DigestUpdate(ctx.get(), "\x1f", 1);
    ok = ok && EVP_DigestUpdate(ctx.get(), p.data(), p.size());
    first = false;
  }
  if (!ok || !EVP_DigestFinal_ex(ctx.get(), digest, &length) || length != SHA256_DIGEST_LENGTH)
    throw std::runtime_error("SHA-256 is not available from OpenSSL");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(2 * SHA256_DIGEST_LENGTH, '0');
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    out[static_cast<size_t>(2 * i)] = hex[digest[i] >> 4];
    out[static_cast<size_t>(2 * i + 1)] = hex[digest[i] & 0xF];
  }
  return out;
}

namespace {

// The value of a lowercase hex digit, 0x10 for any other byte.
constexpr std::array<std::uint8_t, 256> hex_values = [] {
  std::array<std::uint8_t, 256> t{};
  t.fill(0x10);
  for (int c = '0'; c <= '9'; ++c)
    t[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c)
    t[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - 'a' + 10);
  return t;
}();

} // namespace

packed_id::packed_id(std::string_view id) {
  if (id.size() == 64) {
    std::array<std::uint64_t, 4> words{};
    std::uint8_t bad = 0; // the 0x10 bit of any non-hex byte
    for (std::size_t w = 0; w < 4; ++w) {
      std::uint64_t word = 0;
      for (std::size_t i = 0; i < 16; ++i) {
        const std::uint8_t v = hex_values[static_cast<unsigned char>(id[w * 16 + i])];
        bad |= v;
        word = (word << 4) | (v & 0xF);
      }
      words[w] = word;
    }
    if (!(bad & 0x10) && !marked(words)) {
      words_ = words;
      return;
    }
  }
  // Node-based: an interned text never moves. Few ids take this path (ids from other systems).
  static std::mutex lock;
  static std::unordered_set<std::string>* const texts = new std::unordered_set<std::string>();
  const std::string* interned = nullptr;
  {
    std::lock_guard<std::mutex> guard(lock);
    interned = &*texts->emplace(id).first;
  }
  words_ = {text_marker[0], text_marker[1], text_marker[2],
            static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(interned))};
}

std::string packed_id::str() const {
  if (const std::string* t = text())
    return *t;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (std::size_t i = 0; i < 64; ++i)
    out[i] = hex[(words_[i / 16] >> (60 - 4 * (i % 16))) & 0xF];
  return out;
}

std::vector<packed_id> pack_ids(const std::vector<std::string>& ids) {
  std::vector<packed_id> out;
  out.reserve(ids.size());
  for (const std::string& id : ids)
    out.emplace_back(id);
  return out;
}

std::vector<std::string> id_strings(const std::vector<packed_id>& ids) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const packed_id& id : ids)
    out.push_back(id.str());
  return out;
}

} // namespace meterflow::persistence
