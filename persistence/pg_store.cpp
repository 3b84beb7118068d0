#include "persistence/pg_store.hpp"

#include "persistence/json_format.hpp"
#include "persistence/pg_schema.hpp"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

namespace meterflow::persistence {

namespace {

using pricing::format_rfc3339;

// A time column as UTC microseconds since the epoch, exactly (extract returns numeric).
std::string micros(const char* column) {
  return std::string("(extract(epoch FROM ") + column + ") * 1000000)::bigint";
}

std::unique_ptr<pqxx::connection> connect(const std::string& conninfo) {
  try {
    auto c = std::make_unique<pqxx::connection>(conninfo);
    c->set_client_encoding("UTF8");
    require_current_schema(*c);
    return c;
  } catch (const pqxx::failure& e) {
    throw store_error(std::string("connecting to PostgreSQL: ") + e.what());
  }
}

store_error failure(const char* what, const std::exception& e) {
  return store_error(std::string(what) + ": " + e.what());
}

decimal decimal_of(const pqxx::field& f) {
  auto d = decimal::parse(f.c_str());
  if (!d)
    throw store_error("column " + std::string(f.name()) +
                      ": not a meterflow decimal: " + f.c_str());
  return *d;
}

std::optional<std::string> optional_of(const pqxx::field& f) {
  if (f.is_null())
    return std::nullopt;
  return f.as<std::string>();
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// JSONB rejects some valid JSON: the escape \u0000, lone surrogate escapes and numbers beyond
// NUMERIC's exponent range. Such metadata keeps only its canonical text.
bool jsonb_can_hold(std::string_view json) {
  bool in_string = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '"') {
        in_string = false;
      } else if (c == '\\') {
        if (i + 5 < json.size() && json[i + 1] == 'u') {
          int code = 0;
          for (std::size_t k = i + 2; k < i + 6; ++k)
            code = code * 16 + std::max(hex_digit(json[k]), 0);
          if (code == 0 || (code >= 0xD800 && code <= 0xDFFF))
            return false;
          i += 5;
        } else {
          ++i;
        }
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == 'e' || c == 'E') {
      std::size_t j = i + 1;
      if (j < json.size() && (json[j] == '+' || json[j] == '-'))
        ++j;
      const std::size_t digits = j;
      while (j < json.size() && json[j] >= '0' && json[j] <= '9')
        ++j;
      if (j - digits > 4)
        return false;
    }
  }
  return true;
}

// A PostgreSQL array literal of strings: {"a","b"}.
std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i)
      out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\')
        out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::vector<std::string> strings_of_json(const pqxx::field& f) {
  return nlohmann::json::parse(f.c_str()).get<std::vector<std::string>>();
}

std::string hex_of(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + bytes.size() * 2);
  for (unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 0xF];
  }
  return out;
}

std::string bytes_of_hex(std::string_view hex) {
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(hex_digit(hex[i]) * 16 + hex_digit(hex[i + 1]));
  return out;
}

template <class Enum, std::size_t N>
Enum enum_of(const pqxx::field& f, const Enum (&values)[N]) {
  for (Enum v : values)
    if (f.as<std::string>() == to_string(v))
      return v;
  throw store_error("column " + std::string(f.name()) + ": unknown value " + f.c_str());
}

constexpr aggregate_kind aggregate_kinds[] = {aggregate_kind::provisional, aggregate_kind::final,
                                              aggregate_kind::reaggregated};
constexpr charge_trigger charge_triggers[] = {charge_trigger::window_final,
                                              charge_trigger::period_close, charge_trigger::rerate};
constexpr invoice_type invoice_types[] = {invoice_type::standard, invoice_type::correction};
constexpr pricing::unpriced_reason unpriced_reasons[] = {pricing::unpriced_reason::no_price_book,
                                                         pricing::unpriced_reason::no_version,
                                                         pricing::unpriced_reason::no_price};

} // namespace

// ---- raw events ---------------------------------------------------------------------------------

struct pg_service_lock::connection {
  std::unique_ptr<pqxx::connection> c;
};

pg_service_lock::pg_service_lock(std::unique_ptr<connection> c) : connection_(std::move(c)) {}
pg_service_lock::~pg_service_lock() = default;

std::unique_ptr<pg_service_lock> pg_service_lock::try_acquire(const std::string& conninfo,
                                                              bool shared) {
  auto c = std::make_unique<connection>();
  c->c = connect(conninfo);
  try {
    pqxx::nontransaction tx(*c->c);
    // Advisory locks are per database; the store is the schema its tables are in.
    if (!tx.exec1(shared ? "SELECT pg_try_advisory_lock_shared(hashtext('meterflow:service:' || "
                           "current_schema()))"
                         : "SELECT pg_try_advisory_lock(hashtext('meterflow:service:' || "
                           "current_schema()))")[0]
             .as<bool>())
      return nullptr;
  } catch (const pqxx::failure& e) {
    throw failure("taking the service lock", e);
  }
  return std::unique_ptr<pg_service_lock>(new pg_service_lock(std::move(c)));
}

struct pg_event_store::connection {
  std::unique_ptr<pqxx::connection> c;
};

pg_event_store::pg_event_store(std::unique_ptr<connection> c, int partition, std::string source)
    : connection_(std::move(c)), partition_(partition), source_(std::move(source)) {}

pg_event_store::~pg_event_store() = default;

