#!/usr/bin/env python3
"""Alerts with the REAL binary, a real webhook receiver and a real MTA.

  Rules     each rule fires exactly once on a scenario of generated reports with
            controlled dates (`tlsrptd alerts --evaluate --now DATE`), and not on the
            clean control; a duplicate report fires nothing; the cooldown holds, and
            after it the alert fires again; per-domain routing
  Channels  a webhook receiver (http.server started by the test) and OpenSMTPD
            delivering into a Maildir (mta.py), through SMTP (libcurl) and through
            the local sendmail (OpenSMTPD's own, run inside its mount namespace);
            what an operator reads: the mail and the chat text; `alerts --test`
  Delivery  `tlsrptd serve`: a restart resends nothing; the receiver down when the
            alert fires and up 30 s later gets it once; SMTP answering 451 is
            retried until it takes the mail; 300 domains failing in one batch give
            one digest per channel naming every domain; /metrics by report day

Every assertion reads what tlsrptd shows (`alerts --format json`, the ingest
lines, /metrics) or what the channels received. Runs on the backend in
TLSRPTD_BACKEND (sqlite, or postgresql with TLSRPTD_PG_STATE: ctest it_alerts_pg).

Needs root, OpenSMTPD, swaks' mta.py helpers (Debian opensmtpd), nsenter
(util-linux) and promtool (prometheus); a missing one is a failure, not a skip.

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_alerts.py [-k NAME]
Set TLSRPTD_SHOW_MESSAGES=1 to print a captured mail and webhook text.
"""
import datetime
import email
import email.policy
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mta  # noqa: E402
import tlsrptd_test as T  # noqa: E402

# the pg_advisory_lock key tlsrptd's collectors take turns at the rules with
# (src/store_alerts.c, "tlsrptA" as a big-endian integer)
EVALUATION_LOCK = 32770340395447361
from test_maildir import Background, files  # noqa: E402

SLOW = T.SLOW
# A quiet period: how long a test waits to see that nothing more happens (no second
# delivery, no evaluation out of turn). The daemon's rounds and retries run on the
# clock, not on the CPU, so a sanitizer build needs a smaller margin here than SLOW
# gives the waits for something to happen, which end as soon as it has.
QUIET = min(SLOW, 2.0)
BASE = datetime.date(2026, 3, 1)  # day 0 of the CLI scenarios
SHOW = os.environ.get("TLSRPTD_SHOW_MESSAGES", "") not in ("", "0")


def day(n):
    return BASE + datetime.timedelta(days=n)


def at(n, hour=6):
    """--now for day n of the scenarios, at hour:00 UTC."""
    return "%s %02d:00" % (day(n).isoformat(), hour)


def yesterday():
    return datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=1)


def report(org, rid, d, domain, ok, failures=(), mx=None):
    """An RFC 8460 report for one policy domain and UTC day d: ok successful sessions and
    failures [(result type, count[, sending IP[, MX host]])]."""
    mx = mx or "mx1." + domain
    details = []
    for i, f in enumerate(failures):
        details.append({"result-type": f[0], "failed-session-count": f[1],
                        "sending-mta-ip": f[2] if len(f) > 2 else "192.0.2.%d" % (i + 10),
                        "receiving-mx-hostname": f[3] if len(f) > 3 else mx})
    end = d + datetime.timedelta(days=1)
    return {"organization-name": org, "report-id": rid, "contact-info": "tlsrpt@" + org.split()[0].lower() + ".example",
            "date-range": {"start-datetime": d.isoformat() + "T00:00:00Z",
                           "end-datetime": end.isoformat() + "T00:00:00Z"},
            "policies": [{"policy": {"policy-type": "sts", "policy-domain": domain,
                                     "policy-string": ["version: STSv1", "mode: enforce",
                                                       "mx: " + mx, "max_age: 86400"],
                                     "mx-host": [mx]},
                          "summary": {"total-successful-session-count": ok,
                                      "total-failure-session-count": sum(f[1] for f in failures)},
                          "failure-details": details}]}


# ---- a webhook receiver ------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every POST (path, headers, JSON body)."""

    def __init__(self, port=None, status=200, delay=0.0):
        self.port = port or T.free_port()
        self.status = status
        self.delay = delay  # seconds between taking a body and answering
        self.messages = []
        self.lock = threading.Lock()
        self.server = None

    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.messages.append({"path": self.path, "headers": dict(self.headers),
                                           "json": json.loads(body.decode("utf-8"))})
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/hooks/T000/B000/secret" % self.port

    def bodies(self):
        with self.lock:
            return [m["json"] for m in self.messages]

    def wait(self, n, timeout):
        end = time.time() + timeout * SLOW
        while time.time() < end and len(self.bodies()) < n:
            time.sleep(0.05)
        return self.bodies()


class TempfailMTA(mta.OpenSMTPD):
    """OpenSMTPD that answers MAIL FROM with 451 while tempfail is set; restart() keeps the
    port and spool and applies the flag."""

    tempfail = False

    def config_text(self, port):
        text = super().config_text(port)
        if not self.tempfail:
            return text
        text = text.replace("listen on 127.0.0.1 port %d hostname %s\n" % (port, self.banner_name),
                            "listen on 127.0.0.1 port %d hostname %s filter \"tempfail\"\n"
                            % (port, self.banner_name))
        return ("filter \"tempfail\" phase mail-from match mail-from regex \".*\" "
                "reject \"451 4.3.0 alerts test: try again later\"\n" + text)

    def restart(self):
        port = self.port
        self._stop()
        self._spawn(port)
        end = time.monotonic() + self.start_timeout
        while time.monotonic() < end:
            if self._greets():
                return
            time.sleep(0.1)
        raise mta.MTAError("OpenSMTPD did not come back on %d\n%s" % (port, self.describe()))


