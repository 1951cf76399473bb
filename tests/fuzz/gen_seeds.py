#!/usr/bin/env python3
"""Write the structure-aware seeds of the fuzz corpus: reports at each bound of
jsonscan.h and one past it (huge counts, huge strings), the hostile reports of
issue 11, and HTTP requests carrying them (tests/fuzz/fuzz_http.c's framing:
request line, headers, empty line, body).

    tests/fuzz/gen_seeds.py            # (re)writes corpus/{report,mime,http}/seed-bound-*

Everything is generated here (nothing from ../shared), deterministically (gzip
without a time stamp), so the files can be committed and regenerated alike.
Python 3 standard library only."""
import base64
import gzip
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# the defaults of include/tlsrptd/jsonscan.h
MAX_STRING = 16384
MAX_VALUES = 250000
MAX_POLICIES = 1000
MAX_FAILURE_DETAILS = 10000
MAX_POLICY_STRINGS = 1000
MAX_POLICY_DOMAINS = 100
MAX_KEYS = 100
MAX_DEPTH = 32


def gz(data):
    return gzip.compress(data, 9, mtime=0)


def report(policies, extra=None, rid="bound"):
    r = {"organization-name": "Seed Sender", "date-range": {
        "start-datetime": "2026-11-01T00:00:00Z", "end-datetime": "2026-11-01T23:59:59Z"},
        "contact-info": "tlsrpt@seed.example", "report-id": rid, "policies": policies}
    if extra:
        r.update(extra)
    return r


def policy(domain="mail.example", details=None, **pol):
    p = {"policy": dict({"policy-type": "sts", "policy-domain": domain}, **pol),
         "summary": {"total-successful-session-count": 1,
                     "total-failure-session-count": len(details or [])}}
    if details is not None:
        p["failure-details"] = details
    return p


def count_values(v):
    if isinstance(v, dict):
        return 1 + sum(count_values(x) for x in v.values())
    if isinstance(v, list):
        return 1 + sum(count_values(x) for x in v)
    return 1


def text(r):
    return json.dumps(r, separators=(",", ":")).encode()


