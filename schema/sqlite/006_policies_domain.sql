-- 006_policies_domain.sql: the reports of one policy domain, found without
-- reading every report of a window. The findings name, for each of their
-- sentences, the newest reports that show it (store_evidence in
-- src/store_findings.c); with thousands of findings over hundreds of domains,
-- walking the window's reports for each one took minutes.
CREATE INDEX IF NOT EXISTS policies_domain ON policies (policy_domain);
