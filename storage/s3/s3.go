// Package s3 is a storage.Backend on any S3-compatible object store, built
// on minio-go. An object is visible only once a single PUT or a completed
// multipart upload finishes, so readers never see a partial object.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pgward/pgward/storage"
)

// Defaults for Config's zero values.
const (
	DefaultEndpoint = "s3.amazonaws.com"
	DefaultRegion   = "us-east-1"
	// DefaultPartSize bounds memory for streams of unknown length: one part
	// is buffered at a time. Objects smaller than this go in one PUT.
	DefaultPartSize = 8 << 20
	// DefaultMaxRetries bounds how long a request retries an unreachable
	// server before the error reaches the caller.
	DefaultMaxRetries = 5
)

// Config says where and how to reach the store.
type Config struct {
	// Bucket and Prefix come from the repository URL s3://bucket/prefix.
	Bucket string
	Prefix string
	// Endpoint is host[:port], or a URL whose scheme sets TLS
	// (default s3.amazonaws.com).
	Endpoint string
	// Region defaults to us-east-1.
	Region string
	// Insecure uses plain HTTP instead of TLS.
	Insecure bool
	// PathStyle forces path-style bucket addressing (needed by most
	// self-hosted stores behind a plain host name); the default lets
	// minio-go choose.
	PathStyle bool
	// AccessKey and SecretKey are the credentials; both empty means
	// anonymous access.
	AccessKey string
	SecretKey string
	// PartSize defaults to DefaultPartSize.
	PartSize int64
	// MaxRetries defaults to DefaultMaxRetries.
	MaxRetries int
}

// String describes the store without the secret key, so a Config can be
// logged or printed safely.
func (c Config) String() string {
	return fmt.Sprintf("s3://%s/%s (endpoint %s, region %s)", c.Bucket, c.Prefix, c.Endpoint, c.Region)
}

// ParseURL splits s3://bucket/prefix into Bucket and Prefix.
func ParseURL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the input, which may hold a secret.
		return "", "", errors.New("the repository URL is not a valid URL (not shown: it may hold credentials); use s3://bucket/prefix")
	}
	if u.Scheme != "s3" {
		return "", "", fmt.Errorf("repository URL %q is not s3://bucket/prefix", u.Redacted())
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("repository URL %q has no bucket: use s3://bucket/prefix", u.Redacted())
	}
	if u.User != nil {
		return "", "", fmt.Errorf("repository URL %q holds credentials: put them in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY instead", u.Redacted())
	}
	if u.RawQuery != "" {
		u.RawQuery = "…"
		return "", "", fmt.Errorf("repository URL %q: put credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and settings in --s3-* flags, not in the URL", u.String())
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// Backend stores objects in one bucket under a key prefix.
type Backend struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or ending in "/"
	partSize int64
}

var _ storage.Backend = (*Backend)(nil)

// New returns a Backend for cfg. It does not contact the server.
func New(cfg Config) (*Backend, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket given")
	}
	endpoint, secure := cfg.Endpoint, !cfg.Insecure
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("s3 endpoint %q is not host[:port] or http(s)://host[:port]", endpoint)
		}
		switch u.Scheme {
		case "http":
			secure = false
		case "https":
		default:
			return nil, fmt.Errorf("s3 endpoint %q: scheme must be http or https", endpoint)
		}
		endpoint = u.Host
	}
	region := cfg.Region
	if region == "" {
		region = DefaultRegion
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	retries := cfg.MaxRetries
	if retries <= 0 {
		retries = DefaultMaxRetries
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		creds = credentials.NewStatic("", "", "", credentials.SignatureAnonymous)
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   retries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", endpoint, err)
	}
	partSize := cfg.PartSize
	if partSize <= 0 {
		partSize = DefaultPartSize
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Backend{client: client, bucket: cfg.Bucket, prefix: prefix, partSize: partSize}, nil
}

// Client exposes the underlying client, for tests that prepare buckets.
func (b *Backend) Client() *minio.Client { return b.client }

func (b *Backend) objectName(key string) (string, error) {
	if !storage.ValidKey(key) {
		return "", fmt.Errorf("invalid object key %q", key)
	}
	return b.prefix + key, nil
}

// Put implements storage.Backend. Streams shorter than the part size are
// sent in a single PUT; longer ones as a multipart upload that becomes
// visible only when completed.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	return b.put(ctx, key, r, size, meta, true)
}

