"""Hostile inputs and hostile clients for the hardening tests (test_harden.py) and the
hostile-load benchmark (bench/hostile.py). Python 3 standard library only.

Bodies (each built once per process and cached; gzip made in a streaming way so the
JSON text is never held whole):

  failure_details_bomb  one policy with 600,000 failure-details (~79 KB of gzip)
  unknown_keys_bomb     a report with 1,000,000 unknown top-level keys
  long_string_bomb      a policy-domain of 30 MiB
  many_domains_bomb     130,000 policies with distinct policy domains
  and smaller ones for every other bound (see corpus()).

Clients, each from its own 127.0.x.y source address (all of 127.0.0.0/8 reaches
127.0.0.1 on Linux):

  SlowHeaderFlood   N connections per address sending a request head one byte per second
  IdleFlood         N keep-alive connections per address that POSTed once, then idle
  Sender            an honest sender POSTing a distinct report every PERIOD seconds
  Poller            GET /healthz every PERIOD seconds
"""
import gzip
import http.client
import json
import os
import select
import socket
import threading
import time
import zlib

MiB = 1 << 20

_CACHE = {}
_CACHE_LOCK = threading.Lock()


def cached(fn):
    def wrapper(*args):
        key = (fn.__name__,) + args
        with _CACHE_LOCK:
            if key not in _CACHE:
                _CACHE[key] = fn(*args)
            return _CACHE[key]
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def gzip_parts(parts):
    """gzip of the concatenation of an iterable of bytes, compressed as it goes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + 15)
    out = [comp.compress(p) for p in parts]
    out.append(comp.flush())
    return b"".join(out)


def report_prefix(report_id, org="Hostile Sender"):
    """A report's text up to the opening bracket of its policies array."""
    head = {"organization-name": org,
            "date-range": {"start-datetime": "2026-11-01T00:00:00Z",
                           "end-datetime": "2026-11-01T23:59:59Z"},
            "contact-info": "tlsrpt@hostile.example", "report-id": report_id}
    return json.dumps(head)[:-1].encode() + b', "policies": ['


def policy(domain="mail.example", ok=1, failed=0, details=None, extra=None):
    p = {"policy": {"policy-type": "sts", "policy-domain": domain},
         "summary": {"total-successful-session-count": ok,
                     "total-failure-session-count": failed}}
    if details is not None:
        p["failure-details"] = details
    if extra:
        p["policy"].update(extra)
    return p


def repeated(item, n, chunk=10000):
    """item (bytes) n times, comma-separated, as chunks."""
    full = b",".join([item] * chunk)
    left = n
    first = True
    while left > 0:
        k = min(chunk, left)
        piece = full if k == chunk else b",".join([item] * k)
        yield piece if first else b"," + piece
        first = False
        left -= k


@cached
def failure_details_bomb(n=600000):
    """A report whose one policy has n failure-details (a 79 KB gzip for 600,000)."""
    detail = b'{"result-type":"x","failed-session-count":1}'
    head = report_prefix("bomb-failure-details-%d" % n)
    pol = (b'{"policy":{"policy-type":"sts","policy-domain":"mail.example"},'
           b'"summary":{"total-successful-session-count":1,'
           b'"total-failure-session-count":%d},"failure-details":[' % n)
    return gzip_parts([head, pol] + list(repeated(detail, n)) + [b"]}]}"])


@cached
def unknown_keys_bomb(n=1000000):
    """A valid report plus n unknown top-level keys."""
    base = json.dumps({"organization-name": "Hostile Sender", "date-range": {
        "start-datetime": "2026-11-01T00:00:00Z", "end-datetime": "2026-11-01T23:59:59Z"},
        "contact-info": "x", "report-id": "bomb-keys-%d" % n,
        "policies": [policy()]})[:-1].encode()

    def keys():
        for start in range(0, n, 10000):
            yield b"".join(b', "k%d": 0' % i for i in range(start, min(n, start + 10000)))
    return gzip_parts([base] + list(keys()) + [b"}"])