std::unique_ptr<pg_event_store> pg_event_store::load(const std::string& conninfo, int partition,
                                                     std::string source) {
  auto c = std::make_unique<connection>();
  c->c = connect(conninfo);
  std::unique_ptr<pg_event_store> store(new pg_event_store(std::move(c), partition, source));
  try {
    // One snapshot for the events and the consumed position.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(*store->connection_->c);
    tx.exec("DECLARE partition_events NO SCROLL CURSOR FOR SELECT customer_id, event_id, "
            "event_type, " +
            micros("event_time") +
            ", value::text, metadata_canonical, source_position, append_seq "
            "FROM telemetry_events WHERE partition = " +
            std::to_string(partition) + " ORDER BY append_seq");
    for (;;) {
      const auto rows = tx.exec("FETCH FORWARD 50000 FROM partition_events");
      if (rows.empty())
        break;
      for (const auto& r : rows) {
        if (r[7].as<std::int64_t>() != static_cast<std::int64_t>(store->events_.size()))
          throw store_error("partition " + std::to_string(partition) +
                            ": append_seq is not contiguous at " + r[7].c_str());
        event e;
        e.customer_id.assign(r[0].c_str(), r[0].size());
        e.event_id.assign(r[1].c_str(), r[1].size());
        e.event_type.assign(r[2].c_str(), r[2].size());
        e.event_time = r[3].as<std::int64_t>();
        e.value = decimal_of(r[4]);
        if (!r[5].is_null())
          e.metadata.assign(r[5].c_str(), r[5].size());
        store->events_.append(e, r[6].as<std::uint64_t>());
      }
    }
    const auto consumed = tx.exec_params1(
        "SELECT max(position) FROM source_offsets WHERE partition = $1 AND source = $2", partition,
        store->source_);
    if (!consumed[0].is_null())
      store->consumed_ = consumed[0].as<std::uint64_t>();
  } catch (const pqxx::failure& e) {
    throw failure("loading the stored events", e);
  }
  return store;
}

std::vector<append_outcome>
pg_event_store::append_batch(std::vector<event>&& events,
                             const std::vector<std::uint64_t>& positions) {
  if (positions.size() != events.size())
    throw std::invalid_argument("append_batch: one position per event");
  std::vector<append_outcome> outcomes(events.size(), append_outcome::accepted);
  if (events.empty())
    return outcomes;
  // Dedup against the stored events and, for keys not stored, against the batch's first
  // occurrence; nothing enters the read side before the commit.
  std::vector<std::uint32_t> accepted;
  accepted.reserve(events.size());
  std::unordered_map<std::string, std::uint32_t> first_in_batch;
  first_in_batch.reserve(events.size());
  int duplicates = 0, conflicts = 0;
  for (std::uint32_t i = 0; i < events.size(); ++i) {
    const event& e = events[i];
    if (auto stored = events_.outcome_if_stored(e, positions[i])) {
      outcomes[i] = *stored;
      duplicates += *stored == append_outcome::duplicate;
      conflicts += *stored == append_outcome::conflict;
      continue;
    }
    // A key new to the store: the batch's first occurrence is accepted.
    auto [it, inserted] = first_in_batch.try_emplace(e.customer_id + '\x1f' + e.event_id, i);
    const event& first = events[it->second];
    if (inserted) {
      accepted.push_back(i);
    } else if (first.same_payload(e)) {
      outcomes[i] = append_outcome::duplicate;
      ++duplicates;
    } else {
      outcomes[i] = append_outcome::conflict;
      ++conflicts;
    }
  }
  const std::uint64_t position = *std::max_element(positions.begin(), positions.end());
  write(events, positions, accepted, position, duplicates, conflicts);
  for (std::uint32_t i : accepted)
    events_.append(events[i], positions[i]);
  consumed_ = consumed_ ? std::max(*consumed_, position) : position;
  return outcomes;
}

void pg_event_store::write(const std::vector<event>& events,
                           const std::vector<std::uint64_t>& positions,
                           const std::vector<std::uint32_t>& accepted, std::uint64_t position,
                           int duplicates, int conflicts) {
  static const std::vector<std::string> columns = {
      "partition",  "append_seq", "source_position", "customer_id", "event_id",
      "event_type", "event_time", "value",           "metadata",    "metadata_canonical"};
  try {
    pqxx::work tx(*connection_->c);
    // The partition's stored events must be exactly the ones this store holds: a second writer
    // of the partition fails here, or on the unique start of the source_offsets row when both
    // commit at once.
    const auto start = static_cast<std::int64_t>(events_.size());
    const auto stored_end =
        tx.exec_params("SELECT append_seq_end FROM source_offsets WHERE partition = $1 AND "
                       "events_accepted > 0 ORDER BY append_seq_start DESC LIMIT 1",
                       partition_);
    if (!stored_end.empty() && stored_end[0][0].as<std::int64_t>() != start)
      throw store_error("partition " + std::to_string(partition_) + " holds " +
                        stored_end[0][0].c_str() + " events, this store " + std::to_string(start) +
                        ": another writer appended; reload the partition");
    if (!accepted.empty()) {
      pqxx::stream_to copy(tx, "telemetry_events", columns);
      std::int64_t append_seq = start;
      std::string time, value;
      for (std::uint32_t i : accepted) {
        const event& e = events[i];
        time = format_rfc3339(e.event_time);
        value = e.value.to_string();
        const char* canonical = e.metadata.empty() ? nullptr : e.metadata.c_str();
        const char* metadata = canonical && jsonb_can_hold(e.metadata) ? canonical : nullptr;
        const auto source_position = static_cast<std::int64_t>(positions[i]);
        copy << std::forward_as_tuple(partition_, append_seq, source_position, e.customer_id,
                                      e.event_id, e.event_type, time, value, metadata, canonical);
        ++append_seq;
      }
      copy.complete();
    }
    tx.exec_params("INSERT INTO source_offsets (source, partition, position, events_accepted, "
                   "duplicates, conflicts, append_seq_start, append_seq_end) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                   source_, partition_, static_cast<std::int64_t>(position),
                   static_cast<int>(accepted.size()), duplicates, conflicts, start,
                   start + static_cast<std::int64_t>(accepted.size()));
    tx.commit();
  } catch (const pqxx::failure& e) {
    throw failure("storing a batch of events", e);
  }
}

