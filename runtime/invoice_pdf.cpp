#include "runtime/invoice_pdf.hpp"

#include <algorithm>
#include <hpdf.h>
#include <map>
#include <memory>
#include <stdexcept>
#include <string_view>

namespace meterflow::runtime {

namespace {

using persistence::charge_record;
using persistence::invoice_record;
using pricing::decimal;

// libharu reports errors through a callback; an exception must not unwind through its C
// frames, so the first error is kept and raised once control is back in C++.
struct hpdf_status {
  HPDF_STATUS error = HPDF_OK;
  HPDF_STATUS detail = 0;
};

void keep_first_error(HPDF_STATUS error, HPDF_STATUS detail, void* user_data) {
  auto* status = static_cast<hpdf_status*>(user_data);
  if (status->error == HPDF_OK)
    *status = {error, detail};
}

// The standard fonts cover WinAnsi only. Ids are printable ASCII already; anything else (a
// credit reason in UTF-8) shows as '?' rather than as mojibake.
std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E)
      c = '?';
  return out;
}

// A4 portrait, in points.
constexpr HPDF_REAL page_width = 595.28f, page_height = 841.89f;
constexpr HPDF_REAL left = 56, right = page_width - 56, top = page_height - 56, bottom = 64;

enum class style { regular, bold, note };

// Lines of text top to bottom, onto as many pages as they need; every page has a footer.
class document {
public:
  explicit document(std::string footer) : footer_(std::move(footer)) {
    pdf_.reset(HPDF_New(&keep_first_error, &status_));
    if (!pdf_)
      throw std::runtime_error("PDF rendering: cannot create a document");
    HPDF_SetCompressionMode(pdf_.get(), HPDF_COMP_NONE);
    regular_ = HPDF_GetFont(pdf_.get(), "Helvetica", "WinAnsiEncoding");
    bold_ = HPDF_GetFont(pdf_.get(), "Helvetica-Bold", "WinAnsiEncoding");
    new_page();
  }

  void set_title(const std::string& title) {
    HPDF_SetInfoAttr(pdf_.get(), HPDF_INFO_TITLE, printable(title).c_str());
    HPDF_SetInfoAttr(pdf_.get(), HPDF_INFO_CREATOR, "meterflow");
  }

  // Moves down to the next line of `size` points, onto a new page when this one is full.
  void next_line(HPDF_REAL size) {
    const HPDF_REAL leading = size * 1.4f;
    if (y_ - leading < bottom)
      new_page();
    y_ -= leading;
  }
  void skip(HPDF_REAL points) { y_ -= points; }

  void text(HPDF_REAL x, const std::string& s, HPDF_REAL size, style st = style::regular) {
    draw(x, y_, s, size, st);
  }
  void text_right(HPDF_REAL x_right, const std::string& s, HPDF_REAL size,
                  style st = style::regular) {
    text(x_right - width(s, size, st), s, size, st);
  }

