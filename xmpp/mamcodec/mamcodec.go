// Package mamcodec is the protocol codec of XEP-0313: Message Archive Management, shared by every archive that
// answers MAM queries (a user's archive, a room's archive).
//
// It parses a urn:xmpp:mam:2 <query/> (its XEP-0004 form fields with, start, end, before-id, after-id and
// ids, its XEP-0059 result set max, before and after, and flip-page) into a storage.ArchiveQuery, runs it on
// a storage.Archive, and renders the result messages and the final <fin/>. What a module adds is who may
// query which archive, and what the with filter means there.
package mamcodec

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/stanza"
)

// Namespaces.
const (
	NS         = "urn:xmpp:mam:2"
	NSExtended = "urn:xmpp:mam:2#extended" // before-id, after-id, ids and flip-page
	NSRSM      = "http://jabber.org/protocol/rsm"
	NSForward  = "urn:xmpp:forward:0"
	NSDelay    = "urn:xmpp:delay"
	NSData     = form.NS
	NSClient   = "jabber:client"
)

// Query is a parsed MAM query.
type Query struct {
	// ID is the queryid attribute, echoed in each result.
	ID string
	// Node is the node attribute (a pubsub node archive); empty for a user or room archive.
	Node string
	// Archive is the query for storage: filters and paging. Its Limit is the page size, never 0.
	Archive storage.ArchiveQuery
	// CountOnly is set for RSM <max>0</max>: the answer carries the count and no items.
	CountOnly bool
	// Flip is XEP-0313 <flip-page/>: the page's items are returned in reverse order.
	Flip bool
}

// Limits bounds page sizes.
type Limits struct {
	// Default is the page size when the query has no <max/>. Default 50.
	Default int
	// Max caps <max/>. Default 250.
	Max int
}

func (l Limits) withDefaults() Limits {
	if l.Default <= 0 {
		l.Default = 50
	}
	if l.Max <= 0 {
		l.Max = 250
	}
	if l.Default > l.Max {
		l.Default = l.Max
	}
	return l
}

type queryXML struct {
	XMLName xml.Name     `xml:"urn:xmpp:mam:2 query"`
	QueryID string       `xml:"queryid,attr"`
	Node    string       `xml:"node,attr"`
	Forms   []*form.Form `xml:"jabber:x:data x"`
	Sets    []struct {
		Max    *string `xml:"http://jabber.org/protocol/rsm max"`
		After  *string `xml:"http://jabber.org/protocol/rsm after"`
		Before *string `xml:"http://jabber.org/protocol/rsm before"`
		Index  *string `xml:"http://jabber.org/protocol/rsm index"`
	} `xml:"http://jabber.org/protocol/rsm set"`
	Flip *struct{} `xml:"urn:xmpp:mam:2 flip-page"`
}

func bad(text string) error { return &stanza.Error{Condition: "bad-request", Text: text} }

// ParseQuery parses a <query xmlns='urn:xmpp:mam:2'/> element. Errors are *stanza.Error (bad-request or
// feature-not-implemented) and may be returned to the client as they are.
func ParseQuery(query []byte, lim Limits) (*Query, error) {
	lim = lim.withDefaults()
	var qx queryXML
	if err := xml.Unmarshal(query, &qx); err != nil {
		if errors.Is(err, form.ErrTooLarge) {
			return nil, bad("the query form is too large")
		}
		return nil, bad("malformed mam query")
	}
	q := &Query{ID: qx.QueryID, Node: qx.Node, Flip: qx.Flip != nil}
	if len(qx.Forms) > 1 || len(qx.Sets) > 1 {
		return nil, bad("more than one form or result set")
	}
	if len(qx.Forms) == 1 {
		f := qx.Forms[0]
		if f.Type != form.TypeSubmit && f.Type != "" {
			return nil, bad("the form must be of type submit")
		}
		seen := map[string]bool{}
		for _, fl := range f.Fields {
			if seen[fl.Var] {
				return nil, bad("field " + fl.Var + " given twice")
			}
			seen[fl.Var] = true
			one := func() (string, error) {
				if len(fl.Values) > 1 {
					return "", bad("field " + fl.Var + " takes one value")
				}
				if len(fl.Values) == 0 {
					return "", nil
				}
				return fl.Values[0], nil
			}
			var v string
			var err error
			if fl.Var != "ids" {
				if v, err = one(); err != nil {
					return nil, err
				}
			}
			switch fl.Var {
			case form.FormType:
				if v != NS {
					return nil, bad("FORM_TYPE must be " + NS)
				}
			case "with":
				if v == "" {
					continue
				}
				j, err := jid.Parse(v)
				if err != nil {
					return nil, bad("with is not a JID")
				}
				q.Archive.With = j.String()
			case "start", "end":
				if v == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					return nil, bad(fl.Var + " is not an XEP-0082 date and time")
				}
				if fl.Var == "start" {
					q.Archive.Start = t.UTC()
				} else {
					q.Archive.End = t.UTC()
				}
			case "before-id":
				q.Archive.BeforeID = v
			case "after-id":
				q.Archive.AfterID = v
			case "ids":
				for _, id := range fl.Values {
					if id != "" {
						q.Archive.IDs = append(q.Archive.IDs, id)
					}
				}
				if len(fl.Values) > 0 && len(q.Archive.IDs) == 0 {
					return nil, bad("ids holds no id")
				}
			default:
				return nil, &stanza.Error{Condition: "bad-request", Text: "unsupported field " + fl.Var}
			}
		}
	}
	q.Archive.Limit = lim.Default
	if len(qx.Sets) == 1 {
		set := qx.Sets[0]
		if set.Index != nil {
			return nil, &stanza.Error{Condition: "feature-not-implemented", Text: "rsm index is not supported"}
		}
		if set.Max != nil {
			n, err := strconv.Atoi(string(bytes.TrimSpace([]byte(*set.Max))))
			if err != nil || n < 0 {
				return nil, bad("rsm max must be a non-negative integer")
			}
			switch {
			case n == 0:
				q.CountOnly = true
			case n > lim.Max:
				q.Archive.Limit = lim.Max
			default:
				q.Archive.Limit = n
			}
		}
		if set.After != nil && set.Before != nil {
			return nil, bad("rsm after and before together")
		}
		// The form's after-id/before-id select; RSM after/before page. Both at once would need the two ids
		// ordered against each other, which only the archive knows: refused rather than guessed.
		if set.After != nil {
			if *set.After == "" {
				return nil, bad("rsm after needs an id")
			}
			if q.Archive.AfterID != "" {
				return nil, bad("rsm after together with after-id")
			}
			q.Archive.AfterID = *set.After
		}
		if set.Before != nil {
			if *set.Before != "" {
				if q.Archive.BeforeID != "" {
					return nil, bad("rsm before together with before-id")
				}
				q.Archive.BeforeID = *set.Before
			}
			q.Archive.Last = true
		}
	}
	if !q.Archive.Start.IsZero() && !q.Archive.End.IsZero() && q.Archive.End.Before(q.Archive.Start) {
		return nil, bad("end is before start")
	}
	return q, nil
}

