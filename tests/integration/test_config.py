#!/usr/bin/env python3
"""One configuration for every command (issue 10, defect 5).

  EveryCommand   -c FILE on ingest, validate, maildir, summary, show, record (serve: it_serve);
                 its db, limits and keys take effect; flags override the file
  DefaultFile    $TLSRPTD_CONFIG names the file read without -c ("" for none); -c wins;
                 (/etc/tlsrptd/tlsrptd.conf itself is exercised by the package test, which
                 installs it: tests never depend on a real /etc file)
  SameNames      one key name everywhere (--commit-max, --max-json-depth, --max-message),
                 the old spellings are refused naming the new one
  Errors         a bad file exits 78 naming file, line, key and value; a bad flag 64
  MissingDb      read commands: "no database at PATH (set db = ... or --db)", exit 66;
                 sqlite:PATH is PATH; a postgresql:// URI is not a path
  Walk           ingest samples/ skips samples/tlsrptd.conf
  Docs           every key of the option table is in tlsrptd.conf(5) and the sample config;
                 README and docs/ never point outside the repository

Run: TLSRPTD_BIN=build/tlsrptd python3 tests/integration/test_config.py
"""
import json
import os
import re
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tlsrptd_test as T  # noqa: E402

EX_NOINPUT, EX_CONFIG = 66, 78


def deep_report(depth):
    """samples/report.json with an unknown key nested `depth` objects deep."""
    r = T.sample_report()
    inner = {}
    node = inner
    for _ in range(depth - 2):
        node["x"] = {}
        node = node["x"]
    r["extension"] = inner
    return json.dumps(r).encode()


def maildir(root):
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    return root


class ConfigCase(T.TlsrptdTestCase):
    def conf(self, text, name="tlsrptd.conf"):
        return self.write(name, text)

    def run_cmd(self, args, env=None, **kw):
        return T.run(args, env=env, cwd=self.tmp, **kw)

    def summary(self, *args, env=None):
        res = self.run_cmd(["summary", "--format", "json"] + list(args), env=env)
        self.assertExit(res, 0)
        return json.loads(res.out)


class EveryCommand(ConfigCase):
    def test_c_file_on_every_command(self):
        db = self.path("from-conf.db")
        conf = self.conf("db = %s\nmax_json_depth = 6\npublic_url = https://rua.example/tlsrpt\n"
                         % db)
        # ingest: stores into the file's db
        res = self.run_cmd(["ingest", "-c", conf, "--no-progress", T.sample("report.json")])
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(self.path("tlsrptd.db")))
        self.assertEqual(T.scalar(db, "SELECT COUNT(*) FROM reports"), 1)
        # summary and show read it
        self.assertEqual(self.summary("-c", conf)["totals"]["reports"], 1)
        res = self.run_cmd(["show", "-c", conf, "--format", "json", "1"])
        self.assertExit(res, 0)
        self.assertEqual(json.loads(res.out)["id"], 1)
        # validate and ingest take the limits: depth 8 is over max_json_depth = 6
        deep = self.write("deep.json", deep_report(8))
        res = self.run_cmd(["validate", "-c", conf, deep])
        self.assertExit(res, T.EX_DATAERR)
        self.assertExit(self.run_cmd(["validate", deep]), 0)
        res = self.run_cmd(["ingest", "-c", conf, "--no-progress", deep])
        self.assertExit(res, T.EX_DATAERR)
        # a flag overrides the file
        res = self.run_cmd(["validate", "-c", conf, "--max-json-depth", "32", deep])
        self.assertExit(res, 0)
        # maildir: the file's db
        md = maildir(self.path("Maildir"))
        shutil.copy(T.sample("report.eml"), os.path.join(md, "new", "1.eml"))
        res = self.run_cmd(["maildir", "-c", conf, md])
        self.assertExit(res, 0)
        self.assertEqual(T.scalar(db, "SELECT COUNT(*) FROM reports"), 2)
        # record: the file's public_url
        res = self.run_cmd(["record", "-c", conf, "--domain", "mail.example", "--format",
                            "value"])
        self.assertExit(res, 0)
        self.assertEqual(res.out.strip(), "v=TLSRPTv1; rua=https://rua.example/tlsrpt")
        # --config FILE and --config=FILE are the same as -c
        self.assertEqual(self.summary("--config", conf)["totals"]["reports"], 2)
        self.assertEqual(self.summary("--config=" + conf)["totals"]["reports"], 2)
        # --db overrides db
        other = self.path("other.db")
        res = self.run_cmd(["ingest", "-c", conf, "--db", other, "--no-progress",
                            T.sample("report.json.gz")])
        self.assertExit(res, 0)
        self.assertEqual(self.summary("-c", conf, "--db", other)["totals"]["reports"], 1)

    def test_every_help_names_c(self):
        for cmd in ("serve", "ingest", "validate", "maildir", "summary", "show", "record"):
            with self.subTest(cmd):
                res = self.run_cmd([cmd, "--help"])
                self.assertExit(res, 0)
                self.assertIn("-c", res.out)


