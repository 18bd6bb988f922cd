#!/usr/bin/env python3
"""Writes numbered files into an NFS mount until told to stop, and journals each one.

Each file holds random bytes. Only after write + fsync (+ close) of a file returned does
its number, SHA-256 and completion time go into the journal, a local file that is itself
fsynced: the journal lists exactly the writes the server acknowledged. Failed writes are
journalled as errors and the writer goes on with the next number. Bounded: it stops at
--max-files, at --duration seconds, or when the stop file appears.
"""
import argparse
import hashlib
import os
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--journal", required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--size", type=int, default=16384)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--duration", type=float, default=3600)
    p.add_argument("--max-files", type=int, default=200000)
    a = p.parse_args()

    os.makedirs(a.dir, exist_ok=True)
    journal = os.open(a.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    deadline = time.monotonic() + a.duration
    number = 0
    while number < a.max_files and time.monotonic() < deadline:
        if os.path.exists(a.stop_file):
            break
        number += 1
        data = os.urandom(a.size)
        path = os.path.join(a.dir, "%07d" % number)
        started = time.time()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            line = "ok %d %s %.3f %.3f\n" % (number, hashlib.sha256(data).hexdigest(), started, time.time())
        except OSError as e:
            line = "error %d %s %.3f %.3f\n" % (number, e.errno, started, time.time())
        os.write(journal, line.encode())
        os.fsync(journal)
        time.sleep(a.interval)
    os.close(journal)


if __name__ == "__main__":
    main()