// ---- records ------------------------------------------------------------------------------------

namespace {

// Staging tables for COPY; the INSERT ... SELECT from them skips ids already stored.
const char* const staging = R"sql(
SET LOCAL client_min_messages = warning;
CREATE TEMP TABLE IF NOT EXISTS stage_aggregates (
  ord integer, aggregation_id text, customer_id text, metric text, window_start timestamptz,
  window_end timestamptz, revision integer, kind text, is_final boolean, value numeric,
  event_count bigint, event_ids text[]) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_charges (
  ord integer, charge_id text, customer_id text, metric text, window_start timestamptz,
  window_end timestamptz, aggregation_id text, quantity numeric, cumulative_before numeric,
  cumulative_after numeric, amount numeric, currency text, price_book_id text, version text,
  effective_from timestamptz, effective_until timestamptz, supersedes_charge_id text,
  trigger text, calculation_metadata jsonb) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_unpriced (
  ord integer, customer_id text, metric text, window_start timestamptz, window_end timestamptz,
  quantity numeric, reason text, price_book_id text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_rejected (
  ord integer, line bigint, reason text, detail text, raw bytea) ON COMMIT DELETE ROWS;
)sql";

const char* const aggregate_columns =
    "aggregation_id, customer_id, metric, window_start, window_end, revision, kind, is_final, "
    "value, event_count, event_ids";
const char* const charge_columns =
    "charge_id, customer_id, metric, window_start, window_end, aggregation_id, quantity, "
    "cumulative_before, cumulative_after, amount, currency, price_book_id, version, "
    "effective_from, effective_until, supersedes_charge_id, trigger, calculation_metadata";
const char* const unpriced_columns =
    "customer_id, metric, window_start, window_end, quantity, reason, price_book_id";
const char* const rejected_columns = "line, reason, detail, raw";

// Moves the staged rows into `table` in batch order, each with the next emission number; a row
// whose id (`conflict`) is already stored is skipped.
std::string insert_staged(const char* table, const char* stage, const char* columns,
                          const char* conflict) {
  return std::string("INSERT INTO ") + table + " (" + columns + ", emission_seq) SELECT " +
         columns + ", nextval('record_emission_seq') FROM (SELECT * FROM " + stage +
         " ORDER BY ord) staged ON CONFLICT (" + conflict + ") DO NOTHING";
}

std::vector<std::string> staging_columns(const char* columns) {
  std::vector<std::string> out = {"ord"};
  std::string_view rest = columns;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view name = rest.substr(0, comma);
    while (!name.empty() && name.front() == ' ')
      name.remove_prefix(1);
    out.emplace_back(name);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return out;
}

std::string calculation_metadata(const charge_record& c) {
  ordered_json j = to_json(c)["calculation"];
  j["source_event_count"] = c.source_event_count;
  j["source_event_ids"] = c.source_event_ids;
  return to_line(j);
}

// What reads select of an aggregate row (times as microseconds, arrays as JSON).
const std::string aggregate_fields =
    "aggregation_id, customer_id, metric, " + micros("window_start") + ", " + micros("window_end") +
    ", revision, kind, is_final, value::text, event_count, array_to_json(event_ids)::text ";
const std::string aggregate_select = "SELECT " + aggregate_fields;

aggregate_record aggregate_of(const pqxx::row& r) {
  aggregate_record a;
  a.aggregation_id = r[0].as<std::string>();
  a.customer_id = r[1].as<std::string>();
  a.metric = r[2].as<std::string>();
  a.window_start = r[3].as<std::int64_t>();
  a.window_end = r[4].as<std::int64_t>();
  a.revision = r[5].as<std::uint32_t>();
  a.kind = enum_of(r[6], aggregate_kinds);
  a.is_final = r[7].as<bool>();
  a.value = decimal_of(r[8]);
  a.event_count = r[9].as<std::uint64_t>();
  a.event_ids = strings_of_json(r[10]);
  return a;
}

const std::string charge_select =
    "SELECT charge_id, customer_id, metric, " + micros("window_start") + ", " +
    micros("window_end") +
    ", aggregation_id, quantity::text, cumulative_before::text, cumulative_after::text, "
    "amount::text, currency, price_book_id, version, " +
    micros("effective_from") + ", " + micros("effective_until") +
    ", supersedes_charge_id, trigger, calculation_metadata::text ";

template <class T>
T must(pricing::result<T>&& r, const char* what) {
  if (!r)
    throw store_error(std::string(what) + ": " + r.error_value().message);
  return std::move(r).value();
}

decimal decimal_in(const nlohmann::json& j, const char* key) {
  return must(decimal::parse(j.at(key).get<std::string>()), key);
}

charge_record charge_of(const pqxx::row& r) {
  charge_record c;
  c.charge_id = r[0].as<std::string>();
  c.customer_id = r[1].as<std::string>();
  c.metric = r[2].as<std::string>();
  c.window_start = r[3].as<std::int64_t>();
  c.window_end = r[4].as<std::int64_t>();
  c.aggregation_id = r[5].as<std::string>();
  c.quantity = decimal_of(r[6]);
  auto& calc = c.calculation;
  calc.cumulative_before = decimal_of(r[7]);
  calc.cumulative_after = decimal_of(r[8]);
  calc.amount = decimal_of(r[9]);
  calc.currency = r[10].as<std::string>();
  calc.price_book_id = r[11].as<std::string>();
  calc.version = r[12].as<std::string>();
  calc.effective_from = r[13].as<std::int64_t>();
  if (!r[14].is_null())
    calc.effective_until = r[14].as<std::int64_t>();
  c.supersedes_charge_id = optional_of(r[15]);
  c.trigger = enum_of(r[16], charge_triggers);
  const auto meta = nlohmann::json::parse(r[17].c_str());
  calc.model = must(pricing::parse_model_kind(meta.at("model").get<std::string>()), "model");
  calc.rounding =
      must(pricing::parse_rounding_mode(meta.at("rounding").get<std::string>()), "rounding");
  calc.formula = meta.at("formula").get<std::string>();
  calc.price_before = decimal_in(meta, "price_before");
  calc.price_after = decimal_in(meta, "price_after");
  for (const auto& t : meta.at("tiers"))
    calc.tiers.push_back({t.at("tier").get<int>(), decimal_in(t, "units"),
                          decimal_in(t, "unit_price"), decimal_in(t, "flat_fee"),
                          decimal_in(t, "amount")});
  c.source_event_count = meta.at("source_event_count").get<std::uint64_t>();
  c.source_event_ids = meta.at("source_event_ids").get<std::vector<std::string>>();
  return c;
}

const std::string invoice_select =
    "SELECT invoice_id, type, corrects_invoice_id, customer_id, " + micros("period_start") +
    ", currency, subtotal::text, credits_applied::text, total::text, "
    "array_to_json(credit_reasons)::text, (SELECT status FROM invoice_status_events s "
    "WHERE s.invoice_id = i.invoice_id ORDER BY seq LIMIT 1) FROM invoices i ";

// An invoice row of invoice_select without its lines.
invoice_record invoice_header_of(const pqxx::row& r) {
  invoice_record inv;
  inv.invoice_id = r[0].as<std::string>();
  inv.type = enum_of(r[1], invoice_types);
  inv.corrects_invoice_id = optional_of(r[2]);
  inv.customer_id = r[3].as<std::string>();
  inv.period = pricing::period_of(r[4].as<std::int64_t>());
  inv.currency = r[5].as<std::string>();
  inv.subtotal = decimal_of(r[6]);
  inv.credits_applied = decimal_of(r[7]);
  inv.total = decimal_of(r[8]);
  inv.credit_reasons = strings_of_json(r[9]);
  inv.status = r[10].as<std::string>();
  return inv;
}

const std::string line_fields =
    "line_item_id, metric, quantity::text, amount::text, array_to_json(charge_ids)::text ";

// A row of line_fields, whose columns begin at `first`.
invoice_line line_of(const pqxx::row& l, int first = 0) {
  return {l[first].as<std::string>(), l[first + 1].as<std::string>(), decimal_of(l[first + 2]),
          decimal_of(l[first + 3]), pack_ids(strings_of_json(l[first + 4]))};
}

invoice_record invoice_of(pqxx::transaction_base& tx, const pqxx::row& r) {
  invoice_record inv = invoice_header_of(r);
  for (const auto& l :
       tx.exec_params("SELECT " + line_fields +
                          "FROM invoice_line_items WHERE invoice_id = $1 ORDER BY line_no",
                      inv.invoice_id))
    inv.line_items.push_back(line_of(l));
  return inv;
}

unpriced_window unpriced_of(const pqxx::row& r) {
  unpriced_window u;
  u.customer_id = r[0].as<std::string>();
  u.metric = r[1].as<std::string>();
  u.window_start = r[2].as<std::int64_t>();
  u.window_end = r[3].as<std::int64_t>();
  u.quantity = decimal_of(r[4]);
  u.reason = enum_of(r[5], unpriced_reasons);
  u.price_book_id = optional_of(r[6]).value_or("");
  return u;
}

const std::string unpriced_select =
    "SELECT customer_id, metric, " + micros("window_start") + ", " + micros("window_end") +
    ", quantity::text, reason, price_book_id FROM unpriced_windows ";

// Invoices in issue order with their current status, of a customer and/or a period start when
// given; a page of them when `limit` is.
std::vector<invoice_record> invoices_in(pqxx::transaction_base& tx, const char* customer_id,
                                        const std::string* period_start,
                                        std::optional<std::size_t> limit, std::size_t offset) {
  std::vector<invoice_record> out;
  const std::string limit_text = limit ? std::to_string(*limit) : "";
  const auto rows =
      tx.exec_params(invoice_select + "WHERE ($1::text IS NULL OR customer_id = $1) AND "
                                      "($2::timestamptz IS NULL OR period_start = $2) "
                                      "ORDER BY issue_seq LIMIT $3::bigint OFFSET $4",
                     customer_id, period_start ? period_start->c_str() : nullptr,
                     limit ? limit_text.c_str() : nullptr, static_cast<std::int64_t>(offset));
  for (const auto& r : rows) {
    out.push_back(invoice_of(tx, r));
    out.back().status =
        tx.exec_params1("SELECT status FROM current_invoice_status WHERE invoice_id = $1",
                        out.back().invoice_id)[0]
            .as<std::string>();
  }
  return out;
}

using snapshot = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;

// Runs the queries of one read in one snapshot.
template <class F>
auto read(pqxx::connection& c, const char* what, F&& f) {
  try {
    snapshot tx(c);
    return f(tx);
  } catch (const pqxx::failure& e) {
    throw failure(what, e);
  }
}

class pg_record_store final : public record_store {
public:
  explicit pg_record_store(std::unique_ptr<pqxx::connection> c) : c_(std::move(c)) {}

