// meterflow-ceiling: the minimal single-threaded loop over the benchmark's NDJSON (issue 8),
// "what the hardware allows" for the work every metering engine must do:
//   read the file in big blocks; parse each line with simdjson On-Demand; deduplicate on a
//   128-bit XXH3 hash of (customer_id, event_id) in an open-addressing set; parse event_time;
//   add the exact decimal quantity into a per customer x metric x hour map; at the end sum each
//   customer x metric x month and price it flat.
// It does none of the rest (validation per SEMANTICS §11, payload comparison for conflicts,
// watermarks, raw event storage, incremental rating, invoices, outputs). Its total is a
// checksum under flat prices, not an invoice total.

#include "pricing/decimal.hpp"
#include "pricing/time.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <map>
#include <memory>
#include <simdjson.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unistd.h>
#include <vector>
#include <xxhash.h>

namespace {

using meterflow::pricing::decimal;
using meterflow::pricing::timestamp;

constexpr std::int64_t hour_us = 3'600'000'000LL;

// Open-addressing set of 128-bit hashes, linear probing, grown at 1/2 load. The all-zero hash
// marks an empty slot (a real zero hash is nudged to 1: a 2^-128 event).
class hash_set {
public:
  hash_set() : slots_(1 << 16) {}
  // True when the hash was new.
  bool insert(XXH128_hash_t h) {
    if (h.low64 == 0 && h.high64 == 0)
      h.low64 = 1;
    if ((size_ + 1) * 2 > slots_.size())
      grow();
    if (!place(slots_, h))
      return false;
    ++size_;
    return true;
  }
  std::size_t size() const { return size_; }

private:
  static bool place(std::vector<XXH128_hash_t>& slots, XXH128_hash_t h) {
    const std::size_t mask = slots.size() - 1;
    for (std::size_t i = h.low64 & mask;; i = (i + 1) & mask) {
      auto& s = slots[i];
      if (s.low64 == 0 && s.high64 == 0) {
        s = h;
        return true;
      }
      if (s.low64 == h.low64 && s.high64 == h.high64)
        return false;
    }
  }
  void grow() {
    std::vector<XXH128_hash_t> bigger(slots_.size() * 2);
    for (const auto& s : slots_)
      if (s.low64 != 0 || s.high64 != 0)
        place(bigger, s);
    slots_.swap(bigger);
  }
  std::vector<XXH128_hash_t> slots_;
  std::size_t size_ = 0;
};

// Open-addressing map from a non-zero 64-bit key to a value, linear probing, grown at 1/2 load.
template <class V>
class flat_map {
public:
  flat_map() : keys_(1 << 12), values_(1 << 12) {}
  V& operator[](std::uint64_t key) {
    if ((size_ + 1) * 2 > keys_.size())
      grow();
    const std::size_t i = find_slot(keys_, key);
    if (keys_[i] == 0) {
      keys_[i] = key;
      ++size_;
    }
    return values_[i];
  }
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < keys_.size(); ++i)
      if (keys_[i] != 0)
        f(keys_[i], values_[i]);
  }
  std::size_t size() const { return size_; }

private:
  static std::size_t find_slot(const std::vector<std::uint64_t>& keys, std::uint64_t key) {
    const std::size_t mask = keys.size() - 1;
    for (std::size_t i = XXH3_64bits(&key, sizeof key) & mask;; i = (i + 1) & mask)
      if (keys[i] == key || keys[i] == 0)
        return i;
  }
  void grow() {
    std::vector<std::uint64_t> keys(keys_.size() * 2);
    std::vector<V> values(keys.size());
    for (std::size_t i = 0; i < keys_.size(); ++i)
      if (keys_[i] != 0) {
        const std::size_t j = find_slot(keys, keys_[i]);
        keys[j] = keys_[i];
        values[j] = std::move(values_[i]);
      }
    keys_.swap(keys);
    values_.swap(values);
  }
  std::vector<std::uint64_t> keys_;
  std::vector<V> values_;
  std::size_t size_ = 0;
};

