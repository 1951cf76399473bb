#!/usr/bin/env python3
"""Own domains (`domains`, `domains_file`; docs/trust.md) on every ingest path.

  CorpusHalf   the shared corpus ingested with `--domains` set to every other corpus
               domain: each of those domains has exactly its EXPECTED-TOTALS.json
               numbers, the totals equal those of the same corpus stored unfiltered and
               summarized with --domain for that half, and every file whose report names
               none of them is rejected (exit 65) and in the quarantine with "not a domain
               of this collector: D"
  Mixed        a report for an own and a foreign domain (and one without a domain) keeps
               only its own policy: counts, `show`, a warning naming the skipped domain
  Serve        HTTP: 400 with the reason for a foreign report and for POST /tlsrpt/D with a
               foreign D, 201 for an own one; a wildcard pattern; domains_file re-read on
               SIGHUP; serve warns at start without domains when it listens beyond loopback
  Maildir      a mailed foreign report goes to the quarantine folder with the reason
  Config       a bad pattern or a missing domains_file: exit 78 naming it

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_domains.py
"""
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402
import trust_common as C  # noqa: E402

NOT_OURS = "not a domain of this collector"


def corpus_domains():
    return sorted(d["policy_domain"] for d in T.load_totals()["domains"] if d["policy_domain"])


class CorpusHalf(T.TlsrptdTestCase):
    def test_half_the_corpus_domains(self):
        corpus = T.corpus_dir()
        half = corpus_domains()[::2]
        self.assertGreater(len(half), 3)
        # the reference: everything stored, each file's reports and their domains
        everything = T.new_db(self.tmp, "all")
        res0 = T.run(["ingest", "--db", everything, "--no-progress", "real"], cwd=corpus)
        self.assertIn(res0.rc, (T.EX_OK, T.EX_DATAERR), res0)
        domains_of = {r["id"]: set(d or "" for d in r["policy_domains"])
                      for r in C.listing(everything)["reports"]}
        file_reports = {}
        for o in T.outcomes(res0):
            m = re.match(r" (\d+):", o.rest)
            if o.status in ("stored", "duplicate"):
                file_reports.setdefault(o.name, []).append(int(m.group(1)))
        res = T.run(["ingest", "--db", self.db, "--no-progress", "--domains", ", ".join(half),
                     "real"], cwd=corpus)
        self.assertExit(res, T.EX_DATAERR)  # the other half is refused
        outcome = {o.name: o for o in T.outcomes(res)}
        expected_quarantined = set()
        for name, ids in file_reports.items():
            ours = any(domains_of[i] & set(half) for i in ids)
            with self.subTest(file=name):
                if ours:
                    self.assertIn(outcome[name].status, ("stored", "duplicate"), outcome[name])
                else:
                    self.assertEqual(outcome[name].status, "rejected", outcome[name])
                    foreign = sorted(d or "(no policy-domain)" for i in ids for d in domains_of[i])
                    self.assertRegex(outcome[name].reason, "^%s: " % NOT_OURS)
                    for d in foreign:
                        self.assertIn(d, outcome[name].reason)
                    expected_quarantined.add(name)
        # exactly the half's numbers
        got = C.summary(self.db)
        expect = {d["policy_domain"]: d for d in T.load_totals()["domains"]}
        self.assertEqual(sorted(g["policy_domain"] for g in got["domains"]), sorted(half))
        for g in got["domains"]:
            e = expect[g["policy_domain"]]
            for k in ("successful_sessions", "failed_sessions", "failures", "reports"):
                self.assertEqual(g[k], e[k], (g["policy_domain"], k))
        ref = C.summary(everything, *[a for d in half for a in ("--domain", d)])
        for k in ("successful_sessions", "failed_sessions", "failures", "reports"):
            self.assertEqual(got["totals"][k], ref["totals"][k], k)
        # the other half: in the quarantine with the reason
        q = C.quarantine(self.db)["entries"]
        refused = {e["source"]["name"]: e["reason"] for e in q if e["reason"].startswith(NOT_OURS)}
        self.assertEqual(set(refused), expected_quarantined)
        for name, reason in refused.items():
            self.assertEqual(reason, outcome[name].reason)


