// Package moduletest runs protocol modules without a server, as net/http/httptest runs handlers without a
// listener: a fake Session that records what it is sent, a fake Router that keeps sessions by bare JID and
// delivers routed stanzas by a documented subset of the real rules, and a Host that registers modules into a
// module.Registry over that router and plays the c2s listener's part (bind, IQ, presence, message stages,
// session events). Store opens a throwaway SQLite store for modules that need storage.
//
// A test asserts on what sessions received (Session.Received, Session.Take), what left the server
// (Router.Left), what a handler answered and what was stored, not on which path a module took to get there:
// a module may write to a session directly or route through the router and the test stays the same.
//
//	h := moduletest.New(t, ping.New())
//	alice := h.Online(ctx, "alice@example.net/phone", 0)
//	reply := h.SendIQTo(ctx, alice, moduletest.Domain, "get", "<ping xmlns='urn:xmpp:ping'/>")
//	// reply.Type == "result"
//
// It is a test helper shipped with the code: nothing in it needs generating, and only tests import it.
package moduletest
