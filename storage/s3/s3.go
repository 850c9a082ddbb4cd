// Package s3 stores upload blobs (storage.Blobs) in an S3-compatible object store: AWS S3 (virtual-hosted
// bucket addressing) or MinIO, versitygw, Garage and the like (path-style addressing). Clients PUT and GET the
// bytes with presigned URLs; they never pass through Parley.
//
// A presigned PUT signs Content-Length and Content-Type, so the store itself refuses a body of another length
// or type. Downloads use presigned GET URLs (at most seven days, a SigV4 limit), or plain URLs under a public
// or CDN base URL when one is configured.
package s3

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"parley.im/parley/storage"
)

// MaxPresign is the longest validity SigV4 allows for a presigned URL.
const MaxPresign = 7 * 24 * time.Hour

// Config says where the bucket is and how to reach it.
type Config struct {
	// Endpoint is the base URL of the S3 API ("http://127.0.0.1:7070", "https://s3.eu-west-1.amazonaws.com").
	// Empty means AWS S3 for Region.
	Endpoint string `yaml:"endpoint"`
	// Region is the bucket's region. Default "us-east-1" (what MinIO, versitygw and Garage accept by default).
	Region string `yaml:"region"`
	// Bucket holds the uploads. Required.
	Bucket string `yaml:"bucket"`
	// AccessKey and SecretKey are static credentials. Default: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
	// (and AWS_SESSION_TOKEN) from the environment.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// PathStyle addresses the bucket as endpoint/bucket/key instead of bucket.endpoint/key; MinIO, versitygw and
	// Garage on a bare host name or IP address need it.
	PathStyle bool `yaml:"path_style"`
	// PublicBaseURL, if set, is where objects can be read without a signature (a public bucket or a CDN in
	// front of it): the download URL of key is PublicBaseURL + "/" + key.
	PublicBaseURL string `yaml:"public_base_url"`
	// Prefix is put before every key ("parley/"), so that the uploads can share a bucket with other data or
	// with other servers. Default none.
	Prefix string `yaml:"prefix"`
}

// Validate checks the configuration; key names are relative to the s3 block.
func (c Config) Validate() error {
	var errs []error
	if c.Bucket == "" {
		errs = append(errs, errors.New("s3.bucket: required"))
	}
	for _, u := range []struct{ key, v string }{{"s3.endpoint", c.Endpoint}, {"s3.public_base_url", c.PublicBaseURL}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not an http or https URL", u.key, u.v))
		}
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		errs = append(errs, errors.New("s3.access_key and s3.secret_key: set both or neither"))
	}
	if strings.HasPrefix(c.Prefix, "/") {
		errs = append(errs, fmt.Errorf("s3.prefix: %q must not start with /", c.Prefix))
	}
	return errors.Join(errs...)
}

// Store is a storage.Blobs in one S3 bucket.
type Store struct {
	cfg     Config
	client  *awss3.Client
	presign *awss3.PresignClient
}

// New returns a store for the configured bucket. It does not contact the endpoint; Ping does.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	creds := aws.Credentials{AccessKeyID: cfg.AccessKey, SecretAccessKey: cfg.SecretKey, Source: "parley config"}
	if cfg.AccessKey == "" {
		creds = aws.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken: os.Getenv("AWS_SESSION_TOKEN"), Source: "environment"}
		if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
			return nil, errors.New("s3: no credentials: set s3.access_key and s3.secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
	}
	opts := awss3.Options{
		Region:       cfg.Region,
		Credentials:  aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
		UsePathStyle: cfg.PathStyle,
		// Checksums only where S3 requires them: S3-compatible stores differ in which trailing checksums they
		// accept, and the objects here are written by clients through presigned URLs anyway.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 &http.Client{Timeout: 60 * time.Second},
		RetryMaxAttempts:           3,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(strings.TrimRight(cfg.Endpoint, "/"))
	}
	client := awss3.New(opts)
	return &Store{cfg: cfg, client: client, presign: awss3.NewPresignClient(client)}, nil
}