// Create implements storage.Backend with a conditional PUT
// (If-None-Match: *), which S3 and MinIO evaluate atomically. Multipart
// uploads (objects above one part) are checked with Stat first instead.
func (b *Backend) Create(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	return b.put(ctx, key, r, size, meta, false)
}

func (b *Backend) put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string, replace bool) error {
	name, err := b.objectName(key)
	if err != nil {
		return err
	}
	if size < 0 {
		// Peek one part: if the stream ends inside it, its size is known
		// and one PUT suffices (minio-go would start a multipart upload).
		buf := make([]byte, b.partSize)
		n, rerr := io.ReadFull(r, buf)
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			r, size = bytes.NewReader(buf[:n]), int64(n)
		case rerr != nil:
			return fmt.Errorf("put %s: read: %w", key, rerr)
		default:
			r = io.MultiReader(bytes.NewReader(buf), r)
		}
	}
	opts := minio.PutObjectOptions{
		UserMetadata: meta,
		ContentType:  "application/octet-stream",
		PartSize:     uint64(b.partSize),
	}
	if !replace {
		if size >= 0 && size <= b.partSize {
			opts.SetMatchETagExcept("*") // If-None-Match: *
		} else if _, err := b.Stat(ctx, key); err == nil {
			return fmt.Errorf("create %s: %w", key, storage.ErrExist)
		} else if !errors.Is(err, storage.ErrNotExist) {
			return fmt.Errorf("create %s: %w", key, err)
		}
	}
	info, err := b.client.PutObject(ctx, b.bucket, name, r, size, opts)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, translate(err))
	}
	if size >= 0 && info.Size != size {
		return fmt.Errorf("put %s: stored %d bytes, expected %d", key, info.Size, size)
	}
	return nil
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	name, err := b.objectName(key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	// Core's GetObject is one GET that returns the body and the object's
	// headers; Client.GetObject would send a HEAD first.
	body, oi, _, err := (&minio.Core{Client: b.client}).GetObject(ctx, b.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("get %s: %w", key, translate(err))
	}
	return body, b.info(key, oi), nil
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	name, err := b.objectName(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	oi, err := b.client.StatObject(ctx, b.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, translate(err))
	}
	return b.info(key, oi), nil
}

// List implements storage.Backend. S3 lists keys in lexical (UTF-8 byte)
// order, as the interface requires.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine if fn fails
	for oi := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("list %s: %w", prefix, translate(oi.Err))
		}
		if err := fn(b.info(strings.TrimPrefix(oi.Key, b.prefix), oi)); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	name, err := b.objectName(key)
	if err != nil {
		return err
	}
	if err := b.client.RemoveObject(ctx, b.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		if err := translate(err); !errors.Is(err, storage.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	return nil
}

func (b *Backend) info(key string, oi minio.ObjectInfo) storage.ObjectInfo {
	var meta map[string]string
	for k, v := range oi.UserMetadata {
		if meta == nil {
			meta = make(map[string]string, len(oi.UserMetadata))
		}
		// minio-go canonicalises header case ("Sha256"); the interface
		// promises the lowercase keys that were given to Put.
		meta[strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(k, "X-Amz-Meta-"), "x-amz-meta-"))] = v
	}
	return storage.ObjectInfo{Key: key, Size: oi.Size, ModTime: oi.LastModified, Metadata: meta}
}

// translate turns S3 "not found" answers into storage.ErrNotExist and
// names the usual configuration mistakes.
func translate(err error) error {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "PreconditionFailed":
		return fmt.Errorf("%w (%s)", storage.ErrExist, resp.Message)
	case "NoSuchKey":
		return fmt.Errorf("%w (%s)", storage.ErrNotExist, resp.Message)
	case "NoSuchBucket":
		return fmt.Errorf("bucket %q does not exist: create it first: %w", resp.BucketName, err)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return fmt.Errorf("access denied: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket policy: %w", err)
	}
	var netErr *net.OpError
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		if u, perr := url.Parse(urlErr.URL); perr == nil {
			return fmt.Errorf("cannot reach S3 endpoint %s (check --s3-endpoint, --s3-insecure and that the server is up): %w", u.Host, err)
		}
	}
	if errors.As(err, &netErr) {
		return fmt.Errorf("cannot reach S3 endpoint (check --s3-endpoint, --s3-insecure and that the server is up): %w", err)
	}
	return err
}
