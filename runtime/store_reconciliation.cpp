#include "runtime/store_reconciliation.hpp"

#include "persistence/json_format.hpp"
#include "persistence/pg_schema.hpp"
#include "persistence/store.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <pqxx/pqxx>

namespace meterflow::runtime {

namespace {

using pricing::decimal;
using pricing::timestamp;
using snapshot = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;

constexpr timestamp unbounded = std::numeric_limits<timestamp>::max();
// The input whose progress `serve` and `run --store` commit (the driver's progress source);
// `serve --kafka` commits one per partition, "kafka:<topic>:<partition>".
constexpr const char* progress_source = "events";

// What the checks share: the stored events with the state of each of their meter feeds, the
// current aggregates, charges and unpriced listings, and the invoices with their lines.
// `US(x)` stands for the time x in UTC microseconds, `{name}` for a parameter (expand()).
// Times are compared as microseconds because the window and watermark rules are in them.
const char* const chain_ctes = R"sql(
meters(metric, event_type, additive) AS ({meters}),
tolerance(currency, unit) AS ({tolerances}),
-- How far each partition's input was processed (a file's one row covers every partition).
progress(partition, committed, watermark) AS ({progress}),
ev AS (
  SELECT e.customer_id, e.event_id, e.event_type, e.source_position, US(e.event_time) AS t,
         -- the watermark in force when the event was processed: accepted events in input order
         -- (a stream: its partition's)
         max(US(e.event_time)) OVER ({input_order}
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
           - {out_of_orderness} AS wm_before,
         coalesce(pr.committed, 0) AS committed, coalesce(pr.watermark, -1) AS watermark
  FROM telemetry_events e
  LEFT JOIN progress pr ON pr.partition IS NULL OR pr.partition = e.partition),
-- One row per customer (its partition's watermark): joined, never looked up per row (a
-- correlated lookup per charge took 83 s for 115k charges of 10k customers).
cust_wm AS (SELECT DISTINCT customer_id, watermark FROM ev),
feeds AS (
  SELECT ev.*, m.metric, ev.t - ev.t % {window_size} AS ws
  FROM ev JOIN meters m USING (event_type)
  WHERE ev.t >= {from} AND ev.t < {to}),
states AS (
  SELECT f.*, CASE
      WHEN f.source_position > f.committed THEN 'awaiting_commit'
      WHEN f.ws + {window_size} + {lateness} > f.watermark THEN 'awaiting_window_final'
      WHEN f.wm_before >= f.ws + {window_size} + {lateness}
           AND floor(f.wm_before::numeric / {interval}) = floor(f.watermark::numeric / {interval})
        THEN 'awaiting_rerate'
      ELSE 'due' END AS state
  FROM feeds f),
cur_agg AS (
  SELECT DISTINCT ON (customer_id, metric, window_start)
         aggregation_id, customer_id, metric, window_start, US(window_start) AS ws,
         US(window_end) AS we, is_final, value, event_count, event_ids
  FROM aggregated_usage
  WHERE US(window_start) < {period_to} AND US(window_end) > {period_from}
  ORDER BY customer_id, metric, window_start, revision DESC, emission_seq DESC),
final_agg AS (SELECT * FROM cur_agg WHERE is_final AND ws < {to} AND we > {from}),
agg_ids AS (
  SELECT DISTINCT a.customer_id, a.metric, a.ws, u.event_id
  FROM final_agg a CROSS JOIN LATERAL unnest(a.event_ids) AS u(event_id)),
placed AS (
  SELECT s.*, a.event_id IS NOT NULL AS in_aggregate
  FROM states s
  LEFT JOIN agg_ids a ON (a.customer_id, a.metric, a.ws, a.event_id)
                       = (s.customer_id, s.metric, s.ws, s.event_id)),
due_windows AS (SELECT DISTINCT customer_id, metric, ws FROM states WHERE state = 'due'),
cur_charge AS (
  SELECT charge_id, customer_id, metric, US(window_start) AS ws, US(window_end) AS we,
         US(date_trunc('month', window_start)) AS ps,
         US(date_trunc('month', window_start) + interval '1 month') AS pe, quantity, amount
  FROM current_charges
  WHERE US(window_start) < {to} AND US(window_end) > {from}),
listed AS (
  SELECT u.* FROM (
    SELECT DISTINCT ON (customer_id, metric, window_start)
           customer_id, metric, US(window_start) AS ws, US(window_end) AS we, quantity, reason,
           price_book_id
    FROM unpriced_windows
    WHERE US(window_start) < {to} AND US(window_end) > {from}
    ORDER BY customer_id, metric, window_start, emission_seq DESC) u
  WHERE NOT EXISTS (SELECT 1 FROM cur_charge c
                    WHERE (c.customer_id, c.metric, c.ws) = (u.customer_id, u.metric, u.ws))),
rating AS (
  SELECT customer_id, metric, ws, we, quantity FROM cur_charge
  UNION ALL SELECT customer_id, metric, ws, we, quantity FROM listed),
units AS (
  SELECT f.customer_id, f.metric, f.ws, f.we, f.value AS quantity
  FROM final_agg f JOIN meters m USING (metric) WHERE m.additive
  UNION
  SELECT a.customer_id, a.metric, US(date_trunc('month', a.window_start)),
         US(date_trunc('month', a.window_start) + interval '1 month'), NULL
  FROM cur_agg a JOIN meters m USING (metric) JOIN cust_wm w USING (customer_id)
  WHERE a.is_final AND NOT m.additive
    AND US(date_trunc('month', a.window_start) + interval '1 month') + {lateness}
        <= w.watermark),
inv AS (
  SELECT i.invoice_id, i.type, i.customer_id, US(i.period_start) AS ps, US(i.period_end) AS pe,
         i.currency, i.subtotal, i.credits_applied, i.total, coalesce(s.status, 'none') AS status
  FROM invoices i LEFT JOIN current_invoice_status s USING (invoice_id)
  WHERE US(i.period_start) < {period_to} AND US(i.period_end) > {period_from}),
lines AS (
  SELECT l.invoice_id, l.metric, l.amount, l.charge_ids, i.customer_id, i.ps, i.pe
  FROM invoice_line_items l JOIN inv i USING (invoice_id)),
refs AS (
  SELECT l.invoice_id, l.customer_id, l.ps, l.pe, l.metric, r.charge_id
  FROM lines l CROSS JOIN LATERAL unnest(l.charge_ids) AS r(charge_id)),
customer_periods AS (
  SELECT customer_id, ps, pe, min(currency) AS currency FROM inv GROUP BY customer_id, ps, pe),
scopes AS (
  SELECT customer_id, ps, metric, coalesce(ch.amount, 0) AS charged,
         coalesce(iv.amount, 0) AS invoiced,
         coalesce(abs(coalesce(ch.amount, 0) - coalesce(iv.amount, 0)) < t.unit, false) AS matches
  FROM (SELECT cp.customer_id, cp.ps, c.metric, sum(c.amount) AS amount
        FROM current_charges c
        JOIN customer_periods cp ON c.customer_id = cp.customer_id
                                AND US(c.window_start) >= cp.ps AND US(c.window_start) < cp.pe
        GROUP BY cp.customer_id, cp.ps, c.metric) ch
  FULL JOIN (SELECT customer_id, ps, metric, sum(amount) AS amount
             FROM lines GROUP BY customer_id, ps, metric) iv USING (customer_id, ps, metric)
  JOIN customer_periods cp USING (customer_id, ps)
  LEFT JOIN tolerance t USING (currency))
)sql";

// Replaces US(x) by the time x in UTC microseconds, TS(x) by microseconds x as an RFC 3339
// text (for details), and {name} by its value.
std::string expand(std::string_view text, const std::map<std::string, std::string>& values) {
  static const std::pair<std::string_view, std::pair<const char*, const char*>> macros[] = {
      {"US(", {"(extract(epoch FROM ", ") * 1000000)::bigint"}},
      {"TS(",
       {"to_char(to_timestamp((", ") / 1000000.0) AT TIME ZONE 'UTC', "
                                  "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"}}};
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const bool word_start =
        i == 0 || !(std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_');
    const auto* macro = std::find_if(std::begin(macros), std::end(macros), [&](const auto& m) {
      return text.compare(i, 3, m.first) == 0;
    });
    if (word_start && macro != std::end(macros)) {
      std::size_t j = i + 3;
      for (int depth = 1; depth > 0; ++j)
        depth += text[j] == '(' ? 1 : text[j] == ')' ? -1 : 0;
      out += macro->second.first + expand(text.substr(i + 3, j - i - 4), values) +
             macro->second.second;
      i = j;
    } else if (text[i] == '{') {
      const std::size_t close = text.find('}', i);
      out += values.at(std::string(text.substr(i + 1, close - i - 1)));
      i = close + 1;
    } else {
      out += text[i++];
    }
  }
  return out;
}

// A VALUES list of `rows` ("(a, b)" each), or `empty` (a query of no rows) when there are none.
std::string values_list(const std::vector<std::string>& rows, const char* empty) {
  if (rows.empty())
    return empty;
  std::string out = "VALUES ";
  for (const auto& r : rows)
    out += (&r == &rows.front() ? "(" : ", (") + r + ")";
  return out;
}

std::string num(std::int64_t n) {
  return std::to_string(n);
}

decimal decimal_of(const pqxx::field& f) {
  auto d = decimal::parse(f.c_str());
  if (!d)
    throw persistence::store_error("reconciliation: " + std::string(f.name()) +
                                   " is not a meterflow decimal: " + f.c_str());
  return *d;
}

// How far the store's input was processed: the committed position and, unless the input was
// processed to its end, the watermark the committed events imply (SEMANTICS §4). A stream's
// partitions each have theirs; `committed` and `watermark` are then their minimum, `finished`
// whether all were drained.
struct store_state {
  std::int64_t committed = 0;
  bool finished = false;
  std::optional<timestamp> watermark; // none: no committed event yet
  struct partition_state {
    std::int64_t committed = 0;
    bool finished = false;
    std::optional<timestamp> watermark;
  };
  std::map<int, partition_state> partitions; // a stream's, by partition
};

class chain_reader {
public:
  chain_reader(snapshot& tx, const config::configuration* cfg, const reconcile_scope& scope)
      : tx_(tx) {
    read_state(cfg);
    const timestamp from = scope.from.value_or(0), to = scope.to.value_or(unbounded);
    const timestamp period_from = scope.from ? pricing::period_of(from).start : 0;
    const timestamp period_to =
        scope.to ? pricing::next_period(pricing::period_of(to - 1)).start : unbounded;
    // Without the configuration no watermark is known: only invoiced periods count as closed.
    const timestamp wm = !cfg ? -1 : state_.finished ? unbounded : state_.watermark.value_or(-1);
    // Without the configuration the queries that use these do not run; 1 keeps their SQL valid.
    const auto duration = [&](pricing::duration config::configuration::*field) {
      return num(cfg ? cfg->*field : 1);
    };
    values_ = {{"meters", meters(cfg)},
               {"tolerances", tolerances()},
               {"from", num(from)},
               {"to", num(to)},
               {"period_from", num(period_from)},
               {"period_to", num(period_to)},
               {"progress", progress_rows(cfg, wm)},
               {"input_order", state_.partitions.empty()
                                   ? "ORDER BY e.source_position"
                                   : "PARTITION BY e.partition ORDER BY e.source_position"},
               {"window_size", duration(&config::configuration::window_size)},
               {"lateness", duration(&config::configuration::allowed_lateness)},
               {"interval", duration(&config::configuration::correction_interval)},
               {"out_of_orderness", duration(&config::configuration::max_out_of_orderness)}};
    with_ = "WITH " + expand(chain_ctes, values_) + " ";
  }

  const store_state& state() const { return state_; }

  // One row of `select` over the chain's CTEs (US() and {name} expanded).
  pqxx::row row(const std::string& select) { return tx_.exec1(with_ + expand(select, values_)); }
  pqxx::result rows(const std::string& select) { return tx_.exec(with_ + expand(select, values_)); }

  // The first few values of a one-column `select`, for a failed check's detail.
  std::string sample(const std::string& select) {
    std::string out;
    for (const auto& r : rows("SELECT * FROM (" + select + ") s ORDER BY 1 LIMIT 5")) {
      out += out.empty() ? "" : "; ";
      out += r[0].c_str();
    }
    return out;
  }

private:
  void read_state(const config::configuration* cfg) {
    const auto progress =
        tx_.exec_params("SELECT position, finished FROM serve_progress WHERE source = $1 "
                        "ORDER BY progress_seq DESC LIMIT 1",
                        std::string(progress_source));
    if (!progress.empty()) {
      state_.committed = progress[0][0].as<std::int64_t>();
      state_.finished = progress[0][1].as<bool>();
    }
    const auto latest = tx_.exec_params1(
        "SELECT (extract(epoch FROM max(event_time)) * 1000000)::bigint FROM telemetry_events "
        "WHERE source_position <= $1",
        state_.committed)[0];
    if (cfg && !latest.is_null())
      state_.watermark = latest.as<timestamp>() - cfg->max_out_of_orderness;
    if (progress.empty())
      read_stream_state(cfg);
  }

  // A stream's partitions: each one's committed position and the watermark its committed
  // events and idle advances imply.
  void read_stream_state(const config::configuration* cfg) {
    const auto rows = tx_.exec(R"sql(
SELECT split_part(p.source, ':', 3)::int, p.position, p.finished,
       (SELECT (extract(epoch FROM max(e.event_time)) * 1000000)::bigint FROM telemetry_events e
        WHERE e.partition = split_part(p.source, ':', 3)::int AND e.source_position <= p.position),
       (SELECT max(a.watermark) FROM watermark_advances a
        WHERE a.source = p.source AND a.position <= p.position)
FROM (SELECT DISTINCT ON (source) source, position, finished FROM serve_progress
      WHERE source LIKE 'kafka:%:%' ORDER BY source, progress_seq DESC) p)sql");
    if (rows.empty())
      return;
    state_.finished = true;
    for (const auto& r : rows) {
      store_state::partition_state& s = state_.partitions[r[0].as<int>()];
      s.committed = r[1].as<std::int64_t>();
      s.finished = r[2].as<bool>();
      if (cfg && !r[3].is_null())
        s.watermark = r[3].as<timestamp>() - cfg->max_out_of_orderness;
      if (!r[4].is_null())
        s.watermark = std::max(s.watermark.value_or(r[4].as<timestamp>()), r[4].as<timestamp>());
      state_.finished = state_.finished && s.finished;
      if (s.watermark && (!state_.watermark || *s.watermark < *state_.watermark))
        state_.watermark = s.watermark;
    }
  }

  // The progress CTE's rows: one for every partition of a file, one per partition of a stream.
  std::string progress_rows(const config::configuration* cfg, timestamp file_watermark) {
    if (state_.partitions.empty())
      return "SELECT NULL::int, " + num(state_.committed) + "::bigint, " + num(file_watermark) +
             "::bigint";
    std::vector<std::string> rows;
    for (const auto& [p, s] : state_.partitions) {
      const timestamp wm = !cfg ? -1 : s.finished ? unbounded : s.watermark.value_or(-1);
      rows.push_back(std::to_string(p) + ", " + num(s.committed) + "::bigint, " + num(wm) +
                     "::bigint");
    }
    return values_list(rows, "");
  }

  std::string meters(const config::configuration* cfg) {
    std::vector<std::string> rows;
    for (const auto& m : cfg ? cfg->meters : std::vector<config::meter>{})
      rows.push_back(tx_.quote(m.metric) + ", " + tx_.quote(m.event_type) + ", " +
                     (config::is_additive(m.kind) ? "true" : "false"));
    return values_list(rows, "SELECT NULL::text, NULL::text, NULL::boolean WHERE false");
  }

  // One minor unit per currency invoiced (SEMANTICS §8: lines are rounded, charges are not).
  std::string tolerances() {
    std::vector<std::string> rows;
    for (const auto& r : tx_.exec("SELECT DISTINCT currency FROM invoices ORDER BY 1"))
      rows.push_back(tx_.quote(r[0].c_str()) + ", " + minor_unit(r[0].c_str()).to_string() +
                     "::numeric");
    return values_list(rows, "SELECT NULL::text, NULL::numeric WHERE false");
  }

  snapshot& tx_;
  store_state state_;
  std::map<std::string, std::string> values_;
  std::string with_;
};

const char* const action_reprocess =
    "re-process: start `meterflow serve` again on this store (it resumes from its committed "
    "progress and finalizes, rates and invoices what is due), or re-rate the scope; if the "
    "input was processed to its end, investigate the listed records";
const char* const action_investigate_duplicates =
    "investigate: the append-only store holds a record twice; find what wrote it outside the "
    "engine before billing from this scope";

// The checks of docs/cli.md, in chain order. A failed check's detail names the first
// offending records; that query runs only when the check failed.
class store_checks {
public:
  store_checks(chain_reader& chain, const config::configuration* cfg, check_list& checks)
      : chain_(chain), cfg_(cfg), checks_(checks) {}

  void events() {
    const auto r = chain_.row("SELECT (SELECT coalesce(sum(events_accepted), 0) FROM "
                              "source_offsets), (SELECT count(*) FROM telemetry_events)");
    equal("events stored = events accepted by the committed batches", r[0], r[1],
          "telemetry_events and source_offsets disagree", "",
          "investigate: events were stored outside the engine's committed batches (or a "
          "batch's source_offsets row is missing); compare telemetry_events with source_offsets");
  }

  void aggregates() {
    if (!cfg_)
      return skip("events -> aggregates");
    const auto r = chain_.row(R"sql(
SELECT count(*) FILTER (WHERE state = 'due'),
       count(*) FILTER (WHERE state = 'due' AND in_aggregate),
       count(*) FILTER (WHERE state = 'awaiting_rerate' AND in_aggregate),
       (SELECT coalesce(sum(event_count), 0) FROM final_agg),
       (SELECT count(*) FROM agg_ids a WHERE NOT EXISTS (
          SELECT 1 FROM states s
          WHERE (s.customer_id, s.metric, s.ws, s.event_id) = (a.customer_id, a.metric, a.ws, a.event_id)
            AND s.state IN ('due', 'awaiting_rerate'))),
       (SELECT count(*) FROM due_windows),
       (SELECT count(*) FROM due_windows w WHERE EXISTS (SELECT 1 FROM final_agg f
          WHERE (f.customer_id, f.metric, f.ws) = (w.customer_id, w.metric, w.ws)))
FROM placed)sql");
    const std::int64_t due = r[0].as<std::int64_t>(), due_in = r[1].as<std::int64_t>();
    const std::int64_t rerated_early = r[2].as<std::int64_t>(), unknown = r[4].as<std::int64_t>();
    checks_.add("metered event feeds due = sum of event_count over current final aggregates",
                num(due + rerated_early), r[3].c_str(),
                "the final aggregates count other events than the stored ones", action_reprocess);
    std::string detail;
    if (due_in != due)
      detail = num(due - due_in) + " events missing from their window's final aggregate: " +
               chain_.sample("SELECT customer_id || '/' || metric || '/' || event_id FROM placed "
                             "WHERE state = 'due' AND NOT in_aggregate");
    if (unknown > 0)
      detail += (detail.empty() ? "" : "; ") + num(unknown) +
                " event ids in final aggregates that are no stored event of the window: " +
                chain_.sample(R"sql(
SELECT a.customer_id || '/' || a.metric || '/' || a.event_id FROM agg_ids a
WHERE NOT EXISTS (SELECT 1 FROM states s
                  WHERE (s.customer_id, s.metric, s.ws, s.event_id) = (a.customer_id, a.metric, a.ws, a.event_id)
                    AND s.state IN ('due', 'awaiting_rerate')))sql");
    checks_.add_bool("all events processed: each due event in its window's final aggregate",
                     due_in == due && unknown == 0, num(due) + " due", num(due_in) + " in place",
                     detail, action_reprocess);
    equal("aggregations finalized: every window past its lateness is final", r[5], r[6],
          "windows without a final aggregate: ",
          "SELECT w.customer_id || '/' || w.metric || '/' || TS(w.ws) FROM due_windows w WHERE "
          "NOT EXISTS (SELECT 1 FROM final_agg f WHERE (f.customer_id, f.metric, f.ws) = "
          "(w.customer_id, w.metric, w.ws))",
          action_reprocess);
  }

  void charges() {
    if (!cfg_)
      return skip("aggregates -> charges");
    // A unit is rated by a current charge of its window (and of its quantity, for an additive
    // meter) or listed unpriced.
    const std::string rated = R"sql(
SELECT 1 FROM rating g
WHERE (g.customer_id, g.metric, g.ws, g.we) = (u.customer_id, u.metric, u.ws, u.we)
  AND (u.quantity IS NULL OR g.quantity = u.quantity))sql";
    const std::string orphans = R"sql(
FROM rating g WHERE NOT EXISTS (
  SELECT 1 FROM units u WHERE (u.customer_id, u.metric, u.ws, u.we) = (g.customer_id, g.metric, g.ws, g.we)))sql";
    const auto r = chain_.row("SELECT (SELECT count(*) FROM units), (SELECT count(*) FROM units u "
                              "WHERE EXISTS (" +
                              rated + ")), (SELECT count(*) " + orphans + ")");
    equal("charges rated: every final window or closed period charged or unpriced", r[0], r[1],
          "unrated: ",
          "SELECT u.customer_id || '/' || u.metric || '/' || TS(u.ws) FROM units u WHERE NOT "
          "EXISTS (" +
              rated + ")",
          "re-process: re-rate the listed windows with `meterflow rerate` (their current charge is "
          "missing or "
          "rates another quantity than the final aggregate)");
    checks_.add("every current charge or unpriced listing rates a final aggregate", "0",
                r[2].c_str(),
                r[2].as<std::int64_t>() == 0
                    ? ""
                    : "without their aggregate: " +
                          chain_.sample("SELECT g.customer_id || '/' || g.metric || '/' || "
                                        "TS(g.ws) " +
                                        orphans),
                "investigate: a charge or listing without the aggregate it rates was written "
                "outside the engine, or --config is not the configuration of the store");
  }

