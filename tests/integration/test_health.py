#!/usr/bin/env python3
"""The health of storage under abuse (issue 11, failures 4, 5 and 7), on either
backend.

  Deleted       SQLite: the database files removed while serve runs under load: no
                report is acknowledged into the unlinked file (each is 202-spooled or
                stored in the database serve creates again), the API reads the new
                file; after a restart every acknowledged report is there.
                PostgreSQL: serve's sessions terminated under load: the same
  ManyDomains   130,000 distinct policy domains (over 1,300 reports: one report may
                hold 100; 20,000 on PostgreSQL): /metrics keeps metrics_domains series
                and "(other)", the API's summary pages with limit/offset (and without
                limit answers one page), all within seconds
  Modes         the SQLite database, -wal and -shm are 0640 whatever the umask; the
                spool is 0700 with 0600 entries
  Sums          hostile reports whose sessions add up past 2^63: /metrics and every
                summary saturate at 2^63 - 1, never wrap or go negative

Run: TLSRPTD_BIN=build/tlsrptd [TLSRPTD_BACKEND=postgresql TLSRPTD_PG_STATE=DIR]
     python3 tests/integration/test_health.py
"""
import gzip
import json
import os
import stat
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import storage_helpers as H  # noqa: E402
import tlsrptd_test as T  # noqa: E402

INT64_MAX = (1 << 63) - 1
SQLITE = T.backend() == "sqlite"


class HealthCase(T.TlsrptdTestCase):
    def serve(self, *args, name="serve", umask=None):
        return H.Daemon(self, ["--db", self.db, "--rate-limit", "0",
                               "--max-connections-per-ip", "1024",
                               "--spool-dir", self.path("spool")] + list(args),
                        name=name, umask=umask).start()


class Deleted(HealthCase):
    def break_storage(self):
        """The database goes away under the daemon: its files removed (SQLite) or its
        sessions terminated (PostgreSQL)."""
        if SQLITE:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(self.db + suffix)
                except FileNotFoundError:
                    pass
        else:
            name = self.db.rsplit("/", 1)[1]
            T.pg_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                     "'%s' AND pid <> pg_backend_pid()" % name)

    def test_storage_gone_under_load(self):
        d = self.serve()
        for i in range(10):
            self.assertEqual(d.post(H.report_body("before-%d" % i)).status, 201)
        self.assertEqual(d.get_json("/api/v1/summary")["totals"]["reports"], 10)
        clients = H.Clients([d], 6, "gone").start()
        try:
            self.assertTrue(H.wait_until(lambda: clients.count(201) >= 100, 60))
            gone_at = time.monotonic()
            self.break_storage()
            gone_done = time.monotonic()

            def stored_again():  # acknowledged 201 well after the database went away
                with clients.lock:
                    return sum(1 for a in clients.answers
                               if a[3] > gone_at + 2 and a[2] == 201) >= 50
            self.assertTrue(H.wait_until(stored_again, 120, step=0.2),
                            "nothing stored after the database went away\n" + d.log()[-3000:])
        finally:
            answers = clients.stop()
        self.assertTrue(H.wait_until(lambda: not H.spool_entries(self.path("spool")) and
                                     d.health().status == 200, 120, step=0.2), d.log()[-3000:])
        self.assertLessEqual({a[2] for a in answers}, {201, 202, 503})
        if SQLITE:
            self.assertTrue(os.path.exists(self.db), "the database was not created again")
        after = [a for a in answers if a[3] > gone_at and a[2] in (201, 202)]
        sys.stderr.write("\n  [gone] %d answers after the database went away: %d 201, "
                         "%d 202, %d 503\n" % (
                             sum(1 for a in answers if a[3] > gone_at),
                             sum(1 for a in after if a[2] == 201),
                             sum(1 for a in after if a[2] == 202),
                             sum(1 for a in answers if a[3] > gone_at and a[2] == 503)))
        # the running daemon reads what it now writes
        cli = H.summary(self.db)["totals"]
        api = d.get_json("/api/v1/summary")["totals"]
        self.assertEqual(api, cli, "the API reads another database than serve writes")
        self.assertEqual(d.stop(), 0, d.log()[-3000:])
        d2 = self.serve(name="serve2")
        ids = H.stored_ids(self.db)
        # a report whose POST began once the files were gone must be kept; one sent before
        # may have been committed into the removed file just before it went (and answered
        # just after): the test's own removal took it
        sent_after = [a for a in after if clients.sent[a[0]] > gone_done]
        lost = sorted(a[0] for a in sent_after if a[0] not in ids)
        self.assertEqual(lost, [], "acknowledged after the database went away, then lost")
        self.assertEqual(d2.stop(), 0)

    def test_deleted_then_sequential_posts(self):
        """The issue's case: the files removed, then 100 POSTs one after another."""
        if not SQLITE:
            self.skipTest("PostgreSQL has no database file to remove")
        d = self.serve()
        self.assertEqual(d.post(H.report_body("first")).status, 201)
        self.break_storage()
        answers = [(rid, d.post(H.report_body(rid)).status)
                   for rid in ("seq-%03d" % i for i in range(100))]
        self.assertLessEqual({st for _, st in answers}, {201, 202, 503})
        self.assertTrue(H.wait_until(lambda: not H.spool_entries(self.path("spool")) and
                                     d.health().status == 200, 120, step=0.2), d.log()[-3000:])
        self.assertEqual(d.stop(), 0)
        ids = H.stored_ids(self.db)
        acked = [rid for rid, st in answers if st in (201, 202)]
        self.assertEqual(sorted(set(acked) - set(ids)), [],
                         "acknowledged into the removed file")
        self.assertNotIn("first", ids)  # removed with the file: the database is a new one


