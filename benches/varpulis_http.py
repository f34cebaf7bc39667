"""What the server benchmarks share: a keep-alive JSON client of the REST API and percentiles.

Standard library only. Imported by `durable_ingest.py` and `server_ingest.py` (Python puts the
script's directory on the import path).
"""

import http.client
import json


class Throttled(Exception):
    """A 429 answer: the caller waits (at most 10 ms here) and retries."""

    def __init__(self, seconds):
        super().__init__(seconds)
        self.seconds = min(seconds, 0.01)


class Conn:
    """One keep-alive connection; `call` returns the decoded JSON answer (or raw bytes)."""

    def __init__(self, host, port):
        self.c = http.client.HTTPConnection(host, port, timeout=120)

    def call(self, method, path, body=None, key=None, admin=False, raw=False):
        headers = {"content-type": "application/json"}
        if key:
            headers["x-admin-key" if admin else "x-api-key"] = key
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        self.c.request(method, path if raw else "/api/v1" + path, body=data, headers=headers)
        r = self.c.getresponse()
        payload = r.read()
        if r.status == 429:
            raise Throttled(float(r.getheader("retry-after") or "1"))
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {payload[:300]!r}")
        return payload if raw else json.loads(payload)


def pct(xs, p):
    """The `p`th percentile of `xs` (nearest rank)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