  // Σ quantities of the current final aggregates of additive meters = Σ quantities of their
  // current charges + unpriced listings. Returns both sums (the report's totals).
  std::pair<decimal, decimal> quantities() {
    const auto r = chain_.row(R"sql(
SELECT (SELECT coalesce(sum(f.value), 0) FROM final_agg f JOIN meters m USING (metric)
        WHERE m.additive)::text,
       (SELECT coalesce(sum(c.quantity), 0) FROM cur_charge c JOIN meters m USING (metric)
        WHERE m.additive)::text,
       (SELECT coalesce(sum(l.quantity), 0) FROM listed l JOIN meters m USING (metric)
        WHERE m.additive)::text)sql");
    const decimal aggregated = decimal_of(r[0]), charged = decimal_of(r[1]);
    checks_.add("sum of current aggregate quantities = sum of current charge quantities + "
                "unpriced",
                aggregated.to_string(), (charged + decimal_of(r[2])).to_string(),
                "the charges rate other quantities than the final aggregates",
                "re-process: re-rate the scope (`meterflow rerate`)");
    return {aggregated, charged};
  }

  void duplicates() {
    struct duplicate_check {
      const char* name;
      const char* offending; // one row per duplicate
      const char* what;
      const char* action;
    };
    static const duplicate_check all[] = {
        {"no duplicates: no (customer_id, event_id) stored twice",
         "SELECT customer_id || '/' || event_id FROM telemetry_events WHERE US(event_time) >= "
         "{from} AND US(event_time) < {to} GROUP BY customer_id, event_id HAVING count(*) > 1",
         "duplicate event keys: ", action_investigate_duplicates},
        {"no duplicates: no charge superseded twice",
         "SELECT supersedes_charge_id FROM rated_charges WHERE supersedes_charge_id IS NOT NULL "
         "AND US(window_start) < {to} AND US(window_end) > {from} GROUP BY 1 HAVING count(*) > 1",
         "superseded twice: ", action_investigate_duplicates},
        {"no duplicates: one current charge per window",
         "SELECT customer_id || '/' || metric || '/' || TS(ws) FROM cur_charge GROUP BY "
         "customer_id, metric, ws HAVING count(*) > 1",
         "windows with several current charges: ", action_investigate_duplicates},
        {"no duplicates: no charge on two invoice lines",
         "SELECT charge_id || ' on ' || string_agg(invoice_id, ', ') FROM refs GROUP BY "
         "charge_id HAVING count(*) > 1",
         "billed twice: ",
         "void the invoice that bills a charge twice (meterflow invoice status --to void) and "
         "investigate how it was issued"},
    };
    std::string select = "SELECT 0";
    for (const auto& c : all)
      select += ", (SELECT count(*) FROM (" + std::string(c.offending) + ") d)";
    const auto r = chain_.row(select);
    for (int i = 0; i < static_cast<int>(std::size(all)); ++i)
      equal(all[i].name, r[0], r[i + 1], all[i].what, all[i].offending, all[i].action);
  }

