#include "persistence/pg_schema.hpp"

#include "persistence/store.hpp"

#include <pqxx/pqxx>

namespace meterflow::persistence {

namespace {

// Serializes schema changes of concurrent `migrate` calls (any number that fits a bigint).
constexpr const char* migration_lock = "SELECT pg_advisory_xact_lock(7235186441630581809)";

const char* const bootstrap = R"sql(
CREATE TABLE schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
)sql";

// Times are timestamptz (UTC microseconds, like pricing::timestamp), money and quantities
// NUMERIC(38,12) (pricing::decimal: 12 fractional digits, magnitude below 10^26).
const char* const v1_events = R"sql(
CREATE FUNCTION meterflow_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'meterflow: % on % refused: the table is append-only', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation',
          HINT = 'Corrections are new rows: a superseding charge, a correction invoice, '
                 'a status event, a new price book version.';
END
$$;

CREATE TRIGGER schema_migrations_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON schema_migrations FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();

-- Accepted (deduplicated) raw events. metadata_canonical is the engine's canonical metadata text,
-- byte for byte (duplicate detection compares it); metadata is the same as JSONB for queries,
-- NULL when absent or when JSONB cannot represent it (\u0000, numbers beyond its range).
-- partition is the engine partition that owns the customer; append_seq the event's index in
-- that partition's append order.
CREATE TABLE telemetry_events (
  customer_id        text COLLATE "C" NOT NULL,
  event_id           text COLLATE "C" NOT NULL,
  event_type         text NOT NULL,
  event_time         timestamptz NOT NULL,
  value              numeric(38,12) NOT NULL,
  metadata           jsonb,
  metadata_canonical text,
  ingestion_time     timestamptz NOT NULL DEFAULT now(),
  partition          integer NOT NULL,
  append_seq         bigint NOT NULL,
  source_position    bigint NOT NULL,
  PRIMARY KEY (customer_id, event_id)
);

-- One row per committed batch, in the transaction of the batch's events: the highest source
-- position it consumed (the consumed position is the maximum), its dedup outcome, and the
-- append_seq range [append_seq_start, append_seq_end) of its events. The ranges of a partition
-- are contiguous and a start is used once: a second writer of a partition cannot commit.
CREATE TABLE source_offsets (
  offset_seq       bigserial PRIMARY KEY,
  source           text NOT NULL,
  partition        integer NOT NULL,
  position         bigint NOT NULL,
  events_accepted  integer NOT NULL,
  duplicates       integer NOT NULL,
  conflicts        integer NOT NULL,
  append_seq_start bigint NOT NULL,
  append_seq_end   bigint NOT NULL,
  committed_at     timestamptz NOT NULL DEFAULT now(),
  CHECK (append_seq_end - append_seq_start = events_accepted)
);
CREATE INDEX source_offsets_position ON source_offsets (source, partition, position);
CREATE UNIQUE INDEX source_offsets_append_seq ON source_offsets (partition, append_seq_start)
  WHERE events_accepted > 0;

CREATE TRIGGER telemetry_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON telemetry_events FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER source_offsets_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON source_offsets FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
)sql";

const char* const v2_records = R"sql(
-- Emission order of the records, across tables.
CREATE SEQUENCE record_emission_seq;

