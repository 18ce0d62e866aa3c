# pgward: the two commands a newcomer needs are `make demo` and `make test`.
SHELL     := /bin/bash
GO        ?= go
BENCH     ?= ^TestBench
CACHE     ?= $(HOME)/.cache/pgward
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Debian versions start with a digit: 0~git<date>.<commit> until the first tag.
DEB_VERSION  ?= 0~git$(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null).$(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
NFPM_VERSION := v2.48.0
export PGWARD_MINIO_BIN := $(CACHE)/bin/minio
export PGWARD_CACHE     := $(CACHE)

.PHONY: build deps demo test unit e2e bench bench-quick fuzz lint clean package package-check

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/pgward ./cmd/pgward

deps:
	scripts/install-deps.sh all

# A scratch cluster archiving through pgward into a local repository, a base
# backup, and a recovery that shows the rows came back.
demo:
	scripts/install-deps.sh pg
	$(MAKE) --no-print-directory build
	scripts/demo.sh

# Everything CI runs: vet, unit tests (with the S3 backend against MinIO),
# and the end-to-end tests against real PostgreSQL 15 and MinIO. Skips are
# failures here (PGWARD_TEST_REQUIRE=1).
test: deps lint unit e2e package-check

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	$(GO) vet -tags 'e2e bench' ./e2e/...

unit:
	PGWARD_TEST_REQUIRE=1 $(GO) test -race -count=1 ./...

e2e:
	PGWARD_TEST_REQUIRE=1 $(GO) test -tags e2e -count=1 -timeout 30m ./e2e/...

# Throughput of the seal pipeline and of the real binary, one process per
# segment as PostgreSQL calls it, into a file repository and into MinIO.
bench:
	scripts/install-deps.sh bench
	set -o pipefail; $(GO) test -tags 'e2e bench' -count=1 -timeout 90m -run '$(BENCH)' -v ./e2e/ | grep -v -E '^(=== RUN|--- PASS|PASS$$|ok )'

# The same tables on small data (0.3 GiB cluster, 16 segments), for
# iteration; the ratios at full size are make bench's.
bench-quick:
	PGWARD_BENCH_SCALE=20 PGWARD_BENCH_EXTRA_SCALE=0 PGWARD_BENCH_SEGMENTS=16 $(MAKE) --no-print-directory bench BENCH='$(BENCH)'

# Every fuzz target, each for FUZZTIME (FUZZFLAGS=-parallel=1 on a busy
# machine). Inputs that fail land in the package's testdata/fuzz. Each new
# interesting input is minimized for FUZZMINIMIZETIME, not Go's 60s: with
# large seeds (a pg_dump archive, a tar) that would stall the search.
FUZZTIME         ?= 30s
FUZZMINIMIZETIME ?= 5s
FUZZFLAGS        ?=
FUZZ              = $(GO) test -run='^$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) $(FUZZFLAGS)

fuzz:
	$(FUZZ) -fuzz='^FuzzOpen$$' ./seal
	$(FUZZ) -fuzz='^FuzzOpenBytes$$' ./seal
	$(FUZZ) -fuzz='^FuzzVerifyRecord$$' ./seal
	$(FUZZ) -fuzz='^FuzzParseFileName$$' ./wal
	$(FUZZ) -fuzz='^FuzzParseLSN$$' ./wal
	$(FUZZ) -fuzz='^FuzzParseSegmentHeader$$' ./wal
	$(FUZZ) -fuzz='^FuzzParseHistory$$' ./wal
	$(FUZZ) -fuzz='^FuzzClusterInfo$$' ./catalog
	$(FUZZ) -fuzz='^FuzzBackupInfo$$' ./catalog
	$(FUZZ) -fuzz='^FuzzReadInfo$$' ./basebackup
	$(FUZZ) -fuzz='^FuzzDispatch$$' ./basebackup
	$(FUZZ) -fuzz='^FuzzDumpInfo$$' ./dump
	$(FUZZ) -fuzz='^FuzzReadArchiveStats$$' ./dump
	$(FUZZ) -fuzz='^FuzzExtract$$' ./restore
	$(FUZZ) -fuzz='^FuzzParsePack$$' ./filebackup
	$(FUZZ) -fuzz='^FuzzNodeJSON$$' ./filebackup

# The Debian package (build/pgward_<version>_amd64.deb), with nfpm at a
# pinned version: the binary, the man page and the shell completions
# generated from the CLI, the systemd units and the example configuration.
package:
	rm -rf build && mkdir -p build/completion
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o build/pgward ./cmd/pgward
	PGWARD_CONFIG= build/pgward man | gzip -9n > build/pgward.1.gz
	PGWARD_CONFIG= build/pgward completion bash > build/completion/pgward.bash
	PGWARD_CONFIG= build/pgward completion zsh > build/completion/_pgward
	PGWARD_VERSION=$(DEB_VERSION) $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION) \
	  package --config packaging/nfpm.yaml --packager deb --target build/

# The package as a DBA would check it: its contents, unpacked into a
# scratch root; the units through systemd-analyze verify; the man page
# rendered; the completion loaded by bash.
package-check: package
	scripts/package-check.sh build/pgward_*_amd64.deb

clean:
	rm -rf bin build
