// End-to-end tests of `meterflow run` (SEMANTICS §10): the seed story, byte-identical output
// whatever the parallelism, invoices that add up to the direct pricing of random scenarios,
// reconciliation failures, supervision of crashed partitions, bad input and the window
// states at the watermark boundaries. Each test writes its inputs and outputs under a fresh
// temporary directory.

#include "config/config.hpp"
#include "support/billing_scenario.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;
using nlohmann::json;

const std::string examples = std::string(METERFLOW_SOURCE_DIR) + "/examples";

class temp_dir {
public:
  temp_dir() {
    std::string path = (fs::temp_directory_path() / "meterflow_run_test_XXXXXX").string();
    if (!::mkdtemp(path.data()))
      throw std::runtime_error("mkdtemp failed");
    path_ = path;
  }
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  fs::path operator/(const std::string& name) const { return path_ / name; }

private:
  fs::path path_;
};

// Sets METERFLOW_TEST_FAULT for the runs in its scope.
class fault_injection {
public:
  explicit fault_injection(const std::string& spec) {
    ::setenv("METERFLOW_TEST_FAULT", spec.c_str(), 1);
  }
  ~fault_injection() { ::unsetenv("METERFLOW_TEST_FAULT"); }
  fault_injection(const fault_injection&) = delete;
  fault_injection& operator=(const fault_injection&) = delete;
};

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

json read_json(const fs::path& path) {
  return json::parse(read_file(path));
}

std::vector<json> read_ndjson(const fs::path& path) {
  std::vector<json> out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);)
    out.push_back(json::parse(line));
  return out;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines)
    out += l + "\n";
  return out;
}

// Every file under `dir` by relative path, with its bytes.
std::map<std::string, std::string> files_under(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file())
      out[fs::relative(entry.path(), dir).string()] = read_file(entry.path());
  return out;
}

// The first difference between two output directories ("" = byte-identical).
std::string compare_outputs(const fs::path& a, const fs::path& b) {
  const auto fa = files_under(a), fb = files_under(b);
  for (const auto& [name, bytes] : fa) {
    const auto it = fb.find(name);
    if (it == fb.end())
      return name + " only in " + a.string();
    if (it->second != bytes)
      return name + " differs";
  }
  for (const auto& [name, bytes] : fb)
    if (!fa.count(name))
      return name + " only in " + b.string();
  return "";
}

meterflow::test::process_result run(const fs::path& config, const fs::path& events,
                                    const fs::path& out, const std::string& options = "") {
  return run_meterflow("run --config " + shell_quote(config.string()) + " --events " +
                       shell_quote(events.string()) + " --out " + shell_quote(out.string()) +
                       " --quiet " + options + " 2>&1");
}

// Σ line amounts (standard + corrections) per customer, period and metric, and Σ totals per
// customer and period, from DIR/invoices/*.json.
meterflow::test::billing billed(const fs::path& out) {
  using meterflow::test::dec;
  meterflow::test::billing b;
  for (const auto& entry : fs::directory_iterator(out / "invoices")) {
    const json inv = read_json(entry.path());
    const std::string customer = inv["customer_id"];
    const std::string period = std::string(inv["period"]["start"]).substr(0, 7);
    for (const auto& l : inv["line_items"])
      b.lines[{customer, period, l["metric"]}] += dec(l["amount"]);
    b.totals[{customer, period}] += dec(inv["total"]);
  }
  return b;
}

std::string failed_checks(const json& reconciliation) {
  std::string out;
  for (const auto& c : reconciliation["checks"])
    if (!c["ok"].get<bool>())
      out += c.dump() + "\n";
  return out;
}

// A random scenario's input files under `dir`.
meterflow::test::scenario write_scenario(const temp_dir& dir, std::uint64_t seed,
                                         std::uint64_t order_seed, meterflow::test::arrival how) {
  auto s = meterflow::test::make_scenario(seed, order_seed, how);
  write_file(dir / "config.json", s.config);
  write_file(dir / "events.ndjson", join_lines(meterflow::test::texts(s)));
  return s;
}

