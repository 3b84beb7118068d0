#include "runtime/http_store_routes.hpp"

#include "actors/invoice_state.hpp"
#include "persistence/json_format.hpp"
#include "persistence/pg_store.hpp"
#include "runtime/invoice_pdf.hpp"
#include "runtime/store_reconciliation.hpp"

#include <httplib.h>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace meterflow::runtime {

namespace {

using json = nlohmann::json;
using persistence::ordered_json;

// A store connection for one request at a time: the record store and the API's own reads.
struct session {
  std::unique_ptr<persistence::record_store> records;
  std::unique_ptr<persistence::pg_record_reader> reader;
};

// Connections are reused across requests (connecting costs more than most reads) and never
// shared by two requests at once; the pool grows to the number of concurrent requests.
class session_pool {
public:
  explicit session_pool(std::string url) : url_(std::move(url)) {}

  // Runs `f(session&)` on an idle session, or a new one. A session whose request failed in the
  // store is dropped rather than reused: its connection may be broken.
  template <class F>
  auto run(F&& f) {
    std::unique_ptr<session> s = take();
    try {
      auto result = f(*s);
      give_back(std::move(s));
      return result;
    } catch (const persistence::store_error&) {
      throw; // the session goes with it
    } catch (...) {
      give_back(std::move(s));
      throw;
    }
  }

private:
  std::unique_ptr<session> take() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        auto s = std::move(idle_.back());
        idle_.pop_back();
        return s;
      }
    }
    auto s = std::make_unique<session>();
    s->records = persistence::make_pg_record_store(url_);
    s->reader = persistence::pg_record_reader::connect(url_);
    return s;
  }
  void give_back(std::unique_ptr<session> s) {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(s));
  }

  std::string url_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<session>> idle_;
};

// An answer other than 2xx: the status and the JSON error body.
struct http_error : std::runtime_error {
  http_error(int status, std::string error, const std::string& detail)
      : std::runtime_error(detail), status(status), error(std::move(error)) {}
  int status;
  std::string error;
};

void answer(httplib::Response& res, int status, const ordered_json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", "application/json");
}

// Runs a handler; turns what it throws into the documented error answers.
template <class F>
httplib::Server::Handler handled(F f) {
  return [f](const httplib::Request& req, httplib::Response& res) {
    try {
      f(req, res);
    } catch (const http_error& e) {
      answer(res, e.status, {{"error", e.error}, {"detail", e.what()}});
    } catch (const persistence::store_error& e) {
      answer(res, 503, {{"error", "store_unavailable"}, {"detail", e.what()}});
    } catch (const std::exception& e) {
      answer(res, 500, {{"error", "internal"}, {"detail", e.what()}});
    }
  };
}

json body_of(const httplib::Request& req) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    throw http_error(400, "bad_json", "the request body must be a JSON object");
  return body;
}

// A string member of the body; `required` ones must be non-empty.
std::optional<std::string> text_field(const json& body, const char* name, bool required) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required)
      throw http_error(400, "missing_field", std::string("body: \"") + name + "\" is required");
    return std::nullopt;
  }
  if (!it->is_string() || (required && it->get<std::string>().empty()))
    throw http_error(400, "bad_field",
                     std::string("body: \"") + name + "\" must be a non-empty string");
  return it->get<std::string>();
}

pricing::period period_param(const std::string& where, const std::string& text) {
  auto p = pricing::parse_period(text);
  if (!p)
    throw http_error(400, "bad_period",
                     where + ": expected a billing period like 2024-01, got \"" + text + "\"");
  return *p;
}

std::size_t count_param(const httplib::Request& req, const char* name, std::size_t fallback,
                        std::size_t min, std::size_t max) {
  if (!req.has_param(name))
    return fallback;
  const std::string text = req.get_param_value(name);
  std::size_t value = 0;
  const bool digits = !text.empty() && text.size() <= 9 &&
                      text.find_first_not_of("0123456789") == std::string::npos;
  if (digits)
    value = std::stoul(text);
  if (!digits || value < min || value > max)
    throw http_error(400, "bad_parameter",
                     std::string("query parameter ") + name + ": expected a whole number from " +
                         std::to_string(min) + " to " + std::to_string(max) + ", got \"" + text +
                         "\"");
  return value;
}

