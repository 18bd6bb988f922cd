#!/usr/bin/python3
"""Samples, every 50 ms, which servers serve the lab's web group: one GET to the floating
IP and one to each server's own address, in parallel, each bounded by --timeout. A round
in which two servers answer on their own addresses is double-served. Runs until
--stop-file appears or --duration passes (bounded), then writes one JSON summary: the
rounds, the double-served ones, who answered through the floating IP, and the longest gap
without an answer there; and every gap over half a second (ms since the epoch), so each
event's stall can be read from its time window."""
import argparse
import concurrent.futures
import json
import os
import time
import urllib.request


def ask(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    except Exception:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vip", required=True)
    ap.add_argument("--servers", required=True, help="comma-separated own addresses")
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--duration", type=float, default=1800)
    ap.add_argument("--timeout", type=float, default=0.3)
    a = ap.parse_args()
    servers = a.servers.split(",")
    urls = [f"http://{a.vip}:8080/"] + [f"http://{s}:8080/" for s in servers]
    rounds = double = 0
    examples, vip_answers, events = [], {}, []
    last_vip_ms, gaps = None, []
    last_holder = None
    end = time.monotonic() + a.duration
    with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
        while time.monotonic() < end and not os.path.exists(a.stop_file):
            start = time.monotonic()
            now_ms = int(time.time() * 1000)
            answers = list(pool.map(lambda u: ask(u, a.timeout), urls))
            rounds += 1
            vip, own = answers[0], [x for x in answers[1:] if x]
            if len(own) > 1:
                double += 1
                if len(examples) < 10:
                    examples.append({"ms": now_ms, "own": own, "vip": vip})
            if vip:
                vip_answers[vip] = vip_answers.get(vip, 0) + 1
                if last_vip_ms is not None and now_ms - last_vip_ms > 500 and len(gaps) < 1000:
                    gaps.append({"ms": now_ms - last_vip_ms, "from_ms": last_vip_ms, "to_ms": now_ms})
                last_vip_ms = now_ms
                if vip != last_holder:
                    events.append({"ms": now_ms, "holder": vip})
                    last_holder = vip
            time.sleep(max(0.0, 0.05 - (time.monotonic() - start)))
    with open(a.out + ".tmp", "w") as f:
        json.dump({"rounds": rounds, "double_served": double, "examples": examples,
                   "vip_answers": vip_answers, "gaps": gaps, "holders": events}, f)
    os.replace(a.out + ".tmp", a.out)


main()
