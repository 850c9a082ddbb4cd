package httpupload

import (
	"context"
	"mime"
	"net/http"
	"strings"
	"time"
)

// redirectTTL is how long the presigned S3 URL a download redirect points to stays valid.
const redirectTTL = time.Hour

// handler serves Prefix: PUT and GET of the local backend, and for the s3 backend GET as a redirect to a fresh
// presigned URL (a presigned URL lives at most seven days, a file 30 days).
type handler struct {
	sign  *signer
	disk  *disk // nil with the s3 backend
	m     *Module
	redir func(ctx context.Context, key, contentType string) (string, error)
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Uploaded content is never trusted: no sniffing, no scripts, no framing, no referrer to other sites. CORS
	// lets web clients (Converse.js, xmpp.js) upload and download; the URLs themselves are the credential.
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodOptions:
		hd.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
		hd.Set("Access-Control-Allow-Headers", "Content-Type")
		hd.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet, http.MethodHead, http.MethodPut:
	default:
		hd.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	seg, filename, err := splitPath(r.URL.EscapedPath())
	if err != nil {
		httpError(w, http.StatusBadRequest, "bad path")
		return
	}
	t, err := h.sign.decode(seg, filename)
	if err != nil {
		httpError(w, http.StatusForbidden, "invalid signature")
		return
	}
	if t.Put != (r.Method == http.MethodPut) {
		httpError(w, http.StatusForbidden, "this URL does not grant "+r.Method)
		return
	}
	switch {
	case h.disk != nil && t.Put:
		h.disk.servePut(w, r, t, filename)
	case h.disk != nil:
		h.disk.serveGet(w, r, t, filename)
	case t.Put:
		// With s3, clients PUT to the store directly; a PUT token here was not made by this server's config.
		httpError(w, http.StatusNotFound, "not found")
	default:
		u, err := h.redir(r.Context(), t.Key(filename), t.ContentType)
		if err != nil {
			h.m.log.Error("presigning a download failed", "err", err)
			httpError(w, http.StatusBadGateway, "storage unavailable")
			return
		}
		hd.Set("Cache-Control", "private, max-age=1800")
		http.Redirect(w, r, u, http.StatusFound)
	}
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Del("Content-Disposition")
	http.Error(w, msg, code)
}

// disposition is inline for images, audio and video that a browser shows without running code, attachment for
// everything else (HTML, SVG, PDF, scripts), so that a download link cannot run content in a browser.
func disposition(contentType, filename string) string {
	kind := "attachment"
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && mt != "image/svg+xml" &&
		(strings.HasPrefix(mt, "image/") || strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/")) {
		kind = "inline"
	}
	if v := mime.FormatMediaType(kind, map[string]string{"filename": filename}); v != "" {
		return v
	}
	return kind
}

var _ http.Handler = (*handler)(nil)
