#!/usr/bin/env python3
"""Corpus conformance: the real tlsrptd against the shared real-world corpus.

Reads ../shared/corpus in place (TLSRPTD_CORPUS); a missing corpus is a failure.
  - EXPECTED.tsv: each file ingested alone into a fresh database;
  - EXPECTED-TOTALS.json: all of real/ ingested into one database in byte-wise
    sorted order: summary JSON, duplicates; re-ingesting stores nothing new;
  - the table format of summary agrees with the JSON.
"""
import gzip
import json
import os
import re
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

CORPUS = None


def setUpModule():
    global CORPUS
    CORPUS = T.corpus_dir()  # raises (the whole module errors) when the corpus is missing








def real_files_sorted():
    """real/* relative to the corpus, in byte-wise sorted order of their paths."""
    real = os.path.join(CORPUS, "real")
    names = sorted(n for n in os.listdir(os.fsencode(real)) if not n.startswith(b"."))
    return [os.fsdecode(b"real/" + n) for n in names]


def by_domain(summary):
    return {d["policy_domain"]: d for d in summary["domains"]}


class ExpectedPerFile(T.TlsrptdTestCase):
    """Each file of EXPECTED.tsv, ingested ALONE into a fresh database."""

    def test_expected_lists_every_corpus_file(self):
        listed = [r["file"] for r in T.load_expected()]
        self.assertEqual(len(listed), len(set(listed)), "EXPECTED.tsv lists a file twice")
        self.assertEqual(sorted(listed), sorted(real_files_sorted()))
        self.assertGreater(len(listed), 0)

    def test_each_file_alone(self):
        rows = T.load_expected()
        self.assertTrue(rows)
        for row in rows:
            with self.subTest(file=row["file"]):
                db = T.new_db(self.tmp, "alone")
                try:
                    path = os.path.join(CORPUS, row["file"])
                    res = self.ingest(path, db=db)
                    if row["accepted"] == "yes":
                        self.check_accepted(row, path, db, res)
                    elif row["accepted"] == "no":
                        self.check_rejected(row, path, db, res)
                    else:
                        self.fail("EXPECTED.tsv: accepted is %r" % row["accepted"])
                finally:
                    T.recycle_db(db)  # one database at a time, not one per file

    def check_accepted(self, row, path, db, res):
        self.assertExit(res, T.EX_OK)
        o = self.single_outcome(res, "stored")
        self.assertEqual(o.name, path)

        reports = T.stored(db)
        self.assertEqual(len(reports), 1, reports)
        rep = reports[0]
        self.assertEqual(rep["organization_name"], row["org"])
        self.assertEqual(rep["report_id"], row["report_id"])
        self.assertEqual(T.quarantine(db), [])

        pols = rep["policies"]
        self.assertEqual(len(pols), int(row["policies"]), "number of policies")
        self.assertEqual(sum(p["successful_sessions"] for p in pols), int(row["success"]),
                         "successful sessions")
        self.assertEqual(sum(p["failed_sessions"] for p in pols), int(row["failure"]),
                         "failed sessions")

        by_type = {}
        for f in (f for p in pols for f in p["failure_details"]):
            by_type[f["result_type"]] = by_type.get(f["result_type"], 0) + \
                f["failed_session_count"]
        self.assertEqual(by_type, T.parse_failures(row["failures_by_type"]),
                         "failed sessions per result type")

        m = re.search(r"(\d+) warnings?", row["note"])
        self.assertIsNotNone(m, "EXPECTED.tsv note %r has no warning count" % row["note"])
        self.assertEqual(rep["warnings"], int(m.group(1)), "warnings")

        # the printed line carries the same numbers
        self.assertIn("%s %s" % (row["org"], row["report_id"]), o.line)
        self.assertIn(", %s successful, %s failed" % (row["success"], row["failure"]), o.line)

        # nothing lost: the report JSON is kept with it (`show` gives it back)
        data = T.read_bytes(path)
        doc = rep["report"]
        self.assertEqual(doc["organization-name"], row["org"])
        self.assertEqual(doc["report-id"], row["report_id"])
        if path.endswith(".json"):
            self.assertEqual(doc, json.loads(data), "stored report JSON differs from the file")
        elif path.endswith(".json.gz"):
            self.assertEqual(doc, json.loads(gzip.decompress(data)),
                             "stored report JSON differs from the gzip file's")
        self.assertEqual(rep["source"]["kind"], "file")
        self.assertEqual(rep["source"]["name"], path)

    def check_rejected(self, row, path, db, res):
        data = T.read_bytes(path)
        self.assertExit(res, T.EX_DATAERR)
        o = self.single_outcome(res, "rejected")
        self.assertEqual(o.name, path)
        reason = o.reason
        self.assertTrue(reason.strip(), "no reason printed\n%r" % res)
        note = row["note"].strip()
        self.assertTrue(note, "EXPECTED.tsv gives no reason for %s" % row["file"])
        if note not in reason:
            # The note describes the reason; when it starts with a JSON path, the printed
            # reason must name that path.
            token = note.split()[0]
            self.assertRegex(token, r"^[A-Za-z-]+(\[\d+\]|\.[A-Za-z-]+)+$",
                             "printed reason %r does not contain %r" % (reason, note))
            self.assertIn(token, reason, "printed reason does not name %s\n%r" % (token, res))

        q = T.quarantine(db, raw=True)
        self.assertEqual(len(q), 1, q)
        self.assertTrue(q[0]["reason"].strip())
        self.assertEqual(q[0]["reason"], reason, "quarantine reason differs from the printed one")
        self.assertIs(q[0]["raw_kept"], True)
        self.assertEqual(q[0]["raw_size"], len(data))
        self.assertTrue(q[0]["raw"] == data, "quarantined bytes differ from the file")
        self.assertEqual(q[0]["source"]["name"], path)
        self.assertEqual(T.stored_reports(db), [])