const char* const simple_config = R"({
  "window":{"size":"1h","allowed_lateness":"1h"},"watermark":{"max_out_of_orderness":"0s"},
  "meters":[{"metric":"api_calls","event_type":"api_call","aggregation":"count"},
            {"metric":"gb","event_type":"storage","aggregation":"sum"}],
  "price_books":[{"id":"pb","currency":"USD","versions":[
    {"version":"v1","effective_from":"2024-01-01T00:00:00Z","effective_until":null,
     "prices":{"api_calls":{"model":"flat","unit_price":"0.10"},
               "gb":{"model":"flat","unit_price":"1"}}}]}],
  "default_price_book":"pb"})";

std::string call(const std::string& id, const std::string& customer, const std::string& time) {
  return R"({"event_id":")" + id + R"(","event_time":")" + time + R"(","customer_id":")" +
         customer + R"(","event_type":"api_call"})";
}

} // namespace

TEST_CASE("run: the seed story's invoices", "[cli][run]") {
  temp_dir dir;
  const auto r = run(examples + "/config.json", examples + "/events.ndjson", dir / "out");
  INFO(r.out);
  REQUIRE(r.status == 0);
  const fs::path invoices = dir / "out" / "invoices";
  const auto flat = read_json(invoices / "inv_c_flat_2024-01.json");
  CHECK(flat["type"] == "standard");
  CHECK(flat["subtotal"] == "8.98");
  CHECK(flat["credits_applied"] == "1.00");
  CHECK(flat["total"] == "7.98");
  const auto correction = read_json(invoices / "inv_c_flat_2024-01_c1.json");
  CHECK(correction["type"] == "correction");
  CHECK(correction["corrects_invoice_id"] == "inv_c_flat_2024-01");
  CHECK(correction["total"] == "0.08");
  // The correction bills exactly the re-rate's new charge for the very late call's window.
  REQUIRE(correction["line_items"].size() == 1);
  REQUIRE(correction["line_items"][0]["charge_ids"].size() == 1);
  const std::string billed_charge = correction["line_items"][0]["charge_ids"][0];
  bool found = false;
  for (const auto& c : read_ndjson(dir / "out" / "charges.ndjson"))
    if (c["charge_id"] == billed_charge) {
      found = true;
      CHECK(c["trigger"] == "rerate");
      CHECK(c["window_start"] == "2024-01-25T10:00:00Z");
      CHECK(c["amount"] == "0.080000000000");
    }
  CHECK(found);
  CHECK(read_json(invoices / "inv_c_tiered_2024-01.json")["total"] == "118.72");
  CHECK(read_json(invoices / "inv_c_volume_2024-01.json")["total"] == "98.72");
  CHECK(read_json(invoices / "inv_c_recon_2024-01.json")["total"] == "204.68");
  CHECK(read_json(invoices / "inv_c_flat_2024-02.json")["total"] == "1.20");
  CHECK(read_json(invoices / "inv_c_walkin_2024-02.json")["total"] == "0.12");
  CHECK(std::distance(fs::directory_iterator(invoices), fs::directory_iterator()) == 7);

  const auto recon = read_json(dir / "out" / "reconciliation.json");
  CHECK(recon["ok"] == true);
  CHECK(recon["counts"]["received"] == 12740);
  CHECK(recon["counts"]["duplicates"] == 2);
  CHECK(recon["counts"]["conflicts"] == 1);
  CHECK(recon["counts"]["rejected"] == 4);
  CHECK(recon["counts"]["late"] == 1);
  CHECK(recon["counts"]["very_late"] == 1);
  std::vector<std::string> reasons;
  for (const auto& rejected : read_ndjson(dir / "out" / "rejected.ndjson"))
    reasons.push_back(rejected["reason"]);
  CHECK(reasons == std::vector<std::string>{"event_id_conflict", "bad_json", "bad_time",
                                            "bad_value", "missing_field"});
}

