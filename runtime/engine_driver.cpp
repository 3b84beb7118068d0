#include "runtime/engine_driver.hpp"

#include "persistence/memory_store.hpp"
#include "runtime/cli.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <set>
#include <stdexcept>
#include <thread>

namespace meterflow::runtime {

using namespace meterflow::actors;

namespace {

constexpr int restart_budget = 3;

bool manually_rerated(const persistence::record_store& records) {
  for (const auto& run : records.rerate_runs())
    if (run.trigger == "manual")
      return true;
  return false;
}

} // namespace

fault_hooks read_fault_hooks() {
  fault_hooks f;
  const char* env = std::getenv("METERFLOW_TEST_FAULT");
  if (!env)
    return f;
  const std::string spec = env;
  if (spec == "break_chain") {
    f.break_chain = true;
  } else if (spec.rfind("crash_partition:", 0) == 0) {
    const auto rest = spec.substr(16);
    const auto colon = rest.find(':');
    f.crash_partition = static_cast<std::uint32_t>(std::stoul(rest.substr(0, colon)));
    f.crash_batch = std::stoull(rest.substr(colon + 1));
  } else if (spec.rfind("crash_stage:", 0) == 0) {
    const auto rest = spec.substr(12);
    const auto colon = rest.find(':');
    const std::string stage = rest.substr(0, colon);
    if (stage != "window" && stage != "rating" && stage != "invoice")
      throw usage_error("METERFLOW_TEST_FAULT: crash_stage takes window, rating or "
                        "invoice, not \"" +
                        stage + "\"");
    const actors::stage_kind kind = stage == "window"   ? actors::stage_kind::window
                                    : stage == "rating" ? actors::stage_kind::rating
                                                        : actors::stage_kind::invoice;
    actors::stage_fault_countdown(kind) = std::stoull(rest.substr(colon + 1));
  }
  return f;
}

progress_line::progress_line(bool enabled)
    : enabled_(enabled), start_(clock::now()), last_(start_) {}

void progress_line::update(std::uint64_t events, timestamp watermark, std::size_t open_windows) {
  if (!enabled_)
    return;
  const auto now = clock::now();
  if (now - last_ < std::chrono::milliseconds(250))
    return;
  last_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  std::cerr << "\r  " << events << " events  "
            << static_cast<std::uint64_t>(secs > 0 ? static_cast<double>(events) / secs : 0)
            << " events/s  watermark "
            << (watermark == watermark_min ? std::string("-") : pricing::format_rfc3339(watermark))
            << "  windows open " << open_windows << "    " << std::flush;
}

void progress_line::done() {
  if (enabled_)
    std::cerr << "\r" << std::string(100, ' ') << "\r" << std::flush;
}

engine_driver::engine_driver(caf::actor_system& sys, const config::configuration& cfg,
                             const driver_options& options)
    : sys_(sys), self_(sys), cfg_(cfg), options_(options), sink_(options.out_dir, false) {
  const std::uint32_t n = options.partitions;
  slots_.resize(n);
  applied_upto_.assign(n, 0);
  flushed_upto_.assign(n, 0);
  batch_upto_.assign(n, 0);
  const auto& store_url = options.store_url;
  if (!stream())
    for (std::uint32_t p = 0; p < n; ++p) {
      slots_[p].store = open_store(p);
      if (store_url && slots_[p].store->size() > 0 && !options.resume)
        throw usage_error("--store: the database already holds events (partition " +
                          std::to_string(p) + " has " + std::to_string(slots_[p].store->size()) +
                          "); a batch run starts from an empty store (meterflow serve "
                          "continues one)");
    }
  if (store_url && options.resume) {
    if (!stream())
      check_partitioning(*store_url);
    // A holder killed a moment ago keeps the lock until PostgreSQL notices its session ended:
    // wait a little before refusing.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!(service_lock_ = persistence::pg_service_lock::try_acquire(*store_url, stream())) &&
           std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!service_lock_)
      throw usage_error(stream() ? "--store: a meterflow serve reading a file, or a meterflow "
                                   "rerate, is using this store"
                                 : "--store: another meterflow serve (or a meterflow rerate) is "
                                   "using this store; one service per store");
  }
  if (store_url) {
    records_ = persistence::make_pg_record_store(*store_url);
    sink_.set_record_store(records_.get(), file_progress_source);
    if (options.resume && !stream())
      resume_from(records_->progress(file_progress_source));
    // A resumed service rebuilds its state by replaying the stored events; a manual re-rate
    // recorded charges and correction invoices that the replay does not know, so the
    // partitions then adopt what the store holds.
    adopt_stored_ = options.resume && !finished_before_ && manually_rerated(*records_);
  }
  if (finished_before_ || stream())
    return; // partitions start on assignment, or nothing is left to do
  writer_ = std::make_unique<sink_thread>(sink_);
  for (std::uint32_t p = 0; p < n; ++p)
    spawn(p, resumed_);
}

