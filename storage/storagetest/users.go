package storagetest

import (
	"bytes"
	"fmt"
	"testing"

	"parley.im/parley/storage"
)

// creds returns a credential set whose byte fields hold every awkward value a driver could mangle: zero bytes,
// 0xff, invalid UTF-8 and an empty salt for the last one.
func creds(seed byte) []storage.ScramCredential {
	return []storage.ScramCredential{
		{
			Mechanism:  "SCRAM-SHA-256",
			Salt:       []byte{0x00, seed, 0xff, 0xfe, 0x00},
			Iterations: 4096,
			StoredKey:  bytes.Repeat([]byte{seed, 0x00, 0x80}, 11),
			ServerKey:  []byte{0xc3, 0x28, seed, 0x00},
		},
		{
			Mechanism:  "SCRAM-SHA-1",
			Salt:       []byte("salt\x00" + string(rune(seed))),
			Iterations: 10000 + int(seed),
			StoredKey:  []byte{seed},
			ServerKey:  bytes.Repeat([]byte{0xff}, 20),
		},
		{
			Mechanism:  "SCRAM-SHA-512",
			Salt:       []byte{},
			Iterations: 1 << 20,
			StoredKey:  bytes.Repeat([]byte{seed ^ 0x5a}, 64),
			ServerKey:  bytes.Repeat([]byte{seed ^ 0xa5}, 64),
		},
	}
}

// sameCreds fails the test unless got holds exactly want, in order.
func sameCreds(t *testing.T, what string, got, want []storage.ScramCredential) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d credentials, want %d", what, len(got), len(want))
		return
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Mechanism != w.Mechanism || g.Iterations != w.Iterations || !bytes.Equal(g.Salt, w.Salt) ||
			!bytes.Equal(g.StoredKey, w.StoredKey) || !bytes.Equal(g.ServerKey, w.ServerKey) {
			t.Errorf("%s: credential %d = %+v, want %+v", what, i, g, w)
		}
	}
}