class DefaultFile(ConfigCase):
    def test_tlsrptd_config_names_the_default_file(self):
        db = self.path("env.db")
        conf = self.conf("db = %s\n" % db)
        env = {"TLSRPTD_CONFIG": conf}
        res = self.run_cmd(["ingest", "--no-progress", T.sample("report.json")], env=env)
        self.assertExit(res, 0)
        self.assertFalse(os.path.exists(self.path("tlsrptd.db")))
        self.assertEqual(self.summary(env=env)["totals"]["reports"], 1)
        # -c wins over it
        other = self.conf("db = %s\n" % self.path("c.db"), name="c.conf")
        res = self.run_cmd(["ingest", "-c", other, "--no-progress", T.sample("report.json")],
                           env=env)
        self.assertExit(res, 0)
        self.assertEqual(T.scalar(self.path("c.db"), "SELECT COUNT(*) FROM reports"), 1)
        # "" reads no file: the built-in ./tlsrptd.db
        res = self.run_cmd(["summary"], env={"TLSRPTD_CONFIG": ""})
        self.assertExit(res, EX_NOINPUT)
        self.assertIn("./tlsrptd.db", res.err)
        # a named file that is missing is an error, not ignored
        res = self.run_cmd(["summary"], env={"TLSRPTD_CONFIG": self.path("missing.conf")})
        self.assertExit(res, EX_CONFIG)
        self.assertIn(self.path("missing.conf"), res.err)
        # -c /dev/null: no file at all
        res = self.run_cmd(["summary", "-c", "/dev/null"], env=env)
        self.assertExit(res, EX_NOINPUT)


class SameNames(ConfigCase):
    def test_one_name_per_key(self):
        res = self.ingest(T.sample("report.json"), opts=["--commit-max", "1",
                                                           "--max-message", "64k",
                                                           "--max-json-depth", "8"])
        self.assertExit(res, 0)
        res = self.ingest(T.sample("report.json"), db=self.path("small.db"),
                          opts=["--max-message", "1k"])
        self.assertExit(res, T.EX_DATAERR)
        for old, new in (("--batch", "--commit-max"), ("--max-depth", "--max-json-depth"),
                         ("--max-input", "--max-message")):
            with self.subTest(old):
                res = self.ingest(T.sample("report.json"), opts=[old, "10"])
                self.assertExit(res, T.EX_USAGE)
                self.assertIn("%s is now called %s" % (old, new), res.err)

    def test_keys_in_the_file_apply_to_ingest(self):
        conf = self.conf("db = %s\nmax_message = 1k\n" % self.db)
        res = self.run_cmd(["ingest", "-c", conf, "--no-progress", T.sample("report.json")])
        self.assertExit(res, T.EX_DATAERR)
        self.assertIn("larger than 1024 bytes", res.out)


