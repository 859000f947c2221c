// Package auditsql holds the SQL shared by the audit backends: the schema
// and the search query builder, parameterised by dialect.
package auditsql

import (
	"fmt"
	"strings"
	"time"

	"phix/audit"
)

// Dialect differences between SQLite and PostgreSQL.
type Dialect struct {
	Blob   string             // BLOB or BYTEA
	Int    string             // INTEGER or BIGINT
	Holder func(n int) string // placeholder for the n-th (1-based) argument
}

// SQLite and Postgres are the two dialects.
var (
	SQLite   = Dialect{Blob: "BLOB", Int: "INTEGER", Holder: func(int) string { return "?" }}
	Postgres = Dialect{Blob: "BYTEA", Int: "BIGINT", Holder: func(n int) string { return fmt.Sprintf("$%d", n) }}
)

// Schema returns the statements that create the audit tables (idempotent).
func (d Dialect) Schema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS audit_events (
			idx ` + d.Int + ` PRIMARY KEY,
			ts ` + d.Int + ` NOT NULL,
			body ` + d.Blob + `,
			action TEXT, outcome TEXT, alert TEXT, patient TEXT, agent TEXT, entity TEXT)`,
		`CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events (ts)`,
		`CREATE INDEX IF NOT EXISTS audit_events_patient ON audit_events (patient, idx)`,
		`CREATE INDEX IF NOT EXISTS audit_events_agent ON audit_events (agent, idx)`,
		`CREATE INDEX IF NOT EXISTS audit_events_entity ON audit_events (entity, idx)`,
		`CREATE TABLE IF NOT EXISTS audit_hashes (id ` + d.Int + ` PRIMARY KEY, hash ` + d.Blob + ` NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS audit_checkpoints (size ` + d.Int + ` PRIMARY KEY, note ` + d.Blob + ` NOT NULL, at ` + d.Int + ` NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS audit_keys (kid TEXT PRIMARY KEY, vkey TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS audit_cursors (sink TEXT PRIMARY KEY, idx ` + d.Int + ` NOT NULL)`,
	}
}

// EventColumns is the column list every event query selects, in the order ScanArgs expects.
const EventColumns = "idx, ts, body, action, outcome, alert, patient, agent, entity"

// Search builds the SQL and arguments of an AuditEvent search (newest first).
func (d Dialect) Search(q audit.Query) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, vals ...any) {
		for range vals {
			args = append(args, nil)
			cond = strings.Replace(cond, "?", "\x00", 1)
		}
		// replace markers with dialect placeholders, numbering from the current count
		n := len(args) - len(vals)
		for i, v := range vals {
			args[n+i] = v
			cond = strings.Replace(cond, "\x00", d.Holder(n+i+1), 1)
		}
		where = append(where, cond)
	}
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		marks := strings.TrimSuffix(strings.Repeat("?,", len(vals)), ",")
		anys := make([]any, len(vals))
		for i, v := range vals {
			anys[i] = v
		}
		add(col+" IN ("+marks+")", anys...)
	}
	where = append(where, "body IS NOT NULL")
	in("action", q.Actions)
	in("outcome", q.Outcomes)
	in("alert", q.Alerts)
	if q.Patient != "" {
		add("patient = ?", q.Patient)
	}
	if q.Agent != "" {
		add("agent = ?", q.Agent)
	}
	if q.Entity != "" {
		add("entity = ?", q.Entity)
	}
	if !q.Since.IsZero() {
		add("ts >= ?", q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		add("ts < ?", q.Until.UnixMicro())
	}
	if q.Before > 0 {
		add("idx < ?", q.Before)
	}
	limit := q.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	return "SELECT " + EventColumns + " FROM audit_events WHERE " + strings.Join(where, " AND ") +
		fmt.Sprintf(" ORDER BY idx DESC LIMIT %d", limit), args
}

// Row receives one event row; both database/sql and pgx scan NULL into the
// pointer fields.
type Row struct {
	Idx, Ts                                        int64
	Body                                           []byte
	Action, Outcome, Alert, Patient, Agent, Entity *string
}

// Dest returns the scan destinations in EventColumns order.
func (r *Row) Dest() []any {
	return []any{&r.Idx, &r.Ts, &r.Body, &r.Action, &r.Outcome, &r.Alert, &r.Patient, &r.Agent, &r.Entity}
}

// Record converts the row.
func (r *Row) Record() audit.Record {
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return audit.Record{
		Index: r.Idx, Time: time.UnixMicro(r.Ts).UTC(), Body: r.Body,
		Action: s(r.Action), Outcome: s(r.Outcome), Alert: s(r.Alert),
		Patient: s(r.Patient), Agent: s(r.Agent), Entity: s(r.Entity),
	}
}

// Nullable returns nil for "" so empty search columns are stored as NULL.
func Nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