  void invoices() {
    // The current charges that must be billed: those of closed periods and of invoiced ones.
    // One needs no line when a re-rate moved its metric's amount by less than the rounding: no
    // correction is issued then (SEMANTICS §7.5).
    const std::string billable = R"sql(
FROM cur_charge b
LEFT JOIN scopes s ON (s.customer_id, s.ps, s.metric) = (b.customer_id, b.ps, b.metric)
LEFT JOIN (SELECT DISTINCT charge_id FROM refs) x USING (charge_id)
LEFT JOIN (SELECT DISTINCT customer_id, ps FROM inv WHERE type = 'standard') d
  ON (d.customer_id, d.ps) = (b.customer_id, b.ps)
LEFT JOIN cust_wm w ON w.customer_id = b.customer_id
WHERE (b.pe + {lateness} <= w.watermark OR d.customer_id IS NOT NULL))sql";
    const char* const invoiced = "(x.charge_id IS NOT NULL OR coalesce(s.matches, false))";
    const std::string resolved = R"sql(
FROM refs r WHERE NOT EXISTS (
  SELECT 1 FROM rated_charges c
  WHERE c.charge_id = r.charge_id AND c.customer_id = r.customer_id AND c.metric = r.metric
    AND US(c.window_start) >= r.ps AND US(c.window_start) < r.pe))sql";
    const auto r =
        chain_.row("SELECT (SELECT count(*) FROM refs), (SELECT count(*) FROM refs) - "
                   "(SELECT count(*) " +
                   resolved + "), count(*), count(*) FILTER (WHERE " + invoiced + ") " + billable);
    equal("invoice lines name stored charges of their customer, period, metric", r[0], r[1],
          "unknown charges on lines: ",
          "SELECT r.invoice_id || ' ' || r.metric || ' ' || r.charge_id " + resolved,
          "void the invoice (meterflow invoice status --to void --reason ...) and investigate: "
          "it bills charges the store does not hold");
    equal("charges invoiced: every current charge of a closed period on an invoice line", r[2],
          r[3], "not invoiced: ",
          "SELECT b.customer_id || '/' || b.metric || ' ' || b.charge_id " + billable +
              " AND NOT " + invoiced,
          "re-process: start `meterflow serve` again or re-rate the period so that its invoice "
          "or correction is issued");
  }

  // Returns Σ totals of the invoices in force and Σ their ledger entries (the report's totals).
  std::pair<decimal, decimal> invoice_totals() {
    const std::string adds_up = R"sql(
FROM inv i
LEFT JOIN (SELECT invoice_id, sum(amount) AS amount FROM lines GROUP BY invoice_id) l
  USING (invoice_id)
WHERE coalesce(l.amount, 0) = i.subtotal AND i.subtotal - i.credits_applied = i.total)sql";
    // Issuing books the total, voiding an issued invoice its reversal: an invoice in force
    // (issued, paid) nets its total in the ledger, a draft or void one nothing.
    const std::string ledger = R"sql(
