// The meterflow benchmark pipeline in DuckDB SQL (run by bench/run.sh): read the NDJSON,
// deduplicate on (customer_id, event_id) keeping the first line, hourly windows, monthly period
// quantities, flat and graduated-tier pricing of bench/config.json, each invoice line rounded
// to cents (half up). No watermarks, lateness, incremental charges, explanations or invoices.
//
// Usage: node pipeline.mjs EVENTS.ndjson [THREADS]
import { DuckDBInstance } from '@duckdb/node-api';

const [events, threads = '2'] = process.argv.slice(2);
if (!events) {
  console.error('usage: node pipeline.mjs EVENTS.ndjson [THREADS]');
  process.exit(2);
}

const instance = await DuckDBInstance.create(':memory:', { threads });
const db = await instance.connect();
const run = (sql) => db.run(sql);
const quoted = `'${events.replaceAll("'", "''")}'`;

const start = process.hrtime.bigint();
await run(`SET TimeZone = 'UTC'`);
// The price books of bench/config.json, by hand (bench/run.sh cross-checks the total).
await run(`CREATE TABLE meters AS SELECT * FROM (VALUES
  ('api_calls', 'api_call', 'count'), ('gb_stored', 'storage', 'sum')) AS t(metric, event_type, aggregation)`);
await run(`CREATE TABLE customer_books AS
  SELECT 'cust-00000' || i AS customer_id, 'pb_bench_tiered' AS price_book FROM range(1, 6) AS r(i)`);
await run(`CREATE TABLE prices AS SELECT * FROM (VALUES
  ('pb_bench', 'v1', 'api_calls', TIMESTAMP '2024-01-01', TIMESTAMP '2024-02-01', 'flat', 0.002::DECIMAL(18,6)),
  ('pb_bench', 'v1', 'gb_stored', TIMESTAMP '2024-01-01', TIMESTAMP '2024-02-01', 'flat', 0.05),
  ('pb_bench', 'v2', 'api_calls', TIMESTAMP '2024-02-01', TIMESTAMP '2024-04-01', 'flat', 0.0015),
  ('pb_bench', 'v2', 'gb_stored', TIMESTAMP '2024-02-01', TIMESTAMP '2024-04-01', 'flat', 0.04),
  ('pb_bench_tiered', 'v1', 'api_calls', TIMESTAMP '2024-01-01', TIMESTAMP '2024-04-01', 'tiered', NULL),
  ('pb_bench_tiered', 'v1', 'gb_stored', TIMESTAMP '2024-01-01', TIMESTAMP '2024-04-01', 'flat', 0.05))
  AS t(price_book, version, metric, effective_from, effective_until, model, unit_price)`);
await run(`CREATE TABLE tiers AS SELECT * FROM (VALUES
  ('pb_bench_tiered', 'v1', 'api_calls', 0::DECIMAL(18,6), 10000::DECIMAL(18,6), 0.002::DECIMAL(18,6), 0::DECIMAL(18,6)),
  ('pb_bench_tiered', 'v1', 'api_calls', 10000, 100000, 0.0015, 5),
  ('pb_bench_tiered', 'v1', 'api_calls', 100000, NULL, 0.001, 10))
  AS t(price_book, version, metric, lower_bound, up_to, unit_price, flat_fee)`);

// Lines keep file order: row_number() over the scan, with insertion order preserved (default).
await run(`CREATE TABLE raw AS
  SELECT row_number() OVER () AS line_no, *
  FROM read_ndjson(${quoted}, format = 'newline_delimited', columns = {
    event_id: 'VARCHAR', event_time: 'TIMESTAMPTZ', customer_id: 'VARCHAR',
    event_type: 'VARCHAR', value: 'DECIMAL(38,12)'})`);
await run(`CREATE TABLE events AS
  SELECT DISTINCT ON (customer_id, event_id) line_no, customer_id, event_id, event_type,
         event_time, coalesce(value, 1) AS value
  FROM raw ORDER BY customer_id, event_id, line_no`);
await run(`CREATE TABLE windows AS
  SELECT e.customer_id, m.metric, date_trunc('hour', e.event_time) AS window_start,
         CASE m.aggregation WHEN 'count' THEN count(*)::DECIMAL(38,12) ELSE sum(e.value) END AS quantity
  FROM events AS e JOIN meters AS m USING (event_type)
  GROUP BY e.customer_id, m.metric, m.aggregation, date_trunc('hour', e.event_time)`);
await run(`CREATE TABLE lines AS
  WITH periods AS (
    SELECT customer_id, metric, date_trunc('month', window_start)::TIMESTAMP AS period_start,
           sum(quantity)::DECIMAL(30,6) AS quantity
    FROM windows GROUP BY ALL
  ), priced AS (
    SELECT p.*, pr.model, pr.unit_price, pr.price_book, pr.version
    FROM periods AS p
    LEFT JOIN customer_books AS cb USING (customer_id)
    JOIN prices AS pr ON pr.price_book = coalesce(cb.price_book, 'pb_bench')
                     AND pr.metric = p.metric
                     AND p.period_start >= pr.effective_from AND p.period_start < pr.effective_until
  ), tiered AS (
    SELECT pr.customer_id, pr.metric, pr.period_start,
           sum(greatest(0, least(pr.quantity, coalesce(t.up_to, pr.quantity)) - t.lower_bound) * t.unit_price
               + CASE WHEN pr.quantity > t.lower_bound THEN t.flat_fee ELSE 0 END) AS amount
    FROM priced AS pr JOIN tiers AS t
      ON t.price_book = pr.price_book AND t.version = pr.version AND t.metric = pr.metric
    WHERE pr.model = 'tiered'
    GROUP BY ALL
  )
  SELECT pr.customer_id, pr.metric, pr.period_start, pr.quantity,
         round(CASE pr.model WHEN 'flat' THEN pr.quantity * pr.unit_price ELSE t.amount END, 2) AS amount
  FROM priced AS pr LEFT JOIN tiered AS t USING (customer_id, metric, period_start)`);
const reader = await db.runAndReadAll(`SELECT
  (SELECT count(*) FROM raw) AS lines,
  (SELECT count(*) FROM events) AS accepted,
  (SELECT count(*) FROM windows) AS windows,
  (SELECT sum(quantity) FROM lines WHERE metric = 'api_calls')::VARCHAR AS api_calls,
  (SELECT sum(quantity) FROM lines WHERE metric = 'gb_stored')::VARCHAR AS gb_stored,
  (SELECT sum(amount) FROM lines)::VARCHAR AS total`);
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
const [row] = reader.getRowObjects();
console.log(`RESULT lines=${row.lines} accepted=${row.accepted} windows=${row.windows} ` +
            `api_calls=${row.api_calls} gb_stored=${row.gb_stored} total=${row.total}`);
console.log(`seconds=${seconds.toFixed(3)}`);
