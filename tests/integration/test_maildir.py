#!/usr/bin/env python3
"""The Maildir reader (docs/architecture.md): `tlsrptd maildir [--watch]` and
`tlsrptd serve --maildir`, driven from outside with the REAL binary, real
Maildirs on disk and real databases (SQLite, or PostgreSQL with
TLSRPTD_BACKEND=postgresql).

  Corpus      every corpus .eml in new/: accepted ones in cur/ (seen), the
              non-report in .Quarantine, totals equal to EXPECTED.tsv for those files
  Semantics   source headers stored, TLS-Report-Domain fallback, flags kept, no file
              ever replaced, dot files and directories left alone, size limit,
              not a Maildir (74)
  Crash       SIGKILL during --watch over 1,500 messages, then a second run:
              new/ empty, everything in cur/ or quarantine, every report stored once
  Storage     database locked: messages stay in new/ (exit 75, or retried with
              backoff under --watch) and are processed once it is writable;
              PostgreSQL stopped and started again under --watch: the same
  Serve       `serve --maildir`: mail dropped into new/ is stored within seconds,
              beside the HTTP endpoint; SIGTERM exits 0

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_maildir.py [-k NAME]
"""
import email
import email.policy
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

SLOW = T.SLOW


# ---- building Maildirs and messages ---------------------------------------------------------


def make_maildir(root):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    return root


def deliver(root, name, data):
    """Deliver like an MDA: write into tmp/, then rename into new/."""
    tmp = os.path.join(root, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(root, "new", name))


def files(root, sub):
    d = os.path.join(root, sub)
    return sorted(n for n in os.listdir(d) if not n.startswith(".")) if os.path.isdir(d) else []


def report_mail(report, domain="mail.example", submitter="reporter.example", msgid=None,
                subject=None):
    """An RFC 8460 §5.3 message carrying report (a dict) as application/tlsrpt+gzip."""
    m = MIMEMultipart("report", report_type="tlsrpt")
    m["From"] = "tlsrpt@%s" % submitter
    m["To"] = "tlsrpt@reports.example"
    m["Subject"] = subject or "Report Domain: %s Submitter: %s Report-ID: <%s>" % (
        domain, submitter, report["report-id"])
    m["Date"] = "Tue, 24 Nov 2026 00:00:00 +0000"
    m["Message-ID"] = msgid or "<%s@%s>" % (report["report-id"], submitter)
    m["TLS-Report-Domain"] = domain
    m["TLS-Report-Submitter"] = submitter
    m.attach(MIMEText("This is an aggregate TLS report from %s.\n" % submitter))
    part = MIMEApplication(gzip.compress(json.dumps(report).encode()), "tlsrpt+gzip")
    part.add_header("Content-Disposition", "attachment",
                    filename="%s!%s!%s.json.gz" % (submitter, domain, report["report-id"]))
    m.attach(part)
    return m.as_bytes()


def plain_mail(n):
    return ("From: someone@example.org\r\nTo: tlsrpt@reports.example\r\n"
            "Subject: not a report %d\r\nMessage-ID: <plain-%d@example.org>\r\n\r\n"
            "Hello, this is not a TLS report.\r\n" % (n, n)).encode()


def numbered_report(i):
    r = T.sample_report()
    r["report-id"] = "maildir-test-%05d" % i
    pol = r["policies"][0]
    pol["summary"]["total-successful-session-count"] = 1000 + i
    return r


def expected_sessions(report):
    ok = sum(p["summary"]["total-successful-session-count"] for p in report["policies"])
    bad = sum(p["summary"]["total-failure-session-count"] for p in report["policies"])
    return ok, bad


def maildir_cmd(db, *dirs, opts=()):
    return ["maildir", "--db", db] + list(opts) + list(dirs)


def parse_stats(out):
    """'maildir: N messages: S stored, D duplicates, Q quarantined, T left in new/'"""
    return T.parse_mail_tally(out, "maildir: ")