// Customer ids interned to dense indexes.
class interner {
public:
  std::uint32_t intern(std::string_view name) {
    const std::uint64_t h = XXH3_64bits(name.data(), name.size()) | 1;
    auto& bucket = by_hash_[h];
    for (const std::uint32_t idx : bucket)
      if (names_[idx] == name)
        return idx;
    bucket.push_back(static_cast<std::uint32_t>(names_.size()));
    names_.emplace_back(name);
    return bucket.back();
  }
  std::size_t size() const { return names_.size(); }

private:
  flat_map<std::vector<std::uint32_t>> by_hash_;
  std::vector<std::string> names_;
};

enum class metric : std::uint8_t { api_calls = 0, gb_stored = 1 };

struct counters {
  std::uint64_t lines = 0, accepted = 0, duplicates = 0, rejected = 0, unmetered = 0;
};

class pipeline {
public:
  void line(const char* data, std::size_t size, std::size_t capacity) {
    ++counters_.lines;
    std::string_view event_id, customer_id, event_type, event_time, value;
    auto doc = parser_.iterate(simdjson::padded_string_view(data, size, capacity));
    simdjson::ondemand::object obj;
    if (doc.get_object().get(obj) != simdjson::SUCCESS) {
      ++counters_.rejected;
      return;
    }
    for (auto field : obj) {
      simdjson::ondemand::raw_json_string key;
      if (field.key().get(key) != simdjson::SUCCESS) {
        ++counters_.rejected;
        return;
      }
      std::string_view* target = nullptr;
      if (key == "event_id")
        target = &event_id;
      else if (key == "customer_id")
        target = &customer_id;
      else if (key == "event_type")
        target = &event_type;
      else if (key == "event_time")
        target = &event_time;
      else if (key == "value")
        target = &value;
      if (target != nullptr && field.value().get_string().get(*target) != simdjson::SUCCESS) {
        ++counters_.rejected;
        return;
      }
    }
    if (event_id.empty() || customer_id.empty() || event_type.empty() || event_time.empty()) {
      ++counters_.rejected;
      return;
    }
    auto t = meterflow::pricing::parse_rfc3339(event_time);
    if (!t) {
      ++counters_.rejected;
      return;
    }
    metric m;
    decimal quantity = decimal::from_int(1);
    if (event_type == "api_call") {
      m = metric::api_calls;
    } else if (event_type == "storage") {
      m = metric::gb_stored;
      if (!value.empty()) {
        auto v = decimal::parse(value);
        if (!v) {
          ++counters_.rejected;
          return;
        }
        quantity = *v;
      }
    } else {
      m = metric::api_calls;
      ++counters_.unmetered;
      return;
    }
    // Dedup key: customer_id NUL event_id (ids are printable, so the separator is unambiguous).
    char key[2 * 256 + 1];
    if (customer_id.size() > 256 || event_id.size() > 256) {
      ++counters_.rejected;
      return;
    }
    std::memcpy(key, customer_id.data(), customer_id.size());
    key[customer_id.size()] = '\0';
    std::memcpy(key + customer_id.size() + 1, event_id.data(), event_id.size());
    if (!seen_.insert(XXH3_128bits(key, customer_id.size() + 1 + event_id.size()))) {
      ++counters_.duplicates;
      return;
    }
    ++counters_.accepted;
    const std::uint32_t customer = customers_.intern(customer_id);
    const auto hour = static_cast<std::uint64_t>(*t / hour_us);
    // Non-zero key: customer (32 bits) | metric (1 bit) | hour since epoch (31 bits) | 1.
    const std::uint64_t bucket = (std::uint64_t{customer} << 32) |
                                 (std::uint64_t{static_cast<std::uint8_t>(m)} << 31) |
                                 ((hour & 0x3fffffff) << 1) | 1;
    windows_[bucket] += quantity;
  }

