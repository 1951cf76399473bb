#!/usr/bin/env python3
"""`tlsrptd serve` run as a service (issue 10): what an operator meets in production.

The REAL binary on free ports of 127.0.0.1; certificates made with the openssl CLI;
requests with curl (helpers shared with test_serve.py).

  Reload        SIGHUP with a garbage certificate, a key that does not match, an
                unreadable key, then a good pair: HTTPS answers throughout with the old
                material, each failure is logged with its reason, and the daemon
                survives many reloads (the libmicrohttpd "Close socket failed" abort)
  Credentials   tls_cert = credential:NAME read from $CREDENTIALS_DIRECTORY (the
                systemd LoadCredential= layout), also on SIGHUP
  ExitConfig    configuration errors exit 78 (EX_CONFIG) with one message naming the
                key, the value and what to do
  PathHint      POST /tlsrpt/<domain>: the domain of policies without policy-domain,
                like the TLS-Report-Domain header of a mail; a bad one is 400

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_service.py [-k NAME]
"""
import base64
import gzip
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402
import test_serve as S  # noqa: E402

SLOW = T.SLOW
EX_CONFIG = 78


def replace_file(path, data):
    """Put data at path the way a renewal does: a new file renamed over the old one."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Reload(S.ServeTestCase):
    def reload_and_wait(self, d, pattern, count):
        """SIGHUP, then wait until the log holds `count` matches of pattern."""
        d.signal(signal.SIGHUP)
        got = S.wait_until(lambda: len(re.findall(pattern, d.log())) >= count, 20 * SLOW, 0.1)
        self.assertTrue(got, "no %r (#%d) in the log after SIGHUP\n%s" %
                        (pattern, count, d.log()[-3000:]))

    def assertServing(self, d, sha, cacert):
        self.assertTrue(d.running(), "tlsrptd serve died (rc %s)\n%s" %
                        (d.proc.poll(), d.log()[-3000:]))
        self.assertEqual(S.peer_cert_sha256(d.port), sha)
        self.assertStatus(d.get("/healthz", cacert=cacert), 200)

    def test_bad_reloads_keep_serving_and_never_abort(self):
        d, certs = self.start_with_two_certs()
        (c1, k1, h1), (c2, k2, h2), (live_c, live_k, _) = certs["one"], certs["two"], certs["live"]
        both = d.cacert
        pid = d.pid
        pem = {n: T.read_bytes(p) for n, p in (("c1", c1), ("k1", k1), ("c2", c2), ("k2", k2))}
        loops = [S.ClientLoop(d, "reload-%d" % i) for i in range(4)]
        for lp in loops:
            lp.start()
        kept = r"SIGHUP: keeping the old certificate and key"
        done = r"SIGHUP: certificate and key reloaded"
        nkept = ndone = 0
        try:
            # 1. a garbage certificate
            replace_file(live_c, b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                                 b"-----END CERTIFICATE-----\n")
            nkept += 1
            self.reload_and_wait(d, kept, nkept)
            self.assertServing(d, h1, both)
            self.assertRegex(d.log(), r"keeping the old certificate and key: tls_cert %s: " %
                             re.escape(live_c))
            # 2. a certificate whose key is not the one given
            replace_file(live_c, pem["c2"])
            nkept += 1
            self.reload_and_wait(d, kept, nkept)
            self.assertServing(d, h1, both)
            self.assertRegex(d.log(), r"tls_key %s does not match the certificate" %
                             re.escape(live_k))
            # 3. a key that cannot be read (a directory in its place)
            os.remove(live_k)
            os.mkdir(live_k)
            nkept += 1
            self.reload_and_wait(d, kept, nkept)
            self.assertServing(d, h1, both)
            self.assertRegex(d.log(), r"tls_key %s: " % re.escape(live_k))
            # 4. a good pair: the new certificate is served
            replace_file(live_k, pem["k2"])
            ndone += 1
            self.reload_and_wait(d, done, ndone)
            self.assertTrue(S.wait_until(lambda: S.peer_cert_sha256(d.port) == h2, 15 * SLOW,
                                         0.2), d.log()[-3000:])
            self.assertServing(d, h2, both)
            # 5. ten more reloads, bad and good in turn
            serving = (h2, "c2", "k2")
            for i in range(10):
                if i % 2 == 0:
                    replace_file(live_k, pem["k1"] if serving[0] == h2 else pem["k2"])
                    nkept += 1
                    self.reload_and_wait(d, kept, nkept)
                else:
                    c, k, h = ("c1", "k1", h1) if serving[0] == h2 else ("c2", "k2", h2)
                    replace_file(live_c, pem[c])
                    replace_file(live_k, pem[k])
                    ndone += 1
                    self.reload_and_wait(d, done, ndone)
                    serving = (h, c, k)
                    self.assertTrue(S.wait_until(lambda: S.peer_cert_sha256(d.port) == h,
                                                 15 * SLOW, 0.2), d.log()[-3000:])
                self.assertServing(d, serving[0], both)
        finally:
            for lp in loops:
                lp.stop()
        self.assertEqual(d.pid, pid)
        results = [r for lp in loops for r in lp.results]
        bad = [r for r in results if r[2] != 201]
        self.assertGreater(len(results), 10)
        self.assertEqual(bad, [], "%d of %d POSTs failed around reloads\n%s" %
                         (len(bad), len(results), d.log()[-3000:]))
        self.assertNotIn("Fatal error", d.log())
        self.stop_ok(d)
        self.assertEqual(sorted(S.report_ids(self.db)), sorted(r[3] for r in results))


# ---- systemd credentials --------------------------------------------------------------------


class Credentials(S.ServeTestCase):
    """The unit's layout: LoadCredential=tls.crt:... and tls.key:... give the service a
    directory ($CREDENTIALS_DIRECTORY) holding read-only copies it may read."""

    def creds_dir(self, cert, key):
        d = self.path("credentials")
        os.makedirs(d, exist_ok=True)
        for name, src in (("tls.crt", cert), ("tls.key", key)):
            dst = os.path.join(d, name)
            if os.path.exists(dst):
                os.chmod(dst, 0o600)
            shutil.copy(src, dst + ".new")
            os.chmod(dst + ".new", 0o400)
            os.replace(dst + ".new", dst)
        return d

    def setenv(self, name, value):
        old = os.environ.get(name)
        os.environ[name] = value

        def restore():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        self.addCleanup(restore)

    def test_credentials_read_at_start_and_on_sighup(self):
        c1, k1, h1 = S.make_cert(self.tmp, "one", "tlsrptd-one")
        c2, k2, h2 = S.make_cert(self.tmp, "two", "tlsrptd-two")
        creds = self.creds_dir(c1, k1)
        port = S.free_port()
        conf = self.write("tlsrptd.conf",
                          "listen_tls = 127.0.0.1:%d\n"
                          "tls_cert = credential:tls.crt\n"
                          "tls_key = credential:tls.key\n"
                          "db = %s\nrate_limit = 0\n" % (port, self.db))
        self.setenv("CREDENTIALS_DIRECTORY", creds)
        d = S.Daemon(self, ["serve", "-c", conf], "https://127.0.0.1:%d" % port, cacert=c1,
                     name="creds").start()
        d.port = port
        self.assertTrue(d.wait_ready(), d.log())
        self.assertEqual(S.peer_cert_sha256(port), h1)
        self.assertStored(d.post(S.report_bytes("via-credentials")), "via-credentials")
        # a restart of the unit refreshes the directory; SIGHUP reads it again
        self.creds_dir(c2, k2)
        d.signal(signal.SIGHUP)
        self.assertTrue(S.wait_until(lambda: S.peer_cert_sha256(port) == h2, 20 * SLOW, 0.2),
                        d.log()[-3000:])
        self.assertIn("certificate and key reloaded", d.log())
        self.stop_ok(d)

    def test_credential_without_credentials_directory_is_exit_78(self):
        os.environ.pop("CREDENTIALS_DIRECTORY", None)
        conf = self.write("tlsrptd.conf",
                          "listen_tls = 127.0.0.1:%d\ntls_cert = credential:tls.crt\n"
                          "tls_key = credential:tls.key\ndb = %s\n" % (S.free_port(), self.db))
        res = T.run(["serve", "-c", conf], timeout=60 * SLOW)
        self.assertExit(res, EX_CONFIG)
        self.assertIn("tls_cert = credential:tls.crt", res.err)
        self.assertIn("CREDENTIALS_DIRECTORY", res.err)
        self.assertIn("LoadCredential=tls.crt:", res.err)


# ---- exit 78 --------------------------------------------------------------------------------


class ExitConfig(S.ServeTestCase):
    """Each configuration error: exit 78, one message naming the key and the value (and
    what to do), printed once; nothing is created."""

    def check(self, args, key, value, log_target=None):
        db = self.path("case-%d.db" % len(os.listdir(self.tmp)))
        argv = ["serve"] + list(args) + ["--db", db]
        if log_target:
            argv += ["--log-target", log_target]
        res = T.run(argv, timeout=60 * SLOW)
        self.assertExit(res, EX_CONFIG)
        text = res.err + (S.read_text(log_target) if log_target and
                          os.path.exists(log_target) else "")
        lines = [ln for ln in res.err.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, "expected one message on stderr\n%r" % res)
        self.assertIn(key, lines[0], res)
        self.assertIn(value, lines[0], res)
        self.assertRegex(lines[0], r": [a-z].*: .*(write|give|create|change|set|make|run|fix|"
                                   r"remove|drop)", "the message says what to do: %r" % lines[0])
        if log_target:
            self.assertEqual(S.read_text(log_target).count(lines[0].split(": ", 1)[1]), 1,
                             "the log file holds the message once")
        self.assertFalse(os.path.exists(db), "a database was created\n%r" % res)
        return text

    def test_each_configuration_error_exits_78(self):
        cert, key, _ = self.cert()
        other_cert, other_key, _ = S.make_cert(self.tmp, "other", "other")
        port = "127.0.0.1:%d" % S.free_port()
        garbage = self.write("garbage.pem", "-----BEGIN CERTIFICATE-----\nxx\n"
                                            "-----END CERTIFICATE-----\n")
        bad_conf = self.write("bad.conf", "# comment\nmax_body = lots\n")
        cases = [
            ("bad listen address", ["--listen", "nonsense"], "listen", "nonsense"),
            ("listen port out of range", ["--listen", "127.0.0.1:99999"], "listen",
             "127.0.0.1:99999"),
            ("address of no interface here", ["--listen", "192.0.2.77:8080"], "listen",
             "192.0.2.77:8080"),
            ("missing certificate", ["--listen-tls", port, "--tls-cert", self.path("none.crt"),
                                     "--tls-key", key], "tls_cert", self.path("none.crt")),
            ("garbage certificate", ["--listen-tls", port, "--tls-cert", garbage,
                                     "--tls-key", key], "tls_cert", garbage),
            ("mismatched key", ["--listen-tls", port, "--tls-cert", cert,
                                "--tls-key", other_key], "tls_key", other_key),
            ("listen_tls without a key", ["--listen-tls", port, "--tls-cert", cert],
             "listen_tls", port),
            ("bad priorities", ["--listen-tls", port, "--tls-cert", cert, "--tls-key", key,
                                "--tls-priorities", "NOPE:+NOTHING"], "tls_priorities",
             "NOPE:+NOTHING"),
            ("missing Maildir", ["--listen", port, "--maildir", self.path("no-maildir")],
             "maildir", self.path("no-maildir")),
            ("unreadable config file", ["-c", self.path("no.conf")], "config file",
             self.path("no.conf")),
            ("bad value in the config file", ["-c", bad_conf], "max_body", "lots"),
        ]
        if os.geteuid() == 0:
            cases.append(("unknown user", ["--listen", port, "--user", "no-such-user-tlsrptd"],
                          "user", "no-such-user-tlsrptd"))
        for name, args, key_, value in cases:
            with self.subTest(name):
                self.check(args, key_, value)
        with self.subTest("logged to a file: once there, once on stderr"):
            self.check(["--listen", "nonsense"], "listen", "nonsense",
                       log_target=self.path("serve.log"))

    def test_a_bad_flag_value_is_a_usage_error(self):
        res = T.run(["serve", "--max-body", "lots", "--db", self.db], timeout=60 * SLOW)
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("max_body = lots", res.err)


# ---- POST PATH/<domain> ---------------------------------------------------------------------


def report_without_domain(report_id):
    r = T.sample_report()
    r["report-id"] = report_id
    for p in r["policies"]:
        p["policy"].pop("policy-domain", None)
    return json.dumps(r).encode()


def report_mail(payload, domain):
    body = base64.encodebytes(gzip.compress(payload)).decode("ascii").replace("\n", "\r\n")
    return ("From: reports@sender.example\r\nTo: tlsrpt@example.com\r\n"
            "Subject: Report Domain: %s\r\nMessage-ID: <hint-1@sender.example>\r\n"
            "TLS-Report-Domain: %s\r\nTLS-Report-Submitter: sender.example\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=tlsrpt; boundary=b1\r\n\r\n"
            "--b1\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
            "--b1\r\nContent-Type: application/tlsrpt+gzip\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b1--\r\n"
            % (domain, domain, body)).encode("ascii")


class PathHint(S.ServeTestCase):
    def domains(self, db):
        return {g["policy_domain"]: g["reports"] for g in self.summary_json(db)["domains"]}

    def test_post_to_path_domain_counts_like_the_mail_header(self):
        body = report_without_domain("hint-1")
        d = self.start_daemon(args=["--rate-limit", "0"])
        r = d.post(body, path="/tlsrpt/Example.COM.")
        self.assertStored(r, "hint-1")
        self.assertEqual(self.domains(self.db), {"example.com": 1})
        # the same report by mail, with TLS-Report-Domain, into another database
        mail_db = self.path("mail.db")
        res = self.ingest("-", db=mail_db, stdin=report_mail(body, "example.com"))
        self.assertExit(res, 0)
        self.assertEqual(self.domains(mail_db), {"example.com": 1})
        # a report that names its domain keeps it
        r = d.post(S.report_bytes("named"), path="/tlsrpt/example.com")
        self.assertStored(r, "named")
        named = {"example.com": 1, "mail.example": 1, "other.example": 1}
        self.assertEqual(self.domains(self.db), named)
        # no hint: no domain
        r = d.post(report_without_domain("no-hint"))
        self.assertStored(r, "no-hint")
        self.assertEqual(self.domains(self.db), {**named, None: 1})
        self.stop_ok(d)

    def test_bad_domain_in_path_is_400_naming_it(self):
        d = self.start_daemon(args=["--rate-limit", "0"])
        for seg in ("bad_domain!", "xn--", "-lead.example", "b%C3%BCcher.example", "a" * 64):
            with self.subTest(seg):
                r = d.post(report_without_domain("bad-" + seg[:8]), path="/tlsrpt/" + seg)
                b = self.assertJsonError(r, 400)
                shown = seg if "%" not in seg else "bücher.example"
                self.assertIn(shown[:40], b.get("detail", ""), r)
        self.assertEqual(T.scalar(self.db, "SELECT COUNT(*) FROM reports"), 0)
        self.stop_ok(d)


if __name__ == "__main__":
    T.main()