TEST_CASE("run: output files are byte-identical across runs, threads, partitions and batch "
          "sizes",
          "[cli][run]") {
  temp_dir dir;
  write_scenario(dir, 31, 32, meterflow::test::arrival::jittered);
  const std::pair<std::string, std::string> inputs[] = {
      {examples + "/config.json", examples + "/events.ndjson"},
      {(dir / "config.json").string(), (dir / "events.ndjson").string()}};
  for (const auto& [config, events] : inputs) {
    INFO(events);
    const bool small = events.find("examples") == std::string::npos;
    const auto first = run(config, events, dir / "first");
    REQUIRE(first.status == 0);
    std::vector<std::string> variants = {"",
                                         "--threads 1",
                                         "--threads 2 --partitions 1",
                                         "--partitions 8",
                                         "--batch-size 7",
                                         "--threads 1 --partitions 8 --batch-size 7"};
    if (small)
      variants.push_back("--partitions 3 --batch-size 1");
    for (const auto& options : variants) {
      INFO("options: " << options);
      fs::remove_all(dir / "other");
      REQUIRE(run(config, events, dir / "other", options).status == 0);
      CHECK(compare_outputs(dir / "first", dir / "other") == "");
    }
    fs::remove_all(dir / "first");
  }
}

TEST_CASE("run: a run into a directory an earlier run wrote leaves exactly its own files",
          "[cli][run]") {
  temp_dir dir;
  const fs::path config = examples + "/config.json", events = examples + "/events.ndjson";
  REQUIRE(run(config, events, dir / "fresh").status == 0);
  REQUIRE(run(config, events, dir / "again").status == 0);
  // What an earlier run with other input could have left: longer invoices (rewritten in place,
  // they must be cut to the new length), longer record files, an invoice this run does not
  // issue, and a record file that is a symbolic link (kept, and written through).
  const auto invoices = files_under(dir / "again" / "invoices");
  REQUIRE(!invoices.empty());
  for (const auto& [name, bytes] : invoices)
    write_file(dir / "again" / "invoices" / name, bytes + std::string(5000, ' ') + "stale\n");
  write_file(dir / "again" / "charges.ndjson", std::string(100000, 'x'));
  write_file(dir / "again" / "invoices" / "inv_gone_2023-12.json", "{}\n");
  write_file(dir / "elsewhere.ndjson", std::string(100000, 'y'));
  fs::remove(dir / "again" / "aggregates.ndjson");
  fs::create_symlink(dir / "elsewhere.ndjson", dir / "again" / "aggregates.ndjson");

  REQUIRE(run(config, events, dir / "again").status == 0);
  CHECK(fs::is_symlink(dir / "again" / "aggregates.ndjson"));
  CHECK(read_file(dir / "elsewhere.ndjson") == read_file(dir / "fresh" / "aggregates.ndjson"));
  fs::remove(dir / "again" / "aggregates.ndjson");
  fs::remove(dir / "fresh" / "aggregates.ndjson");
  CHECK(compare_outputs(dir / "fresh", dir / "again") == "");
}

TEST_CASE("run: a record file that cannot be written stops the run with a message naming it",
          "[cli][run]") {
  temp_dir dir;
  fs::create_directories(dir / "out");
  // A full disk: /dev/full fails every write with ENOSPC.
  fs::create_symlink("/dev/full", dir / "out" / "charges.ndjson");
  const auto r = run(examples + "/config.json", examples + "/events.ndjson", dir / "out");
  CHECK(r.status == 4);
  CHECK(r.out.find("write failed: charges.ndjson") != std::string::npos);
  CHECK(!fs::exists(dir / "out" / "reconciliation.json"));
}

