#!/usr/bin/env python3
"""The spool of `tlsrptd serve` (DESIGN §10): while the database cannot take a
report, an HTTP report is written to the spool and answered 202, and stored
once storage is back, in arrival order, exactly once.

The outage (storage_helpers.Outage): on SQLite another connection holds an
EXCLUSIVE transaction on the file; on PostgreSQL the server is stopped with
pg_ctl and started again (a cluster of this suite's own, so the suites that
share ctest's cluster are not disturbed).

  Outage        locked/stopped for 10 s under load: 202s, then every 201 and 202 stored,
                each client's reports in the order it sent them, nothing twice
  Crash         SIGKILL while the spool drains, restart: the same
  Backlog       30,000 entries in the spool at start (10,000 on PostgreSQL): stored in
                order, in minutes
  Full          past spool_max: 503 with Retry-After; what was spooled is stored
  Rejected      a bad report while spooling: 400, quarantined when the spool drains
  Off           spool_dir = off: 503 as without a spool
  Startup       what the spool holds at start is stored before what arrives after
  LostAnswer    (PostgreSQL) a COMMIT done whose answer never came: 202, and draining the
                spool counts the report once, also after a restart; a COMMIT that never
                reached the server: 202, and the report is stored when the spool drains
  Maildir       serve --maildir: mails wait in new/ (never spooled), stored afterwards,
                also when no HTTP report came meanwhile

Run: TLSRPTD_BIN=build/tlsrptd [TLSRPTD_BACKEND=postgresql TLSRPTD_PG_STATE=DIR]
     python3 tests/integration/test_spool.py
"""
import gzip
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import storage_helpers as H  # noqa: E402
import test_maildir as M  # noqa: E402  (Maildirs and report mails)
import tlsrptd_test as T  # noqa: E402

OUTAGE_SECONDS = 10
SAMPLE_ID = "2026-11-01T00:00:00Z_mail.example"  # samples/report.json, stored by setUp


class SpoolCase(T.TlsrptdTestCase):
    cluster = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if T.backend() == "postgresql":
            cls.pg_dir = tempfile.mkdtemp(prefix="tlsrptd-spool-pg-")
            cls.cluster = H.PgCluster(os.path.join(cls.pg_dir, "pg"))

    @classmethod
    def tearDownClass(cls):
        if cls.cluster:
            cls.cluster.destroy()
            shutil.rmtree(cls.pg_dir, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self.cluster:
            self.db = self.cluster.new_db()
        self.spool = self.path("spool")
        self.outage = H.Outage(self.db, self.cluster)
        self.addCleanup(self.outage.end)
        self.create_db()

    def serve(self, *args, name="serve", spool=True):
        argv = ["--db", self.db, "--rate-limit", "0", "--max-connections-per-ip", "1024",
                "--busy-timeout", "500"]
        if spool:
            argv += ["--spool-dir", self.spool]
        return H.Daemon(self, argv + list(args), name=name).start()

    def create_db(self):
        """The database with its schema and one report (SAMPLE_ID), before any daemon."""
        res = T.run(["ingest", "--db", self.db, "--no-progress", T.sample("report.json")])
        self.assertExit(res, 0)

    def wait_drained(self, d, timeout=180):
        """Until the spool is empty and the daemon healthy again."""
        ok = H.wait_until(lambda: not H.spool_entries(self.spool) and
                          d.health().status == 200, timeout, step=0.2)
        self.assertTrue(ok, "the spool was not drained within %d s: %d entries left\n%s" %
                        (timeout, len(H.spool_entries(self.spool)), d.log()[-4000:]))

    def assertAllStoredInOrder(self, answers, before=()):
        """Every report answered 201 or 202 is stored once, nothing else is; each
        client's reports have increasing ids in the order it sent them."""
        ids = H.stored_ids(self.db)
        sent = [a[0] for a in answers]
        self.assertEqual(sorted(set(ids) - set(before)), sorted(sent),
                         "stored reports differ from the acknowledged ones")
        by_client = {}
        for rid, c, _st, _t in answers:
            by_client.setdefault(c, []).append(ids[rid])
        for c, seq in by_client.items():
            self.assertEqual(seq, sorted(seq), "client %d: stored out of arrival order" % c)
        ok, bad = H.sample_sessions()
        t = H.summary(self.db)["totals"]
        n = len(set(ids))
        self.assertEqual((t["reports"], t["successful_sessions"], t["failed_sessions"]),
                         (n, n * ok, n * bad), "counted twice or lost")
        return ids


class Outage(SpoolCase):
    def test_outage_under_load_202_then_stored_in_order(self):
        d = self.serve()
        clients = H.Clients([d], 8, "load").start()
        try:
            self.assertTrue(H.wait_until(lambda: clients.count(201) >= 40, 60),
                            "no load before the outage\n" + d.log()[-3000:])
            self.outage.begin()
            began = time.monotonic()
            spooled = H.wait_until(lambda: clients.count(202) >= 20, OUTAGE_SECONDS)
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - began)))
            self.outage.end()
            self.assertTrue(spooled, "no 202 during the outage\n" + d.log()[-3000:])
            # still under load: the spool drains and reports are stored directly again
            n202 = clients.count(202)

            def direct_again():
                with clients.lock:
                    last202 = max(i for i, a in enumerate(clients.answers) if a[2] == 202)
                    return sum(1 for a in clients.answers[last202:] if a[2] == 201) >= 40

            again = H.wait_until(direct_again, 120, step=0.2)
            self.assertTrue(again, "still spooling under load %d s after the outage: %d 202s "
                            "then %d, spool %d\n%s" % (
                                120 * H.SLOW, n202, clients.count(202),
                                len(H.spool_entries(self.spool)), d.log()[-3000:]))
        finally:
            answers = clients.stop()
        self.wait_drained(d)
        statuses = {a[2] for a in answers}
        self.assertLessEqual(statuses, {201, 202}, "answers other than 201/202 under load")
        sys.stderr.write("\n  [outage] %d answers: %d 201, %d 202\n" % (
            len(answers), sum(1 for a in answers if a[2] == 201),
            sum(1 for a in answers if a[2] == 202)))
        self.assertAllStoredInOrder(answers, before=[SAMPLE_ID])
        counts = d.outcome_counts()
        self.assertEqual(counts.get("stored"), len(answers), counts)
        self.assertEqual(counts.get("duplicate", 0), 0, counts)
        self.assertEqual(d.stop(), 0, d.log()[-3000:])


