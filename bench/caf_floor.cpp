// meterflow-caf-floor: the engine's messages per window with no work in them (issue 8). What
// `meterflow run` costs at least on this machine with CAF 0.17 and one actor per customer x
// metric x window, whatever the stages compute.
//
// A driver actor plays the partition: every step it gives `--per-step` windows their events
// (add), closes them (close, answered done), finalizes them (finalize, answered final), and
// sends each final window to its rating actor (rate), which tells its invoice actor (lines) and
// answers the driver (done): the engine's 8 messages per window, with the same step-by-step
// reply counting. Window actors are reused from step to step, as the engine reuses idle ones.
// The payloads are a few integers: no records, no strings, no allocation beyond CAF's own.

#include <caf/all.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using add_atom = caf::atom_constant<caf::atom("add")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using finalize_atom = caf::atom_constant<caf::atom("finalize")>;
using final_atom = caf::atom_constant<caf::atom("final")>;
using rate_atom = caf::atom_constant<caf::atom("rate")>;
using lines_atom = caf::atom_constant<caf::atom("lines")>;
using run_atom = caf::atom_constant<caf::atom("run")>;

const char* const usage_text = R"(Usage: meterflow-caf-floor [options]

Runs the engine's messages per window (add, close, done, finalize, final, rate, lines, done)
with no work in them and prints windows/s and messages/s.

