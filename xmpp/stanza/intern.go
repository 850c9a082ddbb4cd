package stanza

// internLocal returns the name of a payload element as a string, without allocating for the names the server
// looks for: FirstChild runs on every IQ the router dispatches and, through Children, on every message whose
// origin-id the archive or offline store checks.
func internLocal(b []byte) string {
	switch string(b) {
	case "query":
		return "query"
	case "ping":
		return "ping"
	case "pubsub":
		return "pubsub"
	case "vCard":
		return "vCard"
	case "session":
		return "session"
	case "enable":
		return "enable"
	case "disable":
		return "disable"
	case "time":
		return "time"
	case "blocklist":
		return "blocklist"
	case "block":
		return "block"
	case "unblock":
		return "unblock"
	case "prefs":
		return "prefs"
	case "request":
		return "request"
	case "body":
		return "body"
	case "origin-id":
		return "origin-id"
	case "stanza-id":
		return "stanza-id"
	case "active":
		return "active"
	case "composing":
		return "composing"
	case "paused":
		return "paused"
	case "markable":
		return "markable"
	case "received":
		return "received"
	case "displayed":
		return "displayed"
	case "encrypted":
		return "encrypted"
	case "thread":
		return "thread"
	case "store":
		return "store"
	case "no-store":
		return "no-store"
	case "no-copy":
		return "no-copy"
	case "x":
		return "x"
	case "delay":
		return "delay"
	case "show":
		return "show"
	case "status":
		return "status"
	case "priority":
		return "priority"
	case "c":
		return "c"
	case "error":
		return "error"
	}
	return string(b)
}

// internNS decodes a namespace attribute value (as unescapeAttr) without allocating for the namespaces the
// server's modules register or look for.
func internNS(b []byte) string {
	switch string(b) {
	case "jabber:iq:roster":
		return "jabber:iq:roster"
	case "urn:xmpp:ping":
		return "urn:xmpp:ping"
	case "http://jabber.org/protocol/disco#info":
		return "http://jabber.org/protocol/disco#info"
	case "http://jabber.org/protocol/disco#items":
		return "http://jabber.org/protocol/disco#items"
	case "http://jabber.org/protocol/pubsub":
		return "http://jabber.org/protocol/pubsub"
	case "urn:xmpp:mam:2":
		return "urn:xmpp:mam:2"
	case "urn:xmpp:carbons:2":
		return "urn:xmpp:carbons:2"
	case "urn:xmpp:blocking":
		return "urn:xmpp:blocking"
	case "urn:xmpp:push:0":
		return "urn:xmpp:push:0"
	case "urn:xmpp:http:upload:0":
		return "urn:xmpp:http:upload:0"
	case "urn:xmpp:time":
		return "urn:xmpp:time"
	case "jabber:iq:private":
		return "jabber:iq:private"
	case "jabber:iq:version":
		return "jabber:iq:version"
	case "jabber:iq:register":
		return "jabber:iq:register"
	case "vcard-temp":
		return "vcard-temp"
	case "urn:ietf:params:xml:ns:xmpp-session":
		return "urn:ietf:params:xml:ns:xmpp-session"
	case "urn:xmpp:sid:0":
		return "urn:xmpp:sid:0"
	case "http://jabber.org/protocol/chatstates":
		return "http://jabber.org/protocol/chatstates"
	case "urn:xmpp:receipts":
		return "urn:xmpp:receipts"
	case "urn:xmpp:chat-markers:0":
		return "urn:xmpp:chat-markers:0"
	case "urn:xmpp:hints":
		return "urn:xmpp:hints"
	case "urn:xmpp:delay":
		return "urn:xmpp:delay"
	case "eu.siacs.conversations.axolotl":
		return "eu.siacs.conversations.axolotl"
	case "urn:xmpp:eme:0":
		return "urn:xmpp:eme:0"
	case "jabber:x:oob":
		return "jabber:x:oob"
	case "http://jabber.org/protocol/muc#user":
		return "http://jabber.org/protocol/muc#user"
	case "http://jabber.org/protocol/caps":
		return "http://jabber.org/protocol/caps"
	}
	return attrString(b)
}