def maildir_messages(md):
    out = []
    for sub in ("new", "cur"):
        for name in files(md, sub):
            with open(os.path.join(md, sub, name), "rb") as f:
                out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
    return out


def wait_mail(md, n, timeout, smtpd=None):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        got = maildir_messages(md)
        if len(got) >= n:
            return got
        time.sleep(0.1)
    got = maildir_messages(md)
    if len(got) < n and smtpd is not None:
        raise AssertionError("%d mails in %s, expected %d\n%s" % (len(got), md, n,
                                                                  smtpd.describe()))
    return got


# ---- the test base -------------------------------------------------------------------------


class AlertCase(T.TlsrptdTestCase):
    def setUp(self):
        super().setUp()
        self.batches = 0

    def ingest_reports(self, reports, expect="stored"):
        """Ingest reports (dicts) in one batch; each must come out as expect."""
        self.batches += 1
        d = self.path("in%03d" % self.batches)
        os.makedirs(d)
        for i, r in enumerate(reports):
            with open(os.path.join(d, "%05d.json" % i), "w") as f:
                json.dump(r, f)
        res = self.ingest(d, opts=["--commit-max", "1000", "-q"] if expect == "stored" else
                          ["--commit-max", "1000"])
        self.assertIn(res.rc, (0, 65), res)
        if expect == "stored":
            self.assertEqual(res.rc, 0, res)
        else:
            for o in T.outcomes(res):
                self.assertEqual(o.status, expect, res)

    def report_ids(self, domain):
        res = T.run(["summary", "--db", self.db, "--reports", "--domain", domain,
                     "--format", "json"])
        self.assertEqual(res.rc, 0, res)
        data = json.loads(res.out)
        rows = data["reports"] if isinstance(data, dict) else data
        return sorted(r["id"] for r in rows)

    def evaluate(self, now=None, *flags, rc=0):
        args = ["alerts", "--evaluate", "--db", self.db] + (["--now", now] if now else []) + \
            list(flags)
        res = T.run(args, timeout=300)
        self.assertEqual(res.rc, rc, res)
        fired = [ln for ln in res.lines() if ln.startswith("alert ")]
        return fired, res

    def alerts(self, *flags):
        res = T.run(["alerts", "--db", self.db, "--format", "json", "--limit", "10000"] +
                    list(flags))
        self.assertEqual(res.rc, 0, res)
        return json.loads(res.out)["alerts"]

    def assertFired(self, fired, expected, res=None):
        """fired: lines 'alert N: RULE: TITLE'; expected: [(rule, domain)] in any order."""
        got = sorted((ln.split(": ")[1], ln.split(": ")[2]) for ln in fired)
        self.assertEqual(got, sorted(expected), "%s\n%r" % (fired, res))


# ---- 1. the rules ---------------------------------------------------------------------------


