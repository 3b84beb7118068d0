#!/usr/bin/env python3
"""Writes examples/events.ndjson: the seed's story, in arrival order (see docs/demo.md).
The output is committed; this script documents how it was made and regenerates it."""
import json
from datetime import datetime, timedelta, timezone

lines = []
def ev(eid, t, cust, etype="api_call", value=None, metadata=None, raw_time=None):
    e = {"event_id": eid, "event_time": raw_time or t.strftime("%Y-%m-%dT%H:%M:%SZ"),
         "customer_id": cust, "event_type": etype}
    if value is not None:
        e["value"] = value
    if metadata is not None:
        e["metadata"] = metadata
    lines.append(json.dumps(e, separators=(",", ":")))

def at(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)

# 1. c_flat, January 10 (price v1, $0.10): 5 calls.
for i in range(5):
    ev(f"flat-jan10-{i}", at("2024-01-10T10:00:00Z") + timedelta(minutes=i), "c_flat")
# 2. An exact duplicate of the first, the instant spelled with an offset: ignored.
ev("flat-jan10-0", None, "c_flat", raw_time="2024-01-10T11:00:00+01:00")
# 3. c_flat, January 20 (v2, $0.08): 10 calls and 2 storage readings (150.5 GB at $0.05).
for i in range(10):
    ev(f"flat-jan20-{i}", at("2024-01-20T09:00:00Z") + timedelta(minutes=3 * i), "c_flat")
ev("flat-gb-1", at("2024-01-20T09:30:00Z"), "c_flat", "storage", "100.5", {"region": "eu"})
ev("flat-gb-2", at("2024-01-20T09:40:00Z"), "c_flat", "storage", 50, {"region": "us"})
# 4-5. Interleaved in time, as they would arrive: c_tiered and c_volume make 1,234 calls each
# on January 20-21 (v2), every 70 seconds; c_recon makes 10,234 calls from January 21 to 30
# at $0.02, every 80 seconds.
stream = []
for cust in ("c_tiered", "c_volume"):
    for i in range(1234):
        stream.append((at("2024-01-20T12:00:00Z") + timedelta(seconds=70 * i), f"{cust}-{i}", cust))
for i in range(10234):
    stream.append((at("2024-01-21T00:00:00Z") + timedelta(seconds=80 * i + 1), f"recon-{i}", "c_recon"))
for t, eid, cust in sorted(stream):
    ev(eid, t, cust)
# 6. A conflicting duplicate: same id as flat-jan10-3, different value: rejected, first stands.
ev("flat-jan10-3", at("2024-01-10T10:03:00Z"), "c_flat", value="2")
# 7. Invalid lines: each rejected with its reason, the rest go on.
lines.append('{"event_id":"broken",')
ev("bad-date", None, "c_flat", raw_time="2024-02-30T10:00:00Z")
ev("too-precise", at("2024-01-20T10:00:00Z"), "c_flat", "storage", "0.1234567890123")
ev("", at("2024-01-20T10:00:00Z"), "c_flat")
# 8. A late but accepted call: its window [10:00, 11:00) on January 30 is closing.
ev("flat-late-1", at("2024-01-30T10:45:00Z"), "c_flat")
# 9. February calls (v3, $0.12) arrive before the last call of January ...
for i, s in enumerate(["00:00:05", "00:00:10", "00:00:20"]):
    ev(f"flat-feb1-{i}", at(f"2024-02-01T{s}Z"), "c_flat")
# 10. ... which is still January usage: 2024-01-31T23:59:50Z, billed at v2.
ev("flat-jan31-last", at("2024-01-31T23:59:50Z"), "c_flat")
# 11. February goes on; January's invoices are issued once its last window is final.
for d in range(1, 4):
    for h in (9, 15):
        ev(f"flat-feb-{d}-{h}", at(f"2024-02-0{d}T{h:02d}:00:00Z"), "c_flat")
# 12. A very late January call after January was invoiced: re-rated, corrected.
ev("flat-verylate-1", at("2024-01-25T10:00:00Z"), "c_flat")
ev("flat-verylate-1", at("2024-01-25T10:00:00Z"), "c_flat")  # its duplicate: ignored
# 13. The next day's traffic crosses the correction interval (1d): the re-rate runs.
ev("flat-feb-4-9", at("2024-02-04T09:00:00Z"), "c_flat")
# 14. A customer with no entry in customers[] uses the default price book.
ev("walkin-1", at("2024-02-04T09:30:00Z"), "c_walkin")

with open("examples/events.ndjson", "w") as f:
    f.write("\n".join(lines) + "\n")
