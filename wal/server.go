package wal

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ServerSegmentSize asks the server for wal_segment_size ("16MB").
func ServerSegmentSize(ctx context.Context, conn *pgconn.PgConn) (uint32, error) {
	rows, err := SimpleQuery(ctx, conn, "SHOW wal_segment_size")
	if err != nil || len(rows) != 1 || len(rows[0]) != 1 {
		return 0, fmt.Errorf("SHOW wal_segment_size: %v", err)
	}
	size, err := ParseSizeSetting(string(rows[0][0]))
	if err != nil || size > MaxSegmentSize || !ValidSegmentSize(uint32(size)) {
		return 0, fmt.Errorf("server reports wal_segment_size %q, which pgward cannot use", rows[0][0])
	}
	return uint32(size), nil
}

// ParseSizeSetting reads a size as SHOW prints it (16MB, 1GB, 64kB).
func ParseSizeSetting(s string) (uint64, error) {
	units := []struct {
		suffix string
		mult   uint64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
			return n * u.mult, err
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// ServerMajor is the major version in the server_version parameter.
func ServerMajor(conn *pgconn.PgConn) int {
	v := conn.ParameterStatus("server_version")
	major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return major
}

// SimpleQuery runs sql with the simple protocol (the only one a
// replication connection takes) and returns every row.
func SimpleQuery(ctx context.Context, conn *pgconn.PgConn, sql string) ([][][]byte, error) {
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var rows [][][]byte
	for _, r := range results {
		if r.Err != nil {
			return nil, r.Err
		}
		rows = append(rows, r.Rows...)
	}
	return rows, nil
}