func testUsers(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("CredentialsRoundTrip", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		must(t, "CreateUser", s.CreateUser(ctx, "alice@localhost", creds(1)))
		must(t, "CreateUser", s.CreateUser(ctx, "bob@localhost", creds(2)))
		got, err := s.Credentials(ctx, "alice@localhost")
		must(t, "Credentials", err)
		sameCreds(t, "alice", got, creds(1))
		got, err = s.Credentials(ctx, "bob@localhost")
		must(t, "Credentials", err)
		sameCreds(t, "bob", got, creds(2))
	})

	t.Run("NoCredentials", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		must(t, "CreateUser", s.CreateUser(ctx, "alice@localhost", nil))
		got, err := s.Credentials(ctx, "alice@localhost")
		must(t, "Credentials of an account without credentials", err)
		if len(got) != 0 {
			t.Errorf("Credentials = %+v, want none", got)
		}
	})

	t.Run("CreateConflict", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		must(t, "CreateUser", s.CreateUser(ctx, "alice@localhost", creds(1)))
		wantErr(t, "second CreateUser", s.CreateUser(ctx, "alice@localhost", creds(9)), storage.ErrConflict)
		got, err := s.Credentials(ctx, "alice@localhost")
		must(t, "Credentials", err)
		sameCreds(t, "after a conflicting CreateUser", got, creds(1))
		// Names are compared bytewise: another spelling is another account.
		must(t, "CreateUser of a name that differs in case", s.CreateUser(ctx, "Alice@localhost", creds(3)))
	})

	t.Run("NotFound", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		must(t, "CreateUser", s.CreateUser(ctx, "alice@localhost", creds(1)))
		_, err := s.Credentials(ctx, "nobody@localhost")
		wantErr(t, "Credentials", err, storage.ErrNotFound)
		wantErr(t, "SetCredentials", s.SetCredentials(ctx, "nobody@localhost", creds(2)), storage.ErrNotFound)
		wantErr(t, "DeleteUser", s.DeleteUser(ctx, "nobody@localhost"), storage.ErrNotFound)
		// SetCredentials on a missing account must not create it.
		_, err = s.Credentials(ctx, "nobody@localhost")
		wantErr(t, "Credentials after SetCredentials on a missing account", err, storage.ErrNotFound)
		names, err := s.ListUsers(ctx, "", 0)
		must(t, "ListUsers", err)
		sameStrings(t, "ListUsers", names, []string{"alice@localhost"})
	})

	t.Run("SetCredentials", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		must(t, "CreateUser", s.CreateUser(ctx, "alice@localhost", creds(1)))
		must(t, "CreateUser", s.CreateUser(ctx, "bob@localhost", creds(2)))
		repl := creds(7)[1:2]
		must(t, "SetCredentials", s.SetCredentials(ctx, "alice@localhost", repl))
		got, err := s.Credentials(ctx, "alice@localhost")
		must(t, "Credentials", err)
		sameCreds(t, "after SetCredentials", got, repl)
		got, err = s.Credentials(ctx, "bob@localhost")
		must(t, "Credentials", err)
		sameCreds(t, "other account after SetCredentials", got, creds(2))
		must(t, "SetCredentials to none", s.SetCredentials(ctx, "alice@localhost", nil))
		got, err = s.Credentials(ctx, "alice@localhost")
		must(t, "Credentials", err)
		if len(got) != 0 {
			t.Errorf("Credentials after SetCredentials(nil) = %+v, want none", got)
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		must(t, "CreateUser", s.CreateUser(ctx, "alice@localhost", creds(1)))
		must(t, "CreateUser", s.CreateUser(ctx, "bob@localhost", creds(2)))
		must(t, "DeleteUser", s.DeleteUser(ctx, "alice@localhost"))
		_, err := s.Credentials(ctx, "alice@localhost")
		wantErr(t, "Credentials after DeleteUser", err, storage.ErrNotFound)
		wantErr(t, "second DeleteUser", s.DeleteUser(ctx, "alice@localhost"), storage.ErrNotFound)
		got, err := s.Credentials(ctx, "bob@localhost")
		must(t, "Credentials", err)
		sameCreds(t, "other account", got, creds(2))
		// The name is free again, and the new account starts without the old credentials.
		must(t, "CreateUser after DeleteUser", s.CreateUser(ctx, "alice@localhost", creds(5)[:1]))
		got, err = s.Credentials(ctx, "alice@localhost")
		must(t, "Credentials", err)
		sameCreds(t, "re-created account", got, creds(5)[:1])
	})

	t.Run("ListUsers", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		names, err := s.ListUsers(ctx, "", 10)
		must(t, "ListUsers on an empty store", err)
		sameStrings(t, "ListUsers on an empty store", names, nil)

		// Bytewise order: 'Z' < '-' < '.' < '@' < 'b'; a collation that ignores case or skips punctuation orders
		// these differently.
		want := []string{"Zed@x", "a-b@x", "a.b@x", "a@x", "ab@x", "b@x", "zz@x", "\u00e9@x"}
		for _, i := range []int{4, 0, 7, 6, 2, 5, 1, 3} {
			must(t, "CreateUser", s.CreateUser(ctx, want[i], nil))
		}
		all, err := s.ListUsers(ctx, "", 0)
		must(t, "ListUsers", err)
		sameStrings(t, "ListUsers with limit 0", all, want)
		all, err = s.ListUsers(ctx, "", 100)
		must(t, "ListUsers", err)
		sameStrings(t, "ListUsers with a large limit", all, want)

		var paged []string
		after := ""
		for page := 0; ; page++ {
			if page > len(want) {
				t.Fatalf("ListUsers paging does not end: %q", paged)
			}
			names, err := s.ListUsers(ctx, after, 3)
			must(t, "ListUsers", err)
			if len(names) > 3 {
				t.Fatalf("ListUsers(%q, 3) returned %d names", after, len(names))
			}
			if len(names) == 0 {
				break
			}
			paged = append(paged, names...)
			after = names[len(names)-1]
		}
		sameStrings(t, "ListUsers pages of 3", paged, want)

		names, err = s.ListUsers(ctx, "a@x", 2)
		must(t, "ListUsers", err)
		sameStrings(t, fmt.Sprintf("ListUsers(%q, 2)", "a@x"), names, []string{"ab@x", "b@x"})
		// after need not be an existing name.
		names, err = s.ListUsers(ctx, "b", 0)
		must(t, "ListUsers", err)
		sameStrings(t, `ListUsers("b", 0)`, names, want[5:])
		names, err = s.ListUsers(ctx, want[len(want)-1], 5)
		must(t, "ListUsers", err)
		sameStrings(t, "ListUsers after the last name", names, nil)
	})
}