class AllInOneDatabase(T.TlsrptdTestCase):
    """All of real/ in ONE database, ingested in byte-wise sorted order of the paths."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ctmp = tempfile.mkdtemp(prefix="tlsrptd-it-all-")
        cls.cdb = T.new_db(cls.ctmp, "all")
        # one call with the directory; run in the corpus so names print as real/...
        cls.first = T.run(["ingest", "--db", cls.cdb, "--no-progress", "real"], cwd=CORPUS)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.ctmp, True)
        super().tearDownClass()

    def test_ingest_walks_in_sorted_order(self):
        rows = {r["file"]: r for r in T.load_expected()}
        rejected = [f for f, r in rows.items() if r["accepted"] == "no"]
        self.assertExit(self.first, T.EX_DATAERR if rejected else T.EX_OK)
        names = [o.name for o in T.outcomes(self.first)]
        self.assertEqual(names, real_files_sorted(), "inputs not processed in sorted order")
        got_rejected = [o.name for o in T.outcomes(self.first) if o.status == "rejected"]
        self.assertEqual(sorted(got_rejected), sorted(rejected))
        self.assertEqual(len(T.quarantine(self.cdb)), len(rejected))

    def test_summary_json_equals_expected_totals(self):
        expected = T.load_totals()
        got = self.summary_json(self.cdb)
        self.assertEqual(len(by_domain(got)), len(got["domains"]),
                         "a policy domain appears twice in summary JSON")
        exp_domains = by_domain(expected)
        got_domains = by_domain(got)
        self.assertEqual(sorted(got_domains, key=lambda k: (k is None, k or "")),
                         sorted(exp_domains, key=lambda k: (k is None, k or "")),
                         "policy domains differ")
        self.assertIn(None, got_domains, "policies without a domain must count under null")
        for dom, exp in exp_domains.items():
            with self.subTest(policy_domain=dom):
                # the summary JSON of the README: "more keys are welcome": compare the keys the corpus expects
                proj = {k: got_domains[dom].get(k, "<missing>") for k in exp}
                self.assertEqual(proj, exp)
        proj = {k: got["totals"].get(k, "<missing>") for k in expected["totals"]}
        self.assertEqual(proj, expected["totals"])
        self.assertEqual(got["totals"]["reports"], len(T.stored_reports(self.cdb)))

    def test_duplicates_are_exactly_the_expected(self):
        expected = T.load_totals()["duplicates"]
        dups = [o.name for o in T.outcomes(self.first) if o.status == "duplicate"]
        self.assertEqual(sorted(dups), sorted(expected))
        stored = [o for o in T.outcomes(self.first) if o.status == "stored"]
        self.assertEqual(len(stored), T.load_totals()["totals"]["reports"])

    def test_sorted_file_list_gives_the_same_database(self):
        db = self.new_db("list")
        files = real_files_sorted()
        res = T.run(["ingest", "--db", db, "--no-progress"] + files, cwd=CORPUS)
        self.assertEqual(res.rc, self.first.rc, res)
        self.assertEqual([o.name for o in T.outcomes(res)], files)
        self.assertEqual([(o.name, o.status) for o in T.outcomes(res)],
                         [(o.name, o.status) for o in T.outcomes(self.first)])
        self.assertEqual(self.summary_json(db), self.summary_json(self.cdb))

    def test_second_ingest_stores_nothing_new(self):
        db = self.new_db("twice")
        res1 = T.run(["ingest", "--db", db, "--no-progress", "real"], cwd=CORPUS)
        before = T.contents(db)
        summary_before = self.summary_json(db)
        res2 = T.run(["ingest", "--db", db, "--no-progress", "real"], cwd=CORPUS)
        self.assertEqual(res2.rc, res1.rc, res2)
        outs = T.outcomes(res2)
        self.assertEqual([o.name for o in outs], real_files_sorted())
        first_status = {o.name: o.status for o in T.outcomes(res1)}
        for o in outs:
            with self.subTest(file=o.name):
                if first_status[o.name] == "rejected":
                    self.assertEqual(o.status, "rejected")
                else:
                    self.assertEqual(o.status, "duplicate")
        # the same reports, policies and failure details; rejected inputs are quarantined
        # again (each time they arrive), nothing else changes
        after = T.contents(db)
        self.assertEqual(after["reports"], before["reports"])
        self.assertEqual(self.summary_json(db), summary_before)
        self.assertEqual(summary_before, self.summary_json(self.cdb))


_ROW_RE = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s*$")
_FAIL_RE = re.compile(r"^\s+(\S+)\s+(\d+)  (.+)$")


def parse_table(text):
    """summary's table -> ({domain: row}, totals_row); a row is
    {successful_sessions, failed_sessions, rate, reports, reporters, failures, hints}."""
    domains, totals, current = {}, None, None
    lines = text.splitlines()
    assert lines and lines[0].startswith("POLICY DOMAIN"), "no table header: %r" % text[:200]
    for ln in lines[1:]:
        if not ln.strip() or set(ln.strip()) == {"-"}:
            continue
        m = _ROW_RE.match(ln)
        if m:
            current = {"successful_sessions": int(m.group(2)), "failed_sessions": int(m.group(3)),
                       "rate": m.group(4), "reports": int(m.group(5)),
                       "reporters": int(m.group(6)), "failures": {}, "hints": {}}
            if m.group(1) == "TOTAL":
                totals = current
            else:
                key = None if m.group(1) == "(none)" else m.group(1)
                assert key not in domains, "domain %r twice in table" % key
                domains[key] = current
            continue
        m = _FAIL_RE.match(ln)
        assert m and current is not None, "unparseable table line %r" % ln
        current["failures"][m.group(1)] = int(m.group(2))
        current["hints"][m.group(1)] = m.group(3)
    assert totals is not None, "no TOTAL line"
    return domains, totals


def expected_rate(ok, failed):
    return "-" if ok + failed == 0 else "%.2f%%" % (100.0 * failed / (ok + failed))


class SummaryTable(T.TlsrptdTestCase):
    """summary --format table agrees with --format json on the whole corpus."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ctmp = tempfile.mkdtemp(prefix="tlsrptd-it-table-")
        cls.cdb = T.new_db(cls.ctmp, "all")
        T.run(["ingest", "--db", cls.cdb, "--no-progress", "real"], cwd=CORPUS)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.ctmp, True)
        super().tearDownClass()

    def test_table_agrees_with_json(self):
        js = self.summary_json(self.cdb)
        res = T.run(["summary", "--db", self.cdb])
        self.assertExit(res, 0)
        res2 = T.run(["summary", "--db", self.cdb, "--format", "table"])
        self.assertEqual(res2.out, res.out, "table is the default format")
        domains, totals = parse_table(res.out)

        t = js["totals"]
        self.assertEqual((totals["successful_sessions"], totals["failed_sessions"],
                          totals["reports"]),
                         (t["successful_sessions"], t["failed_sessions"], t["reports"]),
                         "TOTAL line")
        self.assertEqual(totals["rate"], expected_rate(t["successful_sessions"],
                                                       t["failed_sessions"]))
        self.assertEqual(totals["failures"], t["failures"])
        exp = T.load_totals()["totals"]
        self.assertEqual((totals["successful_sessions"], totals["failed_sessions"],
                          totals["reports"]),
                         (exp["successful_sessions"], exp["failed_sessions"], exp["reports"]))

        jd = by_domain(js)
        self.assertEqual(set(domains), set(jd))
        for dom, row in domains.items():
            with self.subTest(policy_domain=dom):
                d = jd[dom]
                self.assertEqual((row["successful_sessions"], row["failed_sessions"],
                                  row["reports"], row["failures"]),
                                 (d["successful_sessions"], d["failed_sessions"], d["reports"],
                                  d["failures"]))
                self.assertEqual(row["rate"], expected_rate(d["successful_sessions"],
                                                            d["failed_sessions"]))
                self.assertEqual(row["reporters"], d["reporters"])
        # each result type comes with what it means and what to fix
        hints = {}
        for row in list(domains.values()) + [totals]:
            hints.update(row["hints"])
        self.assertIn("expired certificate", hints["certificate-expired"])
        self.assertIn("renew", hints["certificate-expired"])
        self.assertIn("STARTTLS", hints["starttls-not-supported"])
        self.assertIn("not an RFC 8460 result type", hints["Testing"])


if __name__ == "__main__":
    T.main()