Options:
  --windows N     windows in all (default 419475: the 1M bench file's)
  --per-step N    windows per watermark step (default 580: the 1M file's, 30 days of hours)
  --ratings N     rating actors, one per customer x metric (default 20000)
  --invoices N    invoice actors, one per customer (default 10000)
  --threads N     scheduler threads (default 2)
  --policy P      CAF scheduler policy: stealing (the engine's) or sharing (default stealing)
)";

struct options {
  std::uint64_t windows = 419'475, per_step = 580, ratings = 20'000, invoices = 10'000;
  std::size_t threads = 2;
  std::string policy = "stealing";
};

caf::behavior window_actor(caf::event_based_actor* self, caf::actor driver) {
  auto events = std::make_shared<std::uint64_t>(0);
  return {
      [=](add_atom, std::uint64_t n) { *events += n; },
      [=](close_atom) { self->send(driver, done_atom::value, *events); },
      [=](finalize_atom, std::uint64_t window) {
        self->send(driver, final_atom::value, window, *events);
        *events = 0;
      },
  };
}

caf::behavior invoice_actor(caf::event_based_actor*) {
  auto lines = std::make_shared<std::uint64_t>(0);
  return {[=](lines_atom, std::uint64_t, std::uint64_t) { ++*lines; }};
}

caf::behavior rating_actor(caf::event_based_actor* self, caf::actor driver, caf::actor invoice) {
  return {[=](rate_atom, std::uint64_t window, std::uint64_t events) {
    self->send(invoice, lines_atom::value, window, events);
    self->send(driver, done_atom::value, events);
  }};
}

struct driver_state {
  std::vector<caf::actor> windows, ratings, invoices;
  std::uint64_t next = 0;  // first window of the current step
  std::size_t in_step = 0; // windows in the current step
  std::size_t pending = 0; // replies still expected in the current stage
  int stage = 0;           // 0 closing, 1 finalizing, 2 rating
  std::vector<std::pair<std::uint64_t, std::uint64_t>> finals; // (window, events) of the step
  caf::response_promise done;
};

caf::behavior driver_actor(caf::stateful_actor<driver_state>* self, options o) {
  auto& s = self->state;
  for (std::uint64_t i = 0; i < o.invoices; ++i)
    s.invoices.push_back(self->spawn(invoice_actor));
  for (std::uint64_t i = 0; i < o.ratings; ++i)
    s.ratings.push_back(self->spawn(rating_actor, caf::actor(self), s.invoices[i % o.invoices]));
  for (std::uint64_t i = 0; i < o.per_step; ++i)
    s.windows.push_back(self->spawn(window_actor, caf::actor(self)));
  auto begin_step = [self, o] {
    auto& s = self->state;
    if (s.next >= o.windows) {
      for (auto* group : {&s.windows, &s.ratings, &s.invoices})
        for (auto& a : *group)
          self->send_exit(a, caf::exit_reason::user_shutdown);
      s.done.deliver(s.next);
      return;
    }
    s.in_step = static_cast<std::size_t>(std::min(o.per_step, o.windows - s.next));
    for (std::size_t i = 0; i < s.in_step; ++i) {
      self->send(s.windows[i], add_atom::value, std::uint64_t{2});
      self->send(s.windows[i], close_atom::value);
    }
    s.stage = 0;
    s.pending = s.in_step;
  };
  // The reply that completes a stage starts the next one.
  auto replied = [self, o, begin_step] {
    auto& s = self->state;
    if (--s.pending > 0)
      return;
    if (s.stage == 0) {
      s.stage = 1;
      s.pending = s.in_step;
      for (std::size_t i = 0; i < s.in_step; ++i)
        self->send(s.windows[i], finalize_atom::value, s.next + i);
    } else if (s.stage == 1) {
      // Like the partition: the final windows go to rating once all of them are in.
      s.stage = 2;
      s.pending = s.in_step;
      for (const auto& [window, events] : s.finals)
        self->send(s.ratings[window % o.ratings], rate_atom::value, window, events);
      s.finals.clear();
    } else {
      s.next += s.in_step;
      begin_step();
    }
  };
  return {
      [=](run_atom) {
        self->state.done = self->make_response_promise();
        begin_step();
        return self->state.done;
      },
      [=](done_atom, std::uint64_t) { replied(); },
      [=](final_atom, std::uint64_t window, std::uint64_t events) {
        self->state.finals.emplace_back(window, events);
        replied();
      },
  };
}

std::uint64_t count_arg(const std::string& name, const std::string& text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v == 0)
    throw std::invalid_argument(name + ": expected a positive count, not \"" + text + "\"");
  return v;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help") {
        std::cout << usage_text;
        return 0;
      }
      if (i + 1 >= argc)
        throw std::invalid_argument(arg + ": missing value");
      if (arg == "--policy") {
        o.policy = argv[++i];
        if (o.policy != "stealing" && o.policy != "sharing")
          throw std::invalid_argument("--policy: expected stealing or sharing");
        continue;
      }
      const auto v = count_arg(arg, argv[++i]);
      if (arg == "--windows")
        o.windows = v;
      else if (arg == "--per-step")
        o.per_step = v;
      else if (arg == "--ratings")
        o.ratings = v;
      else if (arg == "--invoices")
        o.invoices = v;
      else if (arg == "--threads")
        o.threads = static_cast<std::size_t>(v);
      else
        throw std::invalid_argument("unknown option " + arg);
    }
  } catch (const std::exception& e) {
    std::cerr << "meterflow-caf-floor: " << e.what() << "\n" << usage_text;
    return 2;
  }
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", o.threads);
  cfg.set("scheduler.policy", o.policy == "sharing" ? caf::atom("sharing") : caf::atom("stealing"));
  caf::actor_system sys{cfg};
  const auto started = std::chrono::steady_clock::now();
  std::uint64_t windows = 0;
  {
    caf::scoped_actor self{sys};
    auto driver = self->spawn(driver_actor, o);
    self->request(driver, caf::infinite, run_atom::value)
        .receive([&](std::uint64_t n) { windows = n; },
                 [&](caf::error& e) { throw std::runtime_error(sys.render(e)); });
    self->send_exit(driver, caf::exit_reason::user_shutdown);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("meterflow-caf-floor: %llu windows, %llu messages in %.2f s with %zu threads: "
              "%.0f windows/s, %.0f messages/s\n",
              static_cast<unsigned long long>(windows),
              static_cast<unsigned long long>(windows * 8), seconds, o.threads,
              static_cast<double>(windows) / seconds, static_cast<double>(windows * 8) / seconds);
  return 0;
}