class ManyDomains(HealthCase):
    # PostgreSQL stores a policy with a round trip per row: 130,000 domains take over
    # eight minutes there on a 2-core machine, so that run uses fewer (still far more
    # than metrics_domains); the SQLite run has the 130,000.
    DOMAINS = 130000 if SQLITE else 20000
    PER_REPORT = 100  # distinct policy domains one report may hold (max_policy_domains)

    def report(self, k):
        r = T.sample_report()
        r["report-id"] = "domains-%05d" % k
        pol = r["policies"][0]
        r["policies"] = []
        for j in range(self.PER_REPORT):
            n = k * self.PER_REPORT + j
            p = json.loads(json.dumps(pol))
            p["policy"]["policy-domain"] = "d%06d.example" % n
            p["summary"]["total-successful-session-count"] = 1000 + n
            p["summary"]["total-failure-session-count"] = n % 7
            p["failure-details"] = [{"result-type": "certificate-expired",
                                     "failed-session-count": n % 7}] if n % 7 else []
            r["policies"].append(p)
        return gzip.compress(json.dumps(r).encode())

    def test_metrics_and_summary_stay_bounded(self):
        d = self.serve()
        nreports = self.DOMAINS // self.PER_REPORT
        statuses = []
        lock = threading.Lock()

        def post(ks):
            for k in ks:
                r = d.post(self.report(k), ctype="application/tlsrpt+gzip")
                with lock:
                    statuses.append((k, r.status, r))

        t0 = time.monotonic()
        threads = [threading.Thread(target=post, args=(range(c, nreports, 8),)) for c in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(1800)
        stored_in = time.monotonic() - t0
        self.assertEqual([x for x in statuses if x[1] != 201], [])
        self.assertEqual(len(statuses), nreports)
        ok_total = sum(1000 + n for n in range(self.DOMAINS))
        bad_total = sum(n % 7 for n in range(self.DOMAINS))

        t0 = time.monotonic()
        r = d.get("/metrics")
        metrics_s = time.monotonic() - t0
        metrics_bytes = len(r.body)
        self.assertEqual(r.status, 200, r)
        m = H.parse_metrics(r.body.decode())
        sessions = H.metric(m, "tlsrptd_sessions_total")
        domains = {lb["policy_domain"] for lb, _ in sessions}
        self.assertEqual(len(domains), 1000 + 1, "metrics_domains (1000) and (other)")
        self.assertIn("(other)", domains)
        self.assertEqual(H.metric_total(m, "tlsrptd_sessions_total", result="successful"),
                         ok_total)
        self.assertEqual(H.metric_total(m, "tlsrptd_sessions_total", result="failed"), bad_total)
        self.assertEqual(H.metric_total(m, "tlsrptd_failed_sessions_total"), bad_total)
        failed_domains = {lb["policy_domain"] for lb, _ in
                          H.metric(m, "tlsrptd_failed_sessions_total")}
        self.assertLessEqual(len(failed_domains), 1001)
        self.assertLessEqual(len(H.metric(m, "tlsrptd_last_report_timestamp_seconds")), 1000)
        # the busiest domains have series of their own
        self.assertIn("d%06d.example" % (self.DOMAINS - 1), domains)
        self.assertNotIn("d000000.example", domains)
        self.assertLess(metrics_bytes, 1 << 20, "/metrics is %d bytes" % metrics_bytes)

        t0 = time.monotonic()
        page = d.get_json("/api/v1/summary?limit=100&offset=1000")
        page_s = time.monotonic() - t0
        self.assertEqual(page["total_groups"], self.DOMAINS)
        self.assertEqual([g["policy_domain"] for g in page["groups"]],
                         ["d%06d.example" % n for n in range(1000, 1100)])
        self.assertEqual(page["groups"][0]["successful_sessions"], 2000)
        self.assertEqual(page["totals"]["successful_sessions"], ok_total)
        last = d.get_json("/api/v1/summary?limit=100&offset=%d" % (self.DOMAINS - 30))
        self.assertEqual(len(last["groups"]), 30)
        top = d.get_json("/api/v1/summary?top=5")
        self.assertEqual(len(top["groups"]), 5)
        self.assertEqual(top["groups"][0]["failed_sessions"], 6)
        # without limit the API answers one page too, and says so
        t0 = time.monotonic()
        r = d.get("/api/v1/summary")
        whole_s = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        whole = r.json()
        sys.stderr.write("\n  [domains] %d reports stored in %.1f s; /metrics %.2f s (%d bytes), "
                         "a summary page %.2f s, the summary without limit %.2f s (%d bytes)\n" %
                         (nreports, stored_in, metrics_s, metrics_bytes, page_s, whole_s,
                          len(r.body)))
        self.assertEqual((whole["total_groups"], whole["limit"], whole["offset"]),
                         (self.DOMAINS, 1000, 0))
        self.assertEqual(len(whole["groups"]), 1000)
        self.assertEqual(whole["totals"]["successful_sessions"], ok_total)
        self.assertLess(metrics_s, 5 * H.SLOW, "/metrics took %.1f s" % metrics_s)
        self.assertLess(page_s, 5 * H.SLOW, "a summary page took %.1f s" % page_s)
        self.assertLess(whole_s, 5 * H.SLOW, "the summary without limit took %.1f s" % whole_s)
        self.assertEqual(d.health().status, 200)
        self.assertEqual(d.stop(), 0)


class Modes(HealthCase):
    def modes(self, path):
        out = {}
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                out[suffix or "db"] = stat.S_IMODE(os.stat(path + suffix).st_mode)
        return out

    def test_database_files_0640_whatever_the_umask(self):
        if not SQLITE:
            self.skipTest("PostgreSQL keeps no files of ours")
        for umask in (0o000, 0o022, 0o077):
            db = self.path("umask-%03o.db" % umask)
            p = subprocess.run([T.tlsrptd_bin(), "ingest", "--db", db, "--no-progress",
                                T.sample("report.json"), T.sample("invalid.json")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda u=umask: os.umask(u), timeout=120)
            self.assertEqual(p.returncode, T.EX_DATAERR, p.stderr)
            got = self.modes(db)
            self.assertIn("db", got)
            self.assertEqual(set(got.values()), {0o640}, "umask %03o: %r" % (umask, {
                k: oct(v) for k, v in got.items()}))
        # serve: the files stay 0640 while it runs (the WAL is open), and its spool is 0700
        db = self.path("serve.db")
        self.db = db
        d = self.serve(umask=0)
        self.assertEqual(d.post(H.report_body("mode-1")).status, 201)
        got = self.modes(db)
        self.assertEqual(set(got), {"db", "-wal", "-shm"})
        self.assertEqual(set(got.values()), {0o640}, {k: oct(v) for k, v in got.items()})
        spool = self.path("spool")
        self.assertEqual(stat.S_IMODE(os.stat(spool).st_mode), 0o700)
        lock = H.Outage(db)
        lock.begin()
        try:
            self.assertEqual(d.post(H.report_body("mode-2")).status, 202)
        finally:
            lock.end()
        for sub in ("new", "tmp"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(spool, sub)).st_mode), 0o700)
        entries = H.spool_entries(spool)
        for name in entries:
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(spool, "new", name)).st_mode),
                             0o600)
        self.assertEqual(d.stop(), 0)