class Background:
    """A tlsrptd process in the background, its stderr in a file, in the test's directory
    (what serve makes beside itself, like the PostgreSQL spool ./tlsrptd.spool, is the
    test's own)."""

    def __init__(self, case, args, name):
        self.log_path = case.path(name + ".log")
        self.log_f = open(self.log_path, "wb")
        self.proc = subprocess.Popen([T.tlsrptd_bin()] + args, stdout=subprocess.PIPE,
                                     stderr=self.log_f, cwd=case.tmp)
        case.addCleanup(self.kill)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                return text in self.log()
            time.sleep(0.05)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=timeout * SLOW)
        self.log_f.close()
        return self.proc.returncode, out.decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log_f.close()


def wait_until(pred, timeout, step=0.05):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class MaildirCase(T.TlsrptdTestCase):
    def assertNoSanitizer(self, text):
        self.assertNotRegex(text, T._SANITIZER_RE)


# ---- 1. the corpus --------------------------------------------------------------------------






class Corpus(MaildirCase):
    def test_corpus_eml_in_new(self):
        corpus = T.corpus_dir()
        rows = {r["file"]: r for r in T.load_expected()}
        emls = sorted(f for f in rows if f.endswith(".eml"))
        self.assertGreater(len(emls), 5, "too few .eml files in the corpus")
        md = make_maildir(self.path("Maildir"))
        names = {}
        for i, f in enumerate(emls):
            name = "17000%05d.M%dP1.corpus" % (i, i)
            deliver(md, name, T.read_bytes(os.path.join(corpus, f)))
            names[name] = f
        res = T.run(maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertNoSanitizer(res.err)

        accepted = [n for n, f in names.items() if rows[f]["accepted"] == "yes"]
        rejected = [n for n, f in names.items() if rows[f]["accepted"] == "no"]
        self.assertTrue(rejected, "the corpus has a non-report .eml")
        self.assertEqual(files(md, "new"), [])
        self.assertEqual(files(md, "cur"), sorted(n + ":2,S" for n in accepted))
        self.assertEqual(files(md, ".Quarantine/new"), sorted(rejected))
        self.assertTrue(os.path.exists(os.path.join(md, ".Quarantine", "maildirfolder")))
        for n in rejected:  # moved, not copied or changed
            self.assertEqual(T.read_bytes(os.path.join(md, ".Quarantine", "new", n)),
                             T.read_bytes(os.path.join(corpus, names[n])))
            self.assertIn(n, res.err)  # the reason is logged with the name

        # totals: EXPECTED.tsv restricted to these files, a report counted once
        seen, ok, bad, fails, per_domain = set(), 0, 0, {}, {}
        for n in sorted(accepted):
            row = rows[names[n]]
            key = (row["org"], row["report_id"])
            if key in seen:
                continue
            seen.add(key)
            ok += int(row["success"])
            bad += int(row["failure"])
            for k, v in T.parse_failures(row["failures_by_type"]).items():
                fails[k] = fails.get(k, 0) + v
        stats = parse_stats(res.out)
        self.assertEqual(stats["messages"], len(emls))
        self.assertEqual(stats["stored"] + stats["duplicates"], len(accepted))
        self.assertEqual(stats["stored"], len(seen))
        self.assertEqual(stats["quarantined"], len(rejected))
        got = self.summary_json()["totals"]
        self.assertEqual((got["reports"], got["successful_sessions"], got["failed_sessions"]),
                         (len(seen), ok, bad))
        got_fails = {}
        for d in self.summary_json()["domains"]:
            for k, v in d.get("failures", {}).items():
                got_fails[k] = got_fails.get(k, 0) + v
        self.assertEqual(got_fails, fails)
        # the quarantined message is in the database's quarantine too, with its reason
        q = T.quarantine(self.db)
        self.assertEqual(sorted(r["source"]["name"] for r in q), sorted(rejected))
        self.assertTrue(all(r["source"]["kind"] == "maildir" and r["reason"] for r in q), q)

        # the same messages through `tlsrptd ingest` give the same summary
        ref = self.new_db("ingest")
        T.run(["ingest", "--db", ref, "--no-progress"] +
              [os.path.join(corpus, f) for f in sorted(names.values())])
        self.assertEqual(self.summary_json(), self.summary_json(ref))

        # a second run finds nothing to do
        again = T.run(maildir_cmd(self.db, md))
        self.assertExit(again, 0)
        self.assertEqual(parse_stats(again.out)["messages"], 0)


# ---- 2. semantics ---------------------------------------------------------------------------


class Semantics(MaildirCase):
    def test_source_headers_are_stored(self):
        md = make_maildir(self.path("Maildir"))
        r = numbered_report(1)
        deliver(md, "1.M1.src", report_mail(r, domain="mail.example", submitter="sub.example",
                                            msgid="<abc@sub.example>", subject="Report 1"))
        self.assertExit(T.run(maildir_cmd(self.db, md)), 0)
        rows = [r["source"] for r in T.stored_reports(self.db)]
        # Message-ID is stored without its angle brackets, as GMime gives it
        self.assertEqual(rows, [{"kind": "maildir", "name": "1.M1.src",
                                 "message_id": "abc@sub.example", "domain": "mail.example",
                                 "submitter": "sub.example", "subject": "Report 1"}])

    def test_policy_domain_falls_back_to_tls_report_domain(self):
        md = make_maildir(self.path("Maildir"))
        r = numbered_report(2)
        del r["policies"][0]["policy"]["policy-domain"]
        deliver(md, "2.M2.nodomain", report_mail(r, domain="fallback.example"))
        self.assertExit(T.run(maildir_cmd(self.db, md)), 0)
        self.assertEqual(files(md, "cur"), ["2.M2.nodomain:2,S"])
        (rep,) = T.stored(self.db)
        self.assertEqual(rep["policies"][0]["policy_domain"], "fallback.example")

    def test_flags_kept_and_nothing_replaced(self):
        md = make_maildir(self.path("Maildir"))
        deliver(md, "3.M3.flagged:2,F", report_mail(numbered_report(3)))
        deliver(md, "4.M4.clash", report_mail(numbered_report(4)))
        with open(os.path.join(md, "cur", "4.M4.clash:2,S"), "wb") as f:
            f.write(b"an older message that happens to have the same name\n")
        deliver(md, "5.M5.plain", plain_mail(5))
        with open(os.path.join(md, ".Quarantine-not-yet"), "wb"):
            pass
        os.makedirs(os.path.join(md, ".Quarantine", "new"), exist_ok=True)
        with open(os.path.join(md, ".Quarantine", "new", "5.M5.plain"), "wb") as f:
            f.write(b"an older quarantined message with the same name\n")
        res = T.run(maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        cur = files(md, "cur")
        self.assertIn("3.M3.flagged:2,FS", cur)
        self.assertIn("4.M4.clash:2,S", cur)
        self.assertEqual(len(cur), 3, cur)
        with open(os.path.join(md, "cur", "4.M4.clash:2,S"), "rb") as f:
            self.assertTrue(f.read().startswith(b"an older message"))
        other = [n for n in cur if n.startswith("4.M4.clash.")]
        self.assertEqual(len(other), 1, cur)
        self.assertTrue(other[0].endswith(":2,S"), other)
        q = files(md, ".Quarantine/new")
        self.assertEqual(len(q), 2, q)
        self.assertEqual(len(T.stored_reports(self.db)), 2)

    def test_dot_files_and_directories_left_alone(self):
        md = make_maildir(self.path("Maildir"))
        with open(os.path.join(md, "new", ".hidden"), "wb") as f:
            f.write(report_mail(numbered_report(6)))
        os.makedirs(os.path.join(md, "new", "subdir"))
        deliver(md, "7.M7.ok", report_mail(numbered_report(7)))
        res = T.run(maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertEqual(sorted(os.listdir(os.path.join(md, "new"))), [".hidden", "subdir"])
        self.assertEqual(files(md, "cur"), ["7.M7.ok:2,S"])
        self.assertEqual(len(T.stored_reports(self.db)), 1)

    def test_message_over_max_message_is_quarantined(self):
        md = make_maildir(self.path("Maildir"))
        big = report_mail(numbered_report(8)) + b"\r\n" + b"x" * 4096
        deliver(md, "8.M8.big", big)
        res = T.run(maildir_cmd(self.db, md, opts=["--max-message", "2K"]))
        self.assertExit(res, 0)
        self.assertEqual(files(md, ".Quarantine/new"), ["8.M8.big"])
        self.assertRegex(res.err, r"8\.M8\.big.*larger than 2048 bytes")
        self.assertEqual(T.counts(self.db), {"reports": 0, "quarantine": 1})

    def test_summary_line_counts_in_words(self):
        """'maildir: 1 message: ...', not '1 messages' (the service issue); the numbers
        say what happened to each message."""
        md = make_maildir(self.path("Maildir"))
        deliver(md, "1.M1.one", report_mail(numbered_report(21)))
        res = T.run(maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertIn("maildir: 1 message: 1 stored, 0 duplicates, 0 quarantined, 0 left in "
                      "new/\n", res.out)
        deliver(md, "2.M2.again", report_mail(numbered_report(21), msgid="<again@x.example>"))
        deliver(md, "3.M3.plain", plain_mail(3))
        res = T.run(maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertIn("maildir: 2 messages: 0 stored, 1 duplicate, 1 quarantined, 0 left in "
                      "new/\n", res.out)
        self.assertEqual(parse_stats(res.out), {"messages": 2, "stored": 0, "duplicates": 1,
                                                "quarantined": 1, "deferred": 0})
        res = T.run(maildir_cmd(self.db, md))
        self.assertIn("maildir: 0 messages: 0 stored, 0 duplicates", res.out)

    def test_custom_quarantine_folder(self):
        md = make_maildir(self.path("Maildir"))
        qdir = self.path("Maildir", ".Junk-TLSRPT")
        deliver(md, "9.M9.plain", plain_mail(9))
        res = T.run(maildir_cmd(self.db, md, opts=["--maildir-quarantine", qdir]))
        self.assertExit(res, 0)
        self.assertEqual(files(qdir, "new"), ["9.M9.plain"])
        self.assertFalse(os.path.exists(os.path.join(md, ".Quarantine")))

    def test_not_a_maildir_is_74(self):
        os.makedirs(self.path("plain-dir"))
        res = T.run(maildir_cmd(self.db, self.path("plain-dir")))
        self.assertExit(res, T.EX_IOERR)
        self.assertIn("is not a Maildir", res.err)
        self.assertIn("new/", res.err)
        res = T.run(maildir_cmd(self.db, self.path("missing")))
        self.assertExit(res, T.EX_IOERR)

    def test_usage(self):
        res = T.run(["maildir", "--db", self.db])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("no Maildir given", res.err)
        res = T.run(["maildir", "--no-such-flag", self.path("x")])
        self.assertExit(res, T.EX_USAGE)
        res = T.run(["maildir", "--help"])
        self.assertExit(res, 0)
        self.assertIn("--watch", res.out)

    def test_config_file_maildir_list(self):
        md1 = make_maildir(self.path("A"))
        md2 = make_maildir(self.path("B"))
        deliver(md1, "1.a", report_mail(numbered_report(11)))
        deliver(md2, "1.b", report_mail(numbered_report(12)))
        conf = self.write("t.conf", "db = %s\nmaildir = %s\nmaildir = %s\n" % (self.db, md1, md2))
        res = T.run(["maildir", "-c", conf])
        self.assertExit(res, 0)
        self.assertEqual(parse_stats(res.out)["stored"], 2)
        self.assertEqual((files(md1, "cur"), files(md2, "cur")), (["1.a:2,S"], ["1.b:2,S"]))


# ---- 3. SIGKILL -----------------------------------------------------------------------------


class Crash(MaildirCase):
    N = 1500
    PLAIN_EVERY = 50  # every 50th message is not a report

    def test_sigkill_during_watch_then_second_run(self):
        md = make_maildir(self.path("Maildir"))
        reports, plain = [], []
        for i in range(self.N):
            name = "17%08d.M%dP9.crash" % (i, i)
            if i % self.PLAIN_EVERY == 7:
                deliver(md, name, plain_mail(i))
                plain.append(name)
            else:
                r = numbered_report(i)
                deliver(md, name, report_mail(r))
                reports.append((name, r))
        # a first run, killed with SIGKILL as soon as it has moved some messages
        bg = Background(self, maildir_cmd(self.db, md, opts=["--watch"]), "watch")
        moved = wait_until(lambda: len(files(md, "cur")) > 0, 60, step=0.002)
        bg.proc.send_signal(signal.SIGKILL)
        bg.proc.wait()
        self.assertTrue(moved, "nothing was processed before the kill\n" + bg.log()[-3000:])
        in_new = len(files(md, "new"))
        in_cur = len(files(md, "cur"))
        stored_at_kill = len(T.stored_reports(self.db))
        self.assertGreater(in_new, 0, "the run had finished before SIGKILL: no crash tested")
        self.assertGreaterEqual(stored_at_kill, in_cur)  # commit first, then move

        res = T.run(maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertNoSanitizer(res.err)
        stats = parse_stats(res.out)
        self.assertEqual(stats["messages"], in_new)
        # committed before the kill but not yet moved: found again as duplicates
        self.assertEqual(stats["duplicates"], stored_at_kill - in_cur)
        self.assertEqual(files(md, "new"), [])
        self.assertEqual(files(md, "cur"), sorted(n + ":2,S" for n, _ in reports))
        self.assertEqual(files(md, ".Quarantine/new"), sorted(plain))
        # every report exactly once, with its sessions counted once
        listed = T.stored_reports(self.db)
        self.assertEqual(len(listed), len(reports))
        self.assertEqual(len({r["report_id"] for r in listed}), len(reports))
        ok = sum(expected_sessions(r)[0] for _, r in reports)
        bad = sum(expected_sessions(r)[1] for _, r in reports)
        t = self.summary_json()["totals"]
        self.assertEqual((t["reports"], t["successful_sessions"], t["failed_sessions"]),
                         (len(reports), ok, bad))
        names = set(r["source"]["name"] for r in listed)
        self.assertEqual(names, set(n for n, _ in reports))


# ---- 4. storage unavailable -----------------------------------------------------------------


class Storage(MaildirCase):
    def create_db(self):
        md0 = make_maildir(self.path("empty"))
        self.assertExit(T.run(maildir_cmd(self.db, md0)), 0)

    def lock_db(self):
        lock = T.WriteLock(self.db)
        self.addCleanup(lock.release)
        return lock

    def fill(self, md, n):
        for i in range(n):
            deliver(md, "%d.M%d.st" % (i, i), report_mail(numbered_report(100 + i)))
        deliver(md, "%d.M%d.st" % (n, n), plain_mail(n))

    def test_locked_database_once_is_75_then_processed(self):
        self.create_db()
        md = make_maildir(self.path("Maildir"))
        self.fill(md, 5)
        lock = self.lock_db()
        res = T.run(maildir_cmd(self.db, md, opts=["--busy-timeout", "200"]))
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertEqual(len(files(md, "new")), 6)
        self.assertEqual(files(md, "cur"), [])
        self.assertEqual(files(md, ".Quarantine/new"), [])
        self.assertIn("storage unavailable", res.err)
        self.assertEqual(T.counts(self.db), {"reports": 0, "quarantine": 0})
        lock.release()
        res = T.run(maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertEqual(files(md, "new"), [])
        self.assertEqual(len(files(md, "cur")), 5)
        self.assertEqual(len(files(md, ".Quarantine/new")), 1)
        self.assertEqual(T.counts(self.db), {"reports": 5, "quarantine": 1})

    def watch_through_outage(self, down, up, wait_back):
        """maildir --watch takes one report; storage goes away (down()); 4 reports and a
        non-report arrive and stay in new/; storage comes back (up()): within wait_back
        seconds every one is stored or quarantined, once."""
        md = make_maildir(self.path("Maildir"))
        bg = Background(self, maildir_cmd(self.db, md, opts=["--watch", "--busy-timeout", "100"]),
                        "watch")
        self.assertTrue(bg.wait_log("watching", 10 * SLOW), bg.log())
        deliver(md, "0.M0.up", report_mail(numbered_report(300)))
        self.assertTrue(wait_until(lambda: files(md, "cur") == ["0.M0.up:2,S"], 10), bg.log())
        down()
        self.fill(md, 4)
        self.assertTrue(wait_until(lambda: "storage unavailable" in bg.log(), 20), bg.log())
        time.sleep(1.5)
        self.assertEqual(len(files(md, "new")), 5)
        self.assertEqual(files(md, "cur"), ["0.M0.up:2,S"])
        self.assertEqual(files(md, ".Quarantine/new"), [])
        up()
        self.assertTrue(wait_until(lambda: len(files(md, "new")) == 0, wait_back), bg.log())
        self.assertEqual(len(files(md, "cur")), 5)
        self.assertEqual(len(files(md, ".Quarantine/new")), 1)
        rc, out = bg.stop()
        self.assertEqual(rc, 0, bg.log())
        self.assertNoSanitizer(bg.log())
        self.assertEqual(T.counts(self.db), {"reports": 5, "quarantine": 1})
        self.assertEqual(parse_stats(out)["stored"], 5)

    def test_locked_database_watch_retries_with_backoff(self):
        self.create_db()
        lock = []
        self.watch_through_outage(lambda: lock.append(self.lock_db()),
                                  lambda: lock[0].release(), 20)

    @T.postgresql_only("the server stopped (pg_ctl stop) and started again")
    def test_postgresql_stopped_watch_waits_then_processes(self):
        cluster = T.PrivateCluster(self.tmp)
        self.addCleanup(cluster.stop)
        self.db = cluster.new_db("watch")
        self.create_db()
        # the watcher connects again by itself (backoff) once the server is back
        self.watch_through_outage(cluster.pause, cluster.resume, 60)

# ---- 5. serve --maildir ---------------------------------------------------------------------


free_port = T.free_port


class Serve(MaildirCase):
    def test_serve_watches_the_maildir_beside_http(self):
        md = make_maildir(self.path("Maildir"))
        deliver(md, "0.M0.early", report_mail(numbered_report(200)))  # there before start
        port = free_port()
        bg = Background(self, ["serve", "--listen", "127.0.0.1:%d" % port, "--db", self.db,
                               "--maildir", md, "--maildir-rescan", "2"], "serve")
        self.assertTrue(bg.wait_log("serving", 15 * SLOW), bg.log())
        self.assertTrue(wait_until(lambda: files(md, "cur") == ["0.M0.early:2,S"], 10), bg.log())
        for i in range(1, 4):
            deliver(md, "%d.M%d.live" % (i, i), report_mail(numbered_report(200 + i)))
        deliver(md, "9.M9.plain", plain_mail(9))
        self.assertTrue(wait_until(lambda: len(files(md, "cur")) == 4, 10), bg.log())
        self.assertTrue(wait_until(lambda: files(md, ".Quarantine/new") == ["9.M9.plain"], 10))
        # HTTP still answers meanwhile
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=10) as r:
            self.assertEqual(r.status, 200)
        rc, _ = bg.stop()
        self.assertEqual(rc, 0, bg.log())
        self.assertNoSanitizer(bg.log())
        listed = T.stored_reports(self.db)
        self.assertEqual(len(listed), 4)
        self.assertEqual({r["source"]["kind"] for r in listed}, {"maildir"})
        self.assertRegex(bg.log(), r"maildir .*9\.M9\.plain: quarantined")

    def test_serve_rejects_a_bad_maildir_at_startup(self):
        port = free_port()
        res = T.run(["serve", "--listen", "127.0.0.1:%d" % port, "--db", self.db,
                     "--maildir", self.path("nope")], timeout=30)
        self.assertNotEqual(res.rc, 0)
        self.assertIn("is not a Maildir", res.err)


if __name__ == "__main__":
    T.main()
