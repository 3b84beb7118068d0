// PDF invoices: `meterflow invoice pdf` on the seed run's standard and correction invoices (read
// back as text with poppler's pdftotext), byte-identical renders, unknown ids and bad
// arguments, the PostgreSQL store as the source, and the renderer on its own (page breaks,
// missing charges, text the standard fonts cannot show).

#include "runtime/invoice_pdf.hpp"
#include "support/pg_test_schema.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;

const std::string examples = std::string(METERFLOW_SOURCE_DIR) + "/examples";

// A fresh directory for one test, removed with everything in it at the end of the test.
struct scratch {
  explicit scratch(const std::string& name)
      : path(fs::temp_directory_path() /
             ("meterflow_pdf_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~scratch() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;
  fs::path path;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The PDF's text as `pdftotext -layout` lays it out.
std::string pdf_text(const fs::path& pdf) {
  const fs::path txt = fs::path(pdf).replace_extension(".txt");
  const std::string cmd =
      "pdftotext -layout " + shell_quote(pdf.string()) + " " + shell_quote(txt.string());
  REQUIRE(std::system(cmd.c_str()) == 0);
  return read_file(txt);
}

using words = std::vector<std::string>;

// What follows `label` on the first line of `text` that starts with it and goes on, as words
// (pdftotext's column spacing is not part of the assertion).
words row(const std::string& text, const std::string& label) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in(line);
    words all{std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
    std::istringstream label_in(label);
    const words head{std::istream_iterator<std::string>(label_in),
                     std::istream_iterator<std::string>()};
    if (all.size() > head.size() && std::equal(head.begin(), head.end(), all.begin()))
      return words(all.begin() + static_cast<std::ptrdiff_t>(head.size()), all.end());
  }
  return {};
}

void run_seed_example(const fs::path& out, const std::string& store_option = "") {
  const auto r = run_meterflow("run --quiet --config " + shell_quote(examples + "/config.json") +
                               " --events " + shell_quote(examples + "/events.ndjson") + " --out " +
                               shell_quote(out.string()) + store_option + " > /dev/null");
  REQUIRE(r.status == 0);
}

// The `--out DIR` option naming the seed run's output, made once per test process.
const std::string& seed_run() {
  static const scratch dir("seed");
  static const std::string option = [] {
    run_seed_example(dir.path / "out");
    return " --out " + shell_quote((dir.path / "out").string()) + " ";
  }();
  return option;
}

// `meterflow invoice pdf` of invoice `id` from `source` (`--out DIR` or `--store URL`) to `file`.
meterflow::test::process_result render(const std::string& source, const std::string& id,
                                       const fs::path& file, const std::string& redirect = "") {
  return run_meterflow("invoice pdf" + source + id + " -o " + shell_quote(file.string()) + " " +
                       redirect);
}

} // namespace

TEST_CASE("invoice pdf: a run's standard invoice, written to ID.pdf in the current directory",
          "[cli][invoice][pdf]") {
  scratch dir("standard");
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path);
  const auto written = run_meterflow("invoice pdf" + seed_run() + "inv_c_flat_2024-01");
  fs::current_path(cwd);
  REQUIRE(written.status == 0);
  CHECK(written.out == "inv_c_flat_2024-01.pdf\n");

  const std::string text = pdf_text(dir.path / "inv_c_flat_2024-01.pdf");
  CHECK(row(text, "Invoice") == words{"inv_c_flat_2024-01"});
  CHECK(row(text, "Type") == words{"standard"});
  CHECK(row(text, "Status") == words{"issued"});
  CHECK(row(text, "Customer") == words{"c_flat"});
  CHECK(row(text, "Period") == words{"2024-01", "(2024-01-01T00:00:00Z", "to",
                                     "2024-02-01T00:00:00Z,", "end", "exclusive)"});
  CHECK(row(text, "Currency") == words{"USD"});
  // Each metric line with its quantity and amount, and the versions that priced it.
  CHECK(row(text, "api_calls") == words{"17", "1.46"});
  CHECK(row(text, "gb_stored") == words{"150.5", "7.52"});
  CHECK_THAT(text, Contains("pb_flat/v1: flat model, rounding half_even, effective "
                            "2024-01-01T00:00:00Z to 2024-01-15T00:00:00Z"));
  CHECK_THAT(text, Contains("3 charges: quantity 12, amount 0.96"));
  CHECK_THAT(text, Contains("12 units x 0.08 = 0.96"));
  CHECK_THAT(text, Contains("charges sum to 7.525, rounded to the currency: 7.52"));
  CHECK(row(text, "Subtotal") == words{"8.98"});
  CHECK(row(text, "Credits applied") == words{"1.00"});
  CHECK(row(text, "Total") == words{"7.98", "USD"});
}

