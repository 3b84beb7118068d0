#include "runtime/line_reader.hpp"

#include "runtime/cli.hpp"

#include <cerrno>
#include <cstring>

namespace meterflow::runtime {

namespace {
constexpr std::size_t block_size = 1 << 20;
}

line_reader::line_reader(const std::string& path) {
  if (path == "-") {
    file_ = stdin;
  } else {
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_)
      throw usage_error("--events: cannot open " + path + ": " + std::strerror(errno));
    owned_ = true;
  }
  buffer_.resize(block_size);
}

line_reader::~line_reader() {
  if (owned_)
    std::fclose(file_);
}

bool line_reader::fill() {
  if (eof_)
    return false;
  // Keep the unread tail, grow when one line is longer than the buffer.
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size())
    buffer_.resize(buffer_.size() * 2);
  const std::size_t n = std::fread(buffer_.data() + end_, 1, buffer_.size() - end_, file_);
  if (n == 0) {
    if (follow_)
      std::clearerr(file_); // more may be appended
    else
      eof_ = true;
    return false;
  }
  end_ += n;
  return true;
}

bool line_reader::next(std::string_view& line, std::uint64_t& line_no) {
  for (;;) {
    const char* start = buffer_.data() + begin_;
    const void* nl = std::memchr(start, '\n', end_ - begin_);
    if (nl) {
      std::size_t len = static_cast<const char*>(nl) - start;
      begin_ += len + 1;
      if (len > 0 && start[len - 1] == '\r')
        --len;
      line = std::string_view(start, len);
      line_no = ++line_no_;
      return true;
    }
    if (!fill()) {
      if (begin_ == end_ || follow_)
        return false;
      // A last line without a terminator.
      std::size_t len = end_ - begin_;
      const char* s = buffer_.data() + begin_;
      begin_ = end_;
      if (len > 0 && s[len - 1] == '\r')
        --len;
      line = std::string_view(s, len);
      line_no = ++line_no_;
      return true;
    }
  }
}

} // namespace meterflow::runtime
