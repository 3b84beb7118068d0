#pragma once

// What a PostgreSQL store holds, table by table, to compare two stores in end-to-end tests.

#include <catch2/catch.hpp>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <string>

namespace meterflow::test {

// A fingerprint of what the store holds, by table: count and a digest of the content.
inline std::map<std::string, std::string> store_fingerprint(const std::string& conninfo) {
  const std::pair<const char*, const char*> queries[] = {
      {"invoices",
       "SELECT count(*) || ' ' || md5(string_agg(invoice_id || ':' || type || ':' || subtotal || "
       "':' || credits_applied || ':' || total, ',' ORDER BY invoice_id)) FROM invoices"},
      {"invoice_line_items",
       "SELECT count(*) || ' ' || md5(string_agg(line_item_id || ':' || quantity || ':' || "
       "amount, ',' ORDER BY line_item_id)) FROM invoice_line_items"},
      {"rated_charges",
       "SELECT count(*) || ' ' || md5(string_agg(charge_id || ':' || amount || ':' || "
       "coalesce(supersedes_charge_id, '-'), ',' ORDER BY charge_id)) FROM rated_charges"},
      {"aggregated_usage",
       "SELECT count(*) || ' ' || md5(string_agg(aggregation_id || ':' || value, ',' ORDER BY "
       "aggregation_id)) FROM aggregated_usage"},
      // The aggregates in force: each window's latest final revision.
      {"final_aggregates",
       "SELECT count(*) || ' ' || md5(string_agg(customer_id || ':' || metric || ':' || "
       "window_start || ':' || value || ':' || event_count, ',' ORDER BY customer_id, metric, "
       "window_start)) FROM (SELECT DISTINCT ON (customer_id, metric, window_start) * FROM "
       "aggregated_usage WHERE is_final ORDER BY customer_id, metric, window_start, revision "
       "DESC) f"},
      {"telemetry_events",
       "SELECT count(*) || ' ' || md5(string_agg(customer_id || ':' || event_id, ',' ORDER BY "
       "customer_id, event_id)) FROM telemetry_events"},
      {"rejected_events",
       "SELECT count(*) || ' ' || coalesce(md5(string_agg(line::text, ',' ORDER BY line)), '-') "
       "FROM rejected_events"},
      {"ledger_entries",
       "SELECT count(*) || ' ' || coalesce(sum(amount)::text, '0') FROM ledger_entries"},
      {"rerate_runs",
       "SELECT count(*) || ' ' || coalesce(md5(string_agg(rerate_run_id || ':' || "
       "array_to_string(superseding_charge_ids, ',') || ':' || "
       "array_to_string(correction_invoice_ids, ','), ',' ORDER BY rerate_run_id)), '-') FROM "
       "rerate_runs"},
      // What the runs did, whatever their ids (made from input positions) are.
      {"rerate_run_documents",
       "SELECT count(*) || ' ' || coalesce(md5(string_agg(scope::text || ':' || "
       "array_to_string(superseding_charge_ids, ',') || ':' || "
       "array_to_string(correction_invoice_ids, ','), ',' ORDER BY scope::text)), '-') FROM "
       "rerate_runs"},
  };
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  std::map<std::string, std::string> out;
  for (const auto& [table, query] : queries)
    out[table] = tx.exec1(query)[0].c_str();
  return out;
}

// Every table of `actual` holds what the same table of `expected` holds, but those in `except`.
inline void check_stores_equal(const std::string& expected, const std::string& actual,
                               const std::set<std::string>& except = {}) {
  const auto want = store_fingerprint(expected);
  const auto got = store_fingerprint(actual);
  for (const auto& [table, print] : want) {
    if (except.count(table))
      continue;
    INFO("table " << table);
    CHECK(got.at(table) == print);
  }
}

} // namespace meterflow::test
