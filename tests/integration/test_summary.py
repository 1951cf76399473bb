#!/usr/bin/env python3
"""`tlsrptd summary` and `tlsrptd show` (the summary JSON of the README), driven from outside with the
REAL binary against a real SQLite database holding the shared corpus.

The numbers a summary must print are computed by THIS test from the corpus files
themselves (the JSON files, the .json.gz files decompressed, the report part of the
.eml files extracted with Python's email package), never from the database under test:
the stored reports are the accepted files of EXPECTED.tsv minus the duplicates of
EXPECTED-TOTALS.json. The test checks its own reading of the corpus against
EXPECTED.tsv (per file) and EXPECTED-TOTALS.json (per domain) before relying on it.

  Totals      JSON == EXPECTED-TOTALS.json (projected on its keys); shape of §6
  Formats     table and CSV agree with JSON, for every --by dimension
  Filters     --domain (one, two, '(none)', unnormalised, unknown), --since/--until
              windows ([since, until), dates, date-times with offsets), combined
  Dimensions  --by day|reporter|policy-type|result-type|sending-ip|mx-host: every
              group against the corpus, sums against the totals, order
  Top         --top N: the N groups with the most failed sessions
  Reports     --reports lists exactly the reports behind the numbers (JSON, text, --limit)
  Relative    --since 30d / 2w / 36h / 45m on reports the test dates relative to now
  Operator    --reports names a domain once per report, whole reporter names, as CSV;
              a domain without reports is named; --since '2026-11-01 00:00[+02:00]'
  Arguments   bad arguments: exit 64 and a message naming the option
  Show        show ID / REPORT-ID (text and JSON): the report JSON as in the file,
              source, diagnostics; unknown key 65; an ambiguous report-id 64

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_summary.py [-k NAME]
"""
import calendar
import csv
import email
import email.policy
import gzip
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

CORPUS = None
ORACLE = None

DIMS = ("domain", "day", "result-type", "reporter", "sending-ip", "mx-host", "policy-type")
FIELD = {"domain": "policy_domain", "day": "day", "result-type": "result_type",
         "reporter": "reporter", "sending-ip": "sending_ip", "mx-host": "mx_host",
         "policy-type": "policy_type"}
FAILURE_DIMS = ("result-type", "sending-ip", "mx-host")  # know failed sessions only
NATURAL_ORDER = ("domain", "day")  # unranked: by key; the others by failed sessions
PROJECTED = ("successful_sessions", "failed_sessions", "failures", "reports", "reporters")


def setUpModule():
    global CORPUS, ORACLE
    CORPUS = T.corpus_dir()  # raises (the whole module errors) when the corpus is missing
    ORACLE = Oracle()


# ---- the corpus, read by the test ------------------------------------------------------------

_DT_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?"
                    r"([Zz]|[+-]\d\d:\d\d)?$")


def parse_datetime(s):
    """RFC 3339 -> Unix seconds. A date-time without a zone (real Microsoft reports)
    is taken as UTC, as tlsrptd does (it warns about it)."""
    m = _DT_RE.match(s)
    if not m:
        raise AssertionError("corpus date-time %r is not RFC 3339" % s)
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    t = calendar.timegm((y, mo, d, h, mi, min(sec, 59), 0, 0, 0))
    zone = m.group(8)
    if zone and zone not in "Zz":
        off = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60
        t -= off if zone[0] == "+" else -off
    return t


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def day_of(t):
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def report_json_bytes(path):
    """The report JSON a corpus file carries: the file itself, gunzipped, or the
    report part of a mail (application/tlsrpt+gzip, +json, or plain tlsrpt)."""
    data = T.read_bytes(path)
    if path.endswith(".json"):
        return data
    if path.endswith(".json.gz"):
        return gzip.decompress(data)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if "tlsrpt" in ctype or ctype in ("application/json", "application/gzip"):
            body = part.get_payload(decode=True)
            return gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    raise AssertionError("no report part in %s" % path)


def norm_domain(d):
    if d is None or d == "":
        return None
    d = d.lower()
    return d[:-1] if d.endswith(".") and len(d) > 1 else d


class Report:
    """One stored report as the corpus file says it."""

    def __init__(self, rel, doc):
        self.file, self.doc = rel, doc
        self.org = doc["organization-name"]
        self.report_id = doc["report-id"]
        self.start_datetime = doc["date-range"]["start-datetime"]
        self.start = parse_datetime(self.start_datetime)
        self.policies = []
        for p in doc["policies"]:
            pol, summ = p["policy"], p["summary"]
            details = []
            for f in p.get("failure-details") or []:
                # "receiving-mx-host-name" (a sender's typo, in the corpus) is read as
                # receiving-mx-hostname by tlsrptd
                mx = f.get("receiving-mx-hostname", f.get("receiving-mx-host-name"))
                details.append({"result_type": f["result-type"],
                                "count": f["failed-session-count"],
                                "sending_ip": f.get("sending-mta-ip") or None,
                                "mx_host": mx or None})
            self.policies.append({"type": pol["policy-type"],
                                  "domain": norm_domain(pol.get("policy-domain")),
                                  "ok": summ.get("total-successful-session-count", 0),
                                  "failed": summ.get("total-failure-session-count", 0),
                                  "details": details})

    @property
    def key(self):
        return (self.org, self.report_id)

    def sessions(self):
        return (sum(p["ok"] for p in self.policies), sum(p["failed"] for p in self.policies))

    def failures(self):
        out = {}
        for p in self.policies:
            for f in p["details"]:
                out[f["result_type"]] = out.get(f["result_type"], 0) + f["count"]
        return out


class Oracle:
    """The stored reports of the corpus and what a summary over them must say."""

    def __init__(self):
        rows = T.load_expected()
        dups = set(T.load_totals()["duplicates"])
        self.rows = {r["file"]: r for r in rows}
        self.reports = []
        for r in sorted(rows, key=lambda r: os.fsencode(r["file"])):
            if r["accepted"] == "yes" and r["file"] not in dups:
                path = os.path.join(CORPUS, r["file"])
                self.reports.append(Report(r["file"], json.loads(report_json_bytes(path))))
        self.by_file = {r.file: r for r in self.reports}

    def select(self, domains=None, since=None, until=None):
        """(report, policy) pairs a filter takes: reports whose start is in
        [since, until), their policies in the domains (None = every domain)."""
        out = []
        for r in self.reports:
            if since is not None and r.start < since:
                continue
            if until is not None and r.start >= until:
                continue
            for p in r.policies:
                if domains is None or p["domain"] in domains:
                    out.append((r, p))
        return out

    def summary(self, by="domain", domains=None, since=None, until=None):
        """{"groups": {key: group}, "totals": group}; a group holds PROJECTED."""
        groups, totals = {}, self._new(False)

        def add(g, r, ok, failed, details):
            if ok is not None:
                g["successful_sessions"] += ok
            g["failed_sessions"] += failed
            for f in details:
                g["failures"][f["result_type"]] = g["failures"].get(f["result_type"], 0) + \
                    f["count"]
            g["_reports"].add(id(r))
            g["_reporters"].add(r.org)

        for r, p in self.select(domains, since, until):
            add(totals, r, p["ok"], p["failed"], p["details"])
            if by in FAILURE_DIMS:
                for f in p["details"]:
                    key = {"result-type": f["result_type"], "sending-ip": f["sending_ip"],
                           "mx-host": f["mx_host"]}[by]
                    g = groups.setdefault(key, self._new(True))
                    add(g, r, None, f["count"], [f])
            else:
                key = {"domain": p["domain"], "day": day_of(r.start), "reporter": r.org,
                       "policy-type": p["type"]}[by]
                add(groups.setdefault(key, self._new(False)), r, p["ok"], p["failed"],
                    p["details"])
        for g in list(groups.values()) + [totals]:
            g["reports"] = len(g.pop("_reports"))
            g["reporters"] = len(g.pop("_reporters"))
        return {"groups": groups, "totals": totals}

    def report(self, key):
        for r in self.reports:
            if r.key == key:
                return r
        raise AssertionError("listed report %r is not a stored corpus report" % (key,))

    def contributing(self, domains=None, since=None, until=None):
        return {r.key for r, _ in self.select(domains, since, until)}

    @staticmethod
    def _new(failure_only):
        return {"successful_sessions": None if failure_only else 0, "failed_sessions": 0,
                "failures": {}, "_reports": set(), "_reporters": set()}