CREATE TABLE aggregated_usage (
  aggregation_id text PRIMARY KEY,
  customer_id    text NOT NULL,
  metric         text NOT NULL,
  window_start   timestamptz NOT NULL,
  window_end     timestamptz NOT NULL,
  revision       integer NOT NULL,
  kind           text NOT NULL CHECK (kind IN ('provisional', 'final', 'reaggregated')),
  is_final       boolean NOT NULL,
  value          numeric(38,12) NOT NULL,
  event_count    bigint NOT NULL,
  event_ids      text[] NOT NULL,
  emission_seq   bigint NOT NULL,
  recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX aggregated_usage_window ON aggregated_usage (customer_id, metric, window_start);

CREATE TABLE price_books (
  price_book_id text PRIMARY KEY,
  currency      text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- definition_text is the version's JSON as published, byte for byte; the other columns are
-- derived from it for queries.
CREATE TABLE price_book_versions (
  price_book_id   text NOT NULL REFERENCES price_books,
  version         text NOT NULL,
  publication_seq bigserial NOT NULL UNIQUE,
  definition_text text NOT NULL,
  definition      jsonb NOT NULL,
  effective_from  timestamptz,
  effective_until timestamptz,
  prices          jsonb,
  published_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (price_book_id, version)
);

-- calculation_metadata: the charge's calculation (model, rounding, formula, price_before,
-- price_after, tiers) and its source events (source_event_count, source_event_ids).
CREATE TABLE rated_charges (
  charge_id            text PRIMARY KEY,
  customer_id          text NOT NULL,
  metric               text NOT NULL,
  window_start         timestamptz NOT NULL,
  window_end           timestamptz NOT NULL,
  aggregation_id       text NOT NULL,
  quantity             numeric(38,12) NOT NULL,
  cumulative_before    numeric(38,12) NOT NULL,
  cumulative_after     numeric(38,12) NOT NULL,
  amount               numeric(38,12) NOT NULL,
  currency             text NOT NULL,
  price_book_id        text NOT NULL,
  version              text NOT NULL,
  effective_from       timestamptz NOT NULL,
  effective_until      timestamptz,
  supersedes_charge_id text UNIQUE REFERENCES rated_charges,
  trigger              text NOT NULL CHECK (trigger IN ('window_final', 'period_close', 'rerate')),
  calculation_metadata jsonb NOT NULL,
  emission_seq         bigint NOT NULL,
  recorded_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rated_charges_scope ON rated_charges (customer_id, metric, window_start);
CREATE INDEX rated_charges_order ON rated_charges (emission_seq);

-- A window listed with no applicable price; listed again only when its quantity changed.
CREATE TABLE unpriced_windows (
  customer_id   text NOT NULL,
  metric        text NOT NULL,
  window_start  timestamptz NOT NULL,
  window_end    timestamptz NOT NULL,
  quantity      numeric(38,12) NOT NULL,
  reason        text NOT NULL CHECK (reason IN ('no_price_book', 'no_version', 'no_price')),
  price_book_id text,
  emission_seq  bigint NOT NULL,
  recorded_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (customer_id, metric, window_start, quantity, reason)
);

-- Invalid input lines and conflicting duplicates; raw holds the line's exact bytes.
CREATE TABLE rejected_events (
  line         bigint PRIMARY KEY,
  reason       text NOT NULL,
  detail       text NOT NULL,
  raw          bytea NOT NULL,
  emission_seq bigint NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE invoices (
  invoice_id          text PRIMARY KEY,
  type                text NOT NULL CHECK (type IN ('standard', 'correction')),
  corrects_invoice_id text REFERENCES invoices,
  customer_id         text NOT NULL,
  period_start        timestamptz NOT NULL,
  period_end          timestamptz NOT NULL,
  currency            text NOT NULL,
  subtotal            numeric(38,12) NOT NULL,
  credits_applied     numeric(38,12) NOT NULL,
  total               numeric(38,12) NOT NULL,
  credit_reasons      text[] NOT NULL,
  issue_seq           bigint NOT NULL DEFAULT nextval('record_emission_seq'),
  recorded_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_period ON invoices (customer_id, period_start);

CREATE TABLE invoice_line_items (
  line_item_id text PRIMARY KEY,
  invoice_id   text NOT NULL REFERENCES invoices,
  line_no      integer NOT NULL,
  metric       text NOT NULL,
  quantity     numeric(38,12) NOT NULL,
  amount       numeric(38,12) NOT NULL,
  charge_ids   text[] NOT NULL,
  UNIQUE (invoice_id, line_no)
);

CREATE TABLE invoice_status_events (
  seq         bigserial PRIMARY KEY,
  invoice_id  text NOT NULL REFERENCES invoices,
  status      text NOT NULL CHECK (status IN ('draft', 'issued', 'paid', 'void')),
  actor       text NOT NULL,
  reason      text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_status_events_invoice ON invoice_status_events (invoice_id, seq);

-- kind 'invoice' books an issued invoice's total; 'reversal' the negated total of a voided one.
CREATE TABLE ledger_entries (
  entry_seq   bigserial PRIMARY KEY,
  invoice_id  text NOT NULL REFERENCES invoices,
  customer_id text NOT NULL,
  currency    text NOT NULL,
  amount      numeric(38,12) NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('invoice', 'reversal')),
  recorded_at timestamptz NOT NULL DEFAULT now()
);

-- A re-rate of a scope (SEMANTICS §7): what triggered it, what it superseded and issued.
CREATE TABLE rerate_runs (
  rerate_run_id           text PRIMARY KEY,
  trigger                 text NOT NULL,
  customer_id             text,
  metric                  text,
  period_start            timestamptz,
  period_end              timestamptz,
  superseding_charge_ids  text[] NOT NULL DEFAULT '{}',
  correction_invoice_ids  text[] NOT NULL DEFAULT '{}',
  recorded_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER aggregated_usage_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON aggregated_usage FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER price_books_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON price_books FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER price_book_versions_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON price_book_versions FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER rated_charges_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON rated_charges FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER unpriced_windows_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON unpriced_windows FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER rejected_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON rejected_events FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER invoices_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON invoices FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER invoice_line_items_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON invoice_line_items FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER invoice_status_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON invoice_status_events FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON ledger_entries FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
CREATE TRIGGER rerate_runs_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON rerate_runs FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
)sql";

const char* const v5_rerate_runs = R"sql(
ALTER TABLE rerate_runs
  ADD COLUMN run_seq bigserial,
  ADD COLUMN reason  text NOT NULL DEFAULT '',
  ADD COLUMN scope   jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN result  jsonb NOT NULL DEFAULT '{}';
)sql";

const char* const v4_progress = R"sql(
CREATE TABLE serve_progress (
  progress_seq bigserial PRIMARY KEY,
  source       text NOT NULL,
  position     bigint NOT NULL,
  finished     boolean NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX serve_progress_source ON serve_progress (source, progress_seq);
CREATE TRIGGER serve_progress_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON serve_progress FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
)sql";

// A streaming source's watermark advances without events of their own (idle partitions), to
// rebuild its watermark history on restart; the watermark in microseconds since the epoch.
const char* const v6_watermark_advances = R"sql(
CREATE TABLE watermark_advances (
  advance_seq  bigserial PRIMARY KEY,
  source       text NOT NULL,
  position     bigint NOT NULL,
  watermark    bigint NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX watermark_advances_source ON watermark_advances (source, position);
CREATE TRIGGER watermark_advances_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
  ON watermark_advances FOR EACH STATEMENT EXECUTE FUNCTION meterflow_append_only();
)sql";

const char* const v3_views = R"sql(
-- The charges no other charge supersedes: the current charge of every window.
CREATE VIEW current_charges AS
SELECT c.*
FROM rated_charges c
WHERE NOT EXISTS (SELECT 1 FROM rated_charges s WHERE s.supersedes_charge_id = c.charge_id);

-- Every invoice's latest status event.
CREATE VIEW current_invoice_status AS
SELECT DISTINCT ON (invoice_id) invoice_id, status, actor, reason, recorded_at
FROM invoice_status_events
ORDER BY invoice_id, seq DESC;
)sql";

store_error failure(const std::string& what, const std::exception& e) {
  return store_error(what + ": " + e.what());
}

void require_utf8(pqxx::connection_base& connection) {
  pqxx::nontransaction tx(connection);
  const auto encoding = tx.exec1("SHOW server_encoding")[0].as<std::string>();
  if (encoding != "UTF8")
    throw store_error("the database's encoding is " + encoding +
                      ", meterflow needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')");
}

bool has_migrations_table(pqxx::transaction_base& tx) {
  return tx.exec1("SELECT to_regclass('schema_migrations') IS NOT NULL")[0].as<bool>();
}

int version_in(pqxx::transaction_base& tx) {
  if (!has_migrations_table(tx))
    return 0;
  return tx.exec1("SELECT coalesce(max(version), 0) FROM schema_migrations")[0].as<int>();
}

} // namespace

const std::vector<migration>& migrations() {
  static const std::vector<migration> all = {
      {1, "raw events and consumed source positions", v1_events},
      {2, "records: aggregates, price books, charges, invoices, status events, ledger", v2_records},
      {3, "current charges and current invoice status views", v3_views},
      {4, "service progress through its input", v4_progress},
      {5, "re-rate runs: reason, scope and result", v5_rerate_runs},
      {6, "watermark advances of idle stream partitions", v6_watermark_advances},
  };
  return all;
}

std::vector<migration> migrate(pqxx::connection_base& connection) {
  try {
    require_utf8(connection);
    std::vector<migration> applied;
    for (const auto& m : migrations()) {
      pqxx::work tx(connection);
      tx.exec(migration_lock);
      if (!has_migrations_table(tx))
        tx.exec(bootstrap);
      if (version_in(tx) >= m.version)
        continue;
      tx.exec(m.sql);
      tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version,
                     std::string(m.name));
      tx.commit();
      applied.push_back(m);
    }
    return applied;
  } catch (const pqxx::failure& e) {
    throw failure("migrating the schema", e);
  }
}

int schema_version(pqxx::connection_base& connection) {
  try {
    pqxx::read_transaction tx(connection);
    return version_in(tx);
  } catch (const pqxx::failure& e) {
    throw failure("reading the schema version", e);
  }
}

void require_current_schema(pqxx::connection_base& connection) {
  try {
    require_utf8(connection);
  } catch (const pqxx::failure& e) {
    throw failure("reading the database's encoding", e);
  }
  const int have = schema_version(connection);
  const int want = migrations().back().version;
  if (have < want)
    throw store_error("the database's schema is at version " + std::to_string(have) +
                      ", meterflow needs " + std::to_string(want) +
                      ": run `meterflow migrate --store URL`");
  if (have > want)
    throw store_error("the database's schema is at version " + std::to_string(have) +
                      ", newer than this meterflow (" + std::to_string(want) + ")");
}

} // namespace meterflow::persistence