FROM inv i
LEFT JOIN (SELECT e.invoice_id, sum(e.amount) AS amount,
                  bool_and(e.customer_id = v.customer_id AND e.currency = v.currency) AS matches
           FROM ledger_entries e JOIN inv v USING (invoice_id) GROUP BY e.invoice_id) b
  USING (invoice_id))sql";
    const char* const in_force = "CASE WHEN i.status IN ('issued', 'paid') THEN i.total ELSE 0 END";
    const std::string booked_wrong =
        std::string("coalesce(b.amount, 0) <> ") + in_force + " OR NOT coalesce(b.matches, true)";
    const auto r = chain_.row("SELECT (SELECT count(*) FROM inv), (SELECT count(*) " + adds_up +
                              "), (SELECT count(*) FROM scopes), (SELECT count(*) FROM scopes "
                              "WHERE matches), coalesce(sum(" +
                              in_force + "), 0)::text, coalesce(sum(b.amount), 0)::text, " +
                              "count(*) FILTER (WHERE " + booked_wrong + ") " + ledger);
    equal("per invoice: sum of lines = subtotal and subtotal - credits = total", r[0], r[1],
          "invoices that do not add up: ",
          "SELECT invoice_id FROM inv EXCEPT SELECT i.invoice_id " + adds_up,
          "void: the invoice's totals do not add up; void it (meterflow invoice status --to "
          "void) and have a corrected one issued");
    equal("per customer, period, metric: |charges - invoice lines| < one minor unit", r[2], r[3],
          "customer/period/metric charged vs invoiced: ",
          "SELECT customer_id || '/' || left(TS(ps), 7) || '/' || metric || ' ' || charged || "
          "' vs ' || invoiced FROM scopes WHERE NOT matches",
          "re-process: re-rate the period (`meterflow rerate`) so that a correction invoice bills "
          "the difference; "
          "void the invoice if its lines are wrong");
    const decimal expected = decimal_of(r[4]), booked = decimal_of(r[5]);
    const bool ok = expected == booked && r[6].as<std::int64_t>() == 0;
    checks_.add_bool(
        "sum of invoice totals = ledger revenue", ok, expected.to_string(), booked.to_string(),
        ok ? ""
           : "invoices whose ledger entries differ from their total (issued, paid) or from 0 "
             "(draft, void): " +
                 chain_.sample("SELECT i.invoice_id || ' ' || i.status " + ledger + " WHERE " +
                               booked_wrong),
        "investigate: the ledger holds entries that no status change explains (it books an "
        "invoice's total when issued and its reversal when voided)");
    return {expected, booked};
  }

  nlohmann::ordered_json skipped() const { return skipped_; }

