package dump

// A reader of pg_dump's custom archive format (-Fc, pg_backup_archiver.c):
// it reads the table of contents and the data blocks as a dump streams
// past, so a dump records its tables and rows without a second read.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// TableStats are what a dump recorded of one table's data: the drill
// checks a restored table against them.
type TableStats struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
}

// ArchiveStats are read from a pg_dump custom-format archive as it streams
// past: the tables it creates, and the rows of each table's data.
type ArchiveStats struct {
	Tables     int          // TABLE entries (partitioned tables included)
	TableData  []TableStats // TABLE DATA entries, in archive order
	Rows       int64        // all rows of TableData
	DBName     string
	DumpedFrom string // the server's version string
	DumpedBy   string // pg_dump's
}

// Archive block types (pg_backup_archiver.h).
const (
	blockData  = 1
	blockBlobs = 3
)

// ReadArchiveStats reads an uncompressed (pg_dump -Fc -Z0) custom-format
// archive from r to its end. A row of COPY text data ends with the only
// unescaped newline it holds, so a table's rows are the newlines in its
// data. It reads every byte of r, even after an error, so that it can sit
// on a tee without stalling the writer.
func ReadArchiveStats(r io.Reader) (*ArchiveStats, error) {
	ar := &archiveReader{r: bufio.NewReaderSize(r, 256<<10)}
	st, err := ar.read()
	if _, derr := io.Copy(io.Discard, ar.r); err == nil && derr != nil {
		err = derr
	}
	if err != nil {
		return nil, fmt.Errorf("read pg_dump archive: %w", err)
	}
	return st, nil
}

type archiveReader struct {
	r       *bufio.Reader
	intSize int
	offSize int
	version [3]byte
	buf     bytes.Buffer
}

var errArchiveFormat = errors.New("not a pg_dump custom-format archive")

func (a *archiveReader) read() (*ArchiveStats, error) {
	head := make([]byte, 11)
	if _, err := io.ReadFull(a.r, head); err != nil {
		return nil, fmt.Errorf("%w: %w", errArchiveFormat, err)
	}
	if string(head[:5]) != "PGDMP" || head[10] != 1 {
		return nil, errArchiveFormat
	}
	copy(a.version[:], head[5:8])
	a.intSize, a.offSize = int(head[8]), int(head[9])
	if a.version[0] != 1 || a.version[1] < 14 || a.version[1] > 15 {
		return nil, fmt.Errorf("archive version %d.%d is not one this pgward reads (1.14–1.15, PostgreSQL 15 and 16)", a.version[0], a.version[1])
	}
	if a.intSize < 1 || a.intSize > 8 || a.offSize < 1 || a.offSize > 8 {
		return nil, errArchiveFormat
	}
	// Compression: an int before 1.15, then an algorithm byte.
	var compressed bool
	if a.version[1] >= 15 {
		b, err := a.r.ReadByte()
		if err != nil {
			return nil, err
		}
		compressed = b != 0
	} else {
		c, err := a.int()
		if err != nil {
			return nil, err
		}
		compressed = c != 0
	}
	if compressed {
		return nil, errors.New("the archive is compressed; pgward dumps with pg_dump -Z0 and compresses itself")
	}
	for range 7 { // creation time: sec, min, hour, mday, mon, year, isdst
		if _, err := a.int(); err != nil {
			return nil, err
		}
	}
	st := &ArchiveStats{}
	var err error
	if st.DBName, _, err = a.str(); err != nil {
		return nil, err
	}
	if st.DumpedFrom, _, err = a.str(); err != nil {
		return nil, err
	}
	if st.DumpedBy, _, err = a.str(); err != nil {
		return nil, err
	}
	data, err := a.toc(st)
	if err != nil {
		return nil, err
	}
	for {
		kind, err := a.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		id, err := a.int()
		if err != nil {
			return nil, err
		}
		switch kind {
		case blockData:
			rows, err := a.chunks(true)
			if err != nil {
				return nil, fmt.Errorf("data of entry %d: %w", id, err)
			}
			if i, ok := data[id]; ok {
				st.TableData[i].Rows += rows
				st.Rows += rows
			}
		case blockBlobs:
			for {
				oid, err := a.int()
				if err != nil {
					return nil, err
				}
				if oid == 0 {
					break
				}
				if _, err := a.chunks(false); err != nil {
					return nil, fmt.Errorf("large object %d: %w", oid, err)
				}
			}
		default:
			return nil, fmt.Errorf("unknown block type %d", kind)
		}
	}
	return st, nil
}

