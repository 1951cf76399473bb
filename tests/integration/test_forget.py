#!/usr/bin/env python3
"""`tlsrptd forget --domain D` (docs/trust.md): no trace of D afterwards.

gone.test is stored every way it can be: reports of its own (JSON, gzip, mail; a report
id naming it; a policy whose domain came from the TLS-Report-Domain header), reports it
shares with keep.test (its policies and failure details, the raw JSON, a mail whose
headers name it), a keep.test report whose header names it, a policy skipped as foreign
(own domains set: a warning names it and the raw JSON holds it), quarantined inputs that
name it (in the reason, the headers, the bytes, a gzip attachment).

  Forget      the dry run removes nothing and counts what goes; afterwards "gone.test"
              (any letter case) is in no summary (every `by`), listing, `show` (raw JSON,
              diagnostics, source), quarantine entry or its bytes, API answer or /metrics
              line; SQLite: not even in the database file's bytes; keep.test's numbers are
              unchanged, and the report counts are those of the reports left
  Usage       --domain missing or bad: exit 64

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_forget.py
"""
import gzip
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402
import trust_common as C  # noqa: E402

GONE = "gone.test"


def inputs(t):
    """name -> bytes, and the inputs ingested with keep.test as the only own domain."""
    P, R = C.policy, C.report
    big_fails = [("certificate-expired", "192.0.2.%d" % i, "mx%d.gone.test" % i, 1)
                 for i in range(1, 120)]
    no_domain = R("Header Reporter", "fallback-1", t - 6 * C.DAY, [P(None, 4)])
    header_mismatch = R("Header Reporter", "mismatch-1", t - 6 * C.DAY, [P("keep.test", 6)])
    main = {
        "d1.json": C.dumps(R("Reporter One", "2026-11-01T00:00:00Z_gone.test", t - 9 * C.DAY, [
            P(GONE, 100, [("certificate-expired", "192.0.2.1", "mx.gone.test", 3)])])),
        "d2.json.gz": C.gz(R("Reporter Two", "big-%s-2" % GONE, t - 8 * C.DAY, [
            P(GONE, 7, big_fails, mx="mx.GONE.test")])),
        "d3.eml": C.mail(R("Reporter Three", "mailed-3", t - 7 * C.DAY, [P(GONE, 9)]), GONE,
                         submitter="three.reporter.example"),
        "fallback.eml": C.mail(no_domain, GONE),
        "mismatch.eml": C.mail(header_mismatch, GONE),
        "shared.json": C.dumps(R("Reporter Shared", "shared-1", t - 5 * C.DAY, [
            P("keep.test", 50, [("validation-failure", "198.51.100.1", "mx.keep.test", 2)]),
            P(GONE, 60, [("starttls-not-supported", "192.0.2.9", "mx.gone.test", 8)])])),
        "shared2.eml": C.mail(R("Reporter Shared", "shared-2", t - 4 * C.DAY, [
            P(GONE, 70), P("keep.test", 80)]), GONE),
        "keep.json": C.dumps(R("Reporter Keep", "keep-1", t - 3 * C.DAY, [
            P("keep.test", 90, [("validation-failure", "198.51.100.2", "mx.keep.test", 1)])])),
        # quarantined
        "bad-gone.json": b'{"organization-name": "X", "report-id": "2026-11-30T00:00:00Z_gone.test",'
                         b' "policies": []}',
        "bad-keep.json": b'{"organization-name": "X", "report-id": "r-keep.test", "policies": []}',
        "bad-gone.eml": (b"From: a@b.example\r\nSubject: Report Domain: GONE.test\r\n"
                         b"Content-Type: text/plain\r\n\r\nno report here\r\n"),
        "bad-gone-gz.eml": C.mail({"organization-name": "Y", "report-id": "hidden-1",
                                   "policies": [{"policy": {"policy-domain": GONE}}]},
                                  "other.example", submitter="y.example",
                                  subject="a report"),
    }
    skipped = {
        "skipped.json": C.dumps(R("Reporter Mixed", "mixed-1", t - 2 * C.DAY, [
            P("keep.test", 5), P(GONE, 6)])),
    }
    return main, skipped