  void append(const record_batch& batch) override {
    for (const auto& i : batch.invoices)
      if (i.status != "draft" && i.status != "issued")
        throw std::invalid_argument("invoice " + i.invoice_id + " cannot be recorded as " +
                                    i.status + " (draft or issued)");
    try {
      pqxx::work tx(*c_);
      tx.exec(staging);
      append_aggregates(tx, batch.aggregates);
      append_charges(tx, batch.charges);
      append_unpriced(tx, batch.unpriced);
      for (const auto& i : batch.invoices)
        append_invoice(tx, i);
      append_rejected(tx, batch.rejected);
      for (const auto& r : batch.rerate_runs)
        tx.exec_params("INSERT INTO rerate_runs (rerate_run_id, trigger, reason, scope, result, "
                       "superseding_charge_ids, correction_invoice_ids) "
                       "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7) "
                       "ON CONFLICT (rerate_run_id) DO NOTHING",
                       r.rerate_run_id, r.trigger, r.reason, r.scope_json, r.result_json,
                       text_array(r.superseding_charge_ids), text_array(r.correction_invoice_ids));
      for (const auto& p : batch.progress)
        tx.exec_params(
            "INSERT INTO serve_progress (source, position, finished) VALUES ($1, $2, $3)", p.source,
            static_cast<std::int64_t>(p.position), p.finished);
      for (const auto& a : batch.watermark_advances)
        tx.exec_params("INSERT INTO watermark_advances (source, position, watermark) "
                       "VALUES ($1, $2, $3)",
                       a.source, static_cast<std::int64_t>(a.position), a.watermark);
      tx.commit();
    } catch (const pqxx::foreign_key_violation& e) {
      throw std::invalid_argument(std::string("records refused: ") + e.what());
    } catch (const pqxx::unique_violation& e) {
      throw std::invalid_argument(std::string("records refused: ") + e.what());
    } catch (const pqxx::failure& e) {
      throw failure("storing records", e);
    }
  }

