#pragma once

// Drives one partition actor (and so its window, rating and invoice actors) from a test the way
// the `meterflow run` driver does: admit a batch, apply its watermark steps, restore after a
// crash. Every call waits for the actor's reply.

#include "actors/partition_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <stdexcept>

namespace meterflow::test {

// One actor system for the whole test binary, with the engine's default of two workers. It is
// never destroyed: tests end with the process.
inline caf::actor_system& test_actor_system() {
  static caf::actor_system* sys = [] {
    static caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 2);
    cfg.set("logger.console", caf::atom("none"));
    return new caf::actor_system(cfg);
  }();
  return *sys;
}

class test_partition {
public:
  test_partition(const config::configuration& cfg, persistence::event_store& store,
                 std::uint32_t index = 0)
      : cfg_(cfg), store_(store), index_(index), self_(test_actor_system()) {
    spawn();
  }
  ~test_partition() { stop(); }
  test_partition(const test_partition&) = delete;
  test_partition& operator=(const test_partition&) = delete;

  std::vector<persistence::append_outcome> admit(std::vector<actors::sequenced_event>&& events) {
    std::vector<persistence::append_outcome> outcomes;
    self_
        ->request(handle_, caf::infinite, actors::admit_atom::value,
                  actors::event_batch{0, std::move(events)})
        .receive([&](actors::admit_result& r) { outcomes = std::move(r.outcomes); },
                 [](caf::error& e) { throw std::runtime_error(caf::to_string(e)); });
    return outcomes;
  }

  void apply(const std::vector<actors::watermark_step>& steps, bool end_of_input = false) {
    wait(actors::apply_atom::value, actors::watermark_steps{0, steps, end_of_input});
  }
  void finish() { apply({}, true); }

  // A crash: the partition and its stage actors are replaced by a fresh partition that
  // rebuilds them from the store.
  void restore(const std::vector<actors::watermark_step>& history, std::uint64_t applied_upto) {
    stop();
    spawn();
    wait(actors::restore_atom::value, actors::restore_request{history, applied_upto, true});
    output_ = {};
  }

  actors::partition_output take_output() {
    actors::partition_output o = std::move(output_);
    output_ = {};
    return o;
  }
  const actors::partition_counters& counters() const { return last_.counters; }
  std::size_t open_windows() const { return last_.open_windows; }
  pricing::timestamp watermark() const { return last_.watermark; }

private:
  template <class... Ts>
  void wait(Ts&&... xs) {
    self_->request(handle_, caf::infinite, std::forward<Ts>(xs)...)
        .receive(
            [&](actors::partition_report& r) {
              if (!r.fatal.empty())
                throw std::runtime_error(r.fatal);
              output_.append(std::move(r.output));
              last_ = std::move(r);
            },
            [](caf::error& e) { throw std::runtime_error(caf::to_string(e)); });
  }
  void spawn() {
    handle_ = test_actor_system().spawn(actors::partition, index_, &cfg_, &store_, 0);
  }
  void stop() {
    self_->send_exit(handle_, caf::exit_reason::user_shutdown);
    self_->wait_for(handle_);
  }

  const config::configuration& cfg_;
  persistence::event_store& store_;
  std::uint32_t index_;
  caf::scoped_actor self_;
  actors::partition_actor handle_;
  actors::partition_report last_;
  actors::partition_output output_;
};

} // namespace meterflow::test
