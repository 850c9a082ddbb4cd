package httpupload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"parley.im/parley/storage"
)

// tmpDir is where bodies are written before they are linked into place; owner ids never start with a dot.
const tmpDir = ".tmp"

// disk is the local backend: files under one directory, key "owner/slot/filename" at root/owner/slot/filename,
// uploaded and downloaded through Parley's own HTTP handler with signed URLs. It keeps no other state: what a
// PUT may write and how a GET is served is in the signed token, and a file's size and age are its own.
type disk struct {
	root      string
	sign      *signer
	retention time.Duration
	now       func() time.Time

	uploads     atomic.Uint64
	uploadBytes atomic.Uint64
	downloads   atomic.Uint64
}

func newDisk(root string, sign *signer, retention time.Duration) (*disk, error) {
	if err := os.MkdirAll(filepath.Join(root, tmpDir), 0o700); err != nil {
		return nil, fmt.Errorf("httpupload: %w", err)
	}
	return &disk{root: root, sign: sign, retention: retention, now: time.Now}, nil
}

// path maps a key to its file. Keys are checked again here: a bad key must never reach the file system.
func (d *disk) path(key string) (string, error) {
	if !validKey(key) {
		return "", fmt.Errorf("httpupload: invalid key %q", key)
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

func splitKey(key string) (dir, filename string) {
	i := strings.LastIndexByte(key, '/')
	return key[:max(i, 0)], key[i+1:]
}

// PresignPut implements storage.Blobs with a URL relative to the HTTP listener.
func (d *disk) PresignPut(_ context.Context, key string, size int64, contentType string, ttl time.Duration) (string, map[string]string, error) {
	dir, name := splitKey(key)
	if !validKey(key) || dir == "" || size <= 0 || validContentType(contentType) != nil {
		return "", nil, fmt.Errorf("httpupload: cannot presign %q", key)
	}
	t := token{Put: true, Dir: dir, Size: size, ContentType: contentType, Expires: d.now().Add(ttl)}
	return uploadPath(d.sign.encode(t, name), name), nil, nil
}

// GetURL implements storage.Blobs with a URL relative to the HTTP listener; it stays valid as long as the file.
func (d *disk) GetURL(_ context.Context, key, contentType string, _ time.Duration) (string, error) {
	dir, name := splitKey(key)
	if !validKey(key) || dir == "" || validContentType(contentType) != nil {
		return "", fmt.Errorf("httpupload: cannot sign %q", key)
	}
	return uploadPath(d.sign.encode(token{Dir: dir, ContentType: contentType}, name), name), nil
}

// Delete implements storage.Blobs, and removes the slot and owner directories once empty.
func (d *disk) Delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("httpupload: %w", err)
	}
	// Failing to remove a directory that is not empty is expected.
	slotDir := filepath.Dir(p)
	if os.Remove(slotDir) == nil {
		os.Remove(filepath.Dir(slotDir))
	}
	return nil
}

// List implements storage.Blobs by walking the directory under the prefix's directory part.
func (d *disk) List(ctx context.Context, prefix string, fn func(storage.BlobInfo) error) error {
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		p, err := d.path(prefix[:i])
		if err != nil {
			return err
		}
		start = p
	}
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // an empty directory removed meanwhile, or no upload yet under the prefix
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, _ := filepath.Rel(d.root, p)
		key := filepath.ToSlash(rel)
		if e.IsDir() {
			if key == tmpDir {
				return fs.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(storage.BlobInfo{Key: key, Size: info.Size(), Modified: info.ModTime()})
	})
	if err != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("httpupload: list: %w", err)
	}
	return err
}

// cleanTemp removes bodies of uploads that never completed (a crash, a client that stalled) older than age.
func (d *disk) cleanTemp(age time.Duration) {
	entries, err := os.ReadDir(filepath.Join(d.root, tmpDir))
	if err != nil {
		return
	}
	cutoff := d.now().Add(-age)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(d.root, tmpDir, e.Name()))
		}
	}
}

// servePut stores the body of a PUT for the slot t grants: exactly t.Size bytes of t.ContentType, once. The
// body goes to a temporary file first and is linked into place only when complete and synced, so a reader
// never sees a partial file, and a second PUT of the slot (even a concurrent one) fails with 409.
func (d *disk) servePut(w http.ResponseWriter, r *http.Request, t token, filename string) {
	if d.now().After(t.Expires) {
		httpError(w, http.StatusForbidden, "upload URL expired")
		return
	}
	final, err := d.path(t.Key(filename))
	if err != nil {
		httpError(w, http.StatusBadRequest, "bad path")
		return
	}
	if _, err := os.Lstat(final); err == nil {
		httpError(w, http.StatusConflict, "this slot has been used")
		return
	}
	if !sameContentType(r.Header.Get("Content-Type"), t.ContentType) {
		httpError(w, http.StatusBadRequest, "Content-Type does not match the slot")
		return
	}
	switch {
	case r.ContentLength < 0:
		httpError(w, http.StatusLengthRequired, "Content-Length required")
		return
	case r.ContentLength > t.Size:
		httpError(w, http.StatusRequestEntityTooLarge, "body larger than the slot")
		return
	case r.ContentLength < t.Size:
		httpError(w, http.StatusBadRequest, "body smaller than the slot")
		return
	}
	f, err := os.CreateTemp(filepath.Join(d.root, tmpDir), "put-*")
	if err != nil {
		httpError(w, http.StatusInternalServerError, "cannot store the file")
		return
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the link, or after a failure
	n, err := io.Copy(f, io.LimitReader(r.Body, t.Size+1))
	if err != nil || n != t.Size {
		f.Close()
		httpError(w, http.StatusBadRequest, "body does not have the slot's length")
		return
	}
	if err := f.Sync(); err != nil {
		f.Close()
		httpError(w, http.StatusInternalServerError, "cannot store the file")
		return
	}
	if err := f.Close(); err != nil {
		httpError(w, http.StatusInternalServerError, "cannot store the file")
		return
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		httpError(w, http.StatusInternalServerError, "cannot store the file")
		return
	}
	// link, unlike rename, fails if the target exists: of two PUTs racing for one slot exactly one wins.
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			httpError(w, http.StatusConflict, "this slot has been used")
			return
		}
		httpError(w, http.StatusInternalServerError, "cannot store the file")
		return
	}
	syncDir(filepath.Dir(final))
	d.uploads.Add(1)
	d.uploadBytes.Add(uint64(t.Size))
	w.WriteHeader(http.StatusCreated)
}

// serveGet serves a stored file with the slot's content type, as an attachment unless it is media a browser
// displays without running code.
func (d *disk) serveGet(w http.ResponseWriter, r *http.Request, t token, filename string) {
	p, err := d.path(t.Key(filename))
	if err != nil {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	f, err := os.Open(p)
	if err != nil {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() || (d.retention > 0 && info.ModTime().Add(d.retention).Before(d.now())) {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	h := w.Header()
	h.Set("Content-Type", t.ContentType)
	h.Set("Content-Disposition", disposition(t.ContentType, filename))
	h.Set("Cache-Control", "private, max-age=86400")
	if r.Method == http.MethodGet {
		d.downloads.Add(1)
	}
	// ServeContent sets Content-Length and answers Range and conditional requests.
	http.ServeContent(w, r, "", info.ModTime(), f)
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

var _ storage.Blobs = (*disk)(nil)
