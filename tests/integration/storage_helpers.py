"""Helpers of the storage suites (test_spool, test_collectors, test_migrate,
test_quarantine, test_health): a `tlsrptd serve` driven over plain HTTP with
Python's http.client (many clients at once, cheaper than a curl process per
request on a loaded machine), what tlsrptd shows through its CLI and API, and
outages of either backend.

Outages: on SQLite the database is locked by another connection holding an
EXCLUSIVE transaction (Python's sqlite3 module: tests of SQLite itself may
touch the file); on PostgreSQL the server is stopped and started again with
pg_ctl. A PostgreSQL that is stopped belongs to the test alone: PgCluster
starts a private one (tests/pg_cluster.py) so that the suites running at the
same time on ctest's shared cluster are not disturbed.
"""
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/pg_cluster.py

import tlsrptd_test as T  # noqa: E402

SLOW = T.SLOW
READY_TIMEOUT = 30 * SLOW
STOP_TIMEOUT = 60 * SLOW
HTTP_TIMEOUT = 120 * SLOW


def wait_until(pred, timeout, step=0.05):
    """pred() until it is true or timeout seconds (scaled for sanitizer builds) passed;
    its last value."""
    end = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


# ---- HTTP -----------------------------------------------------------------------------------


class Resp:
    def __init__(self, status, headers, body, elapsed, error=None):
        self.status, self.headers, self.body = status, headers, body
        self.elapsed, self.error = elapsed, error

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError("answer body is not JSON: %r" % self)

    def __repr__(self):
        return "<HTTP %s %.2fs headers=%r body=%r error=%r>" % (
            self.status, self.elapsed, self.headers, self.body[:600], self.error)


def request(port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT, host="127.0.0.1"):
    """One request on a new connection to host:port. A connection that fails
    (refused, reset: a killed daemon) gives status None and the error."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data,
                    time.monotonic() - t0)
    except (OSError, http.client.HTTPException) as e:
        return Resp(None, {}, b"", time.monotonic() - t0, error=repr(e))
    finally:
        conn.close()


def report_dict(report_id, **changes):
    r = T.sample_report(**changes)
    r["report-id"] = report_id
    return r


def report_body(report_id, **changes):
    """samples/report.json with this report-id: a distinct report."""
    return json.dumps(report_dict(report_id, **changes)).encode()


def sample_sessions():
    """(successful, failed) sessions of samples/report.json."""
    r = T.sample_report()
    return (sum(p["summary"]["total-successful-session-count"] for p in r["policies"]),
            sum(p["summary"]["total-failure-session-count"] for p in r["policies"]))


# ---- the daemon -----------------------------------------------------------------------------


class Daemon:
    """`tlsrptd serve --listen HOST:PORT ARGS`, its output in a log file."""

    def __init__(self, case, args, name="serve", umask=None, host="127.0.0.1"):
        self.case, self.args, self.name, self.umask = case, [str(a) for a in args], name, umask
        self.host = host
        self.proc = None
        self.port = None
        self.log_path = case.path("%s.log" % name)

    def start(self, expect_healthy=True):
        for _attempt in range(5):
            self.port = T.free_port()
            argv = [T.tlsrptd_bin(), "serve", "--listen",
                    "%s:%d" % (self.host, self.port)] + self.args
            env = dict(os.environ)
            env.setdefault("LC_ALL", "C")
            with open(self.log_path, "ab") as logf:
                umask = self.umask
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                    cwd=self.case.tmp, env=env,
                    preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
            self.case.addCleanup(self.kill)
            if self.wait_ready(expect_healthy):
                return self
            if "cannot listen" in self.log() or "Address already in use" in self.log():
                continue
            raise AssertionError("tlsrptd serve exited at startup (rc %s):\n%s" %
                                 (self.proc.returncode, self.log()[-4000:]))
        raise AssertionError("no free port for tlsrptd serve")

    def wait_ready(self, expect_healthy=True):
        """Until /healthz answers (200, or any answer when not expect_healthy)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            r = request(self.port, "GET", "/healthz", timeout=5, host=self.host)
            if r.status == 200 or (r.status is not None and not expect_healthy):
                return True
            time.sleep(0.1)
        raise AssertionError("tlsrptd serve did not answer /healthz within %.0f s\n%s" %
                             (READY_TIMEOUT, self.log()[-4000:]))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def request(self, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
        return request(self.port, method, path, body, headers, timeout, self.host)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, body, path="/tlsrpt", ctype="application/tlsrpt+json", headers=None, **kw):
        h = {"Content-Type": ctype}
        h.update(headers or {})
        return self.request("POST", path, body, h, **kw)

    def get_json(self, path):
        r = self.get(path)
        if r.status != 200:
            raise AssertionError("GET %s: %r" % (path, r))
        return r.json()

    def health(self):
        return self.get("/healthz", timeout=10)

    def metrics(self):
        """/metrics, parsed. A reader connection that a restarted PostgreSQL dropped
        answers 503 once: asked again."""
        for _ in range(20):
            r = self.get("/metrics")
            if r.status == 200:
                return parse_metrics(r.body.decode("utf-8"))
            time.sleep(0.5)
        raise AssertionError("GET /metrics: %r\n%s" % (r, self.log()[-3000:]))

    def outcome_counts(self, source="http"):
        """tlsrptd_reports_total{source=...} by outcome."""
        return {lb["outcome"]: v for lb, v in
                metric(self.metrics(), "tlsrptd_reports_total", source=source)}

    def stop(self):
        """SIGTERM and reap: the exit code; a hang or a sanitizer report fails."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("tlsrptd serve did not exit on SIGTERM\n%s" %
                                     self.log()[-4000:])
        self.check_sanitizer()
        return self.proc.returncode

    def sigkill(self):
        self.proc.kill()
        self.proc.wait()
        self.check_sanitizer()

    def check_sanitizer(self):
        if T._SANITIZER_RE.search(self.log()):
            raise AssertionError("sanitizer report from tlsrptd serve:\n%s" % self.log()[-8000:])

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_SAMPLE_RE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? '
                        r'(?P<value>\S+)$')
_LABEL_RE = re.compile(r'(?P<k>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<v>(?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, value)] of the Prometheus text format; values that are
    integers stay exact (int), others are floats."""
    out = []
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = _SAMPLE_RE.match(ln)
        if not m:
            raise AssertionError("unparseable metrics line %r" % ln)
        labels = {lm.group("k"): lm.group("v") for lm in _LABEL_RE.finditer(m.group("labels")
                                                                             or "")}
        v = m.group("value")
        out.append((m.group("name"), labels, int(v) if re.fullmatch(r"-?\d+", v) else float(v)))
    return out


