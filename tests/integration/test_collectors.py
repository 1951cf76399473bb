#!/usr/bin/env python3
"""Several collectors, one database (DESIGN §10): three `tlsrptd serve` processes
on one PostgreSQL database, as behind a load balancer. PostgreSQL only.

  Shared        200 clients POST distinct reports spread over the three, and the same
                50 reports go to all three at once: every report stored once, exactly
                one 201 per report and 200 for the other copies
  KillOne       SIGKILL one collector under load: every acknowledged report is stored,
                the other two keep answering 201
  Restart       PostgreSQL stopped and started under load (a cluster of this suite's
                own): 202s from each collector's spool, then everything stored, once

Run: TLSRPTD_BIN=build/tlsrptd TLSRPTD_BACKEND=postgresql TLSRPTD_PG_STATE=DIR
     python3 tests/integration/test_collectors.py
"""
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import storage_helpers as H  # noqa: E402
import tlsrptd_test as T  # noqa: E402

COLLECTORS = 3


def setUpModule():
    if T.backend() != "postgresql":
        raise unittest.SkipTest("several collectors share a PostgreSQL database: run with "
                                "TLSRPTD_BACKEND=postgresql (ctest: it_collectors_pg)")


class CollectorsCase(T.TlsrptdTestCase):
    def collectors(self, db):
        """Three collectors on db, started at once (their schema migrations race)."""
        daemons = [H.Daemon(self, ["--db", db, "--rate-limit", "0",
                                   "--max-connections-per-ip", "1024",
                                   "--spool-dir", self.path("spool-%d" % i)],
                            name="collector-%d" % i) for i in range(COLLECTORS)]
        errors = []

        def start(d):
            try:
                d.start()
            except AssertionError as e:
                errors.append(e)

        threads = [threading.Thread(target=start, args=(d,)) for d in daemons]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return daemons

    def assertTotals(self, db, n):
        ok, bad = H.sample_sessions()
        t = H.summary(db)["totals"]
        self.assertEqual((t["reports"], t["successful_sessions"], t["failed_sessions"]),
                         (n, n * ok, n * bad), "a report counted twice or lost")

    def stop_all(self, daemons):
        for d in daemons:
            if d.running():
                self.assertEqual(d.stop(), 0, d.log()[-3000:])


class Shared(CollectorsCase):
    CLIENTS = 200
    EACH = 3  # reports per client
    SAME = 50

    def test_distinct_and_same_reports(self):
        daemons = self.collectors(self.db)
        lock = threading.Lock()
        distinct, same = [], {}
        barriers = [threading.Barrier(COLLECTORS) for _ in range(self.SAME)]

        def client(c):
            d = daemons[c % COLLECTORS]
            for i in range(self.EACH):
                rid = "distinct-%03d-%d" % (c, i)
                r = d.post(H.report_body(rid))
                with lock:
                    distinct.append((rid, r.status, r))

        def copy(k, d):
            rid = "same-%02d" % k
            body = H.report_body(rid)
            barriers[k].wait(60)
            r = d.post(body)
            with lock:
                same.setdefault(rid, []).append(r.status)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(self.CLIENTS)]
        threads += [threading.Thread(target=copy, args=(k, d)) for k in range(self.SAME)
                    for d in daemons]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(H.HTTP_TIMEOUT + 60)
        elapsed = time.monotonic() - t0
        sys.stderr.write("\n  [shared] %d POSTs over %d collectors in %.1f s\n" % (
            len(distinct) + sum(len(v) for v in same.values()), COLLECTORS, elapsed))
        bad = [(rid, st, r) for rid, st, r in distinct if st != 201]
        self.assertEqual(bad, [], "distinct reports not answered 201")
        self.assertEqual(len(same), self.SAME)
        for rid, statuses in sorted(same.items()):
            self.assertEqual(sorted(statuses), [200] * (COLLECTORS - 1) + [201],
                             "%s: one 201 and the rest 200 expected" % rid)
        ids = H.stored_ids(self.db)  # fails when a report-id is stored twice
        expected = {rid for rid, _, _ in distinct} | set(same)
        self.assertEqual(set(ids), expected)
        self.assertTotals(self.db, len(expected))
        counts = daemons[0].outcome_counts()  # one database: all collectors
        self.assertEqual(counts.get("stored"), len(expected), counts)
        self.assertEqual(counts.get("duplicate"), self.SAME * (COLLECTORS - 1), counts)
        self.stop_all(daemons)


