#include "actors/invoice_state.hpp"

#include "persistence/ids.hpp"

#include <algorithm>

namespace meterflow::actors {

invoice_state::invoice_state(const config::configuration& cfg, std::string customer_id,
                             pricing::period period)
    : cfg_(cfg), customer_id_(std::move(customer_id)), period_(period) {}

bool invoice_state::restored_billed(const std::string& metric,
                                    const persistence::packed_id& id) const {
  if (!restored_)
    return false;
  const auto b = billed_.find(metric);
  return b != billed_.end() && std::binary_search(b->second.restored_charge_ids.begin(),
                                                  b->second.restored_charge_ids.end(), id);
}

void invoice_state::update(std::vector<line_update>&& lines) {
  // Lines come in window order: each is added at the end of its metric's windows.
  for (line_update& u : lines) {
    window_line w{u.quantity, {}, {}, u.charge.has_value(), false, {}};
    if (u.charge) {
      w.amount = u.charge->amount;
      w.charge_id = u.charge->charge_id;
      w.rounding = u.charge->rounding;
    }
    auto [it, added] = metrics_[u.metric].try_emplace(u.window_start, w);
    window_line& line = it->second;
    if (!added) {
      // A charge stays billed while it is the window's current one; a new charge is not.
      w.billed = line.billed && line.charged && w.charged && line.charge_id == w.charge_id;
      line = w;
    }
    if (line.charged && !line.billed)
      line.billed = restored_billed(u.metric, line.charge_id);
  }
}

invoice_state::totals invoice_state::compute() const {
  totals t;
  const pricing::price_book* book = cfg_.price_book_for(customer_id_);
  t.currency = book ? book->currency : "";
  const int digits = pricing::currency_minor_units(t.currency);
  for (const auto& [metric, windows] : metrics_) {
    persistence::invoice_line line;
    line.metric = metric;
    decimal sum;
    std::optional<pricing::rounding_mode> mode;
    bool any = false;
    for (const auto& [start, w] : windows) {
      line.quantity += w.quantity;
      if (!w.charged)
        continue;
      any = true;
      sum += w.amount;
      mode = w.rounding; // the latest current charge's version decides the rounding
      line.charge_ids.push_back(w.charge_id);
    }
    if (!any)
      continue;
    t.has_charge = true;
    line.amount = sum.round(digits, mode.value_or(pricing::rounding_mode::half_even)).value();
    t.subtotal += line.amount;
    t.lines.emplace(metric, std::move(line));
  }
  decimal credits;
  if (const config::customer* c = cfg_.find_customer(customer_id_))
    for (const auto& cr : c->credits)
      if (cr.period == period_) {
        credits += cr.amount;
        t.credit_reasons.push_back(cr.reason);
      }
  const decimal ceiling = t.subtotal.is_negative() ? decimal() : t.subtotal;
  t.credits = credits < ceiling ? credits : ceiling;
  t.total = t.subtotal - t.credits;
  return t;
}

persistence::invoice_record invoice_state::header(const totals& t, std::string id) const {
  persistence::invoice_record r;
  r.invoice_id = std::move(id);
  r.customer_id = customer_id_;
  r.period = period_;
  r.currency = t.currency;
  r.status = "issued";
  r.credit_reasons = t.credit_reasons;
  return r;
}

std::string invoice_state::standard_invoice_id() const {
  return "inv_" + customer_id_ + "_" + pricing::period_id(period_);
}

void invoice_state::emit(persistence::invoice_record&& r) {
  out_.records.invoices.push_back(
      {emit_.key(phase::invoice, r.period.start, r.customer_id, ""), std::move(r)});
}

// Called with the totals of the current lines: every current charge is billed now.
void invoice_state::remember_billed(const totals& t) {
  billed_.clear();
  restored_ = false;
  for (const auto& [metric, line] : t.lines) {
    billed_line& b = billed_[metric];
    b.quantity = line.quantity;
    b.amount = line.amount;
  }
  mark_billed([](const std::string&, const window_line& w) { return w.charged; });
  billed_subtotal_ = t.subtotal;
  billed_credits_ = t.credits;
  billed_total_ = t.total;
}

persistence::invoice_record invoice_state::standard_invoice(totals&& t) const {
  persistence::invoice_record r = header(t, standard_invoice_id());
  for (auto& [metric, line] : t.lines) {
    r.line_items.push_back(std::move(line));
    r.line_items.back().line_item_id = persistence::content_id({"line", r.invoice_id, metric});
  }
  r.subtotal = t.subtotal;
  r.credits_applied = t.credits;
  r.total = t.total;
  return r;
}

std::optional<persistence::invoice_record> invoice_state::draft() const {
  totals t = compute();
  if (!t.has_charge)
    return std::nullopt;
  persistence::invoice_record r = standard_invoice(std::move(t));
  r.status = "draft";
  return r;
}

void invoice_state::issue(std::uint64_t step) {
  emit_.step = step;
  if (issued_)
    return;
  totals t = compute();
  if (!t.has_charge)
    return; // no charge, no invoice; a later re-rate may still bring one
  issued_ = true;
  remember_billed(t);
  emit(standard_invoice(std::move(t)));
}

void invoice_state::settle(std::uint64_t step, timestamp watermark) {
  emit_.step = step;
  if (!issued_) {
    if (plus(period_.end, cfg_.allowed_lateness) <= watermark)
      issue(step);
    return;
  }
  totals t = compute();
  persistence::invoice_record r =
      header(t, standard_invoice_id() + "_c" + std::to_string(corrections_ + 1));
  r.type = persistence::invoice_type::correction;
  r.corrects_invoice_id = standard_invoice_id();
  for (auto& [metric, line] : t.lines) {
    const auto billed = billed_.find(metric);
    const decimal billed_amount = billed == billed_.end() ? decimal() : billed->second.amount;
    const decimal billed_quantity = billed == billed_.end() ? decimal() : billed->second.quantity;
    if (line.amount == billed_amount)
      continue;
    persistence::invoice_line delta;
    delta.metric = metric;
    delta.amount = line.amount - billed_amount;
    delta.quantity = line.quantity - billed_quantity;
    // The charges this correction bills: those that are current now and were not billed.
    for (const auto& [start, w] : metrics_.at(metric))
      if (w.charged && !w.billed)
        delta.charge_ids.push_back(w.charge_id);
    delta.line_item_id = persistence::content_id({"line", r.invoice_id, metric});
    r.line_items.push_back(std::move(delta));
  }
  if (r.line_items.empty())
    return; // no change, no document
  r.subtotal = t.subtotal - billed_subtotal_;
  r.credits_applied = t.credits - billed_credits_;
  r.total = t.total - billed_total_;
  ++corrections_;
  remember_billed(t);
  emit(std::move(r));
}

void invoice_state::restore(const std::vector<persistence::invoice_record>& issued) {
  for (const persistence::invoice_record& inv : issued) {
    issued_ = true;
    if (inv.type == persistence::invoice_type::correction)
      ++corrections_;
    for (const persistence::invoice_line& l : inv.line_items) {
      billed_line& b = billed_[l.metric];
      b.quantity += l.quantity;
      b.amount += l.amount;
      b.restored_charge_ids.insert(b.restored_charge_ids.end(), l.charge_ids.begin(),
                                   l.charge_ids.end());
    }
    billed_subtotal_ += inv.subtotal;
    billed_credits_ += inv.credits_applied;
    billed_total_ += inv.total;
  }
  restored_ = true;
  for (auto& [metric, b] : billed_) {
    auto& ids = b.restored_charge_ids;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  // The windows already here (a resumed service adopts after its lines came).
  mark_billed([this](const std::string& metric, const window_line& w) {
    return w.billed || (w.charged && restored_billed(metric, w.charge_id));
  });
}

void invoice_state::adopt(const std::vector<persistence::invoice_record>& issued) {
  issued_ = false;
  corrections_ = 0;
  billed_.clear();
  restored_ = false;
  mark_billed([](const std::string&, const window_line&) { return false; });
  billed_subtotal_ = billed_credits_ = billed_total_ = decimal();
  restore(issued);
}

stage_output invoice_state::take_output() {
  stage_output o = std::move(out_);
  out_ = {};
  return o;
}

} // namespace meterflow::actors