TEST_CASE("run: an output directory that cannot be made is a usage error naming --out",
          "[cli][run]") {
  temp_dir dir;
  write_file(dir / "a_file", "not a directory\n");
  const auto r =
      run(examples + "/config.json", examples + "/events.ndjson", dir / "a_file" / "out");
  CHECK(r.status == 2);
  CHECK(r.out.find("--out: ") != std::string::npos);
  CHECK(r.out.find("a_file") != std::string::npos);
}

TEST_CASE("run: random scenarios: invoices add up to the direct pricing of the deduplicated "
          "events, whatever the arrival order",
          "[cli][run]") {
  for (std::uint64_t seed : {41u, 42u}) {
    for (auto how : {meterflow::test::arrival::jittered, meterflow::test::arrival::shuffled}) {
      temp_dir dir;
      const auto s = write_scenario(dir, seed, seed * 3 + static_cast<int>(how), how);
      INFO("seed " << seed << (how == meterflow::test::arrival::shuffled ? ", shuffled" : ""));
      const auto r = run(dir / "config.json", dir / "events.ndjson", dir / "out",
                         "--partitions 3 --batch-size 13");
      INFO(r.out);
      CHECK(r.status == 0);
      const auto recon = read_json(dir / "out" / "reconciliation.json");
      INFO(failed_checks(recon));
      CHECK(recon["ok"] == true);
      const auto cfg = meterflow::config::parse(s.config);
      const auto expected =
          meterflow::test::price_directly(cfg, meterflow::test::deduplicated(s.lines));
      CHECK(meterflow::test::differences(billed(dir / "out"), expected) == "");
      // Every invalid line and every conflict is reported, with its line number.
      std::size_t invalid = 0, conflicts = 0;
      for (const auto& rejected : read_ndjson(dir / "out" / "rejected.ndjson")) {
        const auto line = rejected["line"].get<std::size_t>();
        REQUIRE(line >= 1);
        REQUIRE(line <= s.lines.size());
        if (!rejected.contains("raw_base64")) // invalid UTF-8 is kept exactly in base64
          CHECK(rejected["raw"] == s.lines[line - 1].text);
        if (rejected["reason"] == "event_id_conflict")
          ++conflicts;
        else {
          ++invalid;
          CHECK_FALSE(s.lines[line - 1].event);
        }
      }
      CHECK(invalid == 8);
      CHECK(conflicts == recon["counts"]["conflicts"].get<std::size_t>());
    }
  }
}

TEST_CASE("run: a broken chain fails reconciliation with exit status 1", "[cli][run]") {
  temp_dir dir;
  fault_injection fault("break_chain");
  const auto r = run(examples + "/config.json", examples + "/events.ndjson", dir / "out");
  CHECK(r.status == 1);
  CHECK(r.out.find("reconciliation: FAILED") != std::string::npos);
  const auto recon = read_json(dir / "out" / "reconciliation.json");
  CHECK(recon["ok"] == false);
  // The last charge (c_walkin's February call, 0.12) is dropped: the quantities no longer
  // match and the invoice line has no charge behind it.
  std::map<std::string, json> failed;
  for (const auto& c : recon["checks"]) {
    CHECK(c.contains("expected"));
    CHECK(c.contains("actual"));
    if (!c["ok"].get<bool>()) {
      CHECK(c["expected"] != c["actual"]);
      failed[c["check"]] = c;
    }
  }
  REQUIRE(failed.size() == 2);
  const auto& quantities = failed.at(
      "sum of current aggregate quantities = sum of current charge quantities + unpriced");
  CHECK(quantities["expected"] == "12881.5");
  CHECK(quantities["actual"] == "12880.5");
  const auto& lines =
      failed.at("per customer, period, metric: |charges - invoice lines| < one minor unit");
  CHECK(lines["detail"].get<std::string>().find("c_walkin/2024-02/api_calls charges 0 invoiced "
                                                "0.12") != std::string::npos);
}

