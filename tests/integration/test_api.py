#!/usr/bin/env python3
"""The read side of `tlsrptd serve` (docs/http.md, the summary JSON of the README): GET /api/v1/summary,
GET /api/v1/reports, who may ask, and GET /metrics, driven from outside with the
REAL binary, a REAL curl and real databases (SQLite, or PostgreSQL with
TLSRPTD_BACKEND=postgresql; the shared corpus ingested once per class).

  Api         /api/v1/summary == `tlsrptd summary --format json` for the same options
              (json.loads of both); /api/v1/reports == `summary --reports --format
              json` (but for its limit/offset keys), paging; 400 naming a bad
              parameter, 404 for other /api/ paths, 405 for other methods
  Token       --api-token: 401 (with WWW-Authenticate) without or with a wrong
              token, 200 with the right one; /metrics too; /healthz and POST /tlsrpt not
  Loopback    without a token /api/ and /metrics answer loopback clients only: a
              client connecting FROM 192.0.2.10 gets 403, one from 127.0.0.1 gets 200
  Metrics     `promtool check metrics` passes; sessions, failed sessions and stored
              reports equal the summary's totals; POSTs counted by status code and in
              the duration histogram; the Maildir backlog; the database size

How the non-loopback client is made (root only; Debian package iproute2): a private
network namespace (`ip netns add`), its lo up with a second address 192.0.2.10/32
(TEST-NET-1, not loopback). Daemon and curl run inside it (`ip netns exec`); curl
--interface 192.0.2.10 makes the connection come FROM 192.0.2.10, so tlsrptd sees a
non-loopback peer, while 127.0.0.1 in the same namespace is a loopback peer. Nothing
outside the namespace is changed; the namespace is deleted in tearDown, and ones left
by a crashed earlier run (their pid gone) are deleted first. A dummy interface in the
main namespace (the first idea) needs the dummy kernel module, which containers often
lack. Not root: those tests are skipped (they need CAP_NET_ADMIN).

The Maildir backlog is made observable by holding the database's write lock from
the test (T.WriteLock: SQLite's BEGIN EXCLUSIVE, or PostgreSQL table locks that let
readers read) while messages arrive: `serve --maildir` then leaves them in new/
(storage unavailable, retried), /metrics (a reader) shows 3; after the lock is
released they are stored and the backlog is 0.

In the network namespace the daemon reaches a PostgreSQL database through the
cluster's Unix socket (T.socket_db): 127.0.0.1 there is another loopback.

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_api.py [-k NAME]
Needs curl, promtool (Debian package prometheus) and, for the loopback tests, root
and ip (iproute2).
"""
import calendar
import email.policy
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

SLOW = T.SLOW

CORPUS = None
TOKEN = "s3cr3t-T0ken_for-tlsrptd-it"
NS_PREFIX = "tlsrptd-it-"
NS_ADDR = "192.0.2.10"  # TEST-NET-1: not loopback
T_2024_06_01 = 1717200000  # 2024-06-01T00:00:00Z

for _tool in ("curl", "promtool"):
    if shutil.which(_tool) is None:
        raise RuntimeError("%s is not installed (Debian package %s)" %
                           (_tool, {"promtool": "prometheus"}.get(_tool, _tool)))


def setUpModule():
    global CORPUS
    CORPUS = T.corpus_dir()


free_port = T.free_port


# ---- HTTP with curl, the daemon (shared: tlsrptd_test) --------------------------------------

Resp, curl, Daemon, start_daemon = T.Resp, T.curl, T.Daemon, T.start_daemon


def cli_json(db, args):
    res = T.run(["summary", "--db", db, "--format", "json"] + list(args))
    if res.rc != 0:
        raise AssertionError("tlsrptd summary failed:\n%r" % res)
    return json.loads(res.out)


def query_to_cli(qs):
    """'a=1&b=2' -> ['--a', '1', '--b', '2'] (values URL-decoded)."""
    argv = []
    for k, v in urllib.parse.parse_qsl(qs, keep_blank_values=True):
        argv += ["--" + k, v]
    return argv


def ingest_corpus(db):
    res = T.run(["ingest", "--db", db, "--no-progress", "real"], cwd=CORPUS)
    if res.rc not in (T.EX_OK, T.EX_DATAERR):
        raise AssertionError("ingesting the corpus failed:\n%r" % res)
    return res


# ---- the API on the corpus -------------------------------------------------------------------


