#include "persistence/memory_store.hpp"

#include <algorithm>
#include <cstring>
#include <xxhash.h>

namespace meterflow::persistence {

namespace {

constexpr std::size_t arena_block = 1 << 20;
constexpr char kind_separator = '\x1f';

} // namespace

const char* memory_store::text_arena::add(std::string_view text) {
  if (used_ + text.size() + 1 > capacity_) {
    capacity_ = std::max(arena_block, text.size() + 1);
    blocks_.push_back(std::make_unique<char[]>(capacity_));
    used_ = 0;
  }
  char* at = blocks_.back().get() + used_;
  std::memcpy(at, text.data(), text.size());
  at[text.size()] = '\0';
  used_ += text.size() + 1;
  return at;
}

std::uint64_t memory_store::key_hash(const customer& c, std::string_view event_id) const {
  return XXH3_64bits_withSeed(event_id.data(), event_id.size(), c.hash);
}

std::optional<std::uint32_t> memory_store::customer_of(std::string_view customer_id) const {
  auto it = customer_index_.find(customer_id);
  if (it == customer_index_.end())
    return std::nullopt;
  return it->second;
}

std::uint32_t memory_store::intern_customer(const std::string& customer_id) {
  if (auto known = customer_of(customer_id))
    return *known;
  const auto index = static_cast<std::uint32_t>(customers_.size());
  customer& c = customers_.emplace_back();
  c.id = customer_id;
  c.hash = XXH3_64bits(customer_id.data(), customer_id.size());
  customer_index_.emplace(c.id, index);
  return index;
}

std::uint32_t memory_store::intern_kind(const event& e) {
  kind_key_.assign(e.event_type);
  kind_key_ += kind_separator;
  kind_key_ += e.metadata;
  auto it = kind_index_.find(kind_key_);
  if (it != kind_index_.end())
    return it->second;
  const auto index = static_cast<std::uint32_t>(kinds_.size());
  kind& k = kinds_.emplace_back();
  k.text = kind_key_;
  k.split = e.event_type.size();
  kind_index_.emplace(k.text, index);
  return index;
}

void memory_store::grow() {
  const std::size_t capacity = slots_.empty() ? 1024 : slots_.size() * 2;
  std::vector<slot> slots(capacity);
  const std::size_t mask = capacity - 1;
  for (const slot& s : slots_) {
    if (s.index_plus_one == 0)
      continue;
    const record& r = records_[s.index_plus_one - 1];
    std::size_t at = key_hash(customers_[r.customer], r.event_id) & mask;
    while (slots[at].index_plus_one != 0)
      at = (at + 1) & mask;
    slots[at] = s;
  }
  slots_ = std::move(slots);
}

std::size_t memory_store::probe(std::uint32_t customer, std::string_view event_id,
                                std::uint64_t hash) const {
  const std::size_t mask = slots_.size() - 1;
  const auto tag = static_cast<std::uint32_t>(hash >> 32);
  std::size_t at = hash & mask;
  for (; slots_[at].index_plus_one != 0; at = (at + 1) & mask) {
    if (slots_[at].tag != tag)
      continue;
    const record& existing = records_[slots_[at].index_plus_one - 1];
    if (existing.customer == customer && std::string_view(existing.event_id) == event_id)
      break;
  }
  return at;
}

append_outcome memory_store::outcome_of_stored(std::uint32_t index, const event& e,
                                               std::uint64_t source_position) const {
  if (positions_[index] == source_position)
    return append_outcome::replayed;
  return at(index).same_payload(e) ? append_outcome::duplicate : append_outcome::conflict;
}

std::optional<append_outcome> memory_store::outcome_if_stored(const event& e,
                                                              std::uint64_t source_position) const {
  const auto c = customer_of(e.customer_id);
  if (!c || slots_.empty())
    return std::nullopt;
  const std::size_t at = probe(*c, e.event_id, key_hash(customers_[*c], e.event_id));
  if (slots_[at].index_plus_one == 0)
    return std::nullopt;
  return outcome_of_stored(slots_[at].index_plus_one - 1, e, source_position);
}

append_outcome memory_store::append(const event& e, std::uint64_t source_position) {
  if ((records_.size() + 1) * 2 > slots_.size())
    grow();
  const std::uint32_t c = intern_customer(e.customer_id);
  customer& owner = customers_[c];
  const std::uint64_t h = key_hash(owner, e.event_id);
  const std::size_t at = probe(c, e.event_id, h); // one probe per append
  if (slots_[at].index_plus_one != 0)
    return outcome_of_stored(slots_[at].index_plus_one - 1, e, source_position);
  const auto index = static_cast<std::uint32_t>(records_.size());
  record& r = records_.emplace_back();
  std::memcpy(r.value, &e.value, sizeof r.value);
  r.time = e.event_time;
  r.event_id = ids_.add(e.event_id);
  r.customer = c;
  r.kind = intern_kind(e);
  slots_[at] = {index + 1, static_cast<std::uint32_t>(h >> 32)};
  owner.events.indexes.push_back(index);
  owner.events.times.push_back(e.event_time);
  positions_.push_back(source_position);
  return append_outcome::accepted;
}

std::vector<append_outcome>
memory_store::append_batch(std::vector<event>&& events,
                           const std::vector<std::uint64_t>& positions) {
  std::vector<append_outcome> outcomes;
  outcomes.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i)
    outcomes.push_back(append(events[i], positions[i]));
  events.clear();
  return outcomes;
}

event_view memory_store::at(std::uint32_t index) const {
  const record& r = records_[index];
  const kind& k = kinds_[r.kind];
  const std::string_view kind_text = k.text;
  pricing::decimal value;
  std::memcpy(&value, r.value, sizeof value);
  return {customers_[r.customer].id,    r.event_id, kind_text.substr(0, k.split), r.time, value,
          kind_text.substr(k.split + 1)};
}

std::optional<std::uint32_t> memory_store::index_at(std::uint64_t source_position) const {
  // Events are appended in input order, so their positions ascend.
  auto it = std::lower_bound(positions_.begin(), positions_.end(), source_position);
  if (it == positions_.end() || *it != source_position)
    return std::nullopt;
  return static_cast<std::uint32_t>(it - positions_.begin());
}

const memory_store::customer_events& memory_store::of(const std::string& customer_id) const {
  static const customer_events none;
  const auto c = customer_of(customer_id);
  return c ? customers_[*c].events : none;
}

} // namespace meterflow::persistence
