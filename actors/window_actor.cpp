#include "actors/window_actor.hpp"

#include "actors/faults.hpp"

namespace meterflow::actors {

using persistence::aggregate_kind;

window_actor::behavior_type window(window_actor::stateful_pointer<window_actor_state> self,
                                   partition_actor partition) {
  self->state.partition = std::move(partition);
  auto record = [self](std::uint64_t step, phase p, aggregate_kind kind) {
    auto& st = self->state;
    stage_output out;
    out.records.aggregates.push_back(
        {order_key{step, p, st.end, st.customer_id, st.meter->metric, 0},
         make_aggregate_record(st.customer_id, st.meter->metric, st.start, st.end, st.revisions++,
                               kind, st.aggregate)});
    return out;
  };
  return {[self](add_atom, window_inputs& in) {
            auto& st = self->state;
            if (in.opens) {
              window_identity& w = *in.opens;
              st.customer_id = std::move(w.customer_id);
              st.meter = w.meter;
              st.start = w.start;
              st.end = w.end;
              st.aggregate = window_aggregate(w.meter->kind);
              st.revisions = 0;
            }
            for (const window_input& i : in.inputs)
              st.aggregate.add(i.event_time, i.event_id, i.reading);
          },
          [self, record](close_atom, std::uint64_t step) {
            self->send(self->state.partition, done_atom::value,
                       record(step, phase::provisional, aggregate_kind::provisional));
          },
          [self, record](finalize_atom, std::uint64_t step) {
            stage_fault_point(stage_kind::window, "window");
            auto& st = self->state;
            finalized_window f;
            f.output = record(step, phase::finalize, aggregate_kind::final);
            f.final.start = st.start;
            f.final.end = st.end;
            f.final.revision = st.revisions - 1;
            f.final.aggregation_id = f.output.records.aggregates.back().record.aggregation_id;
            f.final.event_ids = f.output.records.aggregates.back().record.event_ids;
            f.final.aggregate = std::move(st.aggregate);
            st.aggregate = window_aggregate(st.meter->kind);
            self->send(st.partition, final_atom::value, std::move(f));
          }};
}

} // namespace meterflow::actors