def bounds():
    """(name, JSON text) at each bound and one past it."""
    detail = {"result-type": "x", "failed-session-count": 1}
    out = []
    for n in (MAX_POLICIES, MAX_POLICIES + 1):
        out.append(("policies-%d" % n, text(report([policy() for _ in range(n)]))))
    for n in (MAX_FAILURE_DETAILS, MAX_FAILURE_DETAILS + 1):
        out.append(("failure-details-%d" % n, text(report([policy(details=[detail] * n)]))))
    for key in ("mx-host", "policy-string"):
        for n in (MAX_POLICY_STRINGS, MAX_POLICY_STRINGS + 1):
            out.append(("%s-%d" % (key, n),
                        text(report([policy(**{key: ["mx%d.example" % i for i in range(n)]})]))))
    for n in (MAX_POLICY_DOMAINS, MAX_POLICY_DOMAINS + 1):
        out.append(("domains-%d" % n,
                    text(report([policy("D%d.Example." % i) for i in range(n)]))))
    # the same domain in other letter cases and with a dot does not count again
    out.append(("domains-same-%d" % (MAX_POLICY_DOMAINS + 1),
                text(report([policy("d0.example" if i % 2 else "D0.EXAMPLE.")
                             for i in range(MAX_POLICY_DOMAINS + 1)]))))
    for n in (MAX_STRING, MAX_STRING + 1):
        out.append(("string-%d" % n, text(report([policy("a" * n)]))))
        out.append(("key-%d" % n, text(report([policy()], {"k" * n: 1}))))
    out.append(("number-%d" % (MAX_STRING + 1),
                text(report([policy()]))[:-1] + b',"n":' + b"1" * (MAX_STRING + 1) + b"}"))
    for n in (MAX_KEYS - 5, MAX_KEYS - 4):  # the report's own 5 keys, plus n
        out.append(("keys-%d" % (n + 5), text(report([policy()],
                                                     {"x%d" % i: i for i in range(n)}))))
    # values: the report's own and arrays of zeros make up MAX_VALUES (+1)
    base = report([policy()], {"z": []})
    own = count_values(base)
    for total in (MAX_VALUES, MAX_VALUES + 1):
        extra = total - own  # inner arrays and their zeros
        m = -(-extra // 10001)
        zeros = extra - m
        arrays = [[0] * min(10000, zeros - 10000 * i) for i in range(m)]
        r = report([policy()], {"z": arrays})
        assert count_values(r) == total, (count_values(r), total)
        out.append(("values-%d" % total, text(r)))
    out.append(("depth-%d" % MAX_DEPTH,
                text(report([policy()]))[:-1] + b',"d":' + b"[" * (MAX_DEPTH - 1) +
                b"]" * (MAX_DEPTH - 1) + b"}"))
    out.append(("depth-%d" % (MAX_DEPTH + 1),
                text(report([policy()]))[:-1] + b',"d":' + b"[" * MAX_DEPTH +
                b"]" * MAX_DEPTH + b"}"))
    # escaped keys are the same keys to the parser, so to the bounds too
    esc = text(report([policy() for _ in range(MAX_POLICIES + 1)]))
    out.append(("policies-escaped-key-%d" % (MAX_POLICIES + 1),
                esc.replace(b'"policies"', b'"polic\\u0069es"', 1)))
    return out


def bombs():
    """The hostile reports of issue 11, gzipped (small as files)."""
    head = text(report([]))[:-2]  # ...,"policies":[
    out = [("bomb-failure-details-600000", gz(
        head + b'{"policy":{"policy-type":"sts","policy-domain":"mail.example"},'
        b'"summary":{"total-successful-session-count":1,"total-failure-session-count":600000},'
        b'"failure-details":[' + b",".join([b'{"result-type":"x","failed-session-count":1}'] *
                                           600000) + b"]}]}"))]
    out.append(("bomb-policy-domain-30MiB", gz(
        head + b'{"policy":{"policy-type":"sts","policy-domain":"' + b"a" * (30 << 20) +
        b'"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}')))
    out.append(("bomb-domains-13000", gz(head + b",".join(
        text(policy("d%d.example" % i)) for i in range(13000)) + b"]}")))
    keys = b"".join(b',"k%d":0' % i for i in range(20000))
    out.append(("bomb-keys-20000", gz(text(report([policy()]))[:-1] + keys + b"}")))
    return out


def http(body, ctype="application/tlsrpt+json", method="POST", path="/tlsrpt", headers=(),
         length=True):
    lines = ["%s %s" % (method, path), "Content-Type: " + ctype] + list(headers)
    if length:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def lying_gzip(data, claim):
    """gzip of data whose trailer claims `claim` bytes."""
    g = bytearray(gz(data))
    g[-4:] = (claim & 0xffffffff).to_bytes(4, "little")
    return bytes(g)


def mime(body_gz):
    b64 = base64.encodebytes(body_gz)
    return (b"From: seed@seed.example\r\nSubject: seed\r\nMIME-Version: 1.0\r\n"
            b"TLS-Report-Domain: mail.example\r\n"
            b"Content-Type: multipart/report; report-type=tlsrpt; boundary=\"B\"\r\n\r\n"
            b"--B\r\nContent-Type: text/plain\r\n\r\nseed\r\n"
            b"--B\r\nContent-Type: application/tlsrpt+gzip\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 + b"--B--\r\n")


def write(sub, name, data):
    d = os.path.join(CORPUS, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-bound-" + name), "wb") as f:
        f.write(data)


def main():
    small = text(report([policy(details=[{"result-type": "certificate-expired",
                                          "failed-session-count": 2}])], rid="small"))
    for name, data in bounds():
        if len(data) <= 64 << 10:
            write("report", name + ".json", data)
        write("mime", name + ".eml", mime(gz(data)))
        write("http", name + ".gz.http", http(gz(data), "application/tlsrpt+gzip"))
    for name, data in bombs():
        write("http", name + ".http", http(data, "application/tlsrpt+gzip"))
    # the request path itself
    write("http", "plain.http", http(small))
    write("http", "content-encoding.http", http(gz(small), headers=["Content-Encoding: gzip"]))
    write("http", "content-encoding-twice.http",
          http(gz(gz(small)), headers=["Content-Encoding: gzip"]))
    write("http", "multi-member.http", http(gz(small[:50]) + gz(small[50:]),
                                            "application/gzip"))
    write("http", "isize-lies.http", http(lying_gzip(small + b" " * 100000, 10),
                                         "application/octet-stream"))
    write("http", "isize-lies-encoding.http",
          http(lying_gzip(small + b" " * 100000, 10), headers=["Content-Encoding: x-gzip"]))
    write("http", "chunked.http", http(small, headers=["Transfer-Encoding: chunked"],
                                       length=False))
    write("http", "get.http", http(b"", method="GET"))
    write("http", "no-length.http", http(small, length=False))
    write("http", "too-long.http", http(small, headers=["Content-Length: 99999999999"],
                                        length=False))
    write("http", "media-type.http", http(small, "text/plain"))
    write("http", "encoding-br.http", http(small, headers=["Content-Encoding: br"]))
    write("http", "other-path.http", http(small, path="/tlsrpt-not"))
    write("http", "below-path.http", http(small, path="/tlsrpt/mail.example"))
    write("http", "mime-body.http", http(mime(gz(small)), "application/octet-stream"))
    write("http", "bad-gzip.http", http(gz(small)[:-9], headers=["Content-Encoding: gzip"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
