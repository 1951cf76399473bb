#!/usr/bin/env python3
"""Hardening of the public endpoint (issue 11), driven from outside with the REAL
binary, real sockets on 127.0.0.1 and 127.0.x.y source addresses, real Maildirs.

  BoundedWork    failure 1: huge counts and strings refused (400 naming the bound) fast
                 and small; four at once; honest sender and /healthz served meanwhile;
                 diagnostics kept per report capped; parse memory bounded (503 +
                 Retry-After); memory given back after a spike
  Floods         failure 2: 600 slow-header and 600 idle keep-alive connections from
                 200 addresses; a full server refuses at once; idle keep-alive closed
                 first; limits per /24; the request-head deadline
  LogFiles       failure 3: fds 0/1/2 closed at start; SIGHUP reopen as the service user;
                 a failed reopen is logged and never sends log lines to a client
  MaildirFiles   failure 6: a FIFO swapped into new/ (serve still stops on SIGTERM); hard
                 links not read; symlinks quarantined; quarantine file modes
  Escaping       failure 7: control characters from URLs and Maildir names escaped
  Sigbus         failure 7: SIGBUS in `ingest` (an MDA) exits 75
  HostileCorpus  every hostile input of hostile.corpus() answered, /healthz after each

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_harden.py [-k NAME]
"""
import gzip
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hostile as H  # noqa: E402
import test_maildir as M  # noqa: E402
import test_serve as S  # noqa: E402
import tlsrptd_test as T  # noqa: E402

SLOW = T.SLOW
MiB = 1 << 20
# Peak RSS bounds of the targets; sanitizer builds carry shadow memory and a
# quarantine of freed blocks, so there the bound only catches runaway growth.
RSS_ONE = 128 * MiB if not T.asan() else 1536 * MiB
RSS_FOUR = 256 * MiB if not T.asan() else 2048 * MiB


def hwm(d):
    return H.proc_status_kib(d.pid, "VmHWM") * 1024


def rss(d):
    return H.proc_status_kib(d.pid, "VmRSS") * 1024


class HardenCase(S.ServeTestCase):
    def daemon(self, *args, **kw):
        base = ["--rate-limit", "0", "--max-connections-per-ip", "512"]
        return self.start_daemon(args=base + list(args), **kw)

    def sockets(self, d):
        """Sockets the daemon holds open now."""
        n = 0
        for name in os.listdir("/proc/%d/fd" % d.pid):
            try:
                n += os.readlink("/proc/%d/fd/%s" % (d.pid, name)).startswith("socket:")
            except OSError:
                pass
        return n

    def settled_sockets(self, d):
        """The daemon's socket count once the readiness probes' connections are gone."""
        counts = []
        for _ in range(5):
            counts.append(self.sockets(d))
            time.sleep(0.1 * SLOW)
        return min(counts)

    def wait_accepted(self, d, before, n):
        """Until the daemon holds n more sockets than before (it accepted them all)."""
        self.assertTrue(S.wait_until(lambda: self.sockets(d) >= before + n, 20 * SLOW),
                        "the daemon did not accept %d connections" % n)

    def assertBound(self, status, body, words, what):
        self.assertEqual(status, 400, "%s: %r" % (what, body[:400]))
        detail = json.loads(body).get("detail", "")
        for w in words:
            self.assertIn(w, detail, "%s: the 400 does not name the bound: %r" % (what, detail))


# ---- failure 1: bounded work per request ---------------------------------------------------


