#!/usr/bin/env python3
"""`tlsrptd migrate --db SOURCE --to TARGET` (DESIGN §10): a SQLite database
copied into the backend under test (a new SQLite file, or PostgreSQL), and
checked from outside to be the same database: every summary dimension, every
report listed and shown (its raw bytes: `show --format json` "report"), the
quarantine with its bytes (`quarantine export`), the outcome counters of
/metrics.

  Corpus        the shared corpus, HTTP reports (stored, duplicate, rejected) and a
                quarantine entry whose bytes were not kept; run again: nothing twice
  Refused       a target holding reports, quarantine entries or another source's
                copy: 65, and the target is left as it was
  Big           the corpus and 100,000 generated reports (bench/gen_reports; 10,000
                into SQLite): SIGKILL at the middle, run again: equal, nothing twice
                (the one big case; TLSRPTD_MIGRATE_REPORTS sets another count)

Run: TLSRPTD_BIN=build/tlsrptd [TLSRPTD_GEN_REPORTS=build/bench/gen_reports]
     [TLSRPTD_BACKEND=postgresql TLSRPTD_PG_STATE=DIR] python3 tests/integration/test_migrate.py
"""
import collections
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import storage_helpers as H  # noqa: E402
import tlsrptd_test as T  # noqa: E402

# SQLite -> PostgreSQL is the migration operators run: the 100,000-report case runs
# there; SQLite -> SQLite runs the same steps on 10,000, and a sanitizer build (several
# times slower, and there for memory errors, not scale) on 20,000.
BIG = int(os.environ.get("TLSRPTD_MIGRATE_REPORTS",
                         "10000" if T.backend() == "sqlite" else
                         "20000" if T.asan() else "100000"))
DIMENSIONS = ("domain", "day", "result-type", "reporter", "sending-ip", "mx-host",
              "policy-type")
_PROGRESS_RE = re.compile(r"^migrate: (\d+) reports copied \(of (\d+)\)")


def gen_reports_bin():
    """bench/gen_reports: TLSRPTD_GEN_REPORTS, or beside the tlsrptd binary in its build."""
    path = os.environ.get("TLSRPTD_GEN_REPORTS") or os.path.join(
        os.path.dirname(T.tlsrptd_bin()), "bench", "gen_reports")
    if not os.access(path, os.X_OK):
        raise RuntimeError("bench/gen_reports is not built (%s): build with "
                           "-DTLSRPTD_BENCH=ON or set TLSRPTD_GEN_REPORTS" % path)
    return path


