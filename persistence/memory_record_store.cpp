// The in-memory record store (the embedded default): append-only vectors in emission order with
// indexes by id. Current state (current charges, current invoice status) is derived from the
// appended records, never stored by overwriting.

#include "persistence/store.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace meterflow::persistence {

namespace {

using unpriced_key = std::tuple<std::string, std::string, timestamp, decimal, int>;

unpriced_key key_of(const unpriced_window& u) {
  return {u.customer_id, u.metric, u.window_start, u.quantity, static_cast<int>(u.reason)};
}

class memory_record_store final : public record_store {
public:
  void append(const record_batch& batch) override {
    check(batch);
    for (const auto& a : batch.aggregates)
      if (aggregate_ids_.insert(a.aggregation_id).second)
        aggregates_.push_back(a);
    for (const auto& c : batch.charges) {
      if (!charge_index_.emplace(c.charge_id, charges_.size()).second)
        continue;
      if (c.supersedes_charge_id)
        superseded_.insert(*c.supersedes_charge_id);
      charges_.push_back(c);
    }
    for (const auto& u : batch.unpriced)
      if (unpriced_keys_.insert(key_of(u)).second)
        unpriced_.push_back(u);
    for (const auto& i : batch.invoices) {
      if (!invoice_index_.emplace(i.invoice_id, invoices_.size()).second)
        continue;
      invoices_.push_back(i);
      record_status({i.invoice_id, i.status, "meterflow", "recorded with the invoice"});
    }
    for (const auto& r : batch.rejected)
      if (rejected_lines_.insert(r.line).second)
        rejected_.push_back(r);
    for (const auto& r : batch.rerate_runs)
      if (rerate_run_ids_.insert(r.rerate_run_id).second)
        rerate_runs_.push_back(r);
    progress_.insert(progress_.end(), batch.progress.begin(), batch.progress.end());
    advances_.insert(advances_.end(), batch.watermark_advances.begin(),
                     batch.watermark_advances.end());
  }

  std::vector<aggregate_record> aggregate_revisions(const std::string& customer_id,
                                                    const std::string& metric,
                                                    timestamp window_start) const override {
    std::vector<aggregate_record> out;
    for (const auto& a : aggregates_)
      if (a.customer_id == customer_id && a.metric == metric && a.window_start == window_start)
        out.push_back(a);
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& x, const auto& y) { return x.revision < y.revision; });
    return out;
  }

  std::vector<charge_record> charges() const override { return charges_; }

  std::vector<charge_record> current_charges(const std::string& customer_id,
                                             const std::string& metric) const override {
    std::vector<charge_record> out;
    for (const auto& c : charges_)
      if (c.customer_id == customer_id && c.metric == metric && !superseded_.count(c.charge_id))
        out.push_back(c);
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& x, const auto& y) { return x.window_start < y.window_start; });
    return out;
  }

  std::optional<invoice_record> invoice(const std::string& invoice_id) const override {
    auto it = invoice_index_.find(invoice_id);
    if (it == invoice_index_.end())
      return std::nullopt;
    return invoices_[it->second];
  }

  std::vector<invoice_record> invoices_of(const std::string& customer_id,
                                          const pricing::period& period) const override {
    std::vector<invoice_record> out;
    for (const auto& i : invoices_)
      if (i.customer_id == customer_id && i.period.start == period.start)
        out.push_back(i);
    return out;
  }

  std::vector<unpriced_window> unpriced() const override { return unpriced_; }
  std::vector<rejected_line> rejected() const override { return rejected_; }
  std::vector<rerate_run> rerate_runs() const override { return rerate_runs_; }

  std::vector<watermark_advance> watermark_advances(const std::string& source) const override {
    std::vector<watermark_advance> out;
    for (const auto& a : advances_)
      if (a.source == source)
        out.push_back(a);
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& x, const auto& y) { return x.position < y.position; });
    return out;
  }

  std::optional<source_progress> progress(const std::string& source) const override {
    for (auto it = progress_.rbegin(); it != progress_.rend(); ++it)
      if (it->source == source)
        return *it;
    return std::nullopt;
  }

  void append_status(const status_event& e) override {
    const auto current = current_status(e.invoice_id);
    if (!current)
      throw std::invalid_argument("invoice status: no invoice " + e.invoice_id);
    check_status_change(*current, e);
    record_status(e);
  }

  std::optional<std::string> current_status(const std::string& invoice_id) const override {
    for (auto it = status_events_.rbegin(); it != status_events_.rend(); ++it)
      if (it->invoice_id == invoice_id)
        return it->status;
    return std::nullopt;
  }

  std::vector<ledger_entry> ledger() const override { return ledger_; }

  void publish(const published_version& v) override {
    auto book = book_currency_.find(v.price_book_id);
    if (book != book_currency_.end() && book->second != v.currency)
      throw std::invalid_argument("price book " + v.price_book_id + " is in " + book->second +
                                  ", not " + v.currency);
    for (const auto& p : versions_) {
      if (p.price_book_id != v.price_book_id || p.version != v.version)
        continue;
      if (p.definition_json == v.definition_json)
        return;
      throw std::invalid_argument("price book " + v.price_book_id + " version " + v.version +
                                  " is published with a different definition; publish a new "
                                  "version instead");
    }
    book_currency_.emplace(v.price_book_id, v.currency);
    versions_.push_back(v);
  }

  std::vector<published_version> versions(const std::string& price_book_id) const override {
    std::vector<published_version> out;
    for (const auto& v : versions_)
      if (v.price_book_id == price_book_id)
        out.push_back(v);
    return out;
  }

