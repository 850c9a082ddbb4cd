package stanza

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestInternTablesReturnTheirCase checks that every case of the intern switches returns the string it matched:
// a typo there would silently rename an element or a namespace.
func TestInternTablesReturnTheirCase(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "intern.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		cc, ok := node.(*ast.CaseClause)
		if !ok || len(cc.List) == 0 {
			return true
		}
		ret, ok := cc.Body[0].(*ast.ReturnStmt)
		if len(cc.List) != 1 || len(cc.Body) != 1 || !ok {
			t.Errorf("case at %v: want one value and one return", cc.Pos())
			return true
		}
		c, _ := cc.List[0].(*ast.BasicLit)
		r, _ := ret.Results[0].(*ast.BasicLit)
		if c == nil || r == nil || c.Value != r.Value {
			t.Errorf("case %v returns %v", c, r)
		}
		n++
		return true
	})
	if n < 50 {
		t.Fatalf("found %d cases; is the table still a switch of literals?", n)
	}
	for _, s := range []string{"query", "jabber:iq:roster", "a&amp;b", "unknown"} {
		if got := internLocal([]byte(s)); got != s {
			t.Errorf("internLocal(%q) = %q", s, got)
		}
	}
	if got, want := internNS([]byte("a&amp;b")), "a&b"; got != want {
		t.Errorf("internNS decoded %q, want %q", got, want)
	}
	if internNS([]byte("urn:xmpp:ping")) != "urn:xmpp:ping" || strconv.Quote(internNS(nil)) != `""` {
		t.Error("internNS changed a plain value")
	}
}
