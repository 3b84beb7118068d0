// meterflow-loadgen: deterministic NDJSON usage events for the benchmarks (issue 8).
//
// N lines over a time span, customers drawn from a Zipf-like distribution, a mix of `api_call`
// (count meter, no value) and `storage` (sum meter, decimal string value) events, and given
// fractions of duplicates (byte-identical replays of a recent event), late events (behind the
// watermark, within the allowed lateness of examples/config.json) and very late events (older
// than their window end + 1h, so they trigger re-rating). The same flags and seed always give
// the same bytes. Floating point only draws random choices here; it never touches an amount.
// With --send, the same lines go to a running meterflow (HTTP API or Kafka) at a target rate,
// and the answer latencies are reported (bench/send.hpp).

#include "bench/send.hpp"
#include "pricing/time.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using meterflow::pricing::duration;
using meterflow::pricing::timestamp;

constexpr duration second = 1'000'000;
constexpr duration minute = 60 * second;
constexpr duration hour = 60 * minute;

const char* const usage_text = R"(Usage: meterflow-loadgen [options]

Writes N usage events as NDJSON, deterministically for a seed, or sends them to a running
meterflow at a target rate and reports the latency of the answers (--send).

Options:
  --events N            lines to write, duplicates included (default 1000000)
  --customers C         distinct customers cust-000001 .. (default 10000)
  --zipf S              Zipf exponent of the customer distribution (default 1.1)
  --storage-share F     fraction of storage (sum) events; the rest are api_call (default 0.2)
  --duplicate-rate F    fraction of lines that replay an earlier event byte for byte (default 0.01)
  --late-rate F         fraction of events 2-55 min behind the stream, within the allowed
                        lateness of 1h (default 0.05)
  --very-late-rate F    fraction of events 3h-72h behind the stream: their window is final,
                        they trigger re-rating (default 0.001)
  --start TIME          first event time, RFC 3339 (default 2024-01-01T00:00:00Z)
  --span DURATION       time covered by the stream, e.g. 30d (default 30d)
  --seed N              random seed (default 42)
  --out FILE            output file; - is standard output (default -)
  --help                show this text

Sending (instead of --out; the same lines, in the same order):
  --send URL            http://HOST:PORT: POST /v1/events, NDJSON batches (meterflow serve
                        --listen); kafka://HOST:PORT[,...]: produce to the topic, keyed by
                        customer like the API (idempotent, acks=all)
  --rate N              events per second offered, open loop: batch i is due at
                        i x batch / N seconds and its latency counts from then (default 0:
                        each batch as soon as a connection is free)
  --batch N             events per request or per Kafka flush (default 1000)
  --connections N       HTTP keep-alive connections, one batch in flight each (default 4)
  --api-key KEY         HTTP bearer token (default: $METERFLOW_API_KEY)
  --topic T             Kafka topic (default telemetry-events)
  --kafka-property K=V  a librdkafka producer setting; repeatable
A summary line goes to standard output; exit status 1 if any batch was not accepted
(anything but 202 from the API, or a message Kafka did not acknowledge).
)";

struct options {
  std::uint64_t events = 1'000'000;
  std::uint32_t customers = 10'000;
  double zipf = 1.1;
  double storage_share = 0.2;
  double duplicate_rate = 0.01;
  double late_rate = 0.05;
  double very_late_rate = 0.001;
  timestamp start = 0;
  duration span = 30 * 24 * hour;
  std::uint64_t seed = 42;
  std::string out = "-";
  bool out_given = false;
  std::optional<meterflow::bench::send_target> target; // --send
  meterflow::bench::send_options send;                 // the other sending flags
};

