package stream

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the sidecar's Prometheus collectors. Register them on a
// registry the caller owns (no global registry).
type Metrics struct {
	ReceivedLSN      prometheus.Gauge
	FlushedLSN       prometheus.Gauge
	StoredLSN        prometheus.Gauge
	ServerLSN        prometheus.Gauge
	LagBytes         prometheus.Gauge
	LagSeconds       prometheus.Gauge
	NewestSegment    prometheus.Gauge
	NewestPartial    prometheus.Gauge
	UploadErrors     prometheus.Counter
	SpoolBytes       prometheus.Gauge
	SlotRetained     prometheus.Gauge
	Connected        prometheus.Gauge
	Timeline         prometheus.Gauge
	SegmentsUploaded prometheus.Counter
	Gaps             prometheus.Counter
}

// NewMetrics makes the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pgward", Subsystem: "stream", Name: name, Help: help})
	}
	m := &Metrics{
		ReceivedLSN:   g("received_lsn", "End of the WAL received and written to the local spool."),
		FlushedLSN:    g("flushed_lsn", "Flush position last reported to the server: never beyond stored_lsn or the slot's own position."),
		StoredLSN:     g("stored_lsn", "End of the WAL durably stored in the repository (segments and the newest partial)."),
		ServerLSN:     g("server_lsn", "The server's current end of WAL, from its last message."),
		LagBytes:      g("lag_bytes", "server_lsn minus stored_lsn: WAL a lost site would lose now."),
		LagSeconds:    g("lag_seconds", "Seconds since the server was at stored_lsn: the RPO right now."),
		NewestSegment: g("newest_segment_timestamp_seconds", "When the newest complete segment was stored (Unix time)."),
		NewestPartial: g("newest_partial_timestamp_seconds", "When the newest partial segment was stored (Unix time)."),
		UploadErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pgward", Subsystem: "stream",
			Name: "upload_errors_total", Help: "Failed attempts to store a segment or partial (each is retried)."}),
		SpoolBytes:   g("spool_bytes", "Bytes of WAL in the local spool waiting to be stored."),
		SlotRetained: g("slot_retained_bytes", "WAL the server keeps for the slot: server_lsn minus the flush position last reported (a physical slot's restart_lsn)."),
		Connected:    g("connected", "1 while a replication connection is streaming."),
		Timeline:     g("timeline", "Timeline being streamed."),
		SegmentsUploaded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pgward", Subsystem: "stream",
			Name: "segments_stored_total", Help: "Complete segments stored in the repository."}),
		Gaps: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pgward", Subsystem: "stream",
			Name: "gaps_total", Help: "Times the server no longer had the WAL after the repository's end, leaving a gap."}),
	}
	reg.MustRegister(m.ReceivedLSN, m.FlushedLSN, m.StoredLSN, m.ServerLSN, m.LagBytes, m.LagSeconds,
		m.NewestSegment, m.NewestPartial, m.UploadErrors, m.SpoolBytes, m.SlotRetained, m.Connected, m.Timeline, m.SegmentsUploaded, m.Gaps)
	return m
}
