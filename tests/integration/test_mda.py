#!/usr/bin/env python3
"""MDA behaviour of `tlsrptd ingest -` (one message on stdin) and of file inputs:
sysexits exit codes (0 stored/duplicate, 65 not a report, 74 unreadable,
75 storage unavailable; the worst one wins), quarantine, duplicates, limits."""
import os
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


class NotAReport(T.TlsrptdTestCase):
    def test_stdin_mail_without_report_is_65_and_quarantined(self):
        for mail in not_a_report_mails():
            with self.subTest(mail=mail):
                db = self.new_db(os.path.basename(mail))
                data = T.read_bytes(mail)
                res = self.ingest("-", db=db, stdin=data)
                self.assertRejectedAndQuarantined(res, data, NO_REPORT, db=db, source_kind="stdin")
                self.assertEqual(T.outcomes(res)[0].name, "-")

    def test_file_mail_without_report_is_65_and_quarantined(self):
        for mail in not_a_report_mails():
            with self.subTest(mail=mail):
                db = self.new_db(os.path.basename(mail))
                data = T.read_bytes(mail)
                res = self.ingest(mail, db=db)
                self.assertRejectedAndQuarantined(res, data, NO_REPORT, db=db, source_kind="file")
                self.assertEqual(T.quarantine(db)[0]["source"]["name"], mail)

    def test_quarantined_mail_keeps_its_headers(self):
        data = T.read_bytes(T.sample("not-a-report.eml"))
        res = self.ingest("-", stdin=data)
        self.assertExit(res, T.EX_DATAERR)
        q = T.quarantine(self.db)[0]
        self.assertEqual(q["source"]["message_id"], "cron-1@host.example")
        self.assertIn("run-parts", q["source"].get("subject") or "")


class ReportAndDuplicate(T.TlsrptdTestCase):
    def test_stdin_report_then_duplicate(self):
        data = T.read_bytes(T.sample("report.eml"))
        res = self.ingest("-", stdin=data)
        self.assertExit(res, T.EX_OK)
        o = self.single_outcome(res, "stored")
        self.assertEqual(o.name, "-")
        reps = T.stored_reports(self.db)
        self.assertEqual(len(reps), 1)
        self.assertEqual(reps[0]["report_id"], EML_REPORT_ID)
        src = reps[0]["source"]
        self.assertEqual(src["kind"], "stdin")
        # docs/architecture.md: the mail's headers are stored as the report's source
        self.assertEqual(src["domain"], "mail.example")
        self.assertEqual(src["submitter"], "sender.example")
        self.assertEqual(src["message_id"], "sample-1@sender.example")
        before = T.contents(self.db)
        self.assertEqual(before["quarantine"], [])
        self.assertEqual(len(before["reports"][0]["policies"]), 2)

        res = self.ingest("-", stdin=data)
        self.assertExit(res, T.EX_OK)
        o = self.single_outcome(res, "duplicate")
        self.assertIn("duplicate of report %d" % reps[0]["id"], o.line)
        self.assertEqual(T.contents(self.db), before, "a duplicate must not be stored again")

    def test_stdin_is_sniffed_by_content(self):
        for name in ("report.json", "report.json.gz", "report.eml"):
            with self.subTest(sample=name):
                res = self.ingest("-", stdin=T.read_bytes(T.sample(name)))
                self.assertExit(res, T.EX_OK)
                self.single_outcome(res, "stored")
        ids = T.report_ids(self.db)
        self.assertEqual(len(ids), 3)
        self.assertEqual(len(set(ids)), 3)

    def test_file_duplicate_is_exit_0(self):
        f = T.sample("report.json")
        self.assertExit(self.ingest(f), T.EX_OK)
        before = T.contents(self.db)
        res = self.ingest(f)
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "duplicate")
        self.assertEqual(T.contents(self.db), before)