def project(g):
    return {k: g.get(k, "<missing>") for k in PROJECTED}


def groups_by_key(js):
    field = FIELD[js["by"]]
    out = {}
    for g in js["groups"]:
        if field not in g:
            raise AssertionError("group without its key %r: %r" % (field, g))
        if g[field] in out:
            raise AssertionError("group %r twice" % g[field])
        out[g[field]] = g
    return out


def rate(g):
    ok, bad = g["successful_sessions"], g["failed_sessions"]
    if ok is None or ok + bad == 0:
        return None
    return bad / (ok + bad)


# ---- parsing the table and the CSV -----------------------------------------------------------

_ROW_RE = re.compile(r"^(?P<label>\S.*?)\s+(?P<ok>\d+|-)\s+(?P<failed>\d+)\s+(?P<rate>\S+)"
                     r"\s+(?P<reports>\d+)\s+(?P<reporters>\d+)$")
_FAIL_RE = re.compile(r"^\s+(?P<type>\S+)\s+(?P<n>\d+)  (?P<hint>\S.*)$")
_HINT_RE = re.compile(r"^\s+(?P<hint>\S.*)$")


def parse_table(text, by):
    """summary's table -> ({label: row}, totals_row). A row: successful_sessions (None
    for '-'), failed_sessions, rate (text), reports, reporters, failures, hints; with
    --by result-type a group row is followed by its hint line instead of failures."""
    lines = text.splitlines()
    head = FIELD[by].replace("_", " ").upper()
    if not lines or not lines[0].startswith(head + " "):
        raise AssertionError("table header is not %r: %r" % (head, text[:200]))
    for col in ("SUCCESSFUL", "FAILED", "FAIL RATE", "REPORTS", "REPORTERS"):
        if col not in lines[0]:
            raise AssertionError("table header lacks %s: %r" % (col, lines[0]))
    rows, totals, current, in_totals = {}, None, None, False
    for ln in lines[1:]:
        if not ln.strip():
            continue
        if set(ln.strip()) == {"-"}:
            in_totals = True
            continue
        m = _ROW_RE.match(ln)
        if m and not ln[0].isspace():
            current = {"successful_sessions": None if m.group("ok") == "-" else
                       int(m.group("ok")), "failed_sessions": int(m.group("failed")),
                       "rate": m.group("rate"), "reports": int(m.group("reports")),
                       "reporters": int(m.group("reporters")), "failures": {}, "hints": {},
                       "hint": None}
            if in_totals:
                if m.group("label") != "TOTAL" or totals is not None:
                    raise AssertionError("unexpected line after the rule: %r" % ln)
                totals = current
            else:
                if m.group("label") in rows:
                    raise AssertionError("group %r twice in the table" % m.group("label"))
                rows[m.group("label")] = current
            continue
        if current is None:
            raise AssertionError("unparseable table line %r" % ln)
        m = _FAIL_RE.match(ln)
        if m and (by != "result-type" or in_totals):
            current["failures"][m.group("type")] = int(m.group("n"))
            current["hints"][m.group("type")] = m.group("hint")
            continue
        m = _HINT_RE.match(ln)
        if m and by == "result-type" and not in_totals and current["hint"] is None:
            current["hint"] = m.group("hint")
            continue
        raise AssertionError("unparseable table line %r" % ln)
    if totals is None:
        raise AssertionError("no TOTAL line in %r" % text[-500:])
    return rows, totals


def table_rate(r):
    return "-" if r is None else "%.2f%%" % (100.0 * r)


# ---- the corpus database, once per class -----------------------------------------------------