engine_driver::~engine_driver() {
  // The sink thread writes the batches it was given before it stops (a run stopping on a fatal
  // error keeps the records written so far).
  writer_.reset();
  for (auto& s : slots_) {
    if (!s.handle)
      continue;
    self_->demonitor(s.handle.address());
    self_->send_exit(s.handle, caf::exit_reason::user_shutdown);
    self_->wait_for(s.handle);
  }
}

std::unique_ptr<persistence::event_store> engine_driver::open_store(std::uint32_t p) const {
  if (options_.store_url)
    return persistence::pg_event_store::load(*options_.store_url, static_cast<int>(p));
  return std::make_unique<persistence::memory_store>();
}

// --- one logical source -------------------------------------------------------------------

void engine_driver::process(std::vector<sequenced_event>&& events, std::vector<std::string>&& raws,
                            bool end_of_input) {
  std::vector<std::pair<std::uint64_t, timestamp>> order; // (seq, time) in input order
  order.reserve(events.size());
  for (const auto& se : events)
    order.emplace_back(se.seq, se.event.event_time);
  const auto outcomes = admit(std::move(events), std::move(raws));
  // The watermark advances in input order with accepted events only.
  watermark_steps steps;
  steps.batch = batch_no_;
  steps.end_of_input = end_of_input;
  for (std::size_t i = 0; i < order.size(); ++i)
    if (outcomes[i] == persistence::append_outcome::accepted ||
        outcomes[i] == persistence::append_outcome::replayed)
      advance_watermark(watermark_, steps.steps, order[i].first, order[i].second,
                        cfg_.max_out_of_orderness);
  std::map<std::uint32_t, watermark_steps> all;
  std::map<std::uint32_t, std::uint64_t> upto;
  for (std::uint32_t p = 0; p < slots_.size(); ++p) {
    all[p] = steps;
    if (!order.empty())
      upto[p] = order.back().first;
  }
  apply(std::move(all), upto);
  // While the partitions apply this batch, the previous batch's records go to disk.
  flush_sink(applied_upto_[0]);
  flushed_upto_[0] = applied_upto_[0];
}

void engine_driver::commit_applied() {
  collect();
  if (applied_upto_[0] > flushed_upto_[0]) {
    flush_sink(applied_upto_[0]);
    flushed_upto_[0] = applied_upto_[0];
  }
  if (writer_)
    writer_->drain(); // committed before the source waits for more input
}

void engine_driver::finish() {
  collect();
  settle_sink();
}

void engine_driver::stage(actors::partition_output&& output) {
  if (writer_)
    staged_.append(std::move(output));
  else
    sink_.add(std::move(output));
}

void engine_driver::add_rejected(persistence::rejected_line&& r) {
  if (writer_)
    staged_rejected_.push_back(std::move(r));
  else
    sink_.add_rejected(std::move(r));
}

void engine_driver::flush_sink(std::uint64_t upto_line) {
  if (!writer_) {
    sink_.flush(upto_line);
    return;
  }
  writer_->submit({std::move(staged_), std::move(staged_rejected_), upto_line});
  staged_ = {};
  staged_rejected_.clear();
}

void engine_driver::settle_sink() {
  if (!writer_)
    return;
  writer_->drain();
  sink_.add(std::move(staged_));
  staged_ = {};
  sink_.add_rejected(std::move(staged_rejected_));
  staged_rejected_.clear();
}

run_sink& engine_driver::sink() {
  settle_sink();
  return sink_;
}

