package mamcodec

import (
	"encoding/xml"
	"errors"
	"testing"

	"parley.im/parley/xmpp/stanza"
)

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		`<query xmlns='urn:xmpp:mam:2'/>`,
		`<query xmlns='urn:xmpp:mam:2' queryid='q'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='with'><value>a@b</value></field><field var='start'><value>2010-08-07T00:00:00Z</value></field><field var='ids'><value>1</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set><flip-page/></query>`,
		`<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after>x</after></set></query>`,
		`<q:query xmlns:q='urn:xmpp:mam:2'><r:set xmlns:r='http://jabber.org/protocol/rsm'><r:max>0</r:max></r:set></q:query>`,
	} {
		f.Add([]byte(s))
	}
	lim := Limits{Default: 20, Max: 100}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuery(b, lim)
		if err != nil {
			var se *stanza.Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a stanza error", err)
			}
			return
		}
		if q.Archive.Limit < 1 || q.Archive.Limit > lim.Max {
			t.Fatalf("limit %d outside 1..%d", q.Archive.Limit, lim.Max)
		}
		if !q.Archive.Start.IsZero() && !q.Archive.End.IsZero() && q.Archive.End.Before(q.Archive.Start) {
			t.Fatal("end before start accepted")
		}
		for _, id := range q.Archive.IDs {
			if id == "" {
				t.Fatal("empty id in ids")
			}
		}
		// What a client sent back is rendered into XML; it must stay well-formed.
		out := AppendResult(nil, q.ID, itemWithID(q.Archive.AfterID))
		if err := xml.Unmarshal(out, new(struct{})); err != nil {
			t.Fatalf("result for queryid %q is not XML: %v\n%s", q.ID, err, out)
		}
	})
}
