package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/storage/s3"
	"github.com/pgward/pgward/storage/storagetest"
)

func TestConformance(t *testing.T) {
	srv := miniotest.Start(t)
	b, err := s3.New(s3.Config{
		Bucket: srv.Bucket(t), Prefix: "some/prefix", Endpoint: srv.Endpoint, Insecure: true, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: 5 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, b)
}

func TestMissingBucketAndBadCredentials(t *testing.T) {
	srv := miniotest.Start(t)
	ctx := t.Context()
	b, _ := s3.New(s3.Config{Bucket: "no-such-bucket", Endpoint: srv.Endpoint, Insecure: true, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	err := b.Put(ctx, "k", strings.NewReader("x"), 1, nil)
	if err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Errorf("Put into a missing bucket: %v", err)
	}
	b, _ = s3.New(s3.Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, Insecure: true, PathStyle: true, AccessKey: srv.AccessKey, SecretKey: "wrong-secret"})
	_, err = b.Stat(ctx, "k")
	if err == nil || errors.Is(err, storage.ErrNotExist) || !strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("Stat with a wrong secret: %v, want an access error naming the credentials", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("error %q shows the secret key", err)
	}
}

func TestUnreachableEndpoint(t *testing.T) {
	b, _ := s3.New(s3.Config{Bucket: "bucket", Endpoint: "127.0.0.1:1", Insecure: true, MaxRetries: 2})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := b.Stat(ctx, "k")
	if err == nil || !strings.Contains(err.Error(), "cannot reach S3 endpoint 127.0.0.1:1") {
		t.Fatalf("Stat on a closed port: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix, err string
	}{
		{"s3://bkt", "bkt", "", ""},
		{"s3://bkt/", "bkt", "", ""},
		{"s3://bkt/a/b/", "bkt", "a/b", ""},
		{"s3:///path", "", "", "has no bucket"},
		{"file:///x", "", "", "is not s3://"},
		{"s3://key:secret@bkt/p", "", "", "holds credentials"},
		{"s3://bkt/p?x=1", "", "", "not in the URL"},
	} {
		bucket, prefix, err := s3.ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURL(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseURL(%q) error shows the secret: %v", tc.in, err)
			}
			continue
		}
		if err != nil || bucket != tc.bucket || prefix != tc.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.in, bucket, prefix, err, tc.bucket, tc.prefix)
		}
	}
}