namespace {

// A run with the fault `spec` injected restarts the failed partition and writes the same files
// as the clean run in `dir`/clean.
void check_crash_recovers(const temp_dir& dir, const std::string& options,
                          const std::string& spec) {
  fault_injection fault(spec);
  fs::remove_all(dir / "crashed");
  const auto r = run(dir / "config.json", dir / "events.ndjson", dir / "crashed", options);
  INFO(r.out);
  CHECK(r.status == 0);
  // The crash happened (stderr of the run; CAF's own report may interleave with it).
  CHECK(r.out.find("restarting it from the store") != std::string::npos);
  CHECK(compare_outputs(dir / "clean", dir / "crashed") == "");
}

} // namespace

TEST_CASE("run: a partition that crashes is restarted from the store and the output is "
          "unchanged",
          "[cli][run]") {
  temp_dir dir;
  write_scenario(dir, 51, 52, meterflow::test::arrival::jittered);
  const std::string options = "--partitions 4 --batch-size 7";
  const auto clean = run(dir / "config.json", dir / "events.ndjson", dir / "clean", options);
  REQUIRE(clean.status == 0);
  const auto counts = read_json(dir / "clean" / "reconciliation.json")["counts"];
  const auto valid =
      counts["received"].get<std::uint64_t>() - counts["rejected"].get<std::uint64_t>();
  const std::uint64_t batches = valid / 7 + 1; // the last, end-of-input batch may be empty
  const std::pair<std::uint64_t, std::uint64_t> crashes[] = {
      {0, 1}, {1, 2}, {2, batches / 3}, {3, batches / 2}, {1, batches - 1}, {2, batches}};
  for (const auto& [partition, batch] : crashes) {
    const std::string spec =
        "crash_partition:" + std::to_string(partition) + ":" + std::to_string(batch);
    INFO(spec << " of " << batches << " batches");
    check_crash_recovers(dir, options, spec);
  }
}

TEST_CASE("run: a window, rating or invoice actor that crashes takes its partition down; both "
          "are rebuilt from the store and the output is unchanged",
          "[cli][run]") {
  temp_dir dir;
  write_scenario(dir, 53, 54, meterflow::test::arrival::jittered);
  const std::string options = "--partitions 3 --batch-size 5";
  const auto clean = run(dir / "config.json", dir / "events.ndjson", dir / "clean", options);
  REQUIRE(clean.status == 0);
  const char* const specs[] = {"crash_stage:window:1",  "crash_stage:window:40",
                               "crash_stage:rating:2",  "crash_stage:rating:25",
                               "crash_stage:invoice:1", "crash_stage:invoice:3"};
  for (const std::string spec : specs) {
    INFO(spec);
    check_crash_recovers(dir, options, spec);
  }
}

