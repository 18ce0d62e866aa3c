// Package wal knows PostgreSQL's write-ahead log: LSNs, timelines, WAL file
// names for any wal_segment_size, timeline history files, and the long page
// header that starts every segment. It does no I/O beyond the readers it is
// given and never imports storage.
package wal
