-- The meterflow benchmark pipeline in plain PostgreSQL SQL (bench/run.sh runs it inside a
-- throwaway cluster from pg_virtualenv): load the NDJSON, deduplicate on (customer_id, event_id)
-- keeping the first line, hourly windows with date_trunc, monthly period quantities, flat and
-- graduated-tier pricing of bench/config.json, each invoice line rounded to cents (half up).
-- @EVENTS@ is replaced by the events file. No watermarks, lateness, incremental charges,
-- explanations or invoices: only the arithmetic every metering pipeline must do.
\set ON_ERROR_STOP on
SET TimeZone = 'UTC';
SET work_mem = '256MB';
SELECT pg_backend_pid() AS backend_pid \gset

CREATE UNLOGGED TABLE raw_lines (line_no bigint GENERATED ALWAYS AS IDENTITY, doc text NOT NULL);
-- CSV with quote and delimiter bytes that never occur: each line is loaded verbatim.
\copy raw_lines (doc) FROM '@EVENTS@' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')

-- The price books of bench/config.json, by hand (the run's cross-check against meterflow's
-- invoice total shows they agree).
CREATE TABLE meters (metric text, event_type text, aggregation text);
INSERT INTO meters VALUES ('api_calls', 'api_call', 'count'), ('gb_stored', 'storage', 'sum');
CREATE TABLE customer_books (customer_id text PRIMARY KEY, price_book text);
INSERT INTO customer_books
  SELECT 'cust-00000' || i, 'pb_bench_tiered' FROM generate_series(1, 5) AS i;
CREATE TABLE prices (price_book text, version text, metric text, effective_from timestamptz,
                     effective_until timestamptz, model text, unit_price numeric);
INSERT INTO prices VALUES
  ('pb_bench', 'v1', 'api_calls', '2024-01-01Z', '2024-02-01Z', 'flat', 0.002),
  ('pb_bench', 'v1', 'gb_stored', '2024-01-01Z', '2024-02-01Z', 'flat', 0.05),
  ('pb_bench', 'v2', 'api_calls', '2024-02-01Z', '2024-04-01Z', 'flat', 0.0015),
  ('pb_bench', 'v2', 'gb_stored', '2024-02-01Z', '2024-04-01Z', 'flat', 0.04),
  ('pb_bench_tiered', 'v1', 'api_calls', '2024-01-01Z', '2024-04-01Z', 'tiered', NULL),
  ('pb_bench_tiered', 'v1', 'gb_stored', '2024-01-01Z', '2024-04-01Z', 'flat', 0.05);
CREATE TABLE tiers (price_book text, version text, metric text, lower_bound numeric,
                    up_to numeric, unit_price numeric, flat_fee numeric);
INSERT INTO tiers VALUES
  ('pb_bench_tiered', 'v1', 'api_calls', 0, 10000, 0.002, 0),
  ('pb_bench_tiered', 'v1', 'api_calls', 10000, 100000, 0.0015, 5),
  ('pb_bench_tiered', 'v1', 'api_calls', 100000, NULL, 0.001, 10);

CREATE UNLOGGED TABLE events AS
SELECT DISTINCT ON (customer_id, event_id)
       line_no, customer_id, event_id, event_type, event_time, value
FROM (SELECT line_no,
             j->>'customer_id' AS customer_id,
             j->>'event_id' AS event_id,
             j->>'event_type' AS event_type,
             (j->>'event_time')::timestamptz AS event_time,
             coalesce((j->>'value')::numeric(38, 12), 1) AS value
      FROM (SELECT line_no, doc::jsonb AS j FROM raw_lines) AS r) AS parsed
ORDER BY customer_id, event_id, line_no;

CREATE UNLOGGED TABLE windows AS
SELECT e.customer_id, m.metric, date_trunc('hour', e.event_time) AS window_start,
       CASE m.aggregation WHEN 'count' THEN count(*)::numeric ELSE sum(e.value) END AS quantity
FROM events AS e JOIN meters AS m USING (event_type)
GROUP BY e.customer_id, m.metric, m.aggregation, date_trunc('hour', e.event_time);

CREATE UNLOGGED TABLE lines AS
WITH periods AS (
  SELECT customer_id, metric, date_trunc('month', window_start) AS period_start,
         sum(quantity) AS quantity
  FROM windows GROUP BY 1, 2, 3
), priced AS (
  SELECT p.*, pr.model, pr.unit_price, pr.price_book, pr.version
  FROM periods AS p
  LEFT JOIN customer_books AS cb USING (customer_id)
  JOIN prices AS pr ON pr.price_book = coalesce(cb.price_book, 'pb_bench')
                   AND pr.metric = p.metric
                   AND p.period_start >= pr.effective_from AND p.period_start < pr.effective_until
)
SELECT customer_id, metric, period_start, quantity,
       round(CASE model
               WHEN 'flat' THEN quantity * unit_price
               ELSE (SELECT sum(greatest(0, least(pr.quantity, coalesce(t.up_to, pr.quantity))
                                            - t.lower_bound) * t.unit_price
                                + CASE WHEN pr.quantity > t.lower_bound THEN t.flat_fee ELSE 0 END)
                     FROM tiers AS t
                     WHERE t.price_book = pr.price_book AND t.version = pr.version
                       AND t.metric = pr.metric)
             END, 2) AS amount
FROM priced AS pr;

SELECT (SELECT count(*) FROM raw_lines) AS lines,
       (SELECT count(*) FROM events) AS accepted,
       (SELECT count(*) FROM windows) AS windows,
       (SELECT sum(quantity) FROM lines WHERE metric = 'api_calls') AS api_calls,
       (SELECT sum(quantity) FROM lines WHERE metric = 'gb_stored') AS gb_stored,
       (SELECT sum(amount) FROM lines) AS total
\gset
\echo RESULT lines=:lines accepted=:accepted windows=:windows api_calls=:api_calls gb_stored=:gb_stored total=:total
\setenv BACKEND_PID :backend_pid
\! grep VmHWM /proc/$BACKEND_PID/status
