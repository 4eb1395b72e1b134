"""A webhook receiver for tests/integration/webhooks.sh: verifies Standard
Webhooks signatures with the specification's algorithm (HMAC-SHA256 of
"id.timestamp.body" with the base64-decoded whsec_ secret, compared with
each "v1,<base64>" of webhook-signature; the timestamp within 5 minutes),
records every request as a JSON line, and answers by path:
  /ok      200
  /gone    410
  /flaky   503 while the file DIR/down exists, then 200
  /slack   200 (no signature expected)
usage: webhook_receiver.py DIR SECRET   (writes DIR/port, DIR/requests.jsonl)"""
import base64, hashlib, hmac, json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

d, secret = sys.argv[1], sys.argv[2]
key = base64.b64decode(secret[len("whsec_"):])


def verify(h, body):
    wid, ts, sigs = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not (wid and ts and sigs) or abs(time.time() - int(ts)) > 300:
        return False
    want = base64.b64encode(hmac.new(key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return any(s.startswith("v1,") and hmac.compare_digest(s[3:], want) for s in sigs.split(" "))


class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = {"/ok": 200, "/gone": 410, "/slack": 200}.get(self.path, 404)
        if self.path == "/flaky":
            status = 503 if os.path.exists(os.path.join(d, "down")) else 200
        rec = {"path": self.path, "status": status, "id": self.headers.get("webhook-id"),
               "verified": verify(self.headers, body), "type": self.headers.get("Content-Type"),
               "body": json.loads(body)}
        with open(os.path.join(d, "requests.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


s = ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(os.path.join(d, "port.tmp"), "w") as f:
    f.write(str(s.server_address[1]))
os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
s.serve_forever()