private:
  // Refuses a batch whose records point at what is not stored, before anything is stored.
  void check(const record_batch& batch) const {
    std::unordered_set<std::string> new_charges, newly_superseded;
    for (const auto& c : batch.charges) {
      if (charge_index_.count(c.charge_id) || !new_charges.insert(c.charge_id).second)
        continue;
      if (!c.supersedes_charge_id)
        continue;
      const std::string& target = *c.supersedes_charge_id;
      if (!charge_index_.count(target) && !new_charges.count(target))
        throw std::invalid_argument("charge " + c.charge_id + " supersedes " + target +
                                    ", which is not stored");
      if (superseded_.count(target) || !newly_superseded.insert(target).second)
        throw std::invalid_argument("charge " + c.charge_id + " supersedes " + target +
                                    ", which another charge already supersedes");
    }
    std::unordered_set<std::string> new_invoices;
    for (const auto& i : batch.invoices) {
      if (i.status != "draft" && i.status != "issued")
        throw std::invalid_argument("invoice " + i.invoice_id + " cannot be recorded as " +
                                    i.status + " (draft or issued)");
      if (invoice_index_.count(i.invoice_id) || !new_invoices.insert(i.invoice_id).second)
        continue;
      if (i.corrects_invoice_id && !invoice_index_.count(*i.corrects_invoice_id) &&
          !new_invoices.count(*i.corrects_invoice_id))
        throw std::invalid_argument("invoice " + i.invoice_id + " corrects " +
                                    *i.corrects_invoice_id + ", which is not stored");
    }
  }

  void record_status(const status_event& e) {
    const invoice_record& inv = invoices_[invoice_index_.at(e.invoice_id)];
    if (e.status == "issued")
      ledger_.push_back({inv.invoice_id, inv.customer_id, inv.currency, inv.total, "invoice"});
    else if (e.status == "void")
      ledger_.push_back({inv.invoice_id, inv.customer_id, inv.currency, -inv.total, "reversal"});
    status_events_.push_back(e);
  }

  std::vector<aggregate_record> aggregates_;
  std::unordered_set<std::string> aggregate_ids_;
  std::vector<charge_record> charges_;
  std::unordered_map<std::string, std::size_t> charge_index_;
  std::unordered_set<std::string> superseded_;
  std::vector<unpriced_window> unpriced_;
  std::set<unpriced_key> unpriced_keys_;
  std::vector<invoice_record> invoices_;
  std::unordered_map<std::string, std::size_t> invoice_index_;
  std::vector<rejected_line> rejected_;
  std::vector<source_progress> progress_;
  std::vector<watermark_advance> advances_;
  std::unordered_set<std::uint64_t> rejected_lines_;
  std::vector<status_event> status_events_;
  std::vector<ledger_entry> ledger_;
  std::map<std::string, std::string> book_currency_;
  std::vector<rerate_run> rerate_runs_;
  std::set<std::string> rerate_run_ids_;
  std::vector<published_version> versions_;
};

} // namespace

std::unique_ptr<record_store> make_memory_record_store() {
  return std::make_unique<memory_record_store>();
}

} // namespace meterflow::persistence
