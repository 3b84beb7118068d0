#pragma once

// The JSON forms of the records (SEMANTICS §6, §10, §11 "Formats"): decimals as strings,
// money at the currency's minor unit, charge amounts with 12 fixed digits, quantities plain,
// times in canonical UTC RFC 3339.

#include "persistence/records.hpp"

#include <nlohmann/json.hpp>

namespace meterflow::persistence {

using ordered_json = nlohmann::ordered_json;

ordered_json to_json(const aggregate_record& r);
ordered_json to_json(const charge_record& r);
ordered_json to_json(const unpriced_window& r);
ordered_json to_json(const invoice_record& r);
ordered_json to_json(const rejected_line& r);

// The inverses of to_json for the records a run writes (invoices/<id>.json, charges.ndjson
// lines), for tools that read a run's output back. A record not in that form throws
// std::invalid_argument naming the field. An invoice's credit reasons are not in its JSON.
invoice_record invoice_from_json(const nlohmann::json& j);
charge_record charge_from_json(const nlohmann::json& j);

// Compact one-line JSON (for NDJSON files).
std::string to_line(const ordered_json& j);

// The same compact JSON as to_line(to_json(r)), written straight into `out` without building
// a JSON tree: the hot path of writing aggregates.ndjson and charges.ndjson.
void append_line(std::string& out, const aggregate_record& r);
void append_line(std::string& out, const charge_record& r);

} // namespace meterflow::persistence