def build_source(tmp, generated=0):
    """A SQLite database: the corpus (stored, duplicates, quarantine), reports POSTed
    to serve (source http: stored, duplicate, rejected), a quarantine entry whose bytes
    were over the budget, and `generated` reports of bench/gen_reports."""
    db = os.path.join(tmp, "source.db")
    # first: a budget this small evicts what is already there
    big = os.path.join(tmp, "not-kept.json")
    with open(big, "wb") as f:
        f.write(json.dumps(dict(H.report_dict(""), **{"contact-info": "x" * 4000})).encode())
    res = T.run(["ingest", "--db", db, "--no-progress", "--quarantine-bytes", "1000", big])
    if res.rc != T.EX_DATAERR:
        raise AssertionError("%r" % res)
    res = T.run(["ingest", "--db", db, "--no-progress", "--quiet", "real"],
                cwd=T.corpus_dir(), timeout=600)
    if res.rc not in (T.EX_OK, T.EX_DATAERR):
        raise AssertionError("ingesting the corpus failed:\n%r" % res)
    if generated:
        out = os.path.join(tmp, "generated")
        p = subprocess.run([gen_reports_bin(), "-n", str(generated), "-o", out, "-s", "7"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=1800)
        if p.returncode != 0:
            raise AssertionError("gen_reports: %s" % p.stderr.decode(errors="replace"))
        res = T.run(["ingest", "--db", db, "--no-progress", "--quiet", out], timeout=3600)
        if res.rc != 0:
            raise AssertionError("ingesting the generated reports failed:\n%r" % res)
        shutil.rmtree(out, ignore_errors=True)
    return db


def post_some(case, db):
    """Reports through serve: two stored, a duplicate, one rejected (gzip body)."""
    d = H.Daemon(case, ["--db", db, "--spool-dir", "off"], name="source-serve").start()
    for rid, want in (("http-1", 201), ("http-2", 201), ("http-1", 200)):
        r = d.post(H.report_body(rid))
        case.assertEqual(r.status, want, r)
    r = d.post(gzip.compress(T.read_bytes(T.sample("invalid.json"))),
               ctype="application/tlsrpt+gzip")
    case.assertEqual(r.status, 400, r)
    case.assertEqual(d.stop(), 0)


def report_key(r):
    return (r["organization_name"], r["report_id"], r["start_datetime"], r["end_datetime"])


def without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


class MigrateCase(T.TlsrptdTestCase):
    def migrate(self, src, dst, *args, timeout=3600):
        return T.run(["migrate", "--db", src, "--to", dst] + list(args), timeout=timeout)

    def outcome_counters(self, db):
        """tlsrptd_reports_total of serve on db: {(source, outcome): count}."""
        d = H.Daemon(self, ["--db", db, "--spool-dir", "off"], name="counters").start()
        m = d.metrics()
        self.assertEqual(d.stop(), 0)
        return {(lb["source"], lb["outcome"]): v for lb, v in
                H.metric(m, "tlsrptd_reports_total")}

    def assertSameDatabase(self, src, dst, show_sample=None):
        """Everything tlsrptd shows of src and dst is the same (ids aside: a target's
        ids are its own)."""
        for by in DIMENSIONS:
            with self.subTest(by=by):
                self.assertEqual(H.summary(dst, "--by", by), H.summary(src, "--by", by))
        a, b = H.stored_reports(src), H.stored_reports(dst)
        ka = collections.Counter(report_key(r) for r in a)
        kb = collections.Counter(report_key(r) for r in b)
        self.assertEqual([k for k, n in kb.items() if n > 1], [], "a report copied twice")
        self.assertEqual(kb, ka)
        by_key_a = {report_key(r): r for r in a}
        by_key_b = {report_key(r): r for r in b}
        for k in ka:
            self.assertEqual(without(by_key_b[k], "id"), without(by_key_a[k], "id"), k)
        keys = sorted(ka)
        if show_sample is not None and len(keys) > show_sample:
            keys = random.Random(5).sample(keys, show_sample)
        for k in keys:  # one report each: raw bytes, diagnostics, policies, details
            sa = H.cli_json(["show", str(by_key_a[k]["id"])], src)
            sb = H.cli_json(["show", str(by_key_b[k]["id"])], dst)
            self.assertEqual(without(sb, "id"), without(sa, "id"), k)
        qa, qb = H.quarantine_list(src), H.quarantine_list(dst)
        self.assertEqual(qb["total"], qa["total"])

        def entry_key(e):
            return (e["received_at"], e["reason"], json.dumps(e["source"], sort_keys=True),
                    e["raw_size"])
        ea = sorted(qa["entries"], key=entry_key)
        eb = sorted(qb["entries"], key=entry_key)
        self.assertEqual([without(e, "id") for e in eb], [without(e, "id") for e in ea])
        for x, y in zip(ea, eb):
            ra = subprocess.run([T.tlsrptd_bin(), "quarantine", "export", "--db", src,
                                 str(x["id"])], capture_output=True, timeout=60)
            rb = subprocess.run([T.tlsrptd_bin(), "quarantine", "export", "--db", dst,
                                 str(y["id"])], capture_output=True, timeout=60)
            self.assertEqual((rb.returncode, rb.stdout), (ra.returncode, ra.stdout), x)
        self.assertEqual(self.outcome_counters(dst), self.outcome_counters(src))


class Corpus(MigrateCase):
    def test_corpus_copied_and_verified(self):
        src = build_source(self.tmp)
        post_some(self, src)
        res = self.migrate(src, self.db)
        self.assertExit(res, 0)
        self.assertRegex(res.out, r"summaries by domain, day, reporter, result type and "
                                  r"policy type are equal")
        self.assertRegex(res.err, r"migrate: \d+ reports copied")
        counters = self.outcome_counters(src)
        self.assertEqual(counters[("http", "stored")], 2)
        self.assertEqual(counters[("http", "duplicate")], 1)
        self.assertEqual(counters[("http", "rejected")], 1)
        self.assertGreater(counters[("file", "duplicate")], 0)
        not_kept = [e for e in H.quarantine_list(src)["entries"] if not e["raw_kept"]]
        self.assertEqual(len(not_kept), 1)
        self.assertSameDatabase(src, self.db)
        # run again: nothing to copy, nothing twice
        res = self.migrate(src, self.db)
        self.assertExit(res, 0)
        self.assertSameDatabase(src, self.db)


class Refused(MigrateCase):
    def setUp(self):
        super().setUp()
        self.src = build_source(self.tmp)

    def assertRefused(self, target):
        before = (H.summary(target), H.quarantine_list(target))
        res = self.migrate(self.src, target)
        self.assertExit(res, T.EX_DATAERR)
        self.assertRegex(res.err, r"already holds")
        self.assertEqual((H.summary(target), H.quarantine_list(target)), before,
                         "a refused migration changed the target")

    def test_target_with_reports(self):
        self.assertExit(self.ingest(T.sample("report.json")), 0)
        self.assertRefused(self.db)

    def test_target_with_quarantine_only(self):
        self.assertExit(self.ingest(T.sample("invalid.json")), T.EX_DATAERR)
        self.assertRefused(self.db)

    def test_target_of_another_source(self):
        other = os.path.join(self.tmp, "other.db")
        self.assertExit(self.ingest(T.sample("report.json"), db=other), 0)
        self.assertExit(self.migrate(other, self.db), 0)
        self.assertRefused(self.db)


class Big(MigrateCase):
    """One source for the class: building it is most of the time."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.src_dir = tempfile.mkdtemp(prefix="tlsrptd-migrate-")
        t0 = time.monotonic()
        cls.src = build_source(cls.src_dir, BIG)
        cls.build_s = time.monotonic() - t0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.src_dir, ignore_errors=True)
        super().tearDownClass()

    def test_interrupted_at_the_middle_and_resumed(self):
        total = H.summary(self.src)["totals"]["reports"]
        self.assertGreaterEqual(total, BIG)
        t0 = time.monotonic()
        p = subprocess.Popen([T.tlsrptd_bin(), "migrate", "--db", self.src, "--to", self.db],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        copied, lines = [0], []

        def read():
            for ln in p.stderr:
                ln = ln.decode("utf-8", "replace").rstrip("\n")
                lines.append(ln)
                m = _PROGRESS_RE.match(ln)
                if m:
                    copied[0] = int(m.group(1))
                    if copied[0] >= total // 2 and p.poll() is None:
                        p.send_signal(signal.SIGKILL)

        reader = threading.Thread(target=read)
        reader.start()
        p.wait(3600)
        reader.join(60)
        p.stdout.close()
        p.stderr.close()
        first_s = time.monotonic() - t0
        self.assertEqual(p.returncode, -signal.SIGKILL,
                         "migrate finished before it was interrupted:\n%s" % "\n".join(lines))
        at_kill = copied[0]
        self.assertGreaterEqual(at_kill, total // 2)
        self.assertLess(at_kill, total)
        t0 = time.monotonic()
        res = self.migrate(self.src, self.db)
        second_s = time.monotonic() - t0
        self.assertExit(res, 0)
        self.assertRegex(res.err, r"migrate: resuming after report \d+")
        resumed = [int(m.group(1)) for m in map(_PROGRESS_RE.match, res.err.splitlines()) if m]
        self.assertLessEqual(max(resumed), total - at_kill + 500 * 2,
                             "the second run copied again what the first had copied")
        self.assertRegex(res.out, r"summaries .* are equal")
        t0 = time.monotonic()
        self.assertSameDatabase(self.src, self.db, show_sample=300)
        sys.stderr.write("\n  [migrate] %d reports: source built in %.0f s, killed after %d "
                         "(%.0f s), resumed in %.0f s, compared in %.0f s\n" % (
                             total, self.build_s, at_kill, first_s, second_s,
                             time.monotonic() - t0))


if __name__ == "__main__":
    T.main()
