#include "runtime/run_sink.hpp"

#include <algorithm>
#include <fstream>
#include <stdexcept>

namespace meterflow::runtime {

namespace {

template <class T>
void append(std::vector<T>& to, std::vector<T>&& from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

template <class T>
void sort_by_key(std::vector<actors::keyed<T>>& v) {
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
}

std::ofstream open_for_write(const std::filesystem::path& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    throw std::runtime_error("cannot write " + path.string());
  return out;
}

template <class T>
void write_ndjson(const std::filesystem::path& path, const std::vector<actors::keyed<T>>& v) {
  auto out = open_for_write(path);
  std::string buffer;
  for (const auto& k : v) {
    if constexpr (std::is_same_v<T, persistence::aggregate_record> ||
                  std::is_same_v<T, persistence::charge_record>)
      persistence::append_line(buffer, k.record);
    else
      buffer += persistence::to_line(persistence::to_json(k.record)) + '\n';
    if (buffer.size() > (1 << 20)) {
      out << buffer;
      buffer.clear();
    }
  }
  out << buffer;
  if (!out)
    throw std::runtime_error("write failed: " + path.string());
}

} // namespace

std::string invoice_file_name(const std::string& invoice_id) {
  // Ids may hold any printable ASCII; the file name keeps [A-Za-z0-9._-] and %-encodes the rest
  // so no id can name a path outside invoices/.
  std::string name;
  for (unsigned char c : invoice_id) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '-' || (c == '.' && !name.empty())) {
      name += static_cast<char>(c);
    } else {
      static constexpr char hex[] = "0123456789ABCDEF";
      name += '%';
      name += hex[c >> 4];
      name += hex[c & 0xF];
    }
  }
  return name + ".json";
}

void run_sink::add(actors::partition_output&& out) {
  append(aggregates_, std::move(out.aggregates));
  append(charges_, std::move(out.charges));
  append(unpriced_, std::move(out.unpriced));
  append(invoices_, std::move(out.invoices));
}

void run_sink::set_counters(const source_counters& source,
                            const actors::partition_counters& partitions) {
  source_ = source;
  partitions_ = partitions;
}

void run_sink::seal() {
  sort_by_key(aggregates_);
  sort_by_key(charges_);
  sort_by_key(unpriced_);
  sort_by_key(invoices_);
  std::stable_sort(rejected_.begin(), rejected_.end(),
                   [](const auto& a, const auto& b) { return a.line < b.line; });
}

void run_sink::write(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir / "invoices");
  // A rerun into the same directory must not leave invoices of an earlier run behind.
  for (const auto& entry : std::filesystem::directory_iterator(dir / "invoices"))
    if (entry.path().extension() == ".json")
      std::filesystem::remove(entry.path());
  for (const auto& k : invoices_) {
    auto out = open_for_write(dir / "invoices" / invoice_file_name(k.record.invoice_id));
    out << persistence::to_json(k.record).dump(2) << '\n';
  }
  write_ndjson(dir / "charges.ndjson", charges_);
  write_ndjson(dir / "aggregates.ndjson", aggregates_);
  write_ndjson(dir / "unpriced.ndjson", unpriced_);
  auto out = open_for_write(dir / "rejected.ndjson");
  for (const auto& r : rejected_)
    out << persistence::to_line(persistence::to_json(r)) << '\n';
}

} // namespace meterflow::runtime