class BoundedWork(HardenCase):
    BOMBS = [
        ("600,000 failure-details", lambda: H.failure_details_bomb(600000),
         ("failure-details", "10000")),
        ("1,000,000 unknown keys", lambda: H.unknown_keys_bomb(1000000), ("keys", "100")),
        ("a 30 MiB policy-domain", lambda: H.long_string_bomb(30 * MiB),
         ("policy-domain", "16384")),
        ("130,000 policy domains", lambda: H.many_domains_bomb(130000),
         ("policy domains", "100")),
    ]

    def test_huge_counts_and_strings_refused_fast_and_small(self):
        d = self.daemon()
        for what, make, words in self.BOMBS:
            body = make()
            before = H.db_bytes(self.db)
            status, secs, answer = H.post_from(d.port, "127.0.0.1", body,
                                               "application/tlsrpt+gzip")
            with self.subTest(bomb=what):
                self.assertBound(status, answer, words, what)
                self.assertLess(secs, 3.0 * SLOW, "%s took %.1f s to be refused" % (what, secs))
                grown = H.db_bytes(self.db) - before
                # nothing is stored but the quarantined body as received
                self.assertLess(grown, len(body) + MiB, "%s: database grew %d bytes" %
                                (what, grown))
            self.assertEqual(d.get("/healthz").status, 200)
        peak = hwm(d)
        sys.stderr.write("\n  [bombs] peak RSS %.1f MiB\n" % (peak / MiB))
        self.assertLess(peak, RSS_ONE, "peak RSS %.1f MiB" % (peak / MiB))
        self.assertEqual(T.scalar(self.db, "SELECT COUNT(*) FROM reports"), 0)
        self.assertEqual(T.scalar(self.db, "SELECT COUNT(*) FROM quarantine"), len(self.BOMBS))
        self.stop_ok(d)

    def test_four_at_once_beside_an_honest_sender(self):
        d = self.daemon()
        body = H.failure_details_bomb(600000)
        sender = H.Sender(d.port, "127.0.1.1", 0.2, "honest")
        poller = H.Poller(d.port, "127.0.2.1", 0.2)
        sender.start()
        poller.start()
        time.sleep(1.0)
        for _round in range(3):
            answers = H.post_all(d.port, [body] * 4, "application/tlsrpt+gzip", first_src=10)
            for status, secs, answer in answers:
                self.assertBound(status, answer, ("failure-details",), "four at once")
                self.assertLess(secs, 5.0 * SLOW, "a hostile POST took %.1f s" % secs)
        time.sleep(1.0)
        sender.stop()
        poller.stop()
        peak = hwm(d)
        sys.stderr.write("\n  [four at once] peak RSS %.1f MiB, honest p99 %.3f s (%d), "
                         "/healthz max %.3f s (%d)\n" %
                         (peak / MiB, sender.p99(), len(sender.results),
                          max(poller.latencies()), len(poller.results)))
        self.assertLess(peak, RSS_FOUR, "peak RSS %.1f MiB with four at once" % (peak / MiB))
        self.assertEqual(set(sender.statuses()), {201}, sender.results)
        self.assertEqual(set(poller.statuses()), {200}, poller.results)
        self.assertLess(max(sender.latencies()), 3.0 * SLOW, "an honest POST waited")
        self.assertLess(max(poller.latencies()), 3.0 * SLOW, "/healthz waited")
        self.assertEqual(sorted(S.report_ids(self.db)), sorted(sender.ids))
        self.stop_ok(d)

    def test_diagnostics_kept_per_report_are_capped(self):
        d = self.daemon()
        r = T.sample_report()
        r["report-id"] = "many-notes"
        for i in range(90):
            r["x-top-%d" % i] = i
            r["policies"][0]["policy"]["x-pol-%d" % i] = i
            r["policies"][0]["summary"]["x-sum-%d" % i] = i
        status, _, answer = H.post_from(d.port, "127.0.0.1", json.dumps(r).encode(),
                                        "application/tlsrpt+json")
        self.assertEqual(status, 201, answer)
        row = T.query(self.db, "SELECT note_count, diagnostics FROM reports")[0]
        diags = json.loads(row[1])
        self.assertEqual(row[0], 270, "the count of notes stays true")
        self.assertLessEqual(len(diags), 101, "%d diagnostics kept" % len(diags))
        self.assertLessEqual(len(row[1]), 64 * 1024)
        self.assertRegex(diags[-1]["message"], r"\b1[67]\d more (warnings and )?notes not kept")
        self.stop_ok(d)

    def test_parse_memory_bound_answers_503_with_retry_after(self):
        d = self.daemon("--parse-memory", "1M", "--parse-wait", "0", "--prepare-threads", "1")
        # reports of ~3 MiB of JSON each (padded with white space): each needs the whole
        # budget, so of several at once some wait for none and get 503
        bodies = []
        for i in range(8):
            r = T.sample_report(**{"report-id": "big-%d" % i})
            bodies.append(gzip.compress(json.dumps(r).encode() + b" " * (3 * MiB)))
        answers = H.post_all(d.port, bodies, "application/tlsrpt+gzip", first_src=20)
        statuses = [a[0] for a in answers]
        self.assertTrue(set(statuses) <= {201, 503}, answers)
        self.assertIn(503, statuses, "no request was refused with a 1 MiB parse budget")
        self.assertIn(201, statuses, "nothing was served with a 1 MiB parse budget")
        for status, _, answer in answers:
            if status == 503:
                self.assertIn("parse", json.loads(answer).get("detail", ""))
        self.assertRegex(d.log(), r'"POST /tlsrpt" 503 ')
        stored = sorted(S.report_ids(self.db))
        self.assertEqual(stored, sorted("big-%d" % i for i, a in enumerate(answers)
                                        if a[0] == 201))
        # a 503 carries Retry-After; retried, the report is stored
        r = d.post(bodies[statuses.index(503)], "application/tlsrpt+gzip")
        self.assertStatus(r, 201)
        self.stop_ok(d)

    def test_memory_given_back_after_a_spike(self):
        d = self.daemon("--parse-wait", "120")  # slow builds: wait rather than answer 503
        base = rss(d)
        # within every bound, but big: 6,500 failure details in each of 3 policies; 12 of
        # them, since the writer stores (and frees) them while others are still parsed.
        # Each parsed document is freed as soon as its report is prepared (report_detach),
        # so the peak is what the preparing threads parse at once: with 5,000 details it
        # was only 38-40 MiB above the start. Large documents are mapped and unmapped on
        # their own (arena.c), and no thread's heap keeps more than 8 MiB free at its
        # top (main.c; with 64 MiB there, RSS stayed 42-45 MiB above the start after the spike)
        bodies = []
        for i in range(12):
            r = T.sample_report(**{"report-id": "spike-%d" % i})
            det = [{"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.%d" % (k % 250),
                    "receiving-mx-hostname": "mx%d.mail.example" % k, "failed-session-count": 1}
                   for k in range(6500)]
            r["policies"] = [H.policy("d%d.example" % p, 1, 6500, det) for p in range(3)]
            bodies.append(gzip.compress(json.dumps(r).encode()))
        answers = H.post_all(d.port, bodies, "application/tlsrpt+gzip", first_src=30)
        self.assertEqual([a[0] for a in answers], [201] * len(bodies), answers)
        peak = hwm(d)
        after = [rss(d)]
        # what may stay: SQLite's page cache (cache_size, 16 MiB), filled by the spike's
        # rows, and allocator slack (21-31 MiB seen); the parse trees (most of the peak) must go
        may_stay = 32 * MiB
        S.wait_until(lambda: after.append(rss(d)) or after[-1] < base + may_stay, 10 * SLOW,
                     interval=0.2)
        sys.stderr.write("\n  [spike] RSS %.1f MiB at start, peak %.1f MiB, %.1f MiB after\n" %
                         (base / MiB, peak / MiB, after[-1] / MiB))
        if not T.asan():
            # the peak must pass the bar, or staying under it proves nothing; how far it
            # passes depends on the machine (39-50 MiB above the start seen: a fast writer
            # frees reports while others are still parsed), so the bar is the claim
            self.assertGreater(peak - base, may_stay, "no spike to give back")
            self.assertLess(after[-1], base + may_stay, "memory was not given back: RSS "
                            "%.1f MiB after a peak of %.1f MiB" % (after[-1] / MiB, peak / MiB))
            self.assertGreater(peak - after[-1], 12 * MiB, "less than 12 MiB given back")
        self.stop_ok(d)