class Mixed(T.TlsrptdTestCase):
    def test_mixed_report_keeps_its_own_policies(self):
        t = C.midnight(C.now()) - 3 * C.DAY
        rep = C.report("Mixed Sender", "mixed-1", t, [
            C.policy("own.test", 90, [("certificate-expired", "192.0.2.1", "mx.own.test", 7)]),
            C.policy("foreign.test", 500, [("starttls-not-supported", "192.0.2.2",
                                            "mx.foreign.test", 40)]),
            C.policy(None, 3),
        ])
        path = self.write("mixed.json", C.dumps(rep))
        res = self.ingest(path, opts=["--domains", "own.test"])
        self.assertExit(res, T.EX_OK)
        o = self.single_outcome(res, "stored")
        self.assertIn("90 successful, 7 failed", o.rest)
        s = C.summary(self.db)
        self.assertEqual([g["policy_domain"] for g in s["domains"]], ["own.test"])
        self.assertEqual(s["totals"]["successful_sessions"], 90)
        self.assertEqual(s["totals"]["failed_sessions"], 7)
        self.assertEqual(s["totals"]["failures"], {"certificate-expired": 7})
        for by in C.BY_VALUES:
            text = json.dumps(C.summary(self.db, "--by", by)["groups"])
            self.assertNotIn("foreign.test", text, by)
            self.assertNotIn("192.0.2.2", text, by)
        shown = C.show(self.db, 1)
        self.assertEqual([p["policy_domain"] for p in shown["policies"]], ["own.test"])
        self.assertEqual(shown["successful_sessions"], 90)
        skipped = [d for d in shown["diagnostics"] if NOT_OURS in d["message"]]
        self.assertEqual(len(skipped), 2, shown["diagnostics"])
        self.assertTrue(any("foreign.test" in d["message"] for d in skipped))
        self.assertEqual(C.quarantine(self.db)["total"], 0)

    def test_wildcards_and_names(self):
        t = C.midnight(C.now()) - 3 * C.DAY
        inputs = []
        for i, d in enumerate(["a.wild.test", "deep.b.wild.test", "wild.test", "exact.test",
                               "sub.exact.test", "notwild.test"]):
            inputs.append(self.write("r%d.json" % i, C.dumps(
                C.report("R", "w-%d" % i, t, [C.policy(d, 1)]))))
        res = self.ingest(*inputs, opts=["--domains", "*.wild.test exact.test"])
        self.assertExit(res, T.EX_DATAERR)
        got = {g["policy_domain"] for g in C.summary(self.db)["domains"]}
        self.assertEqual(got, {"a.wild.test", "deep.b.wild.test", "exact.test"})

    def test_bad_settings_exit_78(self):
        path = self.write("r.json", C.dumps(C.report("R", "x", C.now() - C.DAY,
                                                     [C.policy("a.test", 1)])))
        res = self.ingest(path, opts=["--domains", "ok.test, not_ok!.test"])
        self.assertExit(res, 78)
        self.assertIn("not_ok!.test", res.err)
        res = self.ingest(path, opts=["--domains-file", self.path("missing.txt")])
        self.assertExit(res, 78)
        self.assertIn("missing.txt", res.err)


