// `meterflow invoice pdf`: an invoice of a run's output directory or of the PostgreSQL store,
// with the charges behind its lines, rendered as a PDF file.

#include "persistence/json_format.hpp"
#include "persistence/pg_store.hpp"
#include "pricing/result.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"
#include "runtime/invoice_pdf.hpp"
#include "runtime/run_sink.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <stdexcept>

namespace meterflow::runtime {

namespace {

namespace fs = std::filesystem;
using persistence::charge_record;
using persistence::invoice_record;

// The invoice's charges and the charges they supersede (a correction names what it replaced).
std::vector<charge_record> charges_behind(const invoice_record& invoice,
                                          std::vector<charge_record>&& all) {
  const std::set<std::string> wanted = charge_ids_of(invoice);
  std::set<std::string> replaced;
  for (const auto& c : all)
    if (wanted.count(c.charge_id) && c.supersedes_charge_id)
      replaced.insert(*c.supersedes_charge_id);
  std::vector<charge_record> out;
  for (auto& c : all)
    if (wanted.count(c.charge_id) || replaced.count(c.charge_id))
      out.push_back(std::move(c));
  return out;
}

struct invoice_with_charges {
  invoice_record invoice;
  std::vector<charge_record> charges; // those its lines name
};

std::optional<invoice_with_charges> from_run_output(const fs::path& dir, const std::string& id) {
  if (!fs::is_directory(dir / "invoices"))
    throw usage_error("--out: " + dir.string() +
                      " is not the output directory of `meterflow run` (it has no invoices/)");
  const fs::path invoice_path = dir / "invoices" / invoice_file_name(id);
  std::ifstream invoice_file(invoice_path);
  if (!invoice_file)
    return std::nullopt;
  // A malformed file is an unreadable source (std::runtime_error), not a failed check.
  invoice_with_charges out;
  try {
    out.invoice = persistence::invoice_from_json(nlohmann::json::parse(invoice_file));
  } catch (const std::exception& e) {
    throw std::runtime_error(invoice_path.string() + ": " + e.what());
  }
  // charges.ndjson holds every charge of the run; keep the invoice's.
  std::vector<charge_record> all;
  const fs::path charges_path = dir / "charges.ndjson";
  std::ifstream charges_file(charges_path);
  if (!charges_file)
    throw std::runtime_error("cannot read " + charges_path.string());
  std::string line;
  for (std::uint64_t number = 1; std::getline(charges_file, line); ++number) {
    if (line.empty())
      continue;
    try {
      all.push_back(persistence::charge_from_json(nlohmann::json::parse(line)));
    } catch (const std::exception& e) {
      throw std::runtime_error(charges_path.string() + " line " + std::to_string(number) + ": " +
                               e.what());
    }
  }
  out.charges = charges_behind(out.invoice, std::move(all));
  return out;
}

std::optional<invoice_with_charges> from_store(const std::string& url, const std::string& id) {
  std::unique_ptr<persistence::record_store> store;
  try {
    store = persistence::make_pg_record_store(url);
  } catch (const persistence::store_error& e) {
    throw usage_error(std::string("--store: ") + e.what());
  }
  auto invoice = store->invoice(id);
  if (!invoice)
    return std::nullopt;
  invoice->status = store->current_status(id).value_or(invoice->status);
  invoice_with_charges out{std::move(*invoice), {}};
  // The store has no lookup by charge id: its charges are read once and the invoice's kept.
  out.charges = charges_behind(out.invoice, store->charges());
  return out;
}

} // namespace

int invoice_pdf_command(const std::vector<std::string>& args) {
  // parse_command_line knows long options only.
  std::vector<std::string> long_args = args;
  std::replace(long_args.begin(), long_args.end(), std::string("-o"), std::string("--output"));
  const auto cl = parse_command_line(long_args, {"out", "store", "output"}, {});
  if (cl.positional.size() != 1)
    throw usage_error("expected exactly one invoice id");
  const auto out_dir = cl.optional("out");
  const auto store_url = cl.optional("store");
  if (out_dir.has_value() == store_url.has_value())
    throw usage_error("pdf reads a run's output (--out DIR) or the store (--store URL): give one");
  const std::string& id = cl.positional.front();

  std::string rendered;
  try {
    const auto found = out_dir ? from_run_output(*out_dir, id) : from_store(*store_url, id);
    if (!found) {
      std::cerr << "meterflow invoice pdf: no invoice \"" << id << "\" in "
                << (out_dir ? *out_dir : std::string("the store")) << "\n";
      return exit_usage;
    }
    rendered = render_invoice_pdf(found->invoice, found->charges);
  } catch (const std::invalid_argument& e) {
    std::cerr << "meterflow invoice pdf: " << e.what() << "\n";
    return exit_check_failed;
  } catch (const pricing::bad_result_access&) {
    throw;                                // main_entry's exit status (3 for an amount beyond 10^26)
  } catch (const std::runtime_error& e) { // an unreadable source or store, libharu failed
    std::cerr << "meterflow invoice pdf: " << e.what() << "\n";
    return exit_usage;
  }

  const fs::path file = cl.optional("output").value_or(
      fs::path(invoice_file_name(id)).replace_extension(".pdf").string());
  std::ofstream pdf(file, std::ios::binary | std::ios::trunc);
  pdf.write(rendered.data(), static_cast<std::streamsize>(rendered.size()));
  pdf.close();
  if (!pdf) {
    std::cerr << "meterflow invoice pdf: cannot write " << file.string() << "\n";
    return exit_usage;
  }
  std::cout << file.string() << "\n";
  return exit_ok;
}

} // namespace meterflow::runtime