# ---- failure 2: connection floods ----------------------------------------------------------


class Floods(HardenCase):
    DURATION = 20

    def run_flood(self, d, flood):
        sender = H.Sender(d.port, "127.0.1.1", 0.2, "beside-flood")
        poller = H.Poller(d.port, "127.0.2.1", 0.5)
        flood.start()
        S.wait_until(lambda: flood.opened >= 300 or not flood.is_alive(), 30 * SLOW)
        sender.start()
        poller.start()
        time.sleep(self.DURATION)
        sender.stop()
        poller.stop()
        flood.stop()
        sys.stderr.write("\n  [%s] flood: %d opened, %d closed by the server, %d refused, "
                         "at most %d open; honest: %d, p99 %.3f s, max %.3f s; /healthz max "
                         "%.3f s\n" % (type(flood).__name__, flood.opened,
                                       flood.closed_by_server, flood.refused, flood.max_open,
                                       len(sender.results), sender.p99(),
                                       max(sender.latencies()), max(poller.latencies())))
        self.assertGreater(len(sender.results), 10)
        self.assertEqual(set(sender.statuses()), {201},
                         "honest sender not always answered: %r" %
                         [r for r in sender.results if r[2] != 201][:10])
        self.assertEqual(set(poller.statuses()), {200}, "/healthz not always answered")
        self.assertLess(sender.p99(), 3.0 * SLOW, "honest p99 %.2f s" % sender.p99())
        self.assertLess(max(poller.latencies()), 3.0 * SLOW)
        self.assertEqual(sorted(i for i in S.report_ids(self.db) if i.startswith("beside")),
                         sorted(sender.ids))
        return sender

    def test_slow_header_flood_from_200_addresses(self):
        d = self.start_daemon(args=["--rate-limit", "0"])  # the default connection limits
        flood = H.SlowHeaderFlood(d.port, H.flood_sources(200), 3)
        self.run_flood(d, flood)
        self.stop_ok(d)

    def test_idle_keepalive_flood_from_200_addresses(self):
        d = self.start_daemon(args=["--rate-limit", "0"])  # the default connection limits
        body = S.report_bytes("idle-flood")
        flood = H.IdleFlood(d.port, H.flood_sources(200), 3, body)
        self.run_flood(d, flood)
        self.stop_ok(d)

    def hold_bodies(self, d, n, third=0):
        """n connections from 127.0.THIRD.x whose request head is complete and whose body
        never comes, once the daemon holds them all."""
        before = self.settled_sockets(d)
        socks = []
        for i in range(n):
            s = H.connect_from("127.0.%d.%d" % (third, 100 + i), d.port)
            s.sendall(b"POST /tlsrpt HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n{")
            socks.append(s)
        self.wait_accepted(d, before, n)
        time.sleep(0.5 * SLOW)  # and have read their heads
        return socks

    def test_full_server_refuses_at_once(self):
        d = self.daemon("--max-connections", "8")
        socks = self.hold_bodies(d, 8)
        try:
            t0 = time.monotonic()
            try:
                s = H.connect_from("127.0.1.1", d.port, timeout=10 * SLOW)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                data = s.recv(4096)
                s.close()
            except OSError as e:
                data = str(e).encode()
            secs = time.monotonic() - t0
            self.assertLess(secs, 3.0 * SLOW, "a connection to a full server waited %.1f s "
                            "(%r)" % (secs, data))
            self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 503") or b"reset" in data,
                            data)
            if data.startswith(b"HTTP/1.1 503"):
                self.assertIn(b"Retry-After:", data)
        finally:
            for s in socks:
                s.close()
        self.assertTrue(S.wait_until(lambda: d.get("/healthz", timeout=5).status == 200,
                                     10 * SLOW))
        self.stop_ok(d)

    def test_idle_keepalive_connections_closed_first(self):
        d = self.daemon("--max-connections", "8")
        before = self.settled_sockets(d)
        idle = []
        for i in range(8):
            s = H.connect_from("127.0.0.%d" % (100 + i), d.port)
            self.assertIn(H.keepalive_post(s, S.report_bytes("idle-first")), (200, 201))
            idle.append(s)
        self.wait_accepted(d, before, 8)
        status, secs, answer = H.post_from(d.port, "127.0.1.1", S.report_bytes("newcomer"),
                                           "application/tlsrpt+json", timeout=10 * SLOW)
        self.assertEqual(status, 201, answer)
        self.assertLess(secs, 3.0 * SLOW)
        closed = sum(1 for s in idle if H._closed(s))
        self.assertGreaterEqual(closed, 1, "no idle connection was closed for the newcomer")
        for s in idle:
            s.close()
        self.stop_ok(d)

    def test_limit_per_ipv4_prefix(self):
        d = self.start_daemon(args=["--rate-limit", "0", "--max-connections-per-ip", "2",
                                    "--max-connections-per-prefix", "4"])
        before = self.settled_sockets(d)
        socks = []
        try:
            for host in (11, 12):
                for _ in range(2):
                    s = H.connect_from("127.0.0.%d" % host, d.port)
                    s.sendall(b"POST /tlsrpt HTTP/1.1\r\nHost: x\r\nContent-Type: "
                              b"application/json\r\nContent-Length: 1000\r\n\r\n{")
                    socks.append(s)
            self.wait_accepted(d, before, 4)
            time.sleep(0.5 * SLOW)
            # a fifth connection from the same /24 is refused at once ...
            t0 = time.monotonic()
            status, secs, _ = H.post_from(d.port, "127.0.0.13", S.report_bytes("same-24"),
                                          "application/tlsrpt+json", timeout=10 * SLOW)
            self.assertIn(status, (None, 429), "a fifth connection from 127.0.0.0/24")
            self.assertLess(time.monotonic() - t0, 3.0 * SLOW)
            # ... one from another /24 is served
            status, _, answer = H.post_from(d.port, "127.0.1.13", S.report_bytes("other-24"),
                                            "application/tlsrpt+json", timeout=10 * SLOW)
            self.assertEqual(status, 201, answer)
        finally:
            for s in socks:
                s.close()
        self.assertNotIn("same-24", S.report_ids(self.db))
        self.assertRegex(d.log(), r"127\.0\.0\.0/24")
        self.stop_ok(d)

    def test_request_head_deadline_separate_from_body(self):
        d = self.daemon("--header-timeout", "2", "--connection-timeout", "30")
        head = H.connect_from("127.0.0.41", d.port)
        head.sendall(b"POST /tlsrpt HTTP/1.1\r\nHost: x\r\n")
        body = H.connect_from("127.0.0.42", d.port)
        body.sendall(b"POST /tlsrpt HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
        t0 = time.monotonic()
        cut = S.wait_until(lambda: H._closed(head), 10 * SLOW, interval=0.1)
        secs = time.monotonic() - t0
        self.assertTrue(cut, "a request head unfinished after %.0f s is still open" % secs)
        self.assertLess(secs, 2 + 2.5 * SLOW)
        time.sleep(max(0.0, 4.0 - secs))
        self.assertFalse(H._closed(body), "a request whose head is complete was cut by the "
                                          "head deadline")
        head.close()
        body.close()
        self.assertRegex(d.log(), r"127\.0\.0\.41: cut off: no complete request head within 2 s")
        self.stop_ok(d)


# ---- failure 3: log files ------------------------------------------------------------------


def start_with_fds_closed(argv, cwd):
    """tlsrptd with fds 0, 1 and 2 closed (as a careless init or shell might start it)."""
    def close_std():
        for fd in (0, 1, 2):
            try:
                os.close(fd)
            except OSError:
                pass
    return subprocess.Popen([T.tlsrptd_bin()] + argv, cwd=cwd, close_fds=True,
                            preexec_fn=close_std, stdin=None, stdout=None, stderr=None)


class LogFiles(HardenCase):
    def leaked(self, socks):
        """Whatever the daemon wrote to these idle client sockets."""
        got = b""
        for s in socks:
            s.setblocking(False)
            try:
                got += s.recv(65536)
            except OSError:
                pass
        return got

    def test_std_fds_closed_at_start(self):
        port = T.free_port()
        logf = self.path("tlsrptd.log")
        p = start_with_fds_closed(["serve", "--listen", "127.0.0.1:%d" % port, "--db", self.db,
                                   "--log-target", logf, "--rate-limit", "0"], self.tmp)
        try:
            base = "http://127.0.0.1:%d" % port
            ok = S.wait_until(lambda: S.curl(base + "/healthz", timeout=5).status == 200,
                              30 * SLOW)
            self.assertTrue(ok, "not serving with fds 0-2 closed:\n%s" %
                            (S.read_text(logf) if os.path.exists(logf) else "(no log)"))
            idle = [H.connect_from("127.0.0.51", port) for _ in range(3)]
            r = S.curl(base + "/tlsrpt", data=S.report_bytes("fds-closed"),
                       headers=["Content-Type: application/tlsrpt+json"])
            self.assertEqual(r.status, 201, r)
            time.sleep(0.5)
            self.assertNotIn(b"tlsrptd[", self.leaked(idle), "log lines went to a client")
            self.assertNotIn(b"tlsrptd[", r.body)
            self.assertTrue(S.wait_until(lambda: '"POST /tlsrpt" 201' in S.read_text(logf), 5))
            for s in idle:
                s.close()
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(60), 0)

    def root_daemon(self):
        if os.geteuid() != 0:
            self.skipTest("not running as root")
        nobody = pwd.getpwnam("nobody")
        os.chown(self.tmp, nobody.pw_uid, nobody.pw_gid)
        logdir = self.path("log")
        os.makedirs(logdir)
        os.chmod(logdir, 0o755)  # root's: nobody cannot create files in it
        logf = os.path.join(logdir, "tlsrptd.log")
        d = self.daemon("--user", "nobody", log_target=logf)
        return d, logf, nobody

    def hup_then_post(self, d, src, path):
        """SIGHUP, then a POST to path while three idle connections from src are open (one
        of them would get fd 2 if the reopen closed it); none may receive a log line."""
        d.signal(signal.SIGHUP)
        time.sleep(1.0 * SLOW)
        idle = [H.connect_from(src, d.port) for _ in range(3)]
        self.assertStored(d.post(S.report_bytes(path.rsplit("/", 1)[-1]), path=path))
        time.sleep(0.5)
        self.assertNotIn(b"tlsrptd[", self.leaked(idle), "log lines went to a client")
        for s in idle:
            s.close()

    def test_sighup_reopens_the_log_as_the_service_user(self):
        d, logf, nobody = self.root_daemon()
        self.assertEqual(os.stat(logf).st_uid, nobody.pw_uid, "log file not the service user's")
        self.hup_then_post(d, "127.0.0.52", "/tlsrpt/after-hup")
        self.assertTrue(S.wait_until(lambda: "/tlsrpt/after-hup" in S.read_text(logf), 5),
                        S.read_text(logf))
        self.assertIn("SIGHUP: log reopened", S.read_text(logf))
        self.stop_ok(d)

    def test_failed_reopen_is_logged_and_never_reaches_a_client(self):
        d, logf, _ = self.root_daemon()
        os.rename(logf, logf + ".1")  # the new file cannot be created by nobody
        self.hup_then_post(d, "127.0.0.53", "/tlsrpt/failed-hup")
        old = S.read_text(logf + ".1")
        self.assertRegex(old, r"cannot reopen the log file .*tlsrptd\.log: Permission denied")
        self.assertTrue(S.wait_until(lambda: "/tlsrpt/failed-hup" in
                                     S.read_text(logf + ".1"), 5))
        self.assertTrue(d.running())
        self.stop_ok(d)


