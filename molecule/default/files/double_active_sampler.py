#!/usr/bin/python3
"""Samples, every 50 ms, which servers hold each group's mount and floating IP, reading
the containers' PID 1 /proc entries from the host (no fork per sample). Writes one JSON
summary when it stops: at --duration, or when --stop-file appears. Bounded by design."""
import argparse
import json
import os
import time


def mounted(pid, mountpoint):
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return any(line.split()[4] == mountpoint for line in f if len(line.split()) > 4)
    except OSError:
        return False


def local_addresses(pid):
    """IPv4 addresses of the container's netns, from /proc/PID/net/fib_trie."""
    try:
        with open(f"/proc/{pid}/net/fib_trie") as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    found = set()
    for i, line in enumerate(lines):
        if "/32 host LOCAL" in line and i > 0:
            found.add(lines[i - 1].split()[-1])
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lab", required=True, help="lab.json written by scripts/nspawn-lab.sh")
    ap.add_argument("--groups", required=True, help="JSON: {group: [mountpoint, vip]}")
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--duration", type=float, default=1200)
    args = ap.parse_args()
    groups = json.loads(args.groups)
    deadline = time.monotonic() + args.duration
    samples = 0
    double = {"mount": 0, "vip": 0}
    first_double = []
    holders_seen = {g: set() for g in groups}
    while time.monotonic() < deadline and not os.path.exists(args.stop_file):
        with open(args.lab) as f:  # the lab may restart a container: re-read its pids
            servers = [n for n in json.load(f)["nodes"] if n["group"] == "hakeep_nodes"]
        for group, (mountpoint, vip) in groups.items():
            m = [s["name"] for s in servers if os.path.exists(f"/proc/{s['leader_pid']}") and mounted(s["leader_pid"], mountpoint)]
            v = [s["name"] for s in servers if vip in local_addresses(s["leader_pid"])]
            holders_seen[group].update(m)
            for kind, who in (("mount", m), ("vip", v)):
                if len(who) > 1:
                    double[kind] += 1
                    if len(first_double) < 10:
                        first_double.append({"t": time.time(), "group": group, "kind": kind, "nodes": who})
        samples += 1
        time.sleep(0.05)
    with open(args.out, "w") as f:
        json.dump({"samples": samples, "double_active": double, "examples": first_double,
                   "holders_seen": {g: sorted(h) for g, h in holders_seen.items()}}, f)


if __name__ == "__main__":
    main()
