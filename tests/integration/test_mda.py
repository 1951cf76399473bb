#!/usr/bin/env python3
"""MDA behaviour of `tlsrptd ingest -` (one message on stdin) and of file inputs:
sysexits exit codes (0 stored/duplicate, 65 not a report, 74 unreadable,
75 storage unavailable; the worst one wins), quarantine, duplicates, limits."""
import os
import sqlite3
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

NO_REPORT = "no TLS-RPT report part in message"
EML_REPORT_ID = "2026-11-03T00:00:00Z_mail.example"  # samples/report.eml
JSON_REPORT_ID = "2026-11-01T00:00:00Z_mail.example"  # samples/report.json


def not_a_report_mails():
    return [T.sample("not-a-report.eml"),
            os.path.join(T.corpus_dir(), "real", "tlsrptrs-not-a-report.eml")]


class Lock:
    """Another process's exclusive lock on the database (held until release())."""

    def __init__(self, db):
        self.conn = sqlite3.connect(db, isolation_level=None, timeout=5)
        self.conn.execute("BEGIN EXCLUSIVE")

    def count(self, sql):
        return self.conn.execute(sql).fetchone()[0]

    def release(self):
        if self.conn is not None:
            self.conn.execute("COMMIT")
            self.conn.close()
            self.conn = None


class NotAReport(T.TlsrptdTestCase):
    def test_stdin_mail_without_report_is_65_and_quarantined(self):
        for mail in not_a_report_mails():
            with self.subTest(mail=mail):
                db = self.path(os.path.basename(mail) + ".db")
                data = T.read_bytes(mail)
                res = self.ingest("-", db=db, stdin=data)
                self.assertRejectedAndQuarantined(res, data, NO_REPORT, db=db, source_kind="stdin")
                self.assertEqual(T.outcomes(res)[0].name, "-")

    def test_file_mail_without_report_is_65_and_quarantined(self):
        for mail in not_a_report_mails():
            with self.subTest(mail=mail):
                db = self.path(os.path.basename(mail) + ".db")
                data = T.read_bytes(mail)
                res = self.ingest(mail, db=db)
                self.assertRejectedAndQuarantined(res, data, NO_REPORT, db=db, source_kind="file")
                self.assertEqual(T.quarantine_rows(db)[0]["source_name"], mail)

    def test_quarantined_mail_keeps_its_headers(self):
        data = T.read_bytes(T.sample("not-a-report.eml"))
        res = self.ingest("-", stdin=data)
        self.assertExit(res, T.EX_DATAERR)
        q = T.quarantine_rows(self.db)[0]
        self.assertEqual(q["source_message_id"], "cron-1@host.example")
        self.assertIn("run-parts", q["source_subject"] or "")


class ReportAndDuplicate(T.TlsrptdTestCase):
    def test_stdin_report_then_duplicate(self):
        data = T.read_bytes(T.sample("report.eml"))
        res = self.ingest("-", stdin=data)
        self.assertExit(res, T.EX_OK)
        o = self.single_outcome(res, "stored")
        self.assertEqual(o.name, "-")
        reps = T.report_rows(self.db)
        self.assertEqual(len(reps), 1)
        self.assertEqual(reps[0]["report_id"], EML_REPORT_ID)
        self.assertEqual(reps[0]["source_kind"], "stdin")
        # docs/architecture.md: the mail's headers are stored as the report's source
        self.assertEqual(reps[0]["source_report_domain"], "mail.example")
        self.assertEqual(reps[0]["source_submitter"], "sender.example")
        self.assertEqual(reps[0]["source_message_id"], "sample-1@sender.example")
        before = T.counts(self.db)
        self.assertEqual(before["quarantine"], 0)
        self.assertEqual(before["policies"], 2)

        res = self.ingest("-", stdin=data)
        self.assertExit(res, T.EX_OK)
        o = self.single_outcome(res, "duplicate")
        self.assertIn("duplicate of report %d" % reps[0]["id"], o.line)
        self.assertEqual(T.counts(self.db), before, "a duplicate must not be stored again")

    def test_stdin_is_sniffed_by_content(self):
        for name in ("report.json", "report.json.gz", "report.eml"):
            with self.subTest(sample=name):
                res = self.ingest("-", stdin=T.read_bytes(T.sample(name)))
                self.assertExit(res, T.EX_OK)
                self.single_outcome(res, "stored")
        self.assertEqual(T.scalar(self.db, "SELECT COUNT(DISTINCT report_id) FROM reports"), 3)

    def test_file_duplicate_is_exit_0(self):
        f = T.sample("report.json")
        self.assertExit(self.ingest(f), T.EX_OK)
        before = T.counts(self.db)
        res = self.ingest(f)
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "duplicate")
        self.assertEqual(T.counts(self.db), before)