class KillOne(CollectorsCase):
    def test_sigkill_one_collector_under_load(self):
        daemons = self.collectors(self.db)
        clients = H.Clients(daemons, 24, "kill").start()
        try:
            self.assertTrue(H.wait_until(lambda: clients.count(201) >= 300, 120),
                            "too few answers before the kill")
            daemons[0].sigkill()
            killed_at = time.monotonic()
            # the other two go on
            self.assertTrue(H.wait_until(
                lambda: sum(1 for a in clients.answers if a[3] > killed_at + 0.5 and
                            a[2] == 201) >= 200, 120))
        finally:
            answers = clients.stop()
        survivors = [a for a in answers if a[1] % COLLECTORS != 0]
        self.assertEqual({a[2] for a in survivors}, {201},
                         "the other collectors did not answer 201 throughout")
        acked = {a[0] for a in answers if a[2] == 201}
        ids = H.stored_ids(self.db)
        self.assertEqual(sorted(acked - set(ids)), [],
                         "acknowledged reports lost when a collector was killed")
        # what the killed collector committed without answering is stored once, too
        self.assertLessEqual(set(ids), {a[0] for a in answers})
        self.assertTotals(self.db, len(ids))
        self.stop_all(daemons[1:])


class Restart(CollectorsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg_dir = tempfile.mkdtemp(prefix="tlsrptd-collectors-pg-")
        cls.cluster = H.PgCluster(os.path.join(cls.pg_dir, "pg"))

    @classmethod
    def tearDownClass(cls):
        cls.cluster.destroy()
        shutil.rmtree(cls.pg_dir, ignore_errors=True)
        super().tearDownClass()

    def test_postgresql_restart_under_load(self):
        db = self.cluster.new_db()
        daemons = self.collectors(db)
        outage = H.Outage(db, self.cluster)
        self.addCleanup(outage.end)
        clients = H.Clients(daemons, 12, "restart").start()
        same = []
        try:
            self.assertTrue(H.wait_until(lambda: clients.count(201) >= 60, 120))
            outage.begin()
            self.assertTrue(H.wait_until(lambda: clients.count(202) >= 30, 60),
                            "no 202 while PostgreSQL was down")
            for k in range(10):  # the same reports to every collector, all spooled
                rid = "same-down-%d" % k
                for d in daemons:
                    r = d.post(H.report_body(rid))
                    self.assertEqual(r.status, 202, r)
                same.append(rid)
            time.sleep(3)
            outage.end()

            def direct_again():
                with clients.lock:
                    last = max(i for i, a in enumerate(clients.answers) if a[2] == 202)
                    after = clients.answers[last:]
                return all(sum(1 for a in after if a[2] == 201 and a[1] % COLLECTORS == c)
                           >= 10 for c in range(COLLECTORS))

            self.assertTrue(H.wait_until(direct_again, 180, step=0.2),
                            "the collectors did not store directly again after the restart")
        finally:
            answers = clients.stop()
        for i, d in enumerate(daemons):
            self.assertTrue(H.wait_until(
                lambda: not H.spool_entries(self.path("spool-%d" % i)) and
                d.health().status == 200, 180, step=0.2), d.log()[-3000:])
        statuses = {a[2] for a in answers}
        self.assertLessEqual(statuses, {201, 202})
        n202 = sum(1 for a in answers if a[2] == 202)
        sys.stderr.write("\n  [restart] %d answers, %d of them 202\n" % (len(answers), n202))
        ids = H.stored_ids(db)
        expected = {a[0] for a in answers} | set(same)
        self.assertEqual(set(ids), expected)
        by_client = {}
        for rid, c, _st, _t in answers:
            by_client.setdefault(c, []).append(ids[rid])
        for c, seq in by_client.items():
            self.assertEqual(seq, sorted(seq), "client %d: stored out of arrival order" % c)
        self.assertTotals(db, len(expected))
        counts = daemons[0].outcome_counts()
        self.assertEqual(counts.get("stored"), len(expected), counts)
        self.assertEqual(counts.get("duplicate"), len(same) * (COLLECTORS - 1), counts)
        self.stop_all(daemons)


if __name__ == "__main__":
    T.main()