ordered_json period_json(const pricing::period& p) {
  return {{"start", pricing::format_rfc3339(p.start)}, {"end", pricing::format_rfc3339(p.end)}};
}

persistence::invoice_record stored_invoice(session& s, const std::string& id) {
  auto inv = s.records->invoice(id);
  if (!inv)
    throw http_error(404, "not_found", "no invoice \"" + id + "\"");
  inv->status = s.records->current_status(id).value_or(inv->status);
  return std::move(*inv);
}

// --- usage -----------------------------------------------------------------------------------

// The live draft of a customer period: every window's latest aggregate revision, the charges in
// force, and the standard invoice the engine's invoice stage would issue from them now.
ordered_json usage(const config::configuration& cfg, session& s, const std::string& customer,
                   const pricing::period& period) {
  const auto stored = s.reader->period_of(customer, period);
  const auto& [aggregates, charges, unpriced, invoices] = stored;
  if (!cfg.find_customer(customer) && aggregates.empty() && invoices.empty())
    throw http_error(404, "not_found",
                     "no customer \"" + customer +
                         "\" in the configuration and no usage of it in " +
                         pricing::period_id(period));

  // Latest revision per metric and window (the query orders revisions upwards).
  std::map<std::string, std::map<pricing::timestamp, const persistence::aggregate_record*>> latest;
  for (const auto& a : aggregates)
    latest[a.metric][a.window_start] = &a;
  std::map<std::string, std::map<pricing::timestamp, const persistence::charge_record*>> in_force;
  for (const auto& c : charges)
    in_force[c.metric][c.window_start] = &c;

  actors::invoice_state draft(cfg, customer, period);
  ordered_json metrics = ordered_json::array();
  for (const config::meter& m : cfg.meters) {
    ordered_json windows = ordered_json::array(), metric_charges = ordered_json::array();
    std::vector<actors::line_update> lines;
    pricing::decimal charged;
    for (const auto& [start, a] : latest[m.metric]) {
      windows.push_back({{"window_start", pricing::format_rfc3339(a->window_start)},
                         {"window_end", pricing::format_rfc3339(a->window_end)},
                         {"revision", a->revision},
                         {"kind", persistence::to_string(a->kind)},
                         {"is_final", a->is_final},
                         {"quantity", a->value.to_string()},
                         {"event_count", a->event_count}});
      const auto c = in_force[m.metric].find(start);
      if (config::is_additive(m.kind) && a->is_final)
        lines.push_back({m.metric, start, a->value,
                         c == in_force[m.metric].end()
                             ? std::nullopt
                             : std::optional(actors::current_charge_of(*c->second))});
    }
    for (const auto& [start, c] : in_force[m.metric]) {
      metric_charges.push_back(persistence::to_json(*c));
      charged += c->amount();
      if (!config::is_additive(m.kind)) // period-level: one charge, its window the period
        lines.push_back({m.metric, start, c->quantity, actors::current_charge_of(*c)});
    }
    ordered_json unpriced_windows = ordered_json::array();
    for (const auto& u : unpriced)
      if (u.metric == m.metric)
        unpriced_windows.push_back(persistence::to_json(u));
    draft.update(std::move(lines));
    if (windows.empty() && metric_charges.empty() && unpriced_windows.empty())
      continue;
    metrics.push_back({{"metric", m.metric},
                       {"aggregation", config::to_string(m.kind)},
                       {"windows", std::move(windows)},
                       {"charges", std::move(metric_charges)},
                       {"charged", charged.to_string()},
                       {"unpriced_windows", std::move(unpriced_windows)}});
  }

  ordered_json out = {{"customer_id", customer}, {"period", period_json(period)}};
  if (invoices.empty()) {
    out["status"] = "draft";
    out["invoice_id"] = nullptr;
  } else {
    out["status"] = invoices.front().status;
    out["invoice_id"] = invoices.front().invoice_id;
  }
  ordered_json ids = ordered_json::array();
  for (const auto& inv : invoices)
    ids.push_back(inv.invoice_id);
  out["invoice_ids"] = std::move(ids);
  out["metrics"] = std::move(metrics);
  const auto projected = draft.draft();
  out["projected_invoice"] = projected ? persistence::to_json(*projected) : ordered_json(nullptr);
  return out;
}