// xoshiro256** seeded with splitmix64: fast, well distributed, identical on every platform.
class rng {
public:
  explicit rng(std::uint64_t seed) {
    for (auto& s : s_)
      s = splitmix(seed);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi).
  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(hi - lo));
  }
  static std::uint64_t splitmix(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

// The splitmix64 finalizer is a bijection on 64 bits, so distinct sequence numbers give
// distinct, random-looking event ids.
std::uint64_t mix(std::uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct event {
  std::uint64_t seq = 0;
  timestamp time = 0;
  std::uint32_t customer = 0; // 1-based Zipf rank
  bool storage = false;
  std::uint32_t milli_gb = 0; // storage value in thousandths
  std::uint8_t region = 0;
};

class writer {
public:
  explicit writer(std::FILE* out) : out_(out) { buf_.resize(capacity); }
  ~writer() { flush(); }
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  void line(const event& e) {
    if (used_ + max_line > capacity)
      flush();
    char* p = buf_.data() + used_;
    p = put(p, R"({"event_id":"evt-)");
    p = hex16(p, mix(e.seq));
    p = put(p, R"(","event_time":")");
    p = time(p, e.time);
    p = put(p, R"(","customer_id":"cust-)");
    p = padded(p, e.customer, 6);
    if (e.storage) {
      p = put(p, R"(","event_type":"storage","value":")");
      p = std::to_chars(p, p + 16, e.milli_gb / 1000).ptr;
      *p++ = '.';
      p = padded(p, e.milli_gb % 1000, 3);
      p = put(p, R"(",)");
    } else {
      p = put(p, R"(","event_type":"api_call",)");
    }
    static constexpr std::string_view regions[] = {"eu", "us", "ap"};
    p = put(p, R"("metadata":{"region":")");
    p = put(p, regions[e.region]);
    p = put(p, "\"}}\n");
    used_ = static_cast<std::size_t>(p - buf_.data());
  }

  void flush() {
    if (used_ > 0 && std::fwrite(buf_.data(), 1, used_, out_) != used_)
      throw std::runtime_error("write failed");
    used_ = 0;
  }

private:
  static constexpr std::size_t capacity = 4 << 20;
  static constexpr std::size_t max_line = 512;

  static char* put(char* p, std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
  }
  static char* hex16(char* p, std::uint64_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
      p[i] = digits[v & 15];
      v >>= 4;
    }
    return p + 16;
  }
  static char* padded(char* p, std::uint64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    if (v > 0) // wider than `width`: fall back to plain digits
      return std::to_chars(p, p + 24, v).ptr;
    return p + width;
  }
  // "YYYY-MM-DDTHH:MM:SS.mmmZ"; the date part is cached per day.
  char* time(char* p, timestamp t) {
    const std::int64_t day = t / meterflow::pricing::microseconds_per_day;
    if (day != cached_day_) {
      const auto d = meterflow::pricing::civil_from_days(day);
      char* q = cached_date_;
      q = padded(q, static_cast<std::uint64_t>(d.year), 4);
      *q++ = '-';
      q = padded(q, d.month, 2);
      *q++ = '-';
      q = padded(q, d.day, 2);
      *q++ = 'T';
      cached_day_ = day;
    }
    p = put(p, std::string_view(cached_date_, 11));
    std::int64_t in_day = t - day * meterflow::pricing::microseconds_per_day;
    const auto ms = static_cast<std::uint64_t>(in_day / 1000);
    p = padded(p, ms / 3'600'000, 2);
    *p++ = ':';
    p = padded(p, ms / 60'000 % 60, 2);
    *p++ = ':';
    p = padded(p, ms / 1000 % 60, 2);
    *p++ = '.';
    p = padded(p, ms % 1000, 3);
    *p++ = 'Z';
    return p;
  }

  std::FILE* out_;
  std::vector<char> buf_;
  std::size_t used_ = 0;
  std::int64_t cached_day_ = -1;
  char cached_date_[16] = {};
};

std::uint64_t parse_count(std::string_view name, std::string_view text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    throw std::invalid_argument("--" + std::string(name) + ": not a count: " + std::string(text));
  return v;
}

double parse_fraction(std::string_view name, std::string_view text, double hi) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(std::string(text), &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !(v >= 0) || v > hi)
    throw std::invalid_argument("--" + std::string(name) + ": expected a number in [0, " +
                                std::to_string(hi) + "]: " + std::string(text));
  return v;
}

options parse_options(int argc, char** argv) {
  options o;
  o.start = meterflow::pricing::parse_rfc3339("2024-01-01T00:00:00Z").value();
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << usage_text;
      std::exit(0);
    }
    if (arg.substr(0, 2) != "--")
      throw std::invalid_argument("unexpected argument: " + std::string(arg));
    std::string_view name = arg.substr(2);
    std::string_view value;
    if (const auto eq = name.find('='); eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw std::invalid_argument("--" + std::string(name) + " needs a value");
    }
    if (name == "events") {
      o.events = parse_count(name, value);
    } else if (name == "customers") {
      const auto c = parse_count(name, value);
      if (c == 0 || c > 100'000'000)
        throw std::invalid_argument("--customers: expected 1 .. 100000000");
      o.customers = static_cast<std::uint32_t>(c);
    } else if (name == "zipf") {
      o.zipf = parse_fraction(name, value, 10.0);
    } else if (name == "storage-share") {
      o.storage_share = parse_fraction(name, value, 1.0);
    } else if (name == "duplicate-rate") {
      o.duplicate_rate = parse_fraction(name, value, 0.5);
    } else if (name == "late-rate") {
      o.late_rate = parse_fraction(name, value, 1.0);
    } else if (name == "very-late-rate") {
      o.very_late_rate = parse_fraction(name, value, 1.0);
    } else if (name == "start") {
      auto t = meterflow::pricing::parse_rfc3339(value);
      if (!t)
        throw std::invalid_argument("--start: " + t.error_value().message);
      o.start = *t;
    } else if (name == "span") {
      auto d = meterflow::pricing::parse_duration(value);
      if (!d || *d <= 0)
        throw std::invalid_argument("--span: expected a positive duration such as 30d");
      o.span = *d;
    } else if (name == "seed") {
      o.seed = parse_count(name, value);
    } else if (name == "out") {
      o.out = std::string(value);
      o.out_given = true;
    } else if (name == "send") {
      o.target = meterflow::bench::parse_send_target(value);
    } else if (name == "rate") {
      o.send.rate = parse_count(name, value);
    } else if (name == "batch") {
      o.send.batch = parse_count(name, value);
      if (o.send.batch == 0 || o.send.batch > 1'000'000)
        throw std::invalid_argument("--batch: expected 1 .. 1000000");
    } else if (name == "connections") {
      o.send.connections = parse_count(name, value);
      if (o.send.connections == 0 || o.send.connections > 256)
        throw std::invalid_argument("--connections: expected 1 .. 256");
    } else if (name == "api-key") {
      o.send.api_key = std::string(value);
    } else if (name == "topic") {
      if (value.empty())
        throw std::invalid_argument("--topic: empty");
      o.send.topic = std::string(value);
    } else if (name == "kafka-property") {
      const auto eq = value.find('=');
      if (eq == std::string_view::npos || eq == 0)
        throw std::invalid_argument("--kafka-property: expected NAME=VALUE: " + std::string(value));
      o.send.kafka_properties[std::string(value.substr(0, eq))] = std::string(value.substr(eq + 1));
    } else {
      throw std::invalid_argument("unknown option --" + std::string(name));
    }
  }
  if (o.late_rate + o.very_late_rate > 1.0)
    throw std::invalid_argument("--late-rate + --very-late-rate must not exceed 1");
  if (o.target) {
    if (o.out_given)
      throw std::invalid_argument("--out and --send exclude each other");
    o.send.target = *o.target;
    if (o.send.api_key.empty())
      if (const char* key = std::getenv("METERFLOW_API_KEY"))
        o.send.api_key = key;
  } else if (o.send.rate || !o.send.api_key.empty() || !o.send.kafka_properties.empty()) {
    throw std::invalid_argument("--rate, --api-key and --kafka-property need --send");
  }
  return o;
}