// Rebuilds the watermark history of the committed input from the stored events: the steps
// are the accepted events, in input order, that raised the watermark.
void engine_driver::resume_from(const std::optional<persistence::source_progress>& progress) {
  if (!progress)
    return;
  finished_before_ = progress->finished;
  applied_upto_[0] = progress->position;
  std::vector<std::pair<std::uint64_t, timestamp>> stored;
  for (const auto& s : slots_)
    for (std::uint32_t i = 0; i < s.store->size(); ++i)
      if (s.store->source_position(i) <= applied_upto_[0])
        stored.emplace_back(s.store->source_position(i), s.store->at(i).event_time);
  std::sort(stored.begin(), stored.end());
  for (const auto& [position, time] : stored)
    advance_watermark(watermark_, history_, position, time, cfg_.max_out_of_orderness);
  resumed_ = true;
}

// Events are stored per partition: a store written with another partition count would split
// customers (and their deduplication) across partitions, so it is refused.
void engine_driver::check_partitioning(const std::string& store_url) {
  const auto partitions = static_cast<std::uint32_t>(slots_.size());
  const auto wrong = [&] {
    return usage_error("--partitions: the store was written with a different number of "
                       "partitions; start serve with the same --partitions as before");
  };
  if (persistence::pg_event_store::load(store_url, static_cast<int>(partitions))->size() > 0)
    throw wrong();
  for (std::uint32_t p = 0; p < partitions; ++p)
    for (std::uint32_t i = 0; i < slots_[p].store->size(); ++i)
      if (partition_of(slots_[p].store->at(i).customer_id, partitions) != p)
        throw wrong();
}

// --- a partitioned stream -----------------------------------------------------------------

stream_resume engine_driver::start_partition(std::uint32_t p) {
  slot& s = slots_[p];
  s.store = open_store(p);
  for (std::uint32_t i = 0; i < s.store->size(); ++i)
    if (partition_of(s.store->at(i).customer_id, static_cast<std::uint32_t>(slots_.size())) != p)
      throw usage_error("--partitions: the store was written with a different number of "
                        "partitions; start serve with the same --partitions as before");
  stream_resume r;
  s.history.clear();
  if (records_) {
    if (const auto progress = records_->progress(source_of(p))) {
      r.position = progress->position;
      r.finished = progress->finished;
    }
    // The partition's watermark history up to its committed position: its accepted events in
    // offset order, and the advances it got while idle, each after the events before it.
    std::vector<std::pair<std::uint64_t, timestamp>> stored;
    for (std::uint32_t i = 0; i < s.store->size(); ++i)
      if (s.store->source_position(i) <= r.position)
        stored.emplace_back(s.store->source_position(i), s.store->at(i).event_time);
    std::sort(stored.begin(), stored.end());
    const auto advances = records_->watermark_advances(source_of(p));
    auto next = advances.begin();
    const auto advance_to = [&](std::uint64_t before) {
      for (; next != advances.end() && next->position < before && next->position <= r.position;
           ++next)
        if (next->watermark > r.watermark) {
          r.watermark = next->watermark;
          s.history.push_back({next->position, r.watermark});
        }
    };
    for (const auto& [position, time] : stored) {
      advance_to(position);
      advance_watermark(r.watermark, s.history, position, time, cfg_.max_out_of_orderness);
    }
    advance_to(std::numeric_limits<std::uint64_t>::max());
  }
  applied_upto_[p] = flushed_upto_[p] = batch_upto_[p] = r.position;
  resumed_ = true;
  spawn(p, true);
  return r;
}

void engine_driver::stop_partition(std::uint32_t p) {
  slot& s = slots_[p];
  if (!s.handle)
    return;
  commit_stream({});
  self_->demonitor(s.handle.address());
  self_->send_exit(s.handle, caf::exit_reason::user_shutdown);
  self_->wait_for(s.handle);
  s.handle = nullptr;
  s.store.reset();
  s.history.clear();
  s.open_windows = 0;
}

void engine_driver::commit_stream(std::vector<persistence::watermark_advance> advances,
                                  bool finished) {
  collect();
  std::vector<persistence::source_progress> progress;
  for (std::uint32_t p = 0; p < slots_.size(); ++p)
    if (slots_[p].handle && (applied_upto_[p] > flushed_upto_[p] || finished)) {
      progress.push_back({source_of(p), applied_upto_[p], finished});
      flushed_upto_[p] = applied_upto_[p];
    }
  sink_.flush_all(std::move(progress), std::move(advances));
}