// The invoice as a PDF, with the charges its lines name and those they replaced (a correction
// line shows them).
std::string invoice_pdf(session& s, const std::string& id) {
  const auto inv = stored_invoice(s, id);
  const std::set<std::string> wanted = charge_ids_of(inv);
  std::vector<persistence::charge_record> charges;
  for (const auto& charge_id : wanted) {
    auto c = s.reader->charge(charge_id);
    if (!c)
      throw http_error(500, "missing_charge",
                       "invoice " + id + " names charge " + charge_id +
                           ", which is not in the store");
    if (c->supersedes_charge_id && !wanted.count(*c->supersedes_charge_id))
      if (auto old = s.reader->charge(*c->supersedes_charge_id))
        charges.push_back(std::move(*old));
    charges.push_back(std::move(*c));
  }
  return render_invoice_pdf(inv, charges);
}

ordered_json invoice_page(session& s, persistence::pg_record_reader::invoice_filter filter) {
  const std::size_t limit = filter.limit;
  ++filter.limit; // one more than asked says whether there is a next page
  auto invoices = s.reader->invoices(filter);
  const bool more = invoices.size() > limit;
  if (more)
    invoices.pop_back();
  ordered_json list = ordered_json::array();
  for (const auto& inv : invoices)
    list.push_back(persistence::to_json(inv));
  return {{"invoices", std::move(list)},
          {"limit", limit},
          {"offset", filter.offset},
          {"next_offset", more ? ordered_json(filter.offset + limit) : ordered_json(nullptr)}};
}

ordered_json change_status(session& s, const persistence::status_event& change) {
  stored_invoice(s, change.invoice_id); // an unknown invoice is 404, not a refused change
  try {
    s.records->append_status(change);
  } catch (const std::invalid_argument& e) {
    throw http_error(409, "transition_refused", e.what());
  }
  return persistence::to_json(stored_invoice(s, change.invoice_id));
}

// --- charges ---------------------------------------------------------------------------------

ordered_json charge_explanation(session& s, const std::string& id) {
  const auto charge = s.reader->charge(id);
  if (!charge)
    throw http_error(404, "not_found", "no charge \"" + id + "\"");
  ordered_json out = persistence::to_json(*charge);
  const auto next = s.reader->superseding(id);
  out["status"] = next ? "superseded" : "current";
  out["superseded_by"] = next ? ordered_json(next->charge_id) : ordered_json(nullptr);
  ordered_json chain = ordered_json::array();
  for (auto prev = charge->supersedes_charge_id; prev;) {
    const auto p = s.reader->charge(*prev);
    if (!p)
      break;
    chain.push_back({{"charge_id", p->charge_id},
                     {"price_book_id", p->calculation.price_book_id},
                     {"version", p->calculation.version},
                     {"quantity", p->quantity.to_string()},
                     {"amount", persistence::to_json(*p)["amount"]},
                     {"trigger", persistence::to_string(p->trigger)}});
    prev = p->supersedes_charge_id;
  }
  out["supersedes_chain"] = std::move(chain);
  out["aggregate"] = nullptr;
  for (const auto& a :
       s.records->aggregate_revisions(charge->customer_id, charge->metric, charge->window_start))
    if (a.aggregation_id == charge->aggregation_id)
      out["aggregate"] = persistence::to_json(a);
  return out;
}

// --- price books -----------------------------------------------------------------------------

// A published version's definition as stored: canonical (sorted keys) compact JSON.
std::string canonical(const json& j) {
  return j.dump();
}

