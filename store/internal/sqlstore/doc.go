// Package sqlstore is the part of the resource store that SQLite and
// PostgreSQL share: index-row encoding, the search SQL builder, and the read
// paths (Read, VRead, History, Search with _include/_revinclude). Each backend
// supplies a Querier over its driver and a Dialect for the few places where
// the two SQL dialects differ, so both engines execute the same SQL with the
// same semantics.
package sqlstore
