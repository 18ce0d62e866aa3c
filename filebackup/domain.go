// Package filebackup backs up file trees (application releases, home
// directories, /etc, shared data, the output of commands) into the
// repository, deduplicated within a key domain and sealed to that domain's
// recipients (docs/decisions/20261202_file_backups_design.md).
//
// This file holds a domain's secret: what keys its chunk ids and derives
// its chunk boundaries, so that equal data in two customers' sets is
// stored twice and compares as nothing alike.
package filebackup

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/restic/chunker"

	"github.com/pgward/pgward/internal/atomicfile"
)

// Secret is a key domain's secret. It lets its holder compute chunk ids
// (and so confirm that a known file is stored), never read data: the
// backing-up host may hold it.
type Secret [32]byte

// NewSecret makes a domain's secret.
func NewSecret() (Secret, error) {
	var s Secret
	if _, err := rand.Read(s[:]); err != nil {
		return s, fmt.Errorf("make a files secret: %w", err)
	}
	return s, nil
}

const secretHeader = "PGWARD-FILES-SECRET-1\n"

// Marshal writes the secret as a file holds it.
func (s Secret) Marshal() []byte {
	return []byte(secretHeader + base64.StdEncoding.EncodeToString(s[:]) + "\n")
}

// ParseSecret reads a secret file's contents. Its errors never show them.
func ParseSecret(b []byte) (Secret, error) {
	var s Secret
	rest, ok := bytes.CutPrefix(b, []byte(secretHeader))
	if !ok {
		return s, errors.New("not a pgward files secret (its first line is not " + secretHeader[:len(secretHeader)-1] + ")")
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(rest)))
	if err != nil || len(raw) != len(s) {
		return s, errors.New("a pgward files secret holds 32 bytes in base64 on its second line; this one does not (not shown)")
	}
	copy(s[:], raw)
	return s, nil
}

// LoadSecretFile reads the secret at path, refusing a file others may read.
func LoadSecretFile(path string) (Secret, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Secret{}, fmt.Errorf("files secret: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Secret{}, fmt.Errorf("files secret %s has mode %04o: others could compute this domain's chunk ids; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Secret{}, fmt.Errorf("files secret: %w", err)
	}
	s, err := ParseSecret(b)
	if err != nil {
		return Secret{}, fmt.Errorf("files secret %s: %w", path, err)
	}
	return s, nil
}

// CreateSecretFile writes s to path (mode 0600) only if no file is there,
// atomically: a crash leaves the old state or the whole file.
func CreateSecretFile(path string, s Secret) error {
	if err := atomicfile.Create(path, s.Marshal(), 0o600); err != nil {
		if errors.Is(err, atomicfile.ErrExist) {
			return fmt.Errorf("files secret %s already exists: never replaced", path)
		}
		return fmt.Errorf("files secret: %w", err)
	}
	return nil
}

// ChunkID is the id of a chunk with plaintext data in the secret's domain:
// HMAC-SHA256, hex.
func (s Secret) ChunkID(data []byte) string {
	m := hmac.New(sha256.New, s[:])
	m.Write(data)
	return hex.EncodeToString(m.Sum(nil))
}

// Polynomial is the domain's chunker polynomial, derived from its secret,
// so that chunk boundaries (and sizes) differ between domains too.
func (s Secret) Polynomial() (chunker.Pol, error) {
	// DerivePolynomial reads 8 bytes per try, and a try finds an
	// irreducible polynomial with about 7.5% chance: HKDF's longest output
	// (8160 bytes, 1020 tries) fails with a chance below 1e-34.
	seed, err := hkdf.Key(sha256.New, s[:], nil, "pgward files chunker polynomial", 255*sha256.Size)
	if err != nil {
		return 0, err
	}
	return chunker.DerivePolynomial(bytes.NewReader(seed))
}

// Splitter cuts a stream into content-defined chunks with one buffer it
// reuses, so splitting a 10 GiB file holds one chunk at a time.
type Splitter struct {
	c   *chunker.Chunker
	buf []byte
	pol chunker.Pol
}

// NewSplitter returns a splitter for the secret's domain.
func (s Secret) NewSplitter() (*Splitter, error) {
	pol, err := s.Polynomial()
	if err != nil {
		return nil, err
	}
	return &Splitter{c: chunker.New(bytes.NewReader(nil), pol), buf: make([]byte, chunker.MaxSize), pol: pol}, nil
}

// Split calls fn with each chunk of r in order. The slice is valid only
// until fn returns.
func (sp *Splitter) Split(r io.Reader, fn func(chunk []byte) error) error {
	sp.c.Reset(r, sp.pol)
	for {
		ch, err := sp.c.Next(sp.buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(ch.Data); err != nil {
			return err
		}
	}
}
