#!/usr/bin/env python3
"""The findings (`tlsrptd summary --findings`, GET /api/v1/findings): each finding on a
scenario built from reports with controlled dates, not on its clean control, with the numbers
and the reports that show it, on either storage backend.

The scenario, as of NOW (2026-06-01):
  ready.example   MTA-STS testing, Google daily for 40 days, no failure      -> ready-for-enforce
  enforce.example the same in enforce                                         -> nothing
  dirty.example   MTA-STS testing, daily, one failure 10 days ago             -> nothing (not clean)
  quiet.example   Microsoft daily until 9 days ago, then nothing              -> silent-reporter
  late.example    Microsoft daily until yesterday                             -> nothing
  cert.example    daily; certificate-expired on mx1.cert.example these 5 days -> new-result-type
                                                                                 certificate-problem
  old.example     certificate-expired 60 days ago only (fixed since)          -> nothing
  tls.example     starttls-not-supported on mx.tls.example these 3 days       -> starttls-not-supported
  npf.example     Google: no-policy-found                                     -> no-policy-found
  fixed.example   Google: no-policy-found 20 days ago, an sts policy since    -> nothing
"""
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlsrptd_test as T  # noqa: E402

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


def day(n):
    """The day n days before NOW (n > 0) as a datetime at midnight UTC."""
    return NOW - datetime.timedelta(days=n)