TEST_CASE("run: bad input never stops the run", "[cli][run]") {
  temp_dir dir;
  write_file(dir / "config.json", simple_config);
  const std::string blob(1 << 20, 'x');
  struct bad_line {
    std::string text;
    std::string reason;
  };
  // Lines in file order: a good event (reason "") or a bad one with its reason.
  const std::vector<bad_line> lines = {
      {call("g1", "c1", "2024-01-05T10:00:00Z"), ""},
      {R"({"event_id":"broken",)", "bad_json"},
      {std::string("\xff\xfe\x00garbage\x80\x01", 12), "bad_json"},
      {"", ""},    // blank: skipped, still a physical line
      {" \t", ""}, // whitespace only: skipped
      {R"({"event_id":"big","event_time":"2024-01-05T10:00:00Z","customer_id":"c1",)"
       R"("event_type":"api_call","metadata":{"blob":")" +
           blob + "\"}}",
       "too_large"},
      {call("g2", "c1", "2024-01-05T10:01:00Z"), ""},
      {R"({"event_id":"p13","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"storage","value":"0.1234567890123"})",
       "bad_value"},
      {R"({"event_id":"p13z","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"storage","value":"1.5000000000000"})",
       ""},
      {R"({"event_id":"nan","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"storage","value":NaN})",
       "bad_json"},
      {R"({"event_id":"inf","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"storage","value":Infinity})",
       "bad_json"},
      {R"({"event_id":"nan-text","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"storage","value":"NaN"})",
       "bad_value"},
      {R"({"event_id":"","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"api_call"})",
       "missing_field"},
      {R"({"event_id":"e","event_time":"2024-01-05T10:00:00Z","customer_id":"","event_type":"api_call"})",
       "missing_field"},
      {R"({"event_id":"e","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":null})",
       "missing_field"},
      {R"({"event_id":42,"event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"api_call"})",
       "bad_field"},
      {R"({"event_id":"e","event_time":"2024-01-05T10:00:00Z","customer_id":["c1"],"event_type":"api_call"})",
       "bad_field"},
      {R"({"event_id":"e","event_time":1704448800,"customer_id":"c1","event_type":"api_call"})",
       "bad_time"},
      {R"({"event_id":"e","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"storage","value":true})",
       "bad_value"},
      {R"({"event_id":"e","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"storage","value":"+1"})",
       "bad_value"},
      {R"({"event_id":"e","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"api_call","metadata":"x"})",
       "bad_field"},
      {R"({"event_id":"e","event_time":"2024-01-05T10:00:60Z","customer_id":"c1","event_type":"api_call"})",
       "bad_time"},
      {R"({"event_id":"e","event_time":"2024-01-05T10:00:00.1234567Z","customer_id":"c1","event_type":"api_call"})",
       "bad_time"},
      {R"({"event_id":")" + std::string(129, 'i') +
           R"(","event_time":"2024-01-05T10:00:00Z","customer_id":"c1","event_type":"api_call"})",
       "too_large"},
      {"[1,2,3]", "bad_json"},
      {R"("just a string")", "bad_json"},
      {call("e", "c1", "2024-01-05T10:00:00Z") + " trailing", "bad_json"},
      {call("g3", "c1", "2024-01-05T10:02:00Z") + "\r", ""}, // CRLF
      {R"({"event_id":"crlf-bad",)"
       "\r",
       "bad_json"},
      {R"({"event_id":"g4","event_time":"2024-01-05T10:03:00Z","customer_id":"c1","event_type":"storage","value":2})",
       ""},
      {call("g5", "c1", "2024-01-05T10:04:00Z"), ""},
      {R"({"event_id":"truncated","event_time":"2024-01-05T1)", "bad_json"}, // no newline
  };
  std::string content;
  for (std::size_t i = 0; i < lines.size(); ++i)
    content += lines[i].text + (i + 1 < lines.size() ? "\n" : "");
  write_file(dir / "events.ndjson", content);

  const auto r = run(dir / "config.json", dir / "events.ndjson", dir / "out", "--batch-size 2");
  INFO(r.out);
  CHECK(r.status == 0);
  const auto rejected = read_ndjson(dir / "out" / "rejected.ndjson");
  std::size_t k = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].reason.empty())
      continue;
    INFO("line " << i + 1);
    REQUIRE(k < rejected.size());
    const auto& rej = rejected[k++];
    CHECK(rej["line"] == i + 1);
    CHECK(rej["reason"] == lines[i].reason);
    std::string raw = lines[i].text;
    if (!raw.empty() && raw.back() == '\r')
      raw.pop_back();
    if (rej.contains("raw_base64"))
      CHECK(i == 2); // the binary garbage, kept exactly in base64
    else if (raw.size() < 1000)
      CHECK(rej["raw"] == raw);
    else
      CHECK(rej["raw"].get<std::string>().size() == raw.size());
  }
  CHECK(k == rejected.size());

  const auto recon = read_json(dir / "out" / "reconciliation.json");
  CHECK(recon["ok"] == true);
  CHECK(recon["counts"]["received"] == lines.size() - 2);
  CHECK(recon["counts"]["rejected"] == k);
  CHECK(recon["counts"]["accepted"] == 6);
  // g1, g2, g3, g5 at 0.10; 1.5 + 2 GB at 1.00.
  const auto inv = read_json(dir / "out" / "invoices" / "inv_c1_2024-01.json");
  REQUIRE(inv["line_items"].size() == 2);
  CHECK(inv["line_items"][0]["metric"] == "api_calls");
  CHECK(inv["line_items"][0]["quantity"] == "4");
  CHECK(inv["line_items"][0]["amount"] == "0.40");
  CHECK(inv["line_items"][1]["metric"] == "gb");
  CHECK(inv["line_items"][1]["quantity"] == "3.5");
  CHECK(inv["line_items"][1]["amount"] == "3.50");
  CHECK(inv["total"] == "3.90");
}

