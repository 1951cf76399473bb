-- 004_policies_domain.sql: as schema/sqlite/006_policies_domain.sql (see the
-- comments there): the reports of one policy domain, for the findings' evidence.
CREATE INDEX IF NOT EXISTS policies_domain ON policies (policy_domain);
