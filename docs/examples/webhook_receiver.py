"""A webhook receiver for trying taskbroker's deliveries on one machine (standard library only).

    TB_WEBHOOK_SECRET=whsec_... python3 docs/examples/webhook_receiver.py [--once] [HOST:PORT]

Listens on HOST:PORT (default 127.0.0.1:8765), checks each delivery's X-Taskbroker-Signature
the way taskbroker signs it (HMAC-SHA256 of "<t>.<callback URL>.<body>" under your webhook
secret, at most 5 minutes old), prints the job and answers 204; a bad signature gets 401.
With --once it exits after the first delivery: 0 if it verified, 1 if not.
"""
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["TB_WEBHOOK_SECRET"].encode()
ONCE = "--once" in sys.argv
ADDRESS = ([arg for arg in sys.argv[1:] if arg != "--once"] or ["127.0.0.1:8765"])[0]
HOST, _, PORT = ADDRESS.rpartition(":")
verified: list[bool] = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        url = f"http://{ADDRESS}{self.path}"  # the callback URL, exactly as submitted
        header = self.headers.get("X-Taskbroker-Signature", "")
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        t = int(fields["t"]) if fields.get("t", "").isdigit() else 0
        mac = hmac.new(SECRET, f"{t}.{url}.".encode() + body, hashlib.sha256).hexdigest()
        ok = abs(time.time() - t) <= 300 and hmac.compare_digest(mac, fields.get("v1", ""))
        job_id = self.headers.get("X-Taskbroker-Job-Id")
        if ok:
            job = json.loads(body)
            print(f"verified: job {job_id} {job['status']}, result {json.dumps(job['result'])}",
                  flush=True)
        else:
            print(f"refused: job {job_id}, the signature does not verify", flush=True)
        self.send_response(204 if ok else 401)
        self.end_headers()
        verified.append(ok)

    def log_message(self, *args: object) -> None:  # the line above says enough
        pass


server = HTTPServer((HOST, int(PORT)), Receiver)
print(f"listening on http://{ADDRESS}/", flush=True)
while not (ONCE and verified):
    server.handle_request()
sys.exit(0 if verified[-1] else 1)
