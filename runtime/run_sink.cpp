#include "runtime/run_sink.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace meterflow::runtime {

namespace {

// An earlier run's file is unlinked, not truncated, before the file is written again: ext4
// (auto_da_alloc) starts writing a file that was truncated to zero back to disk when it is
// closed, which made a run into the same directory wait on hundreds of MB at its end. A symbolic
// link (say to /dev/null) is kept and followed.
std::ofstream open_for_write(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::symlink_status(path, ec).type() == std::filesystem::file_type::regular)
    std::filesystem::remove(path, ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    throw std::runtime_error("cannot write " + path.string());
  return out;
}

void write_out(std::ofstream& file, std::string& buffer, const char* what) {
  file << buffer;
  buffer.clear();
  if (!file)
    throw std::runtime_error(std::string("write failed: ") + what);
}

[[noreturn]] void write_failed(const std::filesystem::path& path) {
  throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
}

// Writes `content` as the whole file. An existing file (an earlier run's invoice) is overwritten
// in place and then cut to the new length, never truncated to zero: see open_for_write. Unlinking
// and creating ~10,000 files instead is slow too (ext4 skips recently freed inodes).
void write_whole_file(const std::filesystem::path& path, std::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0)
    write_failed(path);
  const auto fail = [&] {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    write_failed(path);
  };
  for (std::size_t done = 0; done < content.size();) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail();
    done += static_cast<std::size_t>(n);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    fail();
  if (st.st_size > static_cast<off_t>(content.size()) &&
      ::ftruncate(fd, static_cast<off_t>(content.size())) != 0)
    fail();
  if (::close(fd) != 0)
    write_failed(path);
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

run_sink::run_sink(std::optional<std::filesystem::path> out_dir, bool retain)
    : dir_(std::move(out_dir)), retain_(retain) {
  if (!dir_)
    return;
  try {
    std::filesystem::create_directories(*dir_ / "invoices");
    // A rerun into the same directory must not leave invoices of an earlier run behind; they
    // are removed at seal() unless this run rewrote them (rewriting in place is much cheaper
    // for the file system than deleting and creating thousands of files).
    for (const auto& entry : std::filesystem::directory_iterator(*dir_ / "invoices"))
      if (entry.path().extension() == ".json")
        stale_invoice_files_.insert(entry.path().filename().string());
    charges_file_ = open_for_write(*dir_ / "charges.ndjson");
    aggregates_file_ = open_for_write(*dir_ / "aggregates.ndjson");
    unpriced_file_ = open_for_write(*dir_ / "unpriced.ndjson");
    rejected_file_ = open_for_write(*dir_ / "rejected.ndjson");
  } catch (const std::exception& e) {
    throw output_error(e.what()); // before any event is read: the command's usage error
  }
}

void run_sink::add(actors::partition_output&& out) {
  pending_.append(std::move(out));
}

void run_sink::set_counters(const source_counters& source,
                            const actors::partition_counters& partitions) {
  source_ = source;
  partitions_ = partitions;
}

std::uint32_t chain_totals::scope_of(const std::string& customer_id, const std::string& metric,
                                     const std::string& currency) {
  std::uint32_t mc = 0;
  while (mc < metric_currencies_.size() &&
         (metric_currencies_[mc].first != metric || metric_currencies_[mc].second != currency))
    ++mc;
  if (mc == metric_currencies_.size())
    metric_currencies_.emplace_back(metric, currency);
  if (!last_scopes_ || last_customer_ != customer_id) {
    auto it = scopes_of_customer_.find(std::string_view(customer_id));
    if (it == scopes_of_customer_.end())
      it = scopes_of_customer_.try_emplace(customer_id).first;
    last_customer_ = customer_id;
    last_scopes_ = &it->second;
  }
  for (const auto& [known_mc, index] : *last_scopes_)
    if (known_mc == mc)
      return index;
  const auto index = static_cast<std::uint32_t>(scopes.size());
  scopes.push_back({customer_id, metric, currency});
  last_scopes_->emplace_back(mc, index);
  return index;
}

void run_sink::write_charge(const actors::keyed<persistence::charge_record>& k) {
  const auto& c = k.record;
  ++totals_.charges;
  const persistence::packed_id id(c.charge_id);
  const chain_totals::charge_summary summary{
      totals_.scope_of(c.customer_id, c.metric, c.calculation.currency),
      pricing::period_of(c.window_start).start, c.quantity, c.amount()};
  // A charge id seen before is current or superseded. The superseded set is small (re-rated
  // charges); the current charges are one entry per window, probed once on the common path.
  bool duplicate = totals_.superseded_charge_ids.count(id) > 0;
  if (c.supersedes_charge_id) {
    duplicate = duplicate || totals_.current_charges.count(id) > 0;
    const persistence::packed_id superseded(*c.supersedes_charge_id);
    if (totals_.current_charges.erase(superseded) == 0)
      totals_.broken_links += " " + c.charge_id;
    else
      totals_.superseded_charge_ids.insert(superseded);
    totals_.current_charges.insert_or_assign(id, summary);
  } else if (auto [it, added] = totals_.current_charges.try_emplace(id, summary); !added) {
    duplicate = true;
    it->second = summary;
  }
  if (duplicate)
    ++totals_.duplicate_charge_ids;
  if (dir_) {
    persistence::append_line(buffer_, c);
    if (buffer_.size() > (1 << 20))
      write_out(charges_file_, buffer_, "charges.ndjson");
  }
  if (store_)
    to_store_.charges.push_back(c);
  if (retain_)
    charges_.push_back(k);
}

void run_sink::take_charge(actors::keyed<persistence::charge_record>&& k) {
  if (!drop_last_charge_) {
    write_charge(k);
    return;
  }
  // Test hook: the latest charge is held back one step so the run's last one can be dropped.
  if (held_charge_)
    write_charge(*held_charge_);
  held_charge_ = std::move(k);
}

void run_sink::flush(std::uint64_t upto_line) {
  pending_.sort_by_key();

  for (auto& k : pending_.aggregates) {
    const auto& a = k.record;
    ++totals_.aggregate_revisions;
    if (a.is_final)
      totals_.current_aggregates[{totals_.scope_of(a.customer_id, a.metric), a.window_start}] = {
          a.event_count, a.value};
    if (store_)
      to_store_.aggregates.push_back(a);
    if (dir_) {
      persistence::append_line(buffer_, a);
      if (buffer_.size() > (1 << 20))
        write_out(aggregates_file_, buffer_, "aggregates.ndjson");
    }
    if (retain_)
      aggregates_.push_back(std::move(k));
  }
  if (dir_)
    write_out(aggregates_file_, buffer_, "aggregates.ndjson");

  for (auto& k : pending_.charges)
    take_charge(std::move(k));
  if (dir_)
    write_out(charges_file_, buffer_, "charges.ndjson");

  for (auto& k : pending_.unpriced) {
    const auto& u = k.record;
    totals_.unpriced[{totals_.scope_of(u.customer_id, u.metric), u.window_start}] = u.quantity;
    totals_.unpriced_listings.push_back(u);
    if (store_)
      to_store_.unpriced.push_back(u);
    if (dir_)
      buffer_ += persistence::to_line(persistence::to_json(u)) + '\n';
    if (retain_)
      unpriced_.push_back(std::move(k));
  }
  if (dir_)
    write_out(unpriced_file_, buffer_, "unpriced.ndjson");

  for (auto& k : pending_.invoices) {
    if (dir_) {
      const std::string name = invoice_file_name(k.record.invoice_id);
      stale_invoice_files_.erase(name);
      buffer_ = persistence::to_json(k.record).dump(2);
      buffer_ += '\n';
      write_whole_file(*dir_ / "invoices" / name, buffer_);
      buffer_.clear();
    }
    if (store_)
      to_store_.invoices.push_back(k.record);
    // Invoices are few and the summary and reconciliation read them, but their lines list every
    // charge id of the period: unless every record is retained, the ids go once written.
    if (!retain_)
      for (auto& line : k.record.line_items)
        std::vector<persistence::packed_id>().swap(line.charge_ids);
    invoices_.push_back(std::move(k));
  }
  // Re-rate runs belong to the system of record; the output files show their documents.
  if (store_)
    for (auto& k : pending_.rerate_runs)
      to_store_.rerate_runs.push_back(std::move(k.record));
  pending_ = {};

  std::stable_sort(pending_rejected_.begin(), pending_rejected_.end(),
                   [](const auto& a, const auto& b) { return a.line < b.line; });
  auto split = std::partition_point(pending_rejected_.begin(), pending_rejected_.end(),
                                    [&](const auto& r) { return r.line <= upto_line; });
  for (auto it = pending_rejected_.begin(); it != split; ++it) {
    if (store_)
      to_store_.rejected.push_back(*it);
    if (dir_)
      buffer_ += persistence::to_line(persistence::to_json(*it)) + '\n';
    if (retain_)
      rejected_.push_back(std::move(*it));
  }
  pending_rejected_.erase(pending_rejected_.begin(), split);
  if (dir_)
    write_out(rejected_file_, buffer_, "rejected.ndjson");
  if (upto_line != std::numeric_limits<std::uint64_t>::max())
    append_to_store(upto_line, false);
}

void run_sink::flush_all(std::vector<persistence::source_progress> progress,
                         std::vector<persistence::watermark_advance> advances) {
  flush(std::numeric_limits<std::uint64_t>::max());
  if (!store_)
    return;
  to_store_.progress = std::move(progress);
  to_store_.watermark_advances = std::move(advances);
  store_->append(to_store_);
  to_store_ = {};
}

void run_sink::append_to_store(std::uint64_t position, bool finished) {
  if (!store_)
    return;
  if (position > 0 || finished)
    to_store_.progress.push_back({progress_source_, position, finished});
  store_->append(to_store_);
  to_store_ = {};
}

void run_sink::seal(std::uint64_t last_position, bool finished) {
  flush(std::numeric_limits<std::uint64_t>::max());
  if (held_charge_ && !drop_last_charge_)
    write_charge(*held_charge_);
  held_charge_.reset();
  append_to_store(last_position, finished);
  if (dir_) {
    write_out(charges_file_, buffer_, "charges.ndjson");
    for (const auto& name : stale_invoice_files_)
      std::filesystem::remove(*dir_ / "invoices" / name);
    // Closing writes what the streams still buffer: a full disk can show only here.
    const std::pair<std::ofstream*, const char*> files[] = {
        {&charges_file_, "charges.ndjson"},
        {&aggregates_file_, "aggregates.ndjson"},
        {&unpriced_file_, "unpriced.ndjson"},
        {&rejected_file_, "rejected.ndjson"}};
    for (const auto& [file, name] : files) {
      file->close();
      if (!*file)
        throw std::runtime_error(std::string("write failed: ") + name);
    }
  }
}

} // namespace meterflow::runtime