  // Writes `s` from `x` on as many lines as it needs to stay left of `x_right`.
  void paragraph(HPDF_REAL x, HPDF_REAL x_right, const std::string& s, HPDF_REAL size,
                 style st = style::regular) {
    const auto lines = wrap(s, x_right - x, size, st);
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0)
        next_line(size);
      text(x, lines[i], size, st);
    }
  }

  // `s` in lines at most `max_width` wide, broken after spaces (inside a word only when the
  // word alone is wider).
  std::vector<std::string> wrap(const std::string& s, HPDF_REAL max_width, HPDF_REAL size,
                                style st) {
    std::vector<std::string> lines;
    std::string rest = printable(s);
    do {
      const auto* bytes = reinterpret_cast<const HPDF_BYTE*>(rest.data());
      const auto length = static_cast<HPDF_UINT>(rest.size());
      HPDF_REAL used = 0;
      HPDF_UINT n =
          HPDF_Font_MeasureText(font(st), bytes, length, max_width, size, 0, 0, HPDF_TRUE, &used);
      if (n == 0)
        n = HPDF_Font_MeasureText(font(st), bytes, length, max_width, size, 0, 0, HPDF_FALSE,
                                  &used);
      n = std::max<HPDF_UINT>(n, 1);
      std::string line = rest.substr(0, n);
      rest.erase(0, n);
      while (!line.empty() && line.back() == ' ')
        line.pop_back();
      lines.push_back(std::move(line));
    } while (!rest.empty());
    return lines;
  }

  HPDF_REAL width(const std::string& s, HPDF_REAL size, style st = style::regular) {
    const std::string t = printable(s);
    const HPDF_TextWidth w = HPDF_Font_TextWidth(
        font(st), reinterpret_cast<const HPDF_BYTE*>(t.data()), static_cast<HPDF_UINT>(t.size()));
    return static_cast<HPDF_REAL>(w.width) * size / 1000;
  }

  // A thin line across the page just below the current line.
  void rule() {
    HPDF_Page_SetLineWidth(page_, 0.5f);
    HPDF_Page_MoveTo(page_, left, y_ - 4);
    HPDF_Page_LineTo(page_, right, y_ - 4);
    HPDF_Page_Stroke(page_);
    y_ -= 4;
  }

  std::string bytes() {
    HPDF_SaveToStream(pdf_.get());
    check();
    std::string out(HPDF_GetStreamSize(pdf_.get()), '\0');
    auto size = static_cast<HPDF_UINT32>(out.size());
    HPDF_ReadFromStream(pdf_.get(), reinterpret_cast<HPDF_BYTE*>(out.data()), &size);
    check();
    out.resize(size);
    return out;
  }

private:
  HPDF_Font font(style st) const { return st == style::bold ? bold_ : regular_; }

  void draw(HPDF_REAL x, HPDF_REAL y, const std::string& s, HPDF_REAL size, style st) {
    HPDF_Page_SetGrayFill(page_, st == style::note ? 0.3f : 0);
    HPDF_Page_BeginText(page_);
    HPDF_Page_SetFontAndSize(page_, font(st), size);
    HPDF_Page_TextOut(page_, x, y, printable(s).c_str());
    HPDF_Page_EndText(page_);
  }

  void new_page() {
    page_ = HPDF_AddPage(pdf_.get());
    check();
    HPDF_Page_SetWidth(page_, page_width);
    HPDF_Page_SetHeight(page_, page_height);
    ++pages_;
    draw(left, bottom - 24, footer_ + " - page " + std::to_string(pages_), 8, style::note);
    y_ = top;
  }

  void check() const {
    if (status_.error != HPDF_OK)
      throw std::runtime_error("PDF rendering failed: libharu error " +
                               std::to_string(status_.error) + " (detail " +
                               std::to_string(status_.detail) + ")");
  }

  hpdf_status status_;
  std::unique_ptr<std::remove_pointer_t<HPDF_Doc>, decltype(&HPDF_Free)> pdf_{nullptr, &HPDF_Free};
  HPDF_Font regular_ = nullptr, bold_ = nullptr;
  HPDF_Page page_ = nullptr;
  HPDF_REAL y_ = top;
  int pages_ = 0;
  std::string footer_;
};

// What one price book version contributed to a line: its charges summed, and per tier (and
// price) the units and amounts summed, as the charges' calculations record them.
struct version_use {
  // The price book, version, effective dates, model and rounding (of its first charge).
  const pricing::charge_explanation* version = nullptr;
  std::size_t charges = 0;
  std::size_t rerated = 0;
  decimal quantity;
  decimal amount;
  std::vector<pricing::tier_line> tiers;
};

std::vector<version_use> versions_used(const std::vector<const charge_record*>& charges) {
  std::vector<version_use> out;
  for (const charge_record* c : charges) {
    const auto& calc = c->calculation;
    auto use = std::find_if(out.begin(), out.end(), [&](const version_use& u) {
      return u.version->price_book_id == calc.price_book_id && u.version->version == calc.version &&
             u.version->model == calc.model;
    });
    if (use == out.end()) {
      use = out.insert(out.end(), version_use());
      use->version = &calc;
    }
    ++use->charges;
    if (c->trigger == persistence::charge_trigger::rerate)
      ++use->rerated;
    use->quantity += c->quantity;
    use->amount += calc.amount;
    for (const auto& t : calc.tiers) {
      auto same = std::find_if(use->tiers.begin(), use->tiers.end(), [&](const auto& u) {
        return u.tier == t.tier && u.unit_price == t.unit_price && u.flat_fee == t.flat_fee;
      });
      if (same == use->tiers.end()) {
        use->tiers.push_back(t);
      } else {
        same->units += t.units;
        same->amount += t.amount;
      }
    }
  }
  return out;
}

