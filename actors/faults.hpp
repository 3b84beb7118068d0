#pragma once

// Test-only fault injection for the stage actors: the N-th message a kind of stage handles in
// this process throws, once, so tests can show that a crashed stage takes its partition down
// and the supervisor rebuilds both from the store. Set by `meterflow run` from
// METERFLOW_TEST_FAULT; zero (the default) never fires.

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace meterflow::actors {

enum class stage_kind { window, rating, invoice };

inline std::atomic<std::uint64_t>& stage_fault_countdown(stage_kind k) {
  static std::atomic<std::uint64_t> countdowns[3];
  return countdowns[static_cast<int>(k)];
}

inline void stage_fault_point(stage_kind k, const char* name) {
  auto& countdown = stage_fault_countdown(k);
  std::uint64_t n = countdown.load(std::memory_order_relaxed);
  while (n != 0 && !countdown.compare_exchange_weak(n, n - 1))
    ;
  if (n == 1)
    throw std::runtime_error(std::string("injected fault: a ") + name + " actor crashed");
}

} // namespace meterflow::actors
