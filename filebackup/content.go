package filebackup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReadContent chunks a regular file's content into n: its data extents
// (a sparse file's holes are left out, and recorded in n.Data), each chunk
// given to store (which keeps it, or finds it kept) and its id appended to
// n.Chunks. A file that changes while it is read is marked Changed: what
// was stored may mix before and after, and the caller warns.
func (sp *Splitter) ReadContent(full string, s Secret, n *Node, store func(id string, data []byte) error) error {
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return err
	}
	extents, err := dataExtents(f, before.Size())
	if err != nil {
		return err
	}
	if len(extents) != 1 || extents[0] != [2]int64{0, before.Size()} {
		n.Data = extents // holes: record where the data is
	}
	if before.Size() == 0 {
		n.Data = nil
	}
	n.Chunks = n.Chunks[:0]
	for _, e := range extents {
		r := io.NewSectionReader(f, e[0], e[1])
		err := sp.Split(r, func(chunk []byte) error {
			id := s.ChunkID(chunk)
			if err := store(id, chunk); err != nil {
				return err
			}
			n.Chunks = append(n.Chunks, id)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", full, err)
		}
	}
	after, err := f.Stat()
	if err != nil {
		return err
	}
	b, a := before.Sys().(*syscall.Stat_t), after.Sys().(*syscall.Stat_t)
	if after.Size() != before.Size() || a.Mtim != b.Mtim || a.Ctim != b.Ctim {
		n.Changed = true
	}
	n.Size = before.Size()
	return nil
}

// dataExtents lists where a file of size holds data, with SEEK_DATA and
// SEEK_HOLE; a file system without them gives the whole file.
func dataExtents(f *os.File, size int64) ([][2]int64, error) {
	if size == 0 {
		return nil, nil
	}
	fd := int(f.Fd())
	var out [][2]int64
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole from here to the end
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return [][2]int64{{0, size}}, nil
		}
		if err != nil {
			return nil, err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		hole = min(hole, size)
		if hole > data {
			out = append(out, [2]int64{data, hole - data})
		}
		off = hole
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return out, nil
}