  std::vector<aggregate_record> aggregate_revisions(const std::string& customer_id,
                                                    const std::string& metric,
                                                    timestamp window_start) const override {
    return read(*c_, "reading aggregates", [&](snapshot& tx) {
      std::vector<aggregate_record> out;
      for (const auto& r :
           tx.exec_params(aggregate_select + "FROM aggregated_usage WHERE customer_id = $1 AND "
                                             "metric = $2 AND window_start = $3 "
                                             "ORDER BY revision, emission_seq",
                          customer_id, metric, format_rfc3339(window_start)))
        out.push_back(aggregate_of(r));
      return out;
    });
  }

  std::vector<charge_record> charges() const override {
    return read(*c_, "reading charges", [&](snapshot& tx) {
      std::vector<charge_record> out;
      for (const auto& r : tx.exec(charge_select + "FROM rated_charges ORDER BY emission_seq"))
        out.push_back(charge_of(r));
      return out;
    });
  }

  std::vector<charge_record> current_charges(const std::string& customer_id,
                                             const std::string& metric) const override {
    return read(*c_, "reading current charges", [&](snapshot& tx) {
      std::vector<charge_record> out;
      for (const auto& r :
           tx.exec_params(charge_select + "FROM current_charges WHERE customer_id = $1 AND "
                                          "metric = $2 ORDER BY window_start, emission_seq",
                          customer_id, metric))
        out.push_back(charge_of(r));
      return out;
    });
  }

  std::optional<invoice_record> invoice(const std::string& invoice_id) const override {
    return read(*c_, "reading an invoice", [&](snapshot& tx) -> std::optional<invoice_record> {
      const auto rows = tx.exec_params(invoice_select + "WHERE invoice_id = $1", invoice_id);
      if (rows.empty())
        return std::nullopt;
      return invoice_of(tx, rows[0]);
    });
  }

  std::vector<invoice_record> invoices_of(const std::string& customer_id,
                                          const pricing::period& period) const override {
    return read(*c_, "reading invoices", [&](snapshot& tx) {
      std::vector<invoice_record> out;
      for (const auto& r : tx.exec_params(
               invoice_select + "WHERE customer_id = $1 AND period_start = $2 ORDER BY issue_seq",
               customer_id, format_rfc3339(period.start)))
        out.push_back(invoice_of(tx, r));
      return out;
    });
  }

  std::vector<unpriced_window> unpriced() const override {
    return read(*c_, "reading unpriced windows", [&](snapshot& tx) {
      std::vector<unpriced_window> out;
      for (const auto& r : tx.exec(unpriced_select + "ORDER BY emission_seq"))
        out.push_back(unpriced_of(r));
      return out;
    });
  }

  std::vector<rejected_line> rejected() const override {
    return read(*c_, "reading rejected lines", [&](snapshot& tx) {
      std::vector<rejected_line> out;
      for (const auto& r : tx.exec("SELECT line, reason, detail, encode(raw, 'hex') FROM "
                                   "rejected_events ORDER BY emission_seq"))
        out.push_back({r[0].as<std::uint64_t>(), r[1].as<std::string>(), r[2].as<std::string>(),
                       bytes_of_hex(r[3].c_str())});
      return out;
    });
  }