class TempFail(T.TlsrptdTestCase):
    """75: the database cannot be written (CI runs as root: no chmod tricks)."""

    def make_db(self):
        # a tlsrptd database with one report in it
        res = self.ingest(T.sample("report.json"))
        self.assertExit(res, T.EX_OK)

    def test_locked_database_is_75_then_stored_once(self):
        self.make_db()
        data = T.read_bytes(T.sample("report.eml"))
        lock = Lock(self.db)
        self.addCleanup(lock.release)
        res = self.ingest("-", opts=["--busy-timeout", "200"], stdin=data)
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertGreaterEqual(res.elapsed, 0.15, "the busy timeout was not waited for")
        self.assertLess(res.elapsed, 4.0, "--busy-timeout 200 not honoured")
        self.assertTrue(res.err.strip(), "no message on stderr")
        self.assertEqual(lock.count("SELECT COUNT(*) FROM reports"), 1)
        self.assertEqual(lock.count("SELECT COUNT(*) FROM quarantine"), 0)
        lock.release()

        res = self.ingest("-", opts=["--busy-timeout", "200"], stdin=data)
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "stored")
        self.assertEqual(T.scalar(self.db, "SELECT COUNT(*) FROM reports WHERE report_id = ?",
                                  (EML_REPORT_ID,)), 1)
        res = self.ingest("-", opts=["--busy-timeout", "200"], stdin=data)
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "duplicate")
        self.assertEqual(T.scalar(self.db, "SELECT COUNT(*) FROM reports WHERE report_id = ?",
                                  (EML_REPORT_ID,)), 1)
        self.assertEqual(T.scalar(self.db, "SELECT COUNT(*) FROM reports"), 2)

    def test_locked_database_nothing_acknowledged_or_quarantined(self):
        self.make_db()
        lock = Lock(self.db)
        self.addCleanup(lock.release)
        inputs = [T.sample("report.json.gz"), T.sample("not-a-report.eml")]
        res = self.ingest(*inputs, opts=["--busy-timeout", "200"])
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertFalse([o for o in T.outcomes(res) if o.status in ("stored", "duplicate")],
                         "nothing may be acknowledged when storage is unavailable\n%r" % res)
        self.assertEqual(lock.count("SELECT COUNT(*) FROM quarantine"), 0)
        lock.release()
        self.assertEqual(T.counts(self.db)["reports"], 1)
        self.assertEqual(T.counts(self.db)["quarantine"], 0)
        # retried later: each is processed once
        res = self.ingest(*inputs)
        self.assertExit(res, T.EX_DATAERR)
        self.assertEqual([o.status for o in T.outcomes(res)], ["stored", "rejected"])
        self.assertEqual(T.counts(self.db)["reports"], 2)
        self.assertEqual(T.counts(self.db)["quarantine"], 1)

    def test_database_locked_before_its_first_use_is_75(self):
        # another process created the file and holds it (rollback journal, no schema yet)
        lock = sqlite3.connect(self.db, isolation_level=None, timeout=5)
        self.addCleanup(lock.close)
        lock.execute("BEGIN EXCLUSIVE")
        lock.execute("CREATE TABLE other (a)")
        data = T.read_bytes(T.sample("report.eml"))
        res = self.ingest("-", opts=["--busy-timeout", "200"], stdin=data)
        self.assertExit(res, T.EX_TEMPFAIL)
        lock.execute("ROLLBACK")
        res = self.ingest("-", opts=["--busy-timeout", "200"], stdin=data)
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "stored")
        self.assertEqual(T.counts(self.db)["reports"], 1)

    def test_db_in_missing_directory_is_75(self):
        db = self.path("no", "such", "dir", "tlsrptd.db")
        res = self.ingest("-", db=db, stdin=T.read_bytes(T.sample("report.eml")))
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertIn(db, res.err, "the message must name the database")
        self.assertFalse(os.path.exists(self.path("no")))
        self.assertFalse(T.outcomes(res) and T.outcomes(res)[0].status == "stored")

    def test_db_is_a_directory_is_75(self):
        d = self.path("adir")
        os.mkdir(d)
        res = self.ingest(T.sample("report.json"), db=d)
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertIn(d, res.err, "the message must name the database")
        self.assertEqual(os.listdir(d), [])


