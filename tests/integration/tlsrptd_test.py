"""Shared helpers for the tlsrptd integration tests.

The tests run the REAL tlsrptd binary against real databases: SQLite files, or
databases of a real PostgreSQL server (TLSRPTD_BACKEND=postgresql). They check
what tlsrptd stored through what it shows (summary, show, quarantine, the API),
never by reading its tables, so every suite runs on both backends; the few tests
of SQLite itself are marked sqlite_only. Python 3 standard library only (CI
installs Debian's python3 package).

Where things are (environment, set by tests/integration/CMakeLists.txt):
  TLSRPTD_BIN      the tlsrptd binary (required)
  TLSRPTD_CORPUS   the shared real-world corpus (../shared/corpus; read in place)
  TLSRPTD_SAMPLES  the project's samples/ directory
  TLSRPTD_ASAN=1   the binary is an ASan/UBSan build (memory bounds are scaled)
  TLSRPTD_BACKEND  sqlite (default) or postgresql: where new_db() makes databases
  TLSRPTD_PG_STATE the directory of the cluster tests/pg_cluster.py started (its
                   uri file names the server); set by ctest for the *_pg tests

Each can also be given on the command line, before unittest's own arguments:
  python3 test_corpus.py --bin build/tlsrptd --corpus ../shared/corpus -v
"""
import base64
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(os.path.dirname(HERE))

EX_OK, EX_USAGE, EX_DATAERR, EX_IOERR, EX_TEMPFAIL = 0, 64, 65, 74, 75
EX_NOINPUT, EX_CONFIG = 66, 78

# Every tlsrptd a test starts reads no config file unless the test says so: an installed
# /etc/tlsrptd/tlsrptd.conf must not change what the tests see.
os.environ.setdefault("TLSRPTD_CONFIG", "")

_OPTIONS = {"--bin": "TLSRPTD_BIN", "--corpus": "TLSRPTD_CORPUS", "--samples": "TLSRPTD_SAMPLES"}

# Sanitizer reports in stderr fail the test even when the exit code happens to match.
_SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: |"
                           r"SUMMARY: UndefinedBehaviorSanitizer")


def main():
    """Take --bin/--corpus/--samples out of argv, then run unittest verbosely."""
    argv = [sys.argv[0]]
    args = sys.argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        key = a.split("=", 1)[0]
        if key in _OPTIONS:
            if "=" in a:
                os.environ[_OPTIONS[key]] = a.split("=", 1)[1]
            else:
                i += 1
                if i >= len(args):
                    sys.exit("%s needs a value" % a)
                os.environ[_OPTIONS[key]] = args[i]
        else:
            argv.append(a)
        i += 1
    if not any(a.startswith("-v") or a == "-q" for a in argv[1:]):
        argv.append("-v")
    unittest.main(module="__main__", argv=argv)


# ---- locations -----------------------------------------------------------------------------


