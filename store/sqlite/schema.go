package sqlite

// migrations are applied in order, each once; migration i brings the schema
// to version i+1. Append only: never edit a released migration.
var migrations = []string{
	// 1: resources, versions and the search index.
	`
CREATE TABLE resources (
	pk           INTEGER PRIMARY KEY,
	type         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	version      INTEGER NOT NULL,
	last_updated INTEGER NOT NULL, -- Unix nanoseconds of the current version
	deleted      INTEGER NOT NULL,
	idx_mask     INTEGER NOT NULL DEFAULT 0, -- which idx_* tables hold rows for it
	UNIQUE (type, id)
);
CREATE INDEX resources_last_updated ON resources (type, last_updated);

CREATE TABLE resource_versions (
	res_pk       INTEGER NOT NULL REFERENCES resources (pk),
	version      INTEGER NOT NULL,
	type         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	last_updated INTEGER NOT NULL,
	deleted      INTEGER NOT NULL,
	method       TEXT    NOT NULL,
	body         BLOB    NOT NULL,
	PRIMARY KEY (res_pk, version)
);
CREATE INDEX resource_versions_lu ON resource_versions (last_updated);
CREATE INDEX resource_versions_type_lu ON resource_versions (type, last_updated);

-- Index tables: rows are written only by the store, always with every
-- column set. They carry no NOT NULL or foreign-key constraints on purpose:
-- a multi-row INSERT that cannot abort needs no statement journal, which
-- makes indexing markedly faster.

CREATE TABLE idx_string (
	res_pk INTEGER,
	rtype TEXT, param TEXT,
	norm TEXT, exact TEXT
);
CREATE INDEX idx_string_norm ON idx_string (rtype, param, norm);
CREATE INDEX idx_string_exact ON idx_string (rtype, param, exact);
CREATE INDEX idx_string_res ON idx_string (res_pk, param);

CREATE TABLE idx_token (
	res_pk INTEGER,
	rtype TEXT, param TEXT,
	system TEXT, code TEXT, text TEXT
);
CREATE INDEX idx_token_code ON idx_token (rtype, param, code, system);
CREATE INDEX idx_token_res ON idx_token (res_pk, param);

CREATE TABLE idx_date (
	res_pk INTEGER,
	rtype TEXT, param TEXT,
	lo INTEGER, hi INTEGER -- Unix microseconds, inclusive
);
CREATE INDEX idx_date_lo ON idx_date (rtype, param, lo);
CREATE INDEX idx_date_res ON idx_date (res_pk, param);

CREATE TABLE idx_number (
	res_pk INTEGER,
	rtype TEXT, param TEXT,
	num REAL, lo REAL, hi REAL
);
CREATE INDEX idx_number_num ON idx_number (rtype, param, num);
CREATE INDEX idx_number_res ON idx_number (res_pk, param);

CREATE TABLE idx_quantity (
	res_pk INTEGER,
	rtype TEXT, param TEXT,
	system TEXT, code TEXT,
	num REAL, lo REAL, hi REAL
);
CREATE INDEX idx_quantity_num ON idx_quantity (rtype, param, num);
CREATE INDEX idx_quantity_res ON idx_quantity (res_pk, param);

CREATE TABLE idx_reference (
	res_pk INTEGER,
	rtype TEXT, param TEXT,
	ref_type TEXT, ref_id TEXT, ref_version TEXT,
	url TEXT, system TEXT, code TEXT
);
-- One index serves reference search (ref_id = ? AND rtype = ? AND param = ?)
-- and _revinclude (ref_id IN (...) AND ref_type = ?). Absolute URLs and
-- identifiers are rare: partial indexes, which queries select with url <> ''
-- and code <> ''.
CREATE INDEX idx_reference_ref ON idx_reference (ref_id, rtype, param, ref_type);
CREATE INDEX idx_reference_url ON idx_reference (rtype, param, url) WHERE url <> '';
CREATE INDEX idx_reference_ident ON idx_reference (rtype, param, code, system) WHERE code <> '';
CREATE INDEX idx_reference_res ON idx_reference (res_pk, param);

CREATE TABLE idx_uri (
	res_pk INTEGER,
	rtype TEXT, param TEXT,
	url TEXT
);
CREATE INDEX idx_uri_url ON idx_uri (rtype, param, url);
CREATE INDEX idx_uri_res ON idx_uri (res_pk, param);
`,
	// 2: composite parameters: the group tying one element instance's
	// component entries together (0 for every other entry). Composite
	// entries of resources written before it need a reindex.
	`
ALTER TABLE idx_string ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idx_token ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idx_date ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idx_number ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idx_quantity ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idx_reference ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE idx_uri ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
`,
	// 3: :of-type: the Identifier.type coding of identifier token entries.
	`
ALTER TABLE idx_token ADD COLUMN type_system TEXT NOT NULL DEFAULT '';
ALTER TABLE idx_token ADD COLUMN type_code TEXT NOT NULL DEFAULT '';
`,
	// 4: full-text search (_text, _content): one FTS5 document pair per
	// resource, rowid = resources.pk, tokens produced by search.FullTextOf
	// (see docs/search.md). Contentless: the tokens are not stored twice;
	// contentless_delete lets a write replace a resource's row by rowid.
	// Resources written before this version need a reindex to be found.
	`
CREATE VIRTUAL TABLE idx_fulltext USING fts5 (
	narrative, body,
	content = '', contentless_delete = 1, tokenize = 'ascii'
);
`,
	// 5: reindex jobs (store/reindex): one JSON document per job, so a job
	// survives a restart and resumes.
	`
CREATE TABLE reindex_jobs (
	id TEXT PRIMARY KEY,
	doc BLOB NOT NULL
);
`,
	// 6: the lease of the process running a reindex job (store.Reindexer
	// LeaseJob), so that replicas do not run one job twice.
	`
ALTER TABLE reindex_jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE reindex_jobs ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
`,
	// 7: job retention and incremental reads (docs/reindex.md, "Job
	// retention and incremental refresh"). seq is a job's change sequence number, from the
	// one-row counter reindex_job_seq (never reused, unlike MAX(seq) after
	// a purge), so a replica reads only the jobs put since its last look;
	// finished_at (Unix ms, 0: not finished) is when a put finished the
	// job. Jobs stored before are seq 1 and, when their JSON status is not
	// "running" (json.Marshal output, no spaces), finished now: purgeable
	// after a full retention period from the upgrade.
	`
ALTER TABLE reindex_jobs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reindex_jobs ADD COLUMN finished_at INTEGER NOT NULL DEFAULT 0;
CREATE TABLE reindex_job_seq (n INTEGER NOT NULL);
INSERT INTO reindex_job_seq (n) VALUES (1);
UPDATE reindex_jobs SET seq = 1;
UPDATE reindex_jobs SET finished_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
	WHERE instr(doc, CAST('"status":"' AS BLOB)) > 0 AND instr(doc, CAST('"status":"running"' AS BLOB)) = 0;
CREATE INDEX reindex_jobs_seq ON reindex_jobs (seq);
CREATE INDEX reindex_jobs_finished ON reindex_jobs (finished_at) WHERE finished_at > 0;
`,
}