std::string effective(const pricing::charge_explanation& v) {
  return "effective " + pricing::format_rfc3339(v.effective_from) +
         (v.effective_until ? " to " + pricing::format_rfc3339(*v.effective_until)
                            : " (open-ended)");
}

std::string tier_text(pricing::model_kind model, const pricing::tier_line& t) {
  const bool package = model == pricing::model_kind::package;
  const std::string unit = package ? " package" : " unit";
  const std::string product = t.units.to_string() + unit +
                              (t.units == decimal::from_int(1) ? "" : "s") + " x " +
                              t.unit_price.to_string();
  const std::string amount = " = " + t.amount.to_string();
  if (model == pricing::model_kind::flat || package)
    return product + amount;
  return "tier " + std::to_string(t.tier) + ": " + product +
         (t.flat_fee.is_zero() ? "" : " + fee " + t.flat_fee.to_string()) + amount;
}

constexpr HPDF_REAL body = 10, small = 8.5f;
constexpr HPDF_REAL quantity_right = 380, explanation = left + 12;

class invoice_page {
public:
  invoice_page(const invoice_record& inv, const std::map<std::string, const charge_record*>& by_id)
      : inv_(inv), by_id_(by_id), correction_(inv.type == persistence::invoice_type::correction),
        doc_(inv.invoice_id) {}

  std::string render() {
    doc_.set_title((correction_ ? "Correction invoice " : "Invoice ") + inv_.invoice_id);
    header();
    lines();
    totals();
    return doc_.bytes();
  }

private:
  void header() {
    doc_.next_line(18);
    doc_.text(left, correction_ ? "Correction invoice" : "Invoice", 18, style::bold);
    if (inv_.corrects_invoice_id) {
      doc_.next_line(body);
      doc_.paragraph(left, right, "Corrects invoice " + *inv_.corrects_invoice_id, body,
                     style::bold);
    }
    doc_.skip(8);
    field("Invoice", inv_.invoice_id);
    field("Type", to_string(inv_.type));
    field("Status", inv_.status);
    field("Customer", inv_.customer_id);
    field("Period", pricing::period_id(inv_.period) + " (" +
                        pricing::format_rfc3339(inv_.period.start) + " to " +
                        pricing::format_rfc3339(inv_.period.end) + ", end exclusive)");
    field("Currency", inv_.currency);
    if (correction_) {
      doc_.skip(6);
      doc_.next_line(small);
      doc_.paragraph(left, right,
                     "Quantities and amounts are changes to what " +
                         inv_.corrects_invoice_id.value_or("the corrected invoice") +
                         " and its earlier corrections billed, after a re-rate. A negative total "
                         "is a credit note.",
                     small, style::note);
    }
  }

  void field(const std::string& label, const std::string& value) {
    doc_.next_line(body);
    doc_.text(left, label, body, style::bold);
    doc_.paragraph(left + 100, right, value, body);
  }

  void lines() {
    doc_.skip(14);
    doc_.next_line(body);
    doc_.text(left, "Metric", body, style::bold);
    doc_.text_right(quantity_right, correction_ ? "Quantity change" : "Quantity", body,
                    style::bold);
    doc_.text_right(right, (correction_ ? "Amount change (" : "Amount (") + inv_.currency + ")",
                    body, style::bold);
    doc_.rule();
    for (const auto& line : inv_.line_items) {
      doc_.skip(4);
      doc_.next_line(body);
      doc_.text_right(quantity_right, signed_text(line.quantity, line.quantity.to_string()), body);
      doc_.text_right(right, money(line.amount), body);
      doc_.paragraph(left, quantity_right - 150, line.metric, body);
      explain(line);
    }
    doc_.rule();
  }

