# phix: `make run` starts the dev network, `make test` runs every check.
GO       ?= go
DATA     ?= ./phix-data
# -race costs about 5x; the packages it is too slow for are listed in NORACE.
TESTFLAGS ?= -count=1 -timeout 45m

.PHONY: run build test vet bench fuzz generate fmt

build:
	$(GO) build -o bin/phix ./cmd/phix

run: build
	./bin/phix dev --data $(DATA)

vet:
	$(GO) vet ./...

# The conformance suites (FHIRPath, patch) append their passed/failed/skipped
# line to $PHIX_CONFORMANCE_OUT; it is printed after the run, and a suite that
# did not report fails the target. Each suite also fails under its floor.
test: vet
	@out=$$(mktemp); PHIX_CONFORMANCE_OUT=$$out $(GO) test -race $(TESTFLAGS) ./...; rc=$$?; \
	echo "== conformance"; cat $$out; \
	for s in 'fhirpath conformance:' 'patch conformance:'; do \
	  grep -q "^$$s" $$out || { echo "conformance line missing: $$s"; rc=1; }; done; \
	rm -f $$out; exit $$rc

# Benchmarks over ../shared/testdata. BENCH narrows them, e.g. make bench BENCH=Import.
BENCH ?= .
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count 5 -timeout 90m ./...

# A short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

generate:
	$(GO) generate ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
