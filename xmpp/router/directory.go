package router

import (
	"hash/maphash"
	"sync"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
)

// Directory is where the router asks which resources of an account exist and where they live: sessions bound
// on this node, and descriptions (module.Resource) of sessions on other nodes. The Local directory knows only
// this node; a cluster directory (one shared through Redis, say) wraps it and adds the other nodes' resources
// under their node ids.
type Directory interface {
	// Lookup returns the resources of a local account (bare JID). The router calls it for every message and
	// presence it delivers: it must not allocate, and the slices it returns are never modified.
	Lookup(bare jid.JID) module.Resources
	// Bind adds a session bound on this node. If a session with the same full JID exists it is replaced and
	// returned, so that the caller can close it (resource conflict policy "kick old").
	Bind(s module.Session) (replaced module.Session)
	// Unbind removes a session of this node and reports whether it was there (false if it was replaced).
	Unbind(s module.Session) bool
	// Update tells the directory that the description of a session of this node changed (availability,
	// priority, carbons, caps, CSI): a cluster directory republishes s.Describe(). The local one has nothing
	// to do, since it holds the session itself.
	Update(s module.Session)
}

const shards = 64

// Local is the Directory of one node: the sessions bound here, in a sharded table. It never has remote
// resources, and its entries live as long as their sessions (no expiry).
type Local struct {
	seed   maphash.Seed
	shards [shards]shard
}

// shard holds the sessions of the accounts whose bare JID hashes to it. The slices are copy-on-write: readers
// take the slice under RLock and use it after unlocking; writers replace it.
type shard struct {
	mu       sync.RWMutex
	accounts map[string][]module.Session
}

// NewLocal returns an empty local directory.
func NewLocal() *Local {
	d := &Local{seed: maphash.MakeSeed()}
	for i := range d.shards {
		d.shards[i].accounts = make(map[string][]module.Session)
	}
	return d
}

func (d *Local) shard(bare string) *shard {
	return &d.shards[maphash.String(d.seed, bare)%shards]
}

// Bind implements Directory.
func (d *Local) Bind(s module.Session) (replaced module.Session) {
	full := s.JID()
	bare := full.Bare().String()
	sh := d.shard(bare)
	sh.mu.Lock()
	old := sh.accounts[bare]
	next := make([]module.Session, 0, len(old)+1)
	for _, o := range old {
		if o.JID().Equal(full) {
			replaced = o
			continue
		}
		next = append(next, o)
	}
	next = append(next, s)
	sh.accounts[bare] = next
	sh.mu.Unlock()
	return replaced
}

// Unbind implements Directory.
func (d *Local) Unbind(s module.Session) bool {
	bare := s.JID().Bare().String()
	sh := d.shard(bare)
	sh.mu.Lock()
	old := sh.accounts[bare]
	found := false
	next := make([]module.Session, 0, len(old))
	for _, o := range old {
		if o == s {
			found = true
			continue
		}
		next = append(next, o)
	}
	if len(next) == 0 {
		delete(sh.accounts, bare)
	} else {
		sh.accounts[bare] = next
	}
	sh.mu.Unlock()
	return found
}

// Update implements Directory: the table holds the sessions themselves, whose descriptions are always current.
func (d *Local) Update(module.Session) {}

// Lookup implements Directory: the bound sessions of an account, in bind order.
func (d *Local) Lookup(bare jid.JID) module.Resources {
	return module.Resources{Local: d.Sessions(bare)}
}

// Sessions returns the bound sessions of an account. The slice must not be modified.
func (d *Local) Sessions(bare jid.JID) []module.Session {
	// The key is built in a stack buffer and looked up as bytes: bare.String() allocates for JIDs longer than 32
	// bytes, on every message.
	var buf [128]byte
	key := appendKey(buf[:0], bare)
	sh := &d.shards[maphash.Bytes(d.seed, key)%shards]
	sh.mu.RLock()
	ss := sh.accounts[string(key)]
	sh.mu.RUnlock()
	return ss
}

// appendKey appends j as jid.JID.String spells it, the session table's key.
func appendKey(b []byte, j jid.JID) []byte {
	if l := j.Localpart(); l != "" {
		b = append(append(b, l...), '@')
	}
	b = append(b, j.Domainpart()...)
	if res := j.Resourcepart(); res != "" {
		b = append(append(b, '/'), res...)
	}
	return b
}

var _ Directory = (*Local)(nil)
