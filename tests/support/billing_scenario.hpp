#pragma once

// Random billing scenarios for the engine tests, and the reference they are checked against.
//
// A scenario is a set of usage events (several customers and price books; count, sum, max,
// unique_count and latest meters; a mid-month price change, a later price version over part
// of a month, month boundaries, windows before any price applies) plus duplicates, conflicting
// copies and invalid lines. An arrival order turns them into NDJSON lines: mostly in time order,
// some late, some very late (days, across months), or fully shuffled.
//
// The reference prices the complete deduplicated event set (the first valid line of each
// (customer_id, event_id) key stands) directly with pricing/ (SEMANTICS §5.3, §6, §11): per
// customer, period and metric the rounded line amount, and per customer and period the total
// after credits. Whatever the arrival order, the engine's invoices (standard + corrections)
// must add up to it (SEMANTICS §7, key invariant).

#include "config/config.hpp"
#include "pricing/rating.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace meterflow::test {

using pricing::decimal;
using pricing::timestamp;

inline timestamp at(const char* rfc3339) {
  return pricing::parse_rfc3339(rfc3339).value();
}
inline decimal dec(const std::string& text) {
  return decimal::parse(text).value();
}

struct scenario_knobs {
  std::string allowed_lateness = "1h";
  std::string max_out_of_orderness = "1m";
  std::string correction_interval = "1d";
};