# ---- failure 6: Maildir files --------------------------------------------------------------


class MaildirFiles(HardenCase):
    def test_fifo_swapped_into_new_does_not_hang_serve(self):
        md = M.make_maildir(self.path("Maildir"))
        d = self.daemon("--maildir", md, "--maildir-rescan", "1")
        junk = M.plain_mail(1)
        deadline = time.monotonic() + 8
        i = 0
        while time.monotonic() < deadline:
            name = "%d.M%d.swap" % (i, i)
            tmp = os.path.join(md, "tmp", name)
            with open(tmp, "wb") as f:
                f.write(junk)
            os.rename(tmp, os.path.join(md, "new", name))
            time.sleep(0.001 * (i % 4))
            fifo = os.path.join(md, "tmp", name + ".fifo")
            os.mkfifo(fifo)
            os.rename(fifo, os.path.join(md, "new", name))
            i += 1
            time.sleep(0.01)
        # a FIFO left in new/ directly
        os.mkfifo(os.path.join(md, "new", "direct.fifo"))
        self.assertTrue(S.wait_until(lambda: M.files(md, "new") == [], 20 * SLOW),
                        "left in new/: %r\n%s" % (M.files(md, "new")[:5], d.log()[-3000:]))
        self.assertEqual(d.get("/healthz").status, 200)
        t0 = time.monotonic()
        self.stop_ok(d)
        self.assertLess(time.monotonic() - t0, 15 * SLOW)
        q = M.files(md, ".Quarantine/new")
        self.assertIn("direct.fifo", q)
        self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(md, ".Quarantine", "new",
                                                             "direct.fifo")).st_mode))
        self.assertRegex(d.log(), r"direct\.fifo: quarantined .*not a regular file")

    def test_hard_link_is_not_read(self):
        md = M.make_maildir(self.path("Maildir"))
        secret = self.write("secret.txt", b"From: x@example.org\r\n\r\nSECRET-CONTENT\r\n")
        os.chmod(secret, 0o600)
        os.link(secret, os.path.join(md, "new", "1.M1.link"))
        res = T.run(M.maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertEqual(M.files(md, ".Quarantine/new"), ["1.M1.link"])
        rows = T.quarantine_rows(self.db)
        self.assertEqual(len(rows), 1)
        self.assertRegex(rows[0]["reason"], r"2 links")
        self.assertEqual(rows[0]["raw_kept"], 0)
        self.assertNotIn(b"SECRET-CONTENT", bytes(rows[0]["raw"] or b""))
        self.assertEqual(stat.S_IMODE(os.stat(secret).st_mode), 0o600, "the linked file's mode "
                                                                       "changed")

    def test_symlink_goes_to_the_quarantine_folder(self):
        md = M.make_maildir(self.path("Maildir"))
        os.symlink("/etc/hostname", os.path.join(md, "new", "2.M2.sym"))
        M.deliver(md, "3.M3.ok", M.report_mail(M.numbered_report(3)))
        res = T.run(M.maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertEqual(M.files(md, "new"), [])
        self.assertEqual(M.files(md, ".Quarantine/new"), ["2.M2.sym"])
        self.assertTrue(os.path.islink(os.path.join(md, ".Quarantine", "new", "2.M2.sym")))
        self.assertRegex(res.err, r"2\.M2\.sym: quarantined .*symbolic link")
        self.assertEqual(T.scalar(self.db, "SELECT COUNT(*) FROM reports"), 1)
        res = T.run(M.maildir_cmd(self.db, md))
        self.assertExit(res, 0)

    def test_quarantine_folder_0700_and_files_0600(self):
        old = os.umask(0)
        try:
            md = M.make_maildir(self.path("Maildir"))
            M.deliver(md, "4.M4.plain", M.plain_mail(4))
            os.chmod(os.path.join(md, "new", "4.M4.plain"), 0o644)
            res = T.run(M.maildir_cmd(self.db, md))
        finally:
            os.umask(old)
        self.assertExit(res, 0)
        q = os.path.join(md, ".Quarantine")
        for p in (q, os.path.join(q, "new"), os.path.join(q, "cur"), os.path.join(q, "tmp")):
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o700, p)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(q, "new", "4.M4.plain")).st_mode),
                         0o600)