private:
  // A check that holds when two counts are equal; when they differ, the detail is `what`
  // followed by the first rows of `offending` (a one-column query over the chain).
  void equal(const char* name, const pqxx::field& expected, const pqxx::field& actual,
             const std::string& what, const std::string& offending, const char* action) {
    const std::string e = expected.c_str(), a = actual.c_str();
    const bool differ = e != a;
    checks_.add(name, e, a,
                differ ? what + (offending.empty() ? "" : chain_.sample(offending)) : "", action);
  }

  void skip(const char* stage) { skipped_.push_back(std::string(stage) + " (needs --config)"); }

  chain_reader& chain_;
  const config::configuration* cfg_;
  check_list& checks_;
  nlohmann::ordered_json skipped_ = nlohmann::ordered_json::array();
};

nlohmann::ordered_json counts(chain_reader& chain, const config::configuration* cfg,
                              const reconcile_scope& scope) {
  nlohmann::ordered_json j;
  const bool whole = !scope.from && !scope.to;
  const auto r = chain.row(R"sql(
SELECT (SELECT count(*) FROM telemetry_events WHERE US(event_time) >= {from}
          AND US(event_time) < {to}),
       (SELECT coalesce(sum(duplicates), 0) FROM source_offsets),
       (SELECT count(*) FROM rejected_events WHERE reason = 'event_id_conflict'),
       (SELECT count(*) FROM rejected_events WHERE reason <> 'event_id_conflict'),
       (SELECT count(*) FROM aggregated_usage WHERE US(window_start) < {to}
          AND US(window_end) > {from}),
       (SELECT count(*) FROM rated_charges WHERE US(window_start) < {to}
          AND US(window_end) > {from}),
       (SELECT count(*) FROM cur_charge),
       (SELECT count(*) FROM inv))sql");
  const auto accepted = r[0].as<std::int64_t>();
  // Input lines carry no trustworthy event time: their counts are the whole store's.
  if (whole)
    j["received"] =
        accepted + r[1].as<std::int64_t>() + r[2].as<std::int64_t>() + r[3].as<std::int64_t>();
  j["accepted"] = accepted;
  if (whole) {
    j["duplicates"] = r[1].as<std::int64_t>();
    j["conflicts"] = r[2].as<std::int64_t>();
    j["rejected"] = r[3].as<std::int64_t>();
  }
  if (cfg) {
    const auto e = chain.row(R"sql(
SELECT count(DISTINCT (customer_id, event_id)),
       count(DISTINCT (customer_id, event_id)) FILTER (WHERE state <> 'awaiting_commit'
         AND wm_before >= ws + {window_size} AND wm_before < ws + {window_size} + {lateness}),
       count(DISTINCT (customer_id, event_id)) FILTER (WHERE state <> 'awaiting_commit'
         AND wm_before >= ws + {window_size} + {lateness}),
       count(*) FILTER (WHERE state = 'awaiting_window_final'),
       count(*) FILTER (WHERE state = 'awaiting_rerate' AND NOT in_aggregate),
       count(*) FILTER (WHERE state = 'awaiting_commit')
FROM placed)sql");
    j["metered"] = e[0].as<std::int64_t>();
    j["unmetered"] = accepted - e[0].as<std::int64_t>();
    j["late"] = e[1].as<std::int64_t>();
    j["very_late"] = e[2].as<std::int64_t>();
    j["feeds_awaiting_window_final"] = e[3].as<std::int64_t>();
    j["feeds_awaiting_rerate"] = e[4].as<std::int64_t>();
    j["feeds_awaiting_commit"] = e[5].as<std::int64_t>();
  }
  j["aggregate_revisions"] = r[4].as<std::int64_t>();
  j["charges"] = r[5].as<std::int64_t>();
  j["current_charges"] = r[6].as<std::int64_t>();
  j["invoices"] = r[7].as<std::int64_t>();
  return j;
}

