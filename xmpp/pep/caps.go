package pep

import (
	"cmp"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/pubsub"
	"parley.im/parley/xmpp/stanza"
)

// Namespaces of XEP-0115 and XEP-0030.
const (
	nsCaps      = "http://jabber.org/protocol/caps"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
)

// Bounds of the capabilities cache: verification strings are per client version, so a few thousand cover a
// large server; a query not answered within capsTimeout may be asked again.
const (
	maxCapsKnown   = 10000
	maxCapsPending = 1000
	maxWaiters     = 64
	capsTimeout    = time.Minute
)

// caps is a XEP-0115 <c/> announcement.
type caps struct {
	node, ver, hash string
}

// capsOf returns the capabilities announced in presence p, if any.
func capsOf(p *stanza.Stanza) caps {
	var c caps
	stanza.Children(p.Payload(), func(local, ns string, raw []byte) bool {
		if local == "c" && ns == nsCaps {
			c = caps{node: stanza.ChildAttr(raw, "node"), ver: stanza.ChildAttr(raw, "ver"),
				hash: stanza.ChildAttr(raw, "hash")}
			return false
		}
		return true
	})
	return c
}

// newHash returns the hash function of a XEP-0115 hash name (the IANA names), or nil for one not supported.
// The legacy format without hash attribute names no features and is not supported.
func newHash(name string) func() hash.Hash {
	switch name {
	case "sha-1":
		return sha1.New
	case "sha-256":
		return sha256.New
	}
	return nil
}

// waiter is a resource waiting for the features behind its verification string, to get its last items.
type waiter struct {
	owner, full jid.JID
}

// capsQuery is a disco#info request in flight.
type capsQuery struct {
	id      string
	c       caps
	from    jid.JID // the account it was sent from, where the answer comes
	to      jid.JID // the resource asked
	started time.Time
	waiters []waiter
}

// capsCache maps verified verification strings to the nodes their features ask notifications for.
type capsCache struct {
	mu      sync.RWMutex
	known   map[string]map[string]struct{} // ver -> nodes with "+notify"
	pending map[string]*capsQuery          // iq id -> query
	byVer   map[string]*capsQuery          // ver -> the query in flight for it
	seq     uint64
}

func newCapsCache() *capsCache {
	return &capsCache{known: make(map[string]map[string]struct{}), pending: make(map[string]*capsQuery),
		byVer: make(map[string]*capsQuery)}
}

// nodes returns the +notify nodes of a verified verification string.
func (cc *capsCache) nodes(ver string) (map[string]struct{}, bool) {
	cc.mu.RLock()
	defer cc.mu.RUnlock()
	n, ok := cc.known[ver]
	return n, ok
}

// wants reports whether a resource with verification string ver asked for node's notifications.
func (cc *capsCache) wants(ver, node string) bool {
	if ver == "" {
		return false
	}
	cc.mu.RLock()
	_, ok := cc.known[ver][node]
	cc.mu.RUnlock()
	return ok
}

// store records the nodes of a verified verification string.
func (cc *capsCache) store(ver string, nodes map[string]struct{}) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.known[ver]; !ok && len(cc.known) >= maxCapsKnown {
		for v := range cc.known { // evict one at random: a client version still in use is asked again
			delete(cc.known, v)
			break
		}
	}
	cc.known[ver] = nodes
}

// queryCaps asks the resource full, online for owner, which features its verification string stands for,
// unless a query for that string is in flight already: then full waits for that one's answer.
func (m *Module) queryCaps(ctx context.Context, owner, full jid.JID, c caps) {
	if newHash(c.hash) == nil || c.node == "" {
		return
	}
	cc := m.caps
	now := time.Now()
	cc.mu.Lock()
	if q := cc.byVer[c.ver]; q != nil && now.Sub(q.started) < capsTimeout {
		if len(q.waiters) < maxWaiters {
			q.waiters = append(q.waiters, waiter{owner, full})
		}
		cc.mu.Unlock()
		return
	}
	if len(cc.pending) >= maxCapsPending {
		for id, q := range cc.pending {
			if now.Sub(q.started) >= capsTimeout {
				delete(cc.pending, id)
				if cc.byVer[q.c.ver] == q {
					delete(cc.byVer, q.c.ver)
				}
			}
		}
		if len(cc.pending) >= maxCapsPending {
			cc.mu.Unlock()
			return
		}
	}
	cc.seq++
	q := &capsQuery{id: "pep-caps-" + strconv.FormatUint(cc.seq, 10), c: c, from: owner, to: full, started: now,
		waiters: []waiter{{owner, full}}}
	if old := cc.byVer[c.ver]; old != nil {
		delete(cc.pending, old.id)
	}
	cc.pending[q.id], cc.byVer[c.ver] = q, q
	cc.mu.Unlock()
	b := append([]byte("<query xmlns='"+nsDiscoInfo+"' node='"), stanza.AppendEscape(nil, c.node+"#"+c.ver)...)
	b = append(b, "'/>"...)
	m.stats.capsQueries.Add(1)
	// From the account's bare JID: the answer comes back to it, where no session takes it and the IQ response
	// hooks see it (module.Host.OnIQResponse).
	m.router.Route(ctx, stanza.New(stanza.IQ, "get", q.id, owner, full, b))
}

