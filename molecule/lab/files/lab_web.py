#!/usr/bin/python3
"""The lab's `volumes: none` service (group web): answers GET on port 8080 with the
server's hostname, so a client can tell which server serves. Standard library only."""
import http.server
import socket

NAME = socket.gethostname().encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the http.server API)
        self.send_response(200)
        self.send_header("Content-Length", str(len(NAME)))
        self.end_headers()
        self.wfile.write(NAME)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