  std::vector<rerate_run> rerate_runs() const override {
    return read(*c_, "reading re-rate runs", [&](snapshot& tx) {
      std::vector<rerate_run> out;
      for (const auto& r :
           tx.exec("SELECT rerate_run_id, trigger, reason, scope::text, result::text, "
                   "to_json(superseding_charge_ids), to_json(correction_invoice_ids) "
                   "FROM rerate_runs ORDER BY run_seq"))
        out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                       r[3].as<std::string>(), r[4].as<std::string>(), strings_of_json(r[5]),
                       strings_of_json(r[6])});
      return out;
    });
  }

  std::vector<watermark_advance> watermark_advances(const std::string& source) const override {
    return read(*c_, "reading the watermark advances", [&](snapshot& tx) {
      std::vector<watermark_advance> out;
      for (const auto& r : tx.exec_params("SELECT position, watermark FROM watermark_advances "
                                          "WHERE source = $1 ORDER BY position, advance_seq",
                                          source))
        out.push_back({source, r[0].as<std::uint64_t>(), r[1].as<std::int64_t>()});
      return out;
    });
  }

  std::optional<source_progress> progress(const std::string& source) const override {
    return read(
        *c_, "reading the service progress", [&](snapshot& tx) -> std::optional<source_progress> {
          const auto rows =
              tx.exec_params("SELECT position, finished FROM serve_progress WHERE source = $1 "
                             "ORDER BY progress_seq DESC LIMIT 1",
                             source);
          if (rows.empty())
            return std::nullopt;
          return source_progress{source, rows[0][0].as<std::uint64_t>(), rows[0][1].as<bool>()};
        });
  }

  void append_status(const status_event& e) override {
    try {
      pqxx::work tx(*c_);
      lock(tx, "invoice", e.invoice_id);
      const auto inv = tx.exec_params(
          "SELECT customer_id, currency, total::text FROM invoices WHERE invoice_id = $1",
          e.invoice_id);
      if (inv.empty())
        throw std::invalid_argument("invoice status: no invoice " + e.invoice_id);
      const auto current = tx.exec_params1("SELECT status FROM invoice_status_events WHERE "
                                           "invoice_id = $1 ORDER BY seq DESC LIMIT 1",
                                           e.invoice_id)[0]
                               .as<std::string>();
      check_status_change(current, e);
      record_status(tx, e, inv[0][0].as<std::string>(), inv[0][1].as<std::string>(),
                    decimal_of(inv[0][2]));
      tx.commit();
    } catch (const pqxx::failure& e) {
      throw failure("storing an invoice status", e);
    }
  }

  std::optional<std::string> current_status(const std::string& invoice_id) const override {
    return read(*c_, "reading an invoice status", [&](snapshot& tx) -> std::optional<std::string> {
      const auto rows = tx.exec_params(
          "SELECT status FROM current_invoice_status WHERE invoice_id = $1", invoice_id);
      if (rows.empty())
        return std::nullopt;
      return rows[0][0].as<std::string>();
    });
  }

  std::vector<ledger_entry> ledger() const override {
    return read(*c_, "reading the ledger", [&](snapshot& tx) {
      std::vector<ledger_entry> out;
      for (const auto& r : tx.exec("SELECT invoice_id, customer_id, currency, amount::text, kind "
                                   "FROM ledger_entries ORDER BY entry_seq"))
        out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                       decimal_of(r[3]), r[4].as<std::string>()});
      return out;
    });
  }

  void publish(const published_version& v) override {
    try {
      pqxx::work tx(*c_);
      lock(tx, "price_book", v.price_book_id);
      const auto book = tx.exec_params("SELECT currency FROM price_books WHERE price_book_id = $1",
                                       v.price_book_id);
      if (book.empty())
        tx.exec_params("INSERT INTO price_books (price_book_id, currency) VALUES ($1, $2)",
                       v.price_book_id, v.currency);
      else if (book[0][0].as<std::string>() != v.currency)
        throw std::invalid_argument("price book " + v.price_book_id + " is in " +
                                    book[0][0].as<std::string>() + ", not " + v.currency);
      const auto existing =
          tx.exec_params("SELECT definition_text FROM price_book_versions WHERE price_book_id = "
                         "$1 AND version = $2",
                         v.price_book_id, v.version);
      if (!existing.empty()) {
        if (existing[0][0].as<std::string>() == v.definition_json)
          return;
        throw std::invalid_argument("price book " + v.price_book_id + " version " + v.version +
                                    " is published with a different definition; publish a new "
                                    "version instead");
      }
      tx.exec_params("INSERT INTO price_book_versions (price_book_id, version, definition_text, "
                     "definition, effective_from, effective_until, prices) "
                     "SELECT $1, $2, $3::text, d, (d->>'effective_from')::timestamptz, "
                     "(d->>'effective_until')::timestamptz, d->'prices' "
                     "FROM (SELECT $3::text::jsonb) AS definition(d)",
                     v.price_book_id, v.version, v.definition_json);
      tx.commit();
    } catch (const pqxx::failure& e) {
      throw failure("publishing a price book version", e);
    }
  }

  std::vector<published_version> versions(const std::string& price_book_id) const override {
    return read(*c_, "reading price book versions", [&](snapshot& tx) {
      std::vector<published_version> out;
      for (const auto& r :
           tx.exec_params("SELECT v.price_book_id, b.currency, v.version, v.definition_text FROM "
                          "price_book_versions v JOIN price_books b USING (price_book_id) "
                          "WHERE v.price_book_id = $1 ORDER BY v.publication_seq",
                          price_book_id))
        out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                       r[3].as<std::string>()});
      return out;
    });
  }