TEST_CASE("run: window states at the watermark boundaries (SEMANTICS §4)", "[cli][run]") {
  temp_dir dir;
  write_file(dir / "config.json", simple_config); // window 1h, lateness 1h, out-of-orderness 0s
  // The window [01:00, 02:00) of 2024-01-01; another customer's event sets the watermark.
  const std::pair<const char*, std::pair<int, int>> cases[] = {
      {"2024-01-01T01:59:59.999999Z", {0, 0}}, // end - 1us: open, on time
      {"2024-01-01T02:00:00Z", {1, 0}},        // end: closing, late but accepted
      {"2024-01-01T02:59:59.999999Z", {1, 0}}, // end + L - 1us: still closing
      {"2024-01-01T03:00:00Z", {0, 1}},        // end + L: final, very late
  };
  for (const auto& [watermark, expected] : cases) {
    INFO("watermark " << watermark);
    write_file(dir / "events.ndjson", call("wm", "other", watermark) + "\n" +
                                          call("x", "c1", "2024-01-01T01:30:00Z") + "\n");
    fs::remove_all(dir / "out");
    const auto r = run(dir / "config.json", dir / "events.ndjson", dir / "out");
    CHECK(r.status == 0);
    const auto counts = read_json(dir / "out" / "reconciliation.json")["counts"];
    CHECK(counts["late"] == expected.first);
    CHECK(counts["very_late"] == expected.second);
    CHECK(counts["rerates"] == expected.second);
    // Never dropped: billed either way.
    CHECK(read_json(dir / "out" / "invoices" / "inv_c1_2024-01.json")["total"] == "0.10");
  }
}

TEST_CASE("run: an amount reaching 10^26 stops the run with exit status 3", "[cli][run]") {
  temp_dir dir;
  const fs::path cfg = dir / "config.json";
  std::ofstream(cfg) << R"({"meters":[{"metric":"gb","event_type":"storage","aggregation":"sum"}],
    "price_books":[{"id":"pb","currency":"USD","versions":[{"version":"v1",
      "effective_from":"2024-01-01T00:00:00Z",
      "prices":{"gb":{"model":"flat","unit_price":"10000000000000"}}}]}],
    "default_price_book":"pb"})";
  const fs::path events = dir / "events.ndjson";
  // Each window alone is below 10^26 (9,999,999,999,999 x 10^13); their cumulative is not.
  std::ofstream(events)
      << R"({"event_id":"a","event_time":"2024-01-02T00:00:00Z","customer_id":"c","event_type":"storage","value":"9999999999999"})"
      << "\n"
      << R"({"event_id":"b","event_time":"2024-01-02T05:00:00Z","customer_id":"c","event_type":"storage","value":"9999999999999"})"
      << "\n";
  const auto r = run_meterflow("run --quiet --config " + shell_quote(cfg.string()) + " --events " +
                               shell_quote(events.string()) + " --out " +
                               shell_quote((dir / "out").string()) + " 2>&1");
  CHECK(r.status == 3);
  CHECK_THAT(r.out, Catch::Contains("magnitude reaches 10^26"));
  CHECK_FALSE(fs::exists(dir / "out" / "reconciliation.json"));
}
