package fhirserver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"phix/store"
)

// bundleJSON is a response Bundle. Resources are embedded as the stored bytes.
type bundleJSON struct {
	ResourceType string      `json:"resourceType"`
	ID           string      `json:"id,omitempty"`
	Meta         *bundleMeta `json:"meta,omitempty"`
	Type         string      `json:"type"`
	Total        *int        `json:"total,omitempty"`
	Link         []linkJSON  `json:"link,omitempty"`
	Entry        []entryJSON `json:"entry,omitempty"`
}

type bundleMeta struct {
	LastUpdated string `json:"lastUpdated"`
}

type linkJSON struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type entryJSON struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *searchJSON     `json:"search,omitempty"`
	Request  *requestJSON    `json:"request,omitempty"`
	Response *responseJSON   `json:"response,omitempty"`
}

type searchJSON struct {
	Mode string `json:"mode"`
}

type requestJSON struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type responseJSON struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

func newBundle(typ string) *bundleJSON {
	return &bundleJSON{
		ResourceType: "Bundle", ID: newID(), Type: typ,
		Meta: &bundleMeta{LastUpdated: instant(now())},
	}
}

func writeBundle(w http.ResponseWriter, status int, b *bundleJSON) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // links carry '&'
	if err := enc.Encode(b); err != nil {
		return errorf(CodeInternal, "internal error")
	}
	writeJSON(w, status, bytes.TrimRight(buf.Bytes(), "\n"))
	return nil
}

// fullURL is a resource's absolute URL on this server.
func fullURL(base string, rec *store.Record) string { return base + "/" + rec.Type + "/" + rec.ID }

// statusLine is Bundle.entry.response.status: the code and its reason.
func statusLine(code int) string { return strconv.Itoa(code) + " " + http.StatusText(code) }

func httpTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// pageLinks returns self/first/previous/next links for an offset-paged
// result. values are the canonical parameters (without _offset/_count), so
// the same query always yields the same links.
func pageLinks(base string, values url.Values, offset, count int, hasNext bool) []linkJSON {
	link := func(off int) string {
		v := url.Values{}
		for k, vs := range values {
			v[k] = vs
		}
		v.Set("_count", strconv.Itoa(count))
		if off > 0 {
			v.Set("_offset", strconv.Itoa(off))
		}
		return base + "?" + v.Encode()
	}
	links := []linkJSON{{"self", link(offset)}, {"first", link(0)}}
	if offset > 0 {
		prev := offset - count
		if prev < 0 {
			prev = 0
		}
		links = append(links, linkJSON{"previous", link(prev)})
	}
	if hasNext {
		links = append(links, linkJSON{"next", link(offset + count)})
	}
	return links
}