def hostile_report(rid, domain, day):
    """511 policies of 2^53 sessions each (500 successful, 11 failed): under 2^62 in
    all, as one report may claim; three of them pass 2^63."""
    big = 1 << 53
    r = T.sample_report()
    r["report-id"] = rid
    r["date-range"] = {"start-datetime": "2026-11-%02dT00:00:00Z" % day,
                       "end-datetime": "2026-11-%02dT23:59:59Z" % day}
    template = r["policies"][0]
    r["policies"] = []
    for i in range(511):
        p = json.loads(json.dumps(template))
        p["policy"]["policy-domain"] = domain
        ok = i < 500
        p["summary"] = {"total-successful-session-count": big if ok else 0,
                        "total-failure-session-count": 0 if ok else big}
        p["failure-details"] = [] if ok else [{"result-type": "certificate-expired",
                                               "sending-mta-ip": "198.51.100.%d" % i,
                                               "receiving-mx-hostname": "mx.%s" % domain,
                                               "failed-session-count": big}]
        r["policies"].append(p)
    return json.dumps(r).encode()


class Sums(HealthCase):
    def test_sums_saturate_never_wrap(self):
        big = 1 << 53
        # hostile-a: three reports in one transaction (the batch adds them up in memory);
        # hostile-b: three separate POSTs (the database adds them up)
        paths = [self.write("a%d.json" % i, hostile_report("hostile-a-%d" % i, "hostile-a.example",
                                                           1 + i // 2)) for i in range(3)]
        self.assertExit(self.ingest(*paths), 0)
        d = self.serve("--metrics-domains", "1")
        for i in range(3):
            r = d.post(hostile_report("hostile-b-%d" % i, "hostile-b.example", 1 + i // 2))
            self.assertEqual(r.status, 201, r)
        failed_each = 3 * 11 * big  # no overflow: exact

        def check_group(g, what, successful=INT64_MAX):
            self.assertEqual(g["successful_sessions"], successful, what)
            self.assertEqual(g["failed_sessions"], failed_each, what)
            rate = g["failure_rate"]
            self.assertIsNotNone(rate, "%s: no failure rate" % what)
            want = failed_each / (successful + failed_each)
            self.assertAlmostEqual(rate, want, places=6, msg=what)

        js = H.summary(self.db)
        groups = {g["policy_domain"]: g for g in js["groups"]}
        for dom in ("hostile-a.example", "hostile-b.example"):
            check_group(groups[dom], dom)
            self.assertEqual(groups[dom]["failures"], {"certificate-expired": failed_each})
        self.assertEqual(js["totals"]["successful_sessions"], INT64_MAX)
        self.assertEqual(js["totals"]["failed_sessions"], 2 * failed_each)
        self.assertGreater(js["totals"]["failure_rate"], 0)
        # the rollups (a time window), one domain, other dimensions
        windowed = H.summary(self.db, "--since", "2026-10-01", "--domain", "hostile-b.example")
        check_group(windowed["groups"][0], "windowed")
        days = H.summary(self.db, "--by", "day", "--domain", "hostile-a.example")
        self.assertEqual([g["successful_sessions"] for g in days["groups"]],
                         [1000 * big, 500 * big])
        for by in ("reporter", "policy-type"):
            g = H.summary(self.db, "--by", by)["groups"][0]
            self.assertEqual(g["successful_sessions"], INT64_MAX, by)
            self.assertGreater(g["failure_rate"], 0, by)
        for by in ("result-type", "sending-ip", "mx-host"):
            for g in H.summary(self.db, "--by", by)["groups"]:
                self.assertGreaterEqual(g["failed_sessions"], big, by)
        for rep in H.stored_reports(self.db):
            self.assertEqual((rep["successful_sessions"], rep["failed_sessions"]),
                             (500 * big, 11 * big))
        table = T.run(["summary", "--db", self.db])
        self.assertExit(table, 0)
        self.assertNotRegex(table.out, r"(^|\s)-\d", "a negative number in the table")
        self.assertRegex(table.out, r"9223372036854775807")
        api = d.get_json("/api/v1/summary")
        self.assertEqual(api["totals"], js["totals"])
        # /metrics: saturated, never negative; "(other)" is the second domain
        m = d.metrics()
        for name, labels, v in m:
            if name.startswith("tlsrptd_") and isinstance(v, int):
                self.assertTrue(0 <= v <= INT64_MAX, "%s%r = %d" % (name, labels, v))
        ok = H.metric(m, "tlsrptd_sessions_total", result="successful")
        self.assertEqual(sorted(lb["policy_domain"] for lb, _ in ok),
                         ["(other)", "hostile-a.example"])
        self.assertEqual({v for _, v in ok}, {INT64_MAX})
        self.assertEqual({v for _, v in H.metric(m, "tlsrptd_sessions_total", result="failed")},
                         {failed_each})
        self.assertEqual({v for _, v in H.metric(m, "tlsrptd_failed_sessions_total")},
                         {failed_each})
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    T.main()