TEST_CASE("invoice pdf: a correction invoice names the invoice it corrects and shows deltas",
          "[cli][invoice][pdf]") {
  scratch dir("correction");
  const fs::path pdf = dir.path / "correction.pdf";
  const auto written = render(seed_run(), "inv_c_flat_2024-01_c1", pdf);
  REQUIRE(written.status == 0);
  CHECK(written.out == pdf.string() + "\n");

  const std::string text = pdf_text(pdf);
  CHECK_THAT(text, Contains("Correction invoice"));
  CHECK_THAT(text, Contains("Corrects invoice inv_c_flat_2024-01\n"));
  CHECK(row(text, "Invoice") == words{"inv_c_flat_2024-01_c1"});
  CHECK(row(text, "Type") == words{"correction"});
  CHECK(row(text, "Customer") == words{"c_flat"});
  CHECK_THAT(text, Contains("2024-01 (2024-01-01T00:00:00Z to 2024-02-01T00:00:00Z"));
  CHECK(row(text, "api_calls") == words{"+1", "+0.08"});
  CHECK_THAT(text, Contains("1 charge (1 from a re-rate): quantity 1, amount 0.08"));
  CHECK(row(text, "Subtotal change") == words{"+0.08"});
  CHECK(row(text, "Credits applied change") == words{"0.00"});
  CHECK(row(text, "Total change") == words{"+0.08", "USD"});
}

TEST_CASE("invoice pdf: the same invoice gives byte-identical files", "[cli][invoice][pdf]") {
  scratch dir("deterministic");
  for (const std::string id : {"inv_c_tiered_2024-01", "inv_c_flat_2024-01_c1"}) {
    const fs::path first = dir.path / (id + ".1.pdf"), second = dir.path / (id + ".2.pdf");
    REQUIRE(render(seed_run(), id, first, ">/dev/null").status == 0);
    REQUIRE(render(seed_run(), id, second, ">/dev/null").status == 0);
    const std::string bytes = read_file(first);
    CHECK(bytes.rfind("%PDF-", 0) == 0);
    CHECK(bytes == read_file(second));
    // No clock in the file: two renders a year apart are identical too.
    CHECK_THAT(bytes, !Contains("CreationDate") && !Contains("ModDate"));
  }
}

TEST_CASE("invoice pdf: unknown invoices and bad arguments are exit status 2",
          "[cli][invoice][pdf]") {
  scratch dir("errors");
  const std::string& source = seed_run();
  const fs::path pdf = dir.path / "x.pdf";
  const auto unknown = render(source, "inv_nope_2024-01", pdf, "2>&1");
  CHECK(unknown.status == 2);
  CHECK_THAT(unknown.out, Contains("no invoice \"inv_nope_2024-01\""));
  CHECK_FALSE(fs::exists(pdf));

  CHECK(run_meterflow("invoice pdf inv_c_flat_2024-01 2>/dev/null").status == 2);
  CHECK(run_meterflow("invoice pdf" + source + "--store postgresql://nowhere inv_c_flat_2024-01 " +
                      "2>/dev/null")
            .status == 2);
  CHECK(run_meterflow("invoice pdf" + source + "2>/dev/null").status == 2);
  CHECK(run_meterflow("invoice pdf --out " + shell_quote(dir.path.string()) +
                      " inv_c_flat_2024-01 2>/dev/null")
            .status == 2); // not a run's output
  CHECK(run_meterflow("invoice pdf" + source + "inv_c_flat_2024-01 --output " +
                      shell_quote((dir.path / "missing" / "x.pdf").string()) + " 2>/dev/null")
            .status == 2); // cannot be written
}