def tlsrptd_bin():
    path = os.environ.get("TLSRPTD_BIN")
    if not path:
        raise RuntimeError("TLSRPTD_BIN is not set: pass the tlsrptd binary "
                           "(TLSRPTD_BIN=build/tlsrptd or --bin build/tlsrptd)")
    path = os.path.abspath(path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError("TLSRPTD_BIN=%s is not an executable file" % path)
    return path


def samples_dir():
    d = os.environ.get("TLSRPTD_SAMPLES") or os.path.join(PROJECT, "samples")
    d = os.path.abspath(d)
    if not os.path.isdir(d):
        raise RuntimeError("samples directory %s does not exist (TLSRPTD_SAMPLES)" % d)
    return d


def sample(name):
    return os.path.join(samples_dir(), name)


def corpus_dir():
    """The shared corpus. Missing is an error, never a skip: CI always has it."""
    d = os.environ.get("TLSRPTD_CORPUS") or os.path.join(os.path.dirname(PROJECT), "shared",
                                                          "corpus")
    d = os.path.abspath(d)
    for need in ("EXPECTED.tsv", "EXPECTED-TOTALS.json", "real"):
        if not os.path.exists(os.path.join(d, need)):
            raise RuntimeError("the shared corpus is missing: %s does not exist "
                               "(TLSRPTD_CORPUS=%s)" % (os.path.join(d, need), d))
    return d


def asan():
    return os.environ.get("TLSRPTD_ASAN", "") not in ("", "0")


# ASan/UBSan builds are several times slower: tests scale their waits by this.
SLOW = 4.0 if asan() else 1.0


def _ephemeral_low():
    """The first port of the kernel's range for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports handed out by this process, never handed out twice.
_PORTS_GIVEN = set()
_PORT_RANDOM = random.Random(os.urandom(16))


def _bindable(port, kinds):
    """Whether port is free on every address for each socket kind in kinds."""
    socks = []
    try:
        for kind in kinds:
            s = socket.socket(socket.AF_INET, kind)
            socks.append(s)
            s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def _pick_port(kinds):
    """A port free a moment ago for each kind in kinds. A port the kernel picks (bind to
    port 0) comes from the range it also gives every outgoing connection, so a curl or
    SMTP client of a test running beside this one may take it before the daemon binds it;
    a random port below that range is taken only by another such pick, which is unlikely
    among some twenty thousand."""
    low = _ephemeral_low()
    if low > 11024:
        for _ in range(200):
            port = _PORT_RANDOM.randrange(low - 10000 if low > 21024 else 1024, low)
            if port not in _PORTS_GIVEN and _bindable(port, kinds):
                _PORTS_GIVEN.add(port)
                return port
    for _ in range(50):  # a range too small to choose from: the kernel's pick
        s = socket.socket(socket.AF_INET, kinds[0])
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _PORTS_GIVEN and _bindable(port, kinds):
            _PORTS_GIVEN.add(port)
            return port
    raise RuntimeError("no free port of 127.0.0.1 found")


def free_port(kind=socket.SOCK_STREAM):
    """A TCP (or kind=SOCK_DGRAM: UDP) port of 127.0.0.1 that was free a moment ago."""
    return _pick_port((kind,))


def free_udp_tcp_port():
    """A port of 127.0.0.1 that was free for both TCP and UDP a moment ago (a DNS server
    such as dnsmasq binds both)."""
    return _pick_port((socket.SOCK_STREAM, socket.SOCK_DGRAM))


MAIL_TALLY = ("messages", "stored", "duplicates", "quarantined", "deferred")


def parse_mail_tally(out, prefix):
    """The numbers of the line of OUT that starts with PREFIX ('maildir: ', 'imap: '), a
    mail reader's summary such as 'maildir: 3 messages: 2 stored, 1 duplicate, 0
    quarantined, 0 left in new/', as {MAIL_TALLY name: number}. Its nouns must agree with
    their numbers ('1 message', '0 messages', '1 duplicate')."""
    for line in out.splitlines():
        if line.startswith(prefix):
            for n, noun, s in re.findall(r"\b(\d+) (message|duplicate)(s?)\b", line):
                if (n == "1") != (s == ""):
                    raise AssertionError("'%s %s%s' in the summary line %r" % (n, noun, s, line))
            nums = [int(w) for w in line.replace(",", " ").replace(":", " ").split()
                    if w.isdigit()]
            if len(nums) != len(MAIL_TALLY):
                raise AssertionError("not %d numbers in %r" % (len(MAIL_TALLY), line))
            return dict(zip(MAIL_TALLY, nums))
    raise AssertionError("no line starting with %r in %r" % (prefix, out))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# ---- running tlsrptd -----------------------------------------------------------------------


class Result:
    """What one tlsrptd run did: exit code, output, wall time and peak RSS (KiB)."""

    def __init__(self, args, rc, out, err, elapsed, maxrss_kib):
        self.args, self.rc, self.out, self.err = args, rc, out, err
        self.elapsed, self.maxrss_kib = elapsed, maxrss_kib

    def __repr__(self):
        return ("tlsrptd %s\n  exit %s after %.2f s, maxrss %d KiB\n  stdout: %s\n  stderr: %s" %
                (" ".join(self.args), self.rc, self.elapsed, self.maxrss_kib,
                 self.out.strip()[-3000:], self.err.strip()[-3000:]))

    def lines(self):
        return [ln for ln in self.out.splitlines() if ln.strip()]


def run(args, stdin=None, cwd=None, timeout=120, env=None):
    """Run tlsrptd ARGS. stdin: bytes, a file path (str) or None (/dev/null).

    The child is reaped with os.wait4 so its own peak RSS (ru_maxrss, the
    number getrusage(RUSAGE_CHILDREN) would report for it alone) is known."""
    args = [str(a) for a in args]
    full_env = dict(os.environ)
    full_env.setdefault("LC_ALL", "C")
    if env:
        full_env.update(env)
    with tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr, \
            tempfile.TemporaryFile() as fin:
        if isinstance(stdin, (bytes, bytearray)):
            fin.write(stdin)
            fin.seek(0)
            stdin_f = fin
        elif isinstance(stdin, str):
            stdin_f = open(stdin, "rb")
        else:
            stdin_f = subprocess.DEVNULL
        t0 = time.monotonic()
        try:
            p = subprocess.Popen([tlsrptd_bin()] + args, stdin=stdin_f, stdout=fout, stderr=ferr,
                                 cwd=cwd, env=full_env)
        finally:
            if isinstance(stdin, str):
                stdin_f.close()
        killed = []

        def kill():
            killed.append(True)
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            while True:
                try:
                    _, status, ru = os.wait4(p.pid, 0)
                    break
                except InterruptedError:
                    continue
        finally:
            timer.cancel()
        elapsed = time.monotonic() - t0
        rc = os.waitstatus_to_exitcode(status)
        p.returncode = rc  # reaped here; keep Popen from waiting again
        fout.seek(0)
        ferr.seek(0)
        out = fout.read().decode("utf-8", "replace")
        err = ferr.read().decode("utf-8", "replace")
    res = Result(args, rc, out, err, elapsed, ru.ru_maxrss)
    if killed:
        raise AssertionError("tlsrptd did not finish within %d s:\n%r" % (timeout, res))
    if _SANITIZER_RE.search(err):
        raise AssertionError("sanitizer report:\n%r" % res)
    if rc < 0:
        raise AssertionError("tlsrptd died of signal %d:\n%r" % (-rc, res))
    return res


# Outcome lines of `tlsrptd ingest`: "NAME: stored report 3: ...", "NAME: duplicate of
# report 1: ...", "NAME: rejected: REASON (quarantine 2)", "NAME: unreadable: ...".
_OUTCOME_RE = re.compile(r"^(?P<name>.*?): (?P<status>stored report|duplicate of report|rejected|"
                         r"unreadable|storage unavailable)(?P<rest>.*)$")
_QUARANTINE_SUFFIX_RE = re.compile(r" \(quarantine \d+\)$")


class Outcome:
    def __init__(self, name, status, rest, line):
        self.name, self.line = name, line
        self.status = {"stored report": "stored", "duplicate of report": "duplicate"}.get(
            status, status)
        self.rest = rest

    @property
    def reason(self):
        """For rejected/unreadable lines: the reason without the quarantine suffix."""
        r = self.rest[2:] if self.rest.startswith(": ") else self.rest
        return _QUARANTINE_SUFFIX_RE.sub("", r)

    def __repr__(self):
        return self.line


def outcomes(res):
    """Parsed outcome lines of an ingest run, in printed order."""
    found = []
    for ln in res.out.splitlines():
        m = _OUTCOME_RE.match(ln)
        if m:
            found.append(Outcome(m.group("name"), m.group("status"), m.group("rest"), ln))
    return found


# ---- the database --------------------------------------------------------------------------

PSQL = "/usr/lib/postgresql/15/bin/psql"
PG_PASSWORD = "tlsrptd-test"  # of the role tlsrptd that tests/pg_cluster.py makes


def backend():
    """'sqlite' or 'postgresql': the storage backend this run tests."""
    b = os.environ.get("TLSRPTD_BACKEND", "sqlite")
    if b not in ("sqlite", "postgresql"):
        raise RuntimeError("TLSRPTD_BACKEND=%s is neither sqlite nor postgresql" % b)
    return b


def pg_server():
    """The URI of the test cluster's server, without a database ('postgresql://…/')."""
    state = os.environ.get("TLSRPTD_PG_STATE")
    if not state:
        raise RuntimeError("TLSRPTD_PG_STATE is not set: start a cluster with "
                           "tests/pg_cluster.py start DIR and point TLSRPTD_PG_STATE at DIR")
    with open(os.path.join(state, "uri")) as f:
        return f.read().strip()


def pg_sql(sql, db="postgres", server=None):
    """Run SQL as the cluster's superuser (creating databases, stopping the server's
    sessions); returns psql's output. server: another cluster's URI (PrivateCluster)."""
    res = subprocess.run([PSQL if os.path.exists(PSQL) else "psql", "-X", "-q", "-At",
                          "-v", "ON_ERROR_STOP=1", (server or pg_server()) + db, "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise AssertionError("psql %r: %s" % (sql, res.stderr))
    return res.stdout


_db_seq = [0]
_pg_recycled = []  # databases of finished tests, emptied, for new_db() to take first


def new_db(tmpdir, name="tlsrptd"):
    """A new, empty database for one test: a SQLite file in tmpdir, or (backend
    postgresql) a database of the test cluster with nothing in it, as a postgresql://
    URI: one recycle_db() emptied, or a new one."""
    if backend() == "sqlite":
        path, n = os.path.join(tmpdir, name + ".db"), 1
        while os.path.exists(path):  # asked for again: another new one
            n += 1
            path = os.path.join(tmpdir, "%s-%d.db" % (name, n))
        return path
    if _pg_recycled:
        return pg_server() + _pg_recycled.pop()
    _db_seq[0] += 1
    dbname = "it_%d_%d_%s" % (os.getpid(), _db_seq[0], re.sub(r"[^a-z0-9]", "_", name.lower())[:40])
    pg_sql("CREATE DATABASE %s" % dbname)
    return pg_server() + dbname


def recycle_db(db):
    """Empty a PostgreSQL database of new_db() whose test is done (its sessions ended,
    the schema dropped and made again) for the next new_db() of this process: a CREATE
    DATABASE writes megabytes, and a suite would make hundreds. Best effort: a database
    that cannot be emptied is left alone."""
    if backend() != "postgresql" or not db.startswith(pg_server()):
        return
    name = pg_dbname(db)
    if name in _pg_recycled:
        return
    try:
        pg_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE datname = '%s' AND pid <> pg_backend_pid()" % name)
        pg_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public", db=name)
    except (AssertionError, OSError, subprocess.SubprocessError):
        return
    _pg_recycled.append(name)


def unopenable_db(tmpdir):
    """A database tlsrptd cannot open: SQLite: a path that is a directory; PostgreSQL:
    a database the cluster does not have."""
    if backend() == "sqlite":
        d = os.path.join(tmpdir, "a-directory.db")
        os.makedirs(d, exist_ok=True)
        return d
    return pg_server() + "no_such_database_%d" % os.getpid()


def sqlite_only(why):
    """For a test (or class) of SQLite itself (a database file, its locks, modes, the
    file system under it): run on SQLite only; on PostgreSQL it is skipped saying why."""
    return unittest.skipUnless(backend() == "sqlite", "a test of SQLite itself: " + why)


def postgresql_only(why):
    """For a test of the PostgreSQL backend itself (its server, sessions, locks)."""
    return unittest.skipUnless(backend() == "postgresql",
                               "a test of the PostgreSQL backend: " + why)


def pg_dbname(db):
    """The database name of a postgresql:// URI new_db() made."""
    return db.rsplit("/", 1)[1].split("?", 1)[0]


def pg_state():
    """The directory of the test cluster (its Unix socket is there)."""
    pg_server()  # the same error when there is no cluster
    return os.environ["TLSRPTD_PG_STATE"]


def socket_db(db):
    """db as a process in another network namespace reaches it: a SQLite path as it
    is, a PostgreSQL database through the cluster's Unix socket instead of 127.0.0.1."""
    if not db.startswith("postgresql:"):
        return db
    with open(os.path.join(pg_state(), "port")) as f:
        port = f.read().strip()
    return "postgresql://postgres@/%s?host=%s&port=%s" % (pg_dbname(db), pg_state(), port)


# ---- inside a SQLite file (the suites that test SQLite itself: its modes, integrity, the
# columns only it keeps). The other suites check through what tlsrptd shows.


def connect(db):
    """Open an existing SQLite database (never creates one)."""
    if not os.path.exists(db):
        raise AssertionError("database %s does not exist" % db)
    conn = sqlite3.connect("file:%s?mode=rw" % db, uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def query(db, sql, params=()):
    conn = connect(db)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def scalar(db, sql, params=()):
    return query(db, sql, params)[0][0]


def quarantine_rows(db):
    conn = connect(db)
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM quarantine ORDER BY id")]
    finally:
        conn.close()


class PsqlSession:
    """A psql session on db (a postgresql:// URI) that stays open between statements:
    what another client holds (a transaction, an advisory lock) lasts until close()."""

    def __init__(self, db):
        self.proc = subprocess.Popen([PSQL if os.path.exists(PSQL) else "psql", "-X", "-q",
                                      "-At", "-v", "ON_ERROR_STOP=1", db],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=0)

    def send(self, sql):
        """Run sql in the session and wait until it is done."""
        self.proc.stdin.write(sql.encode() + b"\\echo tlsrptd-test-done\n")
        out = b""
        deadline = time.monotonic() + 60
        while b"tlsrptd-test-done" not in out:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("psql session: %r" % out)
            if select.select([self.proc.stdout], [], [], 1.0)[0]:
                out += os.read(self.proc.stdout.fileno(), 65536)
        if b"ERROR" in out:
            raise AssertionError("psql session: %s" % out.decode(errors="replace"))

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()


class WriteLock:
    """Another process holding the write lock of a tlsrptd database, so that tlsrptd
    cannot write to it while readers still read (until release()).

    SQLite: a connection in BEGIN EXCLUSIVE (in WAL mode readers go on). PostgreSQL: a
    psql session in a transaction holding LOCK TABLE … IN EXCLUSIVE MODE on every table
    of the database (writers wait, readers go on); tlsrptd waits its busy timeout
    (lock_timeout) and gives up, as it does on SQLite."""

    def __init__(self, db):
        self.db, self.proc, self.conn = db, None, None
        if backend() == "sqlite":
            self.conn = sqlite3.connect(db, isolation_level=None, timeout=10)
            self.conn.execute("BEGIN EXCLUSIVE")
            return
        self.proc = PsqlSession(db)
        self.proc.send("BEGIN;\n"
                       "DO $$DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables "
                       "WHERE schemaname = 'public' LOOP EXECUTE format('LOCK TABLE %I IN "
                       "EXCLUSIVE MODE', t); END LOOP; END$$;\n")

    def release(self):
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None
        if self.proc is not None:
            try:
                self.proc.send("ROLLBACK;\n")
            finally:
                self.proc.close()
            self.proc = None


class PrivateCluster:
    """A PostgreSQL server of one test's own (tests/pg_cluster.py in tmpdir), for tests
    that stop and start the server: the suite's shared cluster must stay up for the
    tests running beside them."""

    def __init__(self, tmpdir):
        self.state = os.path.join(tmpdir, "pg-private")
        self._cluster("start")
        with open(os.path.join(self.state, "uri")) as f:
            self.server = f.read().strip()

    def _cluster(self, *args):
        p = subprocess.run([sys.executable, os.path.join(PROJECT, "tests", "pg_cluster.py")] +
                           list(args) + [self.state], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=180)
        if p.returncode != 0:
            raise AssertionError("pg_cluster.py %s: %s" % (" ".join(args),
                                                            p.stdout.decode(errors="replace")))

    def new_db(self, name, password=False):
        """A new database; password: owned by the role tlsrptd, and the URI logs in as it
        with its password in the URI (which no message may show)."""
        if not password:
            pg_sql("CREATE DATABASE %s" % name, server=self.server)
            return self.server + name
        pg_sql("CREATE DATABASE %s OWNER tlsrptd" % name, server=self.server)
        return self.server.replace("//postgres@", "//tlsrptd:%s@" % PG_PASSWORD) + name

    def pause(self):
        """The server stops (pg_ctl stop -m fast): every connection is closed."""
        self._cluster("pause")

    def resume(self):
        self._cluster("resume")

    def stop(self):
        self._cluster("stop")


# ---- what tlsrptd shows about a database (the same on every backend) -----------------------


def cli_json(args, **kw):
    """tlsrptd ARGS (exit 0 required), its standard output parsed as JSON."""
    res = run(args, **kw)
    if res.rc != 0:
        raise AssertionError("tlsrptd failed:\n%r" % res)
    return json.loads(res.out)


def summary(db, *args):
    """`tlsrptd summary --format json` with args (filters, --by …)."""
    return cli_json(["summary", "--db", db, "--format", "json"] + [str(a) for a in args])


def totals(db, *args):
    return summary(db, *args)["totals"]


def stored_reports(db, *args):
    """The reports `summary --reports --format json` lists (with args as filters), in the
    order they were stored (by id)."""
    out = cli_json(["summary", "--db", db, "--reports", "--format", "json"] +
                   [str(a) for a in args])
    return sorted(out["reports"], key=lambda r: r["id"])


def report_ids(db):
    """The report-ids of the stored reports, in the order they were stored."""
    return [r["report_id"] for r in stored_reports(db)]


def show(db, key):
    """`tlsrptd show --format json KEY`: one stored report with its policies, failure
    details, source, diagnostics and the report JSON as received."""
    return cli_json(["show", "--db", db, "--format", "json", str(key)])


def stored(db):
    """show() of every stored report, in the order they were stored."""
    return [show(db, r["id"]) for r in stored_reports(db)]


def quarantine(db, raw=False):
    """The quarantine (`quarantine list --format json`), oldest first; with raw, each
    entry also has "raw": the bytes kept (from `quarantine show`), or None."""
    entries = cli_json(["quarantine", "list", "--db", db, "--format", "json", "--limit",
                        "100000000"])["entries"]
    entries.sort(key=lambda e: e["id"])
    if raw:
        for e in entries:
            e["raw"] = quarantined_bytes(db, e["id"])
    return entries


def quarantined_bytes(db, qid):
    """The bytes kept for quarantine entry qid (None when they were not kept)."""
    e = cli_json(["quarantine", "show", "--db", db, "--format", "json", str(qid)])
    if "raw_text" in e:
        return e["raw_text"].encode("utf-8")
    if "raw_base64" in e:
        return base64.b64decode(e["raw_base64"])
    return None


def counts(db):
    """How many reports are stored and how many inputs are in the quarantine."""
    return {"reports": len(stored_reports(db)), "quarantine": len(quarantine(db))}


def contents(db):
    """Everything a database shows: the summary, the stored reports in full and the
    quarantine ("stores nothing new" compares two of these)."""
    return {"summary": summary(db), "reports": stored(db), "quarantine": quarantine(db)}


def db_created(db):
    """Whether db is a tlsrptd database now (SQLite: the file exists; PostgreSQL: the
    database has tlsrptd's tables, which only a command that writes creates)."""
    if backend() == "sqlite" and not db.startswith("postgresql:"):
        return os.path.exists(db)
    return run(["summary", "--db", db, "--format", "json"]).rc == 0


# ---- test base -----------------------------------------------------------------------------


class TlsrptdTestCase(unittest.TestCase):
    """A fresh temporary directory (self.tmp) and database path (self.db) per test."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        tlsrptd_bin()  # fail loudly, once per class, when the binary is missing

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tlsrptd-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self._db = None

    @property
    def db(self):
        """The test's database, made on first use (a PostgreSQL database costs a
        CREATE DATABASE; tests that store nothing need none)."""
        if self._db is None:
            self._db = new_db(self.tmp)
            self.addCleanup(recycle_db, self._db)
        return self._db

    @db.setter
    def db(self, value):
        self._db = value

    def new_db(self, name):
        """Another new, empty database for this test."""
        db = new_db(self.tmp, name)
        self.addCleanup(recycle_db, db)
        return db

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, data):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, (bytes, bytearray)) else data.encode())
        return p

    def ingest(self, *inputs, db=None, opts=(), **kw):
        return run(["ingest", "--db", db or self.db, "--no-progress"] + list(opts) + list(inputs),
                   **kw)

    def summary_json(self, db=None):
        res = run(["summary", "--db", db or self.db, "--format", "json"])
        self.assertEqual(res.rc, 0, res)
        return json.loads(res.out)

    def assertExit(self, res, code):
        self.assertEqual(res.rc, code, "expected exit %d\n%r" % (code, res))

    def single_outcome(self, res, status=None):
        o = outcomes(res)
        self.assertEqual(len(o), 1, "expected exactly one outcome line\n%r" % res)
        if status:
            self.assertEqual(o[0].status, status, res)
        return o[0]

    def assertRejectedAndQuarantined(self, res, raw, reason_re, db=None, source_kind=None):
        """Exit 65, one 'rejected' line whose reason matches reason_re, exactly one
        quarantine entry holding that reason and the raw bytes (raw=None: not kept), and
        no stored report."""
        db = db or self.db
        self.assertExit(res, EX_DATAERR)
        o = self.single_outcome(res, "rejected")
        self.assertRegex(o.reason, reason_re, res)
        q = quarantine(db, raw=raw is not None)
        self.assertEqual(len(q), 1, q)
        self.assertTrue(q[0]["reason"].strip(), q[0])
        self.assertRegex(q[0]["reason"], reason_re)
        if raw is not None:
            self.assertIs(q[0]["raw_kept"], True)
            self.assertEqual(q[0]["raw_size"], len(raw))
            self.assertTrue(q[0]["raw"] == raw, "quarantined bytes differ from the input")
        if source_kind:
            self.assertEqual(q[0]["source"]["kind"], source_kind)
        self.assertEqual(stored_reports(db), [])
        return o.reason


def load_expected():
    """The rows of the corpus's EXPECTED.tsv (dicts keyed by its header), in file order."""
    with open(os.path.join(corpus_dir(), "EXPECTED.tsv"), encoding="utf-8") as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    header = lines[0].split("\t")
    rows = []
    for ln in lines[1:]:
        cells = ln.split("\t")
        cells += [""] * (len(header) - len(cells))
        rows.append(dict(zip(header, cells)))
    return rows


def load_totals():
    """The corpus's EXPECTED-TOTALS.json."""
    with open(os.path.join(corpus_dir(), "EXPECTED-TOTALS.json"), encoding="utf-8") as f:
        return json.load(f)


def parse_failures(text):
    """EXPECTED.tsv's failures_by_type: 'certificate-expired=100;validation-failure=3'
    -> {type: count}."""
    out = {}
    for item in filter(None, text.split(";")):
        k, v = item.rsplit("=", 1)
        out[k] = out.get(k, 0) + int(v)
    return out


def sample_report(**changes):
    """samples/report.json as a dict, with top-level keys replaced."""
    with open(sample("report.json"), "rb") as f:
        r = json.load(f)
    r.update(changes)
    return r


# ---- serve over HTTP (curl), dnsmasq ---------------------------------------------------------

CURL_TIMEOUT = int(60 * SLOW)
READY_TIMEOUT = 30 * SLOW
STOP_TIMEOUT = 40 * SLOW


class Resp:
    def __init__(self, status, headers, body, rc, err):
        self.status, self.headers, self.body, self.rc, self.err = status, headers, body, rc, err

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError("answer body is not JSON: %r" % self)

    def __repr__(self):
        return "<HTTP %s curl-rc %s headers=%r body=%r err=%r>" % (
            self.status, self.rc, self.headers, self.body[:800], self.err.strip()[-400:])


def curl(url, method=None, headers=(), data=None, netns=None, interface=None,
         timeout=CURL_TIMEOUT):
    """One request with the curl CLI (in the network namespace netns, from the
    address interface when given). Returns status, lower-case headers, body."""
    args = (["ip", "netns", "exec", netns] if netns else []) + \
        ["curl", "-sS", "-i", "--http1.1", "--max-time", str(timeout)]
    if interface:
        args += ["--interface", interface]
    if method == "HEAD":
        args.append("--head")  # -X HEAD would wait for the body Content-Length announces
    elif method:
        args += ["-X", method]
    for h in headers:
        args += ["-H", h]
    if data is not None:
        args += ["--data-binary", "@-"]
    args.append(url)
    p = subprocess.run(args, input=data if data is not None else b"", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout + 30)
    raw = p.stdout
    status, headers_out = None, {}
    while raw.startswith(b"HTTP/"):
        sep = raw.find(b"\r\n\r\n")
        if sep < 0:
            break
        head, raw = raw[:sep].decode("iso-8859-1"), raw[sep + 4:]
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        headers_out = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers_out[k.strip().lower()] = v.strip()
        if status >= 200:
            break
    return Resp(status, headers_out, raw, p.returncode, p.stderr.decode(errors="replace"))


class Daemon:
    """A running `tlsrptd serve` (optionally inside a network namespace), in tmp (what it
    makes beside itself, like the PostgreSQL spool ./tlsrptd.spool, is the test's own)."""

    def __init__(self, tmp, args, port, host="127.0.0.1", netns=None, name="serve"):
        self.base = "http://%s:%d" % (host if ":" not in host else "[%s]" % host, port)
        self.netns = netns
        self.log_path = os.path.join(tmp, "%s-%d.log" % (name, port))
        argv = [tlsrptd_bin(), "serve", "--rate-limit", "0"] + [str(a) for a in args]
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv  # ip execs tlsrptd: same pid
        with open(self.log_path, "wb") as logf:
            env = dict(os.environ)
            env.setdefault("LC_ALL", "C")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, env=env, cwd=tmp)
        self.rc = None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def get(self, path, **kw):
        kw.setdefault("netns", self.netns)
        return curl(self.base + path, **kw)

    def post(self, path, body, ctype="application/tlsrpt+json", **kw):
        kw.setdefault("netns", self.netns)
        return curl(self.base + path, method="POST", data=body,
                    headers=["Content-Type: " + ctype] + list(kw.pop("headers", ())), **kw)

    def wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.get("/healthz", timeout=5).status == 200:
                return True
            time.sleep(0.1)
        raise AssertionError("tlsrptd serve did not answer /healthz within %.0f s\n%s" %
                             (READY_TIMEOUT, self.log()))

    def stop(self):
        """SIGTERM, reap; the exit code (a hang or a sanitizer report fails)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("tlsrptd serve did not exit on SIGTERM\n%s" % self.log())
        self.rc = self.proc.returncode
        if _SANITIZER_RE.search(self.log()):
            raise AssertionError("sanitizer report in the serve log:\n%s" % self.log()[-6000:])
        return self.rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_daemon(tmp, args, port=None, host="127.0.0.1", netns=None, name="serve"):
    """A ready daemon on `port`, or on a port found free (another one if a test running at
    the same time takes it before the daemon binds it)."""
    for _ in range(1 if port else 5):
        listen = port or free_port()
        d = Daemon(tmp, list(args) + ["--listen", "%s:%d" % (host if ":" not in host else
                                                              "[%s]" % host, listen)],
                   listen, host, netns, name)
        if d.wait_ready():
            return d
        if port or "Address already in use" not in d.log():
            break
    raise AssertionError("tlsrptd serve exited at startup:\n%s" % d.log())


STRACE_SYSCALLS = "pwrite64,pwritev,write,writev,fdatasync,fsync,sendto,sendmsg"


def strace_argv(trace_path, strsize=48):
    """The prefix that runs a command under strace: every thread's writes, syncs and socket
    sends, with the files they go to and strsize bytes of their data, into trace_path."""
    if shutil.which("strace") is None:
        raise AssertionError("strace is missing (scripts/deps.sh test installs it)")
    # LeakSanitizer cannot run under ptrace: the ASan build's leak check is off there
    asan_options = os.environ.get("ASAN_OPTIONS", "")
    asan_options += (":" if asan_options else "") + "detect_leaks=0"
    return ["strace", "-f", "-qq", "-y", "-s", str(strsize), "-o", trace_path, "-e",
            "trace=" + STRACE_SYSCALLS, "-E", "ASAN_OPTIONS=" + asan_options]


def unsynced_acknowledgements(trace_path, ack):
    """From an strace log (strace_argv): every acknowledgement (a write whose text matches
    the regular expression ack) made while a WAL page written before it was not yet synced,
    as (line number, line). A WAL write counts from its start, a sync from its return, an
    acknowledgement from its start: no answer may go out before the disk has what it
    acknowledges. Exact when one acknowledgement is awaited at a time (with several, the
    next batch's writes may come between a sync and the answers it allows)."""
    ack_re = re.compile(ack)
    call_re = re.compile(r"^\d+ +(?:<\.\.\. )?(\w+)")
    dirty = False  # a WAL write not followed by a completed sync yet
    syncing_since_dirty = {}  # pid -> the sync started after the last WAL write
    bad = []
    with open(trace_path, encoding="utf-8", errors="replace") as f:
        for no, line in enumerate(f, 1):
            m = call_re.match(line)
            if not m:
                continue
            pid = line.split()[0]
            name = m.group(1)
            resumed = "resumed>" in line
            if name in ("pwrite64", "pwritev", "write", "writev") and not resumed \
                    and "-wal>" in line:
                dirty = True
                syncing_since_dirty.clear()
            elif name in ("fdatasync", "fsync") and "-wal>" in line and not resumed:
                syncing_since_dirty[pid] = True
                if "unfinished" not in line and line.rstrip().endswith("= 0"):
                    dirty = False
                    syncing_since_dirty.clear()
            elif name in ("fdatasync", "fsync") and resumed:
                if syncing_since_dirty.get(pid) and line.rstrip().endswith("= 0"):
                    dirty = False
                    syncing_since_dirty.clear()
            elif not resumed and ack_re.search(line) and dirty:
                bad.append((no, line.strip()))
    return bad


def free_udp_port():
    return free_port(socket.SOCK_DGRAM)


class Dnsmasq:
    """dnsmasq (Debian's dnsmasq-base) on a free UDP port of 127.0.0.1, answering for
    *.example only from its TXT records ([(name, [string, ...]), ...]) and extra
    arguments. ready(port) says when it answers; a port taken meanwhile by another
    process is retried. Missing dnsmasq is an error, not a skip (CI installs it)."""

    def __init__(self, tmp, txt, ready, extra=()):
        exe = shutil.which("dnsmasq") or next(
            (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.path.exists(p)), None)
        if exe is None:
            raise RuntimeError("dnsmasq is missing: apt-get install dnsmasq-base "
                               "(scripts/deps.sh test)")
        self.log_path = os.path.join(tmp, "dnsmasq.log")
        args = [exe, "--no-daemon", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--local=/example/",
                "--pid-file="] + list(extra)
        for name, strings in txt:
            args.append("--txt-record=%s,%s" % (name, ",".join(strings)))
        for _ in range(5):
            self.port = free_udp_tcp_port()  # dnsmasq binds UDP and TCP
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(args + ["--port=%d" % self.port], stdout=log,
                                             stderr=subprocess.STDOUT)
            if self._wait(ready):
                return
            self.proc.kill()
            self.proc.wait()
        with open(self.log_path) as f:
            raise RuntimeError("dnsmasq did not start: " + f.read())

    def _wait(self, ready):
        deadline = time.monotonic() + 5 * SLOW
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if ready(self.port):
                    return True
            except AssertionError:
                pass
            time.sleep(0.1)
        return False

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
