#!/usr/bin/env python3
"""`tlsrptd record`: the _smtp._tls TXT record (RFC 8460 §3) through the real binary.

Golden outputs of the three formats, 255-octet splitting, defaults from a config
file (-c) and flags over it, the MTA-STS record and policy, exit codes 64/65,
--parse over the grammar, and --check against a real DNS server: dnsmasq
(Debian's dnsmasq-base) started on 127.0.0.1 with --txt-record lines, plus a
few lines of Python standing in for a server that answers SERVFAIL or never
answers. dnsmasq missing is a failure, not a skip (CI installs it)."""
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

HERE_URL = "https://collector.example/tlsrpt"
HERE_MAILBOX = "tlsrpt@collector.example"
EX_TEMPFAIL = 75


def record(*args, **kw):
    return T.run(["record"] + list(args), **kw)


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


class Generate(T.TlsrptdTestCase):
    def test_zone_golden(self):
        res = record("--domain", "mail.example", "--rua", HERE_URL)
        self.assertExit(res, 0)
        self.assertEqual(res.out, '_smtp._tls.mail.example. 3600 IN TXT '
                                  '"v=TLSRPTv1; rua=https://collector.example/tlsrpt"\n')
        self.assertEqual(res.err, "")

    def test_value_golden(self):
        res = record("--domain", "Mail.Example.", "--rua", HERE_URL, "--rua",
                     "mailto:" + HERE_MAILBOX, "--format", "value")
        self.assertExit(res, 0)
        self.assertEqual(res.out, "v=TLSRPTv1; rua=https://collector.example/tlsrpt,"
                                  "mailto:tlsrpt@collector.example\n")

    def test_json_golden(self):
        res = record("--domain", "mail.example", "--rua", HERE_URL, "--ttl", "86400",
                     "--format=json")
        self.assertExit(res, 0)
        self.assertEqual(res.out, '{"name": "_smtp._tls.mail.example", "type": "TXT", '
                                  '"ttl": 86400, "value": '
                                  '"v=TLSRPTv1; rua=https://collector.example/tlsrpt"}\n')
        self.assertEqual(json.loads(res.out)["ttl"], 86400)

    def test_split_at_255_octets(self):
        # "v=TLSRPTv1; rua=" is 16 octets; a URI of 239 makes the value exactly 255
        for total in (255, 256, 600):
            uri = "https://collector.example/"
            uri += "a" * (total - 16 - len(uri))
            res = record("--domain", "mail.example", "--rua", uri)
            self.assertExit(res, 0)
            value = "v=TLSRPTv1; rua=" + uri
            self.assertEqual(len(value), total)
            prefix = "_smtp._tls.mail.example. 3600 IN TXT "
            self.assertTrue(res.out.startswith(prefix), res)
            strings = res.out[len(prefix):].rstrip("\n")
            pieces = [value[i:i + 255] for i in range(0, len(value), 255)]
            self.assertEqual(strings, " ".join('"%s"' % p for p in pieces))
            self.assertEqual(len(pieces), {255: 1, 256: 2, 600: 3}[total])
            # the other formats keep the value whole
            res = record("--domain", "mail.example", "--rua", uri, "--format", "json")
            self.assertEqual(json.loads(res.out)["value"], value)

    def test_normalisation_and_duplicates(self):
        res = record("--domain", "mail.example", "--format", "value",
                     "--rua", "HTTPS://Collector.Example/a;b,c!",
                     "--rua", "https://collector.example/a%3bb%2c%2Cc%21",
                     "--rua", "https://collector.example/a%3Bb%2Cc%21")
        self.assertExit(res, 0)
        self.assertEqual(res.out, "v=TLSRPTv1; rua=https://collector.example/a%3Bb%2Cc%21,"
                                  "https://collector.example/a%3Bb%2C%2Cc%21\n")
        self.assertIn("percent-encoded ';' as %3B, ',' as %2C, '!' as %21 (RFC 8460 §3)",
                      res.err)
        self.assertIn("duplicate destination https://collector.example/a%3Bb%2Cc%21 dropped",
                      res.err)
        self.assertNotIn("warning", res.err)

    def test_more_than_two_destinations_warns(self):
        res = record("--domain", "mail.example", "--format", "value", "--rua", HERE_URL,
                     "--rua", "mailto:a@mail.example", "--rua", "mailto:b@mail.example")
        self.assertExit(res, 0)
        self.assertIn("warning: 3 destinations: some senders deliver to the first only",
                      res.err)
        self.assertEqual(res.out.count(","), 2)

    def test_defaults_from_config(self):
        conf = self.write("tlsrptd.conf", "# the collector\n"
                                          "public_url = %s\n"
                                          "report_mailbox = \"%s\"\n" % (HERE_URL, HERE_MAILBOX))
        res = record("-c", conf, "--domain", "mail.example")
        self.assertExit(res, 0)
        self.assertEqual(res.out, '_smtp._tls.mail.example. 3600 IN TXT "v=TLSRPTv1; '
                                  'rua=https://collector.example/tlsrpt,'
                                  'mailto:tlsrpt@collector.example"\n')
        # a flag overrides its key; the other key still comes from the file
        res = record("--domain", "mail.example", "-c", conf, "--public-url",
                     "https://other.example/r", "--format", "value")
        self.assertEqual(res.out, "v=TLSRPTv1; rua=https://other.example/r,"
                                  "mailto:tlsrpt@collector.example\n")
        # --rua replaces the collector's addresses
        res = record("-c", conf, "--domain", "mail.example", "--format", "value", "--rua",
                     "mailto:x@mail.example")
        self.assertEqual(res.out, "v=TLSRPTv1; rua=mailto:x@mail.example\n")
        # the sample config documents both keys (commented out)
        with open(T.sample("tlsrptd.conf")) as f:
            text = f.read()
        self.assertIn("#public_url = ", text)
        self.assertIn("#report_mailbox = ", text)
        res = record("-c", T.sample("tlsrptd.conf"), "--domain", "mail.example")
        self.assertExit(res, T.EX_USAGE)

    def test_mailbox_only_and_bad_collector(self):
        res = record("--domain", "mail.example", "--report-mailbox", HERE_MAILBOX, "--format",
                     "value")
        self.assertExit(res, 0)
        self.assertEqual(res.out, "v=TLSRPTv1; rua=mailto:tlsrpt@collector.example\n")
        res = record("--domain", "mail.example", "--public-url", "http://collector.example/r")
        self.assertExit(res, T.EX_DATAERR)
        self.assertIn("public_url 'http://collector.example/r': unknown scheme 'http:'", res.err)
        res = record("--domain", "mail.example", "--public-url", "mailto:" + HERE_MAILBOX)
        self.assertExit(res, T.EX_DATAERR)
        self.assertIn("is not an https: URL", res.err)
        res = record("--domain", "mail.example", "--report-mailbox", "nobody")
        self.assertExit(res, T.EX_DATAERR)
        self.assertIn("report_mailbox", res.err)

    def test_mta_sts(self):
        res = record("--domain", "mail.example", "--rua", HERE_URL, "--mta-sts", "--mx",
                     "mx1.mail.example", "MX2.mail.example.", "--mx", "*.backup.example",
                     "--mode", "enforce", "--max-age", "86400")
        self.assertExit(res, 0)
        policy = ("version: STSv1\r\nmode: enforce\r\nmx: mx1.mail.example\r\n"
                  "mx: mx2.mail.example\r\nmx: *.backup.example\r\nmax_age: 86400\r\n")
        sts_id = fnv1a64(policy.encode())
        self.assertEqual(res.out, '_smtp._tls.mail.example. 3600 IN TXT '
                                  '"v=TLSRPTv1; rua=https://collector.example/tlsrpt"\n'
                                  '_mta-sts.mail.example. 3600 IN TXT "v=STSv1; id=%s"\n'
                                  '\n'
                                  'policy file https://mta-sts.mail.example/.well-known/'
                                  'mta-sts.txt (text/plain):\n%s' % (sts_id, policy))
        # JSON: the record's four keys, and mta_sts beside them
        res = record("--domain", "mail.example", "--rua", HERE_URL, "--mta-sts", "--mx",
                     "mx1.mail.example", "--format", "json")
        self.assertExit(res, 0)
        j = json.loads(res.out)
        self.assertEqual(list(j)[:4], ["name", "type", "ttl", "value"])
        policy = ("version: STSv1\r\nmode: testing\r\nmx: mx1.mail.example\r\n"
                  "max_age: 604800\r\n")
        self.assertEqual(j["mta_sts"], {
            "name": "_mta-sts.mail.example", "type": "TXT", "ttl": 3600,
            "value": "v=STSv1; id=" + fnv1a64(policy.encode()),
            "policy_url": "https://mta-sts.mail.example/.well-known/mta-sts.txt",
            "policy": policy})
        # the policy file, byte for byte
        pf = self.path("mta-sts.txt")
        res = record("--domain", "mail.example", "--rua", HERE_URL, "--mta-sts", "--mx",
                     "mx1.mail.example", "--format", "value", "--policy-file", pf)
        self.assertExit(res, 0)
        self.assertEqual(T.read_bytes(pf), policy.encode())
        self.assertIn("v=STSv1; id=" + fnv1a64(policy.encode()), res.out)

    def test_mta_sts_errors(self):
        base = ["--domain", "mail.example", "--rua", HERE_URL]
        for args, code, msg in [
                (["--mta-sts"], T.EX_USAGE, "--mta-sts needs the MX hosts"),
                (["--mta-sts", "--mx", "mx.example", "--mode", "strict"], T.EX_USAGE,
                 "'strict' is not testing, enforce or none"),
                (["--mta-sts", "--mx", "mx.example", "--max-age", "31557601"], T.EX_USAGE,
                 "0-31557600"),
                (["--mx", "mx.example"], T.EX_USAGE, "go with --mta-sts"),
                (["--mta-sts", "--mx", "mx_1.example"], T.EX_DATAERR, "mx 'mx_1.example'")]:
            res = record(*(base + args))
            self.assertExit(res, code)
            self.assertIn(msg, res.err)
        res = record(*(base + ["--mta-sts", "--max-age", "31557600", "--mx", "mx.example"]))
        self.assertExit(res, 0)
        self.assertIn("max_age: 31557600\r\n", res.out)


