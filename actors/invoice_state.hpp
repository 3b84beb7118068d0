#pragma once

// The invoice accumulator of one customer x period (SEMANTICS §6-§7): the current charges of
// its metrics' final windows, credits and totals; the standard invoice when the period is
// final, and a correction invoice when a re-rate changes what was billed. Pure C++: the invoice
// actor feeds it and forwards what it emits.

#include "actors/dataflow.hpp"
#include "actors/flat_map.hpp"

#include <map>
#include <optional>
#include <set>

namespace meterflow::actors {

class invoice_state {
public:
  invoice_state(const config::configuration& cfg, std::string customer_id, pricing::period period);

  // The rating stage's latest word on a window (or period) of a metric.
  void update(std::vector<line_update>&& lines);
  // The period is final: the standard invoice, unless issued already or nothing is charged.
  void issue(std::uint64_t step);
  // After a re-rate: a correction of an issued invoice whose rounded amounts changed, or the
  // standard invoice of a final period that had none.
  void settle(std::uint64_t step, timestamp watermark);

  // Re-rating a period of the store (`meterflow rerate`): what its stored invoices (the
  // standard one and its corrections, in issue order) billed so far.
  void restore(const std::vector<persistence::invoice_record>& issued);
  bool issued() const { return issued_; }
  // A resumed service: what was billed is what the store holds, replacing what the replay
  // computed (a manual re-rate may have issued corrections since).
  void adopt(const std::vector<persistence::invoice_record>& issued);

  // The standard invoice as it would be issued now from the current charges (status draft),
  // whether or not it was issued; nothing when no charge is in force.
  std::optional<persistence::invoice_record> draft() const;

  stage_output take_output();

private:
  struct totals {
    std::map<std::string, persistence::invoice_line> lines; // by metric
    std::string currency;
    decimal subtotal, credits, total;
    std::vector<std::string> credit_reasons;
    bool has_charge = false;
  };
  // What a line needs of a window: its quantity and, when charged, the charge's amount,
  // rounding and id (not the charge's own quantity), and whether an issued invoice billed that
  // charge. Kept for every window of the period.
  struct window_line {
    decimal quantity;
    decimal amount;
    persistence::packed_id charge_id;
    bool charged = false;
    bool billed = false; // the current charge is on an issued invoice
    pricing::rounding_mode rounding = pricing::rounding_mode::half_even;
  };
  struct billed_line {
    decimal quantity;
    decimal amount;
    // The charges the stored invoices billed, sorted, while their windows may still be to
    // come (restore() before update()); empty once this accumulator issued a document itself.
    std::vector<persistence::packed_id> restored_charge_ids;
  };

  totals compute() const;
  persistence::invoice_record header(const totals& t, std::string id) const;
  // Takes the lines of `t` (an issued invoice lists every charge id: no second copy of them).
  persistence::invoice_record standard_invoice(totals&& t) const;
  std::string standard_invoice_id() const;
  void remember_billed(const totals& t);
  // Whether the stored invoices billed charge `id` of `metric` (restore()).
  bool restored_billed(const std::string& metric, const persistence::packed_id& id) const;
  // Sets every window line's billed flag to billed(metric, line).
  template <class Billed>
  void mark_billed(Billed billed) {
    for (auto& [metric, windows] : metrics_)
      for (auto& [start, w] : windows)
        w.billed = billed(metric, w);
  }
  void emit(persistence::invoice_record&& r);

  const config::configuration& cfg_;
  std::string customer_id_;
  pricing::period period_;
  std::map<std::string, flat_map<timestamp, window_line>> metrics_; // metric -> window start
  bool issued_ = false;
  int corrections_ = 0;
  std::map<std::string, billed_line> billed_;
  bool restored_ = false; // billed_ holds charge ids from the store
  decimal billed_subtotal_, billed_credits_, billed_total_;
  emitter emit_;
  stage_output out_;
};

} // namespace meterflow::actors