class Rules(AlertCase):
    def setUp(self):
        super().setUp()
        self.hook = Receiver().start()
        self.addCleanup(self.hook.stop)

    def evaluate(self, now=None, *flags, rc=0):
        return super().evaluate(now, "--alert-webhook", self.hook.url, "--alert-digest", "100",
                                *flags, rc=rc)

    def test_clean_control_fires_nothing(self):
        reps = [report("Google LLC", "c%d" % n, day(n), "clean.example", 5000) for n in range(30)]
        reps += [report("Microsoft Corporation", "cm%d" % n, day(n), "clean.example", 800)
                 for n in range(30)]
        self.ingest_reports(reps)
        for when in (at(30), at(31, 23)):  # (at 33 both would be silent reporters)
            fired, res = self.evaluate(when)
            self.assertEqual(fired, [], res)
        self.assertEqual(self.alerts(), [])
        time.sleep(0.5)
        self.assertEqual(self.hook.bodies(), [])

    def test_new_failure(self):
        dom = "nf.example"
        self.ingest_reports([report("Google LLC", "g%d" % n, day(n), dom, 1000)
                             for n in range(20)])
        fired, res = self.evaluate(at(20))
        self.assertEqual(fired, [], res)
        failing = report("Google LLC", "g20", day(20), dom, 999,
                         [("certificate-expired", 1, "198.51.100.7", "mx1.nf.example")])
        self.ingest_reports([failing])
        fired, res = self.evaluate(at(21))
        self.assertFired(fired, [("new-failure", dom)], res)
        [a] = self.alerts()
        self.assertEqual((a["rule"], a["domain"], a["subject"]),
                         ("new-failure", dom, "certificate-expired"))
        d = a["details"]
        rt = d["result_types"]["certificate-expired"]
        self.assertEqual(rt["failed"], 1)
        self.assertEqual(rt["meaning"], "the MX presented an expired certificate")
        self.assertEqual(rt["fix"], "renew it")
        self.assertEqual(d["mx_hosts"], [{"name": "mx1.nf.example", "failed": 1}])
        self.assertEqual(d["sending_ips"], [{"name": "198.51.100.7", "failed": 1}])
        self.assertEqual(d["reports"], [self.report_ids(dom)[-1]])
        self.assertEqual(d["reporters"], ["Google LLC"])
        self.assertIsNone(d["last_seen"])
        self.assertEqual(d["day"], day(20).isoformat())
        [hook] = self.hook.wait(1, 10)
        self.assertEqual((hook["rule"], hook["domain"]), ("new-failure", dom))
        self.assertIn("certificate-expired", hook["result_types"])
        self.assertEqual(hook["reports"], d["reports"])

        # the next day's same failure is not new; the same report again is a duplicate
        self.ingest_reports([report("Google LLC", "g21", day(21), dom, 999,
                                    [("certificate-expired", 1)])])
        fired, res = self.evaluate(at(22))
        self.assertEqual(fired, [], res)
        self.ingest_reports([failing], expect="duplicate")
        fired, res = self.evaluate(at(22, 7))
        self.assertEqual(fired, [], res)
        self.assertIn("0 new reports evaluated", res.out)

        # back after alert_clean_days (14) without it: new again
        self.ingest_reports([report("Google LLC", "g%d" % n, day(n), dom, 1000)
                             for n in range(22, 37)])
        self.ingest_reports([report("Google LLC", "g37", day(37), dom, 995,
                                    [("certificate-expired", 5)])])
        fired, res = self.evaluate(at(38))
        self.assertFired(fired, [("new-failure", dom)], res)
        again = self.alerts("--rule", "new-failure")[0]
        self.assertEqual(again["details"]["last_seen"], day(21).isoformat())
        self.assertIn("again after 14 days without it", again["title"])
        self.assertEqual(len(self.hook.wait(2, 10)), 2)

    def test_failure_rate(self):
        base = []
        for n in range(10):
            base.append(report("Google LLC", "f%d" % n, day(n), "fr.example", 960,
                               [("starttls-not-supported", 40)]))
            base.append(report("Google LLC", "s%d" % n, day(n), "small.example", 960,
                               [("starttls-not-supported", 40)]))
        self.ingest_reports(base)
        self.evaluate(at(10))  # whatever the baseline raises (new-failure) is not this test's
        before = len(self.alerts())
        self.ingest_reports([
            report("Google LLC", "f10", day(10), "fr.example", 940,
                   [("starttls-not-supported", 50, "203.0.113.5"),
                    ("starttls-not-supported", 10, "203.0.113.6")]),
            # 3 of 8 sessions failed: under alert_min_sessions (10)
            report("Google LLC", "s10", day(10), "small.example", 5,
                   [("starttls-not-supported", 3)]),
        ])
        fired, res = self.evaluate(at(11))
        self.assertFired(fired, [("failure-rate", "fr.example")], res)
        alerts = self.alerts()
        self.assertEqual(len(alerts), before + 1)
        d = alerts[0]["details"]
        self.assertEqual(d["sessions"], {"successful": 940, "failed": 60})
        self.assertAlmostEqual(d["failure_rate"], 0.06)
        self.assertEqual(d["result_types"]["starttls-not-supported"]["failed"], 60)
        self.assertEqual(d["result_types"]["starttls-not-supported"]["fix"],
                         "enable STARTTLS on it")
        self.assertEqual([ip["name"] for ip in d["sending_ips"]], ["203.0.113.5", "203.0.113.6"])
        self.assertEqual(d["reports"], [self.report_ids("fr.example")[-1]])
        self.assertEqual(alerts[0]["title"],
                         "fr.example: 6.0%% of TLS sessions failed on %s (60 of 1000)"
                         % day(10).isoformat())

    def test_rate_jump(self):
        base = []
        for n in range(28):
            base.append(report("Google LLC", "j%d" % n, day(n), "rj.example", 997,
                               [("validation-failure", 3)]))
            base.append(report("Google LLC", "fl%d" % n, day(n), "floor.example", 9999,
                               [("validation-failure", 1)]))
        self.ingest_reports(base)
        self.evaluate(at(28))
        before = len(self.alerts())
        self.ingest_reports([
            report("Google LLC", "j28", day(28), "rj.example", 980, [("validation-failure", 20)]),
            # 0.01% -> 0.05%: five times the baseline, but under alert_jump_floor (1%)
            report("Google LLC", "fl28", day(28), "floor.example", 9995,
                   [("validation-failure", 5)]),
        ])
        fired, res = self.evaluate(at(29))
        self.assertFired(fired, [("rate-jump", "rj.example")], res)
        alerts = self.alerts()
        self.assertEqual(len(alerts), before + 1)
        d = alerts[0]["details"]
        self.assertAlmostEqual(d["failure_rate"], 0.02)
        self.assertAlmostEqual(d["baseline_rate"], 0.003)
        self.assertEqual(d["baseline_days"], 28)
        self.assertEqual(d["reports"], [self.report_ids("rj.example")[-1]])
        self.assertIn("2.0%% on %s, 6.7 times the 28-day baseline (0.30%%)" % day(28).isoformat(),
                      alerts[0]["title"])

    def test_silent_reporter(self):
        reps = [report("Google LLC", "g%d" % n, day(n), "sr.example", 1000) for n in range(14)]
        # Yahoo reported 3 of the 14 days: not "most days", never silent
        reps += [report("Yahoo Inc.", "y%d" % n, day(n), "sr.example", 100) for n in (11, 12, 13)]
        self.ingest_reports(reps)
        for when in (at(14), at(16)):
            fired, res = self.evaluate(when)
            self.assertEqual(fired, [], res)
        fired, res = self.evaluate(at(17))
        self.assertFired(fired, [("silent-reporter", "sr.example")], res)
        [a] = self.alerts()
        self.assertEqual(a["subject"], "Google LLC")
        self.assertEqual(a["details"]["last_day"], day(13).isoformat())
        self.assertEqual(a["details"]["days_reported"], 14)
        self.assertEqual(a["details"]["silent_days"], 3)
        google = [i for i in self.report_ids("sr.example")]
        self.assertIn(a["details"]["reports"][0], google)
        for when in (at(18), at(19, 12)):
            fired, res = self.evaluate(when)
            self.assertEqual(fired, [], res)  # the same silence alerts once
            self.assertIn("0 alerts raised, 0 held back", res.out)  # finding it again: no repeat
        self.assertEqual(self.alerts()[0]["suppressed"], 0)

    def test_quarantine_spike(self):
        bad = [{"organization-name": "Junk", "report-id": ""} for _ in range(1)]
        for i in range(5):
            self.write("junk/%d.json" % i, json.dumps(dict(bad[0], n=i)))
        res = self.ingest(self.path("junk"))
        self.assertEqual(res.rc, 65, res)
        fired, res = self.evaluate(None, "--alert-quarantine", "5")
        self.assertEqual(fired, [], res)  # 5 is not more than 5
        self.write("junk2/x.json", "not json at all")
        self.assertEqual(self.ingest(self.path("junk2")).rc, 65)
        fired, res = self.evaluate(None, "--alert-quarantine", "5")
        self.assertFired(fired, [("quarantine-spike", "quarantine")], res)
        [a] = self.alerts()
        self.assertIsNone(a["domain"])
        self.assertEqual(a["details"]["rejected"], 6)
        self.assertEqual(len(a["details"]["quarantine"]), 6)
        fired, res = self.evaluate(None, "--alert-quarantine", "5")
        self.assertEqual(fired, [], res)
        self.assertEqual(self.alerts()[0]["suppressed"], 0)

    def test_cooldown_holds_then_fires_again(self):
        dom = "cd.example"
        self.ingest_reports([report("Google LLC", "d0", day(0), dom, 50,
                                    [("certificate-expired", 50)])])
        fired, res = self.evaluate(at(1))
        self.assertFired(fired, [("failure-rate", dom), ("new-failure", dom)], res)
        self.ingest_reports([report("Google LLC", "d1", day(1), dom, 50,
                                    [("certificate-expired", 50)])])
        fired, res = self.evaluate(at(1, 16))  # 10 h later: within alert_cooldown (24 h)
        self.assertEqual(fired, [], res)
        self.assertIn("held back (cooldown): failure-rate", res.out)
        [fr] = self.alerts("--rule", "failure-rate")
        self.assertEqual(fr["suppressed"], 1)
        self.ingest_reports([report("Google LLC", "d2", day(2), dom, 50,
                                    [("certificate-expired", 50)])])
        fired, res = self.evaluate(at(2, 7))  # 25 h after the first
        self.assertFired(fired, [("failure-rate", dom)], res)
        self.assertEqual(len(self.alerts("--rule", "failure-rate")), 2)
        rules = sorted(b["rule"] for b in self.hook.wait(3, 10))
        self.assertEqual(rules, ["failure-rate", "failure-rate", "new-failure"])

    def test_per_domain_routing(self):
        a, b = Receiver().start(), Receiver().start()
        self.addCleanup(a.stop)
        self.addCleanup(b.stop)
        self.ingest_reports([report("Google LLC", "r%d" % i, day(0), dom, 10,
                                    [("certificate-expired", 90)])
                             for i, dom in enumerate(["a.example", "x.b.example",
                                                      "c.example"])])
        fired, res = self.evaluate(at(1), "--alert-webhook", a.url + " a.example",
                                   "--alert-webhook", b.url + " *.b.example")
        self.assertEqual(len(fired), 6, res)
        time.sleep(0.5)
        self.assertEqual({m["domain"] for m in a.wait(2, 10)}, {"a.example"})
        self.assertEqual({m["domain"] for m in b.wait(2, 10)}, {"x.b.example"})
        self.assertEqual(len(a.bodies()) + len(b.bodies()), 4)
        self.assertEqual({m["domain"] for m in self.hook.wait(6, 10)},
                         {"a.example", "x.b.example", "c.example"})

    def test_hostile_values_cannot_format_the_chat(self):
        self.ingest_reports([report("<!channel> *Evil* & Co", "ev1", day(0), "evil.example", 10,
                                    [("certificate-expired`<@U123>", 90, "192.0.2.1",
                                      "mx.evil.example`<https://x.example|click>")])])
        self.evaluate(at(1), "--alert-rules", "failure-rate")
        texts = [m["text"] for m in self.hook.wait(1, 10) if m.get("domain") == "evil.example"]
        self.assertEqual(len(texts), 1)
        for bad in ("<!channel>", "<@U123>", "<https://", "& Co"):
            self.assertNotIn(bad, texts[0])
        self.assertIn("`?!channel? *Evil* ? Co`", texts[0])

    def test_bad_alert_settings_are_usage_errors(self):
        for flags, words in ((["--alert-failure-rate", "150%"], "alert_failure_rate"),
                             (["--alert-jump", "0.5"], "alert_jump"),
                             (["--alert-rules", "new-failure,nope"], "alert_rules"),
                             (["--alert-webhook", "ftp://x"], "alert_webhook"),
                             (["--alert-email", "not-an-address"], "alert_email")):
            res = T.run(["alerts", "--db", self.db] + flags)
            self.assertEqual(res.rc, 64, res)
            self.assertIn(words, res.err)


