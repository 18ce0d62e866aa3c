package wal

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// ReadControlSystemIdentifier reads the system identifier from a
// global/pg_control file: the first field of ControlFileData, followed by
// pg_control_version, which must look like one (PostgreSQL 9.6 writes
// 960, 15 writes 1300).
func ReadControlSystemIdentifier(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [12]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	version := binary.LittleEndian.Uint32(b[8:12])
	if version < 900 || version > 9999 {
		return 0, fmt.Errorf("%s is not a pg_control file (version field %d)", path, version)
	}
	return binary.LittleEndian.Uint64(b[0:8]), nil
}