nlohmann::ordered_json unpriced_windows(chain_reader& chain) {
  static constexpr pricing::unpriced_reason reasons[] = {pricing::unpriced_reason::no_price_book,
                                                         pricing::unpriced_reason::no_version,
                                                         pricing::unpriced_reason::no_price};
  auto out = nlohmann::ordered_json::array();
  for (const auto& r : chain.rows("SELECT customer_id, metric, ws, we, quantity::text, reason, "
                                  "price_book_id FROM listed ORDER BY ws, customer_id, metric")) {
    persistence::unpriced_window u{r[0].as<std::string>(),
                                   r[1].as<std::string>(),
                                   r[2].as<timestamp>(),
                                   r[3].as<timestamp>(),
                                   decimal_of(r[4]),
                                   pricing::unpriced_reason::none,
                                   r[6].is_null() ? "" : r[6].as<std::string>()};
    for (auto reason : reasons)
      if (r[5].as<std::string>() == pricing::to_string(reason))
        u.reason = reason;
    out.push_back(persistence::to_json(u));
  }
  return out;
}

nlohmann::ordered_json scope_json(const reconcile_scope& scope, const store_state& state) {
  auto bound = [](const std::optional<timestamp>& t) {
    return t ? nlohmann::ordered_json(pricing::format_rfc3339(*t)) : nlohmann::ordered_json();
  };
  nlohmann::ordered_json watermark;
  if (state.finished)
    watermark = "+infinity";
  else if (state.watermark)
    watermark = pricing::format_rfc3339(*state.watermark);
  return {{"scope", {{"name", scope.name}, {"from", bound(scope.from)}, {"to", bound(scope.to)}}},
          {"store",
           {{"committed_through", state.committed},
            {"finished", state.finished},
            {"watermark", watermark}}}};
}

} // namespace

