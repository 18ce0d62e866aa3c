package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// notifier reports failed scheduled jobs: a counter, and a JSON POST to
// --notify-url with retries.
type notifier struct {
	url      string
	cluster  string
	failures *prometheus.CounterVec
	log      *slog.Logger
	client   *http.Client
	backoff  time.Duration // before the first retry; doubles
}

func newNotifier(url, cluster string, reg prometheus.Registerer, log *slog.Logger) *notifier {
	n := &notifier{url: url, cluster: cluster, log: log, client: &http.Client{Timeout: 10 * time.Second}, backoff: time.Second,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pgward", Name: "scheduled_job_failures_total",
			Help: "Failed scheduled jobs of the sidecar (backup, prune)."}, []string{"job"})}
	reg.MustRegister(n.failures)
	return n
}

// failed counts the failure and posts it; it returns once delivered or
// after the last retry.
func (n *notifier) failed(ctx context.Context, job string, err error) {
	n.failures.WithLabelValues(job).Inc()
	if n.url == "" {
		return
	}
	body, _ := json.Marshal(map[string]string{
		"source": "pgward", "cluster": n.cluster, "job": job, "status": "failed",
		"error": err.Error(), "time": time.Now().UTC().Format(time.RFC3339),
	})
	backoff := n.backoff
	for attempt := 1; attempt <= 5; attempt++ {
		req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
		if rerr != nil {
			n.log.Error("notification not sent", "err", rerr)
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
		n.log.Warn("notification failed; retrying", "attempt", attempt, "err", perr)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	n.log.Error("notification not delivered after 5 attempts", "job", job)
}
