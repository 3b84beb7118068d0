#pragma once

// The read and admin endpoints of the HTTP API over the PostgreSQL system of record
// (docs/api.md): usage drafts, invoices (JSON, PDF, lists, status changes), charge
// explanations, price book versions and re-rates. Answers are JSON; every error is
// {"error": "...", "detail": "..."}. Requests run concurrently on the server's threads, each
// on a pooled store connection of its own.

#include "config/config.hpp"
#include "runtime/rerate.hpp"

#include <functional>
#include <string>

namespace httplib {
class Server;
}

namespace meterflow::runtime {

struct store_routes_options {
  const config::configuration* cfg = nullptr;
  std::string store_url; // PostgreSQL
  // Runs a re-rate for POST /v1/rerate. In `meterflow serve` the engine runs it between two
  // batches (it owns the store while it runs); elsewhere (tests) it may call the re-rate directly.
  std::function<rerate_outcome(const rerate_spec&)> rerate;
};

// Registers the routes on `server`. `options.cfg` must outlive the server.
void add_store_routes(httplib::Server& server, const store_routes_options& options);

// The configuration's price books with the versions the store published after them (through
// POST /v1/price-books/{id}/versions), in publication order: the books a re-rate should price
// with. Throws persistence::store_error.
config::configuration with_published_versions(const config::configuration& cfg,
                                              const std::string& store_url);

} // namespace meterflow::runtime