inline std::string scenario_config(const scenario_knobs& k) {
  return R"({"window":{"size":"1h","allowed_lateness":")" + k.allowed_lateness +
         R"("},"corrections":{"interval":")" + k.correction_interval +
         R"("},"watermark":{"max_out_of_orderness":")" + k.max_out_of_orderness + R"("},
  "meters":[
    {"metric":"api_calls","event_type":"api_call","aggregation":"count"},
    {"metric":"gb_stored","event_type":"storage","aggregation":"sum"},
    {"metric":"peak_gb","event_type":"storage","aggregation":"max"},
    {"metric":"active_users","event_type":"login","aggregation":"unique_count","field":"user"},
    {"metric":"seats","event_type":"seat_count","aggregation":"latest"}],
  "price_books":[
    {"id":"pb_flat","currency":"USD","versions":[
      {"version":"v1","effective_from":"2024-01-01T00:00:00Z","effective_until":"2024-01-15T00:00:00Z",
       "prices":{"api_calls":{"model":"flat","unit_price":"0.013"},
                 "gb_stored":{"model":"flat","unit_price":"0.0456"},
                 "peak_gb":{"model":"flat","unit_price":"0.5"},
                 "active_users":{"model":"flat","unit_price":"1.25"},
                 "seats":{"model":"flat","unit_price":"3"}}},
      {"version":"v2","effective_from":"2024-01-15T00:00:00Z","effective_until":null,"rounding":"half_up",
       "prices":{"api_calls":{"model":"flat","unit_price":"0.011"},
                 "gb_stored":{"model":"flat","unit_price":"0.0449"},
                 "peak_gb":{"model":"flat","unit_price":"0.45"},
                 "active_users":{"model":"flat","unit_price":"1.2"},
                 "seats":{"model":"flat","unit_price":"2.75"}}}]},
    {"id":"pb_tiered","currency":"USD","versions":[
      {"version":"v1","effective_from":"2024-01-01T00:00:00Z","effective_until":"2024-01-15T00:00:00Z",
       "prices":{"api_calls":{"model":"tiered","tiers":[{"up_to":"5","unit_price":"0.105"},
                   {"up_to":"15","unit_price":"0.085","flat_fee":"0.25"},{"up_to":null,"unit_price":"0.0625"}]},
                 "gb_stored":{"model":"tiered","tiers":[{"up_to":"100","unit_price":"0.05"},
                   {"up_to":null,"unit_price":"0.03"}]},
                 "peak_gb":{"model":"volume","tiers":[{"up_to":"10","unit_price":"0.2"},
                   {"up_to":null,"unit_price":"0.15"}]},
                 "active_users":{"model":"package","package_size":"3","package_price":"2.5"},
                 "seats":{"model":"flat","unit_price":"1"}}},
      {"version":"v2","effective_from":"2024-01-15T00:00:00Z","effective_until":null,"rounding":"half_up",
       "prices":{"api_calls":{"model":"tiered","tiers":[{"up_to":"8","unit_price":"0.0975"},
                   {"up_to":null,"unit_price":"0.0575","flat_fee":"1"}]},
                 "gb_stored":{"model":"tiered","tiers":[{"up_to":"50","unit_price":"0.055"},
                   {"up_to":null,"unit_price":"0.025"}]},
                 "peak_gb":{"model":"volume","tiers":[{"up_to":"20","unit_price":"0.3"},
                   {"up_to":null,"unit_price":"0.1"}]},
                 "active_users":{"model":"package","package_size":"2","package_price":"1.75"},
                 "seats":{"model":"flat","unit_price":"1.1"}}},
      {"version":"v3","effective_from":"2024-02-10T00:00:00Z","effective_until":"2024-02-20T00:00:00Z",
       "prices":{"api_calls":{"model":"tiered","tiers":[{"up_to":"3","unit_price":"0.2"},
                   {"up_to":null,"unit_price":"0.01"}]},
                 "gb_stored":{"model":"flat","unit_price":"0.01"}}}]},
    {"id":"pb_volume","currency":"EUR","versions":[
      {"version":"v1","effective_from":"2024-01-01T00:00:00Z","effective_until":"2024-01-15T00:00:00Z",
       "prices":{"api_calls":{"model":"volume","tiers":[{"up_to":"10","unit_price":"0.12"},
                   {"up_to":"30","unit_price":"0.09","flat_fee":"0.5"},{"up_to":null,"unit_price":"0.07"}]},
                 "gb_stored":{"model":"volume","tiers":[{"up_to":"100","unit_price":"0.04"},
                   {"up_to":null,"unit_price":"0.02"}]},
                 "seats":{"model":"flat","unit_price":"0.5"}}},
      {"version":"v2","effective_from":"2024-01-15T00:00:00Z","effective_until":null,
       "prices":{"api_calls":{"model":"volume","tiers":[{"up_to":"10","unit_price":"0.11"},
                   {"up_to":null,"unit_price":"0.06"}]},
                 "gb_stored":{"model":"volume","tiers":[{"up_to":"60","unit_price":"0.045"},
                   {"up_to":null,"unit_price":"0.015"}]},
                 "seats":{"model":"flat","unit_price":"0.6"}}}]},
    {"id":"pb_jpy","currency":"JPY","versions":[
      {"version":"v1","effective_from":"2024-01-01T00:00:00Z","effective_until":null,"rounding":"half_up",
       "prices":{"api_calls":{"model":"package","package_size":"10","package_price":"7"},
                 "gb_stored":{"model":"flat","unit_price":"1.5"},
                 "peak_gb":{"model":"flat","unit_price":"3"},
                 "active_users":{"model":"flat","unit_price":"11"},
                 "seats":{"model":"flat","unit_price":"13"}}}]}],
  "default_price_book":"pb_flat",
  "customers":[
    {"customer_id":"c0","price_book":"pb_flat","credits":[
      {"period":"2024-01","amount":"0.50","reason":"goodwill"},
      {"period":"2024-02","amount":"0.30","reason":"outage"},
      {"period":"2024-02","amount":"0.20","reason":"outage, part 2"}]},
    {"customer_id":"c1","price_book":"pb_tiered"},
    {"customer_id":"c2","price_book":"pb_volume"},
    {"customer_id":"c3","price_book":"pb_jpy"},
    {"customer_id":"c4","price_book":"pb_tiered",
     "credits":[{"period":"2024-02","amount":"2.00","reason":"promo"}]},
    {"customer_id":"c5","price_book":"pb_volume",
     "credits":[{"period":"2024-01","amount":"1000.00","reason":"larger than the bill"}]}]})";
}

// One usage event as the generator knows it; `user` is the login's metadata field.
struct usage_event {
  std::string customer_id;
  std::string event_id;
  std::string event_type;
  timestamp time = 0;
  decimal value = decimal::from_int(1);
  std::string user;
};

// One input line; `event` is empty for an invalid line (which claims no id).
struct input_line {
  std::string text;
  std::optional<usage_event> event;
};

// "2024-01-10T10:00:00Z", or the same instant as local time at +01:00.
inline std::string time_text(timestamp t, bool with_offset) {
  if (!with_offset)
    return pricing::format_rfc3339(t);
  std::string s = pricing::format_rfc3339(t + 3600 * pricing::microseconds_per_second);
  s.pop_back();
  return s + "+01:00";
}

