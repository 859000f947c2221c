package fhirserver

import (
	"strings"

	"phix/fhir"
)

// entryURL is a parsed Bundle.entry.request.url (or a conditional reference).
type entryURL struct {
	Type  string
	ID    string
	VID   string
	Op    string // "_search", "_history", "$validate", ...: a sub-path after type (or id)
	Query string // raw query after '?'
	// HasQuery is set when the URL has a '?', even an empty query.
	HasQuery bool
}

// parseEntryURL parses a relative request URL of a Bundle entry: "Type",
// "Type/id", "Type/id/_history/vid", "Type?query", an operation path, or
// the same prefixed by this server's base URL.
func parseEntryURL(raw, base string) (entryURL, error) {
	var u entryURL
	bad := errorf(CodeInvalidBundle, "entry.request.url is not a valid relative FHIR URL")
	if base != "" && strings.HasPrefix(raw, base+"/") {
		raw = raw[len(base)+1:]
	}
	if strings.Contains(raw, "://") || strings.HasPrefix(raw, "urn:") {
		return u, bad
	}
	raw = strings.TrimPrefix(raw, "/")
	path := raw
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		path, u.Query, u.HasQuery = raw[:i], raw[i+1:], true
	}
	if path == "" {
		return u, nil // system level (batch GETs such as "?_type=...")
	}
	seg := strings.Split(path, "/")
	if strings.HasPrefix(seg[0], "_") || strings.HasPrefix(seg[0], "$") || seg[0] == "metadata" {
		if len(seg) != 1 {
			return u, bad
		}
		u.Op = seg[0]
		return u, nil
	}
	if !fhir.IsResourceType(seg[0]) {
		return u, errorf(CodeUnknownType, "unknown resource type in entry.request.url")
	}
	u.Type = seg[0]
	switch len(seg) {
	case 1:
	case 2:
		if strings.HasPrefix(seg[1], "_") || strings.HasPrefix(seg[1], "$") {
			u.Op = seg[1]
		} else {
			u.ID = seg[1]
		}
	case 3:
		u.ID, u.Op = seg[1], seg[2]
	case 4:
		if seg[2] != "_history" {
			return u, bad
		}
		u.ID, u.VID = seg[1], seg[3]
	default:
		return u, bad
	}
	if u.ID != "" && !validID(u.ID) {
		return u, errorf(CodeInvalidID, "invalid id in entry.request.url")
	}
	return u, nil
}

// parseConditionalRef recognises a conditional reference, "Type?query".
func parseConditionalRef(ref string) (typ, query string, ok bool) {
	i := strings.IndexByte(ref, '?')
	if i <= 0 || i == len(ref)-1 {
		return "", "", false
	}
	typ = ref[:i]
	if !fhir.IsResourceType(typ) {
		return "", "", false
	}
	return typ, ref[i+1:], true
}
