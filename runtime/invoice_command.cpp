// `meterflow invoice`: an invoice's lifecycle in the system of record (PostgreSQL).

#include "persistence/json_format.hpp"
#include "persistence/pg_store.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"

#include <iostream>
#include <stdexcept>

namespace meterflow::runtime {

const char* const invoice_usage = R"(Usage: meterflow invoice show --store URL INVOICE_ID
       meterflow invoice status --store URL --to STATUS --actor NAME [--reason TEXT] INVOICE_ID
       meterflow invoice pdf (--out DIR | --store URL) [-o FILE] INVOICE_ID

show     prints the invoice as stored (its issued content never changes) with its current
         status, as JSON
status   appends a status change: draft -> issued -> paid | void. Every change names who made
         it (--actor); voiding needs a --reason. Issuing books the invoice's total in the
         ledger; voiding an issued invoice books a reversing entry.
pdf      renders the invoice as a PDF document (header, one line per metric with its price
         explanation, credits, totals; a correction names the invoice it corrects) from a
         run's output directory or from the store, and prints the path written

Options:
  --store URL     the PostgreSQL system of record (postgresql:// URL or libpq keyword string)
  --to STATUS     issued, paid or void
  --actor NAME    who makes the change (a person or a system)
  --reason TEXT   why (required for void)
  --out DIR       pdf: read the output directory of `meterflow run` instead of a store
  -o, --output FILE
                  pdf: where to write the PDF (default INVOICE_ID.pdf in the current directory)
  --help          show this text

Exit status: 0 done, 1 no such invoice or a change the lifecycle refuses, 2 bad arguments or
an unreachable store. pdf: 2 also for an unknown invoice, 1 when a charge its lines name is
missing from the source.
)";

int invoice_command(const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "pdf")
    return invoice_pdf_command({args.begin() + 1, args.end()});
  if (args.empty() || (args[0] != "show" && args[0] != "status"))
    throw usage_error("expected `show`, `status` or `pdf`");
  const bool change = args[0] == "status";
  const auto cl =
      parse_command_line({args.begin() + 1, args.end()},
                         change ? std::set<std::string>{"store", "to", "actor", "reason"}
                                : std::set<std::string>{"store"},
                         {});
  if (cl.positional.size() != 1)
    throw usage_error("expected exactly one invoice id");
  const std::string& id = cl.positional.front();
  std::unique_ptr<persistence::record_store> store;
  try {
    store = persistence::make_pg_record_store(cl.required("store"));
  } catch (const persistence::store_error& e) {
    throw usage_error(std::string("--store: ") + e.what());
  }
  try {
    if (change)
      store->append_status(
          {id, cl.required("to"), cl.required("actor"), cl.optional("reason").value_or("")});
    const auto invoice = store->invoice(id);
    if (!invoice) {
      std::cerr << "meterflow invoice: no invoice \"" << id << "\"\n";
      return exit_check_failed;
    }
    auto j = persistence::to_json(*invoice);
    j["status"] = store->current_status(id).value_or(invoice->status);
    std::cout << j.dump(2) << "\n";
    return exit_ok;
  } catch (const std::invalid_argument& e) {
    std::cerr << "meterflow invoice: " << e.what() << "\n";
    return exit_check_failed;
  }
}

} // namespace meterflow::runtime
