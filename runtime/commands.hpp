#pragma once

// The `meterflow` commands. Each takes its arguments after the command name and returns the
// process exit status.

#include <string>
#include <vector>

namespace meterflow::runtime {

int quote_command(const std::vector<std::string>& args);
extern const char* const quote_usage;
int run_command(const std::vector<std::string>& args);
int serve_command(const std::vector<std::string>& args);
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

} // namespace meterflow::runtime
