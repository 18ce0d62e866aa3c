package restore

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// paddedTar is a tar written by archive/tar, then padded with zeros to a
// 10240-byte record as tar(1) writes it, with garbage appended.
func paddedTar(t *testing.T, files map[string]string, garbage []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if pad := 10240 - buf.Len()%10240; pad < 10240 {
		buf.Write(make([]byte, pad))
	}
	buf.Write(garbage)
	return buf.Bytes()
}

// streamThroughPipe runs extractStream as unpackArchive does: the data
// arrives through a pipe from a writer that, like copyPart, must write
// every byte of a part (to hash it) before it reports success.
func streamThroughPipe(data []byte, dest string) (readErr, writeErr error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		// One write per small chunk, like io.Copy from the unsealer.
		_, err := io.Copy(pw, iotest.HalfReader(bytes.NewReader(data)))
		pw.CloseWithError(err)
		done <- err
	}()
	readErr = extractStream(pr, dest)
	pr.CloseWithError(readErr)
	return readErr, <-done
}

func TestExtractStreamRecordPadding(t *testing.T) {
	files := map[string]string{"PG_VERSION": "15\n", "global/pg_control": strings.Repeat("c", 8192)}
	data := paddedTar(t, files, nil)
	if len(data) != 2*10240 {
		t.Fatalf("the padded tar is %d bytes", len(data))
	}
	dest := t.TempDir()
	readErr, writeErr := streamThroughPipe(data, dest)
	if readErr != nil || writeErr != nil {
		t.Fatalf("a padded tar: extract %v, writer %v (want both nil: the writer must deliver every byte)", readErr, writeErr)
	}
	for name, want := range files {
		if got, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(got) != want {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
	}
	// PostgreSQL's own tar streams end without the end-of-archive marker.
	var bare bytes.Buffer
	tw := tar.NewWriter(&bare)
	tw.WriteHeader(&tar.Header{Name: "PG_VERSION", Typeflag: tar.TypeReg, Mode: 0o600, Size: 3})
	tw.Write([]byte("15\n"))
	tw.Flush()
	if readErr, writeErr := streamThroughPipe(bare.Bytes(), t.TempDir()); readErr != nil || writeErr != nil {
		t.Fatalf("a tar without the end marker: extract %v, writer %v", readErr, writeErr)
	}
}

func TestExtractStreamRefusesTrailingData(t *testing.T) {
	data := paddedTar(t, map[string]string{"PG_VERSION": "15\n"}, []byte("#!/bin/sh\n"))
	readErr, _ := streamThroughPipe(data, t.TempDir())
	if readErr == nil || readErr.Error() != "read tar: data after the end-of-archive marker (a non-zero byte 8192 bytes past it): the archive is malformed" {
		t.Fatalf("a tar with trailing garbage: extract %v", readErr)
	}
}
