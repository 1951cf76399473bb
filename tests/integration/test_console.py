#!/usr/bin/env python3
"""The web console of `tlsrptd serve` (DESIGN §11, issue 13), in a real browser.

A REAL daemon serves a database holding the shared corpus and 1,000 reports made by
bench/gen_reports (10 domains, 2025-01-01 .. 2025-02-19 and 2025-03-12 .. 2025-04-30, so
windows have days without reports); headless Chromium (Debian's chromium and
chromium-driver, driven by python3-selenium) opens the console:

  Pages        every page: no JavaScript console error, no Content-Security-Policy
               violation, no request to another origin; screenshots at desktop (1280 px)
               and phone (390 px) width into BUILD/console-screenshots/
  Overview     cards, the per-domain table (sessions, failures, rate, trend, status) and
               the result types equal GET /api/v1/summary for the same window (7, 30, 90,
               365 days); the charts' data points equal the daily series, a day without
               reports a gap (null)
  Domain       totals, result types, sending IPs, receiving MX, reporters == the API
  Reports      the list and its count == GET /api/v1/reports with the same filter, paging;
               the DKIM verdict of mailed reports (verdict, signing domain, aligned, why)
               as the API gives it, in the list and on the report's page (corpus mails
               whose verdict needs no DNS: expired signatures fail, an unsigned mail is
               "none"; a .json file has none)
  Findings     the Findings page as of the data's last day (end=, the API's now=) and
               as of now == GET /api/v1/findings: kinds, severities, domains, sentences,
               evidence; the Domain page's findings as of its window's last day
  Generator    27 cases typed into the form give exactly `tlsrptd record`'s zone line,
               value, name, TTL, notes, MTA-STS record and policy, or its error message;
               "check the live record" == `tlsrptd record --check` against a dnsmasq
  Token        with api_token: the token prompt and no data without it, a clear error
               with a wrong one, the data with the right one (sent as a Bearer header,
               kept for the tab in sessionStorage)
  Assets       (no browser) CSP, nosniff and no-referrer on every console answer, strong
               ETags and 304, the gzip copy, Chart.js byte for byte as Debian ships it,
               404 and 405
  RecordApi    (no browser) GET /api/v1/record == `record --format json`, its 400s ==
               the command's messages, /api/v1/record/check, /api/v1/config

Pages whose API endpoints another branch adds (GET /api/v1/reports/ID, /policies,
/quarantine, /findings; summary's reporter filter, last_report and result_types) are
tested when the API has them and skipped, saying so, while it answers 404 (or 400 for an
unknown parameter); until then the console shows the API's 404 as a notice, and only
those 404s are allowed in the browser's log.

Needs chromium, chromium-driver, python3-selenium, dnsmasq-base and curl (scripts/deps.sh
test); missing ones are a failure, not a skip. Debian's python3-selenium is found even when
the python3 running the test is not Debian's (its dist-packages are added to the path).

Run: TLSRPTD_BIN=build/tlsrptd TLSRPTD_GEN_REPORTS=build/bench/gen_reports \\
     python3 tests/integration/test_console.py [-k NAME]
"""
import datetime
import decimal
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

try:
    import selenium  # noqa: F401
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")  # Debian's python3-selenium
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise RuntimeError("selenium is missing: apt-get install python3-selenium "
                           "(scripts/deps.sh test)")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

SLOW = T.SLOW
WAIT = 30 * SLOW
PUBLIC_URL = "https://collector.example/tlsrpt"
MAILBOX = "tlsrpt@collector.example"
TOKEN = "console-T0ken_of-the-it-test"
END = "2025-04-30"  # the last day of the generated reports
DOMAIN = "acmemail.nl"  # one of gen_reports' domains (seed 1)
# Corpus mails whose DKIM verdict needs no DNS (an expired signature fails before its key
# is looked up; an unsigned mail is "none"): name -> (result, domain, aligned, reason).
DKIM_MAILS = {
    "parsedmarc-google-cardinalhealth.eml": ("fail", "google.com", True, "signature expired (x=)"),
    "tlsrptrs-mailru-fetch-timeout.eml": ("fail", "corp.mail.ru", False, "signature expired (x=)"),
    "mailauth-rfc8460-example-email.eml": ("none", None, False, None),
}
SEVERITY = {"critical": 0, "warning": 1, "info": 2}
CHARTJS = "/usr/share/javascript/chart.js/chart.min.js"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'")
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
WIDTHS = {"desktop": 1280, "phone": 390}

# Collects Content-Security-Policy violations from the first byte of every document.
CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""

STATE = {}  # filled by setUpModule


def find_exe(names, package):
    for n in names:
        p = shutil.which(n) or next((d + "/" + n for d in ("/usr/bin", "/usr/lib/chromium")
                                     if os.path.exists(d + "/" + n)), None)
        if p:
            return p
    raise RuntimeError("%s is missing: apt-get install %s (scripts/deps.sh test)" %
                       (names[0], package))


def gen_reports_bin():
    p = os.environ.get("TLSRPTD_GEN_REPORTS") or os.path.join(
        os.path.dirname(T.tlsrptd_bin()), "bench", "gen_reports")
    if not os.access(p, os.X_OK):
        raise RuntimeError("bench/gen_reports is not built (%s): build with TLSRPTD_BENCH=ON "
                           "or set TLSRPTD_GEN_REPORTS" % p)
    return p


def screenshot_dir():
    d = os.environ.get("TLSRPTD_SCREENSHOTS") or os.path.join(
        os.path.dirname(T.tlsrptd_bin()), "console-screenshots")
    os.makedirs(d, exist_ok=True)
    return d


# ---- numbers as the console writes them --------------------------------------------------------


def fmt_int(n):
    return "—" if n is None else "{:,}".format(n)


def fmt_rate(r):
    """(r * 100).toFixed(2) + '%': the exact double, ties away from zero."""
    if r is None:
        return "—"
    q = decimal.Decimal(r * 100).quantize(decimal.Decimal("0.01"), decimal.ROUND_HALF_UP)
    return "%s%%" % q


def fmt_domain(d):
    return "(none)" if d in (None, "") else d


def fmt_time(s):
    m = re.match(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})", s or "")
    return "%s %s UTC" % m.groups() if m else (s or "—")


def window(days, end=END, back=0):
    """since, until (exclusive) and the days of the window the console asks for."""
    last = datetime.date.fromisoformat(end) - datetime.timedelta(days=back * days)
    first = last - datetime.timedelta(days=days - 1)
    day_list = [(first + datetime.timedelta(days=i)).isoformat() for i in range(days)]
    return first.isoformat(), (last + datetime.timedelta(days=1)).isoformat(), day_list


# ---- the API -------------------------------------------------------------------------------------


def api(path, params=None, daemon=None, headers=(), status=200):
    d = daemon or STATE["daemon"]
    q = urllib.parse.urlencode(params or [], doseq=True)
    r = d.get(path + ("?" + q if q else ""), headers=list(headers))
    if status is not None and r.status != status:
        raise AssertionError("GET %s?%s: expected %s\n%r" % (path, q, status, r))
    return r


def api_json(path, params=None, **kw):
    return api(path, params, **kw).json()


def report_from(name):
    """The stored report of the corpus file name (from the API's listing)."""
    for r in api_json("/api/v1/reports", {"limit": 10000})["reports"]:
        if (r["source"].get("name") or "").endswith("/" + name):
            return r
    raise AssertionError("no stored report from the corpus file %s" % name)


def by_severity(findings):
    """The console's order: most severe first, then by domain (a stable sort)."""
    return sorted(findings, key=lambda f: (SEVERITY.get(f["severity"], 3),
                                           fmt_domain(f["domain"])))


