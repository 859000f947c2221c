// Command gen reads the FHIR R4 definitions (profiles-resources.json,
// profiles-types.json, valuesets.json) and writes the compact specification
// tables the fhir package embeds: every resource type and datatype with its
// elements, the primitive-type regexes, the expanded code sets of every
// ValueSet used in a required binding on a code element, and every
// ElementDefinition constraint (stored once, with the paths it sits on).
//
// Usage: go run ./internal/gen -spec DIR -out FILE
//
// The output is gzip'd JSON (see fhir/tables.go for its shape). It is
// deterministic: the same input gives the same bytes.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"phix/fhir/internal/gen/specgen"
)

func main() {
	spec := flag.String("spec", "", "directory holding the FHIR R4 definition bundles")
	out := flag.String("out", "spec_r4.json.gz", "output file")
	flag.Parse()
	if *spec == "" {
		if d := os.Getenv("PHIX_SHARED"); d != "" {
			*spec = filepath.Join(d, "fhir-r4")
		} else {
			*spec = "../../shared/fhir-r4"
		}
	}
	data, err := specgen.Generate(*spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
