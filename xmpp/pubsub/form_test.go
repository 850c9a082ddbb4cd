package pubsub

import (
	"testing"

	"parley.im/parley/storage"
)

func TestInner(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"<a/>", ""},
		{"<a x='/>'/>", ""},
		{"<a>b</a>", "b"},
		{"<a x='>'><b/>c</a>", "<b/>c"},
		{"<a></a>", ""},
	} {
		if got := string(inner([]byte(c.in))); got != c.want {
			t.Errorf("inner(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStorageError(t *testing.T) {
	for _, c := range []struct {
		err       error
		cond, app string
	}{
		{storage.ErrNotFound, "item-not-found", ""},
		{storage.ErrConflict, "conflict", ""},
		{&storage.LimitError{Limit: storage.LimitItemSize, Max: 10}, "not-acceptable", "payload-too-big"},
		{&storage.LimitError{Limit: storage.LimitNodes, Max: 10}, "not-allowed", "max-nodes-exceeded"},
		{&storage.LimitError{Limit: storage.LimitItems, Max: 10}, "not-allowed", "max-items-exceeded"},
		{storage.ErrLimit, "internal-server-error", ""}, // a bare ErrLimit names no limit: a driver bug
	} {
		cond, app := condition(t, StorageError(c.err))
		if cond != c.cond || app != c.app {
			t.Errorf("StorageError(%v) = %s/%s, want %s/%s", c.err, cond, app, c.cond, c.app)
		}
	}
	if StorageError(nil) != nil {
		t.Errorf("StorageError(nil) != nil")
	}
}
