#pragma once

// An invoice as a PDF document for people: the header (customer, period, ids, type, status,
// currency), one line per metric with the price explanation its charges carry (price book
// versions, model, rounding, tiers), the credits and the totals; a correction names the invoice
// it corrects and shows the line deltas. Pure: the same invoice and charges give byte-identical
// bytes (no dates or random ids in the file, the PDF's standard fonts, which are not embedded).

#include "persistence/records.hpp"

#include <set>
#include <string>
#include <vector>

namespace meterflow::runtime {

// The charge ids an invoice's lines name, as text (the charges its document explains).
std::set<std::string> charge_ids_of(const persistence::invoice_record& invoice);

// `charges` must hold every charge the invoice's lines name, in any order (others are ignored);
// a missing one throws std::invalid_argument naming it.
std::string render_invoice_pdf(const persistence::invoice_record& invoice,
                               const std::vector<persistence::charge_record>& charges);

} // namespace meterflow::runtime
