#!/usr/bin/env python3
"""Tenants (`tokens_file`; docs/trust.md): each API token sees only its domains.

Two tenants with disjoint domains (A: a.test b.test; B: c.test *.wild.test), a report
they share (a policy each), a domain of neither, one quarantined input.

  Walk        every API route (/api/v1/summary with every `by` value, dkim included, and
              the other parameters, /reports, /reports/ID for every id and report-id,
              /policies, /findings, /config, /quarantine, /quarantine/ID,
              /quarantine/ID/raw, POST .../reingest) and /metrics with each tenant's
              token: nothing of the other tenant (domains, reporters, sending IPs, MX
              hosts, report ids, result types) in any answer; the quarantine is 403; each
              tenant's totals equal `summary --domain ...` of its domains; the shared
              report shows its own policy only (sums, policies, raw JSON, diagnostics;
              source reduced to its kind)
  Findings    a tenant's findings are those of its domains only (the finding's domain,
              its evidence: reports the tenant sees, of that domain), equal to
              `summary --findings --domain ...` of its domains
  All         a "*" token and api_token see everything, the quarantine too
  Access      no token or a wrong one: 401; tokens_file re-read on SIGHUP (a removed
              token stops working, a new one starts)

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_tenants.py
"""
import json
import os
import sys
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402
import trust_common as C  # noqa: E402

TOKEN_A = "tenant-A-token-7f3c9e1d2b"
TOKEN_B = "tenant-B-token-51aa04c6e8"
TOKEN_ALL = "admin-token-0d9e8f7a6b5c"
API_TOKEN = "api-token-42c1b0a9d8e7"

# what only one side may see (compared without letter case)
ONLY_A = ["a.test", "b.test", "Reporter Alpha", "192.0.2.", "rid-alpha", "certificate-expired",
          "sts-policy-fetch-error", "mx.a.test", "mx2.a.test"]
ONLY_B = ["c.test", "wild.test", "Reporter Gamma", "198.51.100.", "rid-gamma",
          "starttls-not-supported", "validation-failure", "dnssec-invalid", "mx2.c.test"]
NOBODY = ["x.test", "Reporter Nobody", "rid-nobody", "203.0.113.", "certificate-not-trusted"]


def reports(t):
    P, R = C.policy, C.report
    return {
        "a1.json": C.dumps(R("Reporter Alpha", "rid-alpha-1", t - 5 * C.DAY, [
            P("a.test", 100, [("certificate-expired", "192.0.2.11", "mx.a.test", 5)])])),
        "a2.json": C.dumps(R("Reporter Alpha", "rid-alpha-2", t - 4 * C.DAY, [
            P("b.test", 50, ptype="tlsa", strings=["3 1 1 aaaa"])])),
        "b1.json": C.dumps(R("Reporter Gamma", "rid-gamma-1", t - 5 * C.DAY, [
            P("c.test", 70, [("starttls-not-supported", "198.51.100.33", "mx.c.test", 9)])])),
        "b2.json": C.dumps(R("Reporter Gamma", "rid-gamma-2", t - 3 * C.DAY, [
            P("x.wild.test", 30, [("validation-failure", "198.51.100.34", "mx.x.wild.test",
                                   2)])])),
        "shared.eml": C.mail(R("Reporter Shared", "rid-shared-1", t - 2 * C.DAY, [
            P("a.test", 10, [("sts-policy-fetch-error", "192.0.2.12", "mx2.a.test", 1)]),
            P("c.test", 20, [("dnssec-invalid", "198.51.100.35", "mx2.c.test", 4)])]),
            "c.test", subject="Report Domain: c.test Submitter: shared.example"),
        "nobody.json": C.dumps(R("Reporter Nobody", "rid-nobody-1", t - 1 * C.DAY, [
            P("x.test", 1, [("certificate-not-trusted", "203.0.113.7", "mx.x.test", 1)])])),
        "junk.json": b'{"organization-name": "Reporter Gamma", "report-id": "rid-gamma-bad"}',
    }