class CorpusCase(T.TlsrptdTestCase):
    """All of real/ in one database (ingested in the corpus, so names print as real/...)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ctmp = tempfile.mkdtemp(prefix="tlsrptd-it-summary-")
        cls.cdb = T.new_db(cls.ctmp, "corpus")
        res = T.run(["ingest", "--db", cls.cdb, "--no-progress", "real"], cwd=CORPUS)
        if res.rc not in (T.EX_OK, T.EX_DATAERR):
            raise AssertionError("ingesting the corpus failed:\n%r" % res)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.ctmp, True)
        super().tearDownClass()

    def cli(self, *args, db=None):
        res = T.run(["summary", "--db", db or self.cdb] + [str(a) for a in args])
        self.assertExit(res, 0)
        self.assertEqual(res.err, "", res)
        return res

    def js(self, *args, db=None):
        res = self.cli(*(list(args) + ["--format", "json"]), db=db)
        try:
            return json.loads(res.out)
        except ValueError:
            self.fail("summary --format json is not JSON:\n%r" % res)

    def assertSummary(self, got, exp, what=""):
        """got (summary JSON) holds exactly the expected groups and totals."""
        gg = groups_by_key(got)
        self.assertEqual(sorted(gg, key=lambda k: (k is None, k or "")),
                         sorted(exp["groups"], key=lambda k: (k is None, k or "")),
                         "groups differ %s" % what)
        for key, g in exp["groups"].items():
            self.assertEqual(project(gg[key]), g, "group %r %s" % (key, what))
            self.assertRate(gg[key])
        self.assertEqual(project(got["totals"]), exp["totals"], "totals %s" % what)
        self.assertRate(got["totals"])

    def assertRate(self, g):
        self.assertIn("failure_rate", g)
        want = rate(g)
        if want is None:
            self.assertIsNone(g["failure_rate"], g)
        else:
            self.assertAlmostEqual(g["failure_rate"], want, places=12, msg=repr(g))

    def assertOrder(self, js):
        by, field = js["by"], FIELD[js["by"]]
        keys = [g[field] for g in js["groups"]]
        if by in NATURAL_ORDER and not js["filter"].get("top"):
            want = sorted(keys, key=lambda k: (k is None, k or ""))
        else:
            want = [g[field] for g in sorted(js["groups"], key=lambda g: (
                -g["failed_sessions"], g[field] is None, g[field] or ""))]
        self.assertEqual(keys, want, "groups of --by %s out of order" % by)


class CorpusSummary(CorpusCase):

    def test_oracle_agrees_with_expected(self):
        """The test's own reading of the corpus files agrees with EXPECTED.tsv, file
        by file, and with EXPECTED-TOTALS.json, domain by domain."""
        self.assertEqual(len(ORACLE.reports), T.load_totals()["totals"]["reports"])
        for r in ORACLE.reports:
            with self.subTest(file=r.file):
                row = ORACLE.rows[r.file]
                self.assertEqual(r.key, (row["org"], row["report_id"]))
                self.assertEqual(len(r.policies), int(row["policies"]))
                self.assertEqual(r.sessions(), (int(row["success"]), int(row["failure"])))
                self.assertEqual(r.failures(), T.parse_failures(row["failures_by_type"]))
        exp = ORACLE.summary()
        totals = T.load_totals()
        want = {d["policy_domain"]: d for d in totals["domains"]}
        self.assertEqual(set(exp["groups"]), set(want))
        for dom, d in want.items():
            self.assertEqual({k: exp["groups"][dom][k] for k in d if k != "policy_domain"},
                             {k: v for k, v in d.items() if k != "policy_domain"}, dom)
        self.assertEqual({k: exp["totals"][k] for k in totals["totals"]}, totals["totals"])

    def test_json_equals_expected_totals(self):
        expected = T.load_totals()
        got = self.js()
        gd = {d["policy_domain"]: d for d in got["domains"]}
        self.assertEqual(len(gd), len(got["domains"]), "a policy domain appears twice")
        self.assertEqual(set(gd), {d["policy_domain"] for d in expected["domains"]})
        for exp in expected["domains"]:
            with self.subTest(policy_domain=exp["policy_domain"]):
                proj = {k: gd[exp["policy_domain"]].get(k, "<missing>") for k in exp}
                self.assertEqual(proj, exp)
        self.assertEqual({k: got["totals"].get(k, "<missing>") for k in expected["totals"]},
                         expected["totals"])
        # and every other key against the test's own reading of the corpus
        self.assertSummary(got, ORACLE.summary())

    def test_json_shape(self):
        """the summary JSON of the README: domains + totals; here also by, filter, groups, failure_rate,
        reporters; domains only for --by domain; a policy without domain is null."""
        got = self.js()
        for key in ("by", "filter", "groups", "domains", "totals"):
            self.assertIn(key, got)
        self.assertEqual(got["by"], "domain")
        self.assertEqual(got["domains"], got["groups"])
        self.assertEqual(got["filter"], {"by": "domain", "domains": [], "since": None,
                                         "until": None})
        self.assertIn(None, [d["policy_domain"] for d in got["domains"]])
        for g in got["domains"] + [got["totals"]]:
            for key in PROJECTED + ("failure_rate",):
                self.assertIn(key, g)
            for t, n in g["failures"].items():
                self.assertIsInstance(n, int, (t, n))
        self.assertOrder(got)
        for by in DIMS[1:]:
            with self.subTest(by=by):
                js = self.js("--by", by)
                self.assertEqual(js["by"], by)
                self.assertEqual(js["filter"]["by"], by)
                self.assertNotIn("domains", js)
                for g in js["groups"]:
                    self.assertIn(FIELD[by], g)
                    if by in FAILURE_DIMS:
                        self.assertIsNone(g["successful_sessions"], g)
                        self.assertIsNone(g["failure_rate"], g)

    def test_table_and_csv_agree_with_json(self):
        for by in DIMS:
            with self.subTest(by=by):
                js = self.js("--by", by)
                field = FIELD[by]
                none = "(none)" if by == "domain" else "(unknown)"
                table = self.cli("--by", by).out
                self.assertEqual(self.cli("--by", by, "--format", "table").out, table)
                rows, totals = parse_table(table, by)
                self.assertEqual(list(rows), [none if g[field] is None else g[field]
                                              for g in js["groups"]], "table order")
                for g in js["groups"]:
                    row = rows[none if g[field] is None else g[field]]
                    self.assertEqual((row["successful_sessions"], row["failed_sessions"],
                                      row["reports"], row["reporters"]),
                                     (g["successful_sessions"], g["failed_sessions"],
                                      g["reports"], g["reporters"]), g)
                    self.assertEqual(row["rate"], table_rate(g["failure_rate"]), g)
                    if by == "result-type":
                        self.assertTrue(row["hint"], g)
                        self.assertEqual(row["failures"], {})
                    else:
                        self.assertEqual(row["failures"], g["failures"], g)
                t = js["totals"]
                self.assertEqual((totals["successful_sessions"], totals["failed_sessions"],
                                  totals["reports"], totals["reporters"], totals["failures"]),
                                 (t["successful_sessions"], t["failed_sessions"], t["reports"],
                                  t["reporters"], t["failures"]), "TOTAL")
                self.assertEqual(totals["rate"], table_rate(t["failure_rate"]))

                text = self.cli("--by", by, "--format", "csv").out
                self.assertTrue(text.endswith("\r\n"), "CSV lines end in CRLF")
                recs = list(csv.reader(io.StringIO(text, newline="")))
                self.assertEqual(recs[0], [field, "successful_sessions", "failed_sessions",
                                           "failure_rate", "reports", "reporters", "failures"])
                self.assertEqual(len(recs) - 1, len(js["groups"]), "one CSV row per group")
                for rec, g in zip(recs[1:], js["groups"]):
                    self.assertEqual(len(rec), 7, rec)
                    self.assertEqual(rec[0], g[field] or "")
                    self.assertEqual(rec[1], "" if g["successful_sessions"] is None
                                     else str(g["successful_sessions"]))
                    self.assertEqual(int(rec[2]), g["failed_sessions"])
                    if g["failure_rate"] is None:
                        self.assertEqual(rec[3], "")
                    else:
                        self.assertAlmostEqual(float(rec[3]), g["failure_rate"], places=6)
                    self.assertEqual((int(rec[4]), int(rec[5])), (g["reports"], g["reporters"]))
                    self.assertEqual(T.parse_failures(rec[6]), g["failures"])

    def test_table_explains_each_result_type(self):
        rows, totals = parse_table(self.cli("--by", "result-type").out, "result-type")
        self.assertIn("renew", rows["certificate-expired"]["hint"])
        self.assertIn("STARTTLS", rows["starttls-not-supported"]["hint"])
        self.assertIn("mta-sts", rows["sts-policy-fetch-error"]["hint"])
        self.assertIn("not an RFC 8460 result type", rows["Testing"]["hint"])
        for t, hint in totals["hints"].items():
            self.assertEqual(hint, rows[t]["hint"], t)

    def test_by_result_type_equals_totals_failures(self):
        js = self.js("--by", "result-type")
        per_type = {g["result_type"]: g["failed_sessions"] for g in js["groups"]}
        self.assertEqual(per_type, js["totals"]["failures"])
        self.assertEqual(per_type, T.load_totals()["totals"]["failures"])
        for g in js["groups"]:
            self.assertEqual(g["failures"], {g["result_type"]: g["failed_sessions"]})
        self.assertSummary(js, ORACLE.summary("result-type"))
        self.assertOrder(js)

    def test_domain_filters(self):
        cases = [
            (["example.com"], {"example.com"}),
            (["krvtz.net", "xn--gpher-jua.test"], {"krvtz.net", "xn--gpher-jua.test"}),
            (["(none)"], {None}),
            (["(none)", "company-y.example"], {None, "company-y.example"}),
            (["EXAMPLE.COM."], {"example.com"}),  # normalised like stored domains
            (["no-such-domain.example"], {"no-such-domain.example"}),
        ]
        for args, domains in cases:
            with self.subTest(domains=args):
                argv = []
                for d in args:
                    argv += ["--domain", d]
                exp = ORACLE.summary(domains=domains)
                if domains != {"no-such-domain.example"}:
                    self.assertTrue(exp["groups"], "a filter that selects nothing")
                got = self.js(*argv)
                self.assertSummary(got, exp, "for --domain %s" % args)
                self.assertEqual(sorted(got["filter"]["domains"], key=lambda k: (k is None, k)),
                                 sorted(domains, key=lambda k: (k is None, k)))
                # and with another dimension the totals stay the filter's
                got = self.js(*(argv + ["--by", "reporter"]))
                self.assertSummary(got, ORACLE.summary("reporter", domains=domains))

    def windows(self):
        """(argv, since, until) windows with edges ON report start times (so [since,
        until) is tested at both ends), in several spellings."""
        starts = sorted({r.start for r in ORACLE.reports})
        self.assertGreater(len(starts), 8, "too few distinct start times in the corpus")
        a, b = starts[len(starts) // 4], starts[3 * len(starts) // 4]
        self.assertEqual(a % 86400, 0, "corpus start times are expected at midnight UTC")
        self.assertEqual(b % 86400, 0)
        off = time.strftime("%Y-%m-%dT%H:%M:%S+02:00", time.gmtime(b + 7200))
        # the edges matter: reports start exactly there
        self.assertNotEqual(ORACLE.contributing(since=a), ORACLE.contributing(since=a + 1))
        self.assertNotEqual(ORACLE.contributing(until=b), ORACLE.contributing(until=b + 1))
        return [
            (["--since", day_of(a)], a, None),
            (["--until", day_of(b)], None, b),
            (["--since", day_of(a), "--until", day_of(b)], a, b),
            (["--since", iso(a)], a, None),
            (["--since", iso(a + 1)], a + 1, None),  # excludes the reports starting at a
            (["--until", iso(b + 1)], None, b + 1),  # includes the reports starting at b
            (["--since", iso(a), "--until", off], a, b),  # +02:00 = b in UTC
            (["--since", time.strftime("%Y-%m-%dT%H:%M:%S-01:00", time.gmtime(a - 3600)),
              "--until", day_of(b)], a, b),  # -01:00 = a in UTC
            (["--since", day_of(a), "--until", day_of(a + 86400)], a, a + 86400),  # one day
        ]

    def test_since_until_windows(self):
        total = len(ORACLE.reports)
        for argv, since, until in self.windows():
            with self.subTest(window=argv):
                exp = ORACLE.summary(since=since, until=until)
                self.assertTrue(0 < exp["totals"]["reports"] < total,
                                "window %s selects all or nothing" % argv)
                got = self.js(*argv)
                self.assertSummary(got, exp, "for %s" % argv)
                self.assertEqual(got["filter"]["since"], None if since is None else iso(since))
                self.assertEqual(got["filter"]["until"], None if until is None else iso(until))
                self.assertEqual({(r["organization_name"], r["report_id"])
                                  for r in self.reports_json(*argv)["reports"]},
                                 ORACLE.contributing(since=since, until=until))

    def test_domain_and_window_combined(self):
        starts = sorted({r.start for r in ORACLE.reports})
        a, b = starts[len(starts) // 4], starts[3 * len(starts) // 4]
        for domains in (["example.com"], ["example.com", "krvtz.net"], ["(none)"]):
            for by in ("domain", "day", "result-type"):
                with self.subTest(domains=domains, by=by):
                    argv = ["--since", day_of(a), "--until", iso(b), "--by", by]
                    for d in domains:
                        argv += ["--domain", d]
                    dset = {None if d == "(none)" else d for d in domains}
                    self.assertSummary(self.js(*argv),
                                       ORACLE.summary(by, domains=dset, since=a, until=b))

    def reports_json(self, *args):
        return self.js("--reports", *args)

    def test_reports_lists_contributing_reports(self):
        starts = sorted({r.start for r in ORACLE.reports})
        a = starts[len(starts) // 3]
        cases = [([], None, None), (["--domain", "example.com"], {"example.com"}, None),
                 (["--domain", "(none)"], {None}, None),
                 (["--domain", "krvtz.net", "--domain", "random.net"],
                  {"krvtz.net", "random.net"}, None),
                 (["--domain", "example.com", "--since", day_of(a)], {"example.com"}, a)]
        for argv, domains, since in cases:
            with self.subTest(filter=argv):
                got = self.reports_json(*argv)
                want = ORACLE.contributing(domains, since)
                keys = [(r["organization_name"], r["report_id"]) for r in got["reports"]]
                self.assertEqual(len(keys), len(set(keys)), "a report listed twice")
                self.assertEqual(set(keys), want)
                self.assertEqual(got["total"], len(want))
                # every number the summary prints comes from these reports
                self.assertEqual(self.js(*argv)["totals"]["reports"], len(want))
                # in start time order, each with its own numbers
                listed = [ORACLE.report(k) for k in keys]
                self.assertEqual([r.start for r in listed], sorted(r.start for r in listed))
                for item, r in zip(got["reports"], listed):
                    self.assertEqual((item["successful_sessions"], item["failed_sessions"]),
                                     r.sessions(), r.file)
                    self.assertEqual(item["policy_domains"], [p["domain"] for p in r.policies])
                    self.assertEqual(item["start_datetime"], r.start_datetime)
                    self.assertEqual(item["source"]["kind"], "file")
                    self.assertEqual(item["source"]["name"], r.file)
                    self.assertEqual(item["warnings"], int(re.search(
                        r"(\d+) warnings?", ORACLE.rows[r.file]["note"]).group(1)), r.file)
                # the text listing: one line per report, then the count
                text = self.cli("--reports", *argv).out.splitlines()
                self.assertTrue(text[0].split()[:2] == ["ID", "START"], text[0])
                self.assertEqual(text[-1], "%d report%s" % (len(want),
                                                            "" if len(want) == 1 else "s"))
                self.assertEqual([int(ln.split()[0]) for ln in text[1:-1]],
                                 [r["id"] for r in got["reports"]])
        # --limit: the first N
        full = self.reports_json()["reports"]
        lim = self.reports_json("--limit", "5")
        self.assertEqual(lim["reports"], full[:5])
        self.assertEqual(lim["total"], len(full))

    def check_dimension(self, by, session_dim):
        js = self.js("--by", by)
        t = js["totals"]
        self.assertSummary(js, ORACLE.summary(by))
        self.assertOrder(js)
        groups = js["groups"]
        if session_dim:
            # sessions dimensions split the senders' summaries: the sums are the totals
            self.assertEqual(sum(g["successful_sessions"] for g in groups),
                             t["successful_sessions"])
            self.assertEqual(sum(g["failed_sessions"] for g in groups), t["failed_sessions"])
        else:
            # failure dimensions split failure details: failed sums = sum of the details
            self.assertEqual(sum(g["failed_sessions"] for g in groups),
                             sum(t["failures"].values()))
        merged = {}
        for g in groups:
            for k, n in g["failures"].items():
                merged[k] = merged.get(k, 0) + n
        self.assertEqual(merged, t["failures"])
        return {g[FIELD[by]]: g for g in groups}

    def test_by_day(self):
        g = self.check_dimension("day", True)
        # each report has one start day and one reporter: the groups partition the reports
        self.assertEqual(sum(x["reports"] for x in g.values()),
                         T.load_totals()["totals"]["reports"])
        # spot check: the RFC 8460 example day, counted once (its copies are duplicates)
        # plus the punycode variant of the same day
        rfc = [r for r in ORACLE.reports if day_of(r.start) == "2016-04-01"]
        self.assertEqual(len(rfc), 2)
        self.assertEqual((g["2016-04-01"]["successful_sessions"],
                          g["2016-04-01"]["failed_sessions"], g["2016-04-01"]["reports"]),
                         (sum(r.sessions()[0] for r in rfc), sum(r.sessions()[1] for r in rfc),
                          2))
        for day in g:
            self.assertRegex(day, r"^\d{4}-\d\d-\d\d$")

    def test_by_reporter(self):
        g = self.check_dimension("reporter", True)
        # each report has one start day and one reporter: the groups partition the reports
        self.assertEqual(sum(x["reports"] for x in g.values()),
                         T.load_totals()["totals"]["reports"])
        ms = [r for r in ORACLE.reports if r.org == "Microsoft Corporation"]
        self.assertGreater(len(ms), 3)
        self.assertEqual((g["Microsoft Corporation"]["successful_sessions"],
                          g["Microsoft Corporation"]["failed_sessions"],
                          g["Microsoft Corporation"]["reports"],
                          g["Microsoft Corporation"]["reporters"]),
                         (sum(r.sessions()[0] for r in ms), sum(r.sessions()[1] for r in ms),
                          len(ms), 1))
        for name, x in g.items():
            self.assertEqual(x["reporters"], 1, name)

    def test_by_policy_type(self):
        g = self.check_dimension("policy-type", True)
        self.assertEqual(set(g), {"sts", "tlsa", "no-policy-found"})
        tlsa = [(r, p) for r in ORACLE.reports for p in r.policies if p["type"] == "tlsa"]
        self.assertEqual((g["tlsa"]["successful_sessions"], g["tlsa"]["failed_sessions"],
                          g["tlsa"]["reports"]),
                         (sum(p["ok"] for _, p in tlsa), sum(p["failed"] for _, p in tlsa),
                          len({r.key for r, _ in tlsa})))
        # a report with policies of two types counts in both groups
        self.assertGreaterEqual(sum(x["reports"] for x in g.values()),
                                T.load_totals()["totals"]["reports"])

    def test_by_sending_ip(self):
        g = self.check_dimension("sending-ip", False)
        # spot check: 198.51.100.62 (validation-failure in the RFC example and its
        # punycode variant)
        self.assertEqual(g["198.51.100.62"]["failures"], {"validation-failure": 6})
        self.assertEqual(g["198.51.100.62"]["reports"], 2)
        # details without a sending-mta-ip are one group with a null key
        self.assertIn(None, g)
        nulls = [f for r in ORACLE.reports for p in r.policies for f in p["details"]
                 if f["sending_ip"] is None]
        self.assertEqual(g[None]["failed_sessions"], sum(f["count"] for f in nulls))

    def test_by_mx_host(self):
        g = self.check_dimension("mx-host", False)
        self.assertEqual(g["mx1.mail.company-y.example"]["failures"],
                         {"certificate-expired": 200})
        self.assertEqual(g["mx1.mail.company-y.example"]["reports"], 2)
        self.assertEqual(g["mx1.mail.company-y.example"]["reporters"], 1)
        # the sender's typo "receiving-mx-host-name" is read as the MX host name
        self.assertEqual(g["mta-sts.test.mailflow.ovh"]["failures"],
                         {"certificate-host-mismatch": 2})

    def test_top(self):
        for by in ("domain", "reporter", "result-type", "day"):
            with self.subTest(by=by):
                full = self.js("--by", by)
                top = self.js("--by", by, "--top", 2)
                field = FIELD[by]
                ranked = sorted(full["groups"], key=lambda g: (-g["failed_sessions"],
                                                               g[field] is None, g[field] or ""))
                self.assertGreater(ranked[1]["failed_sessions"], ranked[2]["failed_sessions"],
                                   "the test wants no tie at rank 2")
                self.assertEqual(top["groups"], ranked[:2])
                self.assertEqual(top["filter"]["top"], 2)
                self.assertEqual(top["totals"], full["totals"], "totals are the filter's")
                self.assertOrder(top)
                rows, _ = parse_table(self.cli("--by", by, "--top", 2).out, by)
                self.assertEqual(list(rows), [g[field] or "(none)" for g in ranked[:2]])
                recs = list(csv.reader(io.StringIO(
                    self.cli("--by", by, "--top", 2, "--format", "csv").out, newline="")))
                self.assertEqual([r[0] for r in recs[1:]], [g[field] or "" for g in ranked[:2]])
        # by domain the two with the most failed sessions are known from the corpus
        exp = ORACLE.summary()
        want = sorted(exp["groups"], key=lambda k: -exp["groups"][k]["failed_sessions"])[:2]
        self.assertEqual([g["policy_domain"] for g in self.js("--top", 2)["groups"]], want)
        # more than there are: all, ranked
        many = self.js("--top", 1000)
        self.assertEqual(len(many["groups"]), len(exp["groups"]))
        self.assertOrder(many)


# ---- relative times, on reports the test dates itself ----------------------------------------


class RelativeTimes(T.TlsrptdTestCase):
    """--since/--until 30d, 2w, 36h, 45m: reports written with start times relative to
    now; each carries a distinct number of successful sessions, so the totals tell
    exactly which were counted."""

    AGES = {"m20": 20 * 60, "d1": 86400, "d10": 10 * 86400, "d29": 29 * 86400,
            "d31": 31 * 86400, "d60": 60 * 86400}
    OK = {"m20": 1, "d1": 10, "d10": 100, "d29": 1000, "d31": 10000, "d60": 100000}

    def setUp(self):
        super().setUp()
        now = int(time.time())
        for name, age in self.AGES.items():
            start = now - age
            r = T.sample_report()
            r["report-id"] = "relative-%s" % name
            r["date-range"] = {"start-datetime": iso(start),
                               "end-datetime": iso(start + min(age, 86400) - 1)}
            r["policies"] = [{"policy": {"policy-type": "sts", "policy-domain": "rel.example",
                                         "policy-string": ["version: STSv1", "mode: enforce",
                                                           "mx: mx.rel.example",
                                                           "max_age: 86400"],
                                         "mx-host": ["mx.rel.example"]},
                              "summary": {"total-successful-session-count": self.OK[name],
                                          "total-failure-session-count": 0}}]
            self.write("in/%s.json" % name, json.dumps(r))
        res = self.ingest(self.path("in"))
        self.assertExit(res, 0)
        self.assertEqual(len(T.stored_reports(self.db)), len(self.AGES))

    def counted(self, *args):
        res = T.run(["summary", "--db", self.db, "--format", "json"] + list(args))
        self.assertExit(res, 0)
        js = json.loads(res.out)
        ok = js["totals"]["successful_sessions"]
        names = {n for n, v in self.OK.items() if ok // v % 10 == 1}
        self.assertEqual(sum(self.OK[n] for n in names), ok, js)
        self.assertEqual(js["totals"]["reports"], len(names))
        rep = json.loads(T.run(["summary", "--db", self.db, "--format", "json", "--reports"] +
                               list(args)).out)
        self.assertEqual({r["report_id"] for r in rep["reports"]},
                         {"relative-%s" % n for n in names})
        return names

    def test_relative_since_and_until(self):
        self.assertEqual(self.counted(), set(self.AGES))
        self.assertEqual(self.counted("--since", "30d"), {"m20", "d1", "d10", "d29"})
        self.assertEqual(self.counted("--since", "2w"), {"m20", "d1", "d10"})
        self.assertEqual(self.counted("--since", "36h"), {"m20", "d1"})
        self.assertEqual(self.counted("--since", "45m"), {"m20"})
        self.assertEqual(self.counted("--since", "10m"), set())
        self.assertEqual(self.counted("--until", "30d"), {"d31", "d60"})
        self.assertEqual(self.counted("--since", "45d", "--until", "20d"), {"d29", "d31"})
        self.assertEqual(self.counted("--since", "8w", "--until", "5w"), set())
        # relative and absolute together
        self.assertEqual(self.counted("--since", day_of(time.time() - 40 * 86400),
                                      "--until", "2w"), {"d29", "d31"})

    def test_relative_time_in_filter_echo(self):
        before = int(time.time())
        res = T.run(["summary", "--db", self.db, "--format", "json", "--since", "30d"])
        after = int(time.time())
        since = parse_datetime(json.loads(res.out)["filter"]["since"])
        self.assertTrue(before - 30 * 86400 <= since <= after - 30 * 86400, since)


# ---- long group keys -------------------------------------------------------------------------


class LongKeys(T.TlsrptdTestCase):
    """Group keys longer than 511 bytes (an organization-name or a sending-mta-ip is
    stored as sent, at any length): two different values stay two groups, each with its
    key, its own counts, and valid JSON (keys were once cut at 511 bytes, merging such
    groups and, cut inside a UTF-8 character, losing their keys)."""

    def setUp(self):
        super().setUp()
        for n, suffix in enumerate("AB"):
            r = T.sample_report()
            r["report-id"] = "long-key-%d" % n
            r["organization-name"] = "\u00c4" * 300 + suffix  # 601 bytes of UTF-8
            r["policies"][0]["failure-details"][0]["sending-mta-ip"] = "x" * 600 + suffix
            self.write("long/%d.json" % n, json.dumps(r))
        self.assertExit(self.ingest(self.path("long")), 0)

    def test_long_keys_are_distinct_groups(self):
        for by, field in (("reporter", "reporter"), ("sending-ip", "sending_ip")):
            res = T.run(["summary", "--db", self.db, "--by", by, "--format", "json"])
            self.assertExit(res, 0)
            js = json.loads(res.out)
            long = [g for g in js["groups"] if len(g.get(field) or "") != len("2001:db8::25")]
            self.assertEqual(len(long), 2, js["groups"])
            self.assertEqual(len({g.get(field) for g in long}), 2, "keys are distinct")
            for g in long:
                self.assertIsInstance(g.get(field), str, g)
                self.assertEqual(g["reports"], 1, g)
                self.assertEqual(g["failed_sessions"], 7 if by == "reporter" else 5, g)
                self.assertEqual(sum(g["failures"].values()), g["failed_sessions"], g)


# ---- what an operator reads: listings, unknown domains, dates with a time ---------------------


def policy(kind, domain, ok, failed=0):
    return {"policy": {"policy-type": kind, "policy-domain": domain},
            "summary": {"total-successful-session-count": ok,
                        "total-failure-session-count": failed}}


def help_entry(text, option):
    """The lines of a --help text that describe OPTION (its line and the indented
    lines after it), joined."""
    lines, out = text.splitlines(), []
    for ln in lines:
        if out and (ln.startswith("  -") or not ln.strip()):
            break
        if out or ln.lstrip().startswith(option + " "):
            out.append(ln.strip())
    return " ".join(out)


class OperatorView(T.TlsrptdTestCase):
    """The smaller defects an operator met (the service issue): summary --reports
    repeated a domain once per policy ('alpha.test,alpha.test'); its REPORTER column cut
    names at 16 characters; --reports --format csv was refused though the help did not
    say so; --domain nosuch.example printed an empty table without saying the domain has
    no reports; --since '2026-11-01 00:00' was refused."""

    LONG_ORG = "Example Mail Transfer Service Inc."  # 34 characters, a real length

    def setUp(self):
        super().setUp()
        multi = T.sample_report(**{
            "organization-name": self.LONG_ORG, "report-id": "multi-policy",
            "date-range": {"start-datetime": "2026-11-01T06:00:00Z",
                           "end-datetime": "2026-11-02T05:59:59Z"},
            "policies": [policy("sts", "alpha.test", 10, 1), policy("tlsa", "alpha.test", 20),
                         policy("sts", "beta.test", 40)]})
        single = T.sample_report(**{
            "organization-name": "Microsoft Corporation", "report-id": "single-policy",
            "date-range": {"start-datetime": "2026-10-31T00:00:00Z",
                           "end-datetime": "2026-10-31T23:59:59Z"},
            "policies": [policy("sts", "alpha.test", 100)]})
        self.write("in/multi.json", json.dumps(multi))
        self.write("in/single.json", json.dumps(single))
        self.assertExit(self.ingest(self.path("in")), 0)

    def run_ok(self, *args):
        res = T.run(["summary", "--db", self.db] + [str(a) for a in args])
        self.assertExit(res, 0)
        self.assertEqual(res.err, "", res)
        return res.out

    def listing(self, *args):
        """summary --reports as a table: {report-id: its line}."""
        lines = self.run_ok("--reports", *args).splitlines()
        self.assertEqual(lines[0].split()[:2], ["ID", "START"], lines)
        out = {}
        for ln in lines[1:-1]:
            for rid in ("multi-policy", "single-policy"):
                if " %s " % rid in ln:
                    out[rid] = ln
        self.assertEqual(len(out), len(lines) - 2, lines)
        return out

    def test_reports_name_each_domain_once(self):
        lines = self.listing()
        self.assertTrue(lines["multi-policy"].endswith("  alpha.test,beta.test"),
                        lines["multi-policy"])
        self.assertTrue(lines["single-policy"].endswith("  alpha.test"), lines["single-policy"])
        # the JSON keeps one entry per policy (it says which policy is which)
        js = {r["report_id"]: r for r in T.stored_reports(self.db)}
        self.assertEqual(js["multi-policy"]["policy_domains"],
                         ["alpha.test", "alpha.test", "beta.test"])

    def test_reports_show_the_whole_reporter_name(self):
        lines = self.listing()
        self.assertGreater(len(self.LONG_ORG), 16)
        self.assertIn("  %s  " % self.LONG_ORG, lines["multi-policy"])
        self.assertIn("  Microsoft Corporation  ", lines["single-policy"])

    def test_reports_as_csv_and_the_help_says_so(self):
        self.assertIn("csv", help_entry(self.run_ok("--help"), "--reports"))
        text = self.run_ok("--reports", "--format", "csv")
        self.assertTrue(text.endswith("\r\n"), "CSV lines end in CRLF")
        recs = list(csv.DictReader(io.StringIO(text, newline="")))
        want = T.stored_reports(self.db)
        self.assertEqual(len(recs), len(want), text)
        for rec, r in zip(sorted(recs, key=lambda x: int(x["id"])), want):
            self.assertEqual(int(rec["id"]), r["id"])
            self.assertEqual((rec["organization_name"], rec["report_id"]),
                             (r["organization_name"], r["report_id"]))
            self.assertEqual(rec["start_datetime"], r["start_datetime"])
            self.assertEqual((int(rec["successful_sessions"]), int(rec["failed_sessions"])),
                             (r["successful_sessions"], r["failed_sessions"]))
            self.assertEqual(rec["policy_domains"],
                             ",".join(dict.fromkeys(r["policy_domains"])))
        # and filtered like the table
        recs = list(csv.DictReader(io.StringIO(
            self.run_ok("--reports", "--format", "csv", "--domain", "beta.test"), newline="")))
        self.assertEqual([r["report_id"] for r in recs], ["multi-policy"])

    def test_a_domain_without_reports_is_named(self):
        out = self.run_ok("--domain", "nosuch.example")
        self.assertIn("no reports for nosuch.example\n", out)
        out = self.run_ok("--domain", "alpha.test", "--domain", "nosuch.example")
        self.assertRegex(out, r"(?m)^alpha\.test +130 ")
        self.assertIn("no reports for nosuch.example\n", out)
        self.assertNotIn("no reports for alpha.test", out)
        # a known domain outside the window: said so, with the window
        out = self.run_ok("--domain", "beta.test", "--until", "2026-11-01")
        self.assertIn("no reports for beta.test in this time window\n", out)
        # a domain with reports: no such line
        self.assertNotIn("no reports", self.run_ok("--domain", "beta.test"))
        # the JSON stays the summary alone, with the filter that explains it
        js = T.summary(self.db, "--domain", "nosuch.example")
        self.assertEqual((js["groups"], js["totals"]["reports"]), ([], 0))
        self.assertEqual(js["filter"]["domains"], ["nosuch.example"])

    def test_since_and_until_take_a_date_and_time(self):
        # the report with policies for beta.test starts at 2026-11-01T06:00:00Z
        cases = [
            ("--since", "2026-11-01 00:00", "2026-11-01T00:00:00Z", {"multi-policy"}),
            ("--since", "2026-11-01 06:00", "2026-11-01T06:00:00Z", {"multi-policy"}),
            ("--since", "2026-11-01 06:01", "2026-11-01T06:01:00Z", set()),
            ("--since", "2026-11-01 06:00:01", "2026-11-01T06:00:01Z", set()),
            ("--since", "2026-11-01 08:00+02:00", "2026-11-01T06:00:00Z", {"multi-policy"}),
            ("--since", "2026-11-01 08:00:01+02:00", "2026-11-01T06:00:01Z", set()),
            ("--since", "2026-11-01T08:00+02:00", "2026-11-01T06:00:00Z", {"multi-policy"}),
            ("--since", "2026-11-01 05:00-01:00", "2026-11-01T06:00:00Z", {"multi-policy"}),
            ("--until", "2026-11-01 06:00", "2026-11-01T06:00:00Z", {"single-policy"}),
            ("--until", "2026-11-01 06:00:01", "2026-11-01T06:00:01Z",
             {"single-policy", "multi-policy"}),
        ]
        for opt, value, echo, want in cases:
            with self.subTest(opt=opt, value=value):
                js = T.summary(self.db, opt, value)
                self.assertEqual(js["filter"][opt[2:]], echo)
                self.assertEqual({r["report_id"] for r in T.stored_reports(self.db, opt, value)},
                                 want)
                self.assertEqual(js["totals"]["reports"], len(want))
                # the table takes it too
                self.assertIn("TOTAL", self.run_ok(opt, value))
        # what is still no date and time: refused, naming the option
        for value in ("2026-11-01 25:00", "2026-11-01 12", "2026-11-01  12:00",
                      "2026-11-01 12:00 ", "2026-11-01 12:60", "2026-11-01 12:00+2"):
            with self.subTest(bad=value):
                res = T.run(["summary", "--db", self.db, "--since", value])
                self.assertExit(res, T.EX_USAGE)
                self.assertIn("--since", res.err)
                self.assertIn(value, res.err)


# ---- bad arguments ---------------------------------------------------------------------------


class BadArguments(T.TlsrptdTestCase):
    def test_bad_arguments_exit_64_naming_the_option(self):
        self.assertExit(self.ingest(T.sample("report.json")), 0)
        cases = [
            (["--by", "week"], "--by"),
            (["--by", ""], "--by"),
            (["--format", "xml"], "--format"),
            (["--since", "yesterday"], "--since"),
            (["--since", "2026-02-30"], "--since"),
            (["--since", "-5d"], "--since"),
            (["--since", "5y"], "--since"),
            (["--until", "2026-13-01"], "--until"),
            (["--until", ""], "--until"),
            (["--since", "2026-01-02", "--until", "2026-01-01"], "--since"),
            (["--since", "2026-01-01", "--until", "2026-01-01"], "--since"),
            (["--top", "0"], "--top"),
            (["--top", "two"], "--top"),
            (["--top", "-1"], "--top"),
            (["--limit", "0"], "--limit"),
            (["--limit", "x"], "--limit"),
            (["--domain", ""], "--domain"),
            (["--domain", "a" * 300], "--domain"),
            (sum([["--domain", "d%d.example" % i] for i in range(65)], []), "--domain"),
            (["--frobnicate"], "frobnicate"),
            (["surplus"], "surplus"),
            (["--fill"], "--fill"),
            (["--reports", "--by", "day"], "--reports"),
            (["--reports", "--top", "2"], "--reports"),
            (["--limit", "5"], "--limit"),
        ]
        for args, name in cases:
            with self.subTest(args=args[:4]):
                res = T.run(["summary", "--db", self.db] + args)
                self.assertExit(res, T.EX_USAGE)
                self.assertIn(name, res.err)
                self.assertEqual(res.out, "", "nothing on stdout for a usage error")
        # the same options, valid, work on the same database
        res = T.run(["summary", "--db", self.db, "--by", "day", "--since", "2026-01-01",
                     "--until", "2027-01-01", "--top", "1", "--domain", "mail.example"])
        self.assertExit(res, 0)

    def test_show_numeric_report_id(self):
        """A number that is no stored id is looked up as a report-id."""
        self.write("n/r.json", json.dumps(T.sample_report(**{"report-id": "987654"})))
        self.assertExit(self.ingest(self.path("n")), 0)
        res = T.run(["show", "--db", self.db, "--format", "json", "987654"])
        self.assertExit(res, 0)
        self.assertEqual(json.loads(res.out)["report_id"], "987654")
        res = T.run(["show", "--db", self.db, "--format", "json", "1"])
        self.assertExit(res, 0)
        self.assertEqual(json.loads(res.out)["id"], 1)

    def test_show_bad_arguments(self):
        self.assertExit(self.ingest(T.sample("report.json")), 0)
        for args, name in ((["--format", "yaml", "1"], "--format"), ([], "KEY"),
                           (["1", "2"], "KEY"), (["--frobnicate", "1"], "frobnicate")):
            with self.subTest(args=args):
                res = T.run(["show", "--db", self.db] + args)
                self.assertExit(res, T.EX_USAGE)
                self.assertIn(name, res.err)


# ---- show ------------------------------------------------------------------------------------


def split_show_text(out):
    """show's text: 'label  value' lines, a blank line, the report JSON."""
    head, sep, body = out.partition("\n\n")
    if not sep:
        raise AssertionError("show's text has no blank line before the JSON: %r" % out[:500])
    fields = {}
    for ln in head.splitlines():
        k, _, v = ln.strip().partition(" ")  # source details are indented
        fields.setdefault(k, []).append(v.strip())
    return fields, json.loads(body)