class Unreadable(T.TlsrptdTestCase):
    def test_missing_path_is_74(self):
        missing = self.path("does-not-exist.eml")
        res = self.ingest(missing)
        self.assertExit(res, T.EX_IOERR)
        o = self.single_outcome(res, "unreadable")
        self.assertEqual(o.name, missing)
        self.assertIn(missing, o.reason)
        self.assertEqual(T.counts(self.db)["reports"], 0)
        self.assertEqual(T.counts(self.db)["quarantine"], 0, "nothing was read: nothing to keep")

    def test_worst_code_wins(self):
        ok = T.sample("report.json")
        bad = T.sample("not-a-report.eml")
        missing = self.path("missing.json")
        cases = [
            ([ok, ok], T.EX_OK),
            ([ok, bad], T.EX_DATAERR),
            ([bad, ok], T.EX_DATAERR),
            ([ok, missing], T.EX_IOERR),
            ([missing, bad, ok], T.EX_IOERR),
            ([bad, missing], T.EX_IOERR),
        ]
        for inputs, code in cases:
            with self.subTest(inputs=[os.path.basename(i) for i in inputs]):
                db = self.path("worst-%d.db" % cases.index((inputs, code)))
                res = self.ingest(*inputs, db=db)
                self.assertExit(res, code)
                self.assertEqual(len(T.outcomes(res)), len(inputs), res)
                # every other input is still processed
                self.assertEqual(T.counts(db)["reports"], 1 if ok in inputs else 0)
                self.assertEqual(T.counts(db)["quarantine"], 1 if bad in inputs else 0)

    def test_tempfail_beats_everything(self):
        res = self.ingest(T.sample("report.json"))
        self.assertExit(res, T.EX_OK)
        lock = Lock(self.db)
        self.addCleanup(lock.release)
        res = self.ingest(self.path("missing.json"), T.sample("not-a-report.eml"),
                          T.sample("report.json.gz"), opts=["--busy-timeout", "200"])
        self.assertExit(res, T.EX_TEMPFAIL)
        # storage unavailable from the start: also with a db path that cannot be opened
        d = self.path("dir.db")
        os.mkdir(d)
        res = self.ingest(self.path("missing.json"), T.sample("not-a-report.eml"), db=d)
        self.assertExit(res, T.EX_TEMPFAIL)


class MaxInput(T.TlsrptdTestCase):
    def test_over_max_input_is_65_and_quarantined(self):
        f = T.sample("report.json")
        size = os.path.getsize(f)
        limit = size - 1
        for how in ("file", "stdin"):
            with self.subTest(input=how):
                db = self.path(how + ".db")
                if how == "file":
                    res = self.ingest(f, db=db, opts=["--max-message", str(limit)])
                else:
                    res = self.ingest("-", db=db, opts=["--max-message", str(limit)],
                                      stdin=T.read_bytes(f))
                reason = self.assertRejectedAndQuarantined(res, None, str(limit), db=db,
                                                           source_kind=how)
                self.assertRegex(reason, r"larger|limit|too (large|big)")

    def test_max_input_boundary(self):
        f = T.sample("report.json")
        size = os.path.getsize(f)
        res = self.ingest(f, opts=["--max-message", str(size)])
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "stored")

    def test_max_input_applies_to_mail(self):
        f = T.sample("report.eml")
        res = self.ingest("-", opts=["--max-message", "1k"], stdin=T.read_bytes(f))
        self.assertRejectedAndQuarantined(res, None, "1024", source_kind="stdin")


class QuarantineBounds(T.TlsrptdTestCase):
    """The quarantine is bounded (docs/acceptance.md): oldest rows evicted, big inputs keep
    their reason but not their bytes."""

    def test_row_budget_evicts_oldest(self):
        bad = [self.write("bad%d.json" % i, b"{bad %d" % i) for i in range(5)]
        res = self.ingest(*bad, opts=["--quarantine-rows", "2"])
        self.assertExit(res, T.EX_DATAERR)
        self.assertEqual([o.status for o in T.outcomes(res)], ["rejected"] * 5)
        q = T.quarantine_rows(self.db)
        self.assertEqual([r["source_name"] for r in q], bad[3:])
        self.assertEqual([r["raw"] for r in q], [b"{bad 3", b"{bad 4"])

    def test_byte_budget_keeps_reason_not_bytes(self):
        small = self.write("small.json", b"{bad")
        big = T.sample("not-a-report.eml")
        res = self.ingest(small, big, opts=["--quarantine-bytes", "100"])
        self.assertExit(res, T.EX_DATAERR)
        q = {r["source_name"]: r for r in T.quarantine_rows(self.db)}
        self.assertEqual(set(q), {small, big})
        self.assertEqual((q[small]["raw_kept"], q[small]["raw"]), (1, b"{bad"))
        self.assertEqual(q[big]["raw_kept"], 0)
        self.assertIsNone(q[big]["raw"])
        self.assertEqual(q[big]["raw_size"], os.path.getsize(big))
        self.assertIn(NO_REPORT, q[big]["reason"])


if __name__ == "__main__":
    T.main()
