package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/pgward/pgward/seal"
)

// signingKey loads the writer's signing key, or returns nil when none is
// configured (the caller warns: see warnUnsigned).
func (s settings) signingKey() (*seal.SigningKey, error) {
	if s.SigningKeyFile == "" {
		return nil, nil
	}
	if err := checkPrivateFile(s.SigningKeyFile, "--signing-key-file"); err != nil {
		return nil, err
	}
	k, err := seal.LoadSigningKey(s.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w (--signing-key-file / PGWARD_SIGNING_KEY_FILE)", err)
	}
	return k, nil
}

// warnUnsigned says, on every write without a signing key, that restore
// hosts cannot tell what is written from a forgery.
func warnUnsigned(log *slog.Logger, key *seal.SigningKey) {
	if key == nil {
		log.Warn("no signing key: objects are stored unsigned, and restore hosts cannot tell them from forgeries; " +
			"make one with 'pgward keys generate --signing' and give --signing-key-file")
	}
}

// trust returns whose signatures readers accept.
func (s settings) trust() (seal.Trust, error) {
	signers, err := seal.ParseTrustedSigners(s.TrustedSigner)
	if err != nil {
		return seal.Trust{}, fmt.Errorf("--trusted-signer: %w", err)
	}
	w := s.errWriter
	if w == nil {
		w = io.Discard
	}
	log, err := s.logger(w)
	if err != nil {
		return seal.Trust{}, err
	}
	switch {
	case len(signers) == 0 && s.AllowUnsigned:
		return seal.Trust{}, errors.New("--allow-unsigned goes with --trusted-signer: without a trusted signer nothing is checked")
	case len(signers) == 0:
		once := s.warnOnce
		if once == nil {
			once = new(sync.Once)
		}
		once.Do(func() {
			log.Warn("no --trusted-signer: objects are read without checking who wrote them; " +
				"give the writers' public keys (pgwsig1…, from 'pgward keys generate --signing')")
		})
	}
	var once sync.Once
	return seal.Trust{Signers: signers, AllowUnsigned: s.AllowUnsigned, OnUnsigned: func(key string) {
		if len(signers) == 0 {
			return
		}
		once.Do(func() {
			log.Warn("reading objects that carry no signature (--allow-unsigned): they are not authenticated", "key", key)
		})
	}}, nil
}

// checkPrivateFile refuses a key file that other users may read or
// change: whoever reads it can read (or forge) the repository.
func checkPrivateFile(path, flag string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s is not a regular file", flag, path)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return fmt.Errorf("%s %s is accessible to every user (mode %04o): it holds a secret key; "+
			"chmod o-rwx %s (and keep it readable only by the users that run pgward)", flag, path, fi.Mode().Perm(), path)
	}
	return nil
}