  // Σ windows per customer x metric x month, priced flat, rounded to cents per line (half_up).
  void report(std::ostream& os) const {
    std::map<std::tuple<std::uint32_t, metric, std::int64_t>, decimal> months;
    decimal quantity[2];
    windows_.for_each([&](std::uint64_t key, const decimal& q) {
      const auto customer = static_cast<std::uint32_t>(key >> 32);
      const auto m = static_cast<metric>((key >> 31) & 1);
      const auto hour = static_cast<std::int64_t>((key >> 1) & 0x3fffffff);
      const auto p = meterflow::pricing::period_of(hour * hour_us);
      months[{customer, m, p.start}] += q;
      quantity[static_cast<int>(m)] += q;
    });
    decimal total;
    for (const auto& [k, q] : months) {
      const auto& [customer, m, start] = k;
      const decimal price = flat_price(m, start);
      const auto amount = decimal::mul(q, price, meterflow::pricing::rounding_mode::half_up)
                              .value()
                              .round(2, meterflow::pricing::rounding_mode::half_up)
                              .value();
      total += amount;
    }
    os << "meterflow-ceiling: " << counters_.lines << " lines, " << counters_.accepted
       << " accepted, " << counters_.duplicates << " duplicates, " << counters_.rejected
       << " rejected, " << counters_.unmetered << " unmetered\n"
       << "  windows " << windows_.size() << ", customer-metric-months " << months.size()
       << ", customers " << customers_.size() << "\n"
       << "  api_calls " << quantity[0].to_string() << ", gb_stored " << quantity[1].to_string()
       << "\n"
       << "  flat total " << total.to_fixed(2, meterflow::pricing::rounding_mode::half_up)
       << " USD\n";
  }

private:
  // The default price book of bench/config.json (pb_bench): v1 in January, v2 from February.
  static decimal flat_price(metric m, std::int64_t month_start) {
    static const timestamp february =
        meterflow::pricing::parse_rfc3339("2024-02-01T00:00:00Z").value();
    const bool january = month_start < february;
    if (m == metric::api_calls)
      return decimal::parse(january ? "0.002" : "0.0015").value();
    return decimal::parse(january ? "0.05" : "0.04").value();
  }

  simdjson::ondemand::parser parser_;
  hash_set seen_;
  interner customers_;
  flat_map<decimal> windows_;
  counters counters_;
};

void run(const char* path, pipeline& p) {
  const int fd = std::strcmp(path, "-") == 0 ? 0 : ::open(path, O_RDONLY);
  if (fd < 0)
    throw std::runtime_error(std::string("cannot open ") + path + ": " + std::strerror(errno));
  constexpr std::size_t block = 16 << 20;
  const std::size_t capacity = block + simdjson::SIMDJSON_PADDING;
  std::unique_ptr<char[]> buf(new char[capacity]);
  std::size_t have = 0; // bytes of an incomplete line carried from the previous block
  bool eof = false;
  while (!eof) {
    const ssize_t n = ::read(fd, buf.get() + have, block - have);
    if (n < 0)
      throw std::runtime_error(std::string("read failed: ") + std::strerror(errno));
    eof = n == 0;
    const std::size_t end = have + static_cast<std::size_t>(n);
    std::memset(buf.get() + end, 0, simdjson::SIMDJSON_PADDING);
    std::size_t begin = 0;
    for (;;) {
      const void* nl = std::memchr(buf.get() + begin, '\n', end - begin);
      std::size_t line_end;
      if (nl != nullptr)
        line_end = static_cast<std::size_t>(static_cast<const char*>(nl) - buf.get());
      else if (eof && begin < end)
        line_end = end; // last line without a terminator
      else
        break;
      std::size_t len = line_end - begin;
      if (len > 0 && buf[begin + len - 1] == '\r')
        --len;
      // simdjson may read SIMDJSON_PADDING bytes past the line: they are in the buffer.
      if (len > 0)
        p.line(buf.get() + begin, len, capacity - begin);
      begin = std::min(line_end + 1, end);
      if (begin >= end)
        break;
    }
    have = end - begin;
    if (have == block)
      throw std::runtime_error("a line longer than 16 MiB");
    std::memmove(buf.get(), buf.get() + begin, have);
  }
  if (fd != 0)
    ::close(fd);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2 || std::strcmp(argv[1], "--help") == 0) {
    std::cerr << "Usage: meterflow-ceiling EVENTS.ndjson\n"
                 "The minimal single-threaded parse + dedup + hourly exact sums + flat pricing "
                 "loop over the file: the benchmark's ceiling.\n";
    return argc == 2 ? 0 : 2;
  }
  try {
    pipeline p;
    run(argv[1], p);
    p.report(std::cout);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "meterflow-ceiling: " << e.what() << "\n";
    return 2;
  }
}
