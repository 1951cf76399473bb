"""it_dkim: DKIM verification of mailed reports (RFC 6376, RFC 8460 §3) with a real DNS server.

The test signs report mails itself with Debian's python3-dkim (dkimpy) and RSA keys made by
openssl, and publishes the keys as TXT records with dnsmasq (dnsmasq-base) on port 53 of a
random address of 127.0.0.0/8, so it meets no other DNS server of the machine. tlsrptd looks
keys up through the system resolver: every tlsrptd started here runs in a private mount
namespace (`unshare --mount`, as root) where a resolv.conf naming that dnsmasq (or a server
that never answers) is bind-mounted on /etc/resolv.conf. A missing piece (root, unshare,
dnsmasq, python3-dkim, openssl) is a failure, not a skip. Runs on the backend of
TLSRPTD_BACKEND (it_dkim: SQLite, it_dkim_pg: PostgreSQL).

  Verdicts  a valid signature -> pass (show --format json, summary --by dkim); the body
            changed after signing -> fail; unsigned -> none; a key for s=email only ->
            fail; s=* and no s= -> pass; d= another domain -> pass, not aligned; d= a
            parent of the submitter -> aligned; no key in DNS -> fail
  Not mail  a .json file, and the same signed mail POSTed over HTTP: no verdict (null)
  require   the failures quarantined with their reason, the passes stored: ingest and
            a Maildir pass; dkim = off: no verdict
  DNS       a server that never answers: under require ingest exits 75 within
            dkim_timeout, nothing stored or quarantined; a Maildir message whose key
            lookup fails stays in new/ while the others are stored or quarantined;
            under record the report is stored with temperror
  serve     --maildir under require (a lookup failure is retried, the file stays in new/),
            the API's reports and summary by dkim, an HTTP POST without a verdict
  migrate   the verdicts are copied
  config    dkim = maybe stops every command (exit 78) naming the key
"""
import base64
import gzip
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402


def import_dkimpy():
    """Debian's python3-dkim; a python3 that is not Debian's (pyenv) finds it in
    /usr/lib/python3/dist-packages."""
    try:
        import dkim
        return dkim
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import dkim
        return dkim
    except ImportError:
        raise RuntimeError("python3-dkim is missing: apt-get install python3-dkim "
                           "(scripts/deps.sh test)")


SUBMITTER = "sender.example"
SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"tls-report-domain",
                  b"tls-report-submitter", b"mime-version", b"content-type"]
# selector -> the key record's tags besides k= and p= (None: no key published)
KEYS = {
    "tlsrpt": "s=tlsrpt",
    "star": "s=*",
    "plain": "",
    "email": "s=email",
    "both": "s=email:tlsrpt",
}
DEAD_DOMAIN = "dead.example"  # dnsmasq forwards it to the server that never answers


def which(name):
    path = shutil.which(name) or next(
        (p for p in ("/usr/sbin/" + name, "/sbin/" + name, "/usr/bin/" + name)
         if os.path.exists(p)), None)
    if path is None:
        raise RuntimeError("%s is missing (scripts/deps.sh test)" % name)
    return path