void engine_driver::adopt_stored() {
  collect();
  for (std::uint32_t p = 0; p < slots_.size(); ++p)
    if (slots_[p].handle)
      wait_for(p, "adopt the re-rated charges", adopt_atom::value, stored_state_of(p));
}

// --- both ---------------------------------------------------------------------------------

std::vector<persistence::append_outcome> engine_driver::admit(std::vector<sequenced_event>&& events,
                                                              std::vector<std::string>&& raws) {
  collect();
  ++batch_no_;
  const auto n = static_cast<std::uint32_t>(slots_.size());
  std::vector<event_batch> routed(n);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> where; // (partition, index in batch)
  where.reserve(events.size());
  std::vector<std::uint64_t> seqs;
  seqs.reserve(events.size());
  for (auto& se : events) {
    const std::uint32_t p = partition_of(se.event.customer_id, n);
    if (!slots_[p].handle)
      throw std::logic_error("an event for partition " + std::to_string(p) +
                             ", which is not running");
    where.emplace_back(p, static_cast<std::uint32_t>(routed[p].events.size()));
    seqs.push_back(se.seq);
    routed[p].events.push_back(std::move(se));
  }
  std::vector<std::vector<persistence::append_outcome>> outcomes(n);
  std::uint32_t expected = 0;
  for (std::uint32_t p = 0; p < n; ++p) {
    if (routed[p].events.empty())
      continue;
    routed[p].batch = batch_no_;
    self_->send(slots_[p].handle, admit_atom::value, std::move(routed[p]));
    ++expected;
  }
  for (std::uint32_t received = 0; received < expected;) {
    self_->receive(
        [&](admit_result& r) {
          outcomes[r.partition] = std::move(r.outcomes);
          ++received;
        },
        [&](const caf::down_msg& down) {
          throw std::runtime_error("a partition failed while storing a batch: " +
                                   sys_.render(down.reason));
        });
  }
  std::vector<persistence::append_outcome> in_order;
  in_order.reserve(where.size());
  for (std::size_t i = 0; i < where.size(); ++i) {
    const auto [p, k] = where[i];
    const auto outcome = outcomes[p][k];
    in_order.push_back(outcome);
    if (outcome == persistence::append_outcome::duplicate)
      ++duplicates_;
    if (outcome == persistence::append_outcome::conflict) {
      ++conflicts_;
      add_rejected({seqs[i], "event_id_conflict",
                    "an event with this customer_id and event_id and a different "
                    "payload was accepted earlier; the first one stands",
                    std::move(raws[i])});
    }
  }
  return in_order;
}

void engine_driver::apply(std::map<std::uint32_t, watermark_steps>&& steps,
                          const std::map<std::uint32_t, std::uint64_t>& upto) {
  for (std::uint32_t p = 0; p < slots_.size(); ++p) {
    slot& s = slots_[p];
    if (!s.handle)
      continue;
    auto it = steps.find(p);
    s.steps = it == steps.end() ? watermark_steps{} : std::move(it->second);
    s.steps.batch = batch_no_;
    if (const auto u = upto.find(p); u != upto.end())
      batch_upto_[p] = u->second;
    self_->send(s.handle, apply_atom::value, s.steps);
    s.applying = true;
  }
}

void engine_driver::collect() {
  const auto n = static_cast<std::uint32_t>(slots_.size());
  std::uint32_t expected = 0;
  for (const auto& s : slots_)
    expected += s.applying ? 1 : 0;
  for (std::uint32_t received = 0; received < expected;) {
    self_->receive(
        [&](partition_report& r) {
          if (!r.fatal.empty() && fatal_.empty())
            fatal_ = r.fatal;
          slot& s = slots_[r.partition];
          s.counters = r.counters;
          s.open_windows = r.open_windows;
          stage(std::move(r.output));
          s.applying = false;
          ++received;
        },
        [&](const caf::down_msg& down) {
          std::uint32_t p = 0;
          while (p < n && slots_[p].handle.address() != down.source)
            ++p;
          if (p == n || !slots_[p].applying)
            return;
          restart(p, sys_.render(down.reason));
          self_->send(slots_[p].handle, apply_atom::value, slots_[p].steps);
        });
  }
  if (expected == 0)
    return;
  for (std::uint32_t p = 0; p < n; ++p) {
    slot& s = slots_[p];
    if (!s.handle)
      continue;
    // A file's partitions share one history: it is extended once, with any partition's steps.
    if (stream() || p == 0)
      history_of(p).insert(history_of(p).end(), s.steps.steps.begin(), s.steps.steps.end());
    applied_upto_[p] = std::max(applied_upto_[p], batch_upto_[p]);
    s.steps = {};
  }
}

