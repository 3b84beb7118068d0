#include "persistence/store.hpp"

#include <stdexcept>

namespace meterflow::persistence {

void check_status_change(const std::string& current, const status_event& change) {
  const std::string& to = change.status;
  if (to != "draft" && to != "issued" && to != "paid" && to != "void")
    throw std::invalid_argument("invoice status: unknown status \"" + to +
                                "\" (expected issued, paid or void)");
  const bool allowed = (current == "draft" && to == "issued") ||
                       (current == "issued" && (to == "paid" || to == "void"));
  if (!allowed)
    throw std::invalid_argument("invoice status: " + change.invoice_id + " cannot go from " +
                                current + " to " + to);
  if (change.actor.empty())
    throw std::invalid_argument("invoice status: a status change needs an actor");
  if (to == "void" && change.reason.empty())
    throw std::invalid_argument("invoice status: voiding " + change.invoice_id + " needs a reason");
}

} // namespace meterflow::persistence