// capsResponse is the module.IQResponseHook: it takes the answer to a capabilities query, checks it against
// the verification string, caches the features, and sends the resources that waited for them their last
// items.
func (m *Module) capsResponse(ctx context.Context, s *stanza.Stanza) bool {
	cc := m.caps
	cc.mu.Lock()
	q := cc.pending[s.ID]
	if q == nil || !s.From.Equal(q.to) || !s.To.Equal(q.from) {
		cc.mu.Unlock()
		return false
	}
	delete(cc.pending, s.ID)
	if cc.byVer[q.c.ver] == q {
		delete(cc.byVer, q.c.ver)
	}
	cc.mu.Unlock()
	if s.Type != "result" {
		return true
	}
	_, _, query, ok := stanza.FirstChild(s.Payload())
	if !ok {
		return true
	}
	features, ok := verifyCaps(query, q.c.hash, q.c.ver)
	if !ok {
		m.stats.capsBad.Add(1)
		m.log.Debug("caps hash mismatch", "from", s.From.String(), "ver", q.c.ver)
		return true
	}
	nodes := pubsub.NotifyNodes(features)
	cc.store(q.c.ver, nodes)
	for _, w := range q.waiters {
		if ver, ok := m.onlineVer(w.owner, w.full); ok && ver == q.c.ver {
			m.sendLastAll(ctx, module.Origin{}, w.owner, w.full, nodes)
		}
	}
	return true
}

// identity is a disco#info identity.
type identity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Lang     string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Name     string `xml:"name,attr"`
}

// discoInfo is a disco#info result.
type discoInfo struct {
	XMLName    xml.Name   `xml:"http://jabber.org/protocol/disco#info query"`
	Identities []identity `xml:"identity"`
	Features   []struct {
		Var string `xml:"var,attr"`
	} `xml:"feature"`
}

// verifyCaps returns the features of a disco#info result if they hash, with the hash function named hashName,
// to ver (XEP-0115 section 5.1, with the checks of section 5.4: no duplicate identities, features or form
// types).
func verifyCaps(query []byte, hashName, ver string) ([]string, bool) {
	newH := newHash(hashName)
	if newH == nil {
		return nil, false
	}
	var info discoInfo
	if err := xml.Unmarshal(query, &info); err != nil {
		return nil, false
	}
	forms, err := form.ParseAll(query, form.Limits{})
	if err != nil {
		return nil, false
	}
	slices.SortFunc(info.Identities, func(a, b identity) int {
		return cmp.Or(strings.Compare(a.Category, b.Category), strings.Compare(a.Type, b.Type),
			strings.Compare(a.Lang, b.Lang), strings.Compare(a.Name, b.Name))
	})
	var sb strings.Builder
	for i, id := range info.Identities {
		if i > 0 && info.Identities[i-1] == id {
			return nil, false
		}
		sb.WriteString(id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name)
		sb.WriteByte('<')
	}
	features := make([]string, 0, len(info.Features))
	for _, f := range info.Features {
		features = append(features, f.Var)
	}
	slices.Sort(features)
	for i, f := range features {
		if i > 0 && features[i-1] == f {
			return nil, false
		}
		sb.WriteString(f)
		sb.WriteByte('<')
	}
	type typed struct {
		formType string
		f        *form.Form
	}
	var exts []typed
	for _, f := range forms {
		if ft := f.FormType(); ft != "" {
			exts = append(exts, typed{ft, f})
		}
	}
	slices.SortFunc(exts, func(a, b typed) int { return strings.Compare(a.formType, b.formType) })
	for i, e := range exts {
		if i > 0 && exts[i-1].formType == e.formType {
			return nil, false
		}
		sb.WriteString(e.formType)
		sb.WriteByte('<')
		fields := slices.Clone(e.f.Fields)
		slices.SortFunc(fields, func(a, b form.Field) int { return strings.Compare(a.Var, b.Var) })
		for _, fd := range fields {
			if fd.Var == form.FormType {
				continue
			}
			sb.WriteString(fd.Var)
			sb.WriteByte('<')
			vals := slices.Clone(fd.Values)
			slices.Sort(vals)
			for _, v := range vals {
				sb.WriteString(v)
				sb.WriteByte('<')
			}
		}
	}
	h := newH()
	h.Write([]byte(sb.String()))
	if base64.StdEncoding.EncodeToString(h.Sum(nil)) != ver {
		return nil, false
	}
	return features, true
}
