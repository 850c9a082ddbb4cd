package vcard

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// XEP-0153: vCard-based avatars. A vCard-only client learns that a contact's avatar changed from the SHA-1 of the
// image in the contact's presence, <x xmlns='vcard-temp:x:update'><photo>hash</photo></x>. The server knows the
// account's avatar (its XEP-0084 avatar, which is also its vCard photo), so it writes the element itself into
// every available presence the account sends, whatever its client supports, and re-broadcasts the account's
// presence when the avatar changes.

// hash returns the SHA-1 hex of the account's avatar image, "" if it has none: from the cache, else from PEP.
func (m *Module) hash(ctx context.Context, own jid.JID) (string, error) {
	key := own.String()
	m.mu.Lock()
	h, ok := m.hashes[key]
	gen := m.gen
	m.mu.Unlock()
	if ok {
		return h, nil
	}
	_, b64, err := m.avatar(ctx, own)
	if err != nil {
		return "", err
	}
	if b64 != "" {
		img, err := base64.StdEncoding.DecodeString(b64)
		if err == nil {
			sum := sha1.Sum(img)
			h = hex.EncodeToString(sum[:])
		}
	}
	m.mu.Lock()
	if m.gen == gen { // else the avatar changed while we read it: do not cache what may be the old one
		m.hashes[key] = h
	}
	m.mu.Unlock()
	return h, nil
}

// invalidate forgets the cached hash of an account.
func (m *Module) invalidate(own jid.JID) {
	m.mu.Lock()
	delete(m.hashes, own.String())
	m.gen++
	m.mu.Unlock()
}

// editPresence is the presence edit hook: available presence from an account with an avatar carries the
// avatar's hash; from one without, an x-update element the client sent says <photo/> (no avatar). A presence
// that already says the right thing, or has no x-update and no avatar to announce, passes as it is (the same
// bytes).
func (m *Module) editPresence(ctx context.Context, s module.Session, p *stanza.Stanza) *stanza.Stanza {
	h, err := m.hash(ctx, s.JID().Bare())
	if err != nil {
		m.log.Warn("avatar hash for presence", "jid", s.JID().String(), "err", err)
		return p
	}
	found, hasPhoto := false, false
	var photo []byte
	stanza.Children(p.Payload(), func(local, ns string, raw []byte) bool {
		if local == "x" && ns == NSUpdate {
			found = true
			photo, hasPhoto = photoOf(raw)
			return false
		}
		return true
	})
	switch {
	case !found && h == "":
		return p
	case found && hasPhoto && string(photo) == h:
		return p
	}
	p = p.WithoutChildren(func(local, ns string, _ []byte) bool { return local == "x" && ns == NSUpdate })
	return p.AppendChild(update(h))
}

// update returns the x-update element announcing hash ("" for no avatar).
func update(hash string) []byte {
	if hash == "" {
		return []byte("<x xmlns='" + NSUpdate + "'><photo/></x>")
	}
	return []byte("<x xmlns='" + NSUpdate + "'><photo>" + hash + "</photo></x>")
}

// photoOf returns the text of the <photo/> child of an x-update element (spaces trimmed), and whether it has
// one.
func photoOf(x []byte) ([]byte, bool) {
	var photo []byte
	ok := false
	stanza.Children(inner(x), func(local, _ string, raw []byte) bool {
		if local != "photo" {
			return true
		}
		photo, ok = bytes.TrimSpace(inner(raw)), true
		return false
	})
	return photo, ok
}

// inner returns the content of an element's bytes (nil for a self-closing element).
func inner(raw []byte) []byte {
	end := stanza.StartTagEnd(raw) + 1 // past the '>'
	if end > len(raw) || raw[end-2] == '/' {
		return nil
	}
	i := bytes.LastIndex(raw, []byte("</"))
	if i < end {
		return nil
	}
	return raw[end:i]
}

// avatarChanged is the watcher of the XEP-0084 metadata node (a metadata publish, by a XEP-0084 client or by a
// vCard set with a PHOTO; a retraction; the node deleted): it forgets the account's hash and re-broadcasts the
// current presence of each of its available sessions on this node whose hash is now wrong, as if the session
// had sent it again (edit hook, then the presence handler: to the contacts subscribed to it and the account's
// resources).
func (m *Module) avatarChanged(ctx context.Context, _ module.Origin, own jid.JID) {
	m.invalidate(own)
	for _, s := range m.router.Sessions(own) {
		p := s.Presence()
		if p == nil || !s.Available() || !p.To.Equal(jid.JID{}) {
			continue
		}
		if np := m.editPresence(ctx, s, p); np != p {
			m.router.RouteFrom(ctx, module.Origin{Kind: module.OriginSession, Session: s}, np)
		}
	}
}

// closed forgets the account's hash when its last session on this node ends.
func (m *Module) closed(_ context.Context, s module.Session) {
	own := s.JID().Bare()
	for _, o := range m.router.Sessions(own) {
		if o != s {
			return
		}
	}
	m.mu.Lock()
	delete(m.hashes, own.String())
	m.mu.Unlock()
}
