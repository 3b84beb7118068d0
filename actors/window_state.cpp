#include "actors/window_state.hpp"

#include "persistence/ids.hpp"

#include <algorithm>

namespace meterflow::actors {

std::optional<std::string> metadata_field(std::string_view json, std::string_view key) {
  // Canonical metadata is compact JSON with no insignificant whitespace, so a scan that skips
  // strings and tracks nesting finds the top-level members.
  if (json.size() < 2 || json.front() != '{')
    return std::nullopt;
  size_t i = 1;
  auto skip_string = [&](size_t& p) {
    ++p; // opening quote
    while (p < json.size() && json[p] != '"')
      p += json[p] == '\\' ? 2 : 1;
    ++p; // closing quote
  };
  while (i < json.size() && json[i] == '"') {
    const size_t key_begin = i;
    skip_string(i);
    const std::string_view member_key(json.data() + key_begin + 1, i - key_begin - 2);
    ++i; // ':'
    const size_t value_begin = i;
    int depth = 0;
    while (i < json.size()) {
      const char c = json[i];
      if (c == '"') {
        skip_string(i);
        continue;
      }
      if (c == '{' || c == '[')
        ++depth;
      else if (c == '}' || c == ']') {
        if (depth == 0)
          break;
        --depth;
      } else if (c == ',' && depth == 0)
        break;
      ++i;
    }
    if (member_key == key)
      return std::string(json.substr(value_begin, i - value_begin));
    if (i < json.size() && json[i] == ',')
      ++i;
  }
  return std::nullopt;
}

std::optional<meter_reading> read_meter(const config::meter& m, const persistence::event_view& e) {
  meter_reading r;
  if (m.kind == config::aggregation::count) {
    r.value = decimal::from_int(1);
    return r;
  }
  if (!m.field) {
    r.value = e.value;
    return r;
  }
  auto raw = metadata_field(e.metadata, *m.field);
  if (!raw || *raw == "null")
    return std::nullopt;
  if (m.kind == config::aggregation::unique_count) {
    r.distinct_key = std::move(*raw);
    return r;
  }
  std::string_view text = *raw;
  if (text.size() >= 2 && text.front() == '"')
    text = text.substr(1, text.size() - 2);
  auto v = decimal::parse(text);
  if (!v)
    return std::nullopt;
  r.value = *v;
  return r;
}

window_aggregate::window_aggregate(const window_aggregate& other)
    : kind_(other.kind_), event_count_(other.event_count_), sum_(other.sum_),
      extra_(other.extra_ ? std::make_unique<extras>(*other.extra_) : nullptr),
      sources_(other.sources_) {}

window_aggregate& window_aggregate::operator=(const window_aggregate& other) {
  if (this != &other)
    *this = window_aggregate(other);
  return *this;
}

window_aggregate::extras& window_aggregate::extra() {
  if (!extra_)
    extra_ = std::make_unique<extras>();
  return *extra_;
}

void window_aggregate::add(timestamp event_time, const char* event_id,
                           const meter_reading& reading) {
  ++event_count_;
  sources_.push_back({event_time, event_id});
  switch (kind_) {
  case config::aggregation::count:
  case config::aggregation::sum:
    sum_ += reading.value;
    break;
  case config::aggregation::max: {
    auto& max = extra().max;
    if (!max || reading.value > *max)
      max = reading.value;
    break;
  }
  case config::aggregation::latest: {
    auto& latest = extra().latest;
    source s{event_time, event_id};
    if (!latest || latest->first < s)
      latest = {s, reading.value};
    break;
  }
  case config::aggregation::unique_count:
    extra().distinct.insert(reading.distinct_key);
    break;
  }
}

decimal window_aggregate::quantity() const {
  switch (kind_) {
  case config::aggregation::count:
  case config::aggregation::sum:
    return sum_;
  case config::aggregation::max:
    return extra_ && extra_->max ? *extra_->max : decimal();
  case config::aggregation::latest:
    return extra_ && extra_->latest ? extra_->latest->second : decimal();
  case config::aggregation::unique_count:
    return decimal::from_int(static_cast<std::int64_t>(extra_ ? extra_->distinct.size() : 0));
  }
  return decimal();
}

std::vector<std::string> window_aggregate::sorted_event_ids() const {
  std::vector<source> sorted = sources_;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> ids;
  ids.reserve(sorted.size());
  for (const auto& s : sorted)
    ids.emplace_back(s.event_id);
  return ids;
}

decimal window_aggregate::period_quantity(config::aggregation kind,
                                          const std::vector<const window_aggregate*>& windows) {
  window_aggregate merged(kind);
  for (const window_aggregate* w : windows) {
    merged.event_count_ += w->event_count_;
    merged.sum_ += w->sum_;
    if (!w->extra_)
      continue;
    extras& m = merged.extra();
    const extras& x = *w->extra_;
    if (x.max && (!m.max || *x.max > *m.max))
      m.max = x.max;
    if (x.latest && (!m.latest || m.latest->first < x.latest->first))
      m.latest = x.latest;
    m.distinct.insert(x.distinct.begin(), x.distinct.end());
  }
  return merged.quantity();
}

std::string aggregation_id(const std::string& customer, const std::string& metric,
                           timestamp window_start, std::uint32_t revision) {
  return persistence::content_id(
      {"aggregate", customer, metric, pricing::rfc3339(window_start), std::to_string(revision)});
}

persistence::aggregate_record make_aggregate_record(const std::string& customer,
                                                    const std::string& metric, timestamp start,
                                                    timestamp end, std::uint32_t revision,
                                                    persistence::aggregate_kind kind,
                                                    const window_aggregate& aggregate) {
  persistence::aggregate_record r;
  r.aggregation_id = aggregation_id(customer, metric, start, revision);
  r.customer_id = customer;
  r.metric = metric;
  r.window_start = start;
  r.window_end = end;
  r.revision = revision;
  r.kind = kind;
  r.is_final = kind != persistence::aggregate_kind::provisional;
  r.value = aggregate.quantity();
  r.event_count = aggregate.event_count();
  r.event_ids = aggregate.sorted_event_ids();
  return r;
}

} // namespace meterflow::actors
