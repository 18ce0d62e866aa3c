// Package e2e holds the end-to-end tests (build tag e2e): the real pgward
// binary against real PostgreSQL 15 clusters and a real MinIO server. Run
// them with `make test`, which installs what they need.
package e2e
