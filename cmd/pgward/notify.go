package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// notifier reports the end of jobs with a JSON POST to --notify-url,
// with retries: failures always, successes with --notify-success, so a
// scheduler that went quiet is noticed.
type notifier struct {
	url       string // "" when off
	shown     string // url without user info, path or query: for logs and errors
	cluster   string
	successes bool
	log       *slog.Logger
	client    *http.Client
	backoff   time.Duration // before the first retry; doubles
}

// newNotifier checks rawURL (empty: no notices, only the counter). A
// webhook URL often carries its token in the user info, path or query, so
// the notifier logs and reports it only as scheme://host/…?… (issue 11).
func newNotifier(rawURL, cluster string, successes bool, log *slog.Logger) (*notifier, error) {
	n := &notifier{cluster: cluster, successes: successes, log: log, client: &http.Client{Timeout: 10 * time.Second}, backoff: time.Second}
	if successes && rawURL == "" {
		return nil, errors.New("--notify-success needs --notify-url: where to send the notices")
	}
	if rawURL != "" {
		shown, err := checkNotifyURL(rawURL)
		if err != nil {
			return nil, err
		}
		n.url, n.shown = rawURL, shown
	}
	return n, nil
}

// checkNotifyURL accepts an http(s) URL with a host and returns the form
// that may be shown. Its errors never show the URL.
func checkNotifyURL(raw string) (shown string, err error) {
	const want = "want http(s)://host[:port]/path, e.g. https://hooks.example.com/pgward"
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the input, which may hold a token.
		return "", fmt.Errorf("--notify-url is not a valid URL (not shown: it may hold a token): %s", want)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("--notify-url is not an http or https URL (not shown: it may hold a token): %s", want)
	}
	if u.Host == "" {
		return "", fmt.Errorf("--notify-url names no host: %s", want)
	}
	return redactURL(u), nil
}

// redactURL writes u as scheme://host, with "…" for any user info, path
// and query, which may all hold a token.
func redactURL(u *url.URL) string {
	var b strings.Builder
	b.WriteString(u.Scheme + "://")
	if u.User != nil {
		b.WriteString("…@")
	}
	b.WriteString(u.Host)
	if strings.Trim(u.EscapedPath(), "/") != "" || u.Opaque != "" {
		b.WriteString("/…")
	}
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteString("?…")
	}
	if u.Fragment != "" {
		b.WriteString("#…")
	}
	return b.String()
}

// Failed posts a job's failure; it returns once delivered or after the
// last retry.
func (n *notifier) Failed(ctx context.Context, job string, err error) {
	n.post(ctx, job, map[string]string{"status": "failed", "error": err.Error()})
}

// Succeeded posts a job's success, with --notify-success.
func (n *notifier) Succeeded(ctx context.Context, job, note string) {
	if n.successes {
		n.post(ctx, job, map[string]string{"status": "succeeded", "note": note})
	}
}

func (n *notifier) post(ctx context.Context, job string, fields map[string]string) {
	if n.url == "" {
		return
	}
	msg := map[string]string{"source": "pgward", "cluster": n.cluster, "job": job, "time": time.Now().UTC().Format(time.RFC3339)}
	for k, v := range fields {
		msg[k] = v
	}
	body, _ := json.Marshal(msg)
	const attempts = 5
	backoff := n.backoff
	for attempt := 1; ; attempt++ {
		req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
		if rerr != nil {
			// Not rerr: it quotes the URL.
			n.log.Error("notification not sent: cannot build the request", "url", n.shown, "job", job)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, perr := n.client.Do(req)
		if perr == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return
			}
			perr = fmt.Errorf("HTTP %s", resp.Status)
		}
		if attempt == attempts { // no wait after the last
			n.log.Error("notification not delivered after 5 attempts", "url", n.shown, "job", job, "err", n.redact(perr))
			return
		}
		n.log.Warn("notification failed; retrying", "url", n.shown, "job", job, "attempt", attempt, "retry_in", backoff, "err", n.redact(perr))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// redact replaces the URL a *url.Error quotes (the notify URL, or where
// the server redirected to) with the shown form.
func (n *notifier) redact(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	cause := ue.Err
	for {
		var inner *url.Error
		if !errors.As(cause, &inner) {
			break
		}
		cause = inner.Err
	}
	return fmt.Errorf("%s %s: %w", ue.Op, n.shown, cause)
}