  // The price explanation of a line: per price book version, its charges and the tiers used.
  void explain(const persistence::invoice_line& line) {
    std::vector<const charge_record*> charges;
    decimal sum;
    for (const auto& packed : line.charge_ids) {
      const std::string id = packed.str();
      auto it = by_id_.find(id);
      if (it == by_id_.end())
        throw std::invalid_argument("invoice " + inv_.invoice_id + ": charge " + id + " of line " +
                                    line.metric + " not found");
      charges.push_back(it->second);
      sum += it->second->amount();
    }
    for (const version_use& use : versions_used(charges)) {
      const auto& v = *use.version;
      note(explanation, v.price_book_id + "/" + v.version + ": " + pricing::to_string(v.model) +
                            " model, rounding " + pricing::to_string(v.rounding) + ", " +
                            effective(v));
      note(explanation + 12,
           std::to_string(use.charges) + (use.charges == 1 ? " charge" : " charges") +
               (use.rerated ? " (" + std::to_string(use.rerated) + " from a re-rate)" : "") +
               ": quantity " + use.quantity.to_string() + ", amount " + use.amount.to_string());
      for (const auto& t : use.tiers)
        if (!t.units.is_zero() || !t.amount.is_zero())
          note(explanation + 12, tier_text(v.model, t));
    }
    // A correction's line also names the charges its new charges replaced, with their version.
    std::vector<const charge_record*> replaced;
    for (const charge_record* c : charges)
      if (c->supersedes_charge_id) {
        auto it = by_id_.find(*c->supersedes_charge_id);
        if (it != by_id_.end())
          replaced.push_back(it->second);
      }
    for (const version_use& use : versions_used(replaced))
      note(explanation,
           "replaces " + std::to_string(use.charges) + (use.charges == 1 ? " charge" : " charges") +
               " of " + use.version->price_book_id + "/" + use.version->version + ": quantity " +
               use.quantity.to_string() + ", amount " + use.amount.to_string());
    if (!correction_)
      note(explanation, "charges sum to " + sum.to_string() +
                            ", rounded to the currency: " + money(line.amount));
  }

  void note(HPDF_REAL x, const std::string& s) {
    doc_.next_line(small);
    doc_.paragraph(x, right, s, small, style::note);
  }

  void totals() {
    const std::string change = correction_ ? " change" : "";
    total("Subtotal" + change, money(inv_.subtotal), style::regular);
    total("Credits applied" + change, money(inv_.credits_applied), style::regular);
    total("Total" + change, money(inv_.total) + " " + inv_.currency, style::bold);
    for (const auto& reason : inv_.credit_reasons)
      note(left, "Credit: " + reason);
  }

  void total(const std::string& label, const std::string& amount, style st) {
    doc_.skip(2);
    doc_.next_line(body);
    doc_.text(quantity_right - 60, label, body, st);
    doc_.text_right(right, amount, body, st);
  }

  // A correction's figures are deltas: a positive one is shown with its sign.
  std::string signed_text(const decimal& d, std::string text) const {
    return correction_ && d > decimal() ? "+" + text : text;
  }
  std::string money(const decimal& d) const {
    return signed_text(d,
                       pricing::format_money(d, inv_.currency, pricing::rounding_mode::half_even));
  }

  const invoice_record& inv_;
  const std::map<std::string, const charge_record*>& by_id_;
  const bool correction_;
  document doc_;
};

} // namespace

std::set<std::string> charge_ids_of(const persistence::invoice_record& invoice) {
  std::set<std::string> ids;
  for (const auto& line : invoice.line_items)
    for (const auto& id : line.charge_ids)
      ids.insert(id.str());
  return ids;
}

std::string render_invoice_pdf(const invoice_record& invoice,
                               const std::vector<charge_record>& charges) {
  std::map<std::string, const charge_record*> by_id;
  for (const auto& c : charges)
    by_id.emplace(c.charge_id, &c);
  return invoice_page(invoice, by_id).render();
}

} // namespace meterflow::runtime