class CorpusDaemonCase(T.TlsrptdTestCase):
    """The corpus in one database, one `serve` on it for the whole class."""

    serve_args = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ctmp = tempfile.mkdtemp(prefix="tlsrptd-it-api-")
        cls.cdb = T.new_db(cls.ctmp, "corpus")
        ingest_corpus(cls.cdb)
        cls.daemon = None
        try:
            cls.daemon = start_daemon(cls.ctmp, ["--db", cls.cdb] + list(cls.serve_args))
        except BaseException:
            shutil.rmtree(cls.ctmp, True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.daemon is not None:
                rc = cls.daemon.stop()
                if rc != 0:
                    raise AssertionError("serve exited %d on SIGTERM\n%s" % (rc,
                                                                            cls.daemon.log()))
        finally:
            if cls.daemon is not None:
                cls.daemon.kill()
            shutil.rmtree(cls.ctmp, True)
            super().tearDownClass()

    def get(self, path, **kw):
        return self.daemon.get(path, **kw)

    def get_json(self, path, status=200, **kw):
        r = self.get(path, **kw)
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("content-type"), "application/json", r)
        return r.json()


class Api(CorpusDaemonCase):

    SUMMARY_QUERIES = [
        "",
        "by=domain",
        "by=day",
        "by=result-type",
        "by=reporter",
        "by=sending-ip",
        "by=mx-host",
        "by=policy-type",
        "by=reporter&top=3",
        "by=day&top=2",
        "top=1",
        "domain=example.com",
        "domain=krvtz.net&domain=xn--gpher-jua.test",
        "domain=%28none%29",
        "domain=EXAMPLE.COM.",
        "domain=no-such-domain.example",
        "since=2024-01-01",
        "until=2025-06-01",
        "since=2024-01-01&until=2025-06-01",
        "since=2024-01-09T00%3A00%3A00Z&until=2025-05-13T02%3A00%3A00%2B02%3A00",
        "since=2024-01-09T00:00:01Z",
        "domain=example.com&since=2020-01-01&until=2026-01-01&by=reporter",
        "domain=example.com&domain=krvtz.net&by=result-type&since=2023-01-01",
        "domain=company-y.example&by=mx-host",
        "by=sending-ip&top=2&domain=xn--gpher-jua.test",
    ]

    def test_summary_equals_cli(self):
        for qs in self.SUMMARY_QUERIES:
            with self.subTest(query=qs):
                got = self.get_json("/api/v1/summary" + ("?" + qs if qs else ""))
                want = cli_json(self.cdb, query_to_cli(qs))
                self.assertEqual(got, want)
        # the default is the the summary JSON of the README shape with the corpus' totals
        got = self.get_json("/api/v1/summary")
        exp = T.load_totals()
        self.assertEqual({k: got["totals"][k] for k in exp["totals"]}, exp["totals"])
        self.assertEqual(len(got["domains"]), len(exp["domains"]))

    def test_summary_sessions_only(self):
        """failures=0: the same groups and totals without the failures per result type."""
        for qs in ("by=domain", "by=day&since=2024-01-01", "by=domain&since=2024-01-01&limit=2",
                   "by=reporter", "by=result-type", "domain=example.com&by=day&fill=1"):
            with self.subTest(query=qs):
                full = self.get_json("/api/v1/summary?" + qs)
                got = self.get_json("/api/v1/summary?" + qs + "&failures=0")
                self.assertIs(got["filter"].pop("failures"), False)
                self.assertEqual(got["result_types"], {})
                for g in full["groups"] + full.get("domains", []) + [full["totals"]]:
                    g.pop("failures", None)
                full.pop("result_types")
                got.pop("result_types")
                self.assertEqual(got, full)
        self.assertEqual(self.get_json("/api/v1/summary?failures=1"),
                         self.get_json("/api/v1/summary"))
        err = self.get_json("/api/v1/summary?failures=none", status=400)
        self.assertIn("failures", json.dumps(err))

    def test_summary_relative_time_equals_cli(self):
        """since=ND: the same numbers; 'now' differs by the time between the calls. N is
        chosen so that the window starts at 2024-06-01, inside the corpus' dates."""
        days = int((time.time() - T_2024_06_01) // 86400)
        for qs in ("since=%dd" % days, "since=%dd&until=%dd" % (days + 900, days),
                   "until=%dw&by=day" % (days // 7)):
            with self.subTest(query=qs):
                got = self.get_json("/api/v1/summary?" + qs)
                want = cli_json(self.cdb, query_to_cli(qs))
                self.assertTrue(got["groups"], got)
                for key in ("since", "until"):
                    a, b = got["filter"].pop(key), want["filter"].pop(key)
                    self.assertEqual(a is None, b is None)
                    if a is not None:
                        ta = calendar.timegm(time.strptime(a, "%Y-%m-%dT%H:%M:%SZ"))
                        tb = calendar.timegm(time.strptime(b, "%Y-%m-%dT%H:%M:%SZ"))
                        self.assertLessEqual(abs(ta - tb), 60 * SLOW, (a, b))
                self.assertEqual(got, want)

    def reports_cli(self, args):
        res = T.run(["summary", "--db", self.cdb, "--reports", "--format", "json"] + args)
        self.assertExit(res, 0)
        return json.loads(res.out)

    def test_reports_equals_cli(self):
        for qs in ("", "domain=example.com", "domain=%28none%29",
                   "domain=krvtz.net&domain=random.net", "since=2025-01-01",
                   "domain=example.com&since=2024-01-01&until=2026-01-01",
                   "domain=no-such-domain.example"):
            with self.subTest(query=qs):
                got = self.get_json("/api/v1/reports" + ("?" + qs if qs else ""))
                want = self.reports_cli(query_to_cli(qs))
                self.assertEqual(got.pop("limit"), 100, "the default page")
                self.assertEqual(got.pop("offset"), 0)
                self.assertEqual(got, want)
                self.assertEqual(got["total"], len(got["reports"]))

    def test_reports_paging(self):
        full = self.reports_cli([])
        n = full["total"]
        self.assertEqual(n, T.load_totals()["totals"]["reports"])
        pages = []
        for offset in range(0, n + 5, 5):
            page = self.get_json("/api/v1/reports?limit=5&offset=%d" % offset)
            self.assertEqual((page["limit"], page["offset"], page["total"]), (5, offset, n))
            pages += page["reports"]
        self.assertEqual(pages, full["reports"])
        # --limit on the CLI is the API's first page
        page = self.get_json("/api/v1/reports?limit=7&domain=example.com")
        want = self.reports_cli(["--limit", "7", "--domain", "example.com"])
        page.pop("limit"), page.pop("offset")
        self.assertEqual(page, want)
        self.assertLessEqual(len(page["reports"]), 7)

    def test_bad_parameter_is_400_naming_it(self):
        cases = [
            ("/api/v1/summary?by=week", "by"),
            ("/api/v1/summary?by=", "by"),
            ("/api/v1/summary?since=yesterday", "since"),
            ("/api/v1/summary?since=2026-02-30", "since"),
            ("/api/v1/summary?until=2026-13-01", "until"),
            ("/api/v1/summary?since=2026-01-02&until=2026-01-01", "since"),
            ("/api/v1/summary?top=x", "top"),
            ("/api/v1/summary?top=-1", "top"),
            ("/api/v1/summary?domain=", "domain"),
            ("/api/v1/summary?domain=" + "a" * 300, "domain"),
            ("/api/v1/summary?colour=blue", "colour"),
            ("/api/v1/summary?limit=0", "limit"),
            ("/api/v1/summary?fill=maybe", "fill"),
            ("/api/v1/quarantine?by=day", "by"),  # a parameter of /summary only
            ("/api/v1/reports?limit=abc", "limit"),
            ("/api/v1/reports?offset=-1", "offset"),
            ("/api/v1/reports?by=day", "by"),  # a parameter of /summary only
            ("/api/v1/reports?since=soon", "since"),
            ("/api/v1/summary?" + "&".join("domain=d%d.example" % i for i in range(65)),
             "domain"),
            ("/api/v1/summary?" + "&".join("x%d=1" % i for i in range(100)), "parameter"),
        ]
        for path, name in cases:
            with self.subTest(path=path[:80]):
                body = self.get_json(path, status=400)
                self.assertEqual(body["status"], 400)
                self.assertIn(name, body.get("detail", ""), body)
        # still answering, and right, after all that
        self.assertEqual(self.get_json("/api/v1/summary"), cli_json(self.cdb, []))

    def test_other_api_paths_are_404(self):
        for path in ("/api/v2/x", "/api/v1/nope", "/api/", "/api/v1/summary/extra",
                     "/api/v1/reports/999999", "/api/v1/reports/x", "/api/v1/quarantine/999999",
                     "/api/v1/quarantine/999999/raw", "/api/v1/reports/1/raw"):
            with self.subTest(path=path):
                body = self.get_json(path, status=404)
                self.assertEqual(body["status"], 404)

    def test_other_methods_are_405(self):
        for method, path in (("POST", "/api/v1/summary"), ("PUT", "/api/v1/summary"),
                             ("DELETE", "/api/v1/reports"), ("POST", "/api/v1/reports"),
                             ("POST", "/metrics")):
            with self.subTest(method=method, path=path):
                r = self.get(path, method=method, data=b"{}" if method != "DELETE" else None,
                             headers=["Content-Type: application/json"])
                self.assertEqual(r.status, 405, r)
                self.assertIn("GET", r.headers.get("allow", ""), r)
        # nothing was stored by those
        self.assertEqual(len(T.stored_reports(self.cdb)), T.load_totals()["totals"]["reports"])

    def test_head_answers_without_body(self):
        r = self.get("/api/v1/summary", method="HEAD")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"", r)
        self.assertEqual(r.headers.get("content-type"), "application/json", r)


# ---- the token -------------------------------------------------------------------------------


class Token(CorpusDaemonCase):
    serve_args = ("--api-token", TOKEN)

    def test_api_needs_the_bearer_token(self):
        for path in ("/api/v1/summary", "/api/v1/reports?domain=example.com", "/metrics",
                     "/api/v2/x"):
            with self.subTest(path=path):
                r = self.get(path)
                self.assertEqual(r.status, 401, r)
                self.assertTrue(r.headers.get("www-authenticate", "").startswith("Bearer"), r)
                self.assertEqual(r.json()["status"], 401)
                for wrong in ("Bearer wrong", "Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x",
                              "Bearer " + TOKEN.upper(), "Bearer ", "Basic " + TOKEN, TOKEN,
                              "Bearer  " + TOKEN):
                    r = self.get(path, headers=["Authorization: " + wrong])
                    self.assertEqual(r.status, 401, (wrong, r))
                    self.assertIn("www-authenticate", r.headers)
                r = self.get(path, headers=["Authorization: Bearer " + TOKEN])
                self.assertEqual(r.status, 404 if path.startswith("/api/v2") else 200, r)
        auth = ["Authorization: Bearer " + TOKEN]
        # the scheme name is case-insensitive (RFC 7235), the token is not
        r = self.get("/api/v1/summary", headers=["Authorization: bearer " + TOKEN])
        self.assertEqual(r.status, 200, r)
        for bad in ("top=0", "limit=0"):
            path = "/api/v1/%s?%s" % ("summary" if bad.startswith("top") else "reports", bad)
            r = self.get(path, headers=auth)
            self.assertEqual(r.status, 400, (path, r))
            self.assertIn(bad.split("=")[0], r.json()["detail"])
        self.assertEqual(self.get_json("/api/v1/summary?by=reporter", headers=auth),
                         cli_json(self.cdb, ["--by", "reporter"]))
        m = self.get("/metrics", headers=auth)
        self.assertIn(b'tlsrptd_http_requests_total{code="401"}', m.body)

    def test_token_does_not_guard_the_report_endpoint(self):
        self.assertEqual(self.get("/healthz").status, 200)
        r = T.sample_report()
        r["report-id"] = "token-test-report"
        resp = self.daemon.post("/tlsrpt", json.dumps(r).encode())
        self.assertEqual(resp.status, 201, resp)


# ---- loopback only, from a real non-loopback address -----------------------------------------


def _ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("ip %s failed: %s" % (" ".join(args), p.stderr.decode()))
    return p


def remove_stale_namespaces():
    p = _ip("netns", "list", check=False)
    for ln in p.stdout.decode().splitlines():
        name = ln.split()[0] if ln.split() else ""
        if not name.startswith(NS_PREFIX):
            continue
        try:
            os.kill(int(name[len(NS_PREFIX):].split("-")[0]), 0)
            continue  # its test run is still alive
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        _ip("netns", "del", name, check=False)


class Loopback(T.TlsrptdTestCase):
    """Without api_token, /api/ and /metrics answer loopback clients only."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (CAP_NET_ADMIN) for a network namespace")
        if shutil.which("ip") is None:
            raise RuntimeError("ip is not installed (Debian package iproute2)")
        remove_stale_namespaces()
        cls.ns = "%s%d" % (NS_PREFIX, os.getpid())
        _ip("netns", "del", cls.ns, check=False)  # left over from a crash with our pid
        _ip("netns", "add", cls.ns)
        try:
            _ip("-n", cls.ns, "link", "set", "lo", "up")
            _ip("-n", cls.ns, "addr", "add", NS_ADDR + "/32", "dev", "lo")
            cls.ctmp = tempfile.mkdtemp(prefix="tlsrptd-it-lo-")
            cls.cdb = T.new_db(cls.ctmp, "corpus")
            ingest_corpus(cls.cdb)
        except BaseException:
            _ip("netns", "del", cls.ns, check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        _ip("netns", "del", cls.ns, check=False)
        shutil.rmtree(cls.ctmp, True)
        super().tearDownClass()

    def start(self, listen_hosts, args=()):
        port = free_port()
        listen = []
        for h in listen_hosts:
            listen += ["--listen", "%s:%d" % ("[%s]" % h if ":" in h else h, port)]
        d = Daemon(self.tmp, ["--db", T.socket_db(self.cdb)] + listen + list(args), port,
                   listen_hosts[0] if listen_hosts[0] not in ("::", "0.0.0.0") else "127.0.0.1",
                   netns=self.ns)
        self.addCleanup(d.kill)
        d.ready = d.wait_ready()  # False: it exited (the log says why)
        return d, port

    def stop(self, d):
        self.assertEqual(d.stop(), 0, d.log())

    def test_non_loopback_client_gets_403(self):
        d, port = self.start([NS_ADDR, "127.0.0.1"])
        self.assertTrue(d.ready, "serve did not start in the namespace:\n" + d.log())
        far = "http://%s:%d" % (NS_ADDR, port)
        near = "http://127.0.0.1:%d" % port
        for path in ("/api/v1/summary", "/api/v1/reports", "/metrics", "/api/v2/x"):
            with self.subTest(path=path):
                # from 192.0.2.10 to itself: the peer address is 192.0.2.10, not loopback
                r = curl(far + path, netns=self.ns, interface=NS_ADDR)
                self.assertEqual(r.status, 403, r)
                self.assertEqual(r.json()["status"], 403)
                # from 192.0.2.10 to the 127.0.0.1 listener: still not a loopback peer
                r = curl(near + path, netns=self.ns, interface=NS_ADDR)
                self.assertEqual(r.status, 403, r)
                # from 127.0.0.1 (even with a token nobody asked for): answered
                r = curl(near + path, netns=self.ns,
                         headers=["Authorization: Bearer whatever"])
                self.assertEqual(r.status, 404 if path.startswith("/api/v2") else 200, r)
        # the report side does not care where a sender is
        self.assertEqual(curl(far + "/healthz", netns=self.ns, interface=NS_ADDR).status, 200)
        r = curl(near + "/api/v1/summary?by=day", netns=self.ns)
        self.assertEqual(r.json(), cli_json(self.cdb, ["--by", "day"]))
        log = d.log()
        self.assertRegex(log, r"%s \"GET /api/v1/summary\" 403" % re.escape(NS_ADDR))
        self.assertRegex(log, r"127\.0\.0\.1 \"GET /api/v1/summary\" 200")
        self.stop(d)

    def test_dual_stack_listener(self):
        """On [::] IPv4 peers arrive as ::ffff:a.b.c.d: ::ffff:127.0.0.1 and ::1 are
        loopback, ::ffff:192.0.2.10 is not."""
        d, port = self.start(["::"])
        if not d.ready:
            self.skipTest("cannot listen on [::] (no IPv6 in the namespace?): " + d.log())
        for url, iface, want in (("http://127.0.0.1:%d" % port, None, 200),
                                 ("http://[::1]:%d" % port, None, 200),
                                 ("http://%s:%d" % (NS_ADDR, port), NS_ADDR, 403)):
            with self.subTest(url=url):
                r = curl(url + "/api/v1/summary", netns=self.ns, interface=iface)
                self.assertEqual(r.status, want, r)
        self.stop(d)

    def test_token_opens_the_api_to_other_addresses(self):
        d, port = self.start([NS_ADDR], ["--api-token", TOKEN])
        self.assertTrue(d.ready, d.log())
        far = "http://%s:%d/api/v1/summary" % (NS_ADDR, port)
        r = curl(far, netns=self.ns, interface=NS_ADDR)
        self.assertEqual(r.status, 401, r)
        r = curl(far, netns=self.ns, interface=NS_ADDR,
                 headers=["Authorization: Bearer " + TOKEN])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), cli_json(self.cdb, []))
        self.stop(d)


# ---- /metrics --------------------------------------------------------------------------------

_SAMPLE_RE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>.*)\})? '
                        r'(?P<value>\S+)$')
_LABEL_RE = re.compile(r'(?P<k>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<v>(?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] of the text format (comments skipped)."""
    out = []
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = _SAMPLE_RE.match(ln)
        if not m:
            raise AssertionError("unparseable metrics line %r" % ln)
        labels = {}
        if m.group("labels"):
            for lm in _LABEL_RE.finditer(m.group("labels")):
                labels[lm.group("k")] = re.sub(r"\\(.)", lambda x: {"n": "\n"}.get(
                    x.group(1), x.group(1)), lm.group("v"))
        out.append((m.group("name"), labels, float(m.group("value"))))
    return out


def samples(parsed, name, **match):
    return [(lb, v) for n, lb, v in parsed if n == name and
            all(lb.get(k) == val for k, val in match.items())]


def total(parsed, name, **match):
    return sum(v for _, v in samples(parsed, name, **match))


def report_mail(report, n):
    m = MIMEMultipart("report", report_type="tlsrpt")
    m["From"] = "tlsrpt@reporter.example"
    m["To"] = "tlsrpt@reports.example"
    m["Subject"] = "Report Domain: mail.example Submitter: reporter.example Report-ID: <%s>" % (
        report["report-id"])
    m["Message-ID"] = "<metrics-%d@reporter.example>" % n
    m.attach(MIMEText("An aggregate TLS report.\n"))
    part = MIMEApplication(gzip.compress(json.dumps(report).encode()), "tlsrpt+gzip")
    part.add_header("Content-Disposition", "attachment", filename="r%d.json.gz" % n)
    m.attach(part)
    return m.as_bytes(policy=email.policy.SMTP)


class Metrics(T.TlsrptdTestCase):

    def setUp(self):
        super().setUp()
        ingest_corpus(self.db)

    def scrape(self, d, check=True):
        r = d.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/plain"), r)
        text = r.body.decode("utf-8")
        if check:
            p = subprocess.run(["promtool", "check", "metrics"], input=r.body,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            self.assertEqual(p.returncode, 0, "promtool check metrics:\n%s\n---\n%s" % (
                p.stdout.decode(errors="replace"), text))
        return parse_metrics(text)

    def scrape_until(self, d, pred, what):
        """Scrape until pred(metrics) holds: a request is counted when libmicrohttpd
        reports it completed, which may be just after curl has its answer."""
        deadline = time.monotonic() + 10 * SLOW
        while True:
            m = self.scrape(d)
            if pred(m):
                return m
            if time.monotonic() > deadline:
                self.fail("metrics never showed %s:\n%r" % (what, m))
            time.sleep(0.1)

    def check_against_database(self, m):
        js = cli_json(self.db, [])
        t = js["totals"]
        self.assertEqual(total(m, "tlsrptd_sessions_total", result="successful"),
                         t["successful_sessions"])
        self.assertEqual(total(m, "tlsrptd_sessions_total", result="failed"),
                         t["failed_sessions"])
        by_type = {}
        for lb, v in samples(m, "tlsrptd_failed_sessions_total"):
            by_type[lb["result_type"]] = by_type.get(lb["result_type"], 0) + v
        self.assertEqual(by_type, {k: float(v) for k, v in t["failures"].items()})
        # per domain, too ('(none)' is the label of policies without a domain)
        for g in js["domains"]:
            dom = g["policy_domain"] or "(none)"
            with self.subTest(policy_domain=dom):
                self.assertEqual(total(m, "tlsrptd_sessions_total", policy_domain=dom,
                                       result="successful"), g["successful_sessions"])
                self.assertEqual(total(m, "tlsrptd_sessions_total", policy_domain=dom,
                                       result="failed"), g["failed_sessions"])
                self.assertEqual({lb["result_type"]: v for lb, v in samples(
                    m, "tlsrptd_failed_sessions_total", policy_domain=dom)},
                    {k: float(v) for k, v in g["failures"].items()})
        stored = len(T.stored_reports(self.db))
        self.assertEqual(total(m, "tlsrptd_reports_total", outcome="stored"), stored)
        self.assertEqual(t["reports"], stored)
        return js

    def check_histogram(self, m):
        buckets = samples(m, "tlsrptd_http_request_duration_seconds_bucket")
        self.assertTrue(buckets)
        les = [lb["le"] for lb, _ in buckets]
        self.assertEqual(les[-1], "+Inf")
        bounds = [float(le) for le in les[:-1]]
        self.assertEqual(bounds, sorted(bounds))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), "buckets are cumulative")
        count = total(m, "tlsrptd_http_request_duration_seconds_count")
        self.assertEqual(counts[-1], count, "+Inf bucket == _count")
        self.assertGreaterEqual(total(m, "tlsrptd_http_request_duration_seconds_sum"), 0)
        return count

    def test_metrics_from_the_corpus_database(self):
        d = start_daemon(self.tmp, ["--db", self.db])
        self.addCleanup(d.kill)
        m = self.scrape(d)
        self.check_against_database(m)
        exp = T.load_totals()["totals"]
        self.assertEqual(total(m, "tlsrptd_sessions_total", result="successful"),
                         exp["successful_sessions"])
        self.assertEqual(total(m, "tlsrptd_sessions_total", result="failed"),
                         exp["failed_sessions"])
        self.assertEqual(T.load_totals()["totals"]["reports"],
                         total(m, "tlsrptd_reports_total", outcome="stored"))
        rows = T.load_expected()
        self.assertEqual(total(m, "tlsrptd_reports_total", source="file", outcome="rejected"),
                         sum(1 for r in rows if r["accepted"] == "no"))
        self.assertEqual(total(m, "tlsrptd_reports_total", source="file", outcome="duplicate"),
                         len(T.load_totals()["duplicates"]))
        db_bytes = samples(m, "tlsrptd_database_bytes")
        self.assertEqual(len(db_bytes), 1)
        self.assertGreater(db_bytes[0][1], 0)
        if T.backend() == "sqlite":  # the file, and its WAL
            self.assertGreaterEqual(db_bytes[0][1], os.path.getsize(self.db))
        else:  # what the server says the database takes (autovacuum may change it a little)
            size = int(T.pg_sql("SELECT pg_database_size('%s')" % T.pg_dbname(self.db)))
            self.assertLess(abs(db_bytes[0][1] - size), size / 2, (db_bytes, size))
        # no --maildir: no backlog metric
        self.assertEqual(samples(m, "tlsrptd_maildir_backlog"), [])
        self.assertEqual(d.stop(), 0, d.log())

    def test_posts_are_counted(self):
        d = start_daemon(self.tmp, ["--db", self.db])
        self.addCleanup(d.kill)
        before = self.scrape(d)
        js_before = cli_json(self.db, [])
        n, ok_sessions = 5, 0
        for i in range(n):
            r = T.sample_report()
            r["report-id"] = "metrics-post-%d" % i
            ok_sessions += sum(p["summary"]["total-successful-session-count"]
                               for p in r["policies"])
            resp = d.post("/tlsrpt", json.dumps(r).encode())
            self.assertEqual(resp.status, 201, resp)
        resp = d.post("/tlsrpt", json.dumps(r).encode())  # the last one again
        self.assertEqual(resp.status, 200, resp)
        resp = d.post("/tlsrpt", b'{"not": "a report"}')
        self.assertEqual(resp.status, 400, resp)
        ok_before = total(before, "tlsrptd_http_requests_total", code="200")

        def settled(m):
            return (total(m, "tlsrptd_http_requests_total", code="400") == 1 and
                    total(m, "tlsrptd_http_requests_total", code="201") == n and
                    total(m, "tlsrptd_http_requests_total", code="200") >= ok_before + 2 and
                    total(m, "tlsrptd_http_request_duration_seconds_count") ==
                    sum(v for _, v in samples(m, "tlsrptd_http_requests_total")))
        m = self.scrape_until(d, settled, "the POSTs counted")
        self.assertEqual(total(m, "tlsrptd_http_requests_total", code="201"), n)
        # 200s: the scrape before the POSTs and the duplicate POST (and earlier scrapes)
        self.assertGreaterEqual(total(m, "tlsrptd_http_requests_total", code="200"),
                                ok_before + 2)
        self.assertEqual(total(m, "tlsrptd_http_requests_total", code="400"), 1)
        count = self.check_histogram(m)
        self.assertGreaterEqual(count, n + 2)
        self.assertEqual(count, sum(v for _, v in samples(m, "tlsrptd_http_requests_total")),
                         "every answered request is in the histogram once")
        self.assertEqual(total(m, "tlsrptd_reports_total", source="http", outcome="stored"), n)
        self.assertEqual(total(m, "tlsrptd_reports_total", source="http", outcome="duplicate"),
                         1)
        self.assertEqual(total(m, "tlsrptd_reports_total", source="http", outcome="rejected"),
                         1)
        js = self.check_against_database(m)
        self.assertEqual(js["totals"]["successful_sessions"],
                         js_before["totals"]["successful_sessions"] + ok_sessions)
        self.assertEqual(d.stop(), 0, d.log())

    def test_maildir_backlog(self):
        md = self.path("Maildir")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(md, sub))
        d = start_daemon(self.tmp, ["--db", self.db, "--maildir", md, "--maildir-rescan", "1",
                                    "--busy-timeout", "100"])
        self.addCleanup(d.kill)
        m = self.scrape(d)
        self.assertEqual(samples(m, "tlsrptd_maildir_backlog"), [({"maildir": md}, 0.0)])

        # hold the write lock: arriving mail cannot be stored and stays in new/
        lock = T.WriteLock(self.db)
        self.addCleanup(lock.release)
        try:
            for i in range(3):
                r = T.sample_report()
                r["report-id"] = "metrics-maildir-%d" % i
                tmpf = os.path.join(md, "tmp", "%d.M%d.metrics" % (i, i))
                with open(tmpf, "wb") as f:
                    f.write(report_mail(r, i))
                os.rename(tmpf, os.path.join(md, "new", os.path.basename(tmpf)))
            deadline = time.monotonic() + 10 * SLOW
            while "storage unavailable" not in d.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertIn("storage unavailable", d.log())
            m = self.scrape(d)  # a reader: answered despite the writer's lock
            self.assertEqual(sorted(os.listdir(os.path.join(md, "new"))),
                             ["%d.M%d.metrics" % (i, i) for i in range(3)])
            self.assertEqual(samples(m, "tlsrptd_maildir_backlog"), [({"maildir": md}, 3.0)])
        finally:
            lock.release()
        deadline = time.monotonic() + 20 * SLOW
        while os.listdir(os.path.join(md, "new")) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(os.listdir(os.path.join(md, "new")), [], d.log())
        m = self.scrape(d)
        self.assertEqual(samples(m, "tlsrptd_maildir_backlog"), [({"maildir": md}, 0.0)])
        self.assertEqual(total(m, "tlsrptd_reports_total", source="maildir", outcome="stored"),
                         3)
        self.check_against_database(m)
        self.assertEqual(d.stop(), 0, d.log())


