#pragma once

// The partition actor: owns a hash range of customers. It deduplicates and stores their events
// (admit), then applies each batch between the source's watermark steps (apply): it groups the
// events by window and sends one message per window actor, keeps the ordered index of window
// ends, and at every step drives its stage actors (window, rating, invoice) through close,
// finalize, rating, re-rating and invoicing. The stage actors are linked to it: when any of
// them fails, the partition fails with it, and the supervisor (the driver) restarts the
// partition, which rebuilds every stage from the store (restore).

#include "actors/interfaces.hpp"

#include <caf/typed_event_based_actor.hpp>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_map>

namespace meterflow::actors {

struct partition_actor_state {
  static inline const char* name = "partition";
  using pointer = partition_actor::stateful_pointer<partition_actor_state>;

  pointer self = nullptr;
  std::uint32_t partition = 0;
  const config::configuration* cfg = nullptr;
  persistence::event_store* store = nullptr;
  // Test-only fault hook: throw while applying this batch number (0 = never).
  std::uint64_t crash_at_batch = 0;

  partition_counters counters;
  timestamp watermark = watermark_min;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> pending; // (seq, store index) to apply

  std::vector<persistence::append_outcome> admit(std::vector<sequenced_event>&& events);
  // Applies the pending events interleaved with `steps` (and, at the end of input, moves the
  // watermark to +infinity); calls `done` when every stage has replied.
  void start(std::vector<watermark_step> steps, bool end_of_input, std::function<void()> done);
  partition_report report();
  // A resumed service: the stages take the charges and invoices the store holds.
  void adopt(stored_state&& stored, std::function<void()> done);
  // Replies of the stage actors.
  void on_done(stage_output& o);
  void on_final(finalized_window& f);

  struct window_entry {
    window_actor handle;
    std::string customer_id;
    const config::meter* meter = nullptr;
    timestamp start = 0;
    timestamp end = 0;
    bool opened = false; // its window actor was told (with its first events)
    bool closed = false;
    bool dirty = false;               // changed since its last provisional aggregate
    std::vector<window_input> inputs; // events not sent to the window actor yet
  };
  struct invoice_entry {
    invoice_actor handle;
    std::string customer_id;
    pricing::period period;
  };
  struct scope_entry {
    rating_actor handle;
    const config::meter* meter = nullptr;
    invoice_entry* invoice = nullptr;
  };
  using window_key = std::tuple<std::string, std::string, timestamp>; // customer, metric, start
  using scope_key = std::tuple<std::string, std::string, timestamp>;  // customer, metric, period
  using invoice_key = std::pair<std::string, timestamp>;              // customer, period

  // Window and scope keys alike: (customer, metric, a time).
  struct key_hash {
    std::size_t operator()(const window_key& k) const {
      const std::size_t a = std::hash<std::string>()(std::get<0>(k));
      const std::size_t b = std::hash<std::string>()(std::get<1>(k));
      return a ^ (b * 0x9E3779B97F4A7C15ull) ^ (static_cast<std::size_t>(std::get<2>(k)) * 31);
    }
  };
  // Open windows, looked up once per event and never iterated: a hash map (a tree of
  // string tuples cost a walk of string comparisons per event).
  std::unordered_map<window_key, std::unique_ptr<window_entry>, key_hash> windows;
  std::multimap<timestamp, window_entry*> to_close;    // by end
  std::multimap<timestamp, window_entry*> to_finalize; // by end + lateness
  std::vector<window_entry*> dirty_closing;
  std::vector<window_entry*> with_inputs;
  std::vector<window_actor> idle_windows; // window actors whose window is final
  // Looked up twice per final window; iterated only to send each its own message: a hash map.
  std::unordered_map<scope_key, std::unique_ptr<scope_entry>, key_hash> scopes;
  std::multimap<timestamp, scope_entry*> period_close; // period-level meters, by end + lateness
  std::map<invoice_key, std::unique_ptr<invoice_entry>> invoices;
  std::multimap<timestamp, invoice_entry*> invoice_due; // by period end + lateness
  // Scopes marked by very late events, with the windows those events fell into: only those
  // windows can differ from their final aggregate (a final window takes no other events).
  std::map<rerate_scope, std::set<timestamp>> dirty_scopes;

private:
  // The batch being applied.
  struct job {
    std::vector<watermark_step> steps;
    std::size_t next_step = 0;
    std::size_t next_event = 0;
    bool end_of_input = false;
    bool finished = false;
    bool active = false;
    std::function<void()> done;
  };
  // The watermark step being processed, stage by stage.
  struct step_work {
    std::uint64_t seq = 0;
    bool finishing = false;
    std::vector<window_entry*> provisional;
    std::vector<std::unique_ptr<window_entry>> finalizing;
    std::vector<std::pair<scope_key, window_final>> finals;
    std::vector<invoice_entry*> due;
    bool interval_crossed = false;
  };

  void resume();
  void add_event(std::uint32_t index);
  void begin_step(std::uint64_t seq, timestamp to, bool finishing);
  void flush_inputs();
  void stage_windows();
  void stage_rating();
  void stage_interval_rerates();
  void stage_due_invoices();
  void stage_end_of_input();
  void step_done();
  void rerates(phase p, const std::function<bool(const rerate_scope&)>& wanted,
               std::function<void()> next);
  void settle(std::set<invoice_entry*> touched, std::function<void()> next);
  void record_rerate_run(phase p, const invoice_entry& inv, nlohmann::json scopes,
                         std::size_t charges_before, std::size_t invoices_before);

  // Every message that expects a reply counts here; the last reply runs what then() set.
  template <class Handle, class... Ts>
  void tell(const Handle& h, Ts&&... xs);
  void replied();
  void then(std::function<void()> next);
  partition_actor parent();

  scope_entry& scope_for(const std::string& customer, const config::meter& m,
                         const pricing::period& period);
  invoice_entry& invoice_for(const std::string& customer, const pricing::period& period);

  job job_;
  step_work work_;
  partition_output out_;
  std::string fatal_;
  bool running_ = false;
  bool waiting_ = false;
  std::size_t outstanding_ = 0;
  std::function<void()> next_;
};

partition_actor::behavior_type
partition(partition_actor::stateful_pointer<partition_actor_state> self, std::uint32_t index,
          const config::configuration* cfg, persistence::event_store* store,
          std::uint64_t crash_at_batch);

} // namespace meterflow::actors
