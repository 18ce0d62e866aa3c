// Package stream is the WAL sidecar: it keeps a physical replication
// stream from the primary running (wal.Receiver), stores every completed
// segment and, every few seconds, the segment being received, through an
// archive.Archive, and reports to the primary as flushed only what is
// stored. It follows failovers onto new timelines and survives restarts,
// storage outages and lost connections without operator action.
package stream
