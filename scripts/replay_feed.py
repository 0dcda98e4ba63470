#!/usr/bin/env python3
"""A feed for `incident-recorder ingest`, for the replay benchmark
(BENCHMARKS.md, "Replaying an ingested file"): 20 resources sampled every
5 s with 4 metrics for about 26 hours, each with an alert every 2 hours
resolved 5 minutes later; 371,714 lines, ending an hour before now.

    python3 scripts/replay_feed.py > feed.jsonl
"""
import json
import sys
import time

RESOURCES = 20
STEPS = 18560
end = (int(time.time()) - 3600) * 1000
start = end - STEPS * 5000
out = sys.stdout
for i in range(STEPS):
    ts = start + i * 5000
    for r in range(RESOURCES):
        res = f"vm-{r:03}"
        k = i + r * 37
        metrics = {
            "cpu": (k * 7) % 100 + 0.5,
            "memory": 40 + (k % 13),
            "load1": (k % 17) / 3,
            "net_rx_bytes_per_s": k * 1000.25,
        }
        out.write(json.dumps({"type": "sample", "resource": res, "ts": ts, "metrics": metrics}) + "\n")
        phase = (i + r * 50) % 1440
        if phase == 720:
            out.write(json.dumps({"type": "trigger", "resource": res, "trigger": "alert",
                                  "trigger_id": "cpu-high", "ts": ts}) + "\n")
        elif phase == 780:
            out.write(json.dumps({"type": "resolve", "resource": res, "trigger_id": "cpu-high",
                                  "ts": ts}) + "\n")
