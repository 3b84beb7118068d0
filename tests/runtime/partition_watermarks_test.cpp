// Per-partition watermarks of a streaming source (SEMANTICS §4) at their boundaries: the
// out-of-orderness bound, the idle timeout, revocation, and never moving backwards.

#include "runtime/partition_watermarks.hpp"

#include <catch2/catch.hpp>

using meterflow::actors::watermark_min;
using meterflow::runtime::partition_watermarks;
using clock_point = partition_watermarks::clock::time_point;
using std::chrono::microseconds;

namespace {

constexpr meterflow::pricing::duration minute = 60'000'000;
constexpr meterflow::pricing::duration idle_timeout = 30'000'000; // 30s
const clock_point t0{};

clock_point at(meterflow::pricing::duration us) {
  return t0 + microseconds(us);
}

// Partitions 0 and 1, assigned at t0, with one event each at t0.
partition_watermarks two_partitions(meterflow::pricing::timestamp first,
                                    meterflow::pricing::timestamp second,
                                    meterflow::pricing::duration idle = idle_timeout) {
  partition_watermarks w(minute, idle);
  w.assign(0, watermark_min, t0);
  w.assign(1, watermark_min, t0);
  w.observe(0, first, t0);
  w.observe(1, second, t0);
  return w;
}

} // namespace

TEST_CASE("partition watermark: max event time minus max_out_of_orderness, never backwards",
          "[watermark]") {
  partition_watermarks w(minute, idle_timeout);
  w.assign(0, watermark_min, t0);
  CHECK(w.of(0) == watermark_min);
  CHECK(w.observe(0, 10 * minute, t0) == 9 * minute);
  CHECK(w.observe(0, 10 * minute - 1, t0) == 9 * minute); // older: no move
  CHECK(w.observe(0, 10 * minute + 1, t0) == 9 * minute + 1);
  CHECK(w.advance(t0) == 9 * minute + 1);

  partition_watermarks exact(0, idle_timeout); // "0s" out-of-orderness is allowed
  exact.assign(3, watermark_min, t0);
  CHECK(exact.observe(3, 42, t0) == 42);
}

TEST_CASE("source watermark: the minimum over the active partitions", "[watermark]") {
  partition_watermarks w(minute, idle_timeout);
  w.assign(0, watermark_min, t0);
  w.assign(1, watermark_min, t0);
  w.observe(0, 100 * minute, t0);
  // Partition 1 has delivered nothing yet: it may have a backlog, so it holds the source.
  CHECK(w.advance(t0) == watermark_min);
  w.observe(1, 50 * minute, t0);
  CHECK(w.advance(t0) == 49 * minute);
  w.observe(1, 200 * minute, t0);
  CHECK(w.advance(t0) == 99 * minute);
  CHECK(w.source() == 99 * minute);
}

TEST_CASE("idle partition: at the idle timeout it stops holding the source back and is advanced "
          "to it",
          "[watermark]") {
  auto w = two_partitions(10 * minute, 5 * minute);
  CHECK(w.advance(t0) == 4 * minute);

  // Partition 0 keeps delivering; partition 1 goes quiet after t0.
  w.observe(0, 20 * minute, at(idle_timeout - 1));
  CHECK(w.advance(at(idle_timeout - 1)) == 4 * minute); // one microsecond short: still active
  CHECK_FALSE(w.idle(1));
  CHECK(w.advance(at(idle_timeout)) == 19 * minute); // exactly the timeout: idle
  CHECK(w.idle(1));
  CHECK_FALSE(w.idle(0));
  CHECK(w.of(1) == 19 * minute); // advanced to the active ones' minimum

  // A message makes it active again; an older event does not move it backwards.
  CHECK(w.observe(1, 6 * minute, at(idle_timeout + 1)) == 19 * minute);
  CHECK_FALSE(w.idle(1));
  CHECK(w.advance(at(idle_timeout + 1)) == 19 * minute);
  CHECK(w.observe(1, 25 * minute, at(idle_timeout + 2)) == 24 * minute);
  CHECK(w.advance(at(idle_timeout + 2)) == 19 * minute); // partition 0 is the minimum now
}

TEST_CASE("idle partition: any message keeps it active, not only accepted events", "[watermark]") {
  auto w = two_partitions(10 * minute, 5 * minute);
  w.observe(0, 20 * minute, at(idle_timeout));
  w.activity(1, at(idle_timeout - 1)); // a duplicate or a rejected line
  CHECK(w.advance(at(idle_timeout)) == 4 * minute);
  CHECK_FALSE(w.idle(1));
}

TEST_CASE("all partitions idle: the source watermark stays where it is", "[watermark]") {
  auto w = two_partitions(10 * minute, 30 * minute);
  CHECK(w.advance(t0) == 9 * minute);
  CHECK(w.advance(at(10 * idle_timeout)) == 9 * minute);
  CHECK(w.idle(0));
  CHECK(w.idle(1));
  CHECK(w.of(0) == 9 * minute);
  CHECK(w.of(1) == 29 * minute); // an idle partition is never moved backwards either
}

TEST_CASE("a newly assigned partition holds the source until its first message or its idle "
          "timeout",
          "[watermark]") {
  partition_watermarks w(minute, idle_timeout);
  w.assign(0, watermark_min, t0);
  w.observe(0, 10 * minute, t0);
  CHECK(w.advance(t0) == 9 * minute);
  // Assigned later, with the watermark it had reached before (from the store).
  w.assign(1, 2 * minute, at(idle_timeout));
  w.observe(0, 20 * minute, at(2 * idle_timeout - 1));
  CHECK(w.advance(at(2 * idle_timeout - 1)) == 9 * minute); // the source never moves back
  CHECK(w.of(1) == 2 * minute);
  CHECK(w.advance(at(2 * idle_timeout)) == 19 * minute); // its idle timeout, from assignment
  CHECK(w.of(1) == 19 * minute);
}

TEST_CASE("a revoked partition no longer holds the source back", "[watermark]") {
  auto w = two_partitions(10 * minute, 50 * minute);
  CHECK(w.advance(t0) == 9 * minute);
  w.revoke(0);
  CHECK(w.advance(t0) == 49 * minute);
  CHECK_THROWS_AS(w.of(0), std::out_of_range);
  w.revoke(1);
  CHECK(w.advance(t0) == 49 * minute); // nothing assigned: it stays
}

TEST_CASE("idle timeout 0 turns idleness off", "[watermark]") {
  auto w = two_partitions(10 * minute, 5 * minute, 0);
  w.observe(0, 20 * minute, at(100 * idle_timeout));
  CHECK(w.advance(at(100 * idle_timeout)) == 4 * minute);
  CHECK_FALSE(w.idle(1));
}

TEST_CASE("an idle timeout of years does not overflow the clock", "[watermark]") {
  constexpr meterflow::pricing::duration centuries = 1000LL * 365 * 86'400'000'000LL;
  partition_watermarks w(minute, centuries);
  w.assign(0, watermark_min, t0);
  w.assign(1, watermark_min, t0);
  w.observe(0, 10 * minute, t0);
  CHECK(w.advance(at(86'400'000'000LL)) == watermark_min); // a day later, 1 still holds it
  CHECK_FALSE(w.idle(1));
}
