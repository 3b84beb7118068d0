#include "actors/partition_actor.hpp"

#include <stdexcept>

namespace meterflow::actors {

partition_actor::behavior_type
partition(partition_actor::stateful_pointer<partition_actor_state> self, std::uint32_t index,
          const config::configuration* cfg, persistence::event_store* store,
          std::uint64_t crash_at_batch, restore_point restore) {
  self->state.partition = index;
  self->state.state = std::make_unique<partition_state>(*cfg, *store);
  self->state.crash_at_batch = crash_at_batch;
  if (restore.history)
    self->state.state->restore(*restore.history, restore.applied_upto, restore.queue_later_events);
  return {[=](admit_atom, event_batch& batch) -> admit_result {
            return {self->state.partition, self->state.state->admit(std::move(batch.events))};
          },
          [=](apply_atom, const watermark_steps& steps) -> partition_report {
            auto& st = *self->state.state;
            if (steps.batch != 0 && steps.batch == self->state.crash_at_batch)
              throw std::runtime_error("injected fault: partition " + std::to_string(index) +
                                       " crashed applying batch " + std::to_string(steps.batch));
            partition_report report;
            report.partition = self->state.partition;
            try {
              st.apply(steps.steps);
              if (steps.end_of_input)
                st.finish();
            } catch (const pricing::bad_result_access& e) {
              // An amount reached 10^26: the run cannot continue and says so (exit status 3).
              report.fatal = e.what();
            }
            report.output = st.take_output();
            report.counters = st.counters();
            report.open_windows = st.open_windows();
            return report;
          }};
}

} // namespace meterflow::actors