// Cumulative Zipf weights 1/k^s over ranks 1..C, normalized to end at 1.
std::vector<double> zipf_cdf(std::uint32_t customers, double s) {
  std::vector<double> cdf(customers);
  double total = 0;
  for (std::uint32_t k = 0; k < customers; ++k) {
    total += 1.0 / std::pow(static_cast<double>(k + 1), s);
    cdf[k] = total;
  }
  for (auto& c : cdf)
    c /= total;
  return cdf;
}

struct tally {
  std::uint64_t on_time = 0, late = 0, very_late = 0, duplicates = 0, storage = 0;
};

tally generate(const options& o, std::FILE* out) {
  rng r(o.seed);
  const auto cdf = zipf_cdf(o.customers, o.zipf);
  writer w(out);
  tally t;
  // Recent events, replayed as duplicates.
  constexpr std::size_t ring_size = 1 << 16;
  std::vector<event> ring(ring_size);
  std::uint64_t fresh = 0;
  const double step =
      static_cast<double>(o.span) / static_cast<double>(std::max<std::uint64_t>(o.events, 1));
  for (std::uint64_t i = 0; i < o.events; ++i) {
    if (fresh > 0 && r.uniform() < o.duplicate_rate) {
      const auto back =
          static_cast<std::uint64_t>(r.next() % std::min<std::uint64_t>(fresh, ring_size));
      w.line(ring[(fresh - 1 - back) % ring_size]);
      ++t.duplicates;
      continue;
    }
    event e;
    e.seq = fresh;
    const timestamp now = o.start + static_cast<timestamp>(static_cast<double>(i) * step);
    const double lateness = r.uniform();
    if (lateness < o.very_late_rate && now - 3 * hour >= o.start) {
      e.time = std::max(o.start, now - r.between(3 * hour, 72 * hour));
      ++t.very_late;
    } else if (lateness < o.very_late_rate + o.late_rate && now - 2 * minute >= o.start) {
      e.time = std::max(o.start, now - r.between(2 * minute, 55 * minute));
      ++t.late;
    } else {
      // In order up to 30s of jitter: within the 1 min out-of-orderness, so always on time.
      e.time = std::max(o.start, now - r.between(0, 30 * second));
      ++t.on_time;
    }
    const double u = r.uniform();
    e.customer =
        static_cast<std::uint32_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
    e.customer = std::min(e.customer, o.customers - 1) + 1;
    e.storage = r.uniform() < o.storage_share;
    if (e.storage) {
      e.milli_gb = static_cast<std::uint32_t>(r.between(1, 100'000));
      ++t.storage;
    }
    e.region = static_cast<std::uint8_t>(r.next() % 3);
    ring[fresh % ring_size] = e;
    ++fresh;
    w.line(e);
  }
  w.flush();
  return t;
}

void print_tally(const options& o, const tally& t) {
  std::cerr << "meterflow-loadgen: " << o.events << " lines: " << t.on_time << " on time, "
            << t.late << " late, " << t.very_late << " very late, " << t.duplicates
            << " duplicates; " << t.storage << " storage events, "
            << (o.events - t.duplicates - t.storage) << " api_call events\n";
}

// Generates the lines into memory and sends them (--send); 0 when every batch was accepted.
int send(options o) {
  char* text = nullptr;
  std::size_t size = 0;
  std::FILE* memory = ::open_memstream(&text, &size);
  if (memory == nullptr)
    throw std::runtime_error("cannot allocate the events in memory");
  const tally t = generate(o, memory);
  if (std::fclose(memory) != 0)
    throw std::runtime_error("cannot hold the events in memory");
  const std::unique_ptr<char, decltype(&std::free)> owned(text, &std::free);
  std::vector<std::string_view> lines;
  lines.reserve(o.events);
  for (std::string_view rest(text, size); !rest.empty();) {
    const auto nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
  }
  print_tally(o, t);
  o.send.progress = &std::cerr;
  const auto r = meterflow::bench::send_lines(lines, o.send);
  std::printf("meterflow-loadgen: sent %llu events in %llu batches to %s in %.2f s: %.0f events/s "
              "(offered %s); latency from due time p50 %.1f ms, p99 %.1f ms, max %.1f ms; "
              "%llu failed batches (%llu events)\n",
              static_cast<unsigned long long>(r.events), static_cast<unsigned long long>(r.batches),
              o.send.target.url.c_str(), r.seconds,
              r.seconds > 0 ? static_cast<double>(r.events) / r.seconds : 0.0,
              o.send.rate ? (std::to_string(o.send.rate) + "/s").c_str() : "unpaced",
              r.latency_ms(0.50), r.latency_ms(0.99), r.latency_ms(1.0),
              static_cast<unsigned long long>(r.failed_batches),
              static_cast<unsigned long long>(r.failed_events));
  if (r.failed_batches)
    std::fprintf(stderr, "meterflow-loadgen: first failure: %s\n", r.first_error.c_str());
  return r.failed_batches ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
  try {
    options o = parse_options(argc, argv);
    if (o.target)
      return send(std::move(o));
    std::FILE* out = stdout;
    if (o.out != "-") {
      out = std::fopen(o.out.c_str(), "wb");
      if (out == nullptr)
        throw std::runtime_error("cannot open " + o.out + ": " + std::strerror(errno));
    }
    const tally t = generate(o, out);
    if (std::fflush(out) != 0 || (out != stdout && std::fclose(out) != 0))
      throw std::runtime_error("write failed: " + std::string(std::strerror(errno)));
    print_tally(o, t);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "meterflow-loadgen: " << e.what() << "\n";
    return 2;
  }
}