class Errors(T.TlsrptdTestCase):
    def test_usage_64(self):
        for args, msg in [
                ([], "--domain D is needed"),
                (["--rua", HERE_URL], "--domain D is needed"),
                (["--domain", "mail.example"], "no destination"),
                (["--domain", "mail.example", "--rua", HERE_URL, "--format", "bind"],
                 "'bind' is not zone, value or json"),
                (["--domain", "mail.example", "--rua", HERE_URL, "--ttl", "-1"], "--ttl"),
                (["--domain", "mail.example", "--rua", HERE_URL, "--ttl", "1h"], "--ttl"),
                (["--domain", "mail.example", "--rua"], "--rua needs a value"),
                (["--domain", "mail.example", "--rua", HERE_URL, "--frobnicate"],
                 "unknown option '--frobnicate'"),
                (["--domain", "mail.example", "--rua", HERE_URL, "stray"],
                 "unexpected argument 'stray'"),
                (["--domain", "mail.example", "--domain", "x.example", "--rua", HERE_URL],
                 "--domain given twice"),
                (["--parse", "v=TLSRPTv1; rua=" + HERE_URL, "--domain", "mail.example"],
                 "--parse takes the record alone"),
                (["--domain", "mail.example", "--rua", HERE_URL, "--dns", "127.0.0.1:53"],
                 "go with --check"),
                (["--check", "--domain", "mail.example", "--rua", HERE_URL, "--dns",
                  "dns.example:53"], "not an IPv4 address"),
                (["--check", "--domain", "mail.example", "--rua", HERE_URL, "--dns",
                  "[::1]:53"], "only IPv4"),
                (["--check", "--domain", "mail.example", "--rua", HERE_URL, "--dns",
                  "127.0.0.1:0"], "1-65535"),
                (["--check", "--domain", "mail.example"], "no destination")]:
            res = record(*args)
            self.assertExit(res, T.EX_USAGE)
            self.assertIn(msg, res.err)
            self.assertIn("Try 'tlsrptd record --help'", res.err)
            self.assertEqual(res.out, "")
        # a config file that cannot be read is a configuration error (EX_CONFIG)
        res = record("-c", "/nonexistent/tlsrptd.conf", "--domain", "mail.example")
        self.assertExit(res, T.EX_CONFIG)
        self.assertIn("/nonexistent/tlsrptd.conf", res.err)
        self.assertEqual(res.out, "")

    def test_invalid_input_65(self):
        for args, msg in [
                (["--domain", "bücher.example"],
                 "domain 'bücher.example' holds a U-label (Unicode): give its A-label form "
                 "'xn--bcher-kva.example'"),
                (["--domain", "mail..example"], "empty label"),
                (["--domain", "-mail.example"], "starts or ends with '-'"),
                (["--domain", "mail_1.example"], "'_' is not allowed"),
                (["--domain", "192.0.2.25"], "an IP address is not a domain"),
                (["--domain", "a" * 64 + ".example"], "longer than 63 octets"),
                (["--domain", ("a" * 60 + ".") * 4 + "example"], "exceed 253 octets"),
                (["--domain", "mail.example", "--rua", "http://c.example/r"],
                 "unknown scheme 'http:' (TLS-RPT takes mailto: and https:)"),
                (["--domain", "mail.example", "--rua", "ftp://c.example/r"],
                 "unknown scheme 'ftp:'"),
                (["--domain", "mail.example", "--rua", "tlsrpt@mail.example"], "no scheme"),
                (["--domain", "mail.example", "--rua", "mailto:tlsrpt"], "no '@'"),
                (["--domain", "mail.example", "--rua", "mailto:a@x.example,b@y.example"],
                 "more than one address"),
                (["--domain", "mail.example", "--rua", "https://c.example/a b"],
                 "a space is not allowed in a URI"),
                (["--domain", "mail.example", "--rua", "https:///r"], "without a host")]:
            res = record(*(args + (["--rua", HERE_URL] if "--rua" not in args else [])))
            self.assertExit(res, T.EX_DATAERR)
            self.assertIn(msg, res.err)
            self.assertEqual(res.out, "")

    def test_help(self):
        res = record("--help")
        self.assertExit(res, 0)
        for flag in ("--domain", "--rua", "--ttl", "--format", "--parse", "--check", "--dns",
                     "--mta-sts", "--mx", "--mode", "--max-age", "--public-url",
                     "--report-mailbox", "-c"):
            self.assertIn(flag, res.out)
        res = T.run(["--help"])
        self.assertIn("record", res.out)


