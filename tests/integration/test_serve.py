#!/usr/bin/env python3
"""`tlsrptd serve`, the https rua endpoint (docs/http.md, README), driven from outside.

The REAL binary listens on 127.0.0.1 (free ports); a REAL curl does the HTTP(S)
requests wherever it can (python sockets only where curl cannot: a POST without
any length, a client dribbling its headers, TLS 1.1 with a positive control);
certificates are made by the test with the openssl CLI (self-signed for
127.0.0.1/localhost; curl --cacert). Every daemon gets its own directory and
database, is awaited on /healthz, and is stopped with SIGTERM and reaped; where a
test asserts it, the exit code must be 0 and the log free of sanitizer reports.

  Corpus        every JSON report of the corpus over HTTPS three ways == `tlsrptd ingest`
  Answers       405/404/411/413/415/429, /healthz, PATH/anything
  GzipBomb      1 GiB of zeros gzipped: 400 fast while other clients are served
  SlowClient    header dribbling cut off after --connection-timeout
  Parallel      200 clients at once: 200 x 201, 200 rows
  Shutdown      SIGTERM under load: exit 0, every 201 is in the database
  Storage       locked database / full disk / PostgreSQL stopped: 503 + Retry-After,
                /healthz 503, recovery without restart; a database file the service
                cannot write (issue 10, defect 3)
  Tls           TLS 1.2 and 1.3 work, TLS 1.1 is refused (with a positive control)
  Sighup        log file reopened; certificate reloaded
  Logging       one line per request (text and JSON)
  PrivilegeDrop --user nobody (root only)
  ConfigFile    -c FILE, flags override, unknown key is exit 78, default 127.0.0.1:8080

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_serve.py [-k NAME]
Needs curl and openssl (Debian packages curl, openssl).
"""
import collections
import errno
import gzip
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

SLOW = T.SLOW
CURL_TIMEOUT = int(60 * SLOW)
READY_TIMEOUT = 30 * SLOW
STOP_TIMEOUT = 40 * SLOW

MiB = 1 << 20
SAMPLE_REPORT_ID = "2026-11-01T00:00:00Z_mail.example"  # samples/report.json
GZ_REPORT_ID = "2026-11-02T00:00:00Z_mail.example"  # samples/report.json.gz

# A request line of the text log: CLIENT "METHOD PATH" STATUS BYTES OUTCOME LATENCYms
TEXT_LINE_RE = re.compile(r'^\S+ tlsrptd\[info\]: (?P<client>\S+) '
                          r'"(?P<method>[A-Z]+) (?P<path>\S+)" (?P<status>\d{3}) (?P<bytes>\d+) '
                          r'(?P<outcome>.+) (?P<latency>\d+(?:\.\d+)?)\s?ms$')

# Tools: CI installs them; missing is a failure, not a skip.
for _tool in ("curl", "openssl"):
    if shutil.which(_tool) is None:
        raise RuntimeError("%s is not installed (Debian package %s)" % (_tool, _tool))


# ---- small helpers --------------------------------------------------------------------------


free_port = T.free_port


