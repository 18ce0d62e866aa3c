package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNotifierRetriesUntilDelivered(t *testing.T) {
	var calls atomic.Int32
	var got map[string]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	n := newNotifier(srv.URL, "shared-01", reg, slog.New(slog.DiscardHandler))
	n.backoff = time.Millisecond
	n.failed(t.Context(), "backup", errors.New("WAL segment 00000001000000000000000A did not reach the repository"))
	if calls.Load() != 3 {
		t.Fatalf("%d attempts, want 3 (two refused, then delivered)", calls.Load())
	}
	if got["job"] != "backup" || got["cluster"] != "shared-01" || got["status"] != "failed" || got["error"] == "" {
		t.Errorf("notice = %v", got)
	}
	if v := testutil.ToFloat64(n.failures.WithLabelValues("backup")); v != 1 {
		t.Errorf("failure counter = %v, want 1", v)
	}
}