// `spelling` varies how an identical payload is written (duplicates must still match).
inline std::string to_line(const usage_event& e, int spelling = 0) {
  std::string line = R"({"event_id":")" + e.event_id + R"(","event_time":")" +
                     time_text(e.time, spelling % 2 == 1) + R"(","customer_id":")" + e.customer_id +
                     R"(","event_type":")" + e.event_type + "\"";
  if (e.event_type == "storage" || e.event_type == "seat_count") {
    const std::string v = e.value.to_string();
    // The same number as a JSON number with a trailing zero ("12.50", "3.0").
    line += spelling >= 2 ? ",\"value\":" + v + (v.find('.') == std::string::npos ? ".0" : "0")
                          : ",\"value\":\"" + v + "\"";
  }
  if (e.event_type == "login")
    line += spelling >= 2 ? R"(,"metadata": { "user" : ")" + e.user + "\" }"
                          : R"(,"metadata":{"user":")" + e.user + "\"}";
  if (spelling >= 2)
    line += R"(,"ingestion_time":"2030-01-01T00:00:00Z")"; // unknown field: ignored
  return line + "}";
}

struct scenario {
  std::string config;
  std::vector<input_line> lines; // arrival order
};

// How an arrival order is drawn: `shuffled` ignores time entirely.
enum class arrival { jittered, shuffled };

// The events of `seed` (always the same set), in an arrival order drawn from `order_seed`.
inline scenario make_scenario(std::uint64_t seed, std::uint64_t order_seed,
                              arrival how = arrival::jittered, bool with_invalid = true,
                              int events = 360) {
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t n) { return rng() % n; };
  const std::string customers[] = {"c0", "c1", "c2", "c3", "c4", "c5", "walkin"};
  const timestamp hour = 3600 * pricing::microseconds_per_second;
  const timestamp range_begin = at("2023-12-31T20:00:00Z"), range_end = at("2024-03-02T04:00:00Z");
  const timestamp hot_spots[] = {at("2024-01-15T00:00:00Z"), at("2024-02-01T00:00:00Z"),
                                 at("2024-03-01T00:00:00Z"), at("2024-02-10T00:00:00Z")};
  auto random_time = [&] {
    timestamp t;
    const auto r = pick(100);
    if (r < 8)
      t = at("2023-12-31T20:00:00Z") + static_cast<timestamp>(pick(4 * 3600)) * 1'000'000;
    else if (r < 70)
      t = hot_spots[pick(4)] - 4 * hour + static_cast<timestamp>(pick(8 * 3600)) * 1'000'000;
    else
      t = range_begin + static_cast<timestamp>(pick(
                            static_cast<std::uint64_t>((range_end - range_begin) / 1'000'000))) *
                            1'000'000;
    if (pick(10) < 3)
      t += static_cast<timestamp>(pick(1'000'000)); // microsecond precision
    return t;
  };
  auto random_value = [&](const std::string& type) {
    if (type == "seat_count")
      return decimal::from_int(static_cast<std::int64_t>(1 + pick(20)));
    std::string text = std::to_string(pick(50)) + "." + std::to_string(pick(1000));
    return dec(text);
  };

  std::vector<usage_event> base;
  for (int i = 0; i < events; ++i) {
    usage_event e;
    e.customer_id = customers[pick(7)];
    e.event_id = "e" + std::to_string(i);
    const auto r = pick(100);
    e.event_type = r < 45   ? "api_call"
                   : r < 70 ? "storage"
                   : r < 85 ? "login"
                   : r < 95 ? "seat_count"
                            : "noise"; // unmetered
    e.time = random_time();
    if (e.event_type == "storage" || e.event_type == "seat_count")
      e.value = random_value(e.event_type);
    if (e.event_type == "login")
      e.user = "u" + std::to_string(pick(8));
    base.push_back(std::move(e));
  }

  // The lines: each event once, exact duplicates (other spellings), conflicting copies.
  struct pending_line {
    input_line line;
    timestamp time; // the event time its arrival is drawn around
  };
  std::vector<pending_line> pending;
  for (const usage_event& e : base) {
    pending.push_back({{to_line(e), e}, e.time});
    if (pick(100) < 6)
      pending.push_back({{to_line(e, 1 + static_cast<int>(pick(3))), e}, e.time});
    if (pick(100) < 5) {
      usage_event c = e;
      if (c.event_type == "storage" || c.event_type == "seat_count")
        c.value = c.value + decimal::from_int(1);
      else if (c.event_type == "login")
        c.user = c.user + "x";
      else
        c.time += static_cast<timestamp>(1 + pick(3 * 3600)) * 1'000'000;
      pending.push_back({{to_line(c), c}, c.time});
    }
  }
  if (with_invalid) {
    const std::string bad[] = {
        R"({"event_id":"e1","event_time":"2024-01-15T00:30:00Z","customer_id":"c1",)",
        R"({"event_id":"e2","event_time":"2024-02-30T00:30:00Z","customer_id":"c2","event_type":"api_call"})",
        R"({"event_id":"e3","event_time":"2024-01-15T00:30:00Z","customer_id":"c3","event_type":"storage","value":"1.0000000000001"})",
        R"({"event_id":"","event_time":"2024-01-15T00:30:00Z","customer_id":"c4","event_type":"api_call"})",
        R"({"event_id":"e5","event_time":"2024-01-15T00:30:00Z","customer_id":"c0","event_type":"login"})",
        R"({"event_id":7,"event_time":"2024-01-15T00:30:00Z","customer_id":"c0","event_type":"api_call"})",
        R"({"event_id":"e6","event_time":"2024-01-15T00:30:00Z","customer_id":"c0","event_type":"storage","value":NaN})",
        "\x01\xff binary \xfe",
    };
    for (const std::string& text : bad)
      pending.push_back({{text, std::nullopt}, random_time()});
  }

  // The arrival order: by event time plus a delay; late and very late (days, other months).
  std::mt19937_64 order(order_seed);
  auto draw = [&](std::uint64_t n) { return order() % n; };
  std::vector<std::pair<timestamp, std::size_t>> keys;
  for (std::size_t i = 0; i < pending.size(); ++i) {
    const auto r = draw(100);
    timestamp delay;
    if (how == arrival::shuffled)
      delay = static_cast<timestamp>(draw(80ull * 24 * 3600)) * 1'000'000 - pending[i].time;
    else if (r < 75)
      delay = static_cast<timestamp>(draw(30)) * 1'000'000;
    else if (r < 87)
      delay = static_cast<timestamp>(draw(2 * 3600)) * 1'000'000;
    else if (r < 95)
      delay = static_cast<timestamp>(2 * 3600 + draw(3 * 24 * 3600)) * 1'000'000;
    else
      delay = static_cast<timestamp>(3 * 24 * 3600 + draw(37ull * 24 * 3600)) * 1'000'000;
    keys.emplace_back(pending[i].time + delay, i);
  }
  std::sort(keys.begin(), keys.end());
  scenario s;
  s.config = scenario_config({});
  for (const auto& [key, i] : keys)
    s.lines.push_back(pending[i].line);
  return s;
}

