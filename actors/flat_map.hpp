#pragma once

// A map kept as one sorted vector, for keys that arrive in increasing order nearly always
// (window starts: an invoice's lines come in window order). Adding at the end is a push_back,
// a lookup a binary search, iteration is in key order, and there is no tree node per entry
// (inserting a node and rebalancing the tree was 1.4% of a run in the invoice stage). An insert
// before the end moves the later entries. Like std::vector, an insert invalidates iterators and
// references.
//
// Not used for the rating stage's final windows: at ~220 bytes each, a vector's spare capacity
// and the buffers it leaves behind when it grows cost more memory than tree nodes (peak RSS
// +20 MB at 1M events), for a similar gain.

#include <algorithm>
#include <tuple>
#include <utility>
#include <vector>

namespace meterflow::actors {

template <class Key, class Value>
class flat_map {
public:
  using value_type = std::pair<Key, Value>;
  using iterator = typename std::vector<value_type>::iterator;
  using const_iterator = typename std::vector<value_type>::const_iterator;

  iterator begin() { return entries_.begin(); }
  iterator end() { return entries_.end(); }
  const_iterator begin() const { return entries_.begin(); }
  const_iterator end() const { return entries_.end(); }
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

  iterator lower_bound(const Key& key) {
    if (entries_.empty() || entries_.back().first < key)
      return entries_.end(); // the common case: a key after every other
    return std::lower_bound(entries_.begin(), entries_.end(), key,
                            [](const value_type& e, const Key& k) { return e.first < k; });
  }
  iterator find(const Key& key) {
    const auto it = lower_bound(key);
    return it != end() && !(key < it->first) ? it : end();
  }
  const_iterator find(const Key& key) const { return const_cast<flat_map*>(this)->find(key); }

  template <class... Args>
  std::pair<iterator, bool> try_emplace(const Key& key, Args&&... args) {
    auto it = lower_bound(key);
    if (it != end() && !(key < it->first))
      return {it, false};
    if (entries_.size() == entries_.capacity()) {
      // Grows by a quarter, not double: a run keeps every window line of its periods, and
      // doubling leaves a quarter of the capacity unused on average.
      const auto at = it - entries_.begin();
      entries_.reserve(entries_.size() + entries_.size() / 4 + 2);
      it = entries_.begin() + at;
    }
    return {entries_.emplace(it, std::piecewise_construct, std::forward_as_tuple(key),
                             std::forward_as_tuple(std::forward<Args>(args)...)),
            true};
  }
  template <class V>
  std::pair<iterator, bool> insert_or_assign(const Key& key, V&& value) {
    auto [it, added] = try_emplace(key, std::forward<V>(value));
    if (!added)
      it->second = std::forward<V>(value);
    return {it, added};
  }

private:
  std::vector<value_type> entries_;
};

} // namespace meterflow::actors
