// The HTTP API's read and admin routes over a store filled by `meterflow run --store` on the
// examples: usage drafts, invoices (JSON, PDF, lists, lifecycle), charge explanations, price
// book publication and re-rates, against the batch run's files and the CLI.

#include "runtime/http_store_routes.hpp"
#include "support/example_store.hpp"
#include "support/process.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <httplib.h>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

using meterflow::pricing::decimal;
using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;
using nlohmann::json;

namespace {

namespace fs = std::filesystem;

const std::string examples = std::string(METERFLOW_SOURCE_DIR) + "/examples";

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

decimal dec(const json& j) {
  return decimal::parse(j.get<std::string>()).value();
}

std::string scalar(const std::string& conninfo, const std::string& sql) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  const auto r = tx.exec1(sql);
  return r[0].is_null() ? "" : r[0].c_str();
}

// The routes on a free port of the loopback interface, served on a thread until destroyed.
class test_server {
public:
  explicit test_server(const meterflow::runtime::store_routes_options& options) {
    meterflow::runtime::add_store_routes(server_, options);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running())
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~test_server() {
    server_.stop();
    thread_.join();
  }
  httplib::Client client() const { return httplib::Client("127.0.0.1", port_); }

private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// The answer's status and parsed body.
struct reply {
  int status = 0;
  json body;
};

reply get(httplib::Client& c, const std::string& path) {
  auto r = c.Get(path.c_str());
  REQUIRE(r);
  return {r->status, json::parse(r->body, nullptr, false)};
}

reply post(httplib::Client& c, const std::string& path, const json& body) {
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  REQUIRE(r);
  return {r->status, json::parse(r->body, nullptr, false)};
}

// An error answer names the problem.
void check_error(const reply& r, int status, const std::string& error) {
  INFO(r.body.dump());
  CHECK(r.status == status);
  CHECK(r.body.value("error", "") == error);
  CHECK(!r.body.value("detail", "").empty());
}

json corrected_version(const std::string& price) {
  return {{"version", "v2-corrected"},
          {"effective_from", "2024-01-15T00:00:00Z"},
          {"effective_until", "2024-02-01T00:00:00Z"},
          {"prices",
           {{"api_calls", {{"model", "flat"}, {"unit_price", price}}},
            {"gb_stored", {{"model", "flat"}, {"unit_price", "0.05"}}}}}};
}

} // namespace