private:
  // Serializes changes of one invoice's status or one price book (no UPDATE privilege needed).
  static void lock(pqxx::transaction_base& tx, const char* kind, const std::string& id) {
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))", std::string(kind) + ":" + id);
  }

  static void append_aggregates(pqxx::work& tx, const std::vector<aggregate_record>& records) {
    if (records.empty())
      return;
    {
      pqxx::stream_to copy(tx, "stage_aggregates", staging_columns(aggregate_columns));
      int ord = 0;
      for (const auto& a : records)
        copy << std::make_tuple(ord++, a.aggregation_id, a.customer_id, a.metric,
                                format_rfc3339(a.window_start), format_rfc3339(a.window_end),
                                a.revision, std::string(to_string(a.kind)), a.is_final,
                                a.value.to_string(), a.event_count, text_array(a.event_ids));
      copy.complete();
    }
    tx.exec(
        insert_staged("aggregated_usage", "stage_aggregates", aggregate_columns, "aggregation_id"));
  }

  static void append_charges(pqxx::work& tx, const std::vector<charge_record>& records) {
    if (records.empty())
      return;
    {
      pqxx::stream_to copy(tx, "stage_charges", staging_columns(charge_columns));
      int ord = 0;
      for (const auto& c : records) {
        const auto& calc = c.calculation;
        const std::string until = calc.effective_until ? format_rfc3339(*calc.effective_until) : "";
        copy << std::make_tuple(
            ord++, c.charge_id, c.customer_id, c.metric, format_rfc3339(c.window_start),
            format_rfc3339(c.window_end), c.aggregation_id, c.quantity.to_string(),
            calc.cumulative_before.to_string(), calc.cumulative_after.to_string(),
            calc.amount.to_string(), calc.currency, calc.price_book_id, calc.version,
            format_rfc3339(calc.effective_from), calc.effective_until ? until.c_str() : nullptr,
            c.supersedes_charge_id ? c.supersedes_charge_id->c_str() : nullptr,
            std::string(to_string(c.trigger)), calculation_metadata(c));
      }
      copy.complete();
    }
    tx.exec(insert_staged("rated_charges", "stage_charges", charge_columns, "charge_id"));
  }

  static void append_unpriced(pqxx::work& tx, const std::vector<unpriced_window>& records) {
    if (records.empty())
      return;
    {
      pqxx::stream_to copy(tx, "stage_unpriced", staging_columns(unpriced_columns));
      int ord = 0;
      for (const auto& u : records)
        copy << std::make_tuple(ord++, u.customer_id, u.metric, format_rfc3339(u.window_start),
                                format_rfc3339(u.window_end), u.quantity.to_string(),
                                std::string(pricing::to_string(u.reason)),
                                u.price_book_id.empty() ? nullptr : u.price_book_id.c_str());
      copy.complete();
    }
    tx.exec(insert_staged("unpriced_windows", "stage_unpriced", unpriced_columns,
                          "customer_id, metric, window_start, quantity, reason"));
  }

  static void append_rejected(pqxx::work& tx, const std::vector<rejected_line>& records) {
    if (records.empty())
      return;
    {
      pqxx::stream_to copy(tx, "stage_rejected", staging_columns(rejected_columns));
      int ord = 0;
      for (const auto& r : records)
        copy << std::make_tuple(ord++, static_cast<std::int64_t>(r.line), r.reason, r.detail,
                                hex_of(r.raw));
      copy.complete();
    }
    tx.exec(insert_staged("rejected_events", "stage_rejected", rejected_columns, "line"));
  }

  static void append_invoice(pqxx::work& tx, const invoice_record& i) {
    const auto inserted = tx.exec_params(
        "INSERT INTO invoices (invoice_id, type, corrects_invoice_id, customer_id, period_start, "
        "period_end, currency, subtotal, credits_applied, total, credit_reasons) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        "ON CONFLICT (invoice_id) DO NOTHING RETURNING invoice_id",
        i.invoice_id, std::string(to_string(i.type)),
        i.corrects_invoice_id ? i.corrects_invoice_id->c_str() : nullptr, i.customer_id,
        format_rfc3339(i.period.start), format_rfc3339(i.period.end), i.currency,
        i.subtotal.to_string(), i.credits_applied.to_string(), i.total.to_string(),
        text_array(i.credit_reasons));
    if (inserted.empty())
      return;
    int line_no = 0;
    for (const auto& l : i.line_items)
      tx.exec_params("INSERT INTO invoice_line_items (line_item_id, invoice_id, line_no, metric, "
                     "quantity, amount, charge_ids) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                     l.line_item_id, i.invoice_id, line_no++, l.metric, l.quantity.to_string(),
                     l.amount.to_string(), text_array(id_strings(l.charge_ids)));
    record_status(tx, {i.invoice_id, i.status, "meterflow", "recorded with the invoice"},
                  i.customer_id, i.currency, i.total);
  }

  static void record_status(pqxx::work& tx, const status_event& e, const std::string& customer_id,
                            const std::string& currency, decimal total) {
    tx.exec_params("INSERT INTO invoice_status_events (invoice_id, status, actor, reason) "
                   "VALUES ($1, $2, $3, $4)",
                   e.invoice_id, e.status, e.actor, e.reason);
    if (e.status == "issued" || e.status == "void")
      tx.exec_params("INSERT INTO ledger_entries (invoice_id, customer_id, currency, amount, "
                     "kind) VALUES ($1, $2, $3, $4, $5)",
                     e.invoice_id, customer_id, currency,
                     (e.status == "issued" ? total : -total).to_string(),
                     std::string(e.status == "issued" ? "invoice" : "reversal"));
  }

  std::unique_ptr<pqxx::connection> c_;
};

} // namespace

std::unique_ptr<record_store> make_pg_record_store(const std::string& conninfo) {
  return std::make_unique<pg_record_store>(connect(conninfo));
}

struct pg_record_reader::connection {
  std::unique_ptr<pqxx::connection> c;
};

