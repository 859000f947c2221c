package postgres

// migrations are applied in order, each once, under an advisory lock;
// migration i brings the schema to version i+1. Append only.
//
// Text columns use the "C" collation: comparisons and ORDER BY are by code
// point (UTF-8 bytes), exactly as SQLite's BINARY collation, so prefix ranges
// and sort orders agree between the engines and index range scans work for
// prefix matches.
var migrations = []string{
	// 1: resources, versions and the search index.
	`
CREATE TABLE resources (
	pk           BIGSERIAL PRIMARY KEY,
	type         TEXT COLLATE "C" NOT NULL,
	id           TEXT COLLATE "C" NOT NULL,
	version      BIGINT  NOT NULL,
	last_updated BIGINT  NOT NULL, -- Unix nanoseconds of the current version
	deleted      BOOLEAN NOT NULL,
	idx_mask     INTEGER NOT NULL DEFAULT 0, -- which idx_* tables hold rows for it
	UNIQUE (type, id)
);
CREATE INDEX resources_last_updated ON resources (type, last_updated);

CREATE TABLE resource_versions (
	res_pk       BIGINT  NOT NULL REFERENCES resources (pk),
	version      BIGINT  NOT NULL,
	type         TEXT COLLATE "C" NOT NULL,
	id           TEXT COLLATE "C" NOT NULL,
	last_updated BIGINT  NOT NULL,
	deleted      BOOLEAN NOT NULL,
	method       TEXT    NOT NULL,
	body         BYTEA   NOT NULL,
	PRIMARY KEY (res_pk, version)
);
CREATE INDEX resource_versions_lu ON resource_versions (last_updated);
CREATE INDEX resource_versions_type_lu ON resource_versions (type, last_updated);

CREATE TABLE idx_string (
	res_pk BIGINT NOT NULL,
	rtype TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
	norm TEXT COLLATE "C" NOT NULL, exact TEXT COLLATE "C" NOT NULL
);
CREATE INDEX idx_string_norm ON idx_string (rtype, param, norm);
CREATE INDEX idx_string_exact ON idx_string (rtype, param, exact);
CREATE INDEX idx_string_res ON idx_string (res_pk, param);

CREATE TABLE idx_token (
	res_pk BIGINT NOT NULL,
	rtype TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
	system TEXT COLLATE "C" NOT NULL, code TEXT COLLATE "C" NOT NULL, text TEXT COLLATE "C" NOT NULL
);
CREATE INDEX idx_token_code ON idx_token (rtype, param, code, system);
CREATE INDEX idx_token_res ON idx_token (res_pk, param);

CREATE TABLE idx_date (
	res_pk BIGINT NOT NULL,
	rtype TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
	lo BIGINT NOT NULL, hi BIGINT NOT NULL -- Unix microseconds, inclusive
);
CREATE INDEX idx_date_lo ON idx_date (rtype, param, lo);
CREATE INDEX idx_date_res ON idx_date (res_pk, param);

CREATE TABLE idx_number (
	res_pk BIGINT NOT NULL,
	rtype TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
	num DOUBLE PRECISION NOT NULL, lo DOUBLE PRECISION NOT NULL, hi DOUBLE PRECISION NOT NULL
);
CREATE INDEX idx_number_num ON idx_number (rtype, param, num);
CREATE INDEX idx_number_res ON idx_number (res_pk, param);

CREATE TABLE idx_quantity (
	res_pk BIGINT NOT NULL,
	rtype TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
	system TEXT COLLATE "C" NOT NULL, code TEXT COLLATE "C" NOT NULL,
	num DOUBLE PRECISION NOT NULL, lo DOUBLE PRECISION NOT NULL, hi DOUBLE PRECISION NOT NULL
);
CREATE INDEX idx_quantity_num ON idx_quantity (rtype, param, num);
CREATE INDEX idx_quantity_res ON idx_quantity (res_pk, param);

CREATE TABLE idx_reference (
	res_pk BIGINT NOT NULL,
	rtype TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
	ref_type TEXT COLLATE "C" NOT NULL, ref_id TEXT COLLATE "C" NOT NULL, ref_version TEXT COLLATE "C" NOT NULL,
	url TEXT COLLATE "C" NOT NULL, system TEXT COLLATE "C" NOT NULL, code TEXT COLLATE "C" NOT NULL
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
	res_pk BIGINT NOT NULL,
	rtype TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
	url TEXT COLLATE "C" NOT NULL
);
CREATE INDEX idx_uri_url ON idx_uri (rtype, param, url);
CREATE INDEX idx_uri_res ON idx_uri (res_pk, param);
`,
	// 2: composite parameters: the group tying one element instance's
	// component entries together (0 for every other entry). Composite
	// entries of resources written before it need a reindex.
	`
ALTER TABLE idx_string ADD COLUMN grp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idx_token ADD COLUMN grp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idx_date ADD COLUMN grp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idx_number ADD COLUMN grp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idx_quantity ADD COLUMN grp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idx_reference ADD COLUMN grp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idx_uri ADD COLUMN grp BIGINT NOT NULL DEFAULT 0;
`,
	// 3: :of-type: the Identifier.type coding of identifier token entries.
	`
ALTER TABLE idx_token ADD COLUMN type_system TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE idx_token ADD COLUMN type_code TEXT COLLATE "C" NOT NULL DEFAULT '';
`,
	// 4: full-text search (_text, _content): the tokens search.FullTextOf
	// produces, as tsvectors with positions (no text search configuration:
	// the literal is cast, not parsed), one GIN index per document. Resources
	// written before this version need a reindex to be found.
	`
CREATE TABLE idx_fulltext (
	res_pk    BIGINT PRIMARY KEY,
	narrative tsvector NOT NULL,
	body      tsvector NOT NULL
);
CREATE INDEX idx_fulltext_narrative ON idx_fulltext USING GIN (narrative);
CREATE INDEX idx_fulltext_body ON idx_fulltext USING GIN (body);
`,
	// 5: reindex jobs (store/reindex): one JSON document per job, so a job
	// survives a restart and resumes.
	`
CREATE TABLE reindex_jobs (
	id TEXT COLLATE "C" PRIMARY KEY,
	doc BYTEA NOT NULL
);
`,
	// 6: the lease of the process running a reindex job (store.Reindexer
	// LeaseJob), so that replicas do not run one job twice.
	`
ALTER TABLE reindex_jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE reindex_jobs ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
`,
	// 7: job retention and incremental reads (docs/reindex.md, "Job
	// retention and incremental refresh"). seq is a job's change sequence number, from the
	// one-row counter reindex_job_seq: a put increments it in the put's
	// own statement, and the row lock held until commit makes sequence
	// order commit order, so a replica reading seq > its last never skips
	// a put that commits later; the counter is never reused (unlike
	// MAX(seq) after a purge). finished_at (Unix ms, 0: not finished) is
	// when a put finished the job. Jobs stored before are seq 1 and, when
	// their JSON status is not "running" (json.Marshal output, no spaces),
	// finished now: purgeable after a full retention period from the
	// upgrade.
	`
ALTER TABLE reindex_jobs ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reindex_jobs ADD COLUMN finished_at BIGINT NOT NULL DEFAULT 0;
CREATE TABLE reindex_job_seq (n BIGINT NOT NULL);
INSERT INTO reindex_job_seq (n) VALUES (1);
UPDATE reindex_jobs SET seq = 1;
UPDATE reindex_jobs SET finished_at = (extract(epoch FROM clock_timestamp()) * 1000)::bigint
	WHERE position('"status":"'::bytea IN doc) > 0 AND position('"status":"running"'::bytea IN doc) = 0;
CREATE INDEX reindex_jobs_seq ON reindex_jobs (seq);
CREATE INDEX reindex_jobs_finished ON reindex_jobs (finished_at) WHERE finished_at > 0;
`,
}

// colType is the SQL array element type of each index value column, for the
// unnest() inserts.
var colType = map[string]string{
	"norm": "text", "exact": "text", "system": "text", "code": "text", "text": "text",
	"ref_type": "text", "ref_id": "text", "ref_version": "text", "url": "text",
	"num": "float8", "grp": "int8", "type_system": "text", "type_code": "text",
}

// dateCols are the bigint columns of idx_date (lo and hi are float8 elsewhere).
func elemType(table, col string) string {
	if table == "idx_date" {
		return "int8"
	}
	if t, ok := colType[col]; ok {
		return t
	}
	return "float8"
}