# (record, column of the first error or 0 when valid, text of the message)
PARSE_CASES = [
    ("v=TLSRPTv1; rua=mailto:tlsrpt@mail.example", 0, None),
    ("v=TLSRPTv1;rua=https://c.example/r", 0, None),
    ("v=TLSRPTv1; rua=https://c.example/r;", 0, None),
    ("v=TLSRPTv1;\t rua=https://c.example/r ;\t", 0, None),
    ("v=TLSRPTv1; rua=https://c.example/r , mailto:a@b.example", 0, None),
    ("v=TLSRPTv1; rua=https://c.example/r,mailto:a@b.example; ext=1; x.y-z_2=a:b", 0, None),
    ("v=TLSRPTv1; rua=https://c.example/a%2Cb%21c%3Bd", 0, None),
    ("V=TLSRPTv1; rua=mailto:a@b.example", 1, "case-sensitive"),
    ("v=tlsrptv1; rua=mailto:a@b.example", 1, "case-sensitive"),
    ("rua=mailto:a@b.example; v=TLSRPTv1", 1, "'v=TLSRPTv1' must come first"),
    ("v=TLSRPTv1 ; rua=mailto:a@b.example", 11, "whitespace before the first ';'"),
    ("v=TLSRPTv1", 11, "expected '; rua=URI'"),
    ("v=TLSRPTv1; RUA=mailto:a@b.example", 13, "'RUA=' is not 'rua='"),
    ("v=TLSRPTv1; ext=1", 1, "no rua= field"),
    ("v=TLSRPTv1; rua=", 17, "expected a URI after 'rua='"),
    ("v=TLSRPTv1; rua=http://c.example/r", 17, "unknown scheme 'http:'"),
    ("v=TLSRPTv1; rua=mailto:a@b.example,", 36, "expected a URI after ','"),
    ("v=TLSRPTv1; rua=https://c.example/a!b", 36, "'!' must be percent-encoded as %21"),
    ("v=TLSRPTv1;; rua=mailto:a@b.example", 12, "empty field"),
    ("v=TLSRPTv1; rua=mailto:a@b.example ", 35, "trailing whitespace"),
    ("v=TLSRPTv1; rua=mailto:a@b.example; ext=a=b", 42, "'=' is not allowed"),
    ("v=TLSRPTv1; rua=mailto:a@b.example; e x=1", 38, "expected '='"),
    ("v=TLSRPTv1; rua=mailto:nobody", 24, "no '@'"),
]