TEST_CASE("http store routes: usage, invoices, PDF, lifecycle, charges, price books and "
          "re-rates over a store the batch run filled",
          "[http][postgresql]") {
  const meterflow::test::example_store store("meterflow_http");
  if (!store.filled())
    return;
  const std::string& db = store.db();
  const fs::path& dir = store.dir();
  const auto cfg = meterflow::config::load_file(examples + "/config.json");
  test_server api({&cfg, db, [&](const meterflow::runtime::rerate_spec& spec) {
                     return meterflow::runtime::rerate(
                         meterflow::runtime::with_published_versions(cfg, db), spec);
                   }});
  auto client = api.client();

  std::map<std::string, json> files; // the batch run's invoices
  for (const auto& e : fs::directory_iterator(dir / "run" / "invoices"))
    files[e.path().stem().string()] = read_json(e.path());
  REQUIRE(files.size() > 4);
  std::map<std::string, json> charges; // every charge of the run, and which are superseded
  std::set<std::string> superseded;
  {
    std::ifstream in(dir / "run" / "charges.ndjson");
    for (std::string line; std::getline(in, line);) {
      const json c = json::parse(line);
      charges[c["charge_id"]] = c;
      if (!c["supersedes_charge_id"].is_null())
        superseded.insert(c["supersedes_charge_id"].get<std::string>());
    }
  }

  // Every invoice as the batch run wrote it.
  for (const auto& [id, file] : files) {
    const reply r = get(client, "/v1/invoices/" + id);
    INFO(id);
    CHECK(r.status == 200);
    CHECK(r.body == file);
  }

  // Concurrent requests each get a connection of their own, and the same answers.
  {
    std::atomic<int> same{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t)
      clients.emplace_back([&] {
        auto c = api.client();
        for (int i = 0; i < 10; ++i) {
          const auto r = c.Get("/v1/invoices/inv_c_flat_2024-01");
          if (r && r->status == 200 &&
              json::parse(r->body, nullptr, false) == files.at("inv_c_flat_2024-01"))
            ++same;
        }
      });
    for (auto& t : clients)
      t.join();
    CHECK(same == 40);
  }

  // Usage: the current charges of the period, and a projected invoice that bills what the
  // standard invoice and its correction billed together.
  {
    const reply r = get(client, "/v1/customers/c_flat/usage?period=2024-01");
    REQUIRE(r.status == 200);
    CHECK(r.body["status"] == "issued");
    CHECK(r.body["invoice_id"] == "inv_c_flat_2024-01");
    CHECK(r.body["invoice_ids"] == json({"inv_c_flat_2024-01", "inv_c_flat_2024-01_c1"}));
    decimal expected, charged;
    std::size_t current = 0;
    for (const auto& [id, c] : charges)
      if (c["customer_id"] == "c_flat" && !superseded.count(id) &&
          c["window_start"].get<std::string>().rfind("2024-01", 0) == 0) {
        expected += dec(c["amount"]);
        ++current;
      }
    std::size_t listed = 0;
    for (const auto& m : r.body["metrics"]) {
      decimal sum;
      for (const auto& c : m["charges"]) {
        sum += dec(c["amount"]);
        ++listed;
      }
      CHECK(dec(m["charged"]).to_string() == sum.to_string());
      charged += sum;
      CHECK(!m["windows"].empty());
      for (const auto& w : m["windows"])
        CHECK(w["is_final"] == true); // the batch run ended its input: every window is final
    }
    CHECK(listed == current);
    CHECK(charged.to_string() == expected.to_string());
    decimal billed;
    for (const auto& [id, inv] : files)
      if (inv["customer_id"] == "c_flat" && inv["period"]["start"] == "2024-01-01T00:00:00Z")
        billed += dec(inv["total"]);
    const json& projected = r.body["projected_invoice"];
    CHECK(projected["status"] == "draft");
    CHECK(projected["invoice_id"] == "inv_c_flat_2024-01");
    CHECK(dec(projected["total"]).to_string() == billed.to_string());
    CHECK(projected["credits_applied"] == files["inv_c_flat_2024-01"]["credits_applied"]);
  }
  {
    // A period with nothing stored yet: a draft with nothing to bill.
    const reply r = get(client, "/v1/customers/c_flat/usage?period=2023-12");
    REQUIRE(r.status == 200);
    CHECK(r.body["status"] == "draft");
    CHECK(r.body["invoice_id"].is_null());
    CHECK(r.body["metrics"].empty());
    CHECK(r.body["projected_invoice"].is_null());
  }
  check_error(get(client, "/v1/customers/c_flat/usage?period=2024-13"), 400, "bad_period");
  check_error(get(client, "/v1/customers/c_flat/usage"), 400, "missing_parameter");
  check_error(get(client, "/v1/customers/nobody/usage?period=2024-01"), 404, "not_found");

  // The PDF shows the total.
  {
    auto r = client.Get("/v1/invoices/inv_c_flat_2024-01.pdf");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->get_header_value("Content-Type") == "application/pdf");
    REQUIRE(r->body.rfind("%PDF", 0) == 0);
    std::ofstream(dir / "inv.pdf", std::ios::binary) << r->body;
    const auto text = meterflow::test::run_shell("pdftotext -layout " +
                                                 shell_quote((dir / "inv.pdf").string()) + " -");
    CHECK_THAT(text.out,
               Catch::Contains("inv_c_flat_2024-01") &&
                   Catch::Contains(files["inv_c_flat_2024-01"]["total"].get<std::string>()));
  }
  check_error(get(client, "/v1/invoices/inv_nobody_2024-01.pdf"), 404, "not_found");
  check_error(get(client, "/v1/invoices/inv_nobody_2024-01"), 404, "not_found");

  // Lists: by customer, by period, and page by page.
  {
    const reply r = get(client, "/v1/invoices?customer=c_flat&period=2024-01");
    REQUIRE(r.status == 200);
    std::set<std::string> listed, expected;
    for (const auto& inv : r.body["invoices"])
      listed.insert(inv["invoice_id"].get<std::string>());
    for (const auto& [id, inv] : files)
      if (inv["customer_id"] == "c_flat" && inv["period"]["start"] == "2024-01-01T00:00:00Z")
        expected.insert(id);
    CHECK(listed == expected);
    std::set<std::string> paged;
    json offset = 0;
    for (int pages = 0; !offset.is_null() && pages < 100; ++pages) {
      const reply page = get(client, "/v1/invoices?limit=2&offset=" + offset.dump());
      REQUIRE(page.status == 200);
      CHECK(page.body["invoices"].size() <= 2);
      for (const auto& inv : page.body["invoices"])
        paged.insert(inv["invoice_id"].get<std::string>());
      offset = page.body["next_offset"];
    }
    std::set<std::string> all;
    for (const auto& [id, inv] : files)
      all.insert(id);
    CHECK(paged == all);
  }
  check_error(get(client, "/v1/invoices?limit=0"), 400, "bad_parameter");
  check_error(get(client, "/v1/invoices?period=2024-1"), 400, "bad_period");

  // The lifecycle: issued -> paid; paid -> void refused; unknown invoice; bad bodies.
  {
    const reply paid = post(client, "/v1/invoices/inv_c_tiered_2024-01/status",
                            {{"status", "paid"}, {"actor", "finance"}, {"reason", "wire 17"}});
    INFO(paid.body.dump());
    CHECK(paid.status == 200);
    CHECK(paid.body["status"] == "paid");
    CHECK(get(client, "/v1/invoices/inv_c_tiered_2024-01").body["status"] == "paid");
    check_error(post(client, "/v1/invoices/inv_c_tiered_2024-01/status",
                     {{"status", "void"}, {"actor", "finance"}, {"reason", "oops"}}),
                409, "transition_refused");
    check_error(post(client, "/v1/invoices/inv_c_volume_2024-01/status",
                     {{"status", "void"}, {"actor", "finance"}}),
                409, "transition_refused"); // voiding needs a reason
    check_error(
        post(client, "/v1/invoices/inv_nobody/status", {{"status", "paid"}, {"actor", "finance"}}),
        404, "not_found");
    check_error(post(client, "/v1/invoices/inv_c_volume_2024-01/status", {{"status", "paid"}}), 400,
                "missing_field");
    auto raw = client.Post("/v1/invoices/inv_c_volume_2024-01/status", "{", "application/json");
    REQUIRE(raw);
    CHECK(raw->status == 400);
    CHECK(scalar(db, "select count(*) from invoice_status_events where invoice_id = "
                     "'inv_c_volume_2024-01'") == "1");
  }

  // A charge's explanation names its price book version and its place in the chain.
  const std::string line_charge =
      files["inv_c_flat_2024-01"]["line_items"][0]["charge_ids"][0].get<std::string>();
  {
    const reply r = get(client, "/v1/charges/" + line_charge);
    REQUIRE(r.status == 200);
    const json& file = charges[line_charge];
    CHECK(r.body["price_book_id"] == file["price_book_id"]);
    CHECK(r.body["version"] == file["version"]);
    CHECK(r.body["amount"] == file["amount"]);
    CHECK(r.body["calculation"]["formula"] == file["calculation"]["formula"]);
    CHECK(r.body["status"] == (superseded.count(line_charge) ? "superseded" : "current"));
    REQUIRE(r.body["aggregate"].is_object());
    CHECK(r.body["aggregate"]["aggregation_id"] == file["aggregation_id"]);
  }
  check_error(get(client, "/v1/charges/0123456789abcdef"), 404, "not_found");

  // Publishing: new (201), the same again (200), changed (409), another currency (409), a
  // definition the configuration's parser refuses (400), an unknown book (404).
  const std::string versions = "/v1/price-books/pb_flat/versions";
  CHECK(post(client, versions, corrected_version("0.09")).status == 201);
  CHECK(post(client, versions, corrected_version("0.09")).status == 200);
  check_error(post(client, versions, corrected_version("0.10")), 409, "version_published");
  {
    json eur = corrected_version("0.09");
    eur["currency"] = "EUR";
    check_error(post(client, versions, eur), 409, "currency_mismatch");
    json off_boundary = corrected_version("0.09");
    off_boundary["version"] = "v2-half-hour";
    off_boundary["effective_from"] = "2024-01-15T00:30:00Z";
    const reply bad = post(client, versions, off_boundary);
    check_error(bad, 400, "invalid_version");
    CHECK_THAT(bad.body.value("detail", ""), Catch::Contains("effective_from"));
    json v2 = corrected_version("0.08");
    v2["version"] = "v2";
    check_error(post(client, versions, v2), 409, "version_published");
  }
  check_error(post(client, "/v1/price-books/pb_nobody/versions", corrected_version("0.09")), 404,
              "not_found");
  {
    const reply r = get(client, "/v1/price-books");
    REQUIRE(r.status == 200);
    std::vector<std::string> names;
    for (const auto& book : r.body["price_books"])
      if (book["id"] == "pb_flat")
        for (const auto& v : book["versions"])
          names.push_back(v["version"]);
    CHECK(names == std::vector<std::string>{"v1", "v2", "v3", "v2-corrected"});
  }

  // Re-rate: the dry run writes nothing and agrees with `meterflow rerate --dry-run`; the real
  // one creates the correction invoice, and the store then bills what a fresh run with the
  // corrected prices bills.
  const json rerate = {{"from", "2024-01"},
                       {"customers", {"c_flat"}},
                       {"reason", "dispute 42: v2 price corrected"},
                       {"dry_run", true}};
  const std::string charges_before = scalar(db, "select count(*) from rated_charges");
  {
    const reply dry = post(client, "/v1/rerate", rerate);
    INFO(dry.body.dump());
    REQUIRE(dry.status == 200);
    CHECK(dry.body["recorded"] == false);
    CHECK(dry.body["correction_invoices"].size() == 1);
    CHECK(dry.body["correction_invoices"][0]["invoice_id"] == "inv_c_flat_2024-01_c2");
    CHECK(scalar(db, "select count(*) from rated_charges") == charges_before);
    CHECK(scalar(db, "select count(*) from rerate_runs where trigger = 'manual'") == "0");
    // The CLI with the same versions in its configuration.
    json config = read_json(examples + "/config.json");
    for (auto& book : config["price_books"])
      if (book["id"] == "pb_flat")
        book["versions"].push_back(corrected_version("0.09"));
    std::ofstream(dir / "corrected.json") << config.dump();
    const auto cli = run_meterflow(
        "rerate --config " + shell_quote((dir / "corrected.json").string()) + " --store " +
        shell_quote(db) + " --from 2024-01 --customers c_flat --reason x --dry-run");
    REQUIRE(cli.status == 0);
    const json& total = dry.body["totals"][0];
    CHECK_THAT(cli.out, Catch::Contains("total USD: before " + total["before"].get<std::string>() +
                                        ", after " + total["after"].get<std::string>() +
                                        ", delta " + total["delta"].get<std::string>()));
    CHECK(decimal() < dec(total["delta"])); // a higher price bills more

    json real = rerate;
    real["dry_run"] = false;
    const reply done = post(client, "/v1/rerate", real);
    INFO(done.body.dump());
    REQUIRE(done.status == 201);
    CHECK(done.body["recorded"] == true);
    CHECK(done.body["reconciliation"] == json::parse(R"([{"period":"2024-01","ok":true}])"));
    const reply c2 = get(client, "/v1/invoices/inv_c_flat_2024-01_c2");
    REQUIRE(c2.status == 200);
    CHECK(c2.body["type"] == "correction");
    CHECK(c2.body["corrects_invoice_id"] == "inv_c_flat_2024-01");
    CHECK(c2.body == done.body["correction_invoices"][0]);
    // The key invariant against a fresh batch run with the corrected prices.
    REQUIRE(run_meterflow("run --quiet --config " + shell_quote((dir / "corrected.json").string()) +
                          " --events " + shell_quote(examples + "/events.ndjson") + " --out " +
                          shell_quote((dir / "fresh").string()) + " > /dev/null")
                .status == 0);
    decimal fresh;
    for (const auto& e : fs::directory_iterator(dir / "fresh" / "invoices")) {
      const json inv = read_json(e.path());
      if (inv["customer_id"] == "c_flat" && inv["period"]["start"] == "2024-01-01T00:00:00Z")
        fresh += dec(inv["total"]);
    }
    CHECK(dec(json(scalar(db, "select sum(total)::text from invoices where customer_id = "
                              "'c_flat' and period_start = '2024-01-01'")))
              .to_string() == fresh.to_string());
    // The usage draft follows: it projects what the three invoices bill together.
    const reply usage = get(client, "/v1/customers/c_flat/usage?period=2024-01");
    CHECK(dec(usage.body["projected_invoice"]["total"]).to_string() == fresh.to_string());
    // A superseded charge links to its successor and back.
    const std::string successor = done.body["superseding_charge_ids"][0];
    const reply next = get(client, "/v1/charges/" + successor);
    REQUIRE(next.status == 200);
    CHECK(next.body["version"] == "v2-corrected");
    REQUIRE(next.body["supersedes_chain"].size() >= 1);
    const std::string old = next.body["supersedes_chain"][0]["charge_id"];
    CHECK(get(client, "/v1/charges/" + old).body["superseded_by"] == successor);
  }
  check_error(
      post(client, "/v1/rerate", {{"from", "2024-01"}, {"reason", "x"}, {"metrics", {"nope"}}}),
      400, "bad_scope");
  check_error(post(client, "/v1/rerate", {{"from", "2024-13"}, {"reason", "x"}}), 400,
              "bad_period");
  check_error(post(client, "/v1/rerate", {{"from", "2024-01"}}), 400, "missing_field");
}