def probe_contract():
    """Which parts of the API contract the daemon has (another branch adds them)."""
    have = {}
    for name, path in (("report", "/api/v1/reports/1"), ("policies", "/api/v1/policies"),
                       ("quarantine", "/api/v1/quarantine"), ("findings", "/api/v1/findings")):
        r = api(path, {"domain": DOMAIN} if name == "policies" else None, status=None)
        have[name] = not (r.status == 404 and r.body.startswith(b"{") and
                          r.json().get("detail", "").startswith("the API has"))
    r = api("/api/v1/summary", {"by": "day", "fill": "1"}, status=None)
    have["fill"] = r.status == 200
    r = api("/api/v1/reports", {"reporter": "Mail.ru"}, status=None)
    have["reporter"] = r.status == 200
    s = api_json("/api/v1/summary", {"by": "reporter"})
    have["last_report"] = bool(s["groups"]) and "last_report" in s["groups"][0]
    have["result_types"] = "result_types" in s
    return have


def missing_404s():
    """The API paths whose 404 the browser may log: those the API does not have yet."""
    names = {"report": "/api/v1/reports/", "policies": "/api/v1/policies",
             "quarantine": "/api/v1/quarantine", "findings": "/api/v1/findings"}
    return [p for n, p in names.items() if not STATE["have"][n]]


def skip_unless(name, what):
    if not STATE["have"][name]:
        raise unittest.SkipTest("%s: the API does not have %s yet (404 or 400 from this "
                                "branch's daemon); the console shows the API's answer" %
                                (name, what))


# ---- the browser ---------------------------------------------------------------------------------


class Browser:
    """Headless Chromium through chromedriver, with a fresh profile."""

    def __init__(self, tmp):
        opts = webdriver.ChromeOptions()
        for a in CHROME_FLAGS:
            opts.add_argument(a)
        opts.add_argument("--user-data-dir=" + tempfile.mkdtemp(prefix="chromium-", dir=tmp))
        opts.add_argument("--window-size=1280,900")
        opts.binary_location = find_exe(["chromium"], "chromium")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        service = Service(find_exe(["chromedriver"], "chromium-driver"))
        self.d = webdriver.Chrome(service=service, options=opts)
        self.d.set_page_load_timeout(WAIT)
        self.d.set_script_timeout(WAIT)
        self.d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_LISTENER})

    def quit(self):
        self.d.quit()

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def wait(self, script, what, *args, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            v = self.js(script, *args)
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError("browser: %s did not happen within %.0f s (at %s)\n%s" %
                                     (what, timeout, self.d.current_url,
                                      self.js("return document.body.innerText")[:3000]))
            time.sleep(0.05)

    def open(self, url, state="ready"):
        """Go to url (a same-document navigation when only the #... part changes) and wait
        until the console says it is done with it."""
        self.d.get(url)
        return self.wait("const e = document.documentElement; "
                         "return e.dataset.route === (location.hash || '#/') && "
                         "e.dataset.state === arguments[0];", "page state %s" % state, state)

    def wait_chart(self, cid):
        return self.wait("const c = document.getElementById(arguments[0]); "
                         "return c && window.Chart && Chart.getChart(c) ? true : false;",
                         "chart %s" % cid, cid)

    def chart(self, cid):
        self.wait_chart(cid)
        return self.js("const c = Chart.getChart(document.getElementById(arguments[0]));"
                       "return {labels: c.data.labels, sets: c.data.datasets.map("
                       "(s) => ({label: s.label, data: s.data}))};", cid)

    def text(self, selector):
        return self.js("const e = document.querySelector(arguments[0]);"
                       "return e ? e.textContent : null;", selector)

    def texts(self, selector):
        return self.js("return [...document.querySelectorAll(arguments[0])]"
                       ".map((e) => e.textContent);", selector)

    def console_log(self):
        return self.d.get_log("browser")

    def requests(self):
        """Network.requestWillBeSent since the last call: [(url, headers)]."""
        out = []
        for e in self.d.get_log("performance"):
            m = json.loads(e["message"])["message"]
            if m.get("method") == "Network.requestWillBeSent":
                req = m["params"]["request"]
                out.append((req["url"], req.get("headers", {})))
        return out

    def csp_violations(self):
        return self.js("return window.__csp || [];")

    def screenshot(self, path, width):
        self.d.set_window_size(width, 900)
        time.sleep(0.3)  # charts follow the new width (ResizeObserver)
        height = self.js("return Math.max(document.documentElement.scrollHeight, "
                         "document.body.scrollHeight);")
        self.d.set_window_size(width, min(height + 120, 8000))
        time.sleep(0.3)
        self.d.save_screenshot(path)
        self.d.set_window_size(1280, 900)
        time.sleep(0.2)


# ---- the module's daemon, data and browser ---------------------------------------------------------


def make_database(tmp):
    db = os.path.join(tmp, "console.db")
    res = T.run(["ingest", "--db", db, "--no-progress", "real"], cwd=T.corpus_dir())
    if res.rc not in (T.EX_OK, T.EX_DATAERR):
        raise AssertionError("ingesting the corpus failed:\n%r" % res)
    out = os.path.join(tmp, "generated")
    gen = gen_reports_bin()
    for first in (0, 700):  # 500 reports each: days 0-49 and 70-119 of 2025
        p = subprocess.run([gen, "-n", "500", "-f", str(first), "-o", out, "-s", "1", "-d", "10",
                            "-y", "200"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise AssertionError("gen_reports failed: %s" % p.stdout.decode(errors="replace"))
    res = T.run(["ingest", "--db", db, "--no-progress", "--quiet", out], timeout=600)
    if res.rc != 0:
        raise AssertionError("ingesting the generated reports failed:\n%r" % res)
    return db


DNS_TXT = [
    ("_smtp._tls.here.example", ["v=TLSRPTv1; rua=" + PUBLIC_URL]),
    ("_smtp._tls.elsewhere.example", ["v=TLSRPTv1; rua=mailto:reports@elsewhere.example"]),
    ("_smtp._tls.split.example", ["v=TLSRPTv1;", " rua=mailto:" + MAILBOX]),
    ("_smtp._tls.broken.example", ["v=TLSRPTv1; rua=http://collector.example/tlsrpt"]),
]


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="tlsrptd-it-console-")
    STATE["tmp"] = tmp
    try:
        STATE["db"] = make_database(tmp)
        STATE["dns"] = T.Dnsmasq(tmp, DNS_TXT, lambda port: T.run(
            ["record", "--check", "--domain", "here.example", "--dns", "127.0.0.1:%d" % port,
             "--dns-timeout", "1", "--rua", PUBLIC_URL]).rc == 0)
        STATE["dns_addr"] = "127.0.0.1:%d" % STATE["dns"].port
        STATE["daemon"] = T.start_daemon(tmp, ["--db", STATE["db"], "--public-url", PUBLIC_URL,
                                               "--report-mailbox", MAILBOX, "--dns",
                                               STATE["dns_addr"]], name="console")
        STATE["have"] = probe_contract()
        STATE["browser"] = Browser(tmp)
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    try:
        if STATE.get("browser"):
            STATE["browser"].quit()
        if STATE.get("daemon"):
            d = STATE["daemon"]
            rc = d.stop()
            if rc != 0:
                raise AssertionError("serve exited %d on SIGTERM\n%s" % (rc, d.log()))
    finally:
        if STATE.get("daemon"):
            STATE["daemon"].kill()
        if STATE.get("dns"):
            STATE["dns"].stop()
        shutil.rmtree(STATE.get("tmp", "/nonexistent"), True)


class ConsoleCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.b.console_log(), self.b.requests()  # what earlier tests left

    @property
    def b(self):
        return STATE["browser"]

    @property
    def base(self):
        return STATE["daemon"].base

    def open(self, frag, state="ready"):
        return self.b.open(self.base + "/" + frag, state)

    def assertClean(self, what, allow=()):
        """No console error, no CSP violation, every request to this origin (or data:,
        blob:; the browser's own chrome: pages aside). Allowed: the browser's note of an
        API answer with a status of allow, [(status, path)], and the 404s of the API
        paths this branch's daemon does not have yet."""
        allow = list(allow) + [(404, p) for p in missing_404s()]
        bad = []
        for e in self.b.console_log():
            if e["level"] not in ("SEVERE", "ERROR") and e.get("source") != "security":
                continue
            msg = e["message"]
            if e.get("source") == "network" and any(
                    "status of %d " % st in msg and (" " + self.base + p) in (" " + msg)
                    for st, p in allow):
                continue
            bad.append(e)
        self.assertEqual(bad, [], "%s: console errors" % what)
        self.assertEqual(self.b.csp_violations(), [], "%s: CSP violations" % what)
        origin = self.base
        for url, _ in self.b.requests():
            if url.startswith(("chrome:", "chrome-extension:", "devtools:", "about:")):
                continue  # the browser's own pages, not the console's requests
            if not (url == origin or url.startswith(origin + "/") or
                    url.startswith(("data:", "blob:"))):
                self.fail("%s: a request to another origin: %s" % (what, url))


# ---- every page ------------------------------------------------------------------------------------


class Pages(ConsoleCase):
    def pages(self):
        mailed = report_from("parsedmarc-google-cardinalhealth.eml")["id"]  # a DKIM verdict
        return [
            ("overview", "#/?days=90&end=%s" % END, None),
            ("domain", "#/domain/%s?days=90&end=%s" % (DOMAIN, END), "chart-sessions"),
            ("reports", "#/reports?domain=%s" % DOMAIN, None),
            ("report", "#/reports/%d" % mailed, None),
            ("quarantine", "#/quarantine", None),
            ("findings", "#/findings?end=%s" % END, None),
            ("record", "#/record?domain=mail.example", None),
            ("not-found", "#/no-such-page", None),
        ]

    def test_every_page_clean_with_screenshots(self):
        shots = screenshot_dir()
        self.b.console_log(), self.b.requests()  # what came before
        for name, frag, chart in self.pages():
            with self.subTest(page=name):
                self.open(frag)
                if name in ("overview", "domain"):
                    self.b.wait_chart("chart-sessions")
                    self.b.wait_chart("chart-failures")
                if name == "record":
                    self.b.wait("return document.getElementById('rec-output')"
                                ".dataset.state === 'done'", "the record")
                h1 = self.b.text("h1")
                self.assertTrue(h1, name)
                for kind, width in WIDTHS.items():
                    self.b.screenshot(os.path.join(shots, "%s-%s.png" % (name, kind)), width)
                self.assertClean(name)
                # the page is whole: a labelled field for every input
                unlabelled = self.b.js(
                    "return [...document.querySelectorAll('#page input, #page select, "
                    "#page textarea')].filter((e) => !(e.labels && e.labels.length) && "
                    "!e.getAttribute('aria-label')).map((e) => e.outerHTML);")
                self.assertEqual(unlabelled, [], name)
        self.assertTrue(os.path.getsize(os.path.join(shots, "overview-desktop.png")) > 10000)

    def test_nav_is_keyboard_usable(self):
        self.open("#/?days=30&end=%s" % END)
        links = self.b.js("return [...document.querySelectorAll('.top nav a')].map((a) => "
                          "[a.textContent, a.getAttribute('href'), a.tabIndex]);")
        self.assertEqual([ln[0] for ln in links], ["Overview", "Reports", "Quarantine",
                                                    "Findings", "Record generator"])
        self.assertTrue(all(ln[2] >= 0 for ln in links), links)
        # the window selector is radio buttons: arrow keys move between them
        radios = self.b.d.find_elements(By.CSS_SELECTOR, ".segmented input[type=radio]")
        self.assertEqual([r.get_attribute("value") for r in radios], ["7", "30", "90", "365"])
        self.assertEqual(self.b.js("return document.querySelector('.top nav a"
                                   "[aria-current=page]').textContent"), "Overview")


# ---- the numbers -------------------------------------------------------------------------------------


class Overview(ConsoleCase):
    def read_overview(self):
        return self.b.js("""
            const t = (e, s) => { const x = e.querySelector(s); return x ? x.textContent : null; };
            return {
              cards: Object.fromEntries([...document.querySelectorAll('.cards .card')].map(
                (c) => [c.classList[1], t(c, '.value')])),
              domains: [...document.querySelectorAll('#domains tbody tr[data-domain]')].map((r) => ({
                domain: r.dataset.domain, successful: t(r, '.successful'), failed: t(r, '.failed'),
                rate: t(r, '.rate'), reports: t(r, '.reports'), last: t(r, '.last'),
                status: t(r, '.status'), trend: t(r, '.trend-cell')})),
              types: [...document.querySelectorAll('#result-types tbody tr[data-type]')].map((r) =>
                [r.dataset.type, t(r, '.failed'), r.cells[2].textContent, r.cells[3].textContent]),
            };""")

    def check_chart(self, days, daily, chart_s, chart_f):
        groups = {g["day"]: g for g in daily["groups"]}

        def at(day, key):
            g = groups.get(day)
            return g[key] if g and g["reports"] > 0 else None
        self.assertEqual(chart_s["labels"], days)
        sets = {s["label"]: s["data"] for s in chart_s["sets"]}
        self.assertEqual(sets["Successful sessions"], [at(d, "successful_sessions") for d in days])
        self.assertEqual(sets["Failed sessions"], [at(d, "failed_sessions") for d in days])
        types = daily["totals"]["failures"]
        if not types:
            return
        self.assertEqual(chart_f["labels"], days)
        self.assertEqual(sorted(s["label"] for s in chart_f["sets"]), sorted(types))
        for s in chart_f["sets"]:
            want = [(groups[d]["failures"].get(s["label"], 0)
                     if d in groups and groups[d]["reports"] > 0 else None) for d in days]
            self.assertEqual(s["data"], want, s["label"])

    def test_numbers_equal_the_api(self):
        have = STATE["have"]
        gaps_seen = 0
        for days in (7, 30, 90, 365):
            with self.subTest(days=days):
                since, until, day_list = window(days)
                psince, puntil, _ = window(days, back=1)
                self.open("#/?days=%d&end=%s" % (days, END))
                chart_s = self.b.chart("chart-sessions")
                chart_f = self.b.chart("chart-failures") if self.b.js(
                    "return !!document.getElementById('chart-failures')") else None
                page = self.read_overview()
                cur = api_json("/api/v1/summary", {"by": "domain", "since": since,
                                                   "until": until})
                prev = api_json("/api/v1/summary", {"by": "domain", "since": psince,
                                                    "until": puntil})
                q = {"by": "day", "since": since, "until": until}
                if have["fill"]:
                    q["fill"] = "1"
                daily = api_json("/api/v1/summary", q)
                tot = cur["totals"]
                self.assertEqual(page["cards"], {
                    "successful": fmt_int(tot["successful_sessions"]),
                    "failed": fmt_int(tot["failed_sessions"]),
                    "rate": fmt_rate(tot["failure_rate"]), "reports": fmt_int(tot["reports"]),
                    "domains": fmt_int(len(cur["groups"]))})
                want = {}
                prev_by = {g["policy_domain"]: g for g in prev["groups"]}
                for g in cur["groups"]:
                    row = {"successful": fmt_int(g["successful_sessions"]),
                           "failed": fmt_int(g["failed_sessions"]),
                           "rate": fmt_rate(g["failure_rate"]), "reports": fmt_int(g["reports"])}
                    if have["last_report"]:
                        row["last"] = fmt_time(g["last_report"])
                    want[fmt_domain(g["policy_domain"])] = row
                    # the status: OK without failures, Failing from 5 %, Failures below
                    got = next(r for r in page["domains"]
                               if r["domain"] == fmt_domain(g["policy_domain"]))
                    total = g["successful_sessions"] + g["failed_sessions"]
                    status = ("No sessions" if total == 0 else "OK" if g["failed_sessions"] == 0
                              else "Failing" if g["failure_rate"] >= 0.05 else "Failures")
                    self.assertEqual(got["status"], status, g)
                    p = prev_by.get(g["policy_domain"])
                    if not p or p["successful_sessions"] + p["failed_sessions"] == 0:
                        self.assertEqual(got["trend"], "new", g)
                    else:
                        pp = (g["failure_rate"] - p["failure_rate"]) * 100
                        self.assertEqual(got["trend"][0], "=" if abs(pp) < 0.005 else
                                         "▲" if pp > 0 else "▼", (g, p))
                got = {r["domain"]: {k: r[k] for k in want.get(r["domain"], {})}
                       for r in page["domains"]}
                self.assertEqual(got, want)
                # result types: failed sessions in the window, and the API's meaning and fix
                f = daily["totals"]["failures"]
                self.assertEqual({t[0]: t[1] for t in page["types"]},
                                 {k: fmt_int(v) for k, v in f.items()})
                if have["result_types"]:
                    for t, _, meaning, fix in page["types"]:
                        self.assertEqual(meaning, daily["result_types"][t]["meaning"])
                        self.assertEqual(fix, daily["result_types"][t]["fix"])
                self.check_chart(day_list, daily, chart_s, chart_f)
                gaps_seen += chart_s["sets"][0]["data"].count(None)
                self.assertClean("overview %d days" % days)
        self.assertGreater(gaps_seen, 0, "the windows hold days without reports")

    def test_window_selector_and_end_day(self):
        self.open("#/?days=30&end=%s" % END)
        self.b.d.find_element(By.CSS_SELECTOR, "label[for$='-90']").click()
        self.b.wait("return location.hash === '#/?days=90&end=%s' && "
                    "document.documentElement.dataset.state === 'ready'" % END, "90 days")
        self.assertEqual(self.b.chart("chart-sessions")["labels"], window(90)[2])
        link = self.b.js("return document.querySelector('#domains a').getAttribute('href')")
        self.assertTrue(link.endswith("?days=90&end=%s" % END), link)


class Domain(ConsoleCase):
    def rows(self, table_id):
        return self.b.js("""
            return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')].filter(
              (r) => r.cells.length > 1).map((r) => [...r.cells].map((c) => c.textContent));""",
                         table_id)

    def test_numbers_equal_the_api(self):
        have = STATE["have"]
        for domain, days in ((DOMAIN, 90), ("bluemail.io", 30), ("(none)", 365)):
            with self.subTest(domain=domain, days=days):
                since, until, day_list = window(days)
                self.open("#/domain/%s?days=%d&end=%s" % (urllib.parse.quote(domain), days, END))
                chart = self.b.chart("chart-sessions")
                q = {"domain": domain, "since": since, "until": until}
                daily = api_json("/api/v1/summary", dict(q, by="day"))
                tot = daily["totals"]
                cards = self.b.js("return Object.fromEntries([...document.querySelectorAll("
                                  "'.cards .card')].map((c) => [c.classList[1], "
                                  "c.querySelector('.value').textContent]));")
                self.assertEqual(cards, {
                    "successful": fmt_int(tot["successful_sessions"]),
                    "failed": fmt_int(tot["failed_sessions"]),
                    "rate": fmt_rate(tot["failure_rate"]), "reports": fmt_int(tot["reports"]),
                    "reporters": fmt_int(tot["reporters"])})
                groups = {g["day"]: g for g in daily["groups"]}
                sets = {s["label"]: s["data"] for s in chart["sets"]}
                self.assertEqual(sets["Successful sessions"], [
                    groups[d]["successful_sessions"] if d in groups and groups[d]["reports"]
                    else None for d in day_list])
                rt = api_json("/api/v1/summary", dict(q, by="result-type"))
                self.assertEqual([r[:2] for r in self.rows("domain-result-types")],
                                 [[g["result_type"], fmt_int(g["failed_sessions"])]
                                  for g in rt["groups"]])
                rep = api_json("/api/v1/summary", dict(q, by="reporter"))
                want = [[g["reporter"], fmt_int(g["successful_sessions"]),
                         fmt_int(g["failed_sessions"]), fmt_rate(g["failure_rate"]),
                         fmt_int(g["reports"])] for g in rep["groups"]]
                got = self.rows("reporters-table")
                self.assertEqual([r[:5] for r in got], want)
                if have["last_report"]:
                    self.assertEqual([r[5] for r in got],
                                     [fmt_time(g["last_report"]) for g in rep["groups"]])
                for key, tid in (("sending-ip", "sending-ips"), ("mx-host", "mx-hosts")):
                    s = api_json("/api/v1/summary", dict(q, by=key, top=20))
                    k = key.replace("-", "_")
                    self.assertEqual([r[:2] for r in self.rows(tid)],
                                     [[g[k] or "(none)", fmt_int(g["failed_sessions"])]
                                      for g in s["groups"]])
                pt = api_json("/api/v1/summary", dict(q, by="policy-type"))
                self.assertEqual([r[:3] for r in self.rows("policy-types")],
                                 [[g["policy_type"], fmt_int(g["successful_sessions"]),
                                   fmt_int(g["failed_sessions"])] for g in pt["groups"]])
                self.assertClean("domain %s" % domain)

    def test_findings_as_of_the_window(self):
        skip_unless("findings", "GET /api/v1/findings")
        since, _, _ = window(90)
        self.open("#/domain/%s?days=90&end=%s" % (DOMAIN, END))
        res = api_json("/api/v1/findings", {"domain": DOMAIN, "since": since, "now": END})
        self.assertTrue(res["findings"], "findings about %s as of %s" % (DOMAIN, END))
        self.assertEqual(self.b.texts("#domain-findings-title ~ .findings .text"),
                         [f["text"] for f in by_severity(res["findings"])])
        self.assertClean("domain findings")

    def test_policies(self):
        skip_unless("policies", "GET /api/v1/policies")
        since, until, _ = window(90)
        self.open("#/domain/%s?days=90&end=%s" % (DOMAIN, END))
        pol = api_json("/api/v1/policies", {"domain": DOMAIN, "since": since})["policies"]
        rows = self.rows("policies")
        self.assertEqual([[r[0], r[1], r[4]] for r in rows],
                         [[p["policy_type"], p["mode"] or "—", fmt_int(p["reports"])]
                          for p in pol])
        self.assertClean("policies")


class Reports(ConsoleCase):
    def read(self):
        return (self.b.text("#reports-count"),
                self.b.js("return [...document.querySelectorAll('#reports-table tbody tr"
                          "[data-id]')].map((r) => Number(r.dataset.id));"),
                self.b.texts("#reports-table tbody tr[data-id] .dkim"))

    def test_list_equals_the_api(self):
        for f in ({"domain": DOMAIN, "since": "2025-02-01", "until": "2025-03-31"},
                  {}, {"domain": "example.com"}, {"domain": "no-such.example"},
                  {"domain": "krvtz.net"}):
            with self.subTest(filter=f):
                self.open("#/reports" + ("?" + urllib.parse.urlencode(f) if f else ""))
                q = dict(f, limit=50)
                if "until" in q:  # the page's "to" day is included
                    q["until"] = (datetime.date.fromisoformat(q["until"]) +
                                  datetime.timedelta(days=1)).isoformat()
                res = api_json("/api/v1/reports", q)
                count, ids, dkim = self.read()
                self.assertEqual(ids, [r["id"] for r in res["reports"]])
                self.assertEqual(dkim, [r["dkim"]["result"] if r["dkim"] else "—"
                                        for r in res["reports"]])
                if res["reports"]:
                    self.assertEqual(count, "Reports 1–%s of %s" % (
                        fmt_int(len(res["reports"])), fmt_int(res["total"])))
                else:
                    self.assertEqual(count, "0 reports")
                if res["total"] > 50:  # the next page
                    self.b.d.find_element(By.LINK_TEXT, "Next").click()
                    self.b.wait("return document.documentElement.dataset.route === "
                                "location.hash && location.hash.includes('page=2') && "
                                "document.documentElement.dataset.state === 'ready'", "page 2")
                    res2 = api_json("/api/v1/reports", dict(q, offset=50))
                    self.assertEqual(self.read()[1], [r["id"] for r in res2["reports"]])
                self.assertClean("reports %r" % f)

    def test_filter_form(self):
        self.open("#/reports")
        form = self.b.d.find_element(By.ID, "reports-domain")
        form.send_keys(DOMAIN)
        self.b.d.find_element(By.ID, "reports-since").send_keys("02012025")
        self.b.d.find_element(By.CSS_SELECTOR, "form[aria-label] button[type=submit]").click()
        self.b.wait("return location.hash.startsWith('#/reports?domain=') && "
                    "document.documentElement.dataset.state === 'ready'", "filtered list")
        hash_ = self.b.js("return location.hash")
        self.assertIn("domain=" + DOMAIN, hash_)
        self.assertIn("since=2025-02-01", hash_)

    def test_reporter_filter(self):
        skip_unless("reporter", "the reporter filter of /api/v1/reports")
        self.open("#/reports?reporter=Mail.ru")
        res = api_json("/api/v1/reports", {"reporter": "Mail.ru", "limit": 50})
        self.assertEqual(self.read()[1], [r["id"] for r in res["reports"]])
        self.assertClean("reporter filter")

    def read_dkim(self):
        return self.b.js("const dl = document.getElementById('report-dkim');"
                         "return dl ? Object.fromEntries([...dl.querySelectorAll('dt')].map("
                         "(dt) => [dt.textContent, dt.nextElementSibling.textContent])) : null;")

    def test_dkim_verdict(self):
        skip_unless("report", "GET /api/v1/reports/ID")
        cases = [(name, report_from(name)["id"], want) for name, want in DKIM_MAILS.items()]
        cases.append(("a .json file", api_json("/api/v1/reports", {
            "domain": DOMAIN, "limit": 1})["reports"][0]["id"], None))
        seen = set()
        for name, rid, want in cases:
            with self.subTest(report=name):
                d = api_json("/api/v1/reports/%d" % rid)["dkim"]
                if want is None:
                    self.assertIsNone(d)
                else:
                    self.assertEqual((d["result"], d["domain"], d["aligned"], d.get("reason")),
                                     want)
                self.open("#/reports/%d" % rid)
                page = self.read_dkim()
                if d is None:
                    self.assertEqual(page, {"Verdict": "no verdict: not a mail, or dkim = off"})
                    continue
                shown = {"Verdict": d["result"]}
                if d["domain"]:
                    shown["Signing domain"] = d["domain"]
                    shown["Aligned"] = page.get("Aligned")
                    self.assertTrue((page.get("Aligned") or "").startswith(
                        "yes: " if d["aligned"] else "no: "), page)
                if d.get("reason"):
                    shown["Why"] = d["reason"]
                self.assertEqual(page, shown)
                seen.add((d["result"], bool(d["domain"]), d["aligned"]))
                self.assertClean("report %d's DKIM" % rid)
        self.assertEqual(seen, {("fail", True, True), ("fail", True, False),
                                ("none", False, False)})
        # the list shows the verdicts too
        rid = report_from("parsedmarc-google-cardinalhealth.eml")["id"]
        self.open("#/reports?domain=cardinalhealth.ca")
        self.assertEqual(self.read()[1:], ([rid], ["fail"]))

    def test_one_report(self):
        skip_unless("report", "GET /api/v1/reports/ID")
        rid = api_json("/api/v1/reports", {"domain": "example.com", "limit": 1})["reports"][0]["id"]
        self.open("#/reports/%d" % rid)
        want = api_json("/api/v1/reports/%d" % rid)
        self.assertEqual(json.loads(self.b.text("#report-json")), want["report"])
        self.assertEqual(len(self.b.texts("#diagnostics tbody tr")),
                         max(1, len(want["diagnostics"])))
        self.assertClean("report %d" % rid)


class QuarantineAndFindings(ConsoleCase):
    def test_quarantine(self):
        skip_unless("quarantine", "GET /api/v1/quarantine")
        self.open("#/quarantine")
        res = api_json("/api/v1/quarantine", {"limit": 50, "offset": 0})
        self.assertEqual(self.b.text("#quarantine-count"), "%s entries" % fmt_int(res["total"]))
        self.assertEqual(self.b.js("return [...document.querySelectorAll('#quarantine-table "
                                   "tbody tr[data-id]')].map((r) => Number(r.dataset.id));"),
                         [e["id"] for e in res["entries"]])
        self.assertClean("quarantine")

    def read_findings(self):
        return self.b.js("""
            return [...document.querySelectorAll('.findings li')].map((li) => ({
              kind: li.dataset.kind, severity: li.dataset.severity,
              badge: li.querySelector('.badge').textContent,
              domain: (li.querySelector('a.domain') || {}).textContent,
              text: li.querySelector('.text').textContent,
              reports: [...li.querySelectorAll('a[href^="#/reports/"]')].map(
                (a) => Number(a.getAttribute('href').slice(10)))}));""")

    def test_findings(self):
        skip_unless("findings", "GET /api/v1/findings")
        for frag, q in (("#/findings?end=%s" % END, {"now": END}),
                        ("#/findings?domain=%s&end=%s" % (DOMAIN, END),
                         {"domain": DOMAIN, "now": END}),
                        ("#/findings", {})):
            with self.subTest(page=frag):
                self.open(frag)
                res = api_json("/api/v1/findings", q)
                want = [{"kind": f["kind"], "severity": f["severity"], "badge": f["severity"],
                         "domain": fmt_domain(f["domain"]), "text": f["text"],
                         "reports": f["evidence"]["reports"][:10]}
                        for f in by_severity(res["findings"])]
                self.assertEqual(self.read_findings(), want)
                n = len(want)
                self.assertEqual(self.b.text("#findings-as-of"), "%d %s %s" % (
                    n, "finding" if n == 1 else "findings",
                    "as of %s (UTC)" % q["now"] if "now" in q
                    else "as of now (%s)" % fmt_time(res["now"])))
                if "now" in q:
                    kinds = {f["kind"] for f in res["findings"]}
                    self.assertTrue({"critical", "warning"} <=
                                    {f["severity"] for f in res["findings"]}, kinds)
                    if "domain" in q:
                        self.assertEqual({f["domain"] for f in res["findings"]}, {DOMAIN})
                else:  # the data is dated 2025: nothing as of now
                    self.assertEqual(want, [])
                    self.assertIn("Nothing to act on.", self.b.text("#page"))
                self.assertClean("findings %s" % frag)

    def test_findings_as_of_a_day_typed(self):
        skip_unless("findings", "GET /api/v1/findings")
        self.open("#/findings")
        self.b.d.find_element(By.ID, "findings-end").send_keys("04302025")
        self.b.d.find_element(By.CSS_SELECTOR, "form[aria-label] button[type=submit]").click()
        self.b.wait("return location.hash === '#/findings?end=%s' && "
                    "document.documentElement.dataset.state === 'ready'" % END, "as of END")
        self.assertEqual(len(self.read_findings()),
                         len(api_json("/api/v1/findings", {"now": END})["findings"]))


# ---- the record generator ------------------------------------------------------------------------

LONG = "https://collector.example/"


def long_uri(total):
    """An https URI that makes the record value exactly total octets."""
    return LONG + "a" * (total - len("v=TLSRPTv1; rua=") - len(LONG))


# (what, domain, https endpoints, mail addresses, ttl or None, MTA-STS or None)
RECORD_CASES = [
    ("one https", "mail.example", [PUBLIC_URL], [], None, None),
    ("one mailto", "mail.example", [], [MAILBOX], None, None),
    ("https and mailto", "mail.example", [PUBLIC_URL], [MAILBOX], None, None),
    ("two mailto", "example.org", [], ["a@example.org", "b@example.net"], None, None),
    ("three destinations: warning", "mail.example",
     [PUBLIC_URL, "https://backup.example.net/tlsrpt"], ["tlsrpt@example.org"], None, None),
    ("escaping , ! ;", "mail.example", ["https://collector.example/r;a!b,c"], [], None, None),
    ("exactly 255 octets", "mail.example", [long_uri(255)], [], None, None),
    ("256 octets: split", "mail.example", [long_uri(256)], [], None, None),
    ("600 octets: three strings", "mail.example", [long_uri(600)], [], None, None),
    ("upper case, trailing dot", "Mail.Example.", ["HTTPS://Collector.Example/tlsrpt"],
     ["TLSRPT@Collector.EXAMPLE"], None, None),
    ("duplicate dropped", "mail.example", [PUBLIC_URL, "HTTPS://COLLECTOR.EXAMPLE/tlsrpt"], [],
     None, None),
    ("U-label refused", "bücher.example", [PUBLIC_URL], [], None, None),
    ("A-label", "xn--bcher-kva.example", [PUBLIC_URL], [], None, None),
    ("bad scheme http", "mail.example", ["http://collector.example/tlsrpt"], [], None, None),
    ("bad scheme ftp", "mail.example", ["ftp://collector.example/tlsrpt"], [], None, None),
    ("empty domain", "", [PUBLIC_URL], [], None, None),
    ("two addresses in one mailto", "mail.example", [], ["a@x.example,b@y.example"], None, None),
    ("quote in a mailto", "mail.example", [], ['"john doe"@example.net'], None, None),
    ("an IP address is no domain", "192.0.2.1", [PUBLIC_URL], [], None, None),
    ("empty: this collector", "mail.example", [], [], None, None),
    ("TTL 86400", "mail.example", [PUBLIC_URL], [], "86400", None),
    ("bad TTL", "mail.example", [PUBLIC_URL], [], "1h", None),
    ("MTA-STS testing", "mail.example", [PUBLIC_URL], [], None,
     {"mx": ["mx1.mail.example", "mx2.mail.example"], "mode": "testing", "max_age": "604800"}),
    ("MTA-STS enforce, wildcard MX", "mail.example", [], [MAILBOX], "300",
     {"mx": ["*.mail.example"], "mode": "enforce", "max_age": "86400"}),
    ("MTA-STS without MX", "mail.example", [PUBLIC_URL], [], None,
     {"mx": [], "mode": "testing", "max_age": "604800"}),
    ("MTA-STS bad MX", "mail.example", [PUBLIC_URL], [], None,
     {"mx": ["-bad.mail.example"], "mode": "testing", "max_age": "604800"}),
    ("MTA-STS max_age over a year", "mail.example", [PUBLIC_URL], [], None,
     {"mx": ["mx1.mail.example"], "mode": "none", "max_age": "99999999"}),
]


def record_args(domain, https, mail, ttl, sts):
    """The `tlsrptd record` arguments the form stands for."""
    args = ["--domain", domain]
    for u in https + ["mailto:" + m for m in mail]:
        args += ["--rua", u]
    if ttl:
        args += ["--ttl", ttl]
    if sts:
        args.append("--mta-sts")
        for m in sts["mx"]:
            args += ["--mx", m]
        args += ["--mode", sts["mode"], "--max-age", sts["max_age"]]
    return args + ["--public-url", PUBLIC_URL, "--report-mailbox", MAILBOX]


def cli_messages(res):
    """The lines `tlsrptd record` says on stderr, without its "tlsrptd record: "."""
    p = "tlsrptd record: "
    return [ln[len(p):] for ln in res.err.splitlines() if ln.startswith(p)]


class RecordGenerator(ConsoleCase):
    def set_list(self, name, values):
        d = self.b.d
        for btn in d.find_elements(By.CSS_SELECTOR, "#%s-list button" % name):
            btn.click()
        for v in values:
            d.find_element(By.ID, "%s-add" % name).click()
            d.find_elements(By.CSS_SELECTOR, "#%s-list input" % name)[-1].send_keys(v)

    def type_into(self, eid, value):
        el = self.b.d.find_element(By.ID, eid)
        el.clear()
        if value:
            el.send_keys(value)

    def fill(self, n, domain, https, mail, ttl, sts):
        self.open("#/record?case=%d" % n)
        self.type_into("rec-domain", domain)
        self.set_list("rec-https", https)
        self.set_list("rec-mailto", mail)
        if ttl is not None:
            self.type_into("rec-ttl", ttl)
        if sts:
            self.b.d.find_element(By.ID, "rec-sts").click()
            self.type_into("rec-mx", "\n".join(sts["mx"]))
            Select(self.b.d.find_element(By.ID, "rec-mode")).select_by_value(sts["mode"])
            self.type_into("rec-max-age", sts["max_age"])
        if not domain:  # typing nothing is no input event: say it
            self.b.js("document.getElementById('rec-domain').dispatchEvent("
                      "new Event('input'));")
        self.b.wait("return document.getElementById('rec-output').dataset.state === 'done';",
                    "the record")

    def test_cases_equal_tlsrptd_record(self):
        self.assertGreaterEqual(len(RECORD_CASES), 20)
        outcomes = set()
        for n, (what, domain, https, mail, ttl, sts) in enumerate(RECORD_CASES):
            with self.subTest(case=what):
                args = record_args(domain, https, mail, ttl, sts)
                zone = T.run(["record"] + args)
                self.fill(n, domain, https, mail, ttl, sts)
                if zone.rc != 0:
                    outcomes.add("error")
                    self.assertEqual(self.b.text("#rec-error"), cli_messages(zone)[-1], zone)
                    self.assertIsNone(self.b.text("#rec-zone"))
                    continue
                outcomes.add("record")
                lines = zone.out.splitlines()
                self.assertEqual(self.b.text("#rec-zone"), lines[0])
                js = json.loads(T.run(["record"] + args + ["--format", "json"]).out)
                value = T.run(["record"] + args + ["--format", "value"]).out.splitlines()
                self.assertEqual(self.b.text("#rec-table .value"), value[0])
                self.assertEqual([self.b.text("#rec-table .name"), self.b.text("#rec-table .type"),
                                  self.b.text("#rec-table .ttl"), self.b.text("#rec-table .value")],
                                 [js["name"], js["type"], str(js["ttl"]), js["value"]])
                self.assertEqual(self.b.texts("#rec-notes li"), cli_messages(zone))
                if sts:
                    self.assertEqual(self.b.text("#rec-sts-zone"), lines[1])
                    self.assertEqual(self.b.text("#rec-sts-table .value"), value[1])
                    self.assertEqual(self.b.text("#rec-policy"), js["mta_sts"]["policy"])
                    self.assertEqual(self.b.text("#rec-policy-url"), js["mta_sts"]["policy_url"])
                else:
                    self.assertIsNone(self.b.text("#rec-sts-zone"))
        self.assertEqual(outcomes, {"error", "record"})
        self.assertClean("record generator", allow=[(400, "/api/v1/record?")])

    def test_error_marks_the_field(self):
        self.fill(100, "bücher.example", [PUBLIC_URL], [], None, None)
        self.assertEqual(self.b.js("return document.getElementById('rec-domain')"
                                   ".getAttribute('aria-invalid')"), "true")
        self.type_into("rec-domain", "xn--bcher-kva.example")
        self.b.wait("return document.getElementById('rec-output').dataset.state === 'done' && "
                    "!document.getElementById('rec-error');", "the corrected record")
        self.assertIsNone(self.b.js("return document.getElementById('rec-domain')"
                                    ".getAttribute('aria-invalid')"))
        self.assertClean("error marks", allow=[(400, "/api/v1/record?")])

    def test_prefilled_from_the_config(self):
        self.open("#/record")
        self.assertEqual(self.b.js("return [...document.querySelectorAll('#rec-https-list "
                                   "input, #rec-mailto-list input')].map((i) => i.value);"),
                         [PUBLIC_URL, MAILBOX])

    def test_check_the_live_record(self):
        for n, domain in enumerate(("here.example", "elsewhere.example", "split.example",
                                    "broken.example", "none.example")):
            with self.subTest(domain=domain):
                self.fill(200 + n, domain, [PUBLIC_URL], [MAILBOX], None, None)
                self.b.d.find_element(By.ID, "rec-check-button").click()
                self.b.wait("return document.getElementById('rec-check').dataset.state === "
                            "'done';", "the check", timeout=60 * SLOW)
                cli = T.run(["record", "--check", "--domain", domain, "--dns", STATE["dns_addr"],
                             "--rua", PUBLIC_URL, "--rua", "mailto:" + MAILBOX])
                self.assertEqual(self.b.text("#rec-check-text"), cli.out)
                verdict = self.b.text("#rec-check-verdict .badge")
                self.assertEqual(verdict == "reaches", cli.rc == 0, (verdict, cli))
        self.assertClean("record check")


# ---- the token -------------------------------------------------------------------------------------


class Token(ConsoleCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = T.start_daemon(STATE["tmp"], ["--db", STATE["db"], "--api-token", TOKEN],
                                    name="token")
        cls.browser = Browser(STATE["tmp"])

    @classmethod
    def tearDownClass(cls):
        cls.browser.quit()
        rc = cls.daemon.stop()
        cls.daemon.kill()
        if rc != 0:
            raise AssertionError("serve exited %d\n%s" % (rc, cls.daemon.log()))

    @property
    def b(self):
        return self.browser

    @property
    def base(self):
        return self.daemon.base

    def no_data(self):
        self.assertFalse(self.b.js("return document.getElementById('auth').hidden"))
        self.assertEqual(self.b.js("return document.getElementById('page').children.length"), 0)
        self.assertEqual(self.b.js("return document.querySelectorAll('table, canvas').length"), 0)

    def submit(self, token):
        el = self.b.d.find_element(By.ID, "auth-token")
        el.clear()
        el.send_keys(token)
        self.b.d.find_element(By.CSS_SELECTOR, "#auth-form button[type=submit]").click()

    def test_prompt_wrong_and_right_token(self):
        self.open("#/?days=30&end=%s" % END, state="auth")
        self.no_data()
        self.assertTrue(self.b.js("return document.getElementById('auth-error').hidden"))
        asked = [u for u, _ in self.b.requests() if "/api/" in u]
        self.assertEqual([urllib.parse.urlparse(u).path for u in asked], ["/api/v1/config"])
        self.assertClean("token prompt", allow=[(401, "/api/")])
        # a wrong token: said as such, still no data
        self.submit("not-the-token")
        self.b.wait("return !document.getElementById('auth-error').hidden", "the error")
        err = self.b.text("#auth-error")
        self.assertIn("The token was not accepted", err)
        self.assertIn("wrong token", err)
        self.no_data()
        self.assertIsNone(self.b.js("return sessionStorage.getItem('tlsrptd.token')"))
        self.assertClean("wrong token", allow=[(401, "/api/")])
        # the right one: the data, every API call with the Bearer token
        self.submit(TOKEN)
        self.b.wait("return document.documentElement.dataset.state === 'ready'", "the overview")
        self.b.wait_chart("chart-sessions")
        rows = self.b.texts("#domains tbody tr")
        self.assertGreater(len(rows), 5)
        calls = [(u, h) for u, h in self.b.requests() if "/api/" in u]
        self.assertTrue(calls)
        for u, h in calls:
            self.assertEqual(h.get("Authorization"), "Bearer " + TOKEN, u)
        self.assertEqual(self.b.js("return sessionStorage.getItem('tlsrptd.token')"), TOKEN)
        self.assertEqual(self.b.js("return document.cookie"), "")
        self.assertClean("right token")
        # kept for the tab: a reload needs no prompt; forgetting it asks again
        self.b.d.refresh()
        self.b.wait("return document.documentElement.dataset.state === 'ready'", "reload")
        self.b.d.find_element(By.ID, "forget-token").click()
        self.b.wait("return document.documentElement.dataset.state === 'auth'", "the prompt")
        self.no_data()
        self.assertClean("forget", allow=[(401, "/api/")])


# ---- HTTP: assets and headers (no browser) ------------------------------------------------------------


class Assets(unittest.TestCase):
    def get(self, path, headers=(), method=None):
        return STATE["daemon"].get(path, headers=list(headers), method=method)

    def assertSecurityHeaders(self, r):
        self.assertEqual(r.headers.get("content-security-policy"), CSP, r)
        self.assertEqual(r.headers.get("x-content-type-options"), "nosniff", r)
        self.assertEqual(r.headers.get("referrer-policy"), "no-referrer", r)

    def assets(self):
        """/ and every file the page and its modules load."""
        html = self.get("/").body.decode()
        found = ["/"] + re.findall(r'(?:src|href)="(/console/[^"]+)"', html)
        todo = [p for p in found if p.endswith(".js") and "chart" not in p]
        while todo:
            p = todo.pop()
            for m in re.findall(r"from '\./([^']+)'", self.get(p).body.decode()):
                if "/console/" + m not in found:
                    found.append("/console/" + m)
                    todo.append("/console/" + m)
        return found

    def test_every_asset(self):
        types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml", "/": "text/html; charset=utf-8"}
        paths = self.assets()
        self.assertIn("/console/chart.min.js", paths)
        self.assertGreater(len(paths), 10)
        for p in paths:
            with self.subTest(path=p):
                r = self.get(p)
                self.assertEqual(r.status, 200, r)
                self.assertSecurityHeaders(r)
                ext = "/" if p == "/" else os.path.splitext(p)[1]
                self.assertEqual(r.headers["content-type"], types[ext])
                etag = r.headers["etag"]
                self.assertRegex(etag, r'^"[0-9a-f]{20}"$')  # strong
                self.assertEqual(int(r.headers["content-length"]), len(r.body))
                # current copy: 304, with the headers and no body
                for inm in (etag, "W/" + etag, '"other", ' + etag, "*"):
                    r304 = self.get(p, ["If-None-Match: " + inm])
                    self.assertEqual(r304.status, 304, (inm, r304))
                    self.assertEqual(r304.body, b"")
                    self.assertSecurityHeaders(r304)
                self.assertEqual(self.get(p, ['If-None-Match: "0000"']).status, 200)
                # gzip when taken, and only then
                gz = self.get(p, ["Accept-Encoding: gzip, deflate, br"])
                if gz.headers.get("content-encoding") == "gzip":
                    self.assertEqual(gzip.decompress(gz.body), r.body)
                    self.assertNotEqual(gz.headers["etag"], etag)
                    self.assertEqual(gz.headers.get("vary"), "Accept-Encoding")
                    self.assertEqual(self.get(p, ["If-None-Match: " + gz.headers["etag"]]).status,
                                     304)
                    self.assertLess(len(gz.body), len(r.body))
                else:
                    self.assertLess(len(r.body), 200, "%s is not gzipped" % p)
                for ae in ("gzip;q=0", "br", "identity", "deflate, gzip;q=0.0"):
                    self.assertNotIn("content-encoding", self.get(p, ["Accept-Encoding: " +
                                                                      ae]).headers, ae)
                self.assertEqual(self.get(p, ["Accept-Encoding: *"]).headers.get(
                    "content-encoding"), gz.headers.get("content-encoding"))

    def test_api_answers_gzipped_when_taken(self):
        """The console's summaries are large: the API gzips JSON of 1 KiB or more for a
        client that takes gzip, and only then."""
        for path in ("/api/v1/summary?by=day", "/api/v1/summary?by=domain", "/api/v1/reports"):
            with self.subTest(path=path):
                plain = self.get(path)
                self.assertGreater(len(plain.body), 1024)
                self.assertNotIn("content-encoding", plain.headers)
                gz = self.get(path, ["Accept-Encoding: gzip, deflate, br"])
                self.assertEqual(gz.headers.get("content-encoding"), "gzip", gz)
                self.assertEqual(json.loads(gzip.decompress(gz.body)), plain.json())
                self.assertLess(len(gz.body), len(plain.body))
                self.assertNotIn("content-encoding",
                                 self.get(path, ["Accept-Encoding: gzip;q=0"]).headers)
        small = self.get("/api/v1/config", ["Accept-Encoding: gzip"])
        self.assertNotIn("content-encoding", small.headers)
        self.assertEqual(small.json()["public_url"], PUBLIC_URL)

    def test_chartjs_is_debians(self):
        with open(CHARTJS, "rb") as f:
            self.assertEqual(self.get("/console/chart.min.js").body, f.read())

    def test_not_found_and_methods(self):
        for p in ("/console/nope.js", "/console/", "/console", "/index.html.bak"):
            r = self.get(p)
            self.assertEqual(r.status, 404, (p, r))
            if p.startswith("/console"):
                self.assertSecurityHeaders(r)
        r = self.get("/", method="POST")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers.get("allow"), "GET, HEAD")
        self.assertSecurityHeaders(r)
        r = self.get("/", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        self.assertSecurityHeaders(r)

    def test_no_inline_script_or_style(self):
        for p in self.assets():
            if p.endswith(".js") or p.endswith(".svg"):
                continue
            body = self.get(p).body.decode()
            if p == "/":
                self.assertNotRegex(body, r"<script(?![^>]*\bsrc=)", "inline script")
                self.assertNotRegex(body, r"\sstyle=|<style|\son[a-z]+=", "inline style/handler")
        for p in self.assets():
            if p.endswith(".js") and "chart" not in p:
                src = self.get(p).body.decode()
                self.assertNotRegex(src, r"innerHTML|outerHTML\s*=|insertAdjacentHTML|eval\(|"
                                    r"new Function|document\.write|setAttribute\('style'", p)


class RecordApi(unittest.TestCase):
    CASES = [
        ["--domain", "mail.example"],
        ["--domain", "mail.example", "--rua", PUBLIC_URL, "--ttl", "86400"],
        ["--domain", "Mail.Example.", "--rua", "https://c.example/a;b", "--rua",
         "mailto:x@y.example", "--rua", "mailto:z@y.example"],
        ["--domain", "mail.example", "--mta-sts", "--mx", "mx1.mail.example", "--mx",
         "mx2.mail.example", "--mode", "enforce", "--max-age", "86400"],
        ["--domain", "mail.example", "--rua", long_uri(600)],
    ]
    ERRORS = [
        ["--domain", "bücher.example"],
        ["--domain", ""],
        ["--domain", "mail.example", "--rua", "http://x.example"],
        ["--domain", "mail.example", "--ttl", "-1"],
        ["--domain", "mail.example", "--mx", "mx1.mail.example"],
        ["--domain", "mail.example", "--mta-sts"],
        ["--domain", "mail.example", "--mta-sts", "--mx", "mx.mail.example", "--mode", "strict"],
        ["--domain", "mail.example", "--ttl", "1", "--ttl", "2"],
    ]

    @staticmethod
    def to_query(args):
        q, i = [], 0
        while i < len(args):
            k = args[i][2:].replace("-", "_")
            if k == "mta_sts":
                q.append(("mta_sts", "1"))
                i += 1
            else:
                q.append((k, args[i + 1]))
                i += 2
        return q

    @staticmethod
    def cli(args):
        return T.run(["record"] + args + ["--public-url", PUBLIC_URL, "--report-mailbox", MAILBOX])

    def test_json_equals_the_command(self):
        for args in self.CASES:
            with self.subTest(args=args):
                cli = self.cli(args + ["--format", "json"])
                self.assertEqual(cli.rc, 0, cli)
                got = api_json("/api/v1/record", self.to_query(args))
                self.assertEqual(got, json.loads(cli.out))
                ex = api_json("/api/v1/record", self.to_query(args) + [("explain", "1")])
                zone = self.cli(args).out.splitlines()
                self.assertEqual(ex.pop("zone"), zone[0])
                self.assertEqual(ex.pop("notes"), cli_messages(cli))
                if "mta_sts" in ex:
                    self.assertEqual(ex["mta_sts"].pop("zone"), zone[1])
                self.assertEqual(ex, got)

    def test_errors_equal_the_command(self):
        for args in self.ERRORS:
            with self.subTest(args=args):
                cli = self.cli(args)
                self.assertIn(cli.rc, (T.EX_USAGE, T.EX_DATAERR), cli)
                r = api("/api/v1/record", self.to_query(args), status=400)
                body = r.json()
                self.assertEqual(body["detail"], cli_messages(cli)[-1])
                self.assertEqual(body["exit"], cli.rc)
        r = api("/api/v1/record", {"domain": "mail.example", "format": "zone"}, status=400)
        self.assertEqual(r.json()["detail"], "unknown parameter 'format'")
        r = api("/api/v1/record", [("rua", "mailto:a%d@x.example" % i) for i in range(33)],
                status=400)
        self.assertEqual(r.json()["detail"], "at most 32 --rua values")

    def test_check(self):
        for domain in ("here.example", "elsewhere.example", "none.example"):
            with self.subTest(domain=domain):
                v = api_json("/api/v1/record/check", {"domain": domain})
                cli = T.run(["record", "--check", "--domain", domain, "--dns", STATE["dns_addr"],
                             "--public-url", PUBLIC_URL, "--report-mailbox", MAILBOX])
                self.assertEqual(v["text"], cli.out)
                self.assertEqual(v["exit"], cli.rc)
                self.assertEqual(v["message"], cli.out.splitlines()[-1])
                self.assertEqual(v["dns"], STATE["dns_addr"])
                self.assertEqual(v["collector"], [PUBLIC_URL, "mailto:" + MAILBOX])
        v = api_json("/api/v1/record/check", {"domain": "here.example"})
        self.assertEqual((v["verdict"], v["lookup"], v["valid"], v["record"]),
                         ("reaches", "ok", True, "v=TLSRPTv1; rua=" + PUBLIC_URL))
        self.assertEqual(v["rua"], [{"uri": PUBLIC_URL, "this_collector": True}])
        v = api_json("/api/v1/record/check", {"domain": "none.example"})
        self.assertEqual((v["verdict"], v["lookup"], v["record"]), ("no-policy", "nxdomain", None))
        v = api_json("/api/v1/record/check", {"domain": "broken.example"})
        self.assertEqual((v["verdict"], v["valid"]), ("invalid", False))
        self.assertEqual(v["error"]["column"], 17)
        r = api("/api/v1/record/check", {"domain": "mail.example", "ttl": "1"}, status=400)
        self.assertEqual(r.json()["detail"], "unknown parameter 'ttl'")

    def test_slow_check_is_not_cut_off(self):
        """A check waits for DNS (two tries of 3 s against a server that never answers):
        the daemon's cut-off of clients that send no complete request within
        connection_timeout must not end a request that is complete and being answered."""
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never answers
        silent.bind(("127.0.0.1", 0))
        tmp = tempfile.mkdtemp(prefix="tlsrptd-it-slow-", dir=STATE["tmp"])
        d = T.start_daemon(tmp, ["--db", STATE["db"], "--public-url", PUBLIC_URL,
                                 "--connection-timeout", "2", "--dns",
                                 "127.0.0.1:%d" % silent.getsockname()[1]], name="slow")
        try:
            t0 = time.monotonic()
            r = api("/api/v1/record/check", {"domain": "here.example"}, daemon=d, status=None)
            self.assertEqual(r.status, 200, r)
            self.assertGreater(time.monotonic() - t0, 5)
            v = r.json()
            self.assertEqual((v["lookup"], v["verdict"], v["exit"]),
                             ("timeout", "lookup-failed", T.EX_TEMPFAIL))
        finally:
            silent.close()
            self.assertEqual(d.stop(), 0, d.log())

    def test_config(self):
        self.assertEqual(api_json("/api/v1/config"),
                         {"version": T.run(["--version"]).out.split()[-1],
                          "public_url": PUBLIC_URL, "report_mailbox": MAILBOX})


if __name__ == "__main__":
    T.main()