inline std::vector<std::string> texts(const scenario& s) {
  std::vector<std::string> out;
  for (const auto& l : s.lines)
    out.push_back(l.text);
  return out;
}

// Per customer, period id ("2024-01") and metric: an invoice line amount.
using line_key = std::tuple<std::string, std::string, std::string>;
// Per customer and period id: an invoice total.
using total_key = std::pair<std::string, std::string>;

struct billing {
  std::map<line_key, decimal> lines;
  std::map<total_key, decimal> totals;
};

// The complete deduplicated event set: the first valid line of each key stands.
inline std::vector<usage_event> deduplicated(const std::vector<input_line>& lines) {
  std::set<std::pair<std::string, std::string>> seen;
  std::vector<usage_event> out;
  for (const auto& l : lines)
    if (l.event && seen.insert({l.event->customer_id, l.event->event_id}).second)
      out.push_back(*l.event);
  return out;
}

// What the invoices of `events` must add up to, priced directly with pricing/.
inline billing price_directly(const config::configuration& cfg,
                              const std::vector<usage_event>& events) {
  using pricing::price;
  billing out;
  struct period_usage {
    std::map<timestamp, decimal> window_quantity; // additive meters, by window start
    std::vector<const usage_event*> events;       // period-level meters
  };
  std::map<std::tuple<std::string, std::string, timestamp>, period_usage> usage;
  for (const usage_event& e : events)
    for (const config::meter& m : cfg.meters) {
      if (m.event_type != e.event_type)
        continue;
      auto& u = usage[{e.customer_id, m.metric, pricing::period_of(e.time).start}];
      u.window_quantity[pricing::window_start(e.time, cfg.window_size)] +=
          m.kind == config::aggregation::count ? decimal::from_int(1) : e.value;
      u.events.push_back(&e);
    }
  std::map<total_key, decimal> subtotals;
  for (const auto& [key, u] : usage) {
    const auto& [customer, metric, period_start] = key;
    const config::meter& m = *cfg.find_meter(metric);
    const pricing::price_book* book = cfg.price_book_for(customer);
    const pricing::period period = pricing::period_of(period_start);
    auto model_at = [&](timestamp window_start)
        -> std::pair<const pricing::price_book_version*, const pricing::price_model*> {
      const pricing::price_book_version* v = book ? book->version_at(window_start) : nullptr;
      if (!v || !v->prices.count(metric))
        return {nullptr, nullptr};
      return {v, &v->prices.at(metric)};
    };
    decimal sum;
    std::optional<pricing::rounding_mode> mode;
    if (config::is_additive(m.kind)) {
      decimal cumulative;
      for (const auto& [start, q] : u.window_quantity) {
        const decimal before = cumulative;
        cumulative += q;
        const auto [v, model] = model_at(start);
        if (!model)
          continue; // unpriced, but in the cumulative quantity of later windows
        sum += price(*model, cumulative, v->rounding).value().amount -
               price(*model, before, v->rounding).value().amount;
        mode = v->rounding;
      }
    } else {
      decimal q;
      if (m.kind == config::aggregation::max) {
        q = u.events.front()->value;
        for (const usage_event* e : u.events)
          q = std::max(q, e->value);
      } else if (m.kind == config::aggregation::unique_count) {
        std::set<std::string> users;
        for (const usage_event* e : u.events)
          users.insert(e->user);
        q = decimal::from_int(static_cast<std::int64_t>(users.size()));
      } else { // latest: the value of the greatest (event_time, event_id)
        const usage_event* latest = u.events.front();
        for (const usage_event* e : u.events)
          if (std::tie(e->time, e->event_id) > std::tie(latest->time, latest->event_id))
            latest = e;
        q = latest->value;
      }
      const auto [v, model] = model_at(period.end - cfg.window_size);
      if (model) {
        sum = price(*model, q, v->rounding).value().amount -
              price(*model, decimal(), v->rounding).value().amount;
        mode = v->rounding;
      }
    }
    if (!mode)
      continue; // no charge, no line
    const decimal line = sum.round(pricing::currency_minor_units(book->currency), *mode).value();
    out.lines[{customer, pricing::period_id(period), metric}] = line;
    subtotals[{customer, pricing::period_id(period)}] += line;
  }
  for (const auto& [key, subtotal] : subtotals) {
    decimal credits;
    if (const config::customer* c = cfg.find_customer(key.first))
      for (const auto& cr : c->credits)
        if (pricing::period_id(cr.period) == key.second)
          credits += cr.amount;
    const decimal ceiling = subtotal.is_negative() ? decimal() : subtotal;
    out.totals[key] = subtotal - std::min(credits, ceiling);
  }
  return out;
}

// The differences between what was billed and what was expected, one per line ("" = none).
inline std::string differences(const billing& actual, const billing& expected) {
  std::string out;
  auto compare = [&](const auto& a, const auto& e, auto name) {
    std::set<typename std::decay_t<decltype(a)>::key_type> keys;
    for (const auto& [k, v] : a)
      keys.insert(k);
    for (const auto& [k, v] : e)
      keys.insert(k);
    for (const auto& k : keys) {
      const auto ia = a.find(k), ie = e.find(k);
      if (ia != a.end() && ie != e.end() && ia->second == ie->second)
        continue;
      out += name(k) + ": billed " + (ia == a.end() ? "nothing" : ia->second.to_string()) +
             ", expected " + (ie == e.end() ? "nothing" : ie->second.to_string()) + "\n";
    }
  };
  compare(actual.lines, expected.lines, [](const line_key& k) {
    return std::get<0>(k) + "/" + std::get<1>(k) + "/" + std::get<2>(k);
  });
  compare(actual.totals, expected.totals,
          [](const total_key& k) { return k.first + "/" + k.second + " total"; });
  return out;
}

} // namespace meterflow::test
