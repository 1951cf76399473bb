#!/usr/bin/env python3
"""Retention (`retention`, `rollup_retention`, `quarantine_retention`, `tlsrptd prune`,
serve's daily prune; docs/trust.md).

  TwoYears     a report a week for two years; `prune --retention 365d --dry-run` counts
               exactly the older ones and removes nothing; `prune` removes exactly them
               (the listing holds the younger ones only), while the summary by day over
               the whole range, by domain and by reporter, and the totals are unchanged;
               SQLite: the file shrinks, also for a database made before tlsrptd set
               auto_vacuum (rebuilt once)
  Rollups      rollup_retention drops the days before it from the daily summary only
  Quarantine   quarantine_retention empties the quarantine of old entries
  Serve        serve with retention and prune_interval prunes by itself
  Usage        no setting, a bad duration: exit 64

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_retention.py
"""
import calendar
import os
import sqlite3
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402
import trust_common as C  # noqa: E402

YEAR = 365 * C.DAY


def weekly_reports(tmp, now, weeks=104):
    """A report a week back from yesterday for two domains, skipping the weeks close to
    the 365-day line (no report may sit on it while the test runs). Returns the paths
    and the report-ids of the reports that are older than 365 days."""
    paths, old = [], set()
    base = C.midnight(now) - C.DAY
    for k in range(weeks):
        start = base - k * 7 * C.DAY
        if abs(start - (now - YEAR)) < 3 * C.DAY:
            continue
        # large raw bytes (many failure details, long strings), so pruning frees pages
        fails = [("certificate-expired" if i % 2 else "validation-failure",
                  "192.0.2.%d" % (1 + i % 200), "mx%d.keep.test" % (i % 3), 1 + (k + i) % 5)
                 for i in range(120)]
        pols = [C.policy("keep.test", 1000 + k, fails,
                         strings=["version: STSv1", "mode: enforce"] +
                         ["mx: mx%d.%03d.keep.test" % (i, k) for i in range(80)]),
                C.policy("also.test", 10 + k)]
        rid = "weekly-%03d" % k
        rep = C.report("Weekly Reporter %d" % (k % 3), rid, start, pols)
        p = os.path.join(tmp, "w%03d.json" % k)
        with open(p, "wb") as f:
            f.write(C.dumps(rep))
        paths.append(p)
        if start < now - YEAR:
            old.add(rid)
    return paths, old


def db_bytes(db):
    return sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))


class TwoYears(T.TlsrptdTestCase):
    def ingest_weeks(self):
        now = C.now()
        paths, old = weekly_reports(self.tmp, now)
        res = self.ingest(*paths)
        self.assertExit(res, T.EX_OK)
        self.assertGreater(len(old), 40)
        return paths, old

    def views(self):
        return {by: C.summary(self.db, "--by", by) for by in ("day", "domain", "reporter")}

    def check_prune(self, old, rebuilt):
        before = self.views()
        listed = C.listing(self.db)["reports"]
        size0 = db_bytes(self.db) if T.backend() == "sqlite" else None

        dry = C.cli_json(["prune", "--db", self.db, "--retention", "365d", "--dry-run",
                          "--format", "json"])
        self.assertTrue(dry["dry_run"])
        self.assertEqual(dry["reports"]["reports"], len(old))
        self.assertEqual(dry["reports"]["policies"], 2 * len(old))
        self.assertEqual(dry["reports"]["failure_details"], 120 * len(old))
        self.assertEqual(C.listing(self.db)["total"], len(listed))

        rows = {t: C.row_count(self.db, t) for t in ("policies", "failure_details")}
        out = C.cli_json(["prune", "--db", self.db, "--retention", "365d", "--format", "json"])
        self.assertFalse(out["dry_run"])
        # a pruned report's policies and failure details go with it
        self.assertEqual(C.row_count(self.db, "policies"), rows["policies"] - 2 * len(old))
        self.assertEqual(C.row_count(self.db, "failure_details"),
                         rows["failure_details"] - 120 * len(old))
        self.assertEqual(out["reports"]["reports"], len(old))
        self.assertEqual(out["reports"]["raw_bytes"], dry["reports"]["raw_bytes"])
        self.assertGreater(out["reports"]["raw_bytes"], 0)
        kept = C.listing(self.db)["reports"]
        self.assertEqual({r["report_id"] for r in kept},
                         {r["report_id"] for r in listed} - old)
        for r in kept:
            self.assertIsNotNone(C.show(self.db, r["id"])["report"])
        # the daily totals, and everything summed from them, are unchanged
        after = self.views()
        for by in before:
            self.assertEqual(after[by]["totals"], before[by]["totals"], by)
            if by == "reporter":  # its breakdown by result type is read from the details
                for g in before[by]["groups"] + after[by]["groups"]:
                    del g["failures"]
            self.assertEqual(after[by]["groups"], before[by]["groups"], by)
        if T.backend() == "sqlite":
            self.assertEqual(out["database"]["rebuilt"], rebuilt)
            size1 = db_bytes(self.db)
            self.assertLess(size1, size0 * 0.75, (size0, size1))
            self.assertEqual(out["database"]["bytes_after"], size1)
        # again: nothing left to remove
        again = C.cli_json(["prune", "--db", self.db, "--retention", "365d", "--format", "json"])
        self.assertEqual(again["reports"]["reports"], 0)

    def test_prune_two_years(self):
        _, old = self.ingest_weeks()
        self.check_prune(old, rebuilt=False)

    @unittest.skipUnless(T.backend() == "sqlite", "the SQLite file's auto_vacuum")
    def test_database_made_before_auto_vacuum(self):
        _, old = self.ingest_weeks()
        # as a database made by an earlier tlsrptd: no auto_vacuum
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("PRAGMA auto_vacuum = NONE")
        conn.execute("VACUUM")
        self.assertEqual(conn.execute("PRAGMA auto_vacuum").fetchone()[0], 0)
        conn.close()
        self.check_prune(old, rebuilt=True)
        conn = sqlite3.connect(self.db)
        self.assertEqual(conn.execute("PRAGMA auto_vacuum").fetchone()[0], 2)
        conn.close()


