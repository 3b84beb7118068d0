// `meterflow explain`: how an amount came about, for people, from a run's output directory.

#include "runtime/cli.hpp"
#include "runtime/commands.hpp"
#include "runtime/run_sink.hpp"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

namespace meterflow::runtime {

const char* const explain_usage = R"(Usage: meterflow explain --out DIR ID

Explains a charge or an invoice of the run whose output is in DIR: for a charge, the price
book version, model, tiers, quantities, cumulative quantity, window, source events and the
charges it supersedes or that supersede it; for an invoice, every line with the charges
behind it, the credits and the totals (and, for a correction, the invoice it corrects).

Arguments:
  --out DIR   the output directory of `meterflow run`
  ID          a charge_id (64 hex digits, or a unique prefix of at least 8) or an invoice_id
  --help      show this text

Exit status: 0 explained, 1 no such charge or invoice, 2 bad arguments.
)";

namespace {

using json = nlohmann::ordered_json;

std::vector<json> read_ndjson(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in)
    throw usage_error("--out: cannot read " + path.string() +
                      " (is this a `meterflow run` output?)");
  std::vector<json> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      out.push_back(json::parse(line));
  return out;
}

std::string s(const json& j) {
  return j.is_null() ? "-" : j.get<std::string>();
}

void print_charge(const json& c, const std::map<std::string, const json*>& superseded_by,
                  const std::map<std::string, const json*>& by_id,
                  const std::map<std::string, const json*>& aggregates, const std::string& indent) {
  const std::string id = s(c["charge_id"]);
  auto next = superseded_by.find(id);
  std::cout << indent << "charge " << id << "  ("
            << (next == superseded_by.end() ? "current"
                                            : "superseded by " + s(next->second->at("charge_id")))
            << ")\n";
  std::cout << indent << "  customer " << s(c["customer_id"]) << ", metric " << s(c["metric"])
            << ", window " << s(c["window_start"]) << " .. " << s(c["window_end"]) << "\n";
  const json& calc = c["calculation"];
  std::cout << indent << "  price book " << s(c["price_book_id"]) << " version " << s(c["version"])
            << " (effective " << s(c["effective_from"]) << " .. " << s(c["effective_until"])
            << "), model " << s(calc["model"]) << ", rounding " << s(calc["rounding"]) << "\n";
  std::cout << indent << "  quantity " << s(c["quantity"]) << "; cumulative in the period "
            << s(c["cumulative_before"]) << " -> " << s(c["cumulative_after"]) << "\n";
  std::cout << indent << "  " << s(calc["formula"]) << "\n";
  for (const auto& t : calc["tiers"])
    std::cout << indent << "    tier " << t["tier"].get<int>() << ": " << s(t["units"])
              << " units x " << s(t["unit_price"])
              << (s(t["flat_fee"]) != "0" ? " + fee " + s(t["flat_fee"]) : "") << " = "
              << s(t["amount"]) << "\n";
  std::cout << indent << "  amount " << s(c["amount"]) << " " << s(c["currency"]) << "  (trigger "
            << s(c["trigger"]) << ")\n";
  const auto& ids = c["source_event_ids"];
  std::cout << indent << "  source events: " << c["source_event_count"].get<std::uint64_t>();
  for (size_t i = 0; i < ids.size() && i < 5; ++i)
    std::cout << (i == 0 ? " (" : ", ") << s(ids[i]);
  std::cout << (ids.size() > 5 ? ", ...)" : ids.empty() ? "" : ")") << "\n";
  auto agg = aggregates.find(s(c["aggregation_id"]));
  if (agg != aggregates.end())
    std::cout << indent << "  aggregate " << s(c["aggregation_id"]) << ": revision "
              << agg->second->at("revision").get<int>() << " (" << s(agg->second->at("kind"))
              << "), value " << s(agg->second->at("value")) << ", "
              << agg->second->at("event_count").get<std::uint64_t>() << " events\n";
  // The chain of charges this one replaced.
  std::string prev = c["supersedes_charge_id"].is_null() ? "" : s(c["supersedes_charge_id"]);
  while (!prev.empty()) {
    auto it = by_id.find(prev);
    if (it == by_id.end()) {
      std::cout << indent << "  supersedes " << prev << " (not in this output)\n";
      break;
    }
    const json& p = *it->second;
    std::cout << indent << "  supersedes " << prev << ": quantity " << s(p["quantity"])
              << ", version " << s(p["version"]) << ", amount " << s(p["amount"]) << "\n";
    prev = p["supersedes_charge_id"].is_null() ? "" : s(p["supersedes_charge_id"]);
  }
}

} // namespace