// Ping checks that the bucket exists and the credentials may use it.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.cfg.Bucket}); err != nil {
		return fmt.Errorf("s3: bucket %s: %w", s.cfg.Bucket, err)
	}
	return nil
}

// PresignPut implements storage.Blobs. The URL signs Content-Length and Content-Type, so the client must send
// exactly these (which every HTTP client does for a body of known length); the other signed header, Host,
// comes from the URL. The returned headers are therefore nil.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, contentType string, ttl time.Duration) (string, map[string]string, error) {
	if size <= 0 {
		return "", nil, errors.New("s3: size must be positive")
	}
	key = s.cfg.Prefix + key
	req, err := s.presign.PresignPutObject(ctx, &awss3.PutObjectInput{
		Bucket:        &s.cfg.Bucket,
		Key:           &key,
		ContentLength: aws.Int64(size),
		ContentType:   aws.String(contentType),
	}, awss3.WithPresignExpires(clampTTL(ttl)))
	if err != nil {
		return "", nil, fmt.Errorf("s3: presign put: %w", err)
	}
	var headers map[string]string
	for k, v := range req.SignedHeader {
		switch strings.ToLower(k) {
		case "host", "content-length", "content-type":
			continue
		}
		if headers == nil {
			headers = make(map[string]string)
		}
		headers[http.CanonicalHeaderKey(k)] = strings.Join(v, ",")
	}
	return req.URL, headers, nil
}

// GetURL implements storage.Blobs: the public URL when PublicBaseURL is set, else a presigned GET valid for
// ttl (at most MaxPresign) that makes the store answer with contentType and a safe Content-Disposition.
func (s *Store) GetURL(ctx context.Context, key, contentType string, ttl time.Duration) (string, error) {
	key = s.cfg.Prefix + key
	if s.cfg.PublicBaseURL != "" {
		return strings.TrimRight(s.cfg.PublicBaseURL, "/") + "/" + escapeKey(key), nil
	}
	in := &awss3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key}
	if contentType != "" {
		in.ResponseContentType = aws.String(contentType)
	}
	name := key[strings.LastIndexByte(key, '/')+1:]
	in.ResponseContentDisposition = aws.String(disposition(contentType, name))
	req, err := s.presign.PresignGetObject(ctx, in, awss3.WithPresignExpires(clampTTL(ttl)))
	if err != nil {
		return "", fmt.Errorf("s3: presign get: %w", err)
	}
	return req.URL, nil
}

// Delete implements storage.Blobs.
func (s *Store) Delete(ctx context.Context, key string) error {
	key = s.cfg.Prefix + key
	_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	var nsk *types.NoSuchKey
	if err != nil && !errors.As(err, &nsk) {
		return fmt.Errorf("s3: delete: %w", err)
	}
	return nil
}

// List implements storage.Blobs with ListObjectsV2, a page of up to 1000 keys per request.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.BlobInfo) error) error {
	in := &awss3.ListObjectsV2Input{Bucket: &s.cfg.Bucket}
	if prefix = s.cfg.Prefix + prefix; prefix != "" {
		in.Prefix = &prefix
	}
	p := awss3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3: list: %w", err)
		}
		for _, o := range page.Contents {
			info := storage.BlobInfo{Key: strings.TrimPrefix(aws.ToString(o.Key), s.cfg.Prefix), Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

func clampTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 || ttl > MaxPresign {
		return MaxPresign
	}
	return ttl
}

// escapeKey escapes each segment of a key for a URL path.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// disposition is inline for images, audio and video a browser shows without running code, attachment for
// everything else (HTML, SVG, PDF, scripts), so that a download link cannot run content in a browser.
func disposition(contentType, filename string) string {
	kind := "attachment"
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil && mt != "image/svg+xml" &&
		(strings.HasPrefix(mt, "image/") || strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/")) {
		kind = "inline"
	}
	if v := mime.FormatMediaType(kind, map[string]string{"filename": filename}); v != "" {
		return v
	}
	return kind
}

var _ storage.Blobs = (*Store)(nil)