def terminate(proc, timeout):
    """SIGTERM, then SIGKILL after timeout seconds; True when SIGTERM was enough."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def free_loopback_address():
    """A random address of 127.0.0.0/8 whose port 53 is free for UDP and TCP now."""
    for _ in range(100):
        addr = "127.%d.%d.%d" % (random.randint(64, 254), random.randint(1, 254),
                                 random.randint(1, 254))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind((addr, 53))
            t.bind((addr, 53))
            return addr
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no address of 127.0.0.0/8 with port 53 free")


class SilentServer:
    """A DNS server that takes every query (UDP and TCP) and never answers."""

    def __init__(self, addr):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((addr, 53))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((addr, 53))
        self.tcp.listen(16)
        self.queries = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        held = []
        while not self.stop:
            try:
                self.udp.recvfrom(4096)
                self.queries += 1
            except OSError:
                pass
            try:
                held.append(self.tcp.accept()[0])  # held open, never answered
            except OSError:
                pass
        for c in held:
            c.close()

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.udp.close()
        self.tcp.close()


class Dns:
    """dnsmasq serving the keys, a silent server, and a resolv.conf for each."""

    def __init__(self, tmp, records):
        self.tmp = tmp
        self.silent_addr = free_loopback_address()
        self.silent = SilentServer(self.silent_addr)
        exe = which("dnsmasq")
        args = [exe, "--no-daemon", "--bind-interfaces", "--no-resolv", "--no-hosts",
                "--conf-file=/dev/null", "--pid-file=", "--port=53", "--local=/example/",
                "--server=/%s/%s" % (DEAD_DOMAIN, self.silent_addr)]
        args += ["--txt-record=%s,%s" % (name, value) for name, value in records]
        for _ in range(5):  # the address was free a moment ago; another process may take it
            self.addr = free_loopback_address()
            self.log_path = os.path.join(tmp, "dnsmasq.log")
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(args + ["--listen-address=" + self.addr],
                                             stdout=log, stderr=subprocess.STDOUT)
            if self._ready():
                break
            terminate(self.proc, 10)
        else:
            with open(self.log_path) as f:
                raise RuntimeError("dnsmasq did not start: " + f.read())
        self.resolv = self._resolv("resolv.conf", self.addr)
        self.resolv_silent = self._resolv("resolv-silent.conf", self.silent_addr)

    def _resolv(self, name, addr):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("nameserver %s\noptions timeout:1 attempts:1\n" % addr)
        os.chmod(path, 0o644)
        return path

    def _ready(self):
        """dnsmasq answers a query of ours (a TXT record it serves)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                res = T.run(["record", "--check", "--domain", "ready.example", "--dns",
                             self.addr, "--dns-timeout", "1", "--rua",
                             "https://collector.example/tlsrpt"])
                if res.rc == 0:
                    return True
            except AssertionError:
                pass
            time.sleep(0.1)
        return False

    def close(self):
        terminate(self.proc, 10)
        self.silent.close()


def ns_argv(resolv, args):
    """tlsrptd ARGS in a private mount namespace whose /etc/resolv.conf is resolv."""
    return [which("unshare"), "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
            'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"', "sh", resolv,
            T.tlsrptd_bin()] + [str(a) for a in args]


def ns_run(resolv, args, stdin=None, timeout=120):
    env = dict(os.environ)
    env.setdefault("LC_ALL", "C")
    t0 = time.monotonic()
    p = subprocess.run(ns_argv(resolv, args), input=stdin or b"", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env)
    res = T.Result([str(a) for a in args], p.returncode, p.stdout.decode("utf-8", "replace"),
                   p.stderr.decode("utf-8", "replace"), time.monotonic() - t0, 0)
    if T._SANITIZER_RE.search(res.err):
        raise AssertionError("sanitizer report:\n%r" % res)
    if res.rc < 0:
        raise AssertionError("tlsrptd died of signal %d:\n%r" % (-res.rc, res))
    return res


