// `meterflow quote`: the period price P(Q) of a quantity under the version in force at a time.

#include "config/config.hpp"
#include "pricing/rating.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"

#include <iostream>
#include <nlohmann/json.hpp>

namespace meterflow::runtime {

const char* const quote_usage =
    R"(Usage: meterflow quote --config CONFIG --customer C --metric M --quantity Q --at TIME
                       [--format json|text]

Prints, as JSON, the period price P(Q) of quantity Q of metric M for customer C under the
price book version that applies to the window containing TIME (the last-published version
whose interval contains the window start), with the tier breakdown and the amount exact
(12 fractional digits) and rounded to the currency.

Options:
  --config CONFIG   configuration file (JSON, see docs/configuration.md)
  --customer C      customer id (its price book, else the default price book)
  --metric M        a metric defined in the configuration's meters
  --quantity Q      period quantity, an exact decimal such as 1234 or 10.5
  --at TIME         RFC 3339 time, e.g. 2024-01-20T00:00:00Z
  --format F        json (default, the full explanation) or text (one line)
  --help            show this text

Exit status: 0 priced, 1 no price applies (unpriced), 2 bad arguments or configuration.
)";

namespace {

nlohmann::ordered_json tier_lines_json(const std::vector<pricing::tier_line>& lines) {
  auto out = nlohmann::ordered_json::array();
  for (const auto& l : lines)
    out.push_back({{"tier", l.tier},
                   {"units", l.units.to_string()},
                   {"unit_price", l.unit_price.to_string()},
                   {"flat_fee", l.flat_fee.to_string()},
                   {"amount", l.amount.to_string()}});
  return out;
}

} // namespace

int quote_command(const std::vector<std::string>& args) {
  const auto cl =
      parse_command_line(args, {"config", "customer", "metric", "quantity", "at", "format"}, {});
  const std::string format = cl.optional("format").value_or("json");
  if (format != "json" && format != "text")
    throw usage_error("--format: expected json or text, got \"" + format + "\"");
  if (!cl.positional.empty())
    throw usage_error("unexpected argument \"" + cl.positional.front() + "\"");
  const config::configuration cfg = config::load_file(cl.required("config"));
  const std::string& customer = cl.required("customer");
  const std::string& metric = cl.required("metric");
  auto quantity = pricing::decimal::parse(cl.required("quantity"));
  if (!quantity)
    throw usage_error("--quantity: " + quantity.error_value().message);
  auto at = pricing::parse_rfc3339(cl.required("at"));
  if (!at)
    throw usage_error("--at: " + at.error_value().message);
  if (!cfg.find_meter(metric))
    throw usage_error("--metric: no meter defines metric \"" + metric + "\"");

  const pricing::timestamp window = pricing::window_start(*at, cfg.window_size);
  const pricing::price_book* book = cfg.price_book_for(customer);
  const pricing::price_lookup found = pricing::lookup_price(book, metric, window);
  if (found.reason != pricing::unpriced_reason::none) {
    nlohmann::ordered_json out = {{"customer_id", customer},
                                  {"metric", metric},
                                  {"quantity", quantity->to_string()},
                                  {"window_start", pricing::format_rfc3339(window)},
                                  {"price_book_id", book ? nlohmann::json(book->id) : nullptr},
                                  {"unpriced", pricing::to_string(found.reason)}};
    std::cout << out.dump(2) << "\n";
    std::cerr << "meterflow quote: no price applies (" << pricing::to_string(found.reason) << ")\n";
    return exit_check_failed;
  }
  const auto& version = *found.version;
  const pricing::price_breakdown p =
      pricing::price(*found.model, *quantity, version.rounding).value();
  const std::string formula = std::string(pricing::to_string(found.model->kind)) + " " + book->id +
                              "/" + version.version + ": P(" + quantity->to_string() +
                              ") = " + p.amount.to_string();

  nlohmann::ordered_json out = {
      {"customer_id", customer},
      {"metric", metric},
      {"quantity", quantity->to_string()},
      {"at", pricing::format_rfc3339(*at)},
      {"window_start", pricing::format_rfc3339(window)},
      {"price_book_id", book->id},
      {"currency", book->currency},
      {"version", version.version},
      {"effective_from", pricing::format_rfc3339(version.effective_from)},
      {"effective_until", version.effective_until
                              ? nlohmann::json(pricing::format_rfc3339(*version.effective_until))
                              : nlohmann::json(nullptr)},
      {"rounding", pricing::to_string(version.rounding)},
      {"model", pricing::to_string(found.model->kind)},
      {"free_units", found.model->free_units.to_string()},
      {"billable_quantity", p.billable.to_string()},
      {"tiers", tier_lines_json(p.tiers)},
      {"formula", formula},
      {"amount_exact", p.amount.to_fixed(pricing::decimal::scale, version.rounding)},
      {"amount", pricing::format_money(p.amount, book->currency, version.rounding)}};
  if (found.model->kind == pricing::model_kind::package)
    out["packages"] = p.packages.to_string();
  if (format == "text")
    std::cout << customer << " " << metric << " " << quantity->to_string() << " at "
              << pricing::format_rfc3339(*at) << ": " << book->currency << " "
              << out["amount"].get<std::string>() << "  (" << formula << ")\n";
  else
    std::cout << out.dump(2) << "\n";
  return exit_ok;
}

} // namespace meterflow::runtime