// toc reads the table of contents; it returns the index in
// st.TableData of each TABLE DATA entry's dump id.
func (a *archiveReader) toc(st *ArchiveStats) (map[int64]int, error) {
	n, err := a.int()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > 1<<24 {
		return nil, fmt.Errorf("implausible TOC entry count %d", n)
	}
	data := map[int64]int{}
	for range n {
		id, err := a.int()
		if err != nil {
			return nil, err
		}
		if _, err := a.int(); err != nil { // has a data dumper
			return nil, err
		}
		var f [12]string
		// tableoid, oid, tag, desc, [section], defn, dropStmt, copyStmt,
		// namespace, tablespace, tableam, owner, "false" (with OIDs)
		names := []string{"tableoid", "oid", "tag", "desc"}
		for i := range names {
			if f[i], _, err = a.str(); err != nil {
				return nil, err
			}
		}
		if _, err := a.int(); err != nil { // section
			return nil, err
		}
		for i := 4; i < 12; i++ {
			if f[i], _, err = a.str(); err != nil {
				return nil, err
			}
		}
		for { // dependencies, ended by a NULL string
			_, null, err := a.str()
			if err != nil {
				return nil, err
			}
			if null {
				break
			}
		}
		if _, err := a.r.Discard(1 + a.offSize); err != nil { // data offset
			return nil, err
		}
		tag, desc, namespace := f[2], f[3], f[7]
		switch desc {
		case "TABLE":
			st.Tables++
		case "TABLE DATA":
			data[id] = len(st.TableData)
			st.TableData = append(st.TableData, TableStats{Schema: namespace, Name: tag})
		}
	}
	return data, nil
}

// copyEnd ends a table's COPY data in the archive ("\\." and blank lines).
const copyEnd = "\\.\n\n\n"

// chunks reads length-prefixed data chunks up to a zero length, counting
// newlines when asked; the end-of-data marker's are not rows.
func (a *archiveReader) chunks(count bool) (int64, error) {
	// pg_dump -Z0 writes each row as a chunk of its own: nothing here
	// allocates or copies per chunk.
	var lines int64
	var tail [len(copyEnd)]byte // the data's last bytes, to find the end marker
	tailLen := 0
	for {
		n, err := a.int()
		if err != nil {
			return 0, err
		}
		if n == 0 {
			if count && tailLen == len(tail) && string(tail[:]) == copyEnd {
				lines -= int64(strings.Count(copyEnd, "\n"))
			}
			return lines, nil
		}
		if n < 0 {
			return 0, fmt.Errorf("negative chunk length %d", n)
		}
		for n > 0 {
			b, err := a.r.Peek(int(min(n, int64(a.r.Size()))))
			if len(b) == 0 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, err
			}
			if count {
				lines += int64(bytes.Count(b, []byte{'\n'}))
				if len(b) >= len(tail) {
					tailLen = copy(tail[:], b[len(b)-len(tail):])
				} else {
					keep := min(tailLen, len(tail)-len(b))
					copy(tail[:keep], tail[tailLen-keep:tailLen])
					tailLen = keep + copy(tail[keep:], b)
				}
			}
			a.r.Discard(len(b))
			n -= int64(len(b))
		}
	}
}

// int reads pg_dump's integer: a sign byte, then intSize bytes, least
// significant first.
func (a *archiveReader) int() (int64, error) {
	b, err := a.r.Peek(1 + a.intSize) // intSize is 1 to 8
	if len(b) < 1+a.intSize {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	var v int64
	for i := a.intSize; i >= 1; i-- {
		v = v<<8 | int64(b[i])
	}
	if b[0] != 0 {
		v = -v
	}
	a.r.Discard(len(b))
	return v, nil
}

// str reads a length-prefixed string; length -1 is NULL.
func (a *archiveReader) str() (string, bool, error) {
	n, err := a.int()
	if err != nil {
		return "", false, err
	}
	if n < 0 {
		return "", true, nil
	}
	if n > 1<<30 {
		return "", false, fmt.Errorf("implausible string length %d", n)
	}
	// The buffer grows with the bytes that arrive, not with the length
	// claimed: a damaged length must not allocate a gigabyte.
	a.buf.Reset()
	if m, err := io.CopyN(&a.buf, a.r, n); err != nil {
		if err == io.EOF && m > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", false, err
	}
	return a.buf.String(), false, nil
}
