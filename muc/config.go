package muc

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// Hard limits that no configuration may pass.
const (
	// MaxOccupantsCeiling is the highest per-room occupant limit a configuration or a room owner may set.
	MaxOccupantsCeiling = 10000
	// MaxHistoryCeiling is the most messages a room keeps in memory for history on join.
	MaxHistoryCeiling = 1000
)

// Config configures the MUC service. The zero value of each field means its documented default.
type Config struct {
	// Domain is the service's domain. Default "conference." followed by the server's domain.
	Domain string `yaml:"domain"`
	// MaxOccupants is the occupant limit of a new room (muc#roomconfig_maxusers). Default 100.
	MaxOccupants int `yaml:"max_occupants"`
	// MaxOccupantsLimit is the highest limit a room owner may configure. Default 1000, at most 10000.
	MaxOccupantsLimit int `yaml:"max_occupants_limit"`
	// HistoryDefault is how many messages a new room sends to a joining occupant by default
	// (muc#roomconfig_historylength). Default 20, at most 1000.
	HistoryDefault int `yaml:"history_default"`
	// ArchiveRetention is how long room messages stay in the archive (MAM). Default 720h (30 days); a
	// negative value keeps them forever.
	ArchiveRetention time.Duration `yaml:"archive_retention"`
	// Archive keeps room messages in the room's archive (MAM, XEP-0313, with XEP-0359 stanza ids), durably
	// before they are delivered. Default true. false: no room archive; history on join is kept in memory only
	// (lost at a restart) and rooms do not advertise MAM.
	Archive *bool `yaml:"archive"`
	// Create says who may create rooms: "local" (accounts of this server, the default), "anyone", or
	// "admins" (only the JIDs in Admins).
	Create string `yaml:"create"`
	// Admins are bare JIDs with owner rights in every room of the service. Default none.
	Admins []string `yaml:"admins"`
}

func (c *Config) setDefaults(serverDomain string) {
	if c.Domain == "" && serverDomain != "" {
		c.Domain = "conference." + serverDomain
	}
	if c.MaxOccupants == 0 {
		c.MaxOccupants = 100
	}
	if c.MaxOccupantsLimit == 0 {
		c.MaxOccupantsLimit = 1000
		if c.MaxOccupants > c.MaxOccupantsLimit {
			c.MaxOccupantsLimit = c.MaxOccupants
		}
	}
	if c.HistoryDefault == 0 {
		c.HistoryDefault = 20
	}
	if c.ArchiveRetention == 0 {
		c.ArchiveRetention = 30 * 24 * time.Hour
	}
	if c.Create == "" {
		c.Create = "local"
	}
}

// Validate checks the configuration, naming the offending key.
func (c Config) Validate() error {
	c.setDefaults("")
	var errs []error
	if c.Domain != "" {
		if j, err := jid.Parse(c.Domain); err != nil || j.Localpart() != "" || j.Resourcepart() != "" ||
			strings.ContainsAny(c.Domain, "@/") {
			errs = append(errs, fmt.Errorf("muc.domain: %q is not a domain", c.Domain))
		}
	}
	if c.MaxOccupants < 1 || c.MaxOccupants > MaxOccupantsCeiling {
		errs = append(errs, fmt.Errorf("muc.max_occupants: %d is not between 1 and %d", c.MaxOccupants,
			MaxOccupantsCeiling))
	}
	if c.MaxOccupantsLimit < c.MaxOccupants || c.MaxOccupantsLimit > MaxOccupantsCeiling {
		errs = append(errs, fmt.Errorf("muc.max_occupants_limit: %d is not between max_occupants (%d) and %d",
			c.MaxOccupantsLimit, c.MaxOccupants, MaxOccupantsCeiling))
	}
	if c.HistoryDefault < 0 || c.HistoryDefault > MaxHistoryCeiling {
		errs = append(errs, fmt.Errorf("muc.history_default: %d is not between 0 and %d", c.HistoryDefault,
			MaxHistoryCeiling))
	}
	switch c.Create {
	case "local", "anyone", "admins":
	default:
		errs = append(errs, fmt.Errorf("muc.create: %q is not local, anyone or admins", c.Create))
	}
	for _, a := range c.Admins {
		if j, err := jid.Parse(a); err != nil || j.Resourcepart() != "" {
			errs = append(errs, fmt.Errorf("muc.admins: %q is not a bare JID", a))
		}
	}
	return errors.Join(errs...)
}