def metric(parsed, name, **match):
    """The samples of name whose labels include match: [(labels, value)]."""
    return [(lb, v) for n, lb, v in parsed if n == name and
            all(lb.get(k) == val for k, val in match.items())]


def metric_total(parsed, name, **match):
    return sum(v for _, v in metric(parsed, name, **match))


# ---- what tlsrptd shows ---------------------------------------------------------------------


def cli_json(args, db=None):
    """tlsrptd ARGS --format json (with --db db), parsed."""
    argv = list(args) + (["--db", db] if db else []) + ["--format", "json"]
    res = T.run(argv, timeout=600)
    if res.rc != 0:
        raise AssertionError("tlsrptd %s failed:\n%r" % (" ".join(argv), res))
    return json.loads(res.out)


def summary(db, *args):
    return cli_json(["summary"] + list(args), db)


def stored_reports(db):
    """The stored reports as `summary --reports --format json` lists them."""
    return summary(db, "--reports")["reports"]


def stored_ids(db):
    """{report-id: database id} of every stored report (each report-id once)."""
    out = {}
    for r in stored_reports(db):
        if r["report_id"] in out:
            raise AssertionError("report-id %s is stored twice" % r["report_id"])
        out[r["report_id"]] = r["id"]
    return out


def quarantine_list(db, *args):
    return cli_json(["quarantine", "list", "--limit", "100000000"] + list(args), db)


# ---- outages --------------------------------------------------------------------------------

PG_BIN = "/usr/lib/postgresql/15/bin"


def _as_server(argv, **kw):
    if os.getuid() == 0:
        argv = ["runuser", "-u", "nobody", "--"] + argv
    return subprocess.run(argv, **kw)