class Rollups(T.TlsrptdTestCase):
    def test_rollup_retention(self):
        now = C.now()
        paths, _ = weekly_reports(self.tmp, now, weeks=80)
        self.assertExit(self.ingest(*paths), T.EX_OK)
        days = C.summary(self.db, "--by", "day")["groups"]
        out = C.cli_json(["prune", "--db", self.db, "--retention", "365d", "--rollup-retention",
                          "450d", "--format", "json"])
        self.assertGreater(out["rollups"]["rows"], 0)
        line = calendar.timegm(time.strptime(out["rollups"]["before"], "%Y-%m-%dT%H:%M:%SZ"))
        kept = [g for g in days
                if calendar.timegm(time.strptime(g["day"], "%Y-%m-%d")) >= line]
        got = C.summary(self.db, "--by", "day")["groups"]
        self.assertEqual(got, kept)
        self.assertLess(len(got), len(days))
        # the all-time totals per domain stay
        self.assertEqual(C.summary(self.db)["totals"]["successful_sessions"],
                         sum(g["successful_sessions"] for g in days))

    def test_rollups_not_shorter_than_reports(self):
        res = T.run(["prune", "--db", self.db, "--retention", "400d", "--rollup-retention", "30d"])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("rollup_retention", res.err)


class Quarantine(T.TlsrptdTestCase):
    def test_quarantine_retention(self):
        bad = [self.write("bad%d.json" % i, b'{"report-id": %d}' % i) for i in range(3)]
        self.assertExit(self.ingest(*bad), T.EX_DATAERR)
        self.assertEqual(C.quarantine(self.db)["total"], 3)
        out = C.cli_json(["prune", "--db", self.db, "--quarantine-retention", "1h", "--format",
                          "json"])
        self.assertEqual(out["quarantine"]["entries"], 0)
        time.sleep(2.2)
        out = C.cli_json(["prune", "--db", self.db, "--quarantine-retention", "1s", "--format",
                          "json"])
        self.assertEqual(out["quarantine"]["entries"], 3)
        self.assertEqual(out["quarantine"]["bytes"], sum(os.path.getsize(p) for p in bad))
        self.assertEqual(C.quarantine(self.db)["total"], 0)
        # the quarantine's budget counts what is left: a new entry is kept
        self.assertExit(self.ingest(bad[0]), T.EX_DATAERR)
        self.assertEqual(C.quarantine(self.db)["total"], 1)


class Serve(T.TlsrptdTestCase):
    def test_serve_prunes_by_itself(self):
        now = C.now()
        paths, old = weekly_reports(self.tmp, now, weeks=60)
        self.assertExit(self.ingest(*paths), T.EX_OK)
        total = C.listing(self.db)["total"]
        d = C.Daemon(self.tmp, ["--db", self.db, "--retention", "365d", "--prune-interval", "1s"])
        try:
            d.wait_log("prune: removed %d reports" % len(old), timeout=60)
            listed = d.get("/api/v1/reports?limit=10000").json()
            self.assertEqual(listed["total"], total - len(old))
            self.assertFalse({r["report_id"] for r in listed["reports"]} & old)
        finally:
            self.assertEqual(d.stop(), 0)

    def test_bad_duration_is_a_configuration_error(self):
        res = T.run(["serve", "--db", self.db, "--listen", "127.0.0.1:%d" % T.free_port(),
                     "--retention", "a year"], timeout=60)
        self.assertExit(res, 78)
        self.assertIn("retention: 'a year'", res.err)


class Usage(T.TlsrptdTestCase):
    def test_usage(self):
        res = T.run(["prune", "--db", self.db])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("nothing to prune", res.err)
        for bad in ("365", "365x", "-5d", "0d", "d"):
            res = T.run(["prune", "--db", self.db, "--retention", bad])
            self.assertExit(res, T.EX_USAGE)
            self.assertIn("not a duration", res.err)
        res = T.run(["prune", "--db", self.db, "--retention", "10d", "--format", "xml"])
        self.assertExit(res, T.EX_USAGE)
        if T.backend() == "sqlite":  # nothing is created
            res = T.run(["prune", "--db", self.db, "--retention", "10d"])
            self.assertExit(res, 66)
            self.assertIn("no database at", res.err)
            self.assertFalse(os.path.exists(self.db))
        res = T.run(["prune", "--help"])
        self.assertExit(res, 0)
        self.assertIn("--dry-run", res.out)


if __name__ == "__main__":
    T.main()