class Parse(T.TlsrptdTestCase):
    def test_grammar(self):
        self.assertGreaterEqual(len(PARSE_CASES), 20)
        for rec, col, msg in PARSE_CASES:
            res = record("--parse", rec)
            if col == 0:
                self.assertExit(res, 0)
                self.assertEqual(res.lines()[0], "valid: " + rec, res)
            else:
                self.assertExit(res, T.EX_DATAERR)
                first = res.out.splitlines()[0]
                self.assertTrue(first.startswith("invalid: column %d: " % col), res)
                self.assertIn(msg, first)
                # the record, then a caret under the column
                self.assertEqual(res.out.splitlines()[1], "  " + rec)
                self.assertEqual(res.out.splitlines()[2], "  " + " " * (col - 1) + "^")

    def test_lists_destinations_and_extensions(self):
        res = record("--parse", "v=TLSRPTv1; rua=https://c.example/r , mailto:a@b.example; "
                                "ext=1;")
        self.assertExit(res, 0)
        self.assertEqual(res.out, "valid: v=TLSRPTv1; rua=https://c.example/r , "
                                  "mailto:a@b.example; ext=1;\n"
                                  "  rua: https://c.example/r\n"
                                  "  rua: mailto:a@b.example\n"
                                  "  extension: ext=1\n")

    def test_generated_records_parse(self):
        res = record("--domain", "mail.example", "--format", "value", "--rua", HERE_URL,
                     "--rua", "mailto:a;b@mail.example")
        self.assertExit(res, T.EX_DATAERR)  # ';' in a local part: encoded, then not atext
        res = record("--domain", "mail.example", "--format", "value", "--rua",
                     HERE_URL + "/a,b", "--rua", "mailto:" + HERE_MAILBOX)
        self.assertExit(res, 0)
        value = res.out.strip()
        res = record("--parse", value)
        self.assertExit(res, 0)
        self.assertIn("  rua: https://collector.example/tlsrpt/a%2Cb\n", res.out)