class PgCluster:
    """A PostgreSQL server of one test class (tests/pg_cluster.py), which it may stop and
    start again. Its settings are written into postgresql.conf, so a plain `pg_ctl start`
    brings it back on the same port."""

    def __init__(self, state):
        import pg_cluster
        self.state = state
        pg_cluster.start(state, [])
        with open(os.path.join(state, "port")) as f:
            self.port = int(f.read())
        with open(os.path.join(state, "uri")) as f:
            self.server = f.read().strip()
        self.data = os.path.join(state, "data")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\nlisten_addresses = '127.0.0.1'\nport = %d\n"
                    "unix_socket_directories = '%s'\nmax_connections = 200\n"
                    "shared_buffers = 64MB\n" % (self.port, state))
        self._seq = 0

    def sql(self, sql, db="postgres"):
        res = subprocess.run([T.PSQL if os.path.exists(T.PSQL) else "psql", "-X", "-q", "-At",
                              "-v", "ON_ERROR_STOP=1", self.server + db, "-c", sql],
                             capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise AssertionError("psql %r: %s" % (sql, res.stderr))
        return res.stdout

    def new_db(self, name="tlsrptd"):
        self._seq += 1
        dbname = "st_%d_%d_%s" % (os.getpid(), self._seq, re.sub(r"[^a-z0-9]", "_", name))
        self.sql("CREATE DATABASE %s" % dbname)
        return self.server + dbname

    def stop(self):
        r = _as_server([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                        "-t", "120", "stop"], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("pg_ctl stop: %s %s" % (r.stdout, r.stderr))

    def start(self):
        r = _as_server([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l",
                        os.path.join(self.state, "server.log"), "-w", "-t", "120", "start"],
                       capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("pg_ctl start: %s %s" % (r.stdout, r.stderr))

    def destroy(self):
        import pg_cluster
        pg_cluster.stop(self.state)


class Outage:
    """Storage unavailable for a while: a SQLite file locked by another connection, or
    PostgreSQL (a PgCluster) stopped."""

    def __init__(self, db, cluster=None):
        self.db, self.cluster = db, cluster
        self.conn = None
        self.active = False

    def begin(self):
        if self.cluster:
            self.cluster.stop()
        else:
            self.conn = sqlite3.connect(self.db, isolation_level=None, timeout=30)
            self.conn.execute("BEGIN EXCLUSIVE")
        self.active = True

    def end(self):
        """Storage is back (nothing happens when it was not down)."""
        if not self.active:
            return
        if self.cluster:
            self.cluster.start()
        else:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None
        self.active = False


class CommitAnswerLoss:
    """A TCP proxy in front of PostgreSQL that, once armed, lets one COMMIT through and
    drops the connection before its answer reaches the client: the transaction is
    committed and the client cannot know (as when a server stops between writing a
    COMMIT and sending its reply); or drops the COMMIT itself. The client must connect without TLS (sslmode=disable)
    so the proxy sees the protocol: on a connection whose client sent the marker (a
    report-id, say), it watches the client's bytes for a "COMMIT" statement and the
    server's for the CommandComplete "COMMIT" that answers it. While refusing, it closes
    every new connection at once (the database unreachable)."""

    SENT = b"COMMIT\x00"  # the statement's text in a Parse or Query message
    DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"  # CommandComplete, tag "COMMIT"

    def __init__(self, server_port):
        self.server_port = server_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.armed = None  # the marker, while armed
        self.refusing = self.then_refuse = self.commit_too = False
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def uri(self, db_uri):
        """db_uri (postgresql://user@127.0.0.1:PORT/NAME) through this proxy."""
        return re.sub(r":%d/" % self.server_port, ":%d/" % self.port, db_uri) + \
            "?sslmode=disable&gssencmode=disable"

    def arm(self, marker, then_refuse=False, commit_too=False):
        """Drop the answer of the next COMMIT after marker (with commit_too, the COMMIT
        itself: the transaction is not committed); then refuse connections too when
        then_refuse."""
        with self.lock:
            self.armed = marker
            self.then_refuse = then_refuse
            self.commit_too = commit_too

    def close(self):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.server_port))
            pair = {"marked": False, "commit_sent": False}
            threading.Thread(target=self._pump, args=(client, server, pair, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, pair, False),
                             daemon=True).start()

    def _pump(self, src, dst, pair, from_client):
        tail = b""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            seen = tail + data
            tail = seen[-16:]
            with self.lock:
                if from_client and self.armed and self.armed in seen:
                    pair["marked"] = True
                if from_client and pair["marked"] and self.SENT in seen:
                    pair["commit_sent"] = True
                drop = (not from_client and pair["commit_sent"] and self.armed and
                        self.DONE in seen) or (from_client and pair["commit_sent"] and
                                               self.commit_too)
                if drop:
                    self.armed = None
                    self.dropped += 1
                    self.refusing = self.then_refuse
            if drop:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class Clients:
    """n threads, each POSTing distinct reports ("PREFIX-C-I") one after another to
    the daemons (client c to daemons[c % len]) until stopped; every answer is kept as
    (report-id, client, status, when) in answers, in the order each client got them, and
    when each POST began in sent."""

    def __init__(self, daemons, n, prefix, body=report_body):
        self.daemons, self.n, self.prefix, self.body = daemons, n, prefix, body
        self.answers = []
        self.sent = {}  # report-id -> when its POST began
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(c,), daemon=True)
                        for c in range(n)]

    def run(self, c):
        d = self.daemons[c % len(self.daemons)]
        i = 0
        while not self.stopping.is_set():
            rid = "%s-%03d-%06d" % (self.prefix, c, i)
            began = time.monotonic()
            r = d.post(self.body(rid))
            with self.lock:
                self.sent[rid] = began
                self.answers.append((rid, c, r.status, time.monotonic()))
            if r.status is None:  # the daemon is gone
                time.sleep(0.05)
            i += 1

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def count(self, status):
        with self.lock:
            return sum(1 for a in self.answers if a[2] == status)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(HTTP_TIMEOUT + 30)
        return self.answers


def outside_address():
    """An IPv4 address of this machine that is not a loopback one (the source of a
    connection to it is then not loopback either), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # a route is chosen; nothing is sent
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def spool_entries(spool_dir):
    """Entries waiting in a spool directory (its new/)."""
    d = os.path.join(spool_dir, "new")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []
