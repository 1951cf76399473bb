#!/usr/bin/env python3
"""bench/console_load.py: first loads of the console's overview in headless Chromium.

  console_load.py BASE_URL FRAGMENT RUNS

Each run is a first load: the browser cache is cleared and disabled (DevTools
Network.clearBrowserCache, Network.setCacheDisabled), then BASE_URL/FRAGMENT is
opened and the run ends when the page says it is ready (<html data-state="ready">)
and both charts are drawn. From the DevTools network events of the run it prints
one line:

  run=N bytes=B body=B assets=B api=B requests=N api_ms=T api_calls=N load_ms=T

bytes: everything transferred (encodedDataLength: headers and the gzip bodies),
body: the response bodies alone; api_ms: from the first request of the
overview's data calls (GET /api/v1/summary) to the end of the last one, as the
browser saw it; load_ms: from navigation to ready. Debian's chromium,
chromium-driver and python3-selenium are needed (scripts/deps.sh test)."""
import json
import sys
import tempfile
import time

sys.dont_write_bytecode = True
try:
    from selenium import webdriver
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")  # Debian's python3-selenium
    from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900"]


def browser(profile):
    opts = webdriver.ChromeOptions()
    for a in FLAGS + ["--user-data-dir=" + profile]:
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.set_page_load_timeout(600)
    d.set_script_timeout(600)
    return d


def events(d):
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        yield m["method"], m.get("params", {})


def one_run(d, url):
    d.get("about:blank")
    list(events(d))
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.clearBrowserCache", {})
    d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    t0 = time.monotonic()
    d.get(url)
    deadline = t0 + 600
    while not d.execute_script(
            "return document.documentElement.dataset.state === 'ready' && window.Chart && "
            "['chart-sessions', 'chart-failures'].every((id) => { "
            "const c = document.getElementById(id); return !c || Chart.getChart(c); });"):
        if time.monotonic() > deadline:
            raise SystemExit("console_load: the overview was not ready within 600 s")
        time.sleep(0.01)
    load_ms = (time.monotonic() - t0) * 1000
    time.sleep(0.3)  # the last loadingFinished events
    urls, sent, done, size, body = {}, {}, {}, {}, {}
    for method, p in events(d):
        rid = p.get("requestId")
        if method == "Network.requestWillBeSent":
            urls[rid] = p["request"]["url"]
            sent.setdefault(rid, p["timestamp"])
        elif method == "Network.dataReceived":
            body[rid] = body.get(rid, 0) + p.get("encodedDataLength", 0)
        elif method == "Network.loadingFinished":
            done[rid] = p["timestamp"]
            size[rid] = p["encodedDataLength"]
    http = [r for r in urls if urls[r].startswith("http")]
    api = [r for r in http if "/api/" in urls[r]]
    overview = [r for r in api if "/api/v1/summary" in urls[r] and r in done]
    api_ms = ((max(done[r] for r in overview) - min(sent[r] for r in overview)) * 1000
              if overview else float("nan"))
    return {"bytes": sum(size.get(r, 0) for r in http),
            "body": sum(body.get(r, 0) for r in http),
            "assets": sum(size.get(r, 0) for r in http if r not in api),
            "api": sum(size.get(r, 0) for r in api), "requests": len(http),
            "api_ms": api_ms, "api_calls": len(overview), "load_ms": load_ms}


def main():
    if len(sys.argv) != 4:
        raise SystemExit("usage: console_load.py BASE_URL FRAGMENT RUNS")
    base, frag, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with tempfile.TemporaryDirectory(prefix="console-load-") as profile:
        d = browser(profile)
        try:
            for n in range(runs):
                r = one_run(d, base + "/" + frag)
                print("run=%d bytes=%d body=%d assets=%d api=%d requests=%d api_ms=%.1f "
                      "api_calls=%d load_ms=%.1f" % (n + 1, r["bytes"], r["body"], r["assets"],
                                                     r["api"], r["requests"], r["api_ms"],
                                                     r["api_calls"], r["load_ms"]), flush=True)
        finally:
            d.quit()


if __name__ == "__main__":
    main()
