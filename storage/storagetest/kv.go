package storagetest

import (
	"bytes"
	"testing"

	"parley.im/parley/storage"
)

func testKV(t *testing.T, open func(t *testing.T) storage.Store) {
	const alice, bob = "alice@localhost", "bob@localhost"

	t.Run("RoundTrip", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		_, err := s.Value(ctx, alice, "vcard")
		wantErr(t, "Value of an absent key", err, storage.ErrNotFound)

		vcard := []byte("<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>\x00\xff\xfe")
		must(t, "PutValue", s.PutValue(ctx, alice, "vcard", vcard))
		must(t, "PutValue", s.PutValue(ctx, bob, "vcard", []byte("bob's")))
		got, err := s.Value(ctx, alice, "vcard")
		must(t, "Value", err)
		if !bytes.Equal(got, vcard) {
			t.Errorf("Value = %q, want %q", got, vcard)
		}

		must(t, "PutValue replacing", s.PutValue(ctx, alice, "vcard", []byte("v2")))
		got, err = s.Value(ctx, alice, "vcard")
		must(t, "Value", err)
		if string(got) != "v2" {
			t.Errorf("Value after replace = %q, want %q", got, "v2")
		}

		// An empty value is a value, not an absent key.
		must(t, "PutValue empty", s.PutValue(ctx, alice, "empty", []byte{}))
		got, err = s.Value(ctx, alice, "empty")
		must(t, "Value of an empty value", err)
		if len(got) != 0 {
			t.Errorf("Value of an empty value = %q", got)
		}
		must(t, "PutValue nil", s.PutValue(ctx, alice, "nil", nil))
		got, err = s.Value(ctx, alice, "nil")
		must(t, "Value of a nil value", err)
		if len(got) != 0 {
			t.Errorf("Value of a nil value = %q", got)
		}

		must(t, "DeleteValue", s.DeleteValue(ctx, alice, "vcard"))
		_, err = s.Value(ctx, alice, "vcard")
		wantErr(t, "Value after DeleteValue", err, storage.ErrNotFound)
		must(t, "DeleteValue of an absent key", s.DeleteValue(ctx, alice, "vcard"))
		must(t, "DeleteValue of an absent owner", s.DeleteValue(ctx, "nobody@localhost", "vcard"))

		got, err = s.Value(ctx, bob, "vcard")
		must(t, "Value of another owner", err)
		if string(got) != "bob's" {
			t.Errorf("other owner's value = %q, want %q", got, "bob's")
		}
	})

	t.Run("Keys", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		keys, err := s.Keys(ctx, alice, "")
		must(t, "Keys of an empty owner", err)
		sameStrings(t, "Keys of an empty owner", keys, nil)

		// Bytewise order ("B" before "a"); '%' and '_' would be wildcards to a careless LIKE, '\\' its escape.
		all := []string{"A", "B", "a%b", "a\\b", "a_b", "axb", "pe", "pep-x", "pep/", "pep/A", "pep/a", "pep/b",
			"pep/b/c", "private/x", "\u00fc"}
		for _, i := range []int{5, 10, 0, 3, 14, 12, 7, 1, 9, 13, 2, 4, 11, 8, 6} {
			must(t, "PutValue", s.PutValue(ctx, alice, all[i], []byte(all[i])))
		}
		must(t, "PutValue", s.PutValue(ctx, bob, "pep/bob", nil))

		for _, c := range []struct {
			prefix string
			want   []string
		}{
			{"", all},
			{"pep/", []string{"pep/", "pep/A", "pep/a", "pep/b", "pep/b/c"}},
			{"pep", []string{"pep-x", "pep/", "pep/A", "pep/a", "pep/b", "pep/b/c"}},
			{"pep/b", []string{"pep/b", "pep/b/c"}},
			{"pep/b/c", []string{"pep/b/c"}},
			{"pep/b/c/", nil},
			{"a%", []string{"a%b"}},
			{"a_", []string{"a_b"}},
			{"a\\", []string{"a\\b"}},
			{"a", []string{"a%b", "a\\b", "a_b", "axb"}},
			{"P", nil},
			{"\u00fc", []string{"\u00fc"}},
			{"zzz", nil},
		} {
			keys, err := s.Keys(ctx, alice, c.prefix)
			must(t, "Keys", err)
			sameStrings(t, "Keys(alice, "+`"`+c.prefix+`")`, keys, c.want)
		}
		keys, err = s.Keys(ctx, bob, "")
		must(t, "Keys", err)
		sameStrings(t, "Keys of another owner", keys, []string{"pep/bob"})

		must(t, "DeleteValue", s.DeleteValue(ctx, alice, "pep/a"))
		keys, err = s.Keys(ctx, alice, "pep/")
		must(t, "Keys", err)
		sameStrings(t, "Keys after DeleteValue", keys, []string{"pep/", "pep/A", "pep/b", "pep/b/c"})
	})
}
