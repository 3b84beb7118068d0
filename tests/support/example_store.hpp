#pragma once

// A PostgreSQL schema that `meterflow run --store` filled with the examples (config.json and
// events.ndjson), and a scratch directory (the run's output files are under run/), removed at
// the end. Without METERFLOW_TEST_PG, `filled()` is false after a warning: the test returns.

#include "support/pg_test_schema.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <unistd.h>

namespace meterflow::test {

class example_store {
public:
  explicit example_store(const std::string& name) {
    const auto server = pg_server();
    if (!server) {
      WARN("METERFLOW_TEST_PG is not set: skipped");
      return;
    }
    schema_ = std::make_unique<pg_test_schema>(*server, false);
    dir_ = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    const std::string examples = std::string(METERFLOW_SOURCE_DIR) + "/examples";
    REQUIRE(run_meterflow("run --quiet --config " + shell_quote(examples + "/config.json") +
                          " --events " + shell_quote(examples + "/events.ndjson") + " --out " +
                          shell_quote((dir_ / "run").string()) + " --store " + shell_quote(db()) +
                          " > /dev/null")
                .status == 0);
  }
  ~example_store() {
    std::error_code ignored;
    if (!dir_.empty())
      std::filesystem::remove_all(dir_, ignored);
  }
  example_store(const example_store&) = delete;
  example_store& operator=(const example_store&) = delete;

  bool filled() const { return schema_ != nullptr; }
  const std::string& db() const { return schema_->conninfo(); }
  const std::filesystem::path& dir() const { return dir_; }

private:
  std::unique_ptr<pg_test_schema> schema_;
  std::filesystem::path dir_;
};

} // namespace meterflow::test
