-- post_report.lua: wrk script of the HTTP benchmark (bench/http.sh).
--
--   wrk -t2 -c64 -d20s --latency -s bench/post_report.lua http://127.0.0.1:PORT/tlsrpt
--
-- Every request POSTs a distinct, valid RFC 8460 report (Content-Type
-- application/tlsrpt+json, compact JSON of about 1.5 KB) to the URL's path:
-- two policies (sts with policy-string and mx-host, then tlsa or
-- no-policy-found) and four failure details. The report-id is
-- "wrk-<run>-<thread>-<counter>" (run: the start time in seconds, times 1000 plus
-- the script argument when there is one; thread: 1..t,
-- counter: per thread), so no two requests of a run are duplicates; session
-- counts, addresses, the policy domain and the day vary with the counter.
--
-- done() adds up, over all threads, the requests built by request(), the
-- responses by status and wrk's errors, and prints one line for bench/http.sh:
--   BENCH duration_s=D responses=R rps=R/D created=N created_rps=N/D
--         p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. sent=S unanswered=U
--         err_connect=.. err_read=.. err_write=.. err_timeout=.. status_XXX=..
-- "unanswered" = requests written but not answered when wrk stopped (at most
-- one per connection): wrk drops them at the end of the run, though the server
-- may have stored them. wrk calls request() once on the first thread before
-- the run to check the request; that request is never sent and is not counted.

local threads = {}

-- setup() runs in wrk's main Lua state, once per thread, before init().
function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
   thread:set("run", os.time())
   thread:set("preflight", #threads == 1 and 1 or 0)
end

-- Per-thread globals (read back with thread:get in done()).
tid, run, preflight = 0, 0, 0
sent = 0
counts = {}

local n = 0
local headers = { ["Content-Type"] = "application/tlsrpt+json" }

local orgs = { "Google Inc.", "Microsoft Corporation", "Mail.Ru", "Mimecast", "mx.relay.example" }
local contacts = { "smtp-tls-reporting@google.com", "tlsrpt-noreply@microsoft.com",
                   "tlsrpt@corp.mail.ru", "tlsrpt@mimecast.com", "postmaster@relay.example" }
local domains = { "acme-mail.example", "bluecloud.example", "northlabs.example",
                  "riverbank.example", "stonehosting.example", "swiftmedia.example",
                  "greenenergy.example", "silverstudio.example" }
local results = { "certificate-expired", "starttls-not-supported", "validation-failure",
                  "certificate-host-mismatch", "sts-policy-fetch-error", "tlsa-invalid" }

local T = '{"organization-name":"%s","date-range":{"start-datetime":"2026-11-%02dT00:00:00Z",'
   .. '"end-datetime":"2026-11-%02dT23:59:59Z"},"contact-info":"%s","report-id":"%s",'
   .. '"policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1",'
   .. '"mode: enforce","mx: mx1.%s","mx: mx2.%s","max_age: 604800"],'
   .. '"policy-domain":"%s","mx-host":["mx1.%s","mx2.%s"]},'
   .. '"summary":{"total-successful-session-count":%d,"total-failure-session-count":%d},'
   .. '"failure-details":['
   .. '{"result-type":"%s","sending-mta-ip":"198.51.100.%d","receiving-mx-hostname":"mx1.%s",'
   .. '"receiving-ip":"203.0.113.%d","failed-session-count":%d},'
   .. '{"result-type":"starttls-not-supported","sending-mta-ip":"2001:db8:%x::25",'
   .. '"receiving-mx-hostname":"mx2.%s","receiving-ip":"2001:db8:1::%x",'
   .. '"failed-session-count":%d,"failure-reason-code":"no STARTTLS in EHLO response"},'
   .. '{"result-type":"validation-failure","sending-mta-ip":"192.0.2.%d",'
   .. '"receiving-mx-hostname":"mx1.%s","receiving-ip":"203.0.113.%d",'
   .. '"failed-session-count":%d}]},'
   .. '{"policy":{"policy-type":"%s","policy-string":["3 1 1 %08X%08X%08X%08X%08X%08X%08X%08X"],'
   .. '"policy-domain":"%s"},"summary":{"total-successful-session-count":%d,'
   .. '"total-failure-session-count":%d},"failure-details":[{"result-type":"%s",'
   .. '"sending-mta-ip":"198.51.100.%d","receiving-ip":"192.0.2.%d","failed-session-count":%d}]}]}'

-- A small deterministic generator (seeded per thread), so bodies differ between requests.
local x = 0
local function rnd(m)
   x = x * 16807 % 2147483647 -- Park-Miller: exact in LuaJIT's doubles
   return x % m
end

-- init(args): `wrk ... URL -- N` makes N part of every report-id (with
-- several wrk processes started in the same second, give each its own N).
function init(args)
   x = tid * 7919
   if args[1] then
      run = run * 1000 + tonumber(args[1])
   end
end

function request()
   n = n + 1
   sent = sent + 1
   local k = (tid * 1000003 + n) % 5 + 1
   local d1 = domains[n % #domains + 1]
   local d2 = domains[(n + 3) % #domains + 1]
   local day = n % 28 + 1
   local f1, f2, f3, f4 = rnd(50) + 1, rnd(20) + 1, rnd(9) + 1, rnd(30) + 1
   local tlsa = rnd(2) == 0
   local body = string.format(T, orgs[k], day, day, contacts[k],
      string.format("wrk-%d-%d-%d", run, tid, n),
      d1, d1, d1, d1, d1, rnd(100000) + f1 + f2 + f3, f1 + f2 + f3,
      results[rnd(#results) + 1], rnd(254) + 1, d1, rnd(254) + 1, f1,
      rnd(65535), d1, rnd(65535), f2,
      rnd(254) + 1, d1, rnd(254) + 1, f3,
      tlsa and "tlsa" or "no-policy-found",
      rnd(2147483647), rnd(2147483647), rnd(2147483647), rnd(2147483647),
      rnd(2147483647), rnd(2147483647), rnd(2147483647), rnd(2147483647),
      d2, rnd(5000), f4, tlsa and "tlsa-invalid" or "certificate-host-mismatch",
      rnd(254) + 1, rnd(254) + 1, f4)
   return wrk.format("POST", wrk.path, headers, body)
end

function response(status, hdrs, body)
   counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
   local by_status, nsent, nresp = {}, 0, 0
   for _, t in ipairs(threads) do
      for status, c in pairs(t:get("counts")) do
         by_status[status] = (by_status[status] or 0) + c
         nresp = nresp + c
      end
      nsent = nsent + t:get("sent") - t:get("preflight")
   end
   local secs = summary.duration / 1e6
   local created = by_status[201] or 0
   local e = summary.errors
   local line = string.format("BENCH duration_s=%.3f responses=%d rps=%.1f created=%d"
      .. " created_rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f sent=%d"
      .. " unanswered=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d",
      secs, nresp, nresp / secs, created, created / secs,
      latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
      latency:percentile(99) / 1e3, latency.max / 1e3, nsent, nsent - nresp,
      e.connect, e.read, e.write, e.timeout)
   local statuses = {}
   for status in pairs(by_status) do
      table.insert(statuses, status)
   end
   table.sort(statuses)
   for _, status in ipairs(statuses) do
      line = line .. string.format(" status_%d=%d", status, by_status[status])
   end
   io.write(line .. "\n")
end
