"""Helpers of the trust suites (test_domains, test_retention, test_tenants,
test_forget): reports written by the tests, a `tlsrptd serve` driven over HTTP with
urllib, and what tlsrptd shows (summary, show, quarantine, the API) as JSON.

Everything is asserted through what tlsrptd shows, so the suites run on either
storage backend (TLSRPTD_BACKEND, see tlsrptd_test.new_db)."""
import calendar
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

DAY = 86400
READY_TIMEOUT = 30 * T.SLOW
STOP_TIMEOUT = 40 * T.SLOW
BY_VALUES = ("domain", "day", "result-type", "reporter", "sending-ip", "mx-host", "policy-type",
             "dkim")


# ---- reports written by the tests -------------------------------------------------------------


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def midnight(t):
    return t - t % DAY


def policy(domain, ok, failures=(), ptype="sts", mx=None, strings=None):
    """One policy entry. failures: (result type, sending IP, MX host, count) tuples."""
    details = [{"result-type": rt, "sending-mta-ip": ip, "receiving-mx-hostname": host,
                "failed-session-count": n} for rt, ip, host, n in failures]
    p = {"policy-type": ptype,
         "policy-string": strings if strings is not None else
         ["version: STSv1", "mode: enforce", "mx: %s" % (mx or "mx." + (domain or "none")),
          "max_age: 86400"],
         "mx-host": [mx or "mx." + (domain or "none")]}
    if domain is not None:
        p["policy-domain"] = domain
    return {"policy": p,
            "summary": {"total-successful-session-count": ok,
                        "total-failure-session-count": sum(f[3] for f in failures)},
            "failure-details": details}


def report(org, rid, start, policies, days=1, contact="tlsrpt-reports@reporter.test"):
    return {"organization-name": org,
            "date-range": {"start-datetime": iso(start),
                           "end-datetime": iso(start + days * DAY - 1)},
            "contact-info": contact, "report-id": rid, "policies": list(policies)}


def dumps(rep):
    return json.dumps(rep, indent=1).encode()


def gz(rep):
    return gzip.compress(dumps(rep))


def mail(rep, domain, submitter="reporter.test", subject=None):
    """A report mailed as RFC 8460 §5.3 says (gzip attachment), as bytes."""
    from email.mime.application import MIMEApplication
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText
    msg = MIMEMultipart("report", report_type="tlsrpt")
    msg["From"] = "tlsrpt@" + submitter
    msg["To"] = "reports@collector.test"
    msg["Subject"] = subject or "Report Domain: %s Submitter: %s Report-ID: <%s>" % (
        domain, submitter, rep["report-id"])
    msg["TLS-Report-Domain"] = domain
    msg["TLS-Report-Submitter"] = submitter
    msg["Message-ID"] = "<%s@%s>" % (abs(hash(rep["report-id"])), submitter)
    msg.attach(MIMEText("This is an aggregate TLS report from %s\n" % submitter))
    part = MIMEApplication(gz(rep), "tlsrpt+gzip")
    part.add_header("Content-Disposition", "attachment",
                    filename="%s!%s!%d!%d.json.gz" % (submitter, domain, 0, 0))
    msg.attach(part)
    return msg.as_bytes()


# ---- what tlsrptd shows ----------------------------------------------------------------------


def row_count(db, table):
    """Rows in one table of db, a SQLite file or a postgresql:// URI."""
    if T.backend() == "sqlite":
        return T.scalar(db, "SELECT COUNT(*) FROM %s" % table)
    psql = T.PSQL if os.path.exists(T.PSQL) else "psql"
    res = subprocess.run([psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", db, "-c",
                          "SELECT COUNT(*) FROM %s" % table],
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise AssertionError("psql: %s" % res.stderr)
    return int(res.stdout.strip())


def cli_json(args, ok=(0,)):
    res = T.run(list(args))
    if res.rc not in ok:
        raise AssertionError("tlsrptd %s failed:\n%r" % (" ".join(map(str, args)), res))
    return json.loads(res.out)


def summary(db, *args):
    return cli_json(["summary", "--db", db, "--format", "json"] + list(args))


def listing(db, *args):
    return cli_json(["summary", "--db", db, "--reports", "--format", "json"] + list(args))


def show(db, ident):
    res = T.run(["show", "--db", db, "--format", "json", str(ident)])
    return json.loads(res.out) if res.rc == 0 else None


def quarantine(db):
    return cli_json(["quarantine", "list", "--db", db, "--format", "json", "--limit",
                     "100000"])


def groups(summary_json):
    """The summary's groups without the keys that say when it was asked."""
    return summary_json["groups"]


# ---- a daemon --------------------------------------------------------------------------------


class Resp:
    def __init__(self, status, body, headers):
        self.status, self.body, self.headers = status, body, headers

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError("not JSON: %r" % self)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<HTTP %s %r>" % (self.status, self.body[:600])


class Daemon:
    """`tlsrptd serve` on a free port of 127.0.0.1; stopped by stop()."""

    def __init__(self, tmp, args, name="serve"):
        # The port was free a moment ago; another test running at the same time (or this
        # test's own extra --listen) may take it first: then start again on a new one.
        for _ in range(5):
            if self._start(tmp, args, name):
                return
        raise AssertionError("tlsrptd serve found no free port:\n%s" % self.log())

    def _start(self, tmp, args, name):
        """True once /healthz answers; False when the port was taken (try another)."""
        self.port = T.free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(tmp, "%s-%d.log" % (name, self.port))
        argv = [T.tlsrptd_bin(), "serve", "--rate-limit", "0",
                "--listen", "127.0.0.1:%d" % self.port] + [str(a) for a in args]
        env = dict(os.environ)
        env.setdefault("LC_ALL", "C")
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                if self.proc.returncode == 75 and "Address already in use" in self.log():
                    return False
                raise AssertionError("tlsrptd serve exited (%s):\n%s" %
                                     (self.proc.returncode, self.log()))
            try:
                if self.request("GET", "/healthz", timeout=5).status == 200:
                    return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError("tlsrptd serve did not answer /healthz:\n%s" % self.log())
            time.sleep(0.1)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def request(self, method, path, body=None, headers=None, timeout=60 * T.SLOW):
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Resp(r.status, r.read(), dict(r.headers))
        except urllib.error.HTTPError as e:
            return Resp(e.code, e.read(), dict(e.headers))

    def get(self, path, token=None):
        return self.request("GET", path,
                            headers={"Authorization": "Bearer " + token} if token else None)

    def post_report(self, body, path="/tlsrpt", ctype="application/tlsrpt+json"):
        return self.request("POST", path, body, {"Content-Type": ctype})

    def signal(self, sig=signal.SIGHUP):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("tlsrptd serve did not stop:\n%s" % self.log())
        if T._SANITIZER_RE.search(self.log()):
            raise AssertionError("sanitizer report in the serve log:\n%s" % self.log()[-6000:])
        return self.proc.returncode

    def wait_log(self, text, timeout=30):
        deadline = time.monotonic() + timeout * T.SLOW
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.1)
        raise AssertionError("%r never appeared in the log:\n%s" % (text, self.log()))


def now():
    return calendar.timegm(time.gmtime())