class Forget(T.TlsrptdTestCase):
    def setUp(self):
        super().setUp()
        t = C.midnight(C.now())
        main, skipped = inputs(t)
        res = self.ingest(*[self.write(n, b) for n, b in sorted(main.items())])
        self.assertExit(res, T.EX_DATAERR)
        res = self.ingest(*[self.write(n, b) for n, b in sorted(skipped.items())],
                          opts=["--domains", "keep.test"])
        self.assertExit(res, T.EX_OK)
        self.ids = [r["id"] for r in C.listing(self.db)["reports"]]
        self.qids = [e["id"] for e in C.quarantine(self.db)["entries"]]
        self.assertEqual(len(self.ids), 9)
        self.assertEqual(len(self.qids), 4)
        # gone.test is there to begin with, every way
        self.assertIn(GONE, json.dumps(C.summary(self.db)))
        self.assertTrue(any(GONE in json.dumps(C.show(self.db, i)).lower() for i in self.ids))

    def everything_shown(self):
        """Every answer the CLI gives about this database, as text, by where it came from."""
        out = {}
        for by in C.BY_VALUES:
            out["summary --by " + by] = json.dumps(C.summary(self.db, "--by", by))
        out["summary --reports"] = json.dumps(C.listing(self.db))
        for i in self.ids:
            out["show %d" % i] = json.dumps(C.show(self.db, i))
        out["quarantine list"] = json.dumps(C.quarantine(self.db))
        for q in self.qids:
            res = T.run(["quarantine", "show", "--db", self.db, "--format", "json", str(q)])
            out["quarantine show %d" % q] = res.out
            res = T.run(["quarantine", "export", "--db", self.db, str(q)])
            raw = res.out.encode("utf-8", "surrogateescape")
            out["quarantine export %d" % q] = res.out
            if raw[:2] == b"\x1f\x8b":
                out["quarantine export %d (gunzipped)" % q] = gzip.decompress(raw).decode()
        return out

    def keep_numbers(self):
        s = C.summary(self.db, "--domain", "keep.test")
        return s["groups"], s["totals"]

    def test_forget(self):
        keep = self.keep_numbers()
        shown = self.everything_shown()
        dry = C.cli_json(["forget", "--db", self.db, "--domain", "Gone.Test.", "--dry-run",
                          "--format", "json"])
        self.assertEqual(dry["domain"], GONE)
        self.assertEqual(dry["reports_deleted"], 4)  # d1, d2, d3, fallback
        self.assertEqual(dry["reports_edited"], 4)   # shared, shared2, mismatch, skipped
        self.assertEqual(dry["policies"], 6)
        self.assertEqual(dry["failure_details"], 1 + len(range(1, 120)) + 1)
        self.assertEqual(dry["quarantine"], 2 + 1)   # bad-gone.json, .eml, -gz.eml
        self.assertEqual(self.everything_shown(), shown)  # a dry run changes nothing

        out = C.cli_json(["forget", "--db", self.db, "--domain", GONE, "--format", "json"])
        for k in ("reports_deleted", "reports_edited", "policies", "failure_details",
                  "quarantine", "rollup_rows"):
            self.assertEqual(out[k], dry[k], k)
        self.assertEqual(out["rebuilt"], T.backend() == "sqlite")
        for where, text in self.everything_shown().items():
            self.assertNotIn(GONE, text.lower(), "%s still names %s:\n%s" % (where, GONE, text))
        self.assertEqual(self.keep_numbers(), keep)
        s = C.summary(self.db)
        self.assertEqual([g["policy_domain"] for g in s["domains"]], ["keep.test"])
        self.assertEqual(s["totals"], keep[1])
        self.assertEqual(C.listing(self.db)["total"], 5)
        day = C.summary(self.db, "--by", "day")
        self.assertEqual(sum(g["reports"] for g in day["groups"]), 5)
        self.assertEqual(C.quarantine(self.db)["total"], 1)
        if T.backend() == "sqlite":
            for suffix in ("", "-wal"):
                if os.path.exists(self.db + suffix):
                    with open(self.db + suffix, "rb") as f:
                        self.assertNotIn(GONE.encode(), f.read().lower(), suffix)
        # and through the API and /metrics
        d = C.Daemon(self.tmp, ["--db", self.db])
        try:
            paths = ["/metrics", "/api/v1/reports", "/api/v1/policies", "/api/v1/quarantine"]
            paths += ["/api/v1/summary?by=" + by for by in C.BY_VALUES]
            paths += ["/api/v1/reports/%d" % i for i in self.ids]
            paths += ["/api/v1/quarantine/%d" % q for q in self.qids]
            paths += ["/api/v1/quarantine/%d/raw" % q for q in self.qids]
            for p in paths:
                r = d.get(p)
                self.assertIn(r.status, (200, 404), (p, r))
                self.assertNotIn(GONE.encode(), r.body.lower(), p)
            self.assertIn(b'policy_domain="keep.test"', d.get("/metrics").body)
        finally:
            self.assertEqual(d.stop(), 0)
        # forgetting it again finds nothing
        again = C.cli_json(["forget", "--db", self.db, "--domain", GONE, "--format", "json"])
        self.assertEqual((again["reports_deleted"], again["reports_edited"], again["policies"],
                          again["quarantine"]), (0, 0, 0, 0))

    def test_usage(self):
        res = T.run(["forget", "--db", self.db])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("--domain", res.err)
        res = T.run(["forget", "--db", self.db, "--domain", "a b"])
        self.assertExit(res, T.EX_USAGE)
        res = T.run(["forget", "--db", self.db, "--domain", GONE, "--format", "yaml"])
        self.assertExit(res, T.EX_USAGE)
        res = T.run(["forget", "--help"])
        self.assertExit(res, 0)
        self.assertIn("--dry-run", res.out)


if __name__ == "__main__":
    T.main()