class Tenants(T.TlsrptdTestCase):
    def setUp(self):
        super().setUp()
        t = self.today = C.midnight(C.now())
        inputs = [self.write(n, b) for n, b in sorted(reports(t).items())]
        res = self.ingest(*inputs)
        self.assertExit(res, T.EX_DATAERR)  # junk.json
        self.tokens = self.write("tokens.txt",
                                 "# tenant tokens\n%s a.test b.test\n%s c.test *.wild.test\n"
                                 "%s *\n" % (TOKEN_A, TOKEN_B, TOKEN_ALL))
        self.daemon = C.Daemon(self.tmp, ["--db", self.db, "--tokens-file", self.tokens,
                                          "--api-token", API_TOKEN])
        self.addCleanup(self.daemon.stop)
        self.ids = [r["id"] for r in C.listing(self.db)["reports"]]
        self.assertEqual(len(self.ids), 6)

    def paths(self):
        """Every read route, with every by value and the parameters the API takes."""
        out = ["/metrics", "/api/v1/reports", "/api/v1/reports?limit=2&offset=1",
               "/api/v1/policies", "/api/v1/findings", "/api/v1/findings?since=30d",
               "/api/v1/findings?now=" + C.iso(self.today), "/api/v1/config"]
        for by in C.BY_VALUES:
            out.append("/api/v1/summary?by=" + by)
            out.append("/api/v1/summary?by=%s&since=30d&top=2" % by)
        out += ["/api/v1/summary?by=day&fill=1&since=10d",
                "/api/v1/summary?limit=1&offset=1"]
        for d in ("a.test", "b.test", "c.test", "x.wild.test", "x.test", "(none)"):
            out.append("/api/v1/summary?domain=" + urllib.parse.quote(d))
            out.append("/api/v1/summary?by=reporter&domain=" + urllib.parse.quote(d))
            out.append("/api/v1/reports?domain=" + urllib.parse.quote(d))
            out.append("/api/v1/policies?domain=" + urllib.parse.quote(d))
            out.append("/api/v1/findings?domain=" + urllib.parse.quote(d))
        for r in ("Reporter Alpha", "Reporter Gamma", "Reporter Shared", "Reporter Nobody"):
            out.append("/api/v1/summary?by=sending-ip&reporter=" + urllib.parse.quote(r))
            out.append("/api/v1/reports?reporter=" + urllib.parse.quote(r))
        for i in self.ids:
            out.append("/api/v1/reports/%d" % i)
        for rid in ("rid-alpha-1", "rid-gamma-1", "rid-shared-1", "rid-nobody-1"):
            out.append("/api/v1/reports/" + rid)
        return out

    def walk(self, token):
        bodies = {}
        for p in self.paths():
            r = self.daemon.get(p, token)
            self.assertIn(r.status, (200, 404), (p, r))
            bodies[p] = r
        for p in ("/api/v1/quarantine", "/api/v1/quarantine/1", "/api/v1/quarantine/1/raw"):
            r = self.daemon.get(p, token)
            self.assertEqual(r.status, 403, (p, r))
            bodies[p] = r
        r = self.daemon.request("POST", "/api/v1/quarantine/1/reingest",
                                headers={"Authorization": "Bearer " + token})
        self.assertEqual(r.status, 403, r)
        return bodies

    def assertSeesNone(self, bodies, secrets, who):
        for p, r in bodies.items():
            text = r.text.lower()
            if p.startswith("/api/v1/summary"):  # its "filter" repeats the question
                answer = r.json()
                answer.pop("filter")
                text = json.dumps(answer).lower()
            for s in secrets:
                self.assertNotIn(s.lower(), text, "%s sees %r at %s:\n%s" % (who, s, p, r.text))

    def check_tenant(self, token, mine, others, domains):
        bodies = self.walk(token)
        self.assertSeesNone(bodies, others + NOBODY, token)
        theirs = [d for d in ("a.test", "b.test", "c.test", "x.wild.test", "x.test", "(none)")
                  if d not in domains]
        for d in theirs:  # asking for another tenant's domain finds nothing
            r = bodies["/api/v1/summary?domain=" + urllib.parse.quote(d)].json()
            self.assertEqual((r["groups"], r["totals"]["reports"]), ([], 0), d)
            r = bodies["/api/v1/reports?domain=" + urllib.parse.quote(d)].json()
            self.assertEqual((r["reports"], r["total"]), ([], 0), d)
            r = bodies["/api/v1/findings?domain=" + urllib.parse.quote(d)].json()
            self.assertEqual(r["findings"], [], d)
        seen = " ".join(r.text.lower() for r in bodies.values())
        for s in mine:
            self.assertIn(s.lower(), seen, token)
        # the numbers are those of its domains
        api = bodies["/api/v1/summary?by=domain"].json()
        cli = C.summary(self.db, *[a for d in domains for a in ("--domain", d)])
        self.assertEqual(api["totals"], cli["totals"])
        self.assertEqual(sorted(g["policy_domain"] for g in api["groups"]), sorted(domains))
        for by in C.BY_VALUES:
            api = bodies["/api/v1/summary?by=" + by].json()
            cli = C.summary(self.db, "--by", by, *[a for d in domains for a in ("--domain", d)])
            self.assertEqual(api["groups"], cli["groups"], by)
            self.assertEqual(api["totals"], cli["totals"], by)
            # the groups add up to the tenant's totals: no group counts another's policies
            t = api["totals"]
            if by in ("result-type", "sending-ip", "mx-host"):  # failure details only
                self.assertEqual(sum(g["failed_sessions"] for g in api["groups"]),
                                 sum(t["failures"].values()), by)
            else:
                self.assertEqual(sum(g["successful_sessions"] for g in api["groups"]),
                                 t["successful_sessions"], by)
                self.assertEqual(sum(g["failed_sessions"] for g in api["groups"]),
                                 t["failed_sessions"], by)
        listed = bodies["/api/v1/reports"].json()
        cli = C.listing(self.db, *[a for d in domains for a in ("--domain", d)])
        self.assertEqual([r["id"] for r in listed["reports"]], [r["id"] for r in cli["reports"]])
        self.assertEqual(listed["total"], cli["total"])
        self.assertFindingsOf(bodies, domains)
        return bodies

    def assertFindingsOf(self, bodies, domains):
        """The tenant's findings name only its domains, their evidence is reports it sees
        that hold a policy of the finding's domain, and they are the CLI's findings for
        its domains."""
        visible = {r["id"] for r in bodies["/api/v1/reports"].json()["reports"]}
        for path in ("/api/v1/findings", "/api/v1/findings?since=30d"):
            found = bodies[path].json()["findings"]
            self.assertTrue(found, "%s: no findings at all" % path)
            for f in found:
                self.assertIn(f["domain"], domains, (path, f))
                for rid in f["evidence"].get("reports", []):
                    self.assertIn(rid, visible, (path, f))
                    shown = self.daemon.get("/api/v1/reports/%d" % rid, self.token_of(domains))
                    self.assertEqual(shown.status, 200, shown)
                    self.assertIn(f["domain"],
                                  [p["policy_domain"] for p in shown.json()["policies"]], f)
        api = bodies["/api/v1/findings?now=" + C.iso(self.today)].json()
        cli = C.cli_json(["summary", "--db", self.db, "--findings", "--format", "json",
                          "--now", C.iso(self.today)] +
                         [a for d in domains for a in ("--domain", d)])
        self.assertEqual(api["findings"], cli["findings"])

    def token_of(self, domains):
        return TOKEN_A if "a.test" in domains else TOKEN_B

    def assertDkimGroups(self, bodies, want):
        """by=dkim: {verdict (None: not mail): (successful, failed, reports)}."""
        got = {g["dkim"]: (g["successful_sessions"], g["failed_sessions"], g["reports"])
               for g in bodies["/api/v1/summary?by=dkim"].json()["groups"]}
        self.assertEqual(got, want)

    def shared_id(self):
        return [r["id"] for r in C.listing(self.db)["reports"]
                if r["report_id"] == "rid-shared-1"][0]

    def test_tenant_a(self):
        bodies = self.check_tenant(TOKEN_A, ONLY_A, ONLY_B, ["a.test", "b.test"])
        shared = bodies["/api/v1/reports/%d" % self.shared_id()].json()
        self.assertEqual([p["policy_domain"] for p in shared["policies"]], ["a.test"])
        self.assertEqual((shared["successful_sessions"], shared["failed_sessions"]), (10, 1))
        self.assertEqual([p["policy"]["policy-domain"] for p in shared["report"]["policies"]],
                         ["a.test"])
        self.assertEqual(shared["source"], {"kind": "file"})
        self.assertEqual([(f["kind"], f["domain"])
                          for f in bodies["/api/v1/findings"].json()["findings"]],
                         [("certificate-problem", "a.test")])
        # its files, and its policy of the one (unsigned) mail
        self.assertDkimGroups(bodies, {None: (150, 5, 2), "none": (10, 1, 1)})
        listed = [r for r in bodies["/api/v1/reports"].json()["reports"]
                  if r["report_id"] == "rid-shared-1"][0]
        self.assertEqual(listed["policy_domains"], ["a.test"])
        self.assertEqual((listed["successful_sessions"], listed["failed_sessions"]), (10, 1))
        self.assertEqual(listed["source"], {"kind": "file"})
        metrics = bodies["/metrics"].text
        self.assertIn('tlsrptd_sessions_total{policy_domain="a.test",result="successful"} 110',
                      metrics)
        self.assertNotIn("tlsrptd_reports_total", metrics)
        self.assertNotIn("tlsrptd_http_requests_total", metrics)

    def test_tenant_b(self):
        bodies = self.check_tenant(TOKEN_B, ONLY_B, ONLY_A, ["c.test", "x.wild.test"])
        shared = bodies["/api/v1/reports/%d" % self.shared_id()].json()
        self.assertEqual([p["policy_domain"] for p in shared["policies"]], ["c.test"])
        self.assertEqual([p["policy"]["policy-domain"] for p in shared["report"]["policies"]],
                         ["c.test"])
        self.assertEqual((shared["successful_sessions"], shared["failed_sessions"]), (20, 4))
        self.assertEqual([(f["kind"], f["domain"])
                          for f in bodies["/api/v1/findings"].json()["findings"]],
                         [("starttls-not-supported", "c.test")])
        self.assertDkimGroups(bodies, {None: (100, 11, 2), "none": (20, 4, 1)})

    def test_everything_for_star_and_api_token(self):
        full = C.summary(self.db)
        for token in (TOKEN_ALL, API_TOKEN):
            api = self.daemon.get("/api/v1/summary", token).json()
            self.assertEqual(api["totals"], full["totals"])
            self.assertEqual(api["groups"], full["groups"])
            self.assertEqual(self.daemon.get("/api/v1/quarantine", token).json()["total"], 1)
            self.assertEqual(self.daemon.get("/api/v1/quarantine/1/raw", token).status, 200)
            shared = self.daemon.get("/api/v1/reports/%d" % self.shared_id(), token).json()
            self.assertEqual(len(shared["report"]["policies"]), 2)
            self.assertEqual(shared["source"]["domain"], "c.test")
            self.assertIn("tlsrptd_reports_total", self.daemon.get("/metrics", token).text)
            found = self.daemon.get("/api/v1/findings", token).json()["findings"]
            self.assertEqual(sorted(f["domain"] for f in found), ["a.test", "c.test", "x.test"])
            for by in C.BY_VALUES:
                api = self.daemon.get("/api/v1/summary?by=" + by, token).json()
                self.assertEqual(api["groups"], C.summary(self.db, "--by", by)["groups"], by)

    def test_access(self):
        self.assertEqual(self.daemon.get("/api/v1/summary").status, 401)
        self.assertEqual(self.daemon.get("/api/v1/summary", TOKEN_A + "x").status, 401)
        self.assertEqual(self.daemon.get("/metrics", "not-a-token-at-all").status, 401)
        new_a = "tenant-A-token-rotated-99"
        with open(self.tokens, "w") as f:
            f.write("%s a.test\n%s c.test\n" % (new_a, TOKEN_B))
        self.daemon.signal()
        self.daemon.wait_log("own domains and tokens reloaded")
        self.assertEqual(self.daemon.get("/api/v1/summary", TOKEN_A).status, 401)
        self.assertEqual(self.daemon.get("/api/v1/summary", TOKEN_ALL).status, 401)
        r = self.daemon.get("/api/v1/summary", new_a)
        self.assertEqual([g["policy_domain"] for g in r.json()["groups"]], ["a.test"])
        r = self.daemon.get("/api/v1/summary", TOKEN_B)
        self.assertEqual([g["policy_domain"] for g in r.json()["groups"]], ["c.test"])
        self.assertEqual(self.daemon.get("/api/v1/summary", API_TOKEN).status, 200)


if __name__ == "__main__":
    T.main()
