package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
	n, err := newNotifier(srv.URL, "shared-01", true, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n.backoff = time.Millisecond
	n.Failed(t.Context(), "backup", errors.New("WAL segment 00000001000000000000000A did not reach the repository"))
	if calls.Load() != 3 {
		t.Fatalf("%d attempts, want 3 (two refused, then delivered)", calls.Load())
	}
	if got["job"] != "backup" || got["cluster"] != "shared-01" || got["status"] != "failed" || got["error"] == "" {
		t.Errorf("notice = %v", got)
	}
	calls.Store(2) // the next is delivered at once
	n.Succeeded(t.Context(), "prune", "deleted 2 backups")
	if got["job"] != "prune" || got["status"] != "succeeded" || got["note"] != "deleted 2 backups" {
		t.Errorf("success notice = %v", got)
	}
	quiet, _ := newNotifier(srv.URL, "shared-01", false, slog.New(slog.DiscardHandler))
	before := calls.Load()
	quiet.Succeeded(t.Context(), "prune", "x")
	if calls.Load() != before {
		t.Error("a success was posted without --notify-success")
	}
	if _, err := newNotifier("", "main", true, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--notify-success needs --notify-url") {
		t.Errorf("--notify-success without a URL: %v", err)
	}
}

// The notify URL's user info, path and query (where webhooks keep their
// tokens) appear in no log line, whether the server answers with an error
// or cannot be reached (issue 11).
func TestNotifierLogsNoToken(t *testing.T) {
	const secret = "tok3n-s3cret"
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	// A port nothing listens on: the client's error quotes the URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct{ name, url, shown string }{
		{"HTTP 500", srv.URL + "/hooks/" + secret + "?token=" + secret + "&x=1", strings.TrimPrefix(srv.URL, "http://") + "/…?…"},
		{"refused", "http://user:" + secret + "@" + closed + "/services/" + secret, "…@" + closed + "/…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			n, err := newNotifier(tc.url, "main", false, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			n.backoff = time.Millisecond
			n.Failed(t.Context(), "backup", errors.New("boom"))
			out := logs.String()
			if strings.Count(out, "notification failed; retrying") != 4 || strings.Count(out, "not delivered after 5 attempts") != 1 {
				t.Errorf("want 4 retries logged, then the failure:\n%s", out)
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if !strings.Contains(line, "url="+strings.SplitN(tc.url, ":", 2)[0]+"://"+tc.shown+" ") {
					t.Errorf("a line does not name the endpoint as %q: %s", tc.shown, line)
				}
			}
			if strings.Contains(out, secret) || strings.Contains(out, "token=") {
				t.Errorf("the log shows the token:\n%s", out)
			}
			if !strings.Contains(out, tc.shown) {
				t.Errorf("the log does not name the endpoint as %q:\n%s", tc.shown, out)
			}
		})
	}
	if calls.Load() != 5 {
		t.Errorf("the server saw %d attempts, want 5", calls.Load())
	}
}

func TestNotifierBadURL(t *testing.T) {
	const secret = "tok3n-s3cret"
	for _, raw := range []string{
		"hooks.example.com/" + secret, // no scheme
		"ftp://hooks.example.com/" + secret,
		"http:///" + secret,                     // no host
		"http://hooks.example.com/%zz" + secret, // bad escape
		"http://hooks.example.com/a b\n" + secret,
		"https://user:" + secret + "@[::1",
		"'https://hooks.example.com/" + secret + "'", // quoted twice by a unit file
	} {
		_, err := newNotifier(raw, "main", false, slog.New(slog.DiscardHandler))
		if err == nil {
			t.Errorf("newNotifier(%q) accepted it", raw)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, secret) || !strings.Contains(msg, "--notify-url") || !strings.Contains(msg, "http") {
			t.Errorf("newNotifier(%q): %v; want a message naming --notify-url and the form, without the token", raw, err)
		}
	}
	n, err := newNotifier("", "main", false, slog.New(slog.DiscardHandler))
	if err != nil || n.url != "" {
		t.Errorf("an empty --notify-url: %v, want notices off", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com":                   "https://hooks.example.com",
		"https://hooks.example.com/":                  "https://hooks.example.com",
		"https://hooks.example.com/services/T/B/X":    "https://hooks.example.com/…",
		"https://hooks.example.com:8443/h?token=abc":  "https://hooks.example.com:8443/…?…",
		"https://u:p@hooks.example.com/?token=abc#id": "https://…@hooks.example.com?…#…",
	} {
		shown, err := checkNotifyURL(in)
		if err != nil || shown != want {
			t.Errorf("checkNotifyURL(%q) = %q, %v; want %q", in, shown, err, want)
		}
	}
}
