#pragma once

// The `meterflow` commands. Each takes its arguments after the command name and returns the
// process exit status.

#include <optional>
#include <string>
#include <vector>

namespace meterflow::config {
struct configuration;
}

namespace meterflow::runtime {

int quote_command(const std::vector<std::string>& args);
extern const char* const quote_usage;
int run_command(const std::vector<std::string>& args);
int serve_command(const std::vector<std::string>& args);
// `serve --kafka`, after serve_command took --report DIR out of the arguments.
int serve_stream_command(const std::vector<std::string>& args,
                         const std::optional<std::string>& report_dir);
extern const char* const serve_usage;
extern const char* const run_usage;
int explain_command(const std::vector<std::string>& args);
int invoice_command(const std::vector<std::string>& args);
int invoice_pdf_command(const std::vector<std::string>& args); // `invoice pdf`
extern const char* const invoice_usage;
extern const char* const explain_usage;
int rerate_command(const std::vector<std::string>& args);
extern const char* const rerate_usage;
int migrate_command(const std::vector<std::string>& args);
extern const char* const migrate_usage;
int devkafka_command(const std::vector<std::string>& args);
extern const char* const devkafka_usage;
int produce_command(const std::vector<std::string>& args);
extern const char* const produce_usage;
int reconcile_command(const std::vector<std::string>& args);
extern const char* const reconcile_usage;

// `serve --report DIR`: the arguments without it, and DIR (created here, so a bad path fails
// before anything is served).
struct report_option {
  std::vector<std::string> args;
  std::optional<std::string> dir;
};
report_option take_report_option(const std::vector<std::string>& args);
// Writes DIR/reconciliation.json, the store's reconciliation, and prints its result; returns
// the exit status (0 reconciled, 1 a check failed or the store could not be read).
// Reconciles one scope of the store (after a re-rate), prints the result line and any failed
// check; returns whether every check passed.
struct reconcile_scope;
bool print_scope_reconciliation(const std::string& store_url, const config::configuration& cfg,
                                const reconcile_scope& scope);
int write_store_report(const std::string& dir, const std::string& store_url,
                       const config::configuration& cfg);

} // namespace meterflow::runtime
