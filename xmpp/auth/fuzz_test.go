package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"parley.im/parley/storage"
)

var conditions = []string{
	CondAborted, CondEncryptionRequired, CondIncorrectEncoding, CondInvalidAuthzid, CondInvalidMechanism,
	CondMalformedRequest, CondNotAuthorized, CondTemporaryAuthFailure,
}

// FuzzScramServer feeds arbitrary client-first and client-final messages to every SCRAM mechanism. The
// server nonce is fixed so that the seeds include complete, valid exchanges for the fuzzer to mutate.
func FuzzScramServer(f *testing.F) {
	srv := newTestServer(f, nil)
	srv.nonce = func() string { return "SERVERNONCE" }
	cb := &ChannelBindings{TLSExporter: bytes.Repeat([]byte{1}, 32), TLSServerEndPoint: bytes.Repeat([]byte{2}, 32)}
	mechs := srv.Mechanisms(cb, true)
	mechs = slices.DeleteFunc(mechs, func(m string) bool { return m == MechPlain })

	for i, m := range mechs {
		name, plus := strings.CutSuffix(m, plusSuffix)
		h, _ := hashByMechanism(name)
		flag := "n"
		if plus {
			flag = "p=" + CBTLSExporter
		}
		c := &scramClient{h: h, user: "user", pass: testPassword, flag: flag, cbData: cb.TLSExporter, cnonce: "fuzz"}
		first := c.first()
		ex, _ := srv.Start(context.Background(), m, cb, true, first)
		sf, _, err := ex.Step(context.Background(), first)
		if err != nil {
			f.Fatal(err)
		}
		final, _ := c.final(sf)
		f.Add(uint8(i), first, final)
	}
	f.Add(uint8(0), []byte("y,a=user,n=us=2Cer,r=abc,x=1"), []byte("c=eSxhPXVzZXIs,r=abcSERVERNONCE,p=AAAA"))
	f.Add(uint8(4), []byte("n,,n=user,r=a"), []byte("c=biws,r=aSERVERNONCE,m=1,p="+base64.StdEncoding.EncodeToString(make([]byte, 32))))

	f.Fuzz(func(t *testing.T, mi uint8, first, final []byte) {
		ctx := context.Background()
		mech := mechs[int(mi)%len(mechs)]
		if first == nil {
			first = []byte{} // nil would mean "no initial response", tested elsewhere
		}
		ex, err := srv.Start(ctx, mech, cb, true, first)
		if err != nil {
			if !slices.Contains(conditions, Condition(err)) {
				t.Fatalf("Start: unknown condition for %v", err)
			}
			return
		}
		for i, msg := range [][]byte{first, final, final} {
			out, done, err := ex.Step(ctx, msg)
			switch {
			case err != nil:
				if !slices.Contains(conditions, Condition(err)) {
					t.Fatalf("step %d: unknown condition for %v", i, err)
				}
				if ex.Username() != "" {
					t.Fatal("failed exchange has a user")
				}
				return
			case done:
				if i != 1 || ex.Username() != "user" || !bytes.HasPrefix(out, []byte("v=")) {
					t.Fatalf("step %d: done with user %q, out %q", i, ex.Username(), out)
				}
				return
			case i == 1:
				t.Fatal("client-final neither failed nor finished")
			}
		}
	})
}

// FuzzPlain feeds arbitrary PLAIN messages. Credentials use few iterations so the fuzzer is not measuring
// PBKDF2.
func FuzzPlain(f *testing.F) {
	cred, err := deriveWithSalt(SHA256, testPassword, []byte("0123456789abcdef"), 2)
	if err != nil {
		f.Fatal(err)
	}
	srv := NewServer(Config{
		Lookup:            mapLookup(map[string][]storage.ScramCredential{"user": {cred}}),
		AllowPlain:        true,
		DefaultIterations: 2,
		Domain:            "example.net",
	})
	for _, s := range []string{
		"\x00user\x00pencil", "user@example.net\x00user\x00pencil", "\x00nobody\x00pencil", "\x00USER\x00pencil",
		"\x00user\x00wrong", "a\x00b", "\x00\x00", "\x00broken\x00x", "\x00us\xffer\x00pencil",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		ctx := context.Background()
		ex, err := srv.Start(ctx, MechPlain, nil, true, msg)
		if err != nil {
			if Condition(err) != CondMalformedRequest {
				t.Fatalf("Start: %v", err)
			}
			return
		}
		out, done, err := ex.Step(ctx, msg)
		if err != nil {
			if !slices.Contains(conditions, Condition(err)) || done || ex.Username() != "" {
				t.Fatalf("%v, done %v, user %q", err, done, ex.Username())
			}
			return
		}
		if msg == nil {
			if done || len(out) != 0 {
				t.Fatal("absent initial response must give an empty challenge")
			}
			return
		}
		if !done || out != nil || ex.Username() != "user" {
			t.Fatalf("success with done %v, out %q, user %q", done, out, ex.Username())
		}
		if !bytes.HasSuffix(msg, []byte("\x00"+testPassword)) {
			t.Fatalf("accepted %q", msg)
		}
	})
}