# ---- 2. channels: webhook, SMTP and sendmail into a real MTA --------------------------------


class Channels(AlertCase):
    def setUp(self):
        super().setUp()
        ok, why = mta.available()
        self.assertTrue(ok, "OpenSMTPD is needed: %s" % why)
        self.md = self.path("Maildir")
        self.smtpd = mta.OpenSMTPD(self.md, self.tmp).start()
        self.addCleanup(self.smtpd.stop)
        self.hook = Receiver().start()
        self.addCleanup(self.hook.stop)
        self.ingest_reports([report("Google LLC", "ch1", day(0), "mail.example", 1180,
                                    [("certificate-expired", 96, "209.85.220.41",
                                      "mx1.mail.example"),
                                     ("certificate-expired", 24, "209.85.220.42",
                                      "mx1.mail.example")])])
        self.id = self.report_ids("mail.example")[0]

    def test_mail_through_smtp_reads_well(self):
        fired, res = self.evaluate(at(1), "--alert-email", "ops@reports.example",
                                   "--alert-smtp", "127.0.0.1:%d" % self.smtpd.port,
                                   "--alert-from", "tlsrptd@collector.example",
                                   "--alert-rules", "failure-rate")
        self.assertFired(fired, [("failure-rate", "mail.example")], res)
        [m] = wait_mail(self.md, 1, 30, self.smtpd)
        self.assertEqual(m["Subject"], "[tlsrptd] mail.example: 9.2%% of TLS sessions failed on "
                         "%s (120 of 1300)" % day(0).isoformat())
        self.assertEqual(m["To"], "ops@reports.example")
        self.assertIn("tlsrptd@collector.example", m["From"])
        self.assertEqual(m["Auto-Submitted"], "auto-generated")
        body = m.get_content()
        for text in ("Domain:       mail.example", "Reported by:  Google LLC",
                     "certificate-expired: 120 failed sessions",
                     "What it means: the MX presented an expired certificate",
                     "What to do:    renew it", "MX hosts:      mx1.mail.example (120)",
                     "209.85.220.41 (96), 209.85.220.42 (24)",
                     "tlsrptd show %d" % self.id, "Evidence: report %d" % self.id):
            self.assertIn(text, body)
        self.assertTrue(all(len(ln) <= 78 for ln in body.splitlines()), body)
        if SHOW:
            print("\n--- alert mail ---\n%s" % m.as_string(), file=sys.stderr)
        [a] = self.alerts()
        [dl] = a["deliveries"]
        self.assertEqual((dl["channel"], dl["state"], dl["attempts"]),
                         ("email ops@reports.example", "sent", 1))

    def test_mail_through_the_local_sendmail(self):
        sendmail = "nsenter -t %d -m -- /usr/sbin/sendmail -i -t" % self.smtpd.proc.pid
        fired, res = self.evaluate(at(1), "--alert-email", "ops@reports.example",
                                   "--alert-sendmail", sendmail, "--alert-rules", "new-failure")
        self.assertFired(fired, [("new-failure", "mail.example")], res)
        [m] = wait_mail(self.md, 1, 30, self.smtpd)
        self.assertIn("certificate-expired for the first time", m["Subject"])
        self.assertIn("never reported before", m.get_content())
        self.assertIn("What to do:    renew it", m.get_content())

    def test_webhook_reads_well_in_chat(self):
        fired, res = self.evaluate(at(1), "--alert-webhook", self.hook.url,
                                   "--alert-rules", "failure-rate")
        [m] = self.hook.wait(1, 10)
        self.assertEqual(self.hook.messages[0]["path"], "/hooks/T000/B000/secret")
        self.assertEqual(self.hook.messages[0]["headers"]["Content-Type"], "application/json")
        self.assertEqual((m["rule"], m["domain"]), ("failure-rate", "mail.example"))
        self.assertEqual(m["reports"], [self.id])
        self.assertEqual(m["result_types"]["certificate-expired"]["failed"], 120)
        self.assertEqual(m["sessions"], {"successful": 1180, "failed": 120})
        text = m["text"]
        self.assertTrue(text.startswith(":rotating_light: *failure-rate* for `mail.example`: "
                                        "9.2% of TLS sessions failed"), text)
        for piece in ("`certificate-expired`: 120 failed sessions. The MX presented an expired "
                      "certificate: renew it.", "`mx1.mail.example` (120)",
                      "`209.85.220.41` (96)", "`tlsrptd show %d`" % self.id):
            self.assertIn(piece, text)
        if SHOW:
            print("\n--- webhook text ---\n%s\n--- webhook JSON ---\n%s" %
                  (text, json.dumps(m, indent=1, sort_keys=True)), file=sys.stderr)
        # the channel's name in the history hides the URL's secret path
        [a] = self.alerts()
        self.assertEqual(a["deliveries"][0]["state"], "sent")
        self.assertNotIn("secret", a["deliveries"][0]["channel"])

    def test_alerts_test_says_which_channel_worked(self):
        dead = "http://127.0.0.1:%d/hook" % T.free_port()
        res = T.run(["alerts", "--test", "--alert-webhook", self.hook.url,
                     "--alert-webhook", dead, "--alert-email", "ops@reports.example",
                     "--alert-smtp", "127.0.0.1:%d" % self.smtpd.port])
        self.assertEqual(res.rc, 75, res)
        lines = res.lines()
        self.assertRegex(lines[0], r"^webhook 127\.0\.0\.1:\d+ #[0-9a-f]{8}: ok$")
        self.assertRegex(lines[1], r"^webhook 127\.0\.0\.1:\d+ #[0-9a-f]{8}: failed: .*"
                                   r"(refused|connect)")
        self.assertEqual(lines[2], "email ops@reports.example: ok")
        self.assertEqual(lines[3], "alerts --test: 2 of 3 channels worked")
        [m] = self.hook.wait(1, 10)
        self.assertEqual(m["rule"], "test")
        [mail] = wait_mail(self.md, 1, 30, self.smtpd)
        self.assertIn("this channel works", mail["Subject"])
        res = T.run(["alerts", "--test"])
        self.assertEqual(res.rc, 78, res)


