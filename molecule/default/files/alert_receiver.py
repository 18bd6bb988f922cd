#!/usr/bin/python3
"""A webhook receiver for the fast tier's alert test: listens on loopback only, and
appends each POSTed event, with the time it arrived, as one JSON line to a file."""

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, 1 << 16))
            received_ms = int(time.time() * 1000)
            try:
                event = json.loads(body)
            except ValueError:
                event = {"unparsed": body.decode("utf-8", "replace")}
            with open(args.out, "a", encoding="utf-8") as out:
                out.write(json.dumps({"received_ms": received_ms, "event": event}) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_):
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
