package pubsub

import (
	"parley.im/parley/storage"
	"parley.im/parley/xmpp/stanza"
)

// The builders below append to b and return it, like strconv.Append*. Item payloads are copied as stored,
// byte for byte.

// appendItem appends <item id='...'>payload</item> (without the payload when payload is false).
func appendItem(b []byte, it storage.PubSubItem, payload bool) []byte {
	b = append(b, "<item id='"...)
	b = stanza.AppendEscape(b, it.ID)
	if !payload || len(it.Payload) == 0 {
		return append(b, "'/>"...)
	}
	b = append(b, "'>"...)
	b = append(b, it.Payload...)
	return append(b, "</item>"...)
}

// appendItemsOpen appends <items node='...'>.
func appendItemsOpen(b []byte, node string) []byte {
	b = append(b, "<items node='"...)
	b = stanza.AppendEscape(b, node)
	return append(b, "'>"...)
}

// AppendItemsResult appends the result of an items request (XEP-0060 section 6.5.2):
// <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='N'><item id='...'>payload</item>...</items></pubsub>.
// items are in the order given (storage.PubSub.Items returns publish order, oldest first).
func AppendItemsResult(b []byte, node string, items []storage.PubSubItem) []byte {
	b = append(b, "<pubsub xmlns='"+NS+"'>"...)
	b = appendItemsOpen(b, node)
	for _, it := range items {
		b = appendItem(b, it, true)
	}
	return append(b, "</items></pubsub>"...)
}

// AppendPublishResult appends the result of a publish (XEP-0060 section 7.1.2), which tells the publisher the
// item id (the one the server chose, if the request had none):
// <pubsub xmlns='...'><publish node='N'><item id='I'/></publish></pubsub>.
func AppendPublishResult(b []byte, node, id string) []byte {
	b = append(b, "<pubsub xmlns='"+NS+"'><publish node='"...)
	b = stanza.AppendEscape(b, node)
	b = append(b, "'><item id='"...)
	b = stanza.AppendEscape(b, id)
	return append(b, "'/></publish></pubsub>"...)
}

// AppendItemsEvent appends the notification of published items (XEP-0060 section 7.1.2.1):
// <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='N'><item id='I'>payload</item></items></event>.
// With payloads false (deliver_payloads off) the items carry only their ids.
func AppendItemsEvent(b []byte, node string, items []storage.PubSubItem, payloads bool) []byte {
	b = append(b, "<event xmlns='"+NSEvent+"'>"...)
	b = appendItemsOpen(b, node)
	for _, it := range items {
		b = appendItem(b, it, payloads)
	}
	return append(b, "</items></event>"...)
}

// AppendRetractEvent appends the notification of retracted (or trimmed) items (XEP-0060 section 7.2.2.1):
// <event xmlns='...#event'><items node='N'><retract id='I'/>...</items></event>.
func AppendRetractEvent(b []byte, node string, ids []string) []byte {
	b = append(b, "<event xmlns='"+NSEvent+"'>"...)
	b = appendItemsOpen(b, node)
	for _, id := range ids {
		b = append(b, "<retract id='"...)
		b = stanza.AppendEscape(b, id)
		b = append(b, "'/>"...)
	}
	return append(b, "</items></event>"...)
}

// AppendPurgeEvent appends the notification of a purge (XEP-0060 section 8.5.2):
// <event xmlns='...#event'><purge node='N'/></event>.
func AppendPurgeEvent(b []byte, node string) []byte {
	b = append(b, "<event xmlns='"+NSEvent+"'><purge node='"...)
	b = stanza.AppendEscape(b, node)
	return append(b, "'/></event>"...)
}

// AppendDeleteEvent appends the notification of a node's deletion (XEP-0060 section 8.4.2):
// <event xmlns='...#event'><delete node='N'/></event>.
func AppendDeleteEvent(b []byte, node string) []byte {
	b = append(b, "<event xmlns='"+NSEvent+"'><delete node='"...)
	b = stanza.AppendEscape(b, node)
	return append(b, "'/></event>"...)
}

// AppendSubscription appends the result of a subscribe request (XEP-0060 section 6.1.2):
// <pubsub xmlns='...'><subscription node='N' jid='J' subscription='S'/></pubsub> (with subid='...' if set).
func AppendSubscription(b []byte, node string, s storage.PubSubSubscription) []byte {
	b = append(b, "<pubsub xmlns='"+NS+"'><subscription node='"...)
	b = stanza.AppendEscape(b, node)
	b = append(b, "' jid='"...)
	b = stanza.AppendEscape(b, s.JID)
	if s.SubID != "" {
		b = append(b, "' subid='"...)
		b = stanza.AppendEscape(b, s.SubID)
	}
	b = append(b, "' subscription='"...)
	b = stanza.AppendEscape(b, s.State)
	return append(b, "'/></pubsub>"...)
}