pricing::price_book book_with_published(const config::configuration& cfg,
                                        const pricing::price_book* configured,
                                        const std::vector<persistence::published_version>& versions,
                                        const std::string& id) {
  pricing::price_book book =
      configured ? *configured
                 : pricing::price_book{id, versions.empty() ? "" : versions.front().currency, {}};
  for (const auto& v : versions)
    book.versions.push_back(config::parse_price_book_version(v.definition_json, cfg, book));
  return book;
}

ordered_json price_books(const config::configuration& cfg, session& s) {
  std::set<std::string> ids;
  for (const auto& b : cfg.price_books)
    ids.insert(b.id);
  for (const auto& id : s.reader->price_book_ids())
    ids.insert(id);
  ordered_json books = ordered_json::array();
  for (const auto& id : ids) {
    const pricing::price_book* configured = cfg.find_price_book(id);
    const auto published = s.records->versions(id);
    ordered_json versions = ordered_json::array();
    if (configured)
      for (const auto& v : configured->versions)
        versions.push_back(
            {{"version", v.version},
             {"source", "configuration"},
             {"effective_from", pricing::format_rfc3339(v.effective_from)},
             {"effective_until", v.effective_until
                                     ? ordered_json(pricing::format_rfc3339(*v.effective_until))
                                     : ordered_json(nullptr)}});
    for (const auto& v : published) {
      ordered_json entry = {{"version", v.version}, {"source", "store"}};
      const auto definition = ordered_json::parse(v.definition_json);
      entry["effective_from"] = definition.value("effective_from", ordered_json(nullptr));
      entry["effective_until"] = definition.value("effective_until", ordered_json(nullptr));
      entry["definition"] = definition;
      versions.push_back(std::move(entry));
    }
    books.push_back({{"id", id},
                     {"currency", configured ? configured->currency : published.front().currency},
                     {"versions", std::move(versions)}});
  }
  return {{"price_books", std::move(books)}};
}

// Publishes a version: 201 new, 200 the same definition again, 409 a change or a currency that
// is not the book's, 400 a definition the configuration's parser refuses.
int publish_version(const config::configuration& cfg, session& s, const std::string& id, json body,
                    ordered_json& out) {
  const pricing::price_book* configured = cfg.find_price_book(id);
  const auto published = s.records->versions(id);
  if (!configured && published.empty())
    throw http_error(404, "not_found", "no price book \"" + id + "\"");
  const std::string currency = configured ? configured->currency : published.front().currency;
  if (const auto c = text_field(body, "currency", false); c && *c != currency)
    throw http_error(409, "currency_mismatch",
                     "price book " + id + " is in " + currency + ", not " + *c);
  body.erase("currency");
  const std::string name = body.value("version", json()).is_string()
                               ? body["version"].get<std::string>()
                               : std::string();
  out = {{"price_book_id", id}, {"currency", currency}, {"version", name}};
  for (const auto& v : published)
    if (v.version == name) {
      if (v.definition_json != canonical(body))
        throw http_error(409, "version_published",
                         "price book " + id + " version " + name +
                             " is published with a different definition; publish a new "
                             "version instead");
      out["published"] = false;
      return 200;
    }
  if (configured)
    for (const auto& v : configured->versions)
      if (v.version == name)
        throw http_error(409, "version_published",
                         "price book " + id + " version " + name +
                             " is published in the configuration; publish a new version instead");
  try {
    config::parse_price_book_version(body.dump(), cfg,
                                     book_with_published(cfg, configured, published, id));
  } catch (const config::config_error& e) {
    throw http_error(400, "invalid_version", "price book " + id + ": " + e.what());
  }
  try {
    s.records->publish({id, currency, name, canonical(body)});
  } catch (const std::invalid_argument& e) {
    throw http_error(409, "version_published", e.what()); // published meanwhile
  }
  out["published"] = true;
  return 201;
}

// --- re-rate ---------------------------------------------------------------------------------

