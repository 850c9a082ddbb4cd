package pubsub

import (
	"testing"

	"parley.im/parley/storage"
)

func TestAccess(t *testing.T) {
	stranger := Relation{}
	owner := Relation{Owner: true}
	from := Relation{InRoster: true, Subscription: storage.SubFrom, Groups: []string{"Friends"}}
	both := Relation{InRoster: true, Subscription: storage.SubBoth}
	to := Relation{InRoster: true, Subscription: storage.SubTo, Groups: []string{"Work"}}
	none := Relation{InRoster: true, Subscription: storage.SubNone, Groups: []string{"Friends"}}
	member := Relation{Affiliation: storage.AffMember}
	publisher := Relation{Affiliation: storage.AffPublisher}
	ownerAff := Relation{Affiliation: storage.AffOwner}
	outcast := Relation{InRoster: true, Subscription: storage.SubBoth, Affiliation: storage.AffOutcast}
	notSubscribedGhost := Relation{Subscription: storage.SubBoth} // a subscription without a roster item is nothing

	cfg := func(m AccessModel, groups ...string) Config {
		c := DefaultConfig()
		c.AccessModel, c.RosterGroups = m, groups
		return c
	}
	for _, c := range []struct {
		name string
		cfg  Config
		rel  Relation
		app  string // "" for access granted, else the pubsub#errors condition (or "forbidden")
	}{
		{"open stranger", cfg(AccessOpen), stranger, ""},
		{"open outcast", cfg(AccessOpen), outcast, "forbidden"},
		{"presence owner", cfg(AccessPresence), owner, ""},
		{"presence from", cfg(AccessPresence), from, ""},
		{"presence both", cfg(AccessPresence), both, ""},
		{"presence to", cfg(AccessPresence), to, "presence-subscription-required"},
		{"presence none", cfg(AccessPresence), none, "presence-subscription-required"},
		{"presence stranger", cfg(AccessPresence), stranger, "presence-subscription-required"},
		{"presence without roster item", cfg(AccessPresence), notSubscribedGhost, "presence-subscription-required"},
		{"presence outcast", cfg(AccessPresence), outcast, "forbidden"},
		{"roster in group", cfg(AccessRoster, "Friends", "Family"), from, ""},
		{"roster in group, no subscription", cfg(AccessRoster, "Friends"), none, ""},
		{"roster other group", cfg(AccessRoster, "Friends"), to, "not-in-roster-group"},
		{"roster no groups listed, in roster", cfg(AccessRoster), both, ""},
		{"roster stranger", cfg(AccessRoster), stranger, "not-in-roster-group"},
		{"roster owner", cfg(AccessRoster, "Friends"), owner, ""},
		{"whitelist member", cfg(AccessWhitelist), member, ""},
		{"whitelist publisher", cfg(AccessWhitelist), publisher, ""},
		{"whitelist owner affiliation", cfg(AccessWhitelist), ownerAff, ""},
		{"whitelist owner", cfg(AccessWhitelist), owner, ""},
		{"whitelist contact", cfg(AccessWhitelist), both, "closed-node"},
		{"whitelist outcast", cfg(AccessWhitelist), outcast, "forbidden"},
		{"unknown model", cfg("authorize"), both, "unsupported-access-model"},
	} {
		err := Access(c.cfg, c.rel)
		if CanAccess(c.cfg, c.rel) != (err == nil) {
			t.Errorf("%s: CanAccess disagrees with Access (%v)", c.name, err)
		}
		if c.app == "" {
			if err != nil {
				t.Errorf("%s: Access = %v, want access", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: access granted, want %s", c.name, c.app)
			continue
		}
		cond, app := condition(t, err)
		if app == "" {
			app = cond
		}
		if app != c.app {
			t.Errorf("%s: Access = %s/%s, want %s", c.name, cond, app, c.app)
		}
	}
}