def make_key(tmp, name):
    pem = os.path.join(tmp, name + ".pem")
    subprocess.run([which("openssl"), "genrsa", "-out", pem, "2048"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    der = subprocess.run([which("openssl"), "rsa", "-in", pem, "-pubout", "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    with open(pem, "rb") as f:
        return f.read(), base64.b64encode(der).decode()


_seq = [0]


def report_mail(submitter=SUBMITTER, from_domain=SUBMITTER, report_id=None, failed=7):
    """A report mail as RFC 8460 §5.3 has it, LF line ends (as a Maildir holds it)."""
    _seq[0] += 1
    rid = report_id or "dkim-%d-%d" % (os.getpid(), _seq[0])
    report = T.sample_report(**{"report-id": rid})
    report["policies"][0]["summary"]["total-failure-session-count"] = failed
    gz = base64.encodebytes(gzip.compress(json.dumps(report).encode())).decode()
    return ("From: TLS Reporting <noreply-smtp-tls-reporting@%(from)s>\n"
            "To: tlsrpt@mail.example\n"
            "Date: Tue, 04 Nov 2026 00:10:00 +0000\n"
            "Subject: Report Domain: mail.example Submitter: %(sub)s Report-ID: <%(rid)s>\n"
            "Message-ID: <%(rid)s@%(from)s>\n"
            "TLS-Report-Domain: mail.example\n"
            "TLS-Report-Submitter: %(sub)s\n"
            "MIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\n"
            "\n"
            "--b1\n"
            "Content-Type: text/plain; charset=us-ascii\n"
            "\n"
            "This is an aggregate TLS report from %(sub)s.\n"
            "\n"
            "--b1\n"
            "Content-Type: application/tlsrpt+gzip\n"
            "Content-Transfer-Encoding: base64\n"
            "Content-Disposition: attachment; filename=\"%(sub)s!mail.example!1.json.gz\"\n"
            "\n"
            "%(gz)s"
            "--b1--\n" % {"from": from_domain, "sub": submitter, "rid": rid,
                          "gz": gz}).encode(), rid


class DkimCase(T.TlsrptdTestCase):
    """The keys, the signer and the DNS servers, once for every test."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if os.geteuid() != 0:
            raise RuntimeError("it_dkim needs root (unshare --mount, DNS on port 53)")
        cls.dkim = import_dkimpy()
        cls.ctmp = tempfile.mkdtemp(prefix="tlsrptd-it-dkim-")
        os.chmod(cls.ctmp, 0o755)
        cls.key, pub = make_key(cls.ctmp, "key")
        cls.other_key, _ = make_key(cls.ctmp, "other")  # published nowhere
        records = [("_smtp._tls.ready.example", "v=TLSRPTv1; rua=https://collector.example/tlsrpt")]
        for domain in (SUBMITTER, "elsewhere.example"):
            for sel, tags in KEYS.items():
                rec = "v=DKIM1; k=rsa; " + (tags + "; " if tags else "") + "p=" + pub
                records.append(("%s._domainkey.%s" % (sel, domain), rec))
        cls.dns = Dns(cls.ctmp, records)
        probe = ns_run(cls.dns.resolv, ["--version"])
        if probe.rc != 0:
            raise RuntimeError("cannot run tlsrptd in a private mount namespace with its own "
                               "resolv.conf:\n%r" % probe)

    @classmethod
    def tearDownClass(cls):
        cls.dns.close()
        shutil.rmtree(cls.ctmp, True)
        super().tearDownClass()

    def sign(self, msg, selector="tlsrpt", domain=SUBMITTER, key=None):
        sig = self.dkim.sign(msg, selector.encode(), domain.encode(), key or self.key,
                             include_headers=SIGNED_HEADERS)
        return sig.replace(b"\r\n", b"\n") + msg

    def signed(self, name, selector="tlsrpt", domain=SUBMITTER, **kw):
        msg, rid = report_mail(**kw)
        return self.write(name, self.sign(msg, selector, domain)), rid

    def run_ns(self, args, silent=False, **kw):
        return ns_run(self.dns.resolv_silent if silent else self.dns.resolv, args, **kw)

    def ingest_ns(self, *inputs, opts=(), silent=False):
        return self.run_ns(["ingest", "--db", self.db, "--no-progress"] + list(opts) +
                           list(inputs), silent=silent)

    def show(self, key):
        res = T.run(["show", "--db", self.db, "--format", "json", key])
        self.assertExit(res, 0)
        return json.loads(res.out)

    def dkim_of(self, report_id):
        return self.show(report_id)["dkim"]

    def by_dkim(self):
        res = T.run(["summary", "--db", self.db, "--by", "dkim", "--format", "json"])
        self.assertExit(res, 0)
        return {g["dkim"]: g for g in json.loads(res.out)["groups"]}

    def quarantine(self):
        res = T.run(["quarantine", "list", "--db", self.db, "--format", "json"])
        self.assertExit(res, 0)
        return json.loads(res.out)["entries"]

    def quarantine_total(self):
        res = T.run(["quarantine", "list", "--db", self.db, "--format", "json"])
        self.assertExit(res, 0)
        return json.loads(res.out)["total"]

    def stored_reports(self):
        res = T.run(["summary", "--db", self.db, "--reports", "--format", "json"])
        self.assertExit(res, 0)
        return json.loads(res.out)["reports"]


class Verdicts(DkimCase):
    def test_valid_signature_passes(self):
        path, rid = self.signed("valid.eml")
        res = self.ingest_ns(path)
        self.assertExit(res, 0)
        self.single_outcome(res, "stored")
        self.assertEqual(self.dkim_of(rid),
                         {"result": "pass", "domain": SUBMITTER, "aligned": True})
        groups = self.by_dkim()
        self.assertEqual(set(groups), {"pass"})
        self.assertEqual(groups["pass"]["reports"], 1)
        self.assertEqual(groups["pass"]["successful_sessions"], 1240)
        self.assertEqual(groups["pass"]["failed_sessions"], 7)
        text = T.run(["show", "--db", self.db, rid])
        self.assertIn("dkim             pass, d=sender.example, aligned\n", text.out)
        table = T.run(["summary", "--db", self.db, "--by", "dkim"])
        self.assertRegex(table.out, r"(?m)^pass +1240 +7 ")

    def test_body_changed_after_signing_fails(self):
        msg, rid = report_mail()
        signed = self.sign(msg).replace(b"This is an aggregate TLS report",
                                        b"This is an aggregate TLS-report")
        self.assertExit(self.ingest_ns(self.write("changed.eml", signed)), 0)
        self.assertEqual(self.dkim_of(rid),
                         {"result": "fail", "domain": SUBMITTER, "aligned": True,
                          "reason": "body hash did not verify"})

    def test_header_changed_after_signing_fails(self):
        msg, rid = report_mail()
        signed = self.sign(msg).replace(b"To: tlsrpt@mail.example", b"To: other@mail.example")
        self.assertExit(self.ingest_ns(self.write("header.eml", signed)), 0)
        self.assertEqual(self.dkim_of(rid)["result"], "fail")
        self.assertEqual(self.dkim_of(rid)["reason"], "signature did not verify")

    def test_unsigned_is_none(self):
        msg, rid = report_mail()
        self.assertExit(self.ingest_ns(self.write("unsigned.eml", msg)), 0)
        self.assertEqual(self.dkim_of(rid), {"result": "none", "domain": None, "aligned": False})
        self.assertEqual(set(self.by_dkim()), {"none"})

    def test_key_for_email_only_fails(self):
        path, rid = self.signed("email.eml", selector="email")
        self.assertExit(self.ingest_ns(path), 0)
        d = self.dkim_of(rid)
        self.assertEqual(d["result"], "fail")
        self.assertIn("key is for s=email, not tlsrpt", d["reason"])

    def test_keys_for_every_service_or_tlsrpt_pass(self):
        for sel in ("star", "plain", "both"):
            with self.subTest(selector=sel, record=KEYS[sel]):
                path, rid = self.signed(sel + ".eml", selector=sel)
                self.assertExit(self.ingest_ns(path), 0)
                self.assertEqual(self.dkim_of(rid)["result"], "pass")

    def test_no_key_or_the_wrong_key_fails(self):
        path, rid = self.signed("nokey.eml", selector="missing")
        self.assertExit(self.ingest_ns(path), 0)
        self.assertEqual(self.dkim_of(rid)["reason"],
                         "no key at missing._domainkey.sender.example (no such name)")
        msg, rid = report_mail()
        wrong = self.sign(msg, key=self.other_key)
        self.assertExit(self.ingest_ns(self.write("wrong.eml", wrong)), 0)
        self.assertEqual(self.dkim_of(rid)["result"], "fail")
        self.assertEqual(self.dkim_of(rid)["reason"], "signature did not verify")

    def test_alignment(self):
        # signed by a domain that is not the submitter's: valid, not aligned
        path, rid = self.signed("esp.eml", domain="elsewhere.example")
        self.assertExit(self.ingest_ns(path), 0)
        self.assertEqual(self.dkim_of(rid),
                         {"result": "pass", "domain": "elsewhere.example", "aligned": False})
        # d= a parent of the submitter and of the From domain: aligned
        path, rid = self.signed("parent.eml", submitter="reports.sender.example",
                                from_domain="mx.sender.example")
        self.assertExit(self.ingest_ns(path), 0)
        self.assertEqual(self.dkim_of(rid),
                         {"result": "pass", "domain": SUBMITTER, "aligned": True})
        # the submitter's, but not the From domain's
        path, rid = self.signed("from.eml", from_domain="elsewhere.example")
        self.assertExit(self.ingest_ns(path), 0)
        self.assertFalse(self.dkim_of(rid)["aligned"])

    def test_a_passing_signature_beside_a_failing_one_passes(self):
        msg, rid = report_mail()
        bad = self.dkim.sign(msg, b"tlsrpt", SUBMITTER.encode(), self.other_key,
                             include_headers=SIGNED_HEADERS).replace(b"\r\n", b"\n")
        both = bad + self.sign(msg, domain="elsewhere.example")
        self.assertExit(self.ingest_ns(self.write("two.eml", both)), 0)
        self.assertEqual(self.dkim_of(rid),
                         {"result": "pass", "domain": "elsewhere.example", "aligned": False})

    def test_reports_not_mailed_have_no_verdict(self):
        path, rid = self.signed("valid.eml")
        self.assertExit(self.ingest_ns(path), 0)
        self.assertExit(self.ingest_ns(T.sample("report.json")), 0)
        by_id = {r["report_id"]: r for r in self.stored_reports()}
        self.assertEqual(by_id[rid]["dkim"]["result"], "pass")
        json_id = [k for k in by_id if k != rid][0]
        self.assertIsNone(by_id[json_id]["dkim"])
        self.assertIsNone(self.dkim_of(json_id))
        groups = self.by_dkim()
        self.assertEqual(set(groups), {"pass", None})
        self.assertEqual(groups[None]["reports"], 1)
        table = T.run(["summary", "--db", self.db, "--by", "dkim"])
        self.assertRegex(table.out, r"(?m)^\(no verdict\) +1240 +7 ")

    def test_off_verifies_nothing(self):
        path, rid = self.signed("valid.eml")
        self.assertExit(self.ingest_ns(path, opts=["--dkim", "off"]), 0)
        self.assertIsNone(self.dkim_of(rid))

    def test_verdict_survives_migrate(self):
        src = os.path.join(self.tmp, "source.db")  # SQLite, copied to this run's backend
        path, rid = self.signed("valid.eml")
        res = self.run_ns(["ingest", "--db", src, "--no-progress", path])
        self.assertExit(res, 0)
        res = T.run(["migrate", "--db", src, "--to", self.db])
        self.assertExit(res, 0)
        self.assertEqual(self.dkim_of(rid),
                         {"result": "pass", "domain": SUBMITTER, "aligned": True})


class Require(DkimCase):
    OPTS = ["--dkim", "require"]

    def test_failures_quarantined_passes_stored(self):
        good, good_id = self.signed("good.eml")
        msg, _ = report_mail()
        changed = self.write("changed.eml", self.sign(msg).replace(b"aggregate", b"Aggregate"))
        unsigned = self.write("unsigned.eml", report_mail()[0])
        email, _ = self.signed("email.eml", selector="email")
        want = {
            changed: "DKIM: no valid signature (fail: body hash did not verify)",
            unsigned: "DKIM: no valid signature (none: the message is not signed)",
            email: "DKIM: no valid signature (fail: key is for s=email, not tlsrpt (RFC 8460 "
                   "§3 asks for s=tlsrpt or s=*))",
        }
        res = self.ingest_ns(good, opts=self.OPTS)
        self.assertExit(res, 0)
        for path, reason in want.items():
            res = self.ingest_ns(path, opts=self.OPTS)
            self.assertExit(res, T.EX_DATAERR)
            self.assertEqual(self.single_outcome(res, "rejected").reason, reason)
        self.assertEqual([r["report_id"] for r in self.stored_reports()], [good_id])
        self.assertEqual(self.dkim_of(good_id)["result"], "pass")
        q = self.quarantine()
        self.assertEqual(sorted((e["source"]["name"], e["reason"]) for e in q),
                         sorted(want.items()))
        self.assertEqual(self.summary_json()["totals"]["reports"], 1)

    def test_maildir_pass(self):
        md = self.path("Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub))
        good, good_id = self.signed("Maildir/new/1.good")
        self.write("Maildir/new/2.unsigned", report_mail()[0])
        self.signed("Maildir/new/3.email", selector="email")
        res = self.run_ns(["maildir", "--db", self.db, "--dkim", "require", md])
        self.assertExit(res, 0)
        self.assertEqual(os.listdir(os.path.join(md, "new")), [])
        self.assertEqual(os.listdir(os.path.join(md, "cur")), ["1.good:2,S"])
        self.assertEqual(sorted(os.listdir(os.path.join(md, ".Quarantine", "new"))),
                         ["2.unsigned", "3.email"])
        reasons = {e["source"]["name"]: e["reason"] for e in self.quarantine()}
        self.assertEqual(reasons["2.unsigned"],
                         "DKIM: no valid signature (none: the message is not signed)")
        self.assertIn("(fail: key is for s=email", reasons["3.email"])
        self.assertEqual(self.dkim_of(good_id)["result"], "pass")


class DnsFailure(DkimCase):
    def test_require_timeout_is_temporary(self):
        path, _ = self.signed("valid.eml")
        res = self.ingest_ns(path, opts=["--dkim", "require", "--dkim-timeout", "2"],
                             silent=True)
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertRegex(res.out, r"valid\.eml: temporary failure: DKIM: key lookup failed: "
                                  r"tlsrpt\._domainkey\.sender\.example: no answer")
        self.assertLess(res.elapsed, 2 + 6 * T.SLOW, "dkim_timeout 2 s did not bound it")
        self.assertGreater(self.dns.silent.queries, 0)
        self.assertEqual(self.stored_reports(), [])
        self.assertEqual(self.quarantine(), [])
        # the same mail once DNS answers
        res = self.ingest_ns(path, opts=["--dkim", "require"])
        self.assertExit(res, 0)

    def test_record_stores_temperror(self):
        path, rid = self.signed("valid.eml")
        res = self.ingest_ns(path, opts=["--dkim-timeout", "1"], silent=True)
        self.assertExit(res, 0)
        d = self.dkim_of(rid)
        self.assertEqual(d["result"], "temperror")
        self.assertEqual(d["domain"], SUBMITTER)
        self.assertIn("no answer from the system resolver", d["reason"])
        self.assertEqual(set(self.by_dkim()), {"temperror"})

    def test_maildir_lookup_failure_stays_in_new_others_go_on(self):
        """One message whose key cannot be looked up is no storage outage: the rest of the
        pass goes on, past the rounds of 256 messages too."""
        md = self.path("Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub))
        self.signed("Maildir/new/000.dead", domain=DEAD_DOMAIN)
        for i in range(1, 600):
            self.write("Maildir/new/%03d.unsigned" % i, report_mail()[0])
        self.signed("Maildir/new/600.good")
        res = self.run_ns(["maildir", "--db", self.db, "--dkim", "require", "--dkim-timeout", "2",
                           "--log-format", "text", md])
        self.assertExit(res, T.EX_TEMPFAIL)  # a message left in new/: retry later
        self.assertEqual(os.listdir(os.path.join(md, "new")), ["000.dead"])
        self.assertEqual(os.listdir(os.path.join(md, "cur")), ["600.good:2,S"])
        self.assertEqual(len(os.listdir(os.path.join(md, ".Quarantine", "new"))), 599)
        self.assertRegex(res.err, r"000\.dead: DKIM: key lookup failed: tlsrpt\._domainkey\."
                                  r"dead\.example: .*; left in new/ and retried")
        self.assertNotIn("storage unavailable", res.err)
        self.assertEqual(len(self.stored_reports()), 1)
        self.assertEqual(self.quarantine_total(), 599)


class Serve(DkimCase):
    """serve --maildir under require, with the API."""

    def start(self, md):
        self.port = T.free_port()
        self.log_path = self.path("serve.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ns_argv(self.dns.resolv, ["serve", "--db", self.db, "--listen",
                                          "127.0.0.1:%d" % self.port, "--maildir", md,
                                          "--maildir-rescan", "1", "--dkim", "require",
                                          "--dkim-timeout", "1", "--rate-limit", "0"]),
                stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop)
        deadline = time.monotonic() + 30 * T.SLOW
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail("serve exited:\n" + self.log())
            try:
                if self.http("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.fail("serve did not answer /healthz\n" + self.log())

    def stop(self):
        if not terminate(self.proc, 30):
            self.fail("serve did not exit on SIGTERM\n" + self.log())
        if T._SANITIZER_RE.search(self.log()):
            self.fail("sanitizer report in the serve log:\n" + self.log()[-6000:])

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def http(self, path, body=None, ctype="application/tlsrpt+json"):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=body,
                                     headers={"Content-Type": ctype} if body else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_for(self, what, cond, timeout=30):
        deadline = time.monotonic() + timeout * T.SLOW
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.1)
        self.fail("%s did not happen\n%s" % (what, self.log()[-4000:]))

    def test_serve_maildir_and_api(self):
        md = self.path("Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub))
        self.start(md)
        new, cur = os.path.join(md, "new"), os.path.join(md, "cur")
        quarantine = os.path.join(md, ".Quarantine", "new")
        good, good_id = self.signed("good.eml")
        dead, _ = self.signed("dead.eml", domain=DEAD_DOMAIN)
        unsigned = self.write("unsigned.eml", report_mail()[0])
        for i, p in enumerate((dead, good, unsigned)):
            shutil.copy(p, os.path.join(md, "tmp", "%d.msg" % i))
            os.rename(os.path.join(md, "tmp", "%d.msg" % i), os.path.join(new, "%d.msg" % i))
        self.wait_for("the good mail stored and the unsigned quarantined",
                      lambda: os.listdir(cur) == ["1.msg:2,S"] and
                      os.path.isdir(quarantine) and os.listdir(quarantine) == ["2.msg"])
        # the mail whose key lookup fails waits in new/ and is tried again
        self.wait_for("a second try of 0.msg",
                      lambda: self.log().count("0.msg: DKIM: key lookup failed") >= 2)
        self.assertEqual(os.listdir(new), ["0.msg"])

        # the API shows the verdict; a report POSTed over HTTP has none, even a signed mail
        msg, posted_id = report_mail()
        status, body = self.http("/tlsrpt", self.sign(msg), ctype="application/octet-stream")
        self.assertEqual(status, 201, body)
        posted = json.loads(body)["reports"][0]["id"]
        status, body = self.http("/api/v1/reports")
        self.assertEqual(status, 200, body)
        by_id = {r["report_id"]: r for r in json.loads(body)["reports"]}
        self.assertEqual(by_id[good_id]["dkim"],
                         {"result": "pass", "domain": SUBMITTER, "aligned": True})
        self.assertIsNone(by_id[posted_id]["dkim"])
        status, body = self.http("/api/v1/reports/%d" % posted)
        self.assertEqual((status, json.loads(body)["dkim"]), (200, None))
        status, body = self.http("/api/v1/reports/%d" % by_id[good_id]["id"])
        self.assertEqual(json.loads(body)["dkim"]["result"], "pass")
        status, body = self.http("/api/v1/summary?by=dkim")
        self.assertEqual(status, 200, body)
        groups = {g["dkim"]: g["reports"] for g in json.loads(body)["groups"]}
        self.assertEqual(groups, {"pass": 1, None: 1})


class Config(DkimCase):
    def test_bad_dkim_value_is_refused(self):
        conf = self.write("bad.conf", "db = %s\ndkim = maybe\n" % self.db)
        for args in (["ingest", "-c", conf, T.sample("report.json")],
                     ["ingest", "--db", self.db, "--dkim", "maybe", T.sample("report.json")]):
            res = T.run(args)
            self.assertExit(res, T.EX_CONFIG)
            self.assertIn("dkim = maybe: not off, record or require", res.err)
        res = T.run(["ingest", "--db", self.db, "--dkim-timeout", "0", T.sample("report.json")])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("dkim_timeout = 0", res.err)


if __name__ == "__main__":
    T.main()