# ---- 3. delivery you can trust: serve ------------------------------------------------------


class Serve:
    """tlsrptd serve in the background, with helpers to POST reports and scrape."""

    def __init__(self, case, args, name="serve"):
        self.port = T.free_port()
        self.case = case
        self.bg = Background(case, ["serve", "--listen", "127.0.0.1:%d" % self.port,
                                    "--db", case.db, "--spool-dir", case.path("spool"),
                                    "--verbose"] + list(args), name)
        case.assertTrue(self.bg.wait_log("serving", 30 * SLOW), self.bg.log())

    def post(self, rep):
        req = urllib.request.Request("http://127.0.0.1:%d/tlsrpt" % self.port,
                                     data=json.dumps(rep).encode(),
                                     headers={"Content-Type": "application/tlsrpt+json"})
        try:
            with urllib.request.urlopen(req, timeout=60 * SLOW) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                    timeout=60 * SLOW) as r:
            return r.read().decode()

    def stop(self):
        rc, _ = self.bg.stop()
        self.case.assertEqual(rc, 0, self.bg.log()[-3000:])
        self.case.assertNotRegex(self.bg.log(), T._SANITIZER_RE)


def wait_until(pred, timeout, step=0.2):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class Delivery(AlertCase):
    def test_restart_resends_nothing(self):
        hook = Receiver().start()
        self.addCleanup(hook.stop)
        rep = report("Google LLC", "rs1", yesterday(), "restart.example", 60,
                     [("certificate-expired", 40)])
        s = Serve(self, ["--alert-webhook", hook.url])
        self.assertEqual(s.post(rep), 201)
        got = hook.wait(2, 60)
        self.assertEqual(sorted(b["rule"] for b in got), ["failure-rate", "new-failure"],
                         s.bg.log()[-3000:])
        s.stop()
        before = self.alerts()
        s = Serve(self, ["--alert-webhook", hook.url, "--alert-interval", "10"], "serve2")
        self.assertEqual(s.post(rep), 200)  # the same report again: a duplicate
        self.assertTrue(s.bg.wait_log("alerts:", 30 * SLOW), s.bg.log())
        time.sleep(15 * QUIET)  # the start-up round, a commit's round and a timed round
        s.stop()
        self.assertEqual(len(hook.bodies()), 2, hook.bodies())
        self.assertEqual(self.alerts(), before)
        self.assertTrue(all(d["state"] == "sent" and d["attempts"] == 1
                            for a in before for d in a["deliveries"]), before)

    def test_stop_during_a_delivery_resends_nothing(self):
        """SIGTERM while the receiver holds a POST it has taken: the transfer is let finish and
        marked sent, so the next start does not send it again."""
        hook = Receiver(delay=3.0).start()
        self.addCleanup(hook.stop)
        s = Serve(self, ["--alert-webhook", hook.url, "--alert-rules", "failure-rate"])
        self.assertEqual(s.post(report("Google LLC", "st1", yesterday(), "stop.example", 10,
                                       [("certificate-expired", 90)])), 201)
        self.assertEqual(len(hook.wait(1, 60)), 1, s.bg.log()[-3000:])
        s.stop()  # the receiver answers 3 s after it took the body
        hook.delay = 0
        s = Serve(self, ["--alert-webhook", hook.url, "--alert-rules", "failure-rate"], "serve2")
        time.sleep(10 * QUIET)
        s.stop()
        self.assertEqual(len(hook.bodies()), 1, s.bg.log()[-3000:])
        [a] = self.alerts()
        self.assertEqual((a["deliveries"][0]["state"], a["deliveries"][0]["attempts"]),
                         ("sent", 1))

    @T.postgresql_only("collectors sharing a database take turns at the rules")
    def test_rules_wait_while_another_collector_evaluates(self):
        """Another collector's alert thread at work (the advisory lock they take turns
        with, held here by psql): this one evaluates nothing meanwhile, and as soon as the
        other is done it evaluates what it stored."""
        hook = Receiver().start()
        self.addCleanup(hook.stop)
        other = T.PsqlSession(self.db)
        self.addCleanup(other.close)
        other.send("SELECT pg_advisory_lock(%d);\n" % EVALUATION_LOCK)
        s = Serve(self, ["--alert-webhook", hook.url, "--alert-rules", "failure-rate"])
        self.assertEqual(s.post(report("Google LLC", "tw1", yesterday(), "turns.example", 10,
                                       [("certificate-expired", 90)])), 201)
        time.sleep(4 * QUIET)  # a commit's round and retries, a second apart
        self.assertEqual((self.alerts(), hook.bodies()), ([], []), s.bg.log()[-3000:])
        other.send("SELECT pg_advisory_unlock(%d);\n" % EVALUATION_LOCK)
        got = hook.wait(1, 30)
        self.assertEqual([(b["rule"], b["domain"]) for b in got],
                         [("failure-rate", "turns.example")], s.bg.log()[-3000:])
        self.assertEqual(len(self.alerts()), 1)
        s.stop()

    @T.postgresql_only("collectors sharing a database take turns at the rules")
    def test_cli_evaluation_waits_for_its_turn(self):
        """`alerts --evaluate` while a collector's alert thread is at work (the advisory lock,
        held here by psql): it says so and waits, and evaluates once the other is done."""
        other = T.PsqlSession(self.db)
        self.addCleanup(other.close)
        self.ingest_reports([report("Google LLC", "cw1", yesterday(), "cliturn.example", 10,
                                    [("certificate-expired", 90)])])
        other.send("SELECT pg_advisory_lock(%d);\n" % EVALUATION_LOCK)
        p = subprocess.Popen([T.tlsrptd_bin(), "alerts", "--evaluate", "--db", self.db,
                              "--alert-rules", "failure-rate"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(3 * QUIET)
        self.assertIsNone(p.poll(), "evaluated while another collector had the turn")
        self.assertEqual(self.alerts(), [])
        other.send("SELECT pg_advisory_unlock(%d);\n" % EVALUATION_LOCK)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, (out, err))
        self.assertIn(b"another collector is evaluating the rules", err)
        self.assertEqual([(a["rule"], a["domain"]) for a in self.alerts()],
                         [("failure-rate", "cliturn.example")])

    def test_receiver_down_then_up_30s_later_gets_it_once(self):
        port = T.free_port()
        hook = Receiver(port)
        self.addCleanup(hook.stop)
        s = Serve(self, ["--alert-webhook", hook.url, "--alert-rules", "failure-rate"])
        self.assertEqual(s.post(report("Google LLC", "dn1", yesterday(), "down.example", 10,
                                       [("sts-policy-fetch-error", 90)])), 201)

        def failing():
            a = self.alerts()
            return a and a[0]["deliveries"][0]["attempts"] >= 2 and a[0]
        a = wait_until(failing, 60)
        self.assertTrue(a, s.bg.log()[-3000:])
        self.assertEqual(a["deliveries"][0]["state"], "pending")
        self.assertRegex(a["deliveries"][0]["last_error"], "(?i)connect|refused")
        t0 = time.time()
        time.sleep(30)
        hook.start()
        got = hook.wait(1, 120)
        self.assertEqual(len(got), 1, s.bg.log()[-3000:])
        print("\ndelivered %.1f s after the receiver came up" % (time.time() - t0 - 30),
              file=sys.stderr)
        time.sleep(10 * QUIET)
        s.stop()
        self.assertEqual(len(hook.bodies()), 1)
        [a] = self.alerts()
        d = a["deliveries"][0]
        self.assertEqual(d["state"], "sent")
        self.assertGreaterEqual(d["attempts"], 3)
        self.assertIsNone(d["last_error"])

    def test_smtp_451_is_retried(self):
        ok, why = mta.available()
        self.assertTrue(ok, "OpenSMTPD is needed: %s" % why)
        md = self.path("Maildir")
        smtpd = TempfailMTA(md, self.tmp)
        smtpd.tempfail = True
        smtpd.start()
        self.addCleanup(smtpd.stop)
        s = Serve(self, ["--alert-email", "ops@reports.example",
                         "--alert-smtp", "127.0.0.1:%d" % smtpd.port,
                         "--alert-rules", "failure-rate"])
        self.assertEqual(s.post(report("Google LLC", "tf1", yesterday(), "tempfail.example", 10,
                                       [("certificate-not-trusted", 90)])), 201)

        def refused_twice():
            a = self.alerts()
            return a and a[0]["deliveries"][0]["attempts"] >= 2 and a[0]
        a = wait_until(refused_twice, 90)
        self.assertTrue(a, s.bg.log()[-3000:])
        self.assertIn("451", a["deliveries"][0]["last_error"])
        self.assertEqual(maildir_messages(md), [])
        smtpd.tempfail = False
        smtpd.restart()
        [m] = wait_mail(md, 1, 120, smtpd)
        self.assertIn("tempfail.example", m["Subject"])
        time.sleep(5 * QUIET)
        s.stop()
        self.assertEqual(len(maildir_messages(md)), 1)
        d = self.alerts()[0]["deliveries"][0]
        self.assertEqual(d["state"], "sent")
        self.assertGreaterEqual(d["attempts"], 3)

    def test_storm_of_300_domains_is_one_digest_per_channel(self):
        """A commit wakes the rules: 600 alerts (failure-rate and new-failure for each domain)
        go out as one digest per channel."""
        ok, why = mta.available()
        self.assertTrue(ok, "OpenSMTPD is needed: %s" % why)
        md = self.path("Maildir")
        smtpd = mta.OpenSMTPD(md, self.tmp).start()
        self.addCleanup(smtpd.stop)
        hook = Receiver().start()
        self.addCleanup(hook.stop)
        # a report over the default max_policy_domains (100) is refused: allow 300
        s = Serve(self, ["--alert-webhook", hook.url, "--alert-email", "ops@reports.example",
                         "--alert-smtp", "127.0.0.1:%d" % smtpd.port,
                         "--max-policy-domains", "300"])
        domains = ["d%03d.storm.example" % i for i in range(300)]
        # one batch: a hosting provider's report on 300 domains, one POST, one commit
        storm = report("Google LLC", "storm-1", yesterday(), domains[0], 70,
                       [("certificate-expired", 30)])
        storm["policies"] = [report("Google LLC", "x", yesterday(), d, 70,
                                    [("certificate-expired", 30)])["policies"][0]
                             for d in domains]
        self.assertEqual(s.post(storm), 201)
        got = hook.wait(1, 120)
        [m] = wait_mail(md, 1, 120, smtpd)
        time.sleep(5 * QUIET)
        s.stop()
        self.assertEqual(len(hook.bodies()), 1, [b.get("count") for b in hook.bodies()])
        self.assertEqual(len(maildir_messages(md)), 1)
        digest = got[0]
        self.assertEqual(digest["rule"], "digest")
        self.assertEqual(digest["count"], 600)
        self.assertEqual(sorted(digest["domains"]), domains)
        self.assertEqual(len(digest["alerts"]), 600)
        for d in domains:
            self.assertIn("`%s`" % d, digest["text"])
        self.assertEqual(m["Subject"], "[tlsrptd] 600 alerts for 300 domains")
        body = m.get_content()
        for d in domains:
            self.assertIn("  %s: 30.0%% of sessions failed" % d, body)
        states = {(dl["state"], dl["digest"]) for a in self.alerts() for dl in a["deliveries"]}
        self.assertEqual(states, {("sent", 600)})
        if SHOW:
            print("\n--- digest text ---\n%s\n--- digest mail ---\n%s" %
                  (digest["text"], m.as_string()), file=sys.stderr)

    def test_metrics_by_report_day(self):
        s = Serve(self, [])
        y = yesterday()
        empty = s.get("/metrics")  # no report of yesterday yet: no day series, no crash
        self.assertIn("tlsrptd_report_day_timestamp_seconds ", empty)
        self.assertNotIn("tlsrptd_report_day_sessions{", empty)
        self.assertEqual(s.post(report("Google LLC", "m1", y, "metrics.example", 940,
                                       [("certificate-expired", 50), ("tlsa-invalid", 10)])),
                         201)
        self.assertEqual(s.post(report("Google LLC", "m0", y - datetime.timedelta(days=1),
                                       "metrics.example", 100, [("starttls-not-supported", 5)])),
                         201)
        text = s.get("/metrics")
        s.stop()
        p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        midnight = int(datetime.datetime(y.year, y.month, y.day,
                                         tzinfo=datetime.timezone.utc).timestamp())
        day_lines = ['tlsrptd_report_day_sessions{policy_domain="metrics.example",'
                     'result="successful"} 940',
                     'tlsrptd_report_day_sessions{policy_domain="metrics.example",'
                     'result="failed"} 60',
                     'tlsrptd_report_day_failed_sessions{policy_domain="metrics.example",'
                     'result_type="certificate-expired"} 50',
                     'tlsrptd_report_day_failed_sessions{policy_domain="metrics.example",'
                     'result_type="tlsa-invalid"} 10']
        for line in ['tlsrptd_report_day_timestamp_seconds %d' % midnight] + day_lines:
            self.assertIn(line + "\n", text)
        self.assertNotIn('result_type="starttls-not-supported"} 5\ntlsrptd_report_day', text)
        self.assertIn('tlsrptd_last_report_timestamp_seconds{policy_domain="metrics.example",'
                      'reporter="Google LLC"} %d' % midnight, text)

        # the shipped rules, fed this scrape for an hour: failure rate and two new types
        rules = os.path.join(T.PROJECT, "contrib", "prometheus", "tlsrptd-rules.yml")
        series = "".join("      - series: '%s'\n        values: '%sx2'\n" % tuple(ln.rsplit(" ", 1))
                         for ln in day_lines)
        alerts = ("      - eval_time: 1h\n        alertname: TlsrptdFailureRate\n"
                  "        exp_alerts:\n          - exp_labels: {severity: warning, "
                  "policy_domain: metrics.example}\n            exp_annotations:\n"
                  "              summary: \"metrics.example: 6% of TLS sessions failed in the "
                  "last day's reports\"\n              description: \"Senders could not set up "
                  "a TLS session they trust with the MX hosts of metrics.example; those that "
                  "require TLS (MTA-STS enforce, DANE) do not deliver over it. What failed and "
                  "why: tlsrptd summary --domain metrics.example --by result-type --since 2d\"\n")
        test = self.write("rules.test.yml",
                          "rule_files: [%s]\nevaluation_interval: 1h\ntests:\n  - interval: 1h\n"
                          "    input_series:\n%s    alert_rule_test:\n%s" % (rules, series, alerts))
        p = subprocess.run(["promtool", "test", "rules", test], capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

if __name__ == "__main__":
    T.main()