reconciliation_report reconcile_store(const std::string& conninfo, const config::configuration* cfg,
                                      const reconcile_scope& scope) {
  try {
    pqxx::connection c(conninfo);
    c.set_client_encoding("UTF8");
    persistence::require_current_schema(c);
    snapshot tx(c);                        // one snapshot: a running `serve` may append meanwhile
    tx.exec("SET LOCAL TimeZone = 'UTC'"); // billing periods are UTC months
    // The planner cannot estimate the CTEs' rows and picks nested loops that are quadratic on
    // a large store; every join here is an equi-join that hashes well. Without nested loops the
    // estimated costs are huge, and JIT would spend seconds compiling each query.
    tx.exec("SET LOCAL enable_nestloop = off");
    tx.exec("SET LOCAL jit = off");
    chain_reader chain(tx, cfg, scope);
    check_list checks;
    store_checks run(chain, cfg, checks);
    run.events();
    run.aggregates();
    run.charges();
    const auto [aggregate_quantity, charge_quantity] =
        cfg ? run.quantities() : std::pair<decimal, decimal>();
    run.duplicates();
    run.invoices();
    const auto [in_force, booked] = run.invoice_totals();

    reconciliation_report report;
    report.ok = checks.ok();
    report.json = {{"ok", report.ok}};
    report.json.update(scope_json(scope, chain.state()));
    report.json["counts"] = counts(chain, cfg, scope);
    auto& totals = report.json["totals"];
    if (cfg) {
      totals["aggregate_quantity"] = aggregate_quantity.to_string();
      totals["charge_quantity"] = charge_quantity.to_string();
    }
    totals["invoice_totals"] = in_force.to_string();
    totals["ledger_revenue"] = booked.to_string();
    report.json["checks"] = checks.take();
    if (!cfg)
      report.json["skipped"] = run.skipped();
    report.json["unpriced_windows"] =
        cfg ? unpriced_windows(chain) : nlohmann::ordered_json::array();
    return report;
  } catch (const pqxx::failure& e) {
    throw persistence::store_error(std::string("reconciling the store: ") + e.what());
  }
}

} // namespace meterflow::runtime