class TempFail(T.TlsrptdTestCase):
    """75: the database cannot be written (CI runs as root: no chmod tricks). Another
    process holds the write lock (T.WriteLock: SQLite's, or PostgreSQL table locks)."""

    def make_db(self):
        # a tlsrptd database with one report in it
        res = self.ingest(T.sample("report.json"))
        self.assertExit(res, T.EX_OK)

    def test_locked_database_is_75_then_stored_once(self):
        self.make_db()
        data = T.read_bytes(T.sample("report.eml"))
        lock = T.WriteLock(self.db)
        self.addCleanup(lock.release)
        res = self.ingest("-", opts=["--busy-timeout", "200"], stdin=data)
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertGreaterEqual(res.elapsed, 0.15, "the busy timeout was not waited for")
        self.assertLess(res.elapsed, 4.0 * T.SLOW, "--busy-timeout 200 not honoured")
        # why: on stderr (SQLite refuses the transaction), or as the input's outcome line
        # (PostgreSQL refuses its first INSERT)
        self.assertRegex(res.err + res.out, r"locked|lock timeout", "no message says why")
        # readers still read: nothing was stored or quarantined
        self.assertEqual(T.counts(self.db), {"reports": 1, "quarantine": 0})
        lock.release()

        res = self.ingest("-", opts=["--busy-timeout", "200"], stdin=data)
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "stored")
        self.assertEqual(T.report_ids(self.db).count(EML_REPORT_ID), 1)
        res = self.ingest("-", opts=["--busy-timeout", "200"], stdin=data)
        self.assertExit(res, T.EX_OK)
        self.single_outcome(res, "duplicate")
        self.assertEqual(T.report_ids(self.db), [JSON_REPORT_ID, EML_REPORT_ID])

    def test_locked_database_nothing_acknowledged_or_quarantined(self):
        self.make_db()
        lock = T.WriteLock(self.db)
        self.addCleanup(lock.release)
        inputs = [T.sample("report.json.gz"), T.sample("not-a-report.eml")]
        res = self.ingest(*inputs, opts=["--busy-timeout", "200"])
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertFalse([o for o in T.outcomes(res) if o.status in ("stored", "duplicate")],
                         "nothing may be acknowledged when storage is unavailable\n%r" % res)
        self.assertEqual(T.quarantine(self.db), [])
        lock.release()
        self.assertEqual(T.counts(self.db)["reports"], 1)
        self.assertEqual(T.counts(self.db)["quarantine"], 0)
        # retried later: each is processed once
        res = self.ingest(*inputs)
        self.assertExit(res, T.EX_DATAERR)
        self.assertEqual([o.status for o in T.outcomes(res)], ["stored", "rejected"])
        self.assertEqual(T.counts(self.db)["reports"], 2)
        self.assertEqual(T.counts(self.db)["quarantine"], 1)

    @T.sqlite_only("a database file another process created and holds in a rollback "
                   "journal before tlsrptd made its schema")
    def test_database_locked_before_its_first_use_is_75(self):
        # another process created the file and holds it (rollback journal, no schema yet)
        import sqlite3
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

    @T.sqlite_only("a database file in a directory that does not exist")
    def test_db_in_missing_directory_is_75(self):
        db = self.path("no", "such", "dir", "tlsrptd.db")
        res = self.ingest("-", db=db, stdin=T.read_bytes(T.sample("report.eml")))
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertIn(db, res.err, "the message must name the database")
        self.assertFalse(os.path.exists(self.path("no")))
        self.assertFalse(T.outcomes(res) and T.outcomes(res)[0].status == "stored")

    @T.sqlite_only("a database path that is a directory")
    def test_db_is_a_directory_is_75(self):
        d = self.path("adir")
        os.mkdir(d)
        res = self.ingest(T.sample("report.json"), db=d)
        self.assertExit(res, T.EX_TEMPFAIL)
        self.assertIn(d, res.err, "the message must name the database")
        self.assertEqual(os.listdir(d), [])

    @T.postgresql_only("a server that is not there, a database it does not have")
    def test_unreachable_postgresql_is_75(self):
        data = T.read_bytes(T.sample("report.eml"))
        for what, db in (("no such database", T.unopenable_db(self.tmp)),
                         ("no server on the port",
                          "postgresql://tlsrptd:secret@127.0.0.1:%d/tlsrptd" % T.free_port())):
            with self.subTest(what=what):
                res = self.ingest("-", db=db, stdin=data)
                self.assertExit(res, T.EX_TEMPFAIL)
                self.assertFalse([o for o in T.outcomes(res) if o.status == "stored"], res)
                # the message names the database, never its password
                self.assertIn(db.replace(":secret", ""), res.err)
                self.assertNotIn("secret", res.err + res.out)


class Unreadable(T.TlsrptdTestCase):
    def test_missing_path_is_74(self):
        missing = self.path("does-not-exist.eml")
        res = self.ingest(missing)
        self.assertExit(res, T.EX_IOERR)
        o = self.single_outcome(res, "unreadable")
        self.assertEqual(o.name, missing)
        self.assertIn(missing, o.reason)
        self.assertEqual(T.counts(self.db), {"reports": 0, "quarantine": 0},
                         "nothing was read: nothing to keep")

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
                db = self.new_db("worst-%d" % cases.index((inputs, code)))
                res = self.ingest(*inputs, db=db)
                self.assertExit(res, code)
                self.assertEqual(len(T.outcomes(res)), len(inputs), res)
                # every other input is still processed
                self.assertEqual(T.counts(db), {"reports": 1 if ok in inputs else 0,
                                                "quarantine": 1 if bad in inputs else 0})

    def test_tempfail_beats_everything(self):
        res = self.ingest(T.sample("report.json"))
        self.assertExit(res, T.EX_OK)
        lock = T.WriteLock(self.db)
        self.addCleanup(lock.release)
        res = self.ingest(self.path("missing.json"), T.sample("not-a-report.eml"),
                          T.sample("report.json.gz"), opts=["--busy-timeout", "200"])
        self.assertExit(res, T.EX_TEMPFAIL)
        lock.release()
        # storage unavailable from the start: also with a database that cannot be opened
        res = self.ingest(self.path("missing.json"), T.sample("not-a-report.eml"),
                          db=T.unopenable_db(self.tmp))
        self.assertExit(res, T.EX_TEMPFAIL)


class MaxInput(T.TlsrptdTestCase):
    def test_over_max_input_is_65_and_quarantined(self):
        f = T.sample("report.json")
        size = os.path.getsize(f)
        limit = size - 1
        for how in ("file", "stdin"):
            with self.subTest(input=how):
                db = self.new_db(how)
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
        q = T.quarantine(self.db, raw=True)
        self.assertEqual([r["source"]["name"] for r in q], bad[3:])
        self.assertEqual([r["raw"] for r in q], [b"{bad 3", b"{bad 4"])

    def test_byte_budget_keeps_reason_not_bytes(self):
        small = self.write("small.json", b"{bad")
        big = T.sample("not-a-report.eml")
        res = self.ingest(small, big, opts=["--quarantine-bytes", "100"])
        self.assertExit(res, T.EX_DATAERR)
        q = {r["source"]["name"]: r for r in T.quarantine(self.db, raw=True)}
        self.assertEqual(set(q), {small, big})
        self.assertEqual((q[small]["raw_kept"], q[small]["raw"]), (True, b"{bad"))
        self.assertIs(q[big]["raw_kept"], False)
        self.assertIsNone(q[big]["raw"])
        self.assertEqual(q[big]["raw_size"], os.path.getsize(big))
        self.assertIn(NO_REPORT, q[big]["reason"])


if __name__ == "__main__":
    T.main()