def report(org, domain, start, policy_type="sts", mode="testing", ok=100, failures=(),
           rid=None):
    """One report for one policy; failures: (result type, MX host, count)."""
    end = start + datetime.timedelta(seconds=86399)
    pol = {"policy-type": policy_type, "policy-domain": domain}
    if policy_type == "sts":
        pol["policy-string"] = ["version: STSv1", "mode: " + mode, "mx: mx1." + domain,
                                "max_age: 604800"]
        pol["mx-host"] = ["mx1." + domain]
    details = [{"result-type": t, "sending-mta-ip": "192.0.2.1", "receiving-mx-hostname": mx,
                "failed-session-count": n} for t, mx, n in failures]
    p = {"policy": pol, "summary": {"total-successful-session-count": ok,
                                    "total-failure-session-count": sum(n for _, _, n in failures)}}
    if details:
        p["failure-details"] = details
    return {"organization-name": org, "contact-info": "tlsrpt@" + org.split()[0].lower() + ".test",
            "report-id": rid or "%s-%s-%s" % (org.split()[0], domain, start.date()),
            "date-range": {"start-datetime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "end-datetime": end.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "policies": [p]}


def scenario():
    out = []
    for n in range(1, 41):
        out.append(report("Google LLC", "ready.example", day(n)))
        out.append(report("Google LLC", "enforce.example", day(n), mode="enforce"))
        fail = [("validation-failure", "mx1.dirty.example", 1)] if n == 10 else []
        out.append(report("Google LLC", "dirty.example", day(n), failures=fail))
        if n >= 9:
            out.append(report("Microsoft Corporation", "quiet.example", day(n), mode="enforce"))
        out.append(report("Microsoft Corporation", "late.example", day(n), mode="enforce"))
        cert = [("certificate-expired", "mx1.cert.example", 3)] if n <= 5 else []
        out.append(report("Google LLC", "cert.example", day(n), mode="enforce", failures=cert))
        old = [("certificate-expired", "mx1.old.example", 2)] if n == 60 else []
        out.append(report("Google LLC", "old.example", day(n), mode="enforce", failures=old))
        stls = [("starttls-not-supported", "mx.tls.example", 7)] if n <= 3 else []
        out.append(report("Google LLC", "tls.example", day(n), mode="enforce", failures=stls))
    for n in (2, 3, 4):
        out.append(report("Google LLC", "npf.example", day(n), policy_type="no-policy-found"))
    out.append(report("Google LLC", "fixed.example", day(20), policy_type="no-policy-found"))
    for n in (1, 2, 3):
        out.append(report("Google LLC", "fixed.example", day(n), mode="enforce"))
    out.append(report("Google LLC", "old.example", day(60), mode="enforce",
                      failures=[("certificate-expired", "mx1.old.example", 2)]))
    return out


class Findings(T.TlsrptdTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile
        cls.dir = tempfile.mkdtemp(prefix="tlsrptd-findings-")
        cls.cdb = T.new_db(cls.dir, "findings")
        inputs = os.path.join(cls.dir, "in")
        os.makedirs(inputs)
        for i, r in enumerate(scenario()):
            with open(os.path.join(inputs, "%05d.json" % i), "w") as f:
                json.dump(r, f)
        res = T.run(["ingest", "--db", cls.cdb, "--no-progress", "-q", inputs])
        assert res.rc == 0, res

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.dir, True)

    def findings(self, *args):
        res = T.run(["summary", "--db", self.cdb, "--findings", "--now", "2026-06-01",
                     "--format", "json"] + list(args))
        self.assertExit(res, 0)
        return json.loads(res.out)["findings"]

    def by_kind(self, found):
        out = {}
        for f in found:
            out.setdefault(f["kind"], []).append(f)
        return out

    def test_each_rule_fires_once_and_not_on_its_control(self):
        found = self.by_kind(self.findings())
        kinds = {k: sorted(f["domain"] for f in v) for k, v in found.items()}
        self.assertEqual(kinds, {
            "ready-for-enforce": ["ready.example"],
            "silent-reporter": ["quiet.example"],
            "new-result-type": ["cert.example", "tls.example"],
            "certificate-problem": ["cert.example"],
            "starttls-not-supported": ["tls.example"],
            "no-policy-found": ["npf.example"],
        })

    def test_sentences_numbers_and_evidence(self):
        found = self.by_kind(self.findings())
        ready = found["ready-for-enforce"][0]
        self.assertEqual(ready["severity"], "info")
        self.assertIn("MTA-STS for ready.example is in testing", ready["text"])
        self.assertIn("ready for enforce", ready["text"])
        quiet = found["silent-reporter"][0]
        self.assertIn("Microsoft Corporation stopped reporting for quiet.example 9 days ago",
                      quiet["text"])
        self.assertEqual(quiet["since"], "2026-05-24T00:00:00Z")
        cert = found["certificate-problem"][0]
        self.assertEqual(cert["severity"], "critical")
        self.assertIn("certificate-expired on mx1.cert.example since 2026-05-27", cert["text"])
        self.assertIn("15 failed sessions in 5 reports", cert["text"])
        self.assertIn("renew it", cert["text"])
        stls = found["starttls-not-supported"][0]
        self.assertIn("mx.tls.example did not offer STARTTLS since 2026-05-29", stls["text"])
        npf = found["no-policy-found"][0]
        self.assertIn("Google LLC reports no-policy-found for npf.example", npf["text"])
        self.assertIn("publish an MTA-STS policy", npf["text"])
        # the evidence: the newest reports that show it, each one a stored report of the domain
        for f in [cert, stls, npf, ready]:
            ids = f["evidence"]["reports"]
            self.assertTrue(ids, f)
            for rid in ids[:3]:
                res = T.run(["show", "--db", self.cdb, "--format", "json", str(rid)])
                self.assertExit(res, 0)
                shown = json.loads(res.out)
                self.assertEqual(shown["report"]["policies"][0]["policy"]["policy-domain"],
                                 f["domain"])
        self.assertEqual(len(cert["evidence"]["reports"]), 5)

    def test_domain_filter_and_table(self):
        found = self.findings("--domain", "cert.example")
        self.assertEqual(sorted(f["kind"] for f in found),
                         ["certificate-problem", "new-result-type"])
        res = T.run(["summary", "--db", self.cdb, "--findings", "--now", "2026-06-01",
                     "--domain", "cert.example"])
        self.assertExit(res, 0)
        lines = res.out.splitlines()
        self.assertTrue(lines[0].startswith("critical"), res.out)  # the most urgent first
        self.assertIn("reports:", res.out)
        res = T.run(["summary", "--db", self.cdb, "--findings", "--now", "2026-06-01",
                     "--domain", "enforce.example"])
        self.assertEqual(res.out.strip(), "no findings as of 2026-06-01T00:00:00Z")

    def test_bad_arguments(self):
        for args, name in ((["--findings", "--by", "day"], "--findings"),
                           (["--now", "2026-06-01"], "--now"),
                           (["--findings", "--now", "soon"], "--now")):
            res = T.run(["summary", "--db", self.cdb] + args)
            self.assertExit(res, T.EX_USAGE)
            self.assertIn(name, res.err)

    def test_api_agrees_with_the_cli(self):
        from test_api import start_daemon
        d = start_daemon(self.tmp, ["--db", self.cdb])
        self.addCleanup(d.kill)
        for qs, args in (("now=2026-06-01", []),
                         ("now=2026-06-01&domain=cert.example", ["--domain", "cert.example"])):
            r = d.get("/api/v1/findings?" + qs)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(json.loads(r.body)["findings"], self.findings(*args))
        self.assertEqual(d.get("/api/v1/findings?now=soon").status, 400)
        self.assertEqual(d.stop(), 0, d.log())


if __name__ == "__main__":
    T.main()