pg_record_reader::pg_record_reader(std::unique_ptr<connection> c) : connection_(std::move(c)) {}
pg_record_reader::~pg_record_reader() = default;

std::unique_ptr<pg_record_reader> pg_record_reader::connect(const std::string& conninfo) {
  auto c = std::make_unique<connection>();
  c->c = persistence::connect(conninfo);
  return std::unique_ptr<pg_record_reader>(new pg_record_reader(std::move(c)));
}

std::vector<std::string> pg_record_reader::price_book_ids() const {
  return read(*connection_->c, "reading price books", [&](snapshot& tx) {
    std::vector<std::string> out;
    for (const auto& r : tx.exec("SELECT price_book_id FROM price_books ORDER BY price_book_id"))
      out.push_back(r[0].as<std::string>());
    return out;
  });
}

pg_record_reader::customer_period pg_record_reader::period_of(const std::string& customer_id,
                                                              const pricing::period& period) const {
  return read(*connection_->c, "reading a customer period", [&](snapshot& tx) {
    customer_period out;
    const std::string from = format_rfc3339(period.start), to = format_rfc3339(period.end);
    const std::string in_period =
        "WHERE customer_id = $1 AND window_start >= $2 AND window_start < $3 ";
    for (const auto& r : tx.exec_params(aggregate_select + "FROM aggregated_usage " + in_period +
                                            "ORDER BY metric, window_start, revision, emission_seq",
                                        customer_id, from, to))
      out.aggregates.push_back(aggregate_of(r));
    for (const auto& r : tx.exec_params(charge_select + "FROM current_charges " + in_period +
                                            "ORDER BY metric, window_start, emission_seq",
                                        customer_id, from, to))
      out.current_charges.push_back(charge_of(r));
    for (const auto& r : tx.exec_params(unpriced_select + in_period + "ORDER BY emission_seq",
                                        customer_id, from, to))
      out.unpriced.push_back(unpriced_of(r));
    out.invoices = invoices_in(tx, customer_id.c_str(), &from, std::nullopt, 0);
    return out;
  });
}

pg_record_reader::rerate_inputs
pg_record_reader::rerate_inputs_of(const std::optional<std::string>& customer_id,
                                   const pricing::period& period) const {
  return read(*connection_->c, "reading a period to re-rate", [&](snapshot& tx) {
    rerate_inputs out;
    const std::string from = format_rfc3339(period.start), to = format_rfc3339(period.end);
    const char* customer = customer_id ? customer_id->c_str() : nullptr;
    const std::string in_period = "WHERE ($1::text IS NULL OR customer_id = $1) AND "
                                  "window_start >= $2 AND window_start < $3 ";
    // The latest final revision of each window.
    for (const auto& r :
         tx.exec_params("SELECT DISTINCT ON (customer_id, metric, window_start) " +
                            aggregate_fields + "FROM aggregated_usage " + in_period +
                            "AND is_final ORDER BY customer_id, metric, window_start, "
                            "revision DESC, emission_seq DESC",
                        customer, from, to))
      out.final_aggregates.push_back(aggregate_of(r));
    for (const auto& r : tx.exec_params(charge_select + "FROM current_charges " + in_period +
                                            "ORDER BY customer_id, metric, window_start, "
                                            "emission_seq",
                                        customer, from, to))
      out.current_charges.push_back(charge_of(r));
    const std::string of_period =
        "WHERE ($1::text IS NULL OR customer_id = $1) AND period_start = $2 ";
    std::map<std::string, std::size_t> index; // invoice id -> position in out.invoices
    for (const auto& r :
         tx.exec_params(invoice_select + of_period + "ORDER BY issue_seq", customer, from)) {
      index[r[0].as<std::string>()] = out.invoices.size();
      out.invoices.push_back(invoice_header_of(r));
    }
    for (const auto& l : tx.exec_params(
             "SELECT l.invoice_id, " + line_fields +
                 "FROM invoice_line_items l WHERE l.invoice_id IN (SELECT invoice_id FROM "
                 "invoices " +
                 of_period + ") ORDER BY l.invoice_id, l.line_no",
             customer, from)) {
      auto it = index.find(l[0].as<std::string>());
      if (it != index.end()) // always, in one snapshot
        out.invoices[it->second].line_items.push_back(line_of(l, 1));
    }
    return out;
  });
}

std::optional<charge_record> pg_record_reader::charge(const std::string& charge_id) const {
  return read(
      *connection_->c, "reading a charge", [&](snapshot& tx) -> std::optional<charge_record> {
        const auto rows =
            tx.exec_params(charge_select + "FROM rated_charges WHERE charge_id = $1", charge_id);
        if (rows.empty())
          return std::nullopt;
        return charge_of(rows[0]);
      });
}

std::optional<charge_record> pg_record_reader::superseding(const std::string& charge_id) const {
  return read(
      *connection_->c, "reading a charge", [&](snapshot& tx) -> std::optional<charge_record> {
        const auto rows = tx.exec_params(
            charge_select + "FROM rated_charges WHERE supersedes_charge_id = $1", charge_id);
        if (rows.empty())
          return std::nullopt;
        return charge_of(rows[0]);
      });
}

std::vector<invoice_record> pg_record_reader::invoices(const invoice_filter& filter) const {
  return read(*connection_->c, "reading invoices", [&](snapshot& tx) {
    const std::string period_start = filter.period ? format_rfc3339(filter.period->start) : "";
    return invoices_in(tx, filter.customer_id ? filter.customer_id->c_str() : nullptr,
                       filter.period ? &period_start : nullptr, filter.limit, filter.offset);
  });
}

} // namespace meterflow::persistence
