package storage

import (
	"context"
	"time"
)

// BlobInfo describes one stored object.
type BlobInfo struct {
	Key      string    // the object's key ("owner/slot/filename")
	Size     int64     // its length in bytes
	Modified time.Time // when it was stored (S3 LastModified, the file's mtime on disk)
}

// Blobs stores files that clients upload and download over HTTP (XEP-0363), without the bytes passing through
// the XMPP server where the backend allows it: the server hands out URLs, the client talks HTTP to them.
//
// Keys are "/"-separated paths of non-empty segments, none of them "." or "..", with no NUL or other control
// characters; the caller (the upload module) makes them and checks them.
//
// URLs a driver returns may be absolute (an S3 endpoint, a CDN) or references relative to the server's own
// HTTP listener ("/upload/..."), which the caller resolves against its public base URL.
type Blobs interface {
	// PresignPut returns a URL through which a client may PUT exactly size bytes of contentType to key until
	// ttl has passed, and the headers the client must send with it besides Content-Type and Content-Length (nil
	// when none). A PUT with another length or content type is refused.
	PresignPut(ctx context.Context, key string, size int64, contentType string, ttl time.Duration) (url string, headers map[string]string, err error)
	// GetURL returns a URL from which the object at key can be downloaded for at least ttl (a public or CDN
	// URL may live longer), served as contentType.
	GetURL(ctx context.Context, key, contentType string, ttl time.Duration) (string, error)
	// Delete removes the object at key; deleting an absent object is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for each stored object whose key starts with prefix, in no particular order, and stops
	// at the first error fn returns (which List then returns). Objects still being uploaded are not listed.
	List(ctx context.Context, prefix string, fn func(BlobInfo) error) error
}
