package mamcodec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/stanza"
)

func submitForm(fields string) string {
	return `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` +
		fields + `</x>`
}

func TestParseQuery(t *testing.T) {
	start := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, xml string
		want      Query
	}{
		{"empty", `<query xmlns='urn:xmpp:mam:2'/>`, Query{Archive: storage.ArchiveQuery{Limit: 50}}},
		{"queryid and node", `<query xmlns='urn:xmpp:mam:2' queryid='q&amp;1' node='n'/>`,
			Query{ID: "q&1", Node: "n", Archive: storage.ArchiveQuery{Limit: 50}}},
		{"filters", `<query xmlns='urn:xmpp:mam:2'>` + submitForm(`<field var='with'><value>Juliet@Capulet.lit/Balcony</value></field>`+
			`<field var='start'><value>2024-03-01T13:30:00+01:30</value></field>`+
			`<field var='end'><value>2024-03-02T00:00:00.5Z</value></field>`) + `</query>`,
			Query{Archive: storage.ArchiveQuery{With: "juliet@capulet.lit/Balcony", Start: start,
				End: time.Date(2024, 3, 2, 0, 0, 0, 5e8, time.UTC), Limit: 50}}},
		{"extended ids", `<query xmlns='urn:xmpp:mam:2'>` + submitForm(`<field var='before-id'><value>b</value></field>`+
			`<field var='after-id'><value>a</value></field><field var='ids'><value>1</value><value>2</value></field>`) + `</query>`,
			Query{Archive: storage.ArchiveQuery{BeforeID: "b", AfterID: "a", IDs: []string{"1", "2"}, Limit: 50}}},
		{"rsm after", `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>x9</after></set></query>`,
			Query{Archive: storage.ArchiveQuery{AfterID: "x9", Limit: 10}}},
		{"rsm last page", `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>5</max><before/></set></query>`,
			Query{Archive: storage.ArchiveQuery{Last: true, Limit: 5}}},
		{"rsm before id, flipped", `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><before>x3</before></set><flip-page/></query>`,
			Query{Flip: true, Archive: storage.ArchiveQuery{BeforeID: "x3", Last: true, Limit: 50}}},
		{"max capped", `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>100000</max></set></query>`,
			Query{Archive: storage.ArchiveQuery{Limit: 250}}},
		{"count only", `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set></query>`,
			Query{CountOnly: true, Archive: storage.ArchiveQuery{Limit: 50}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := ParseQuery([]byte(c.xml), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", *q) != fmt.Sprintf("%+v", c.want) {
				t.Errorf("got  %+v\nwant %+v", *q, c.want)
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	for _, c := range []struct{ name, xml, cond string }{
		{"not xml", `<query xmlns='urn:xmpp:mam:2'>`, "bad-request"},
		{"wrong ns", `<query xmlns='urn:xmpp:mam:1'/>`, "bad-request"},
		{"wrong form type", `<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x></query>`, "bad-request"},
		{"unknown field", `<query xmlns='urn:xmpp:mam:2'>` + submitForm(`<field var='{urn:xmpp:fulltext:0}fulltext'><value>x</value></field>`) + `</query>`, "bad-request"},
		{"bad with", `<query xmlns='urn:xmpp:mam:2'>` + submitForm(`<field var='with'><value>@@</value></field>`) + `</query>`, "bad-request"},
		{"bad start", `<query xmlns='urn:xmpp:mam:2'>` + submitForm(`<field var='start'><value>yesterday</value></field>`) + `</query>`, "bad-request"},
		{"end before start", `<query xmlns='urn:xmpp:mam:2'>` + submitForm(`<field var='start'><value>2024-01-02T00:00:00Z</value></field><field var='end'><value>2024-01-01T00:00:00Z</value></field>`) + `</query>`, "bad-request"},
		{"two values", `<query xmlns='urn:xmpp:mam:2'>` + submitForm(`<field var='with'><value>a@b</value><value>c@d</value></field>`) + `</query>`, "bad-request"},
		{"field twice", `<query xmlns='urn:xmpp:mam:2'>` + submitForm(`<field var='with'><value>a@b</value></field><field var='with'><value>c@d</value></field>`) + `</query>`, "bad-request"},
		{"negative max", `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set></query>`, "bad-request"},
		{"after and before", `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after>a</after><before>b</before></set></query>`, "bad-request"},
		{"empty after", `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after/></set></query>`, "bad-request"},
		{"index", `<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><index>3</index></set></query>`, "feature-not-implemented"},
		{"rsm after with after-id", `<query xmlns='urn:xmpp:mam:2'>` + submitForm(`<field var='after-id'><value>a</value></field>`) + `<set xmlns='http://jabber.org/protocol/rsm'><after>b</after></set></query>`, "bad-request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseQuery([]byte(c.xml), Limits{})
			var se *stanza.Error
			if !errors.As(err, &se) || se.Condition != c.cond {
				t.Fatalf("err = %v, want %s", err, c.cond)
			}
		})
	}
}

// memArchive is a minimal in-memory storage.Archive, enough for Fetch.
type memArchive struct{ items []storage.ArchiveItem }

func (m *memArchive) Append(_ context.Context, _ string, items ...storage.ArchiveItem) error {
	m.items = append(m.items, items...)
	return nil
}

func (m *memArchive) sel(q storage.ArchiveQuery) []storage.ArchiveItem {
	var out []storage.ArchiveItem
	for _, it := range m.items {
		if q.With != "" && it.With != q.With {
			continue
		}
		out = append(out, it)
	}
	return out
}

func (m *memArchive) Query(_ context.Context, _ string, q storage.ArchiveQuery) ([]storage.ArchiveItem, bool, error) {
	s := m.sel(q)
	idx := func(id string) int {
		for i, it := range m.items {
			if it.ID == id {
				return i
			}
		}
		return -1
	}
	if q.AfterID != "" {
		if idx(q.AfterID) < 0 {
			return nil, false, storage.ErrNotFound
		}
		for i, it := range s {
			if idx(it.ID) > idx(q.AfterID) {
				s = s[i:]
				break
			}
			if i == len(s)-1 {
				s = nil
			}
		}
	}
	if q.Limit > 0 && len(s) > q.Limit {
		if q.Last {
			return s[len(s)-q.Limit:], false, nil
		}
		return s[:q.Limit], false, nil
	}
	return s, true, nil
}
func (m *memArchive) Count(_ context.Context, _ string, q storage.ArchiveQuery) (int, error) {
	return len(m.sel(q)), nil
}
func (m *memArchive) Delete(context.Context, string, ...string) error        { return nil }
func (m *memArchive) DeleteOwner(context.Context, string) error              { return nil }
func (m *memArchive) DeleteBefore(context.Context, time.Time) (int64, error) { return 0, nil }
func (m *memArchive) HasOrigin(context.Context, string, string, string) (bool, error) {
	return false, nil
}

func TestFetchAndRender(t *testing.T) {
	a := &memArchive{}
	at := time.Date(2024, 3, 1, 12, 0, 0, 123456000, time.UTC)
	for i := range 5 {
		a.Append(t.Context(), "room@muc", storage.ArchiveItem{ID: fmt.Sprintf("id%d", i), Time: at,
			Data: []byte(fmt.Sprintf("<message from='room@muc/n' type='groupchat'><body>%d</body></message>", i))})
	}
	q, err := ParseQuery([]byte(`<query xmlns='urn:xmpp:mam:2' queryid='f1'><set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set><flip-page/></query>`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Fetch(t.Context(), a, "room@muc", q)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 2 || p.Items[0].ID != "id4" || p.Items[1].ID != "id3" || p.Complete || p.Count != 5 {
		t.Fatalf("flipped last page = %+v", p)
	}
	fin := string(AppendFin(nil, p))
	want := "<fin xmlns='urn:xmpp:mam:2' complete='false'><set xmlns='http://jabber.org/protocol/rsm'><first>id4</first><last>id3</last><count>5</count></set></fin>"
	if fin != want {
		t.Errorf("fin = %s\nwant %s", fin, want)
	}
	msg := ResultMessage(jid.MustParse("room@muc"), jid.MustParse("u@h/r"), "f1", p.Items[0])
	wantMsg := "<message from='room@muc' to='u@h/r'><result xmlns='urn:xmpp:mam:2' queryid='f1' id='id4'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-03-01T12:00:00.123456Z'/><message xmlns='jabber:client' from='room@muc/n' type='groupchat'><body>4</body></message></forwarded></result></message>"
	if string(msg.Raw) != wantMsg {
		t.Errorf("result = %s\nwant %s", msg.Raw, wantMsg)
	}

	q, _ = ParseQuery([]byte(`<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set></query>`), Limits{})
	if _, err := Fetch(t.Context(), a, "room@muc", q); err == nil || !strings.Contains(err.Error(), "item-not-found") {
		t.Errorf("unknown after id: %v, want item-not-found", err)
	}
	q, _ = ParseQuery([]byte(`<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set></query>`), Limits{})
	p, err = Fetch(t.Context(), a, "room@muc", q)
	if err != nil || len(p.Items) != 0 || p.Count != 5 {
		t.Errorf("count only = %+v, %v", p, err)
	}
	if got := string(AppendFin(nil, p)); !strings.Contains(got, "<set xmlns='http://jabber.org/protocol/rsm'><count>5</count></set>") {
		t.Errorf("empty page fin = %s", got)
	}
}

func TestAppendFieldsIsXML(t *testing.T) {
	if _, err := ParseQuery(AppendFields(nil), Limits{}); err == nil {
		// A form of type 'form' is not a submission.
		t.Error("the fields form parsed as a query")
	}
}

func itemWithID(id string) storage.ArchiveItem {
	return storage.ArchiveItem{ID: id, Data: []byte("<message/>")}
}

// The data forms parser bounds a form; a query for a thousand ids stays well inside those bounds, and a form
// beyond them is a bad request, not a failure.
func TestParseQueryManyIDsAndTooLarge(t *testing.T) {
	ids := strings.Repeat("<value>id</value>", 1000)
	q, err := ParseQuery([]byte(`<query xmlns='urn:xmpp:mam:2'>`+submitForm(`<field var='ids'>`+ids+`</field>`)+`</query>`), Limits{})
	if err != nil || len(q.Archive.IDs) != 1000 {
		t.Fatalf("1000 ids: %v, %d ids", err, len(q.Archive.IDs))
	}
	huge := strings.Repeat("<value>id</value>", 5000)
	_, err = ParseQuery([]byte(`<query xmlns='urn:xmpp:mam:2'>`+submitForm(`<field var='ids'>`+huge+`</field>`)+`</query>`), Limits{})
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != "bad-request" || !strings.Contains(se.Text, "too large") {
		t.Errorf("5000 ids: err = %v", err)
	}
}
