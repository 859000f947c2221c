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

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) error {
	base := s.baseURL(r)
	s.capMu.Lock()
	body, ok := s.capCache[base]
	s.capMu.Unlock()
	if !ok {
		var err error
		body, err = capabilityStatement(base, s.cfg.MaxConditionalDelete > 1, s.deid != nil, s.cfg.Signing != nil)
		if err != nil {
			return errorf(CodeInternal, "internal error")
		}
		s.capMu.Lock()
		if s.capCache == nil {
			s.capCache = map[string][]byte{}
		}
		s.capCache[base] = body
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

// capabilityStatement states exactly what this server implements.
func capabilityStatement(base string, multipleDelete, deid, sign bool) ([]byte, error) {
	interactions := []code{{"read"}, {"vread"}, {"update"}, {"patch"}, {"delete"}, {"history-instance"}, {"history-type"}, {"create"}, {"search-type"}}
	condDelete := "single"
	if multipleDelete {
		condDelete = "multiple"
	}
	common := []capParam{
		{Name: "_id", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id", Type: "token"},
		{Name: "_lastUpdated", Definition: "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", Type: "date"},
	}
	revs := map[string][]string{} // target type -> "Source:param"
	types := fhir.ResourceTypes()
	params := map[string][]*search.Param{}
	for _, t := range types {
		params[t] = supportedParams(t)
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
			UpdateCreate: true, ConditionalCreate: true, ConditionalRead: "not-supported",
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
		if sign {
			cr.Operation = append(cr.Operation, signOperations...)
		}
		if deid && t == "Patient" {
			cr.Operation = append(cr.Operation, capOp{Name: "de-identify", Definition: DeidentifyDefinition})
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
	if deid {
		cs["rest"].([]any)[0].(map[string]any)["operation"] = []capOp{{Name: "de-identify", Definition: DeidentifyDefinition}}
	}
	return json.Marshal(cs)
}