# ---- failure 7: escaping, SIGBUS -----------------------------------------------------------


class Escaping(HardenCase):
    def test_control_characters_from_urls_are_escaped(self):
        logf = self.path("tlsrptd.log")
        d = self.daemon(log_target=logf)
        forged = "2026-01-01T00:00:00Z tlsrptd[info]: FORGED"
        r = d.post(S.report_bytes("escaped"),
                   path="/tlsrpt/example.com/x%0a" + forged.replace(" ", "%20").replace("[", "%5b")
                   .replace("]", "%5d") + "%0d%1b%7f")
        self.assertStored(r)
        self.stop_ok(d)
        text = S.read_text(logf)
        for ln in text.splitlines():
            self.assertFalse(ln.startswith("2026-01-01"), "a forged log line:\n" + text)
            if "FORGED" in ln:
                self.assertIn('"POST /tlsrpt/example.com/x', ln, "a forged log line:\n" + text)
        self.assertRegex(text, r'"POST /tlsrpt/example\.com/x\\n2026-01-01T00:00:00Z tlsrptd\[info\]: '
                               r'FORGED\\r\\x1b\\x7f" 201 ')

    def test_control_characters_in_maildir_names_are_escaped(self):
        md = M.make_maildir(self.path("Maildir"))
        M.deliver(md, "5.M5.\nFORGED line\x1b", M.plain_mail(5))
        res = T.run(M.maildir_cmd(self.db, md))
        self.assertExit(res, 0)
        self.assertNotIn("\nFORGED", res.err)
        self.assertIn("5.M5.\\nFORGED line\\x1b: quarantined", res.err)