TEST_CASE("invoice pdf: from the PostgreSQL store, with the current status",
          "[cli][invoice][pdf][postgresql]") {
  const auto server = meterflow::test::pg_server();
  if (!server) {
    WARN("METERFLOW_TEST_PG is not set: skipped");
    return;
  }
  meterflow::test::pg_test_schema schema(*server, false);
  scratch dir("store");
  const std::string store = " --store " + shell_quote(schema.conninfo()) + " ";
  run_seed_example(dir.path / "out", store);
  REQUIRE(run_meterflow("invoice status" + store +
                        "--to paid --actor finance inv_c_flat_2024-01 > /dev/null")
              .status == 0);

  const fs::path standard = dir.path / "standard.pdf", correction = dir.path / "correction.pdf";
  REQUIRE(render(store, "inv_c_flat_2024-01", standard).status == 0);
  const std::string text = pdf_text(standard);
  CHECK(row(text, "Invoice") == words{"inv_c_flat_2024-01"});
  CHECK(row(text, "Status") == words{"paid"});
  CHECK(row(text, "api_calls") == words{"17", "1.46"});
  CHECK(row(text, "gb_stored") == words{"150.5", "7.52"});
  CHECK(row(text, "Total") == words{"7.98", "USD"});
  CHECK_THAT(text, Contains("Credit: goodwill")); // the store keeps the credits' reasons

  REQUIRE(render(store, "inv_c_flat_2024-01_c1", correction).status == 0);
  const std::string corrected = pdf_text(correction);
  CHECK_THAT(corrected, Contains("Corrects invoice inv_c_flat_2024-01\n"));
  CHECK(row(corrected, "api_calls") == words{"+1", "+0.08"});
  CHECK(row(corrected, "Total change") == words{"+0.08", "USD"});

  const auto unknown = run_meterflow("invoice pdf" + store + "inv_nope 2>&1");
  CHECK(unknown.status == 2);
  CHECK_THAT(unknown.out, Contains("no invoice \"inv_nope\""));
}

TEST_CASE("invoice pdf: the renderer breaks pages, needs every charge and shows only WinAnsi "
          "text",
          "[invoice][pdf]") {
  using namespace meterflow;
  using pricing::decimal;
  scratch dir("renderer");
  persistence::invoice_record inv;
  inv.invoice_id = "inv_big_2024-03";
  inv.customer_id = "big";
  inv.period = pricing::period_of(pricing::parse_rfc3339("2024-03-01T00:00:00Z").value());
  inv.currency = "JPY";
  inv.credit_reasons = {"caf\xc3\xa9 outage"};
  std::vector<persistence::charge_record> charges;
  for (int i = 0; i < 60; ++i) {
    persistence::charge_record c;
    c.charge_id = "charge_" + std::to_string(i);
    c.quantity = decimal::from_int(1000 + i);
    auto& calc = c.calculation;
    calc.price_book_id = "pb_jpy";
    calc.version = "v1";
    calc.model = pricing::model_kind::tiered;
    calc.amount = decimal::from_int(7 * (1000 + i));
    calc.tiers = {{1, c.quantity, decimal::from_int(7), decimal(), calc.amount}};
    inv.line_items.push_back({"line_" + std::to_string(i),
                              "metric_" + std::to_string(i),
                              c.quantity,
                              calc.amount,
                              {persistence::packed_id(c.charge_id)}});
    inv.subtotal += calc.amount;
    charges.push_back(std::move(c));
  }
  inv.total = inv.subtotal;

  const fs::path pdf = dir.path / "big.pdf";
  std::ofstream(pdf, std::ios::binary) << runtime::render_invoice_pdf(inv, charges);
  const std::string text = pdf_text(pdf);
  CHECK_THAT(text, Contains("inv_big_2024-03 - page 1"));
  CHECK_THAT(text, Contains("inv_big_2024-03 - page 3"));
  CHECK(row(text, "metric_59") == words{"1059", "7413"});
  CHECK_THAT(text, Contains("tier 1: 1059 units x 7 = 7413"));
  CHECK(row(text, "Total") == words{"432390", "JPY"});
  CHECK_THAT(text, Contains("Credit: caf?? outage"));

  charges.pop_back();
  CHECK_THROWS_WITH(runtime::render_invoice_pdf(inv, charges),
                    Contains("charge charge_59 of line metric_59 not found"));
}