class Errors(ConfigCase):
    def test_bad_file_is_78_bad_flag_64(self):
        conf = self.conf("# a comment\n\ncommit_max = many\n")
        for cmd in (["ingest", T.sample("report.json")], ["validate", T.sample("report.json")],
                    ["summary"], ["show", "1"], ["maildir", self.tmp],
                    ["record", "--domain", "a.example"], ["serve"]):
            with self.subTest(cmd[0]):
                res = self.run_cmd([cmd[0], "-c", conf] + cmd[1:])
                self.assertExit(res, EX_CONFIG)
                self.assertIn("%s:3: commit_max = many: not a number" % conf, res.err)
                self.assertEqual(len(res.err.strip().splitlines()), 1, res)
        res = self.run_cmd(["summary", "--busy-timeout", "soon"])
        self.assertExit(res, T.EX_USAGE)
        self.assertIn("busy_timeout = soon", res.err)


class MissingDb(ConfigCase):
    def test_read_commands_say_no_database(self):
        missing = self.path("nowhere", "x.db")
        for args in (["summary", "--db", missing], ["show", "--db", missing, "1"],
                     ["summary", "--db", "sqlite:" + missing],
                     ["quarantine", "list", "--db", missing],
                     ["quarantine", "reingest", "--db", missing, "--all"],
                     ["prune", "--db", missing, "--retention", "30d"], ["forget", "--db", missing, "--domain", "a.example"],
                     ["alerts", "--db", missing]):
            with self.subTest(args):
                res = self.run_cmd(args)
                self.assertExit(res, EX_NOINPUT)
                self.assertIn("no database at %s (set db = " % missing, res.err)
                self.assertIn("--db", res.err)
        conf = self.conf("db = %s\n" % missing)
        res = self.run_cmd(["summary", "-c", conf])
        self.assertExit(res, EX_NOINPUT)
        self.assertIn(missing, res.err)
        self.assertFalse(os.path.exists(self.path("nowhere")))
        # a PostgreSQL URI is not a path: never "no database at"
        res = self.run_cmd(["summary", "--db", "postgresql://tlsrptd@127.0.0.1:1/tlsrptd"])
        self.assertNotEqual(res.rc, EX_NOINPUT, res)
        self.assertNotIn("no database at", res.err)


class Walk(ConfigCase):
    def test_ingest_samples_skips_the_config(self):
        res = self.ingest(T.samples_dir())
        names = [os.path.basename(o.name) for o in T.outcomes(res)]
        self.assertNotIn("tlsrptd.conf", names, res)
        self.assertEqual(sorted(os.path.basename(q["source_name"])
                                for q in T.quarantine_rows(self.db)),
                         ["invalid.json", "not-a-report.eml"])


class Docs(ConfigCase):
    def test_every_key_is_documented(self):
        """The one option table (as --help prints it) against tlsrptd.conf(5) and the
        sample configuration."""
        res = self.run_cmd(["serve", "--help"])
        self.assertExit(res, 0)
        keys = [m.replace("-", "_") for m in re.findall(r"^  --([a-z0-9-]+) ", res.out, re.M)]
        self.assertGreater(len(keys), 20, res.out)
        with open(os.path.join(T.PROJECT, "docs", "man", "tlsrptd.conf.5.scd")) as f:
            man = f.read()
        with open(T.sample("tlsrptd.conf")) as f:
            sample = f.read()
        for key in keys:
            with self.subTest(key):
                self.assertIn("*%s*" % key, man, "tlsrptd.conf(5) does not describe %s" % key)
                self.assertTrue(re.search(r"(?m)^#?%s = " % key, sample),
                                "samples/tlsrptd.conf does not show %s" % key)

    def test_docs_stay_inside_the_repository(self):
        names = [os.path.join(T.PROJECT, "README.md")] + [
            os.path.join(T.PROJECT, "docs", n) for n in sorted(os.listdir(
                os.path.join(T.PROJECT, "docs"))) if n.endswith(".md")]
        for name in names:
            with self.subTest(os.path.basename(name)), open(name) as f:
                text = f.read()
                self.assertNotIn("DESIGN", text)
                self.assertNotRegex(text, r"\]\((/|\.\./)", "a link leaves the repository")


if __name__ == "__main__":
    T.main()