# AddressSanitizer handles SIGBUS itself unless told not to: the handler under test is ingest's.
SIGBUS_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                     "handle_sigbus=0",
                                                     "allow_user_segv_handler=1"]))}


class Sigbus(HardenCase):
    def test_sigbus_in_ingest_exits_75(self):
        """SQLite touches its -shm through mmap: on a full file system that is SIGBUS. An
        MDA must then say 75 (try again), not die of a signal (which MTAs bounce)."""
        r, w = os.pipe()
        p = subprocess.Popen([T.tlsrptd_bin(), "ingest", "--db", self.db, "--no-progress", "-"],
                             stdin=r, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, **SIGBUS_ENV))
        os.close(r)
        try:
            def caught():
                with open("/proc/%d/status" % p.pid) as f:
                    m = re.search(r"^SigCgt:\s+([0-9a-f]+)", f.read(), re.M)
                return m and int(m.group(1), 16) & (1 << (signal.SIGBUS - 1))
            handled = S.wait_until(caught, 10 * SLOW)
            os.kill(p.pid, signal.SIGBUS)
            out, err = p.communicate(timeout=30)
        finally:
            os.close(w)
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertTrue(handled, "ingest installs no SIGBUS handler")
        self.assertEqual(p.returncode, T.EX_TEMPFAIL, err)
        self.assertIn(b"SIGBUS", err)

    def test_full_filesystem_with_1k_blocks_is_75_not_a_signal(self):
        """The real thing: SQLite's -shm on an ext4 of 1 KiB blocks that is full but for a
        few blocks. SQLite writes one byte at the end of each 4 KiB page of the -shm to
        allocate it, which takes one block of four; touching the rest through mmap is
        SIGBUS. Each amount of free space from 1 to 40 KiB is tried."""
        if os.geteuid() != 0:
            self.skipTest("not running as root (mount -o loop)")
        for tool in ("mkfs.ext4", "mount", "umount"):
            if shutil.which(tool) is None:
                self.skipTest("%s is not installed" % tool)
        img, mnt = self.path("fs.img"), self.path("mnt")
        os.makedirs(mnt)
        with open(img, "wb") as f:
            f.truncate(2 * MiB)
        subprocess.run(["mkfs.ext4", "-q", "-b", "1024", "-N", "64", "-m", "0", img], check=True)
        p = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True)
        if p.returncode != 0:
            self.skipTest("cannot mount a loop device: %s" % p.stderr.decode().strip())
        self.addCleanup(subprocess.run, ["umount", mnt])
        db = os.path.join(mnt, "t.db")
        self.assertExit(self.ingest(T.sample("report.json"), db=db), 0)
        sigbus = []
        for k in range(1, 41):
            for name in ("filler", "t.db-shm", "t.db-wal"):
                if os.path.exists(os.path.join(mnt, name)):
                    os.unlink(os.path.join(mnt, name))
            st = os.statvfs(mnt)
            with open(os.path.join(mnt, "filler"), "wb") as f:
                f.write(bytes(st.f_bavail * st.f_frsize - k * 1024))
            res = self.ingest(T.sample("report.json.gz"), db=db, env=SIGBUS_ENV)  # a signal fails
            self.assertIn(res.rc, (0, T.EX_TEMPFAIL), res)
            if "SIGBUS" in res.err:
                sigbus.append(k)
            if res.rc == 0:
                break
        self.assertTrue(sigbus, "no amount of free space gave SIGBUS")
        os.unlink(os.path.join(mnt, "filler"))
        res = self.ingest(T.sample("report.json.gz"), db=db)
        self.assertExit(res, 0)
        self.assertEqual(T.scalar(db, "PRAGMA integrity_check"), "ok")
        self.assertEqual(T.scalar(db, "SELECT COUNT(*) FROM reports"), 2)


# ---- the hostile-input corpus --------------------------------------------------------------


class HostileCorpus(HardenCase):
    def test_every_hostile_input_answered_and_healthz_after_each(self):
        d = self.daemon()
        for name, ctype, headers, body, allowed in H.corpus():
            with self.subTest(input=name):
                status, secs, answer = H.post_from(d.port, "127.0.0.1", body, ctype, headers)
                self.assertIn(status, allowed, "%s: %r" % (name, answer[:300]))
                self.assertLess(secs, 10.0 * SLOW, "%s took %.1f s" % (name, secs))
                self.assertEqual(d.get("/healthz").status, 200, "after %s" % name)
        peak = hwm(d)
        sys.stderr.write("\n  [corpus] %d inputs, peak RSS %.1f MiB\n" %
                         (len(H.corpus()), peak / MiB))
        self.assertLess(peak, RSS_FOUR)
        self.assertEqual(T.scalar(self.db, "SELECT COUNT(*) FROM reports"), 0)
        self.stop_ok(d)


if __name__ == "__main__":
    T.main()