// Page is the answer to a query: the items in the order they are sent, and what <fin/> reports.
type Page struct {
	Items    []storage.ArchiveItem
	Complete bool
	Count    int
}

// Fetch runs q on owner's archive. An RSM or form id that is not in the archive is item-not-found
// (XEP-0313 section 4.2.2).
func Fetch(ctx context.Context, a storage.Archive, owner string, q *Query) (Page, error) {
	var p Page
	count, err := a.Count(ctx, owner, q.Archive)
	if err != nil {
		return p, err
	}
	p.Count = count
	if q.CountOnly {
		// Nothing is sent; the page reaches the end of the selection only if the selection is empty.
		p.Complete = count == 0
		return p, nil
	}
	items, complete, err := a.Query(ctx, owner, q.Archive)
	if errors.Is(err, storage.ErrNotFound) {
		return p, &stanza.Error{Condition: "item-not-found", Text: "no such archive id"}
	}
	if err != nil {
		return p, err
	}
	if q.Flip {
		slices.Reverse(items)
	}
	p.Items, p.Complete = items, complete
	return p, nil
}

// AppendTime appends t as an XEP-0082 date and time in UTC with microseconds.
func AppendTime(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
}

// AppendResult appends the <result/> element carrying one archived stanza. The stored stanza is given the
// jabber:client namespace when its root element has no namespace of its own: inside <forwarded/> it would
// otherwise inherit urn:xmpp:forward:0.
func AppendResult(b []byte, queryID string, it storage.ArchiveItem) []byte {
	b = append(b, "<result xmlns='"+NS+"'"...)
	if queryID != "" {
		b = append(b, " queryid='"...)
		b = stanza.AppendEscape(b, queryID)
		b = append(b, '\'')
	}
	b = append(b, " id='"...)
	b = stanza.AppendEscape(b, it.ID)
	b = append(b, "'><forwarded xmlns='"+NSForward+"'><delay xmlns='"+NSDelay+"' stamp='"...)
	b = AppendTime(b, it.Time)
	b = append(b, "'/>"...)
	b = stanza.AppendWithNS(b, it.Data, NSClient)
	return append(b, "</forwarded></result>"...)
}

// ResultMessage builds the message that carries one result to the querier.
func ResultMessage(from, to jid.JID, queryID string, it storage.ArchiveItem) *stanza.Stanza {
	inner := AppendResult(make([]byte, 0, len(it.Data)+256), queryID, it)
	return stanza.New(stanza.Message, "", "", from, to, inner)
}

// AppendFin appends the <fin/> element that the IQ result carries after the result messages.
func AppendFin(b []byte, p Page) []byte {
	b = append(b, "<fin xmlns='"+NS+"' complete='"...)
	b = strconv.AppendBool(b, p.Complete)
	b = append(b, "'><set xmlns='"+NSRSM+"'>"...)
	if len(p.Items) > 0 {
		b = append(b, "<first>"...)
		b = stanza.AppendEscape(b, p.Items[0].ID)
		b = append(b, "</first><last>"...)
		b = stanza.AppendEscape(b, p.Items[len(p.Items)-1].ID)
		b = append(b, "</last>"...)
	}
	b = append(b, "<count>"...)
	b = strconv.AppendInt(b, int64(p.Count), 10)
	b = append(b, "</count></set></fin>"...)
	return b
}

// AppendFields appends the answer to a query of type get: the form fields the archive accepts (XEP-0313
// section 4.1.1).
func AppendFields(b []byte) []byte {
	f := form.New(form.TypeForm, NS).
		Add(form.Field{Var: "with", Type: form.JIDSingle}).
		Add(form.Field{Var: "start", Type: form.TextSingle}).
		Add(form.Field{Var: "end", Type: form.TextSingle}).
		Add(form.Field{Var: "before-id", Type: form.TextSingle}).
		Add(form.Field{Var: "after-id", Type: form.TextSingle}).
		Add(form.Field{Var: "ids", Type: form.ListMulti, Extra: idsValidate})
	b = append(b, "<query xmlns='"+NS+"'>"...)
	return append(f.Append(b), "</query>"...)
}

// idsValidate declares ids an open list of strings (XEP-0122), as XEP-0313 section 4.1.1 shows it.
var idsValidate = []byte("<validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'><open/></validate>")
