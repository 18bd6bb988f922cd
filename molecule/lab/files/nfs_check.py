#!/usr/bin/env python3
"""Checks the writer's journal against the files on the NFS mount, and measures stalls.

Prints JSON: how many writes were acknowledged, failed, missing or corrupt, and for each
--event NAME=T (a time on this machine's clock) the stall: the longest gap between two
consecutive acknowledged writes from T to the next event.
"""
import argparse
import hashlib
import json
import os


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--journal", required=True)
    p.add_argument("--event", action="append", default=[])
    a = p.parse_args()

    acked, errors = [], []
    with open(a.journal) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 5:
                continue  # a line cut by a crash of the writer itself
            kind, number, value, started, done = parts
            entry = (int(number), value, float(started), float(done))
            (acked if kind == "ok" else errors).append(entry)

    missing, corrupt = [], []
    for number, digest, _, _ in acked:
        path = os.path.join(a.dir, "%07d" % number)
        try:
            with open(path, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    corrupt.append(number)
        except FileNotFoundError:
            missing.append(number)

    # An event's window runs from its time to the next event's: the stall is the longest
    # gap between consecutive acknowledged writes in it (the event is triggered a few
    # seconds after its time is read, so the gap, not the time, marks the outage).
    stalls = {}
    events = sorted((float(at), name) for name, at in (e.split("=", 1) for e in a.event))
    done_times = sorted(done for _, _, _, done in acked)
    for i, (at, name) in enumerate(events):
        until = events[i + 1][0] if i + 1 < len(events) else float("inf")
        before = [t for t in done_times if t <= at]
        inside = [t for t in done_times if at < t <= until]
        points = before[-1:] + inside
        gaps = [(b - a_, a_) for a_, b in zip(points, points[1:])]
        longest, since = max(gaps) if gaps else (None, None)
        stalls[name] = {
            "at": at,
            "stall_s": round(longest, 3) if longest is not None else None,
            "stall_started": since,
            "acked_after": len(inside),
        }

    print(json.dumps({
        "acked": len(acked),
        "failed": len(errors),
        "failed_numbers": [e[0] for e in errors][:50],
        "missing": missing[:50],
        "missing_count": len(missing),
        "corrupt": corrupt[:50],
        "corrupt_count": len(corrupt),
        "stalls": stalls,
    }))


if __name__ == "__main__":
    main()