class Crash(SpoolCase):
    N = 1200

    def test_sigkill_while_draining_then_restart(self):
        d = self.serve()
        self.outage.begin()
        ids = ["crash-%05d" % i for i in range(self.N)]
        answers = []
        lock = threading.Lock()

        def post(chunk):
            for rid in chunk:
                r = d.post(H.report_body(rid))
                with lock:
                    answers.append((rid, r.status))

        threads = [threading.Thread(target=post, args=(ids[k::12],)) for k in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(H.HTTP_TIMEOUT + 60)
        self.assertEqual({st for _, st in answers}, {202}, d.log()[-3000:])
        self.assertEqual(len(H.spool_entries(self.spool)), self.N)
        self.outage.end()
        draining = H.wait_until(lambda: len(H.spool_entries(self.spool)) < self.N, 60,
                                step=0.001)
        d.sigkill()
        left = len(H.spool_entries(self.spool))
        self.assertTrue(draining, "the spool did not start draining\n" + d.log()[-3000:])
        self.assertGreater(left, 0, "the spool was drained before SIGKILL: no crash tested")
        sys.stderr.write("\n  [crash] SIGKILL with %d of %d entries in the spool\n" %
                         (left, self.N))
        d2 = self.serve(name="serve2")
        self.wait_drained(d2)
        stored = H.stored_ids(self.db)
        self.assertEqual(sorted(set(stored) - {SAMPLE_ID}), ids)
        ok, bad = H.sample_sessions()
        t = H.summary(self.db)["totals"]
        self.assertEqual((t["reports"], t["successful_sessions"]),
                         (self.N + 1, (self.N + 1) * ok))
        counts = d2.outcome_counts()
        self.assertEqual(counts.get("stored"), self.N, counts)
        self.assertEqual(counts.get("duplicate", 0), 0,
                         "an entry committed before the crash was stored again: %r" % counts)
        self.assertEqual(d2.stop(), 0)


class Backlog(SpoolCase):
    # PostgreSQL stores a report with several round trips: fewer there (a listing per
    # few entries is still hours for 10,000)
    N = 30000 if T.backend() == "sqlite" else 10000

    def test_a_long_outage_backlog_drains_in_order(self):
        """What a long outage leaves: N entries, in the spool's own format (a JSON line
        with the source, then the body as received), there when serve starts. They are
        stored in the order of their names, and draining does not slow down with the
        size of the spool (a listing of the whole directory per few entries would)."""
        new = os.path.join(self.spool, "new")
        os.makedirs(os.path.join(self.spool, "tmp"))
        os.makedirs(new)
        t = int(time.time()) - 3600
        for i in range(self.N):
            head = json.dumps({"v": 1, "kind": "http", "name": "/tlsrpt",
                               "client": "127.0.0.1", "received_at": t + i // 10})
            name = "%016x.%08x.%08x.%d" % (t * 1000000 + i * 100, i, 0x5eed, 4242)
            with open(os.path.join(new, name), "wb") as f:
                f.write(head.encode() + b"\n" + H.report_body("backlog-%06d" % i))
        t0 = time.monotonic()
        d = self.serve()
        self.assertTrue(H.wait_until(lambda: not H.spool_entries(self.spool), 600, step=1),
                        "%d entries left after %.0f s\n%s" % (
                            len(H.spool_entries(self.spool)), time.monotonic() - t0,
                            d.log()[-2000:]))
        took = time.monotonic() - t0
        sys.stderr.write("\n  [backlog] %d spooled reports stored in %.1f s\n" % (self.N, took))
        ids = H.stored_ids(self.db)
        seq = [ids["backlog-%06d" % i] for i in range(self.N)]
        self.assertEqual(seq, sorted(seq), "not stored in arrival order")
        self.assertLess(took, 180 * H.SLOW)
        self.assertEqual(d.stop(), 0)


class Full(SpoolCase):
    def test_past_spool_max_503(self):
        limit = 20000
        d = self.serve("--spool-max", str(limit))
        self.outage.begin()
        answers = []
        for i in range(40):
            rid = "full-%02d" % i
            answers.append((rid, d.post(H.report_body(rid))))
        accepted = [rid for rid, r in answers if r.status == 202]
        refused = [rid for rid, r in answers if r.status == 503]
        self.assertEqual(len(accepted) + len(refused), 40, [r for _, r in answers])
        self.assertGreater(len(accepted), 3)
        self.assertGreater(len(refused), 3)
        # the spool fills first; once full, every report is refused
        self.assertEqual([rid for rid, _ in answers[:len(accepted)]], accepted)
        for rid, r in answers:
            if r.status == 503:
                self.assertGreaterEqual(int(r.headers.get("retry-after", "0")), 1, r)
                self.assertIn("spool", r.json().get("detail", ""), r)
        size = sum(os.path.getsize(os.path.join(self.spool, "new", n))
                   for n in H.spool_entries(self.spool))
        self.assertLessEqual(size, limit)
        self.assertEqual(len(H.spool_entries(self.spool)), len(accepted))
        self.outage.end()
        self.wait_drained(d)
        stored = set(H.stored_ids(self.db))
        self.assertLessEqual(set(accepted), stored)
        self.assertEqual(set(refused) & stored, set())
        for rid in refused[:3]:  # the sender retries: stored now
            self.assertEqual(d.post(H.report_body(rid)).status, 201)
        self.assertEqual(d.stop(), 0)


class Rejected(SpoolCase):
    def test_bad_report_while_spooling_400_then_quarantined(self):
        d = self.serve()
        self.outage.begin()
        invalid = T.read_bytes(T.sample("invalid.json"))
        not_gzip = b"this is not gzip at all"
        good = H.report_body("spooled-good")
        r = d.post(good)
        self.assertEqual(r.status, 202, r)
        r = d.post(invalid)
        self.assertEqual(r.status, 400, r)
        self.assertIn("report-id", r.json().get("detail", ""), r)
        r = d.post(not_gzip, headers={"Content-Encoding": "gzip"})
        self.assertEqual(r.status, 400, r)
        r = d.post(gzip.compress(invalid), ctype="application/tlsrpt+gzip", path="/tlsrpt/gz")
        self.assertEqual(r.status, 400, r)
        self.assertEqual(len(H.spool_entries(self.spool)), 4)
        self.outage.end()
        self.wait_drained(d)
        self.assertIn("spooled-good", H.stored_ids(self.db))
        q = H.quarantine_list(self.db)
        self.assertEqual(q["total"], 3, q)
        entries = sorted(q["entries"], key=lambda e: e["id"])
        self.assertRegex(entries[0]["reason"], r"report-id")
        self.assertRegex(entries[1]["reason"], r"Content-Encoding: gzip")
        self.assertRegex(entries[2]["reason"], r"report-id")
        self.assertEqual([e["source"]["kind"] for e in entries], ["http"] * 3)
        self.assertEqual(entries[2]["source"]["name"], "/tlsrpt/gz")
        exported = T.run(["quarantine", "export", "--db", self.db, str(entries[1]["id"])])
        self.assertExit(exported, 0)
        self.assertEqual(exported.out.encode(), not_gzip)
        counts = d.outcome_counts()
        self.assertEqual((counts.get("stored"), counts.get("rejected")), (1, 3), counts)
        self.assertEqual(d.stop(), 0)


class Off(SpoolCase):
    def test_spool_off_answers_503(self):
        d = self.serve("--spool-dir", "off", spool=False)
        self.assertEqual(d.post(H.report_body("off-before")).status, 201)
        self.outage.begin()
        try:
            for i in range(3):
                r = d.post(H.report_body("off-during"))
                self.assertEqual(r.status, 503, r)
                self.assertGreaterEqual(int(r.headers.get("retry-after", "0")), 1, r)
        finally:
            self.outage.end()
        self.assertFalse(os.path.exists(self.spool))
        self.assertFalse(os.path.exists(self.path("tlsrptd.spool")))
        ok = H.wait_until(lambda: d.post(H.report_body("off-during")).status == 201, 60,
                          step=0.5)
        self.assertTrue(ok, d.log()[-3000:])
        self.assertEqual(set(H.stored_ids(self.db)) - {SAMPLE_ID},
                         {"off-before", "off-during"})
        self.assertEqual(H.quarantine_list(self.db)["total"], 0)
        self.assertEqual(d.stop(), 0)


class Startup(SpoolCase):
    def test_spool_at_start_is_stored_first(self):
        d = self.serve()
        self.outage.begin()
        early = ["early-%02d" % i for i in range(20)]
        for rid in early:
            self.assertEqual(d.post(H.report_body(rid)).status, 202)
        self.assertEqual(d.stop(), 0, d.log()[-3000:])  # SIGTERM while storage is down
        self.assertEqual(len(H.spool_entries(self.spool)), 20)
        self.outage.end()
        d2 = self.serve(name="serve2")
        late, answers = ["late-%02d" % i for i in range(20)], []
        for rid in late:
            r = d2.post(H.report_body(rid))
            self.assertIn(r.status, (201, 202), r)
            answers.append((rid, 0, r.status, 0))
        self.wait_drained(d2)
        ids = self.assertAllStoredInOrder([(rid, 0, 202, 0) for rid in early] + answers,
                                          before=[SAMPLE_ID])
        self.assertLess(max(ids[r] for r in early), min(ids[r] for r in late),
                        "a report that arrived after the restart was stored before the spool")
        self.assertEqual(d2.stop(), 0)


class LostAnswer(SpoolCase):
    """PostgreSQL commits a group commit and the connection breaks before its answer
    arrives (a server stopping, a network cut): the writer cannot know, spools the batch
    and answers 202. Draining it must not count the report again: it was stored, once,
    by that commit (a SQLite COMMIT's outcome is never unknown)."""

    def setUp(self):
        if T.backend() != "postgresql":
            self.skipTest("PostgreSQL only: a SQLite COMMIT's outcome is never unknown")
        super().setUp()
        self.proxy = H.CommitAnswerLoss(self.cluster.port)
        self.addCleanup(self.proxy.close)

    def serve_via_proxy(self, name="serve"):
        argv = ["--db", self.proxy.uri(self.db), "--rate-limit", "0", "--spool-dir",
                self.spool]
        return H.Daemon(self, argv, name=name).start()

    def assertCountedOnce(self, d, rids):
        self.assertEqual(set(H.stored_ids(self.db)) - {SAMPLE_ID}, set(rids))
        n = len(rids) + 1
        ok, bad = H.sample_sessions()
        t = H.summary(self.db)["totals"]
        self.assertEqual((t["reports"], t["successful_sessions"], t["failed_sessions"]),
                         (n, n * ok, n * bad), "counted twice or lost")
        counts = d.outcome_counts()
        self.assertEqual((counts.get("stored"), counts.get("duplicate", 0)), (len(rids), 0),
                         counts)

    def test_answer_lost_then_drained(self):
        d = self.serve_via_proxy()
        self.assertEqual(d.post(H.report_body("before")).status, 201)
        self.proxy.arm(b"lost-answer")
        r = d.post(H.report_body("lost-answer"))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(self.proxy.dropped, 1)
        self.wait_drained(d)
        self.assertEqual(d.post(H.report_body("after")).status, 201)
        self.assertCountedOnce(d, ["before", "lost-answer", "after"])
        self.assertEqual(d.stop(), 0)

    def test_commit_lost_after_commits_that_were_not(self):
        # commits that never reached the server, each right after one that did: their
        # reports are stored when the spool drains (a ticket is never taken for another's)
        d = self.serve_via_proxy()
        rids = []
        for i in range(4):
            for k in range(1 + i % 2):  # one commit, then two: tickets of both parities
                rids.append("direct-%d-%d" % (i, k))
                self.assertEqual(d.post(H.report_body(rids[-1])).status, 201)
            rids.append("commit-lost-%d" % i)
            self.proxy.arm(rids[-1].encode(), commit_too=True)
            r = d.post(H.report_body(rids[-1]))
            self.assertEqual(r.status, 202, r)
            self.wait_drained(d)
        self.assertEqual(self.proxy.dropped, 4)
        self.assertCountedOnce(d, rids)
        self.assertEqual(d.stop(), 0)

    def test_answer_lost_then_restart_drains(self):
        d = self.serve_via_proxy()
        self.proxy.arm(b"lost-answer", then_refuse=True)  # the entry waits in the spool
        r = d.post(H.report_body("lost-answer"))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(d.stop(), 0, d.log()[-3000:])
        self.assertEqual(len(H.spool_entries(self.spool)), 1)
        self.proxy.refusing = False
        d2 = self.serve_via_proxy(name="serve2")
        self.wait_drained(d2)
        self.assertCountedOnce(d2, ["lost-answer"])
        self.assertEqual(d2.stop(), 0)


class Maildir(SpoolCase):
    def test_serve_maildir_files_wait_in_new(self):
        md = M.make_maildir(self.path("Maildir"))
        d = self.serve("--maildir", md, "--maildir-rescan", "1")
        self.outage.begin()
        for i in range(5):
            M.deliver(md, "%d.M%d.outage" % (i, i), M.report_mail(M.numbered_report(700 + i)))
        M.deliver(md, "9.M9.plain", M.plain_mail(9))
        for i in range(3):
            self.assertEqual(d.post(H.report_body("http-%d" % i)).status, 202)
        time.sleep(3 * H.SLOW)  # several rescans while storage is down
        self.assertEqual(len(M.files(md, "new")), 6)
        self.assertEqual(M.files(md, "cur"), [])
        self.assertEqual(M.files(md, ".Quarantine/new"), [])
        self.assertEqual(len(H.spool_entries(self.spool)), 3, "mails went into the spool")
        self.outage.end()
        self.wait_drained(d)
        self.assertTrue(H.wait_until(lambda: not M.files(md, "new"), 60), d.log()[-3000:])
        self.assertEqual(len(M.files(md, "cur")), 5)
        self.assertEqual(M.files(md, ".Quarantine/new"), ["9.M9.plain"])
        stored = set(H.stored_ids(self.db))
        self.assertLessEqual({"http-0", "http-1", "http-2"} |
                             {"maildir-test-%05d" % (700 + i) for i in range(5)}, stored)
        self.assertEqual(d.stop(), 0)

    def test_mail_only_outage_is_stored_afterwards(self):
        """No HTTP report during the outage: nothing is spooled, and the mails are
        stored once storage is back (the writer must not keep waiting for a spool
        that holds nothing)."""
        md = M.make_maildir(self.path("Maildir"))
        d = self.serve("--maildir", md, "--maildir-rescan", "1")
        self.outage.begin()
        for i in range(3):
            M.deliver(md, "%d.M%d.only" % (i, i), M.report_mail(M.numbered_report(800 + i)))
        self.assertTrue(H.wait_until(lambda: "storage unavailable" in d.log(), 30),
                        d.log()[-3000:])
        self.assertEqual(len(M.files(md, "new")), 3)
        self.outage.end()
        self.assertTrue(H.wait_until(lambda: not M.files(md, "new"), 60),
                        "mails not stored after the outage\n" + d.log()[-3000:])
        self.assertEqual(H.spool_entries(self.spool), [])
        self.assertLessEqual({"maildir-test-%05d" % (800 + i) for i in range(3)},
                             set(H.stored_ids(self.db)))
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    T.main()