int explain_command(const std::vector<std::string>& args) {
  const auto cl = parse_command_line(args, {"out"}, {});
  if (cl.positional.size() != 1)
    throw usage_error("expected exactly one charge or invoice id");
  const std::filesystem::path dir = cl.required("out");
  const std::string id = cl.positional.front();

  const std::vector<json> charges = read_ndjson(dir / "charges.ndjson");
  const std::vector<json> aggregate_rows = read_ndjson(dir / "aggregates.ndjson");
  std::map<std::string, const json*> by_id, superseded_by, aggregates;
  for (const auto& c : charges) {
    by_id[s(c["charge_id"])] = &c;
    if (!c["supersedes_charge_id"].is_null())
      superseded_by[s(c["supersedes_charge_id"])] = &c;
  }
  for (const auto& a : aggregate_rows)
    aggregates[s(a["aggregation_id"])] = &a;

  const auto invoice_path = dir / "invoices" / invoice_file_name(id);
  if (std::filesystem::exists(invoice_path)) {
    std::ifstream in(invoice_path);
    const json inv = json::parse(in);
    std::cout << "invoice " << s(inv["invoice_id"]) << "  (" << s(inv["type"]) << ", "
              << s(inv["status"]) << ")\n";
    if (!inv["corrects_invoice_id"].is_null())
      std::cout << "  corrects " << s(inv["corrects_invoice_id"])
                << ": the amounts below are changes to what that invoice and earlier corrections "
                   "billed\n";
    std::cout << "  customer " << s(inv["customer_id"]) << ", period " << s(inv["period"]["start"])
              << " .. " << s(inv["period"]["end"]) << ", currency " << s(inv["currency"]) << "\n";
    for (const auto& line : inv["line_items"]) {
      std::cout << "  line " << s(line["metric"]) << ": quantity " << s(line["quantity"])
                << ", amount " << s(line["amount"]) << " (" << line["charge_ids"].size()
                << " charges, their sum rounded to the currency)\n";
      for (const auto& cid : line["charge_ids"]) {
        auto it = by_id.find(s(cid));
        if (it == by_id.end())
          continue;
        const json& c = *it->second;
        std::cout << "    " << s(c["window_start"]) << "  " << s(c["price_book_id"]) << "/"
                  << s(c["version"]) << "  quantity " << s(c["quantity"]) << "  amount "
                  << s(c["amount"]) << "  " << s(c["charge_id"]).substr(0, 12) << "\n";
      }
    }
    std::cout << "  subtotal " << s(inv["subtotal"]) << ", credits applied "
              << s(inv["credits_applied"]) << ", total " << s(inv["total"]) << " "
              << s(inv["currency"]) << "\n";
    return exit_ok;
  }

  // A charge id, or a unique prefix of one.
  std::vector<const json*> matches;
  if (id.size() >= 8)
    for (const auto& [cid, c] : by_id)
      if (cid.compare(0, id.size(), id) == 0)
        matches.push_back(c);
  if (matches.size() == 1) {
    print_charge(*matches.front(), superseded_by, by_id, aggregates, "");
    return exit_ok;
  }
  if (matches.size() > 1) {
    std::cerr << "meterflow explain: \"" << id << "\" matches " << matches.size()
              << " charges; give more digits\n";
    return exit_usage;
  }
  std::cerr << "meterflow explain: no charge or invoice \"" << id << "\" in " << dir.string()
            << "\n";
  return exit_check_failed;
}

} // namespace meterflow::runtime
