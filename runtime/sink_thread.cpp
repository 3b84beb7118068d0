#include "runtime/sink_thread.hpp"

#include "runtime/run_sink.hpp"

namespace meterflow::runtime {

sink_thread::sink_thread(run_sink& sink, std::size_t max_queued)
    : sink_(sink), max_queued_(max_queued < 1 ? 1 : max_queued), thread_([this] { loop(); }) {}

sink_thread::~sink_thread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void sink_thread::rethrow_failure() {
  if (failure_)
    std::rethrow_exception(failure_);
}

void sink_thread::submit(batch&& b) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return failure_ || queue_.size() < max_queued_; });
  rethrow_failure();
  queue_.push_back(std::move(b));
  lock.unlock();
  changed_.notify_all();
}

void sink_thread::drain() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return failure_ || (queue_.empty() && !busy_); });
  rethrow_failure();
}

void sink_thread::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty() || failure_)
      return; // stopping, with everything written (or after a failure)
    batch b = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    std::exception_ptr failed;
    try {
      sink_.add(std::move(b.output));
      sink_.add_rejected(std::move(b.rejected));
      sink_.flush(b.upto_line);
    } catch (...) {
      failed = std::current_exception();
    }
    b = {}; // the batch's records are freed here, not under the lock
    lock.lock();
    busy_ = false;
    if (failed)
      failure_ = failed;
    changed_.notify_all();
  }
}

} // namespace meterflow::runtime