@cached
def long_string_bomb(size=30 * MiB, key="policy-domain"):
    """A report whose first policy's policy-domain (or another string) is size bytes."""
    head = report_prefix("bomb-string-%d" % size)
    if key == "policy-domain":
        pol_head = b'{"policy": {"policy-type": "sts", "policy-domain": "'
        pol_tail = (b'"}, "summary": {"total-successful-session-count": 1, '
                    b'"total-failure-session-count": 0}}]}')
    else:
        pol_head = b'{"policy": {"policy-type": "sts", "policy-domain": "x.example", "%s": ["' % \
            key.encode()
        pol_tail = (b'"]}, "summary": {"total-successful-session-count": 1, '
                    b'"total-failure-session-count": 0}}]}')
    chunk = b"a" * MiB
    parts = [head, pol_head] + [chunk] * (size // MiB) + [b"a" * (size % MiB), pol_tail]
    return gzip_parts(parts)


@cached
def many_domains_bomb(n=130000):
    """n policies, each for its own policy domain."""
    head = report_prefix("bomb-domains-%d" % n)

    def pols():
        for start in range(0, n, 5000):
            yield (b"," if start else b"") + b",".join(
                b'{"policy": {"policy-type": "sts", "policy-domain": "d%d.example"}, '
                b'"summary": {"total-successful-session-count": 1, '
                b'"total-failure-session-count": 0}}' % i
                for i in range(start, min(n, start + 5000)))
    return gzip_parts([head] + list(pols()) + [b"]}"])


@cached
def many_policies(n, domains=1):
    """n policies spread over `domains` policy domains."""
    head = report_prefix("many-policies-%d-%d" % (n, domains))
    pols = b",".join(json.dumps(policy("d%d.example" % (i % domains))).encode()
                     for i in range(n))
    return gzip_parts([head, pols, b"]}"])


@cached
def string_list(key, n):
    """One policy whose policy-string or mx-host list has n entries."""
    head = report_prefix("list-%s-%d" % (key, n))
    pol = json.dumps(policy(extra={key: ["mx%d.mail.example" % i for i in range(n)]}))
    return gzip_parts([head, pol.encode(), b"]}"])


@cached
def wide_array(n):
    """A valid report with an unknown key holding an array of n numbers."""
    head = report_prefix("wide-array-%d" % n)
    pol = json.dumps(policy()).encode()
    return gzip_parts([head, pol, b'], "x-extra": ['] + list(repeated(b"0", n)) + [b"]}"])


@cached
def deep_json(depth=100000):
    return b"[" * depth + b"]" * depth


@cached
def gzip_zeros(size=256 * MiB):
    """size bytes of zeros as one gzip member (256 MiB -> about 256 KiB)."""
    return gzip_parts([bytes(MiB)] * (size // MiB))


def mime_nested(depth):
    """A message nesting multipart/mixed `depth` levels deep around one JSON report."""
    report = json.dumps({"organization-name": "x", "report-id": "deep"}).encode()
    head = b"From: a@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    parts = []
    for i in range(depth):
        parts.append(b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i))
    body = b"Content-Type: application/tlsrpt+json\r\n\r\n" + report + b"\r\n"
    tail = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + b"".join(parts) + body + tail


def mime_many_parts(n):
    """A multipart/report message with n empty text parts and one report."""
    head = (b"From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/report; report-type=tlsrpt; boundary=\"B\"\r\n\r\n")
    part = b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return head + part * n + b"--B--\r\n"


def corpus():
    """The hostile-input corpus: (name, content-type, extra headers, body, answers allowed).

    Every entry must be answered, quickly, with one of the allowed statuses; the daemon
    must answer /healthz after each and stay small."""
    gz = "application/tlsrpt+gzip"
    js = "application/tlsrpt+json"
    return [
        ("failure-details x600000", gz, (), failure_details_bomb(600000), (400,)),
        ("unknown keys x1000000", gz, (), unknown_keys_bomb(1000000), (400,)),
        ("policy-domain of 30 MiB", gz, (), long_string_bomb(30 * MiB), (400,)),
        ("130000 policy domains", gz, (), many_domains_bomb(130000), (400,)),
        ("policies x20000", gz, (), many_policies(20000, 1), (400,)),
        ("mx-host x100000", gz, (), string_list("mx-host", 100000), (400,)),
        ("policy-string x100000", gz, (), string_list("policy-string", 100000), (400,)),
        ("array of 3000000 numbers", gz, (), wide_array(3000000), (400,)),
        ("mx-host of 1 MiB", gz, (), long_string_bomb(MiB, "mx-host"), (400,)),
        ("256 MiB of gzipped zeros", gz, (), gzip_zeros(256 * MiB), (400,)),
        ("256 MiB of zeros, Content-Encoding: gzip", js, ("Content-Encoding: gzip",),
         gzip_zeros(256 * MiB), (400,)),
        ("JSON 100000 deep", js, (), deep_json(100000), (400,)),
        ("gzip of JSON 1000000 deep", gz, (), gzip_parts([deep_json(1000000)]), (400,)),
        ("MIME nested 2000 deep", "application/octet-stream", (), mime_nested(2000), (400,)),
        ("MIME with 5000 parts", "application/octet-stream", (), mime_many_parts(5000), (400,)),
        ("truncated gzip", gz, (), failure_details_bomb(600000)[:40000], (400,)),
        ("invalid UTF-8", js, (), b'{"organization-name": "\xff\xfe"}', (400,)),
        ("empty body", js, (), b"", (400,)),
        ("11 MiB body", js, (), b" " * (11 * MiB), (413,)),
    ]


# ---- clients --------------------------------------------------------------------------------


def connect_from(src, port, timeout=5.0):
    """A TCP connection to 127.0.0.1:port from source address src."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def flood_sources(n, third=0):
    """n source addresses 127.0.THIRD.1 .. 127.0.THIRD.n (n <= 254)."""
    return ["127.0.%d.%d" % (third, i + 1) for i in range(n)]


class _Flood(threading.Thread):
    """Keeps per_source connections from each source open until stopped, opening new
    ones (at most once a second per slot) for those the server closed."""

    def __init__(self, port, sources, per_source):
        super().__init__(daemon=True)
        self.port, self.sources, self.per_source = port, sources, per_source
        self.stopping = threading.Event()
        self.slots = [(src, None) for src in sources for _ in range(per_source)]
        self.opened = self.closed_by_server = self.refused = 0
        self.max_open = 0
        self.lock = threading.Lock()

    def open_one(self, src):
        raise NotImplementedError

    def tick(self, s):
        """Called once a second per open connection; return False when it is closed."""
        return True

    def open_count(self):
        return sum(1 for _, s in self.slots if s is not None)

    def run(self):
        while not self.stopping.is_set():
            t0 = time.monotonic()
            for i, (src, s) in enumerate(self.slots):
                if self.stopping.is_set():
                    break
                if s is not None:
                    if not self.tick(s):
                        s.close()
                        s = None
                        with self.lock:
                            self.closed_by_server += 1
                if s is None:
                    try:
                        s = self.open_one(src)
                        with self.lock:
                            self.opened += 1
                    except OSError:
                        s = None
                        with self.lock:
                            self.refused += 1
                self.slots[i] = (src, s)
            self.max_open = max(self.max_open, self.open_count())
            self.stopping.wait(max(0.0, 1.0 - (time.monotonic() - t0)))
        for _, s in self.slots:
            if s is not None:
                s.close()

    def stop(self):
        self.stopping.set()
        self.join(60)


def _closed(s):
    """True when the peer closed s (EOF or reset); reads and drops pending data."""
    try:
        r, _, _ = select.select([s], [], [], 0)
        if r:
            return s.recv(65536) == b""
        return False
    except OSError:
        return True


class SlowHeaderFlood(_Flood):
    """Request heads sent one byte per second, never finished."""

    def open_one(self, src):
        s = connect_from(src, self.port, timeout=2.0)
        s.setblocking(False)
        try:
            s.send(b"POST /tlsrpt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        except OSError:
            s.close()
            raise
        return s

    def tick(self, s):
        if _closed(s):
            return False
        try:
            s.send(b"a")
            return True
        except OSError:
            return False


def keepalive_post(s, body, path="/tlsrpt"):
    """POST body on an open keep-alive socket and read the answer; returns the status."""
    s.settimeout(10)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/tlsrpt+json\r\n"
              b"Content-Length: %d\r\n\r\n" % (path.encode(), len(body)) + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed before the answer")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = {k.strip().lower(): v.strip()
              for k, _, v in (ln.partition(b":") for ln in lines[1:])}
    need = int(fields.get(b"content-length", b"0"))
    while len(rest) < need:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    if fields.get(b"connection", b"").lower() == b"close":
        raise OSError("the server closed the keep-alive connection")
    return int(lines[0].split()[1])


class IdleFlood(_Flood):
    """Keep-alive connections that POSTed one report each (the same one: one row and
    duplicates), then stay idle."""

    def __init__(self, port, sources, per_source, body):
        super().__init__(port, sources, per_source)
        self.body = body

    def open_one(self, src):
        s = connect_from(src, self.port, timeout=5.0)
        try:
            keepalive_post(s, self.body)
        except OSError:
            s.close()
            raise
        s.setblocking(False)
        return s

    def tick(self, s):
        return not _closed(s)


class _Periodic(threading.Thread):
    """Does one HTTP request every period seconds from source address src and records
    (start, seconds, status or None)."""

    def __init__(self, port, src, period, timeout=10.0):
        super().__init__(daemon=True)
        self.port, self.src, self.period, self.timeout = port, src, period, timeout
        self.results = []
        self.stopping = threading.Event()
        self.i = 0

    def request(self, conn):
        raise NotImplementedError

    def run(self):
        while not self.stopping.is_set():
            t0 = time.monotonic()
            status = None
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout,
                                              source_address=(self.src, 0))
            try:
                status = self.request(conn)
            except (OSError, http.client.HTTPException):
                status = None
            finally:
                conn.close()
            self.results.append((t0, time.monotonic() - t0, status))
            self.i += 1
            self.stopping.wait(max(0.0, self.period - (time.monotonic() - t0)))

    def stop(self):
        self.stopping.set()
        self.join(self.timeout + 30)

    def latencies(self):
        return sorted(dt for _, dt, _ in self.results)

    def p99(self):
        lat = self.latencies()
        if not lat:
            return None
        return lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]

    def statuses(self):
        return [st for _, _, st in self.results]


class Sender(_Periodic):
    """An honest sender: a distinct small report every period seconds (JSON, 201)."""

    def __init__(self, port, src, period, prefix, timeout=10.0):
        super().__init__(port, src, period, timeout)
        self.prefix = prefix
        self.ids = []

    def request(self, conn):
        rid = "%s-%d" % (self.prefix, self.i)
        body = json.dumps({"organization-name": "Honest Sender", "date-range": {
            "start-datetime": "2026-11-01T00:00:00Z", "end-datetime": "2026-11-01T23:59:59Z"},
            "contact-info": "tlsrpt@honest.example", "report-id": rid,
            "policies": [policy("honest.example", 100, 1, [
                {"result-type": "certificate-expired", "failed-session-count": 1}])]}).encode()
        conn.request("POST", "/tlsrpt", body=gzip.compress(body),
                     headers={"Content-Type": "application/tlsrpt+gzip"})
        r = conn.getresponse()
        r.read()
        if r.status == 201:
            self.ids.append(rid)
        return r.status


class Poller(_Periodic):
    """GET /healthz every period seconds."""

    def request(self, conn):
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        return r.status


def post_from(port, src, body, ctype, headers=(), timeout=60.0):
    """One POST from source address src; returns (status or None, seconds, body)."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(src, 0))
    hdrs = {"Content-Type": ctype}
    for h in headers:
        k, _, v = h.partition(":")
        hdrs[k.strip()] = v.strip()
    try:
        try:
            conn.request("POST", "/tlsrpt", body=body, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (413, say) and closed before the whole body was sent
        r = conn.getresponse()
        data = r.read()
        return r.status, time.monotonic() - t0, data
    except (OSError, http.client.HTTPException) as e:
        return None, time.monotonic() - t0, str(e).encode()
    finally:
        conn.close()


def post_all(port, bodies, ctype, first_src=10, timeout=300.0):
    """POST every body at once, body i from 127.0.0.(first_src + i); the answers of
    post_from() in the order of bodies."""
    answers = [None] * len(bodies)

    def post(i):
        answers[i] = post_from(port, "127.0.0.%d" % (first_src + i), bodies[i], ctype,
                               timeout=timeout)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 30)
    return answers


def proc_status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def db_bytes(db):
    return sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))


if __name__ == "__main__":
    for name, ctype, headers, body, ok in corpus():
        print("%-40s %10d bytes" % (name, len(body)))
    print(len(gzip.decompress(failure_details_bomb(600000))))