void engine_driver::spawn(std::uint32_t p, bool restore) {
  const std::uint64_t crash =
      options_.faults.crash_batch && options_.faults.crash_partition == p && slots_[p].restarts == 0
          ? options_.faults.crash_batch
          : 0;
  // A service resuming re-reads its later input; a crashed partition does not.
  const bool queue_later_events = !resumed_ || slots_[p].handle != nullptr;
  // A partition on PostgreSQL blocks on its writes: it gets a thread of its own, off the
  // scheduler its stage actors run on.
  slots_[p].handle =
      records_ ? sys_.spawn<caf::detached>(partition, p, &cfg_, slots_[p].store.get(), crash)
               : sys_.spawn(partition, p, &cfg_, slots_[p].store.get(), crash);
  self_->monitor(slots_[p].handle);
  if (!restore)
    return;
  wait_for(p, "rebuild its state from the store", restore_atom::value,
           restore_request{history_of(p), applied_upto_[stream() ? p : 0], queue_later_events});
  if (adopt_stored_)
    wait_for(p, "adopt the stored charges", adopt_atom::value, stored_state_of(p));
}

// Sends partition `p` a request and waits for its (empty) report.
template <class... Ts>
void engine_driver::wait_for(std::uint32_t p, const char* what, Ts&&... xs) {
  self_->request(slots_[p].handle, caf::infinite, std::forward<Ts>(xs)...)
      .receive([](partition_report&) {},
               [&](caf::error& e) {
                 throw std::runtime_error("partition " + std::to_string(p) + " could not " + what +
                                          ": " + sys_.render(e));
               });
}

// The current charges and the invoices the store holds for partition `p`'s customers.
stored_state engine_driver::stored_state_of(std::uint32_t p) const {
  stored_state out;
  std::set<std::string> customers;
  const persistence::event_store& events = *slots_[p].store;
  for (std::uint32_t i = 0; i < events.size(); ++i)
    customers.emplace(events.at(i).customer_id);
  for (const std::string& customer : customers) {
    std::set<timestamp> periods;
    for (const config::meter& m : cfg_.meters)
      for (const auto& c : records_->current_charges(customer, m.metric)) {
        const timestamp period = pricing::period_of(c.window_start).start;
        periods.insert(period);
        out.charges[{customer, m.metric, period}].by_window[c.window_start] = current_charge_of(c);
      }
    for (timestamp period : periods)
      out.invoices[{customer, period}].invoices =
          records_->invoices_of(customer, pricing::period_of(period));
  }
  return out;
}

void engine_driver::restart(std::uint32_t p, const std::string& why) {
  // The restore may read the record store, which the sink thread writes.
  if (writer_)
    writer_->drain();
  if (++slots_[p].restarts > restart_budget)
    throw std::runtime_error("partition " + std::to_string(p) + " failed " +
                             std::to_string(slots_[p].restarts) +
                             " times, beyond its restart budget: " + why);
  std::cerr << "meterflow: partition " << p << " failed (" << why
            << "); restarting it from the store (restart " << slots_[p].restarts << " of "
            << restart_budget << ")\n";
  spawn(p, true);
}

std::size_t engine_driver::open_windows() const {
  std::size_t n = 0;
  for (const auto& s : slots_)
    n += s.open_windows;
  return n;
}

partition_counters engine_driver::counters() const {
  partition_counters total;
  for (const auto& s : slots_)
    total += s.counters;
  total.accepted = 0;
  for (const auto& s : slots_)
    if (s.store)
      total.accepted += s.store->size(); // the system of record
  total.duplicates = duplicates_;
  total.conflicts = conflicts_;
  return total;
}

} // namespace meterflow::runtime