class Show(CorpusCase):

    def listed(self):
        res = self.cli("--reports", "--format", "json")
        return {(r["organization_name"], r["report_id"]): r for r in json.loads(res.out)["reports"]}

    def show(self, *args):
        return T.run(["show", "--db", self.cdb] + [str(a) for a in args])

    def test_show_every_report_by_id_as_json(self):
        listed = self.listed()
        self.assertEqual(set(listed), {r.key for r in ORACLE.reports})
        for r in ORACLE.reports:
            with self.subTest(file=r.file):
                item = listed[r.key]
                res = self.show("--format", "json", item["id"])
                self.assertExit(res, 0)
                js = json.loads(res.out)
                self.assertEqual(js["report"], r.doc, "report JSON differs from the file")
                self.assertEqual(js["id"], item["id"])
                self.assertEqual((js["organization_name"], js["report_id"]), r.key)
                self.assertEqual(js["start_datetime"], r.start_datetime)
                self.assertEqual(js["source"]["kind"], "file")
                self.assertEqual(js["source"]["name"], r.file)
                self.assertIsInstance(js["diagnostics"], list)
                warnings = [d for d in js["diagnostics"] if d.get("level") == "warning"]
                want = int(re.search(r"(\d+) warnings?", ORACLE.rows[r.file]["note"]).group(1))
                self.assertEqual(len(warnings), want, js["diagnostics"])
                self.assertEqual(js["warnings"], want)
                for d in js["diagnostics"]:
                    self.assertTrue(d.get("message"), d)

    def test_show_text_by_id_and_by_report_id(self):
        listed = self.listed()
        cases = [ORACLE.by_file["real/mailweave-google-testing-3mx.json.gz"],  # gzip file
                 ORACLE.by_file["real/mox-microsoft-no-timezone.eml"],  # mail, 2 warnings
                 ORACLE.by_file["real/parsedmarc-mailru-fetch-errors.json"]]
        for r in cases:
            for key in (listed[r.key]["id"], r.report_id):
                with self.subTest(file=r.file, key=key):
                    res = self.show(key)
                    self.assertExit(res, 0)
                    fields, doc = split_show_text(res.out)
                    self.assertEqual(doc, r.doc)
                    self.assertEqual(fields["id"], [str(listed[r.key]["id"])])
                    self.assertEqual(fields["organization"], [r.org])
                    self.assertEqual(fields["report-id"], [r.report_id])
                    self.assertEqual(fields["source"], ["file"])
                    self.assertIn("name", fields)
                    self.assertEqual(fields["name"], [r.file])
                    want = int(re.search(r"(\d+) warnings?",
                                         ORACLE.rows[r.file]["note"]).group(1))
                    self.assertEqual(len(fields.get("warning", [])), want, res.out[:1500])
                    # the same report as JSON
                    js = json.loads(self.show("--format", "json", key).out)
                    self.assertEqual(js["report"], r.doc)
                    self.assertEqual(js["id"], listed[r.key]["id"])
        # a mail's source: its headers
        r = ORACLE.by_file["real/mox-microsoft-no-timezone.eml"]
        js = json.loads(self.show("--format", "json", r.report_id).out)
        msg = email.message_from_bytes(T.read_bytes(os.path.join(CORPUS, r.file)),
                                       policy=email.policy.default)
        self.assertEqual(js["source"]["message_id"], str(msg["Message-ID"]).strip().strip("<>"))
        self.assertTrue(any("timezone" in d["message"] for d in js["diagnostics"]),
                        js["diagnostics"])

    def test_unknown_key_exits_65(self):
        for key in ("999999", "no-such-report-id", "0"):
            with self.subTest(key=key):
                res = self.show(key)
                self.assertExit(res, T.EX_DATAERR)
                self.assertIn(key, res.err)
                self.assertEqual(res.out, "")

    def test_ambiguous_report_id_exits_64(self):
        """Two stored reports with one report-id (different date ranges are different
        reports): the report-id is ambiguous, each id still works."""
        for n, day in enumerate(("2026-10-01", "2026-10-02")):
            r = T.sample_report(**{"report-id": "same-report-id",
                                   "date-range": {"start-datetime": day + "T00:00:00Z",
                                                  "end-datetime": day + "T23:59:59Z"}})
            self.write("amb/%d.json" % n, json.dumps(r))
        self.assertExit(self.ingest(self.path("amb")), 0)
        ids = [r["id"] for r in T.stored_reports(self.db)]
        self.assertEqual(len(ids), 2)
        res = T.run(["show", "--db", self.db, "same-report-id"])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("same-report-id", res.err)
        for i in ids:
            self.assertIn(str(i), res.err, "the message lists the ids to choose from")
        self.assertEqual(res.out, "")
        starts = set()
        for i in ids:
            res = T.run(["show", "--db", self.db, "--format", "json", i])
            self.assertExit(res, 0)
            js = json.loads(res.out)
            self.assertEqual(js["report_id"], "same-report-id")
            starts.add(js["report"]["date-range"]["start-datetime"])
        self.assertEqual(starts, {"2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z"})


if __name__ == "__main__":
    T.main()