_free_udp_port = T.free_udp_port


class FakeDns:
    """A UDP server on 127.0.0.1 that answers every query with one rcode
    (SERVFAIL: 2), or never answers (rcode None)."""

    def __init__(self, rcode):
        self.rcode = rcode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                q, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            self.queries += 1
            if self.rcode is None or len(q) < 12:
                continue
            flags = 0x8000 | (q[2] & 0x01) << 8 | 0x80 | self.rcode  # QR, RD copied, RA
            # header: same id and question, no answers
            self.sock.sendto(q[:2] + flags.to_bytes(2, "big") + q[4:6] + b"\0\0\0\0\0\0" + q[12:],
                             addr)

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


class Check(T.TlsrptdTestCase):
    """--check against dnsmasq on 127.0.0.1 serving these TXT records."""

    LONG_URI = HERE_URL + "/" + "d" * 300  # dnsmasq splits it into 255-octet strings
    TXT = [
        ("_smtp._tls.here.example", ["v=TLSRPTv1; rua=" + HERE_URL]),
        ("_smtp._tls.mailbox.example", ["v=TLSRPTv1;rua=mailto:TLSRPT@Collector.example"]),
        ("_smtp._tls.elsewhere.example", ["v=TLSRPTv1; rua=mailto:reports@elsewhere.example"]),
        ("_smtp._tls.two.example", ["v=TLSRPTv1; rua=" + HERE_URL]),
        ("_smtp._tls.two.example", ["v=TLSRPTv1; rua=mailto:reports@elsewhere.example"]),
        ("_smtp._tls.spf.example", ['v=spf1 "quoted" \\ -all']),
        ("_smtp._tls.split.example", ["v=TLSRPTv1;", " rua=https://collector",
                                      ".example/tlsrpt/split.example"]),
        ("_smtp._tls.long.example", ["v=TLSRPTv1; rua=" + LONG_URI]),
        ("_smtp._tls.spaced.example", ["v=TLSRPTv1 ; rua=" + HERE_URL]),
        ("_smtp._tls.invalid.example", ["v=TLSRPTv1; rua=http://collector.example/tlsrpt"]),
        ("_smtp._tls.mixed.example", ["v=spf1 -all"]),
        ("_smtp._tls.mixed.example", ["v=TLSRPTv1; rua=" + HERE_URL + "/mixed; x=1"]),
    ]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ctmp = tempfile.mkdtemp(prefix="tlsrptd-it-dns-")
        cls.dns = T.Dnsmasq(cls.ctmp, cls.TXT, cls._ready,
                            ["--host-record=_smtp._tls.nodata.example,127.0.0.9"])
        cls.port = cls.dns.port

    @staticmethod
    def _ready(port):
        res = T.run(["record", "--check", "--domain", "here.example", "--dns",
                     "127.0.0.1:%d" % port, "--dns-timeout", "1", "--rua", HERE_URL])
        return res.rc == 0

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        shutil.rmtree(cls.ctmp, True)
        super().tearDownClass()

    def check(self, domain, *extra):
        return record("--check", "--domain", domain, "--dns", "127.0.0.1:%d" % self.port,
                      "--public-url", HERE_URL, "--report-mailbox", HERE_MAILBOX, *extra)

    def test_points_here(self):
        res = self.check("here.example")
        self.assertExit(res, 0)
        self.assertEqual(res.out,
                         "_smtp._tls.here.example: 1 TXT record\n"
                         '  TXT "v=TLSRPTv1; rua=https://collector.example/tlsrpt"\n'
                         "valid: v=TLSRPTv1; rua=https://collector.example/tlsrpt\n"
                         "  rua: https://collector.example/tlsrpt  (this collector)\n"
                         "ok: rua reaches this collector (https://collector.example/tlsrpt, "
                         "mailto:tlsrpt@collector.example)\n")

    def test_mailbox_from_config(self):
        conf = self.write("tlsrptd.conf", "report_mailbox = %s\n" % HERE_MAILBOX)
        res = record("--check", "-c", conf, "--domain", "mailbox.example", "--dns",
                     "127.0.0.1:%d" % self.port)
        self.assertExit(res, 0)
        self.assertIn("  rua: mailto:TLSRPT@Collector.example  (this collector)\n", res.out)
        # the same record does not reach an https-only collector
        res = record("--check", "--domain", "mailbox.example", "--dns",
                     "127.0.0.1:%d" % self.port, "--public-url", HERE_URL)
        self.assertExit(res, T.EX_DATAERR)

    def test_dns_from_config(self):
        """The config key dns (shared with serve's console) names the server; --dns wins."""
        conf = self.write("tlsrptd.conf", "public_url = %s\ndns = 127.0.0.1:%d\n" %
                          (HERE_URL, self.port))
        res = record("--check", "-c", conf, "--domain", "here.example")
        self.assertExit(res, 0)
        self.assertIn("ok: rua reaches this collector", res.out)
        res = record("--check", "-c", conf, "--domain", "here.example", "--dns",
                     "127.0.0.1:%d" % _free_udp_port(), "--dns-timeout", "1")
        self.assertExit(res, EX_TEMPFAIL)
        bad = self.write("bad.conf", "dns = localhost:53\n")
        res = record("--check", "-c", bad, "--domain", "here.example")
        self.assertExit(res, T.EX_CONFIG)  # a bad value in the file: 78, as for every key
        self.assertIn("dns = localhost:53: 'localhost' is not an IPv4 address", res.err)

    def expect(self, domain, code, *texts, extra=()):
        """--check DOMAIN exits code and prints each of texts."""
        res = self.check(domain, *extra)
        self.assertExit(res, code)
        for t in texts:
            self.assertIn(t, res.out)
        return res

    def test_points_elsewhere(self):
        self.expect("elsewhere.example", T.EX_DATAERR, "  rua: mailto:reports@elsewhere.example\n",
                    "not reached: rua does not reach this collector")
        # ... but it does reach the collector named by --rua
        self.expect("elsewhere.example", 0, extra=["--rua", "mailto:reports@elsewhere.example"])

    def test_two_records(self):
        self.expect("two.example", T.EX_DATAERR, "_smtp._tls.two.example: 2 TXT records\n",
                    "no policy: 2 records begin with 'v=TLSRPTv1;': anything but exactly one "
                    "means no TLS-RPT policy")

    def test_none_nxdomain(self):
        res = self.expect("absent.example", T.EX_DATAERR)
        self.assertEqual(res.out, "_smtp._tls.absent.example: no such name (NXDOMAIN): "
                                  "no TLS-RPT policy\n")

    def test_none_nodata(self):
        self.expect("nodata.example", T.EX_DATAERR, "no TXT records (the name exists)")

    def test_none_only_other_txt(self):
        # the TXT data is shown as zone strings: quotes and backslashes escaped
        self.expect("spf.example", T.EX_DATAERR, '  TXT "v=spf1 \\"quoted\\" \\\\ -all"\n',
                    "no policy: 1 TXT record, none beginning with 'v=TLSRPTv1;'")

    def test_other_txt_beside_the_record(self):
        self.expect("mixed.example", 0,
                    "  rua: https://collector.example/tlsrpt/mixed  (this collector)\n",
                    "  extension: x=1\n")

    def test_split_over_several_strings(self):
        self.expect("split.example", 0,
                    '  TXT "v=TLSRPTv1;" " rua=https://collector" ".example/tlsrpt/split.example"\n',
                    "policy (3 strings joined):\n",
                    "valid: v=TLSRPTv1; rua=https://collector.example/tlsrpt/split.example\n")

    def test_long_record_split_by_dns(self):
        self.expect("long.example", 0, "policy (2 strings joined):\n",
                    "  rua: %s  (this collector)\n" % self.LONG_URI)

    def test_whitespace_before_first_semicolon_is_discarded(self):
        self.expect("spaced.example", T.EX_DATAERR, "none beginning with 'v=TLSRPTv1;'")

    def test_invalid_record(self):
        self.expect("invalid.example", T.EX_DATAERR, "invalid: column 17: unknown scheme 'http:'",
                    "no policy: the record is not valid")

    def test_servfail_and_timeout(self):
        for rcode, msg in ((2, "answered SERVFAIL"), (5, "answered REFUSED"),
                           (None, "no answer from 127.0.0.1:")):
            srv = FakeDns(rcode)
            try:
                t0 = time.monotonic()
                res = record("--check", "--domain", "here.example", "--dns",
                             "127.0.0.1:%d" % srv.port, "--dns-timeout", "1", "--rua", HERE_URL)
                elapsed = time.monotonic() - t0
            finally:
                srv.close()
            self.assertExit(res, EX_TEMPFAIL)
            self.assertIn("lookup failed: _smtp._tls.here.example: " + "", res.out)
            self.assertIn(msg, res.out)
            self.assertGreaterEqual(srv.queries, 1)
            if rcode is None:
                self.assertLess(elapsed, 15)

    def test_nothing_listening(self):
        res = record("--check", "--domain", "here.example", "--dns",
                     "127.0.0.1:%d" % T.free_udp_tcp_port(), "--dns-timeout", "1", "--rua", HERE_URL)
        self.assertExit(res, EX_TEMPFAIL)
        self.assertIn("lookup failed:", res.out)


if __name__ == "__main__":
    T.main()