std::vector<std::string> string_list(const json& body, const char* name) {
  std::vector<std::string> out;
  const auto it = body.find(name);
  if (it == body.end() || it->is_null())
    return out;
  if (!it->is_array())
    throw http_error(400, "bad_field",
                     std::string("body: \"") + name + "\" must be an array of strings");
  for (const auto& item : *it) {
    if (!item.is_string() || item.get<std::string>().empty())
      throw http_error(400, "bad_field",
                       std::string("body: \"") + name + "\" must be an array of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

ordered_json rerate_answer(const rerate_spec& spec, const rerate_outcome& o) {
  json comparisons = json::array();
  for (const auto& r : o.comparisons) {
    comparisons.push_back(to_json(r));
    comparisons.back()["currency"] = r.currency;
  }
  ordered_json total_list = ordered_json::array();
  for (const auto& [currency, t] : o.totals)
    total_list.push_back({{"currency", currency},
                          {"before", t.first.to_string()},
                          {"after", t.second.to_string()},
                          {"delta", (t.second - t.first).to_string()}});
  ordered_json charges = ordered_json::array(), invoices = ordered_json::array();
  for (const auto& c : o.superseding_charges)
    charges.push_back(c.charge_id);
  for (const auto& i : o.correction_invoices)
    invoices.push_back(persistence::to_json(i));
  return {{"dry_run", spec.dry_run},
          {"recorded", o.recorded},
          {"rerate_run_id", o.recorded ? ordered_json(o.rerate_run_id) : ordered_json(nullptr)},
          {"comparisons", std::move(comparisons)},
          {"totals", std::move(total_list)},
          {"superseding_charge_ids", std::move(charges)},
          {"correction_invoices", std::move(invoices)}};
}

rerate_spec rerate_spec_of(const json& body, const std::string& store_url) {
  rerate_spec spec;
  spec.store_url = store_url;
  const std::string from = *text_field(body, "from", true);
  spec.from = period_param("body: \"from\"", from);
  spec.to = period_param("body: \"to\"", text_field(body, "to", false).value_or(from));
  spec.customers = string_list(body, "customers");
  spec.metrics = string_list(body, "metrics");
  spec.reason = *text_field(body, "reason", true);
  if (const auto d = body.find("dry_run"); d != body.end() && !d->is_null()) {
    if (!d->is_boolean())
      throw http_error(400, "bad_field", "body: \"dry_run\" must be true or false");
    spec.dry_run = d->get<bool>();
  }
  return spec;
}

// SEMANTICS §7 step 6: the re-rated periods reconciled. The re-rate is recorded already, so a
// store that cannot be read now is reported per period rather than failing the request.
ordered_json reconcile_periods(const config::configuration& cfg, const std::string& store_url,
                               const rerate_spec& spec) {
  ordered_json out = ordered_json::array();
  for (pricing::period p = spec.from; p.start <= spec.to.start; p = pricing::next_period(p)) {
    ordered_json entry = {{"period", pricing::period_id(p)}};
    try {
      entry["ok"] = reconcile_store(store_url, &cfg, {p.start, p.end, pricing::period_id(p)}).ok;
    } catch (const persistence::store_error& e) {
      entry["ok"] = nullptr;
      entry["detail"] = std::string("not reconciled: ") + e.what();
    }
    out.push_back(std::move(entry));
  }
  return out;
}

} // namespace

config::configuration with_published_versions(const config::configuration& cfg,
                                              const std::string& store_url) {
  config::configuration out = cfg;
  const auto records = persistence::make_pg_record_store(store_url);
  for (auto& book : out.price_books)
    book = book_with_published(cfg, &book, records->versions(book.id), book.id);
  return out;
}

void add_store_routes(httplib::Server& server, const store_routes_options& options) {
  if (!options.cfg)
    throw std::invalid_argument("add_store_routes: no configuration");
  const config::configuration& cfg = *options.cfg;
  auto pool = std::make_shared<session_pool>(options.store_url);
  const std::string store_url = options.store_url;

  server.Get(R"(/v1/customers/([^/]+)/usage)",
             handled([&cfg, pool](const httplib::Request& req, httplib::Response& res) {
               if (!req.has_param("period"))
                 throw http_error(400, "missing_parameter",
                                  "query parameter period is required (a billing period like "
                                  "2024-01)");
               const auto period =
                   period_param("query parameter period", req.get_param_value("period"));
               answer(res, 200,
                      pool->run([&](session& s) { return usage(cfg, s, req.matches[1], period); }));
             }));

  server.Get(R"(/v1/invoices/([^/]+)\.pdf)",
             handled([pool](const httplib::Request& req, httplib::Response& res) {
               res.status = 200;
               res.set_content(
                   pool->run([&](session& s) { return invoice_pdf(s, req.matches[1]); }),
                   "application/pdf");
             }));

  server.Get(R"(/v1/invoices/([^/]+))",
             handled([pool](const httplib::Request& req, httplib::Response& res) {
               answer(res, 200, pool->run([&](session& s) {
                 return persistence::to_json(stored_invoice(s, req.matches[1]));
               }));
             }));

  server.Get("/v1/invoices", handled([pool](const httplib::Request& req, httplib::Response& res) {
               persistence::pg_record_reader::invoice_filter filter;
               if (req.has_param("customer") && !req.get_param_value("customer").empty())
                 filter.customer_id = req.get_param_value("customer");
               if (req.has_param("period"))
                 filter.period =
                     period_param("query parameter period", req.get_param_value("period"));
               filter.limit = count_param(req, "limit", 50, 1, 500);
               filter.offset = count_param(req, "offset", 0, 0, 999'999'999);
               answer(res, 200, pool->run([&](session& s) { return invoice_page(s, filter); }));
             }));

  server.Post(R"(/v1/invoices/([^/]+)/status)",
              handled([pool](const httplib::Request& req, httplib::Response& res) {
                const json body = body_of(req);
                const persistence::status_event change{
                    req.matches[1], *text_field(body, "status", true),
                    *text_field(body, "actor", true),
                    text_field(body, "reason", false).value_or("")};
                answer(res, 200, pool->run([&](session& s) { return change_status(s, change); }));
              }));

  server.Get(R"(/v1/charges/([^/]+))",
             handled([pool](const httplib::Request& req, httplib::Response& res) {
               answer(res, 200,
                      pool->run([&](session& s) { return charge_explanation(s, req.matches[1]); }));
             }));

  server.Get("/v1/price-books",
             handled([&cfg, pool](const httplib::Request&, httplib::Response& res) {
               answer(res, 200, pool->run([&](session& s) { return price_books(cfg, s); }));
             }));

  server.Post(R"(/v1/price-books/([^/]+)/versions)",
              handled([&cfg, pool](const httplib::Request& req, httplib::Response& res) {
                const json body = body_of(req);
                ordered_json out;
                const int status = pool->run(
                    [&](session& s) { return publish_version(cfg, s, req.matches[1], body, out); });
                answer(res, status, out);
              }));

  // One re-rate at a time: two at once would compute from the same charges in force, and the
  // store would refuse the second.
  server.Post("/v1/rerate", handled([&cfg, store_url, run = options.rerate,
                                     running = std::make_shared<std::mutex>()](
                                        const httplib::Request& req, httplib::Response& res) {
                if (!run)
                  throw http_error(501, "not_available", "this server does not run re-rates");
                const rerate_spec spec = rerate_spec_of(body_of(req), store_url);
                rerate_outcome outcome;
                try {
                  std::lock_guard lock(*running);
                  outcome = run(spec);
                } catch (const std::invalid_argument& e) {
                  throw http_error(400, "bad_scope", e.what());
                }
                if (!spec.dry_run && !outcome.recorded)
                  throw http_error(409, "rerate_refused", outcome.refused);
                ordered_json out = rerate_answer(spec, outcome);
                out["reconciliation"] = outcome.recorded ? reconcile_periods(cfg, store_url, spec)
                                                         : ordered_json::array();
                answer(res, outcome.recorded ? 201 : 200, out);
              }));
}

} // namespace meterflow::runtime