class SlowReads(T.TlsrptdTestCase):
    """API reads are answered on a pool of their own: a read that takes seconds (here a
    record check waiting for a DNS server that never answers: two tries of 3 s) does
    not hold up /healthz, an upload or the console on the one HTTP thread (--threads 1)
    that took its connection."""

    def test_slow_read_holds_up_nothing_else(self):
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never answers
        silent.bind(("127.0.0.1", 0))
        self.addCleanup(silent.close)
        d = start_daemon(self.tmp, ["--db", self.db, "--threads", "1", "--public-url",
                                    "https://tlsrpt.example/tlsrpt", "--dns",
                                    "127.0.0.1:%d" % silent.getsockname()[1]])
        self.addCleanup(d.kill)
        slow = {}

        def check():
            t0 = time.monotonic()
            slow["r"] = d.get("/api/v1/record/check?domain=here.example")
            slow["s"] = time.monotonic() - t0
        reader = threading.Thread(target=check)
        reader.start()
        try:
            time.sleep(1)  # the check is waiting for DNS now
            self.assertTrue(reader.is_alive(), "the record check did not wait for DNS")
            t0 = time.monotonic()
            self.assertEqual(d.get("/healthz", timeout=4).status, 200)
            r = T.sample_report()
            r["report-id"] = "while-a-read-waits"
            self.assertEqual(d.post("/tlsrpt", json.dumps(r).encode(), timeout=4).status, 201)
            self.assertEqual(d.get("/", timeout=4).status, 200)
            waited = time.monotonic() - t0
            self.assertTrue(reader.is_alive(),
                            "the check ended before the other requests were answered")
        finally:
            reader.join()
        self.assertLess(waited, 4)
        self.assertEqual(slow["r"].status, 200, slow["r"])
        self.assertGreater(slow["s"], 5)
        self.assertEqual(slow["r"].json()["lookup"], "timeout")
        self.assertEqual(cli_json(self.db, [])["totals"]["reports"], 1)
        self.assertEqual(d.stop(), 0, d.log())


if __name__ == "__main__":
    T.main()