def port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_until(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def report_bytes(report_id, **changes):
    """samples/report.json with another report-id (distinct reports for load tests)."""
    r = T.sample_report(**changes)
    r["report-id"] = report_id
    return json.dumps(r).encode()


def make_cert(directory, name, cn):
    """A self-signed RSA certificate for 127.0.0.1 and localhost, made with the openssl CLI.
    Returns (cert_path, key_path, der_sha256)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                        "-days", "2", "-subj", "/CN=" + cn,
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", key, "-out", cert],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if p.returncode != 0:
        raise AssertionError("openssl req failed:\n%s" % p.stdout.decode(errors="replace"))
    return cert, key, cert_sha256(cert)


def thread_nices(pid):
    """{thread id: its nice value} of a running process."""
    nices = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            nices[tid] = int(f.read().rsplit(")", 1)[1].split()[16])  # field 19: nice
    return nices


def cert_sha256(path):
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


class Resp:
    def __init__(self, status, headers, body, rc, err, elapsed):
        self.status, self.headers, self.body = status, headers, body
        self.rc, self.err, self.elapsed = rc, err, elapsed

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError("answer body is not JSON: %r" % self)

    def __repr__(self):
        return ("<HTTP %s curl-rc %s %.2fs headers=%r body=%r err=%r>" %
                (self.status, self.rc, self.elapsed, self.headers, self.body[:600],
                 self.err.strip()[-600:]))


def parse_http_response(raw):
    """Status, headers (lower-case names) and body of a raw HTTP/1.x answer; 1xx skipped."""
    while True:
        sep = raw.find(b"\r\n\r\n")
        if not raw.startswith(b"HTTP/") or sep < 0:
            return None, {}, raw
        head, rest = raw[:sep].decode("iso-8859-1"), raw[sep + 4:]
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200:
            raw = rest
            continue
        headers = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return status, headers, rest


def curl(url, data=None, headers=(), method=None, cacert=None, opts=(), timeout=CURL_TIMEOUT):
    """One request with the curl CLI. data: bytes sent with --data-binary (from stdin)."""
    args = ["curl", "-sS", "-i", "--http1.1", "--max-time", str(timeout)]
    if cacert:
        args += ["--cacert", cacert]
    if method:
        args += ["-X", method]
    for h in headers:
        args += ["-H", h]
    if data is not None:
        args += ["--data-binary", "@-"]
    args += list(opts) + [url]
    t0 = time.monotonic()
    p = subprocess.run(args, input=data if data is not None else b"", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout + 30)
    elapsed = time.monotonic() - t0
    status, hdrs, body = parse_http_response(p.stdout)
    return Resp(status, hdrs, body, p.returncode, p.stderr.decode(errors="replace"), elapsed)


def db_content(db):
    """What a database holds, independent of ids, arrival time and source: per report
    (sorted by organization, report-id, start, end) what `show` shows of it: its fields,
    diagnostics, policies in order with their failure details, the report JSON kept."""
    out = []
    for r in T.stored(db):
        key = (r["organization_name"], r["report_id"], r["start_datetime"], r["end_datetime"])
        out.append((key, {k: v for k, v in r.items()
                          if k not in ("id", "received_at", "source")}))
    out.sort(key=lambda x: x[0])
    return out


report_ids = T.report_ids


def glob_db(directory):
    """The SQLite database files in directory (the database, -wal, -shm)."""
    return [os.path.join(directory, n) for n in sorted(os.listdir(directory))
            if n.startswith("tlsrptd.db")]


# ---- the daemon -----------------------------------------------------------------------------


class Daemon:
    """A running `tlsrptd serve`: its process, base URL, CA file and log."""

    def __init__(self, tc, argv, base, cacert=None, cwd=None, log_target=None, name="serve",
                 prefix=()):
        self.tc, self.argv, self.base, self.cacert = tc, argv, base, cacert
        self.prefix = list(prefix)  # a command that runs tlsrptd (strace, say)
        self.cwd = cwd or tc.tmp
        self.log_target = log_target
        self.out_path = os.path.join(tc.tmp, "%s-%d.stderr" % (name, id(self)))
        self.proc = None
        self.rc = None

    def start(self):
        self.outf = open(self.out_path, "wb")
        env = dict(os.environ)
        env.setdefault("LC_ALL", "C")
        self.proc = subprocess.Popen(self.prefix + [T.tlsrptd_bin()] + [str(a) for a in self.argv],
                                     stdin=subprocess.DEVNULL, stdout=self.outf,
                                     stderr=subprocess.STDOUT, cwd=self.cwd, env=env)
        self.outf.close()
        self.tc.addCleanup(self.kill)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path="/tlsrpt"):
        return self.base + path

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Poll GET /healthz with curl until 200. False when the process exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return False
            r = self.get("/healthz", timeout=5)
            if r.status == 200:
                return True
            time.sleep(0.1)
        raise AssertionError("tlsrptd serve did not answer /healthz within %.0f s\n%s" %
                             (timeout, self.log()))

    def request(self, path="/tlsrpt", **kw):
        kw.setdefault("cacert", self.cacert)
        return curl(self.url(path), **kw)

    def get(self, path, **kw):
        return self.request(path, **kw)

    def post(self, body, ctype="application/tlsrpt+json", path="/tlsrpt", headers=(), **kw):
        hdrs = (["Content-Type: " + ctype] if ctype else []) + list(headers)
        return self.request(path, data=body, headers=hdrs, **kw)

    def log(self):
        """Everything the daemon wrote: its stderr and, with --log-target FILE, that file
        (and the file it was renamed to)."""
        parts = []
        for p in [self.out_path] + ([self.log_target + ".1", self.log_target]
                                    if self.log_target else []):
            try:
                with open(p, "rb") as f:
                    parts.append(f.read().decode("utf-8", "replace"))
            except FileNotFoundError:
                pass
        return "\n".join(parts)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, reap, return the exit code; a hang or a sanitizer report fails."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("tlsrptd serve did not exit within %.0f s of SIGTERM\n%s" %
                                     (timeout, self.log()[-4000:]))
        self.rc = self.proc.returncode
        self.check_sanitizer()
        return self.rc

    def check_sanitizer(self):
        text = self.log()
        if T._SANITIZER_RE.search(text):
            raise AssertionError("sanitizer report from tlsrptd serve:\n%s" % text[-8000:])

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ServeTestCase(T.TlsrptdTestCase):
    """Daemons, certificates and assertions shared by the serve tests."""

    _cert = None

    def cert(self):
        """A certificate for this test (made once per test)."""
        if self._cert is None:
            self._cert = make_cert(self.tmp, "server", "tlsrptd-test")
        return self._cert

    def start_daemon(self, args=(), tls=False, db=None, cert=None, log_target=None,
                     cwd=None, name="serve", prefix=()):
        """`tlsrptd serve` on a free port of 127.0.0.1 (HTTPS when tls), waited for."""
        for _attempt in range(5):
            port = free_port()
            argv = ["serve"]
            if tls:
                c, k = (cert or self.cert())[:2]
                argv += ["--listen-tls", "127.0.0.1:%d" % port, "--tls-cert", c, "--tls-key", k]
                base, cacert = "https://127.0.0.1:%d" % port, (cert or self.cert())[0]
            else:
                argv += ["--listen", "127.0.0.1:%d" % port]
                base, cacert = "http://127.0.0.1:%d" % port, None
            argv += ["--db", db or self.db]
            if log_target:
                argv += ["--log-target", log_target]
            argv += list(args)
            d = Daemon(self, argv, base, cacert=cacert, cwd=cwd, log_target=log_target,
                       name=name, prefix=prefix).start()
            d.port = port
            if d.wait_ready():
                return d
            d.stop()
            if "cannot listen" in d.log():  # somebody took the port meanwhile
                continue
            self.fail("tlsrptd serve exited at startup (rc %s):\n%s" % (d.rc, d.log()))
        self.fail("no free port found for tlsrptd serve")

    def start_with_two_certs(self, args=()):
        """HTTPS serving certificate one from live.crt/live.key, with a CA file trusting
        both one and two. Returns the daemon and {name: (cert, key, sha256)}."""
        c1, k1, h1 = make_cert(self.tmp, "one", "tlsrptd-one")
        c2, k2, h2 = make_cert(self.tmp, "two", "tlsrptd-two")
        # one CA file trusting both, so clients do not care which one they get
        both = self.write("both.crt", read_text(c1) + read_text(c2))
        live_c, live_k = self.path("live.crt"), self.path("live.key")
        shutil.copy(c1, live_c)
        shutil.copy(k1, live_k)
        d = self.start_daemon(tls=True, cert=(live_c, live_k),
                              args=["--rate-limit", "0", "--max-connections-per-ip", "512"] +
                              list(args))
        d.cacert = both
        return d, {"one": (c1, k1, h1), "two": (c2, k2, h2), "live": (live_c, live_k, None)}

    def stop_ok(self, d):
        rc = d.stop()
        self.assertEqual(rc, 0, "tlsrptd serve did not exit 0 after SIGTERM\n%s" %
                         d.log()[-4000:])

    def assertStatus(self, resp, status, msg=""):
        self.assertEqual(resp.status, status, "%s\n%r" % (msg, resp))

    def assertJsonError(self, resp, status):
        """An error answer: that status, a JSON body with status/error (and Content-Type)."""
        self.assertStatus(resp, status)
        self.assertTrue(resp.headers.get("content-type", "").startswith("application/json"),
                        resp)
        body = resp.json()
        self.assertEqual(body.get("status"), status, resp)
        self.assertTrue(body.get("error"), resp)
        return body

    def assertRetryAfter(self, resp):
        ra = resp.headers.get("retry-after")
        self.assertIsNotNone(ra, "no Retry-After header\n%r" % resp)
        self.assertRegex(ra, r"^\d+$", resp)
        self.assertGreaterEqual(int(ra), 1, resp)
        return int(ra)

    def assertStored(self, resp, report_id=None):
        self.assertStatus(resp, 201)
        body = resp.json()
        self.assertEqual(body["result"], "stored", resp)
        if report_id is not None:
            self.assertEqual([r["report-id"] for r in body["reports"]], [report_id], resp)
        return body


def raw_request(d, data, read_timeout=10 * SLOW, tls_ctx=None):
    """Send raw bytes to the daemon (TLS when it is an https one) and read the whole answer."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=read_timeout)
    try:
        if d.base.startswith("https:"):
            ctx = tls_ctx or ssl.create_default_context(cafile=d.cacert)
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            st, hd, body = parse_http_response(b"".join(chunks))
            if st is not None and "content-length" in hd and \
                    len(body) >= int(hd["content-length"]):
                break
        return parse_http_response(b"".join(chunks))
    finally:
        s.close()


# ---- 1. the corpus over HTTPS ---------------------------------------------------------------






def corpus_json_files():
    """real/*.json and real/*.json.gz, in byte-wise sorted order of their paths."""
    real = os.path.join(T.corpus_dir(), "real")
    names = sorted(n for n in os.listdir(os.fsencode(real))
                   if not n.startswith(b".") and (n.endswith(b".json") or n.endswith(b".json.gz")))
    return [os.fsdecode(b"real/" + n) for n in names]


def expected_first_answers(files):
    """For each file POSTed in this order into one fresh database: 201, 200 or 400.

    EXPECTED.tsv says whether a file is accepted and which (organization, report-id) it
    carries; EXPECTED-TOTALS.json lists the files that duplicate an earlier file in sorted
    order of ALL of real/. Only the JSON files are POSTed here, so a listed duplicate is
    answered 200 only when the file it duplicates (same organization and report-id, earlier)
    was POSTed too; otherwise it is the first copy and answered 201."""
    rows = {r["file"]: r for r in T.load_expected()}
    dups = set(T.load_totals()["duplicates"])
    seen = set()
    out = {}
    for f in files:
        row = rows[f]
        if row["accepted"] == "no":
            out[f] = 400
            continue
        if row["accepted"] != "yes":
            raise AssertionError("EXPECTED.tsv: accepted is %r for %s" % (row["accepted"], f))
        key = (row["org"], row["report_id"])
        out[f] = 200 if (f in dups and key in seen) else 201
        seen.add(key)
    return out


class Corpus(ServeTestCase):
    """Every JSON report of the corpus over HTTPS, three ways, each in a fresh daemon and
    database, equals what `tlsrptd ingest` stores for the same files."""

    WAYS = {
        "gzip body, application/tlsrpt+gzip":
            ("application/tlsrpt+gzip", (), "gzip"),
        "json body, application/tlsrpt+json":
            ("application/tlsrpt+json", (), "json"),
        "gzip body, application/tlsrpt+json + Content-Encoding: gzip":
            ("application/tlsrpt+json", ("Content-Encoding: gzip",), "gzip"),
    }

    def test_corpus_three_ways_equals_ingest(self):
        corpus = T.corpus_dir()
        files = corpus_json_files()
        self.assertGreater(len(files), 10, "too few JSON files in the corpus")
        expected = expected_first_answers(files)
        rows = {r["file"]: r for r in T.load_expected()}
        # the reference: the same files, same order, through `tlsrptd ingest`
        ref_db = self.new_db("ingest")
        res = T.run(["ingest", "--db", ref_db, "--no-progress"] +
                    [os.path.join(corpus, f) for f in files], timeout=300 * SLOW)
        got_ref = {os.path.relpath(o.name, corpus): o.status for o in T.outcomes(res)}
        want_ref = {f: {201: "stored", 200: "duplicate", 400: "rejected"}[s]
                    for f, s in expected.items()}
        self.assertEqual(got_ref, want_ref, "tlsrptd ingest disagrees with EXPECTED*\n%r" % res)
        reference = db_content(ref_db)
        self.assertEqual(len(reference), list(expected.values()).count(201))

        for way, (ctype, headers, enc) in self.WAYS.items():
            with self.subTest(way=way):
                db = self.new_db("serve-%s-%d" % (enc, len(headers)))
                d = self.start_daemon(tls=True, db=db, name="corpus-" + enc,
                                      args=["--rate-limit", "0"])
                self.assertTrue(d.base.startswith("https://"))
                for f in files:
                    data = T.read_bytes(os.path.join(corpus, f))
                    plain = gzip.decompress(data) if f.endswith(".gz") else data
                    body = (data if f.endswith(".gz") else gzip.compress(plain)) \
                        if enc == "gzip" else plain
                    first = d.post(body, ctype, headers=headers)
                    again = d.post(body, ctype, headers=headers)
                    want = expected[f]
                    self.assertEqual(first.status, want, "%s: first POST (%s)\n%r" %
                                     (f, way, first))
                    if want == 400:
                        self.check_rejected(db, f, rows[f], first)
                        self.assertEqual(again.status, 400, "%s: second POST\n%r" % (f, again))
                        continue
                    b = first.json()
                    self.assertEqual(b["result"], "stored" if want == 201 else "duplicate", first)
                    self.assertEqual([(r["organization-name"], r["report-id"])
                                      for r in b["reports"]],
                                     [(rows[f]["org"], rows[f]["report_id"])], first)
                    self.assertEqual(again.status, 200, "%s: second POST (%s)\n%r" %
                                     (f, way, again))
                    self.assertEqual(again.json()["result"], "duplicate", again)
                    self.assertEqual(again.json()["reports"][0]["id"], b["reports"][0]["id"])
                self.stop_ok(d)
                self.assertEqual(db_content(db), reference,
                                 "what serve stored (%s) differs from `tlsrptd ingest`" % way)
                srcs = {(r["source"]["kind"], r["source"].get("name"), r["source"].get("client"))
                        for r in T.stored_reports(db)}
                self.assertEqual(srcs, {("http", "/tlsrpt", "127.0.0.1")})

    def check_rejected(self, db, f, row, resp):
        body = self.assertJsonError(resp, 400)
        detail = body.get("detail") or ""
        note = row["note"].strip()
        self.assertTrue(note, "EXPECTED.tsv gives no reason for %s" % f)
        token = note.split()[0]
        self.assertTrue(note in detail or token in detail,
                        "%s: the 400 detail %r names neither %r nor %r" % (f, detail, note, token))
        # nothing lost: the rejected input is quarantined with that reason
        q = [(e["reason"], e["source"]["kind"]) for e in T.quarantine(db)]
        self.assertIn((detail, "http"), q, "%s: no quarantine entry with the reason" % f)


# ---- 2. answers -----------------------------------------------------------------------------


class Answers(ServeTestCase):
    """Every status the endpoint can answer, over HTTPS, from curl."""

    def test_methods_paths_lengths_media_types(self):
        d = self.start_daemon(tls=True, args=["--max-body", "4K", "--rate-limit", "0"])
        gz = T.read_bytes(T.sample("report.json.gz"))
        big = os.urandom(8192)

        r = d.get("/healthz")
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), {"status": "ok"})

        for method, data in (("GET", None), ("PUT", gz), ("DELETE", None)):
            with self.subTest(method=method):
                r = d.request("/tlsrpt", method=method, data=data,
                              headers=["Content-Type: application/tlsrpt+gzip"])
                self.assertJsonError(r, 405)
                self.assertEqual(r.headers.get("allow"), "POST", r)
        r = d.get("/tlsrpt/any/thing")
        self.assertJsonError(r, 405)
        self.assertEqual(r.headers.get("allow"), "POST", r)

        for path in ("/nope", "/tlsrptx", "/TLSRPT", "/healthz/x"):
            with self.subTest(path=path):
                self.assertJsonError(d.get(path), 404)
                self.assertJsonError(d.post(gz, "application/tlsrpt+gzip", path=path), 404)
        # / is the web console (it_console): a page to GET, nothing to POST to
        r = d.get("/")
        self.assertStatus(r, 200)
        self.assertEqual(r.headers.get("content-type"), "text/html; charset=utf-8", r)
        r = d.post(gz, "application/tlsrpt+gzip", path="/")
        self.assertStatus(r, 405)
        self.assertEqual(r.headers.get("allow"), "GET, HEAD", r)

        # 411: a POST with neither Content-Length nor a chunked body (curl always sends one)
        st, hd, body = raw_request(d, b"POST /tlsrpt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      b"Content-Type: application/tlsrpt+json\r\n"
                                      b"Connection: close\r\n\r\n")
        self.assertEqual(st, 411, body)
        self.assertEqual(json.loads(body)["status"], 411)

        # 413 by Content-Length, before the body is read
        r = d.post(big, "application/tlsrpt+gzip")
        b = self.assertJsonError(r, 413)
        self.assertIn("4096", b.get("detail", ""), r)
        # 413 for a chunked body over the limit (no Content-Length to judge by)
        r = d.post(big, "application/tlsrpt+gzip", headers=["Transfer-Encoding: chunked"])
        self.assertJsonError(r, 413)
        # a chunked body under the limit is fine
        r = d.post(gz, "application/tlsrpt+gzip", headers=["Transfer-Encoding: chunked"])
        self.assertStored(r, GZ_REPORT_ID)

        # 415: media type and content encoding
        self.assertJsonError(d.post(b"hello", "text/plain"), 415)
        self.assertJsonError(d.post(gz, "application/tlsrpt+gzip",
                                    headers=["Content-Encoding: br"]), 415)
        self.assertJsonError(d.post(gz, None, headers=["Content-Type:"]), 415)

        # PATH/anything is a report URL too; the request path is recorded as the source,
        # its first segment as the domain hint (like a mail's TLS-Report-Domain)
        body = report_bytes("any-thing-1")
        r = d.post(body, "application/tlsrpt+json", path="/tlsrpt/any/thing")
        self.assertStored(r, "any-thing-1")
        r = d.post(body, "application/tlsrpt+json", path="/tlsrpt/")
        self.assertStatus(r, 200)
        self.assertEqual([r["source"] for r in T.stored_reports(self.db)
                          if r["report_id"] == "any-thing-1"],
                         [{"kind": "http", "name": "/tlsrpt/any/thing", "client": "127.0.0.1",
                           "domain": "any"}])
        # other accepted media types (gzip sniffed by its magic)
        for i, ct in enumerate(("application/json", "application/gzip", "application/octet-stream",
                                "application/tlsrpt+json; charset=utf-8")):
            with self.subTest(media_type=ct):
                rid = "media-type-%d" % i
                data = report_bytes(rid)
                if "gzip" in ct or "octet" in ct:
                    data = gzip.compress(data)
                self.assertStored(d.post(data, ct), rid)

        # none of the refused requests stored anything
        self.assertEqual(sorted(report_ids(self.db)),
                         sorted([GZ_REPORT_ID, "any-thing-1"] +
                                ["media-type-%d" % i for i in range(4)]))
        self.stop_ok(d)

    def test_rejected_bodies_are_quarantined(self):
        """docs/acceptance.md "nothing lost": every rejected input is kept in the quarantine with its
        reason, whichever way it was refused as not a report (400)."""
        d = self.start_daemon(tls=True, args=["--rate-limit", "0"])
        cases = [
            ("not json", b"hello, not a report", "application/tlsrpt+json", ()),
            ("no report-id", json.dumps({"organization-name": "x"}).encode(),
             "application/tlsrpt+json", ()),
            ("corrupt gzip body", b"\x1f\x8b\x08\x00garbage", "application/tlsrpt+gzip", ()),
            ("corrupt Content-Encoding: gzip", b"\x1f\x8b\x08\x00garbage-ce",
             "application/tlsrpt+json", ("Content-Encoding: gzip",)),
        ]
        for name, body, ctype, headers in cases:
            with self.subTest(case=name):
                r = d.post(body, ctype, headers=headers)
                b = self.assertJsonError(r, 400)
                self.assertTrue(b.get("detail"), r)
                q = [e["source"] for e in T.quarantine(self.db, raw=True) if e["raw"] == body]
                self.assertEqual(q, [{"kind": "http", "name": "/tlsrpt", "client": "127.0.0.1"}],
                                 "the rejected body (%s) is not in the quarantine" % name)
        self.assertEqual(T.stored_reports(self.db), [])
        self.stop_ok(d)

    def test_body_limit_boundary_and_bad_lengths(self):
        d = self.start_daemon(tls=True, args=["--max-body", "2K", "--rate-limit", "0"])
        # exactly max_body bytes is allowed (a report padded with spaces), one more is not
        body = report_bytes("boundary")
        exact = body + b" " * (2048 - len(body))
        self.assertEqual(len(exact), 2048)
        self.assertStored(d.post(exact), "boundary")
        self.assertJsonError(d.post(exact + b" "), 413)
        self.assertJsonError(d.post(exact + b" ", headers=["Transfer-Encoding: chunked"]), 413)
        self.assertStatus(d.post(exact, headers=["Transfer-Encoding: chunked"]), 200)
        # an unparseable Content-Length is a client error, and the server lives on
        st, _, body400 = raw_request(d, b"POST /tlsrpt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                        b"Content-Type: application/tlsrpt+json\r\n"
                                        b"Content-Length: abc\r\nConnection: close\r\n\r\n{}")
        self.assertIsNotNone(st, "no answer to Content-Length: abc")
        self.assertTrue(400 <= st < 500, (st, body400))
        # an empty body is not a report
        st, _, body0 = raw_request(d, b"POST /tlsrpt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      b"Content-Type: application/tlsrpt+json\r\n"
                                      b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        self.assertEqual(st, 400, body0)
        self.assertStatus(d.get("/healthz"), 200)
        self.assertEqual(report_ids(self.db), ["boundary"])
        self.stop_ok(d)

    def test_per_ip_connection_limit(self):
        """--max-connections-per-ip N: the N+1st simultaneous connection from one address is
        refused while the first N are open; once they close, requests are served again."""
        n = 4
        d = self.start_daemon(args=["--max-connections-per-ip", str(n), "--rate-limit", "0",
                                    "--connection-timeout", "60"])
        def open_sockets():
            fd_dir = "/proc/%d/fd" % d.proc.pid
            count = 0
            for name in os.listdir(fd_dir):
                try:
                    count += os.readlink(os.path.join(fd_dir, name)).startswith("socket:")
                except OSError:
                    pass
            return count

        # the readiness probe's connection may still be open in the daemon for a moment:
        # take the lowest count over a second as the baseline
        before = open_sockets()
        end = time.time() + 1.0 * SLOW
        while time.time() < end:
            before = min(before, open_sockets())
            time.sleep(0.05)
        socks = [socket.create_connection(("127.0.0.1", d.port), timeout=10) for _ in range(n)]
        try:
            # the daemon counts a connection only once it accept()ed it: wait until it
            # holds all n, so the next one cannot race them
            self.assertTrue(wait_until(lambda: open_sockets() >= before + n, 10 * SLOW),
                            "the daemon did not accept %d connections" % n)
            time.sleep(0.5 * SLOW)
            r = d.get("/healthz", timeout=int(10 * SLOW))
            self.assertIsNone(r.status, "connection %d of one IP was served: %r" % (n + 1, r))
        finally:
            for s in socks:
                s.close()
        ok = wait_until(lambda: d.get("/healthz", timeout=5).status == 200, 10 * SLOW)
        self.assertTrue(ok, "not served again after the connections closed")
        self.stop_ok(d)

    def test_rate_limit_429_with_retry_after(self):
        n = 5
        d = self.start_daemon(tls=True, args=["--rate-limit", str(n)])
        for i in range(n):
            self.assertStored(d.post(report_bytes("rate-%d" % i)), "rate-%d" % i)
        r = d.post(report_bytes("rate-over"))
        self.assertJsonError(r, 429)
        ra = self.assertRetryAfter(r)
        self.assertLessEqual(ra, 60, r)
        # limited, not broken: health is still answered and nothing more was stored
        self.assertStatus(d.get("/healthz"), 200)
        self.assertEqual(sorted(report_ids(self.db)), sorted("rate-%d" % i for i in range(n)))
        self.assertRegex(d.log(), r'"POST /tlsrpt" 429 ')
        self.stop_ok(d)


# ---- 3. gzip bomb ---------------------------------------------------------------------------

_BOMB = {}


def gzip_bomb():
    """1 GiB of zeros as one gzip member, compressed in a streaming way (~1 MiB), made once."""
    if "path" not in _BOMB:
        fd, path = tempfile.mkstemp(prefix="tlsrptd-it-bomb-", suffix=".gz")
        comp = zlib.compressobj(9, zlib.DEFLATED, 16 + 15)
        chunk = bytes(MiB)
        with os.fdopen(fd, "wb") as f:
            for _ in range(1024):
                f.write(comp.compress(chunk))
            f.write(comp.flush())
        _BOMB["path"] = path
    return _BOMB["path"]


def tearDownModule():
    if "path" in _BOMB:
        os.unlink(_BOMB["path"])


class ClientLoop(threading.Thread):
    """A well-behaved sender POSTing distinct reports in a loop until stopped."""

    def __init__(self, d, prefix):
        super().__init__(daemon=True)
        self.d, self.prefix = d, prefix
        self.results = []  # (t_start, t_end, status, report_id)
        self.stopping = threading.Event()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            rid = "%s-%d" % (self.prefix, i)
            t0 = time.monotonic()
            r = self.d.post(report_bytes(rid))
            self.results.append((t0, time.monotonic(), r.status, rid))
            i += 1

    def stop(self):
        self.stopping.set()
        self.join(CURL_TIMEOUT + 30)


class GzipBomb(ServeTestCase):
    def test_bomb_is_400_fast_while_others_are_served(self):
        bomb = T.read_bytes(gzip_bomb())
        self.assertLess(len(bomb), 2 * MiB)
        d = self.start_daemon(tls=True, args=["--rate-limit", "0",
                                              "--max-connections-per-ip", "512"])
        loop = ClientLoop(d, "during-bomb")
        loop.start()
        self.assertTrue(wait_until(lambda: len(loop.results) >= 2, 30 * SLOW),
                        "the second client got no answers")
        variants = [("application/tlsrpt+gzip", ()),
                    ("application/tlsrpt+json", ("Content-Encoding: gzip",)),
                    ("application/octet-stream", ())]
        windows = []
        for _round in range(2):
            for ctype, headers in variants:
                with self.subTest(ctype=ctype, headers=headers):
                    t0 = time.monotonic()
                    r = d.post(bomb, ctype, headers=headers)
                    t1 = time.monotonic()
                    windows.append((t0, t1))
                    self.assertJsonError(r, 400)
                    self.assertTrue(r.json().get("detail"), r)
                    self.assertLess(t1 - t0, 5.0 * (2 if T.asan() else 1),
                                    "the bomb took %.1f s to be refused" % (t1 - t0))
        # the server is still fine, and did not inflate the whole GiB into memory
        n_before = len(loop.results)
        self.assertTrue(wait_until(lambda: len(loop.results) >= n_before + 2, 30 * SLOW))
        loop.stop()
        with open("/proc/%d/status" % d.pid) as f:
            hwm = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
        self.assertLess(hwm, (300 if not T.asan() else 2048) * 1024,
                        "peak RSS %d KiB after the bombs" % hwm)
        statuses = [s for _, _, s, _ in loop.results]
        self.assertEqual(set(statuses), {201}, "the other client was not served: %r" % statuses)
        during = [r for r in loop.results
                  if r[1] >= windows[0][0] and r[0] <= windows[-1][1]]
        sys.stderr.write("\n  [bomb] refused in %s s; other client: %d answers, %d during the "
                         "bombs; peak RSS %d MiB\n" %
                         (", ".join("%.2f" % (t1 - t0) for t0, t1 in windows), len(loop.results),
                          len(during), hwm // 1024))
        self.assertGreater(len(during), 0, "no answer to the other client while bombs arrived")
        self.assertEqual(sorted(report_ids(self.db)), sorted(rid for *_, rid in loop.results))
        self.stop_ok(d)


# ---- 4. slow client -------------------------------------------------------------------------


class SlowClient(ServeTestCase):
    TIMEOUT = 3

    def dribble(self, d, give_up, prefix, slow):
        """Send prefix at once, then slow one byte per second; return the seconds until the
        server closed the connection, or None when it was still open after give_up seconds."""
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        t0 = time.monotonic()
        try:
            s.sendall(prefix)
            for b in slow:
                if time.monotonic() - t0 > give_up:
                    return None
                r, _, _ = select.select([s], [], [], 0)
                if r:
                    try:
                        if s.recv(4096) == b"":
                            return time.monotonic() - t0
                    except OSError:
                        return time.monotonic() - t0
                try:
                    s.send(bytes([b]))
                except OSError:
                    return time.monotonic() - t0
                time.sleep(1.0)
            return None
        finally:
            s.close()

    def test_header_dribbler_is_cut_off_others_served(self):
        d = self.start_daemon(args=["--connection-timeout", str(self.TIMEOUT), "--rate-limit", "0",
                                    "--max-connections-per-ip", "512"])
        # an idle connection (sends nothing) is closed after the timeout
        s = socket.create_connection(("127.0.0.1", d.port), timeout=30 * SLOW)
        t0 = time.monotonic()
        self.assertEqual(s.recv(100), b"")
        idle = time.monotonic() - t0
        s.close()
        self.assertLess(idle, self.TIMEOUT + 3 * SLOW, "idle connection held %.1f s" % idle)

        loop = ClientLoop(d, "beside-slow")
        loop.start()
        give_up = self.TIMEOUT + (20 if T.asan() else 12)
        cut = {}
        # headers one byte per second; and (alongside) a body one byte per second
        header = (b"POST /tlsrpt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/tlsrpt+json\r\nX-Slow: " + b"a" * 1000)
        body = report_bytes("dribbled-body")
        body_head = (b"POST /tlsrpt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/tlsrpt+json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        body_thread = threading.Thread(
            target=lambda: cut.__setitem__("body", self.dribble(d, give_up, body_head, body)))
        body_thread.start()
        cut["headers"] = self.dribble(d, give_up, b"", header)
        body_thread.join(give_up + 30)
        loop.stop()
        statuses = [s for _, _, s, _ in loop.results]
        self.assertGreater(len(statuses), 3)
        self.assertEqual(set(statuses), {201}, "other clients were not served: %r" % statuses)
        self.assertLess(max(t1 - t0 for t0, t1, _, _ in loop.results), 5 * SLOW,
                        "another client waited long while the slow ones dribbled")
        for what in ("headers", "body"):
            with self.subTest(dribbling=what):
                self.assertIsNotNone(cut[what], "a client sending its %s one byte per second "
                                                "was still connected after %.0f s "
                                                "(--connection-timeout %d)" %
                                     (what, give_up, self.TIMEOUT))
                self.assertLess(cut[what], self.TIMEOUT + 3 * SLOW,
                                "the slow client (%s) was cut off only after %.1f s" %
                                (what, cut[what]))
        self.assertNotIn("dribbled-body", report_ids(self.db))
        self.stop_ok(d)


# ---- 5. parallel clients --------------------------------------------------------------------


class Parallel(ServeTestCase):
    N = 200

    def test_200_parallel_clients(self):
        d = self.start_daemon(tls=True, args=["--rate-limit", "0",
                                              "--max-connections-per-ip", "512"])
        barrier = threading.Barrier(self.N)
        results = [None] * self.N

        def client(i):
            body = report_bytes("parallel-%03d" % i)
            barrier.wait()
            results[i] = d.post(body)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(self.N)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        for t in threads:
            t.join(CURL_TIMEOUT + 60)
        sys.stderr.write("\n  [parallel] %d clients answered in %.1f s (slowest %.1f s)\n" %
                         (self.N, time.monotonic() - t0,
                          max(r.elapsed for r in results if r is not None)))
        bad = [(i, r) for i, r in enumerate(results) if r is None or r.status != 201]
        self.assertEqual(bad, [], "not every parallel POST was answered 201")
        for i, r in enumerate(results):
            self.assertEqual(r.json()["reports"][0]["report-id"], "parallel-%03d" % i)
        self.assertEqual(sorted(report_ids(self.db)),
                         ["parallel-%03d" % i for i in range(self.N)])
        # each one was acknowledged with its own stored id
        self.assertEqual(len({r.json()["reports"][0]["id"] for r in results}), self.N)
        self.stop_ok(d)
        self.assertEqual(len(re.findall(r'"POST /tlsrpt" 201 ', d.log())), self.N)


class Priorities(ServeTestCase):
    def test_preparing_threads_step_back_for_the_writer(self):
        """The threads that prepare uploads (prepare_threads) and answer API reads
        (threads) run 10 nicer than the daemon; the writer, the HTTP threads and the rest
        keep its priority (include/tlsrptd/thread_prio.h)."""
        d = self.start_daemon(args=["--prepare-threads", "3", "--threads", "2"])

        def nice_counts():
            return collections.Counter(thread_nices(d.pid).values())
        # each thread steps back itself when it starts, which may be a moment after the
        # daemon listens (under ASan on a busy machine it was: 4 of 5 had)
        wait_until(lambda: nice_counts()[10] >= 3 + 2, 10 * SLOW)
        nice = nice_counts()
        self.assertEqual(nice[10], 3 + 2, nice)
        self.assertEqual(set(nice), {0, 10}, nice)
        self.assertEqual(d.post(report_bytes("priorities")).status, 201)
        self.stop_ok(d)


class WhereUploadsArePrepared(ServeTestCase):
    """A small upload is prepared (inflated, decoded, validated) on the HTTP thread that
    received it; a large one, or one whose gzip trailer understates it, on the prepare
    pool (src/prepool.c, PREPARE_HERE_MAX in src/http.c). Either way it is stored."""

    @staticmethod
    def pool_switches(pid):
        """Context switches of the pool threads: those that run 10 nicer (the prepare
        threads and the API readers)."""
        total = 0
        for tid, nice in thread_nices(pid).items():
            if nice != 10:
                continue
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                total += sum(int(line.split()[1]) for line in f
                             if "ctxt_switches" in line)
        return total

    @staticmethod
    def large_report(report_id, policies):
        r = T.sample_report()
        r["report-id"] = report_id
        first = r["policies"][0]
        r["policies"] = []
        for i in range(policies):
            p = json.loads(json.dumps(first))
            p["policy"]["policy-domain"] = "d%04d.mail.example" % (i % 100)  # max 100
            p["policy"]["mx-host"] = ["mx%d.mail.example" % i]
            r["policies"].append(p)
        return r

    def test_small_here_large_on_the_pool_all_stored(self):
        d = self.start_daemon(args=["--prepare-threads", "3", "--threads", "2"])
        self.assertEqual(d.post(report_bytes("warm-up")).status, 201)
        before = self.pool_switches(d.pid)
        t0 = time.monotonic()
        for i in range(200):
            body = gzip.compress(report_bytes("small-%03d" % i), mtime=0) if i % 2 \
                else report_bytes("small-%03d" % i)
            ctype = "application/tlsrpt+gzip" if i % 2 else "application/tlsrpt+json"
            self.assertEqual(d.post(body, ctype).status, 201, i)
        seconds = time.monotonic() - t0
        small = self.pool_switches(d.pid) - before
        # handed to the pool, each upload woke a pool thread (and giving its memory back
        # woke all of them): over 200 switches. Here only their timed waits, once a
        # second per thread, remain.
        sys.stderr.write("\n  [prepare] 200 small uploads in %.1f s: %d pool-thread "
                         "switches\n" % (seconds, small))
        self.assertLess(small, 100 + 5 * 2 * seconds)

        # a large report (about 220 KiB of JSON) is prepared on the pool, and stored
        doc = self.large_report("large", 300)
        raw = json.dumps(doc).encode()
        self.assertGreater(len(raw), 100 * 1024)
        before = self.pool_switches(d.pid)
        r = d.post(gzip.compress(raw, mtime=0), "application/tlsrpt+gzip")
        self.assertEqual(r.status, 201, r.body)
        self.assertGreater(self.pool_switches(d.pid) - before, 0)

        # two gzip members whose trailer (the last member's size) says 1 KiB of about
        # 37 KiB: the HTTP thread inflates what the trailer allows, stops, and the pool
        # prepares it again with all of it
        raw = json.dumps(self.large_report("understated", 50)).encode()
        self.assertGreater(len(raw), 24 * 1024)
        body = gzip.compress(raw[:-1024], mtime=0) + gzip.compress(raw[-1024:], mtime=0)
        before = self.pool_switches(d.pid)
        r = d.post(body, "application/tlsrpt+gzip")
        self.assertEqual(r.status, 201, r.body)
        self.assertGreater(self.pool_switches(d.pid) - before, 0)
        self.stop_ok(d)

        ids = report_ids(self.db)
        self.assertEqual(len(ids), 1 + 200 + 2)
        self.assertEqual(ids[-2:], ["large", "understated"])
        # every policy of both was stored: the large report has three policies for each
        # domain, the other one for d0000..d0049
        sessions = doc["policies"][0]["summary"]["total-successful-session-count"]
        for domain, policies in (("d0049", 4), ("d0099", 3)):
            totals = T.totals(self.db, "--domain", domain + ".mail.example")
            self.assertEqual(totals["successful_sessions"], policies * sessions, domain)


# ---- 6. SIGTERM under load ------------------------------------------------------------------


class Shutdown(ServeTestCase):
    CLIENTS = 64

    def test_sigterm_under_load_loses_no_acknowledged_report(self):
        d = self.start_daemon(tls=True, args=["--rate-limit", "0",
                                              "--max-connections-per-ip", "512"])
        lock = threading.Lock()
        answers = []  # (report_id, status, curl rc)
        stop = threading.Event()

        def client(c):
            i = 0
            while not stop.is_set():
                rid = "term-%02d-%05d" % (c, i)
                r = d.post(report_bytes(rid), timeout=int(30 * SLOW))
                with lock:
                    answers.append((rid, r.status, r.rc))
                i += 1
                if r.status is None or r.status == 503:
                    # refused (the listener is closed) or told to go away: the daemon is
                    # stopping; keep trying a little so late requests are exercised too
                    if not d.running():
                        return
                    time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(c,), daemon=True)
                   for c in range(self.CLIENTS)]
        for t in threads:
            t.start()
        wait_until(lambda: sum(1 for a in answers if a[1] == 201) >= 200, 30 * SLOW)
        acked_before = sum(1 for a in answers if a[1] == 201)
        self.assertGreater(acked_before, 0, "no report acknowledged before SIGTERM")
        t_term = time.monotonic()
        rc = d.stop()
        t_exit = time.monotonic()
        stop.set()
        for t in threads:
            t.join(CURL_TIMEOUT + 30)
        self.assertEqual(rc, 0, "exit code after SIGTERM under load\n%s" % d.log()[-4000:])
        self.assertLess(t_exit - t_term, 10 + 5 * SLOW, "shutdown took %.1f s" % (t_exit - t_term))
        acked = {rid for rid, st, _ in answers if st == 201}
        statuses = {st for _, st, _ in answers}
        sys.stderr.write("\n  [shutdown] %d answers: %d acked (%d before SIGTERM), statuses %r, "
                         "curl exit codes %r, %.1f s to exit\n" %
                         (len(answers), len(acked), acked_before,
                          {st: sum(1 for a in answers if a[1] == st) for st in statuses},
                          sorted({a[2] for a in answers}), t_exit - t_term))
        self.assertLessEqual(statuses, {201, 503, None}, "unexpected answers: %r" % statuses)
        stored = set(report_ids(self.db))
        missing = sorted(acked - stored)
        self.assertEqual(missing, [], "%d acknowledged (201) reports are not in the database" %
                         len(missing))
        self.assertGreaterEqual(len(stored), len(acked))
        self.assertLessEqual(stored, {rid for rid, _, _ in answers},
                             "the database holds a report nobody sent")
        self.assertIn("SIGTERM", d.log())

    def test_sigterm_finishes_an_upload_in_flight(self):
        """A request whose body is still arriving at SIGTERM is finished: stored, answered
        201, and the daemon exits 0 afterwards; a new connection is refused meanwhile."""
        d = self.start_daemon(args=["--rate-limit", "0", "--shutdown-timeout", "20"])
        body = report_bytes("in-flight")
        s = socket.create_connection(("127.0.0.1", d.port), timeout=30 * SLOW)
        try:
            s.sendall(b"POST /tlsrpt/in-flight HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/tlsrpt+json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            s.sendall(body[:100])
            time.sleep(0.5 * SLOW)  # the request has started (headers and part of the body)
            d.signal(signal.SIGTERM)
            time.sleep(1.0 * SLOW)
            self.assertTrue(d.running(), "exited with a request in flight\n%s" % d.log())
            late = d.post(report_bytes("after-sigterm"), timeout=int(10 * SLOW))
            self.assertIn(late.status, (None, 503), "a new request after SIGTERM: %r" % late)
            s.sendall(body[100:])
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        finally:
            s.close()
        st, _, answer = parse_http_response(b"".join(chunks))
        self.assertEqual(st, 201, answer)
        self.assertEqual(json.loads(answer)["reports"][0]["report-id"], "in-flight")
        rc = d.stop()
        self.assertEqual(rc, 0, d.log())
        self.assertEqual(report_ids(self.db), ["in-flight"])

    def test_sigkill_loses_no_acknowledged_report(self):
        """A 201 is sent only after the commit: even SIGKILL right after acknowledgements
        loses none of them."""
        d = self.start_daemon(tls=True, args=["--rate-limit", "0",
                                              "--max-connections-per-ip", "512"])
        lock = threading.Lock()
        answers = []
        stop = threading.Event()

        def client(c):
            i = 0
            while not stop.is_set() and d.running():
                rid = "kill-%02d-%05d" % (c, i)
                r = d.post(report_bytes(rid), timeout=int(30 * SLOW))
                with lock:
                    answers.append((rid, r.status))
                i += 1

        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(16)]
        for t in threads:
            t.start()
        wait_until(lambda: sum(1 for a in answers if a[1] == 201) >= 150, 30 * SLOW)
        d.proc.kill()
        d.proc.wait(30)
        stop.set()
        for t in threads:
            t.join(CURL_TIMEOUT + 30)
        acked = {rid for rid, st in answers if st == 201}
        self.assertGreater(len(acked), 0)
        stored = set(report_ids(self.db))
        self.assertEqual(sorted(acked - stored), [],
                         "acknowledged reports lost by SIGKILL: answered before commit?")


# ---- 7. storage unavailable -----------------------------------------------------------------


# The answers without a spool (spool_dir = off): 503 and Retry-After while storage is down.
# With one (the default) they are 202; the spool has its own tests.
NO_SPOOL = ["--spool-dir", "off"]


class Storage(ServeTestCase):
    def test_locked_database_503_then_recovers(self):
        d = self.start_daemon(tls=True, args=NO_SPOOL + ["--busy-timeout", "200",
                                                         "--rate-limit", "0"])
        self.assertStored(d.post(report_bytes("before-lock")), "before-lock")
        body = report_bytes("during-lock")
        lock = T.WriteLock(self.db)
        self.addCleanup(lock.release)
        try:
            for _ in range(3):
                r = d.post(body)
                b = self.assertJsonError(r, 503)
                self.assertRetryAfter(r)
                self.assertIn("storage", b["error"], r)
                self.assertLess(r.elapsed, 10 * SLOW, "503 took %.1f s" % r.elapsed)
                # the sender was told to retry: nothing was stored or quarantined
                self.assertEqual(T.counts(self.db), {"reports": 1, "quarantine": 0})
        finally:
            lock.release()
        r = d.post(body)
        self.assertStored(r, "during-lock")
        self.assertStatus(d.post(body), 200)
        self.assertEqual(sorted(report_ids(self.db)), ["before-lock", "during-lock"])
        log = d.log()
        self.assertIn("storage unavailable", log)
        self.assertRegex(log, r'"POST /tlsrpt" 503 ')
        self.stop_ok(d)

    def mount_tmpfs(self, size):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        mnt = self.path("mnt")
        os.mkdir(mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            self.skipTest("cannot mount a tmpfs in this sandbox: %s" % p.stdout.decode().strip())
        # registered first, so it runs after the daemon's cleanup (LIFO)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        return mnt

    @T.sqlite_only("the file system under the database file made read-only")
    def test_read_only_filesystem_503_then_recovers(self):
        mnt = self.mount_tmpfs("64m")
        db = os.path.join(mnt, "tlsrptd.db")
        d = self.start_daemon(tls=True, db=db, args=NO_SPOOL + ["--busy-timeout", "200",
                                                                "--rate-limit", "0"])
        self.assertStored(d.post(report_bytes("before-ro")), "before-ro")
        p = subprocess.run(["mount", "-o", "remount,ro", mnt], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if p.returncode != 0:
            self.stop_ok(d)
            self.skipTest("cannot make the database read-only under the running daemon: "
                          "`mount -o remount,ro` fails (%s) because Linux refuses to make a "
                          "filesystem read-only while a process holds files on it open for "
                          "writing; test_disk_full_503_then_recovers covers a real OS-level "
                          "write failure instead" % p.stdout.decode().strip())
        try:
            r = d.post(report_bytes("during-ro"))
            self.assertJsonError(r, 503)
            self.assertRetryAfter(r)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", mnt])
        self.assertStored(d.post(report_bytes("during-ro")), "during-ro")
        self.stop_ok(d)

    @T.sqlite_only("the file system under the database file full")
    def test_disk_full_503_then_recovers(self):
        mnt = self.mount_tmpfs("4m")
        db = os.path.join(mnt, "tlsrptd.db")
        d = self.start_daemon(tls=True, db=db, args=NO_SPOOL + ["--busy-timeout", "200",
                                                                "--rate-limit", "0"])
        self.assertStored(d.post(report_bytes("before-full")), "before-full")
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(bytes(64 * 1024))
                    f.flush()
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)
        try:
            # every report is different and comes with some policy strings: new pages needed
            big = T.sample_report()
            big["policies"][0]["policy"]["policy-string"] = ["mx: mx%d.mail.example" % i
                                                             for i in range(1000)]
            body_full = json.dumps(dict(big, **{"report-id": "during-full"})).encode()
            r = d.post(body_full)
            b = self.assertJsonError(r, 503)
            self.assertRetryAfter(r)
            self.assertIn("storage", b["error"], r)
        finally:
            os.unlink(filler)
        r = d.post(body_full)
        self.assertStored(r, "during-full")
        self.assertEqual(sorted(report_ids(db)), ["before-full", "during-full"])
        self.assertEqual(T.quarantine(db), [], "a report refused with 503 was quarantined")
        self.assertIn("storage available again", d.log())
        self.stop_ok(d)

    @T.sqlite_only("the file system under the database file filling up")
    def test_disk_filling_under_load_loses_no_acknowledged_report(self):
        """Senders POST large reports until the filesystem is full: group commits fail in the
        middle; every 201 must be in the database, the rest answered 503 (retry), and after
        the filesystem grows (tmpfs resized online) the daemon stores again."""
        mnt = self.mount_tmpfs("3m")
        db = os.path.join(mnt, "tlsrptd.db")
        d = self.start_daemon(tls=True, db=db, args=NO_SPOOL + [
            "--busy-timeout", "200", "--rate-limit", "0", "--max-connections-per-ip", "512"])
        big = T.sample_report()
        lock = threading.Lock()
        answers = []
        stop = threading.Event()

        def client(c):
            i = 0
            while not stop.is_set():
                rid = "fill-%02d-%05d" % (c, i)
                rep = dict(big, **{"report-id": rid})
                rep["policies"] = [dict(big["policies"][0])]
                rep["policies"][0]["policy"] = dict(rep["policies"][0]["policy"])
                rep["policies"][0]["policy"]["policy-string"] = [
                    "mx: %s-%d.example" % (os.urandom(8).hex(), k) for k in range(300)]
                r = d.post(json.dumps(rep).encode())
                with lock:
                    answers.append((rid, r.status))
                i += 1

        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(12)]
        for t in threads:
            t.start()
        full = wait_until(lambda: sum(1 for a in answers if a[1] == 503) >= 30, 120 * SLOW)
        stop.set()
        for t in threads:
            t.join(CURL_TIMEOUT + 30)
        self.assertTrue(full, "the filesystem never filled up: %d answers" % len(answers))
        statuses = {st for _, st in answers}
        self.assertLessEqual(statuses, {201, 503}, "unexpected answers while the disk filled")
        acked = {rid for rid, st in answers if st == 201}
        refused = {rid for rid, st in answers if st == 503}
        self.assertGreater(len(acked), 0)
        stored = set(report_ids(db))
        sys.stderr.write("\n  [disk full] %d answered 201, %d answered 503, %d rows\n" %
                         (len(acked), len(refused), len(stored)))
        self.assertEqual(sorted(acked - stored), [],
                         "reports answered 201 are missing after the disk filled")
        self.assertEqual(T.quarantine(db), [])
        # more room: the same daemon stores again (the refused reports, as senders retry)
        subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
        retry = sorted(refused)[:5]
        for rid in retry:
            rep = dict(big, **{"report-id": rid})
            r = d.post(json.dumps(rep).encode())
            self.assertIn(r.status, (201, 200), r)
        self.assertLessEqual(set(retry), set(report_ids(db)))
        self.stop_ok(d)

    # -- PostgreSQL: the server stops and starts again under the daemon --------------------

    @T.postgresql_only("the server stopped (pg_ctl stop) and started again")
    def test_postgresql_stopped_503_then_recovers(self):
        """The database server goes away under a running daemon: POSTs get 503 with
        Retry-After, /healthz 503 with the reason; once the server is back, a sender that
        keeps retrying (a POST every half second, so the daemon is never idle) is stored
        without a restart, and the read side answers again. The database URI holds a
        password: no answer and no log line shows it."""
        cluster = T.PrivateCluster(self.tmp)
        self.addCleanup(cluster.stop)
        db = cluster.new_db("serve", password=True)
        self.assertIn(T.PG_PASSWORD, db)
        answers = []
        d = self.start_daemon(db=db, args=NO_SPOOL + ["--busy-timeout", "200",
                                                      "--rate-limit", "0"])
        self.assertStored(d.post(report_bytes("before-stop")), "before-stop")
        cluster.pause()
        body = report_bytes("during-stop")
        r = d.post(body)
        b = self.assertJsonError(r, 503)
        self.assertRetryAfter(r)
        self.assertIn("storage", b["error"], r)
        health = d.get("/healthz")
        self.assertStatus(health, 503)
        self.assertIn(T.pg_dbname(db), health.json().get("reason", ""), health)
        answers += [r, health]
        time.sleep(2.5)  # the writer has tried to connect again, and failed
        r = d.post(body)
        self.assertJsonError(r, 503)
        answers += [r, d.get("/healthz"), d.get("/metrics"), d.get("/api/v1/summary")]
        cluster.resume()
        t0 = time.monotonic()
        while True:
            r = d.post(body)
            answers.append(r)
            if r.status != 503 or time.monotonic() - t0 > 30 * SLOW:
                break
            time.sleep(0.5)
        self.assertStored(r, "during-stop")
        sys.stderr.write("\n  [postgresql restart] stored again %.1f s after the server was "
                         "back\n" % (time.monotonic() - t0))
        self.assertTrue(wait_until(lambda: d.get("/healthz").status == 200, 10 * SLOW),
                        d.log()[-3000:])
        r = d.get("/api/v1/reports")
        self.assertStatus(r, 200)
        self.assertEqual(sorted(x["report_id"] for x in r.json()["reports"]),
                         ["before-stop", "during-stop"])
        self.assertIn("storage available again", d.log())
        self.stop_ok(d)
        self.assertEqual(report_ids(db), ["before-stop", "during-stop"])
        for a in answers:
            self.assertNotIn(T.PG_PASSWORD.encode(), a.body, a)
        self.assertNotIn(T.PG_PASSWORD, d.log())

    # -- issue 10, defect 3: a database file the service cannot write ----------------------

    def read_only_setup(self):
        """(user args, a data directory the service may write, how to make it read-only,
        how to give it back). As root the daemon runs as nobody (--user), else as us."""
        data = self.path("data")
        os.mkdir(data)
        if os.geteuid() != 0:
            def lock():
                for p in glob_db(data):
                    os.chmod(p, 0o444)
                os.chmod(data, 0o555)

            def unlock():
                os.chmod(data, 0o755)
                for p in glob_db(data):
                    os.chmod(p, 0o644)
            return [], data, lock, unlock
        import pwd
        nobody = pwd.getpwnam("nobody")
        os.chmod(self.tmp, 0o755)
        os.chown(data, nobody.pw_uid, nobody.pw_gid)

        def lock():  # the operator's mistake: root's files, the service cannot write
            for p in [data] + glob_db(data):
                os.chown(p, 0, 0)
            os.chmod(data, 0o755)
            os.chmod(os.path.join(data, "tlsrptd.db"), 0o644)

        def unlock():
            for p in [data] + glob_db(data):
                os.chown(p, nobody.pw_uid, nobody.pw_gid)
        return ["--user", "nobody"], data, lock, unlock

    @T.sqlite_only("the modes and owner of the database file and its directory")
    def test_unwritable_database_is_unhealthy_then_recovers(self):
        user, data, lock, unlock = self.read_only_setup()
        db = os.path.join(data, "tlsrptd.db")
        d = self.start_daemon(db=db, args=user + NO_SPOOL + ["--busy-timeout", "200",
                                                            "--rate-limit", "0"])
        self.assertStored(d.post(report_bytes("writable")), "writable")
        lock()
        # the writer checks writability: /healthz says why (owner and mode) ...
        self.assertTrue(wait_until(lambda: d.get("/healthz").status == 503, 20 * SLOW),
                        "/healthz still 200 for a read-only database\n" + d.log()[-3000:])
        health = d.get("/healthz")
        reason = health.json().get("reason", "")
        self.assertIn(db, reason, health)
        self.assertRegex(reason, r"owned by \S+:\S+ mode 0[0-7]{3}", health)
        # ... and a sender is told to retry, nothing is stored
        r = d.post(report_bytes("read-only"))
        self.assertJsonError(r, 503)
        self.assertRetryAfter(r)
        unlock()
        # writable again: healthy and storing, without a restart
        self.assertTrue(wait_until(lambda: d.get("/healthz").status == 200, 20 * SLOW),
                        "/healthz not 200 after the database became writable\n" +
                        d.log()[-3000:])
        self.assertStored(d.post(report_bytes("read-only")), "read-only")
        self.stop_ok(d)
        self.assertEqual(report_ids(db), ["writable", "read-only"])

    @T.sqlite_only("the modes and owner of the database file and its directory")
    def test_unwritable_database_at_start_is_exit_78(self):
        user, data, lock, unlock = self.read_only_setup()
        db = os.path.join(data, "tlsrptd.db")
        self.assertExit(self.ingest(T.sample("report.json"), db=db), T.EX_OK)
        lock()
        res = T.run(["serve", "--listen", "127.0.0.1:%d" % free_port(), "--db", db] + user,
                    timeout=60 * SLOW)
        self.assertExit(res, 78)
        self.assertIn(db, res.err)
        self.assertRegex(res.err, r"owned by \S+:\S+ mode 0[0-7]{3}", res)


# ---- 8. TLS versions ------------------------------------------------------------------------


def tls_client_ctx(minimum, maximum, cafile=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 on purpose
        ctx.minimum_version = minimum
        ctx.maximum_version = maximum
    if maximum < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 needs it for TLS 1.0/1.1
    return ctx


def tls_handshake(port, ctx):
    """The negotiated version, or the connection/handshake error."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20 * SLOW)
    except OSError as e:
        return e
    try:
        ss = ctx.wrap_socket(s, server_hostname="localhost")
        v = ss.version()
        ss.close()
        return v
    except (ssl.SSLError, OSError) as e:
        return e
    finally:
        s.close()


class Tls(ServeTestCase):
    def test_tls12_and_tls13_work_tls11_fails(self):
        cert, key, _ = self.cert()
        d = self.start_daemon(tls=True, args=["--rate-limit", "0"])
        V = ssl.TLSVersion
        for name, lo, hi, curl_opts in (("TLSv1.2", V.TLSv1_2, V.TLSv1_2,
                                         ["--tlsv1.2", "--tls-max", "1.2"]),
                                        ("TLSv1.3", V.TLSv1_3, V.TLSv1_3,
                                         ["--tlsv1.3", "--tls-max", "1.3"])):
            with self.subTest(version=name):
                self.assertEqual(tls_handshake(d.port, tls_client_ctx(lo, hi)), name)
                r = d.get("/healthz", opts=curl_opts)
                self.assertStatus(r, 200)
                rid = "over-" + name
                self.assertStored(d.post(report_bytes(rid), opts=curl_opts), rid)

        # Positive control: the same TLS 1.1 clients DO connect to a server that allows it,
        # so the refusal below is tlsrptd's doing.
        ctl_port = free_port()
        ctl = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % ctl_port,
                                "-cert", cert, "-key", key, "-tls1_1", "-cipher",
                                "DEFAULT:@SECLEVEL=0", "-www", "-quiet"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            old = tls_client_ctx(V.TLSv1, V.TLSv1_1)
            ok = wait_until(lambda: tls_handshake(ctl_port, old) == "TLSv1.1", 10)
            control_ok = ok is True or ok == "TLSv1.1"
            curl11 = ["--tlsv1.0", "--tls-max", "1.1", "--ciphers", "DEFAULT@SECLEVEL=0", "-k"]
            rc_ctl = curl("https://127.0.0.1:%d/" % ctl_port, opts=curl11, timeout=20).status
        finally:
            ctl.terminate()
            ctl.wait(10)
        self.assertTrue(control_ok, "control: python cannot speak TLS 1.1 to openssl s_server")
        self.assertEqual(rc_ctl, 200, "control: curl cannot speak TLS 1.1 to openssl s_server")

        res = tls_handshake(d.port, tls_client_ctx(V.TLSv1, V.TLSv1_1))
        self.assertIsInstance(res, Exception, "a TLS <= 1.1 client negotiated %r" % (res,))
        r = d.get("/healthz", opts=curl11)
        self.assertIsNone(r.status, "curl limited to TLS 1.1 got an answer: %r" % r)
        self.assertEqual(r.rc, 35, "curl should fail in the TLS handshake (35): %r" % r)
        # the daemon survives refused handshakes
        self.assertStatus(d.get("/healthz"), 200)
        self.stop_ok(d)


# ---- 9. SIGHUP ------------------------------------------------------------------------------


def peer_cert_sha256(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20 * SLOW)
    except OSError as e:
        return "error: %s" % e
    try:
        ss = ctx.wrap_socket(s, server_hostname="localhost")
        der = ss.getpeercert(binary_form=True)
        ss.close()
        return hashlib.sha256(der).hexdigest()
    except (ssl.SSLError, OSError) as e:
        return "error: %s" % e
    finally:
        s.close()


class Sighup(ServeTestCase):
    def test_log_file_reopened(self):
        logf = self.path("tlsrptd.log")
        d = self.start_daemon(tls=True, log_target=logf, args=["--rate-limit", "0"])
        self.assertStored(d.post(report_bytes("before-rotate"), path="/tlsrpt/before-rotate"))
        self.assertTrue(wait_until(lambda: "/tlsrpt/before-rotate" in read_text(logf), 10))
        os.rename(logf, logf + ".1")
        d.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: os.path.exists(logf), 10 * SLOW),
                        "no new log file after SIGHUP\n%s" % d.log())
        self.assertStored(d.post(report_bytes("after-rotate"), path="/tlsrpt/after-rotate"))
        self.assertTrue(wait_until(lambda: "/tlsrpt/after-rotate" in read_text(logf), 10),
                        "the new log file lacks the new request\n%s" % read_text(logf))
        new = read_text(logf)
        old = read_text(logf + ".1")
        self.assertRegex(new, r'"POST /tlsrpt/after-rotate" 201 ')
        self.assertNotIn("/tlsrpt/before-rotate", new)
        self.assertIn("/tlsrpt/before-rotate", old)
        self.assertNotIn("/tlsrpt/after-rotate", old)
        self.assertTrue(d.running())
        self.stop_ok(d)
        self.assertIn("stopped", read_text(logf))

    def test_log_rotation_under_load_loses_no_line(self):
        """Rotations (rename + SIGHUP) while senders POST: every request has exactly one
        line in one of the files, and answers are never mixed with log text."""
        logf = self.path("busy.log")
        d = self.start_daemon(log_target=logf, args=["--rate-limit", "0",
                                                     "--max-connections-per-ip", "512"])
        loops = [ClientLoop(d, "rotate-%d" % i) for i in range(8)]
        for lp in loops:
            lp.start()
        try:
            for i in range(20):
                time.sleep(0.2)
                os.rename(logf, "%s.%02d" % (logf, i))
                d.signal(signal.SIGHUP)
                self.assertTrue(wait_until(lambda: os.path.exists(logf), 10 * SLOW),
                                "no new log file after SIGHUP #%d" % (i + 1))
        finally:
            for lp in loops:
                lp.stop()
        self.stop_ok(d)
        results = [r for lp in loops for r in lp.results]
        self.assertEqual({r[2] for r in results}, {201})
        text = "".join(read_text(os.path.join(self.tmp, n)) for n in sorted(os.listdir(self.tmp))
                       if n.startswith("busy.log"))
        lines = [ln for ln in text.splitlines() if '"POST /tlsrpt" 201 ' in ln]
        self.assertEqual(len(lines), len(results),
                         "%d requests answered 201, %d log lines for them" %
                         (len(results), len(lines)))
        self.assertEqual(len(re.findall(r"SIGHUP: log reopened", text)), 20)

    def test_certificate_reloaded(self):
        c1, k1, h1 = make_cert(self.tmp, "one", "tlsrptd-one")
        c2, k2, h2 = make_cert(self.tmp, "two", "tlsrptd-two")
        self.assertNotEqual(h1, h2)
        live_c, live_k = self.path("live.crt"), self.path("live.key")
        shutil.copy(c1, live_c)
        shutil.copy(k1, live_k)
        d = self.start_daemon(tls=True, cert=(live_c, live_k), args=["--rate-limit", "0"])
        self.assertEqual(peer_cert_sha256(d.port), h1)
        pid = d.pid
        for i, (c, k, h) in enumerate(((c2, k2, h2), (c1, k1, h1), (c2, k2, h2))):
            with self.subTest(reload=i):
                # replace the files the way a renewal does (new file, rename over the old)
                shutil.copy(c, live_c + ".new")
                shutil.copy(k, live_k + ".new")
                os.replace(live_k + ".new", live_k)
                os.replace(live_c + ".new", live_c)
                d.signal(signal.SIGHUP)
                got = wait_until(lambda: peer_cert_sha256(d.port) == h, 15 * SLOW, 0.2)
                self.assertTrue(got, "after SIGHUP #%d new connections still see %s\n%s" %
                                (i + 1, peer_cert_sha256(d.port), d.log()[-3000:]))
                self.assertTrue(d.running())
                self.assertEqual(d.pid, pid)
                r = d.get("/healthz", cacert=c)
                self.assertStatus(r, 200)
                other = c1 if c == c2 else c2
                r = d.get("/healthz", cacert=other)
                self.assertIsNone(r.status, r)
                self.assertEqual(r.rc, 60, "curl trusting only the old certificate: %r" % r)
                rid = "after-reload-%d" % i
                self.assertStored(d.post(report_bytes(rid), cacert=c), rid)
        self.assertEqual(len(re.findall(r"certificate and key reloaded", d.log())), 3, d.log())
        self.stop_ok(d)
        self.assertEqual(sorted(report_ids(self.db)), ["after-reload-%d" % i for i in range(3)])

    def test_repeated_reloads_under_cpu_pressure_never_abort(self):
        """Many SIGHUPs (TLS reload), each right after a connection, while the CPUs are busy
        (as on a loaded host): the daemon must survive every one and keep answering."""
        d = self.start_daemon(tls=True, args=["--rate-limit", "0"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                   for _ in range(os.cpu_count() or 2)]
        failures = []
        rounds = 0
        t0 = time.monotonic()
        try:
            # at least 20 s, and at least 600 rounds unless that takes over 45 s
            while time.monotonic() - t0 < 20 or (rounds < 600 and time.monotonic() - t0 < 45):
                if not d.running():
                    break
                i = rounds
                rounds += 1
                try:
                    s = socket.create_connection(("127.0.0.1", d.port), timeout=20 * SLOW)
                    ctx.wrap_socket(s, server_hostname="localhost").close()
                except OSError as e:
                    failures.append((i, repr(e)))
                d.signal(signal.SIGHUP)
        finally:
            for b in burners:
                b.kill()
                b.wait()
        time.sleep(1.0 * SLOW)
        self.assertTrue(d.running(), "tlsrptd serve died during %d TLS reloads (rc %s):\n%s" %
                        (rounds, d.proc.poll(), d.log()[-2000:]))
        self.assertEqual(failures, [], "connections failed around reloads")
        self.assertStatus(d.get("/healthz"), 200)
        self.stop_ok(d)

    def test_certificate_reload_under_load(self):
        """SIGHUPs while senders keep POSTing: nobody is refused or left unanswered."""
        d, certs = self.start_with_two_certs()
        (c1, k1, h1), (c2, k2, h2), (live_c, live_k, _) = certs["one"], certs["two"], certs["live"]
        loops = [ClientLoop(d, "reload-load-%d" % i) for i in range(8)]
        for lp in loops:
            lp.start()
        try:
            for i in range(6):
                c, k, h = (c2, k2, h2) if i % 2 == 0 else (c1, k1, h1)
                shutil.copy(c, live_c + ".new")
                shutil.copy(k, live_k + ".new")
                os.replace(live_k + ".new", live_k)
                os.replace(live_c + ".new", live_c)
                d.signal(signal.SIGHUP)
                got = wait_until(lambda: peer_cert_sha256(d.port) == h, 15 * SLOW, 0.2)
                self.assertTrue(got, "reload %d not seen\n%s" % (i + 1, d.log()[-3000:]))
                time.sleep(0.5)
        finally:
            for lp in loops:
                lp.stop()
        results = [r for lp in loops for r in lp.results]
        bad = [r for r in results if r[2] != 201]
        self.assertGreater(len(results), 20)
        self.assertEqual(bad, [], "%d of %d requests failed around certificate reloads" %
                         (len(bad), len(results)))
        self.assertTrue(d.running())
        self.stop_ok(d)
        self.assertEqual(sorted(report_ids(self.db)), sorted(r[3] for r in results))


# ---- 10. logging ----------------------------------------------------------------------------


class Logging(ServeTestCase):
    def exercise(self, d):
        """Four requests with known outcomes; returns the bodies' sizes."""
        gz = T.read_bytes(T.sample("report.json.gz"))
        r1 = d.post(gz, "application/tlsrpt+gzip", path="/tlsrpt/log-stored")
        self.assertStored(r1)
        r2 = d.post(gz, "application/tlsrpt+gzip", path="/tlsrpt/log-dup")
        self.assertStatus(r2, 200)
        self.assertStatus(d.post(b"{}", "application/tlsrpt+json", path="/tlsrpt/log-bad"), 400)
        self.assertStatus(d.get("/log-missing"), 404)
        return len(gz), r1.json()["reports"][0]["id"]

    def check_entries(self, entries, size, db_id):
        """entries: {path: dict with client, method, path, status, bytes, outcome, latency}."""
        for p in ("/tlsrpt/log-stored", "/tlsrpt/log-dup", "/tlsrpt/log-bad", "/log-missing"):
            self.assertIn(p, entries, "no log line for %s" % p)
        e = entries["/tlsrpt/log-stored"]
        self.assertEqual((e["client"], e["method"], int(e["status"]), int(e["bytes"])),
                         ("127.0.0.1", "POST", 201, size))
        self.assertIn("stored", e["outcome"])
        self.assertTrue("id=%d" % db_id in e["outcome"] or GZ_REPORT_ID in e["outcome"],
                        "the outcome names neither the stored id nor the report-id: %r" % e)
        self.assertGreaterEqual(float(e["latency"]), 0.0)
        e = entries["/tlsrpt/log-dup"]
        self.assertEqual((int(e["status"]), int(e["bytes"])), (200, size))
        self.assertIn("duplicate", e["outcome"])
        e = entries["/tlsrpt/log-bad"]
        self.assertEqual((e["method"], int(e["status"]), int(e["bytes"])), ("POST", 400, 2))
        self.assertRegex(e["outcome"], r"organization-name|report-id|date-range|policies",
                         "the 400 outcome gives no reason: %r" % e)
        e = entries["/log-missing"]
        self.assertEqual((e["method"], int(e["status"])), ("GET", 404))
        self.assertIn("not found", e["outcome"])

    def test_text_lines(self):
        logf = self.path("text.log")
        d = self.start_daemon(log_target=logf, args=["--rate-limit", "0"])
        size, db_id = self.exercise(d)
        self.stop_ok(d)
        entries = {}
        for ln in read_text(logf).splitlines():
            m = TEXT_LINE_RE.match(ln)
            if m:
                self.assertNotIn(m.group("path"), entries, "two lines for one request: %s" % ln)
                entries[m.group("path")] = m.groupdict()
        self.assertEqual(len([p for p in entries if p != "/healthz"]), 4, entries)
        self.check_entries(entries, size, db_id)

    def test_json_lines(self):
        logf = self.path("json.log")
        d = self.start_daemon(log_target=logf, args=["--rate-limit", "0", "--log-format", "json"])
        size, db_id = self.exercise(d)
        self.stop_ok(d)
        lines = [ln for ln in read_text(logf).splitlines() if ln.strip()]
        self.assertGreater(len(lines), 4)
        entries = {}
        for ln in lines:
            try:
                obj = json.loads(ln)
            except ValueError:
                self.fail("log line is not JSON: %r" % ln)
            self.assertIsInstance(obj, dict, ln)
            if "path" in obj or "method" in obj:
                for k in ("client", "method", "path", "status", "bytes", "outcome"):
                    self.assertIn(k, obj, "request line lacks %r: %s" % (k, ln))
                lat = [k for k in obj if k.startswith("latency")]
                self.assertTrue(lat, "request line has no latency: %s" % ln)
                self.assertIsInstance(obj["status"], int, ln)
                self.assertIsInstance(obj["bytes"], int, ln)
                entries[obj["path"]] = dict(obj, latency=obj[lat[0]])
        self.assertEqual(len([p for p in entries if p != "/healthz"]), 4,
                         "expected one JSON object with the request keys per request; got %d "
                         "such lines among:\n%s" % (len(entries), "\n".join(lines[:12])))
        self.check_entries(entries, size, db_id)


# ---- 11. privilege drop ---------------------------------------------------------------------


class PrivilegeDrop(ServeTestCase):
    def test_user_nobody(self):
        if os.geteuid() != 0:
            self.skipTest("not running as root")
        import pwd
        nobody = pwd.getpwnam("nobody")
        os.chown(self.tmp, nobody.pw_uid, nobody.pw_gid)
        cert, key, _ = self.cert()
        os.chmod(key, 0o600)  # readable by root only: read before the drop
        d = self.start_daemon(tls=True, args=["--user", "nobody", "--rate-limit", "0"])
        with open("/proc/%d/status" % d.pid) as f:
            status = f.read()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
        self.assertEqual(uids, [str(nobody.pw_uid)] * 4, status)
        self.assertEqual(gids, [str(nobody.pw_gid)] * 4, status)
        self.assertStored(d.post(report_bytes("as-nobody")), "as-nobody")
        if T.backend() == "sqlite":  # the file is made by the service's user
            self.assertEqual(os.stat(self.db).st_uid, nobody.pw_uid,
                             "database not created as nobody")
        self.assertEqual(report_ids(self.db), ["as-nobody"])
        self.assertIn("running as user nobody", d.log())
        self.stop_ok(d)


# ---- 12. config file ------------------------------------------------------------------------


class ConfigFile(ServeTestCase):
    def conf(self, text):
        return self.write("tlsrptd.conf", text)

    def test_config_file_and_flag_override(self):
        port = free_port()
        db = self.new_db("from-conf")
        conf = self.conf("# tlsrptd serve test config\n"
                         "listen = 127.0.0.1:%d\n"
                         "db = %s\n"
                         "\n"
                         "max_body = \"1M\"\n"
                         "rate_limit = 0\n" % (port, db))
        base = "http://127.0.0.1:%d" % port
        d = Daemon(self, ["serve", "-c", conf], base, name="conf").start()
        d.port = port
        self.assertTrue(d.wait_ready(), d.log())
        self.assertStored(d.post(report_bytes("from-conf")), "from-conf")
        self.assertEqual(report_ids(db), ["from-conf"])
        self.assertFalse(os.path.exists(self.path("tlsrptd.db")))
        self.stop_ok(d)

        # a flag overrides the file: --max-body smaller than the report gives 413
        d = Daemon(self, ["serve", "-c", conf, "--max-body", "100"], base, name="conf2").start()
        d.port = port
        self.assertTrue(d.wait_ready(), d.log())
        r = d.post(report_bytes("too-big-by-flag"))
        b = self.assertJsonError(r, 413)
        self.assertIn("100", b.get("detail", ""))
        self.assertEqual(report_ids(db), ["from-conf"])
        self.stop_ok(d)

    def test_unknown_key_is_config_error(self):
        conf = self.conf("# comment\nlisten = 127.0.0.1:%d\nno_such_key = 1\n" % free_port())
        res = T.run(["serve", "-c", conf], timeout=60 * SLOW)
        self.assertExit(res, T.EX_CONFIG)
        self.assertIn("%s:3" % conf, res.err, res)
        self.assertIn("no_such_key", res.err, res)
        self.assertFalse(os.path.exists(self.path("tlsrptd.db")))

    @T.sqlite_only("the default database is the file ./tlsrptd.db (and one run at a time "
                   "may take port 8080)")
    def test_no_config_listens_on_127_0_0_1_8080(self):
        if not port_is_free(8080):
            self.skipTest("127.0.0.1:8080 is in use here; the default listener cannot be checked")
        d = Daemon(self, ["serve"], "http://127.0.0.1:8080", cwd=self.tmp, name="default").start()
        d.port = 8080
        if not d.wait_ready():
            self.fail("tlsrptd serve without config exited (rc %s)\n%s" % (d.stop(), d.log()))
        self.assertStored(d.post(report_bytes("default-listen")), "default-listen")
        # database ./tlsrptd.db in the working directory
        self.assertEqual(report_ids(os.path.join(self.tmp, "tlsrptd.db")), ["default-listen"])
        self.assertIn("listening on 127.0.0.1:8080 (http)", d.log())
        self.stop_ok(d)


@T.sqlite_only("tlsrptd syncs SQLite's log itself; a PostgreSQL commit is durable when it "
               "returns")
class DurableAnswers(ServeTestCase):
    """The writer commits a batch without waiting for the disk and stores the next one
    while a thread of its own syncs the log: a 201 must still go out only after the sync
    that put its report on disk. Seen from outside with strace: no answer is sent while a
    page written to the WAL before it waits for its sync."""

    def test_no_answer_before_its_commit_is_synced(self):
        trace = os.path.join(self.tmp, "serve.strace")
        d = self.start_daemon(prefix=T.strace_argv(trace))
        for i in range(8):  # one at a time: each answer awaited before the next request
            self.assertStored(d.post(report_bytes("durable-%d" % i)), "durable-%d" % i)
        tracee = int(subprocess.run(["pgrep", "-P", str(d.pid)], stdout=subprocess.PIPE,
                                    check=True).stdout.split()[0])
        os.kill(tracee, signal.SIGTERM)  # the daemon, not strace
        d.proc.wait(STOP_TIMEOUT)
        with open(trace, encoding="utf-8", errors="replace") as f:
            text = f.read()
        answers = len(re.findall(r"HTTP/1\.1 201", text))
        wal_syncs = len(re.findall(r"(fdatasync|fsync)\(\d+<[^>]*-wal>", text))
        self.assertEqual(answers, 8, "every 201 seen in the trace")
        self.assertGreaterEqual(wal_syncs, 8, "a sync of the WAL per commit")
        self.assertEqual(T.unsynced_acknowledgements(trace, r"HTTP/1\.1 201"), [])
        self.assertEqual(T.totals(self.db)["reports"], 8)


if __name__ == "__main__":
    T.main()
