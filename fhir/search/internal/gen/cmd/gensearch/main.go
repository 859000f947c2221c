// Command gensearch regenerates fhir/search/registry.json from the FHIR R4
// definitions:
//
//	go run ./fhir/search/internal/gen/cmd/gensearch -in ../shared/fhir-r4 -out fhir/search/registry.json
package main

import (
	"flag"
	"log"
	"os"

	"phix/fhir/search/internal/gen"
)

func main() {
	in := flag.String("in", "../shared/fhir-r4", "directory holding search-parameters.json and the profiles")
	out := flag.String("out", "fhir/search/registry.json", "output file")
	flag.Parse()
	b, err := gen.Generate(*in)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		log.Fatal(err)
	}
}