class Serve(T.TlsrptdTestCase):
    def report_for(self, domain, rid):
        return C.dumps(C.report("HTTP Sender", rid, C.midnight(C.now()) - 2 * C.DAY,
                                [C.policy(domain, 5)]))

    def test_http_refuses_foreign_domains(self):
        dfile = self.write("domains.txt", "# own domains\nown.test\n*.sub.test  other.test\n")
        d = C.Daemon(self.tmp, ["--db", self.db, "--domains-file", dfile])
        try:
            r = d.post_report(self.report_for("own.test", "h1"))
            self.assertEqual(r.status, 201, r)
            r = d.post_report(self.report_for("a.sub.test", "h2"))
            self.assertEqual(r.status, 201, r)
            r = d.post_report(self.report_for("bad.example", "h3"))
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.json()["detail"], "%s: bad.example" % NOT_OURS)
            r = d.post_report(self.report_for("own.test", "h4"), path="/tlsrpt/bad.example")
            self.assertEqual(r.status, 400, r)
            self.assertIn("%s: bad.example" % NOT_OURS, r.json()["detail"])
            r = d.post_report(self.report_for("own.test", "h5"), path="/tlsrpt/OWN.test.")
            self.assertEqual(r.status, 201, r)
            # domains_file again on SIGHUP
            r = d.post_report(self.report_for("late.test", "h6"))
            self.assertEqual(r.status, 400, r)
            with open(dfile, "a") as f:
                f.write("late.test\n")
            d.signal()
            d.wait_log("own domains and tokens reloaded")
            r = d.post_report(self.report_for("late.test", "h7"))
            self.assertEqual(r.status, 201, r)
            # a broken file on SIGHUP keeps what was there
            with open(dfile, "a") as f:
                f.write("bad!name\n")
            d.signal()
            d.wait_log("keeping the own domains and tokens as they were")
            r = d.post_report(self.report_for("late.test", "h8"))
            self.assertEqual(r.status, 201, r)
            q = d.get("/api/v1/quarantine").json()
            self.assertEqual(sorted(e["reason"] for e in q["entries"]),
                             ["%s: bad.example" % NOT_OURS, "%s: late.test" % NOT_OURS])
            r = d.get("/api/v1/policies")  # PostgreSQL answered 503 (ORDER BY 1 COLLATE)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(sorted(p["policy_domain"] for p in r.json()["policies"]),
                             ["a.sub.test", "late.test", "own.test"])
        finally:
            self.assertEqual(d.stop(), 0)
        got = {g["policy_domain"]: g["reports"] for g in C.summary(self.db)["domains"]}
        self.assertEqual(got, {"own.test": 2, "a.sub.test": 1, "late.test": 2})

    def open_daemon(self, name, more=()):
        """A daemon that also listens on 0.0.0.0 (on a port found free; another one if a
        test running at the same time takes it first)."""
        for _ in range(5):
            listen = "0.0.0.0:%d" % T.free_port()
            try:
                return C.Daemon(self.tmp, ["--db", self.db, "--listen", listen] + list(more),
                                name=name)
            except AssertionError as e:
                if "Address already in use" not in str(e):
                    raise
        self.fail("no free port for 0.0.0.0")

    def test_warns_without_domains_beyond_loopback(self):
        d = self.open_daemon("open")
        d.stop()
        self.assertIn("no domains set", d.log())
        d = C.Daemon(self.tmp, ["--db", self.db], name="loopback")
        d.stop()
        self.assertNotIn("no domains set", d.log())
        d = self.open_daemon("owned", ["--domains", "own.test"])
        d.stop()
        self.assertNotIn("no domains set", d.log())


class Maildir(T.TlsrptdTestCase):
    def test_foreign_mail_is_quarantined(self):
        md = self.path("Maildir")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub))
        t = C.midnight(C.now()) - 2 * C.DAY
        own = C.report("Mail Sender", "m-own", t, [C.policy("own.test", 11)])
        bad = C.report("Mail Sender", "m-bad", t, [C.policy("else.test", 12)])
        for i, (rep, dom) in enumerate(((own, "own.test"), (bad, "else.test"))):
            with open(os.path.join(md, "new", "%d.M1P1.test" % i), "wb") as f:
                f.write(C.mail(rep, dom))
        res = T.run(["maildir", "--db", self.db, "--domains", "own.test", md])
        self.assertEqual(res.rc, 0, res)
        self.assertIn("1 stored", res.out)
        self.assertIn("1 quarantined", res.out)
        self.assertEqual(len(os.listdir(os.path.join(md, ".Quarantine", "new"))), 1)
        q = C.quarantine(self.db)["entries"]
        self.assertEqual([e["reason"] for e in q], ["%s: else.test" % NOT_OURS])
        self.assertEqual([g["policy_domain"] for g in C.summary(self.db)["domains"]],
                         ["own.test"])


if __name__ == "__main__":
    T.main()
