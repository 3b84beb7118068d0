#pragma once

// Reads an NDJSON input (a file, or standard input for "-") line by line in large blocks.
// Lines are returned without their terminator and without a trailing '\r'; a last line
// without a newline is still a line.

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace meterflow::runtime {

class line_reader {
public:
  explicit line_reader(const std::string& path);
  ~line_reader();
  line_reader(const line_reader&) = delete;
  line_reader& operator=(const line_reader&) = delete;

  // The next line and its 1-based physical line number; false at end of input. The view
  // stays valid until the next call.
  bool next(std::string_view& line, std::uint64_t& line_no);

  // Following a growing file: next() returns false when no complete line is there yet (a
  // partial last line waits for its newline) and tries again on the next call.
  void follow() { follow_ = true; }

private:
  bool fill();
  std::FILE* file_ = nullptr;
  bool owned_ = false;
  std::string buffer_;
  std::size_t begin_ = 0; // start of unread data in buffer_
  std::size_t end_ = 0;   // end of valid data in buffer_
  bool eof_ = false;
  bool follow_ = false;
  std::uint64_t line_no_ = 0;
};

} // namespace meterflow::runtime
