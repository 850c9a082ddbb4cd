package httpupload

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/stanza"
)

// BenchmarkSlot measures a slot request on the local backend: parse, checks, quota listing, signing.
func BenchmarkSlot(b *testing.B) {
	e := newEnv(b, Config{SlotsPerMinute: -1, QuotaPerUser: -1})
	inner := request("photo.jpg", 123456, "image/jpeg")
	// A request walks its account's unexpired reservations, so one account asking b.N times would make the
	// figure grow with b.N. A new account every 100 requests stays under what the default limits allow one
	// account to hold (slots_per_minute 30 for put_ttl 5m: 150).
	var from jid.JID
	i := 0
	for b.Loop() {
		if i%100 == 0 {
			from = jid.MustParse(fmt.Sprintf("user%d@example.net/phone", i/100))
		}
		i++
		if r := e.iq(b, from, inner); r.Type != "result" {
			b.Fatalf("%s", r.Raw)
		}
	}
}

// BenchmarkUploadLocal measures PUT and GET through the local backend's handler over loopback HTTP and TLS
// (httptest servers): what Parley itself costs per uploaded and downloaded byte, fsync included. The sizes are
// a photo and a short video (the 50 MiB of the conformance run).
func BenchmarkUploadLocal(b *testing.B) {
	for _, tls := range []bool{false, true} {
		for _, size := range []int{1 << 20, 50 << 20} {
			name := fmt.Sprintf("%dMiB", size>>20)
			if tls {
				name += "-tls"
			}
			b.Run("put-"+name, func(b *testing.B) { benchLocal(b, size, tls, false) })
			b.Run("get-"+name, func(b *testing.B) { benchLocal(b, size, tls, true) })
		}
	}
}

func benchLocal(b *testing.B, size int, useTLS, download bool) {
	e := newEnv(b, Config{SlotsPerMinute: -1, QuotaPerUser: -1, MaxFileSize: 64 << 20})
	client := http.DefaultClient
	if useTLS {
		srv := httptest.NewTLSServer(e.m.Handler())
		b.Cleanup(srv.Close)
		e.m.base.Host = srv.Listener.Addr().String()
		e.m.base.Scheme = "https"
		client = srv.Client()
	}
	body := make([]byte, size)
	rand.Read(body)
	owner := jid.MustParse("bench@example.net/x")
	slot := func() slotXML {
		r := e.iq(b, owner, request("f.bin", int64(size), ""))
		if r.Type != "result" {
			b.Fatalf("%s", r.Raw)
		}
		var s slotXML
		_, _, raw, _ := stanza.FirstChild(r.Payload())
		if err := xml.Unmarshal(raw, &s); err != nil {
			b.Fatal(err)
		}
		return s
	}
	doPut := func(s slotXML) {
		req, _ := http.NewRequest(http.MethodPut, s.Put.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("PUT: %s", resp.Status)
		}
	}
	b.SetBytes(int64(size))
	if download {
		s := slot()
		doPut(s)
		for b.Loop() {
			resp, err := client.Get(s.Get.URL)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != int64(size) {
				b.Fatalf("GET: %d bytes", n)
			}
		}
		return
	}
	for b.Loop() {
		b.StopTimer()
		s := slot()
		b.StartTimer()
		doPut(s)
	}
}
