package fhirserver

import (
	"encoding/json"
	"net/http"
	"sort"

	"phix/fhir"
	"phix/fhir/search"
)

// Version is the software version reported in the CapabilityStatement.
var Version = "0.1.0"

// started is when this process began serving: the CapabilityStatement's date.
var started = now()

// supportedParams lists the search parameters of a type that actually work:
// those the extractor indexes (search.Indexed).
func supportedParams(typ string) []*search.Param {
	var out []*search.Param
	for _, p := range search.Params(typ) {
		if search.Indexed(p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// capFeatures are the optional parts of the server that are on.
type capFeatures struct {
	multipleDelete bool
	deid, sign     bool
	erase, encrypt bool // field protection (erase also needs a key service)
	enforce        bool // $consent-status
	breakGlass     bool // $break-glass, $break-glass-review
	reindex        bool
	custom         []*search.Param // custom SearchParameters ready for search
}

func (s *Server) capFeatures() capFeatures {
	f := capFeatures{
		multipleDelete: s.cfg.MaxConditionalDelete > 1, deid: s.deid != nil, sign: s.cfg.Signing != nil,
		erase: s.protect != nil && s.cfg.Eraser != nil, encrypt: s.protect != nil,
		enforce: s.enf != nil, breakGlass: s.enf != nil && s.enf.cfg.BreakGlass != nil, reindex: s.cfg.Reindex != nil,
	}
	c := s.customParams()
	for _, p := range c.Params() {
		if !c.Pending(p) {
			f.custom = append(f.custom, p)
		}
	}
	return f
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) error {
	f := s.capFeatures()
	// Custom parameters come and go at run time: they are part of the key.
	key := s.baseURL(r)
	for _, p := range f.custom {
		key += "\x00" + p.URL
	}
	s.capMu.Lock()
	body, ok := s.capCache[key]
	s.capMu.Unlock()
	if !ok {
		var err error
		body, err = capabilityStatement(s.baseURL(r), f)
		if err != nil {
			return errorf(CodeInternal, "internal error")
		}
		s.capMu.Lock()
		if s.capCache == nil {
			s.capCache = map[string][]byte{}
		}
		if len(s.capCache) > 64 {
			clear(s.capCache) // bases and custom sets seen: bounded
		}
		s.capCache[key] = body
		s.capMu.Unlock()
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

type code struct {
	Code string `json:"code"`
}

type capParam struct {
	Name       string `json:"name"`
	Definition string `json:"definition,omitempty"`
	Type       string `json:"type"`
}

type capResource struct {
	Type              string     `json:"type"`
	Interaction       []code     `json:"interaction"`
	Versioning        string     `json:"versioning"`
	ReadHistory       bool       `json:"readHistory"`
	UpdateCreate      bool       `json:"updateCreate"`
	ConditionalCreate bool       `json:"conditionalCreate"`
	ConditionalRead   string     `json:"conditionalRead"`
	ConditionalUpdate bool       `json:"conditionalUpdate"`
	ConditionalDelete string     `json:"conditionalDelete"`
	SearchInclude     []string   `json:"searchInclude,omitempty"`
	SearchRevInclude  []string   `json:"searchRevInclude,omitempty"`
	SearchParam       []capParam `json:"searchParam"`
	Operation         []capOp    `json:"operation"`
}

type capOp struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// Definitions of phix's own operations (docs/api and docs/*.md describe them).
const (
	EraseDefinition         = "urn:phix:OperationDefinition/erase"
	EncryptDefinition       = "urn:phix:OperationDefinition/encrypt"
	ReindexDefinition       = "urn:phix:OperationDefinition/reindex"
	ReindexStatusDefinition = "urn:phix:OperationDefinition/reindex-status"
	ConsentStatusDefinition = "urn:phix:OperationDefinition/consent-status"
	BreakGlassDefinition    = "urn:phix:OperationDefinition/break-glass"
	BreakGlassReviewDef     = "urn:phix:OperationDefinition/break-glass-review"
	everythingDefinition    = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
)

// capabilityStatement states exactly what this server implements.
func capabilityStatement(base string, f capFeatures) ([]byte, error) {
	interactions := []code{{"read"}, {"vread"}, {"update"}, {"patch"}, {"delete"}, {"history-instance"}, {"history-type"}, {"create"}, {"search-type"}}
	condDelete := "single"
	if f.multipleDelete {
		condDelete = "multiple"
	}
	common := []capParam{
		{Name: "_id", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id", Type: "token"},
		{Name: "_lastUpdated", Definition: "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", Type: "date"},
	}
	revs := map[string][]string{} // target type -> "Source:param"
	types := fhir.ResourceTypes()
	params := map[string][]*search.Param{}
	for _, p := range f.custom {
		for _, t := range p.Base {
			params[t] = append(params[t], p)
		}
	}
	for _, t := range types {
		params[t] = append(supportedParams(t), params[t]...)
		sort.SliceStable(params[t], func(i, j int) bool { return params[t][i].Code < params[t][j].Code })
		for _, p := range params[t] {
			if p.Type != search.TypeReference {
				continue
			}
			targets := p.Targets
			for _, tg := range targets {
				revs[tg] = append(revs[tg], t+":"+p.Code)
			}
		}
	}
	var resources []capResource
	for _, t := range types {
		cr := capResource{
			Type: t, Interaction: interactions, Versioning: "versioned-update", ReadHistory: true,
			UpdateCreate: true, ConditionalCreate: true, ConditionalRead: "full-support",
			ConditionalUpdate: true, ConditionalDelete: condDelete,
			SearchParam: append([]capParam(nil), common...),
			Operation:   []capOp{{Name: "validate", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-validate"}},
		}
		for _, p := range params[t] {
			if p.Code == "_id" || p.Code == "_lastUpdated" {
				continue
			}
			cr.SearchParam = append(cr.SearchParam, capParam{Name: p.Code, Definition: p.URL, Type: string(p.Type)})
			if p.Type == search.TypeReference {
				cr.SearchInclude = append(cr.SearchInclude, t+":"+p.Code)
			}
		}
		if f.sign {
			cr.Operation = append(cr.Operation, signOperations...)
		}
		if f.encrypt {
			cr.Operation = append(cr.Operation, capOp{Name: "encrypt", Definition: EncryptDefinition})
		}
		if f.reindex {
			cr.Operation = append(cr.Operation, capOp{Name: "reindex", Definition: ReindexDefinition})
		}
		if t == "Patient" {
			cr.Operation = append(cr.Operation, capOp{Name: "everything", Definition: everythingDefinition})
			if f.deid {
				cr.Operation = append(cr.Operation, capOp{Name: "de-identify", Definition: DeidentifyDefinition})
			}
			if f.erase {
				cr.Operation = append(cr.Operation, capOp{Name: "erase", Definition: EraseDefinition})
			}
			if f.enforce {
				cr.Operation = append(cr.Operation, capOp{Name: "consent-status", Definition: ConsentStatusDefinition})
			}
		}
		cr.SearchRevInclude = revs[t]
		sort.Strings(cr.SearchRevInclude)
		resources = append(resources, cr)
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         instant(started),
		"publisher":    "phix",
		"kind":         "instance",
		"software":     map[string]any{"name": "phix", "version": Version},
		"implementation": map[string]any{
			"description": "phix FHIR R4 server",
			"url":         base,
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"json", "application/fhir+json"},
		"patchFormat": []string{MediaTypeJSONPatch, "application/fhir+json"},
		"rest": []any{map[string]any{
			"mode": "server",
			"security": map[string]any{
				"description": "Every request except GET /metadata needs Authorization: Bearer <token>.",
			},
			"resource":    resources,
			"interaction": []code{{"transaction"}, {"batch"}, {"history-system"}},
		}},
	}
	var sys []capOp
	if f.deid {
		sys = append(sys, capOp{Name: "de-identify", Definition: DeidentifyDefinition})
	}
	if f.encrypt {
		sys = append(sys, capOp{Name: "encrypt", Definition: EncryptDefinition})
	}
	if f.reindex {
		sys = append(sys, capOp{Name: "reindex", Definition: ReindexDefinition}, capOp{Name: "reindex-status", Definition: ReindexStatusDefinition})
	}
	if f.breakGlass {
		sys = append(sys, capOp{Name: "break-glass", Definition: BreakGlassDefinition}, capOp{Name: "break-glass-review", Definition: BreakGlassReviewDef})
	}
	if len(sys) > 0 {
		cs["rest"].([]any)[0].(map[string]any)["operation"] = sys
	}
	return json.Marshal(cs)
}
