package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/auth"
)

// userCmd is `parley user add|passwd|del|list`.
func userCmd(ctx context.Context, cfg Config, sub string, args []string, password string, stdin io.Reader, stdout io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	if sub == "list" {
		after := ""
		for {
			names, err := store.ListUsers(ctx, after, 500)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(stdout, n)
			}
			if len(names) < 500 {
				return nil
			}
			after = names[len(names)-1]
		}
	}
	if len(args) != 1 {
		return fmt.Errorf("usage: parley user %s JID", sub)
	}
	user, err := accountJID(args[0], cfg.Domain)
	if err != nil {
		return err
	}
	switch sub {
	case "add", "passwd":
		if password == "" {
			if password, err = readPassword(stdin, stdout); err != nil {
				return err
			}
		}
		if password == "" {
			return errors.New("empty password")
		}
		creds, err := auth.DeriveAll(password, cfg.Auth.ScramIterations)
		if err != nil {
			return err
		}
		if sub == "add" {
			err = store.CreateUser(ctx, user.String(), creds)
			if errors.Is(err, storage.ErrConflict) {
				return fmt.Errorf("%s already exists (use parley user passwd to change its password)", user)
			}
		} else {
			err = store.SetCredentials(ctx, user.String(), creds)
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("%s does not exist", user)
			}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s\n", map[string]string{"add": "created", "passwd": "password changed"}[sub], user)
	case "del":
		if err := store.DeleteUser(ctx, user.String()); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("%s does not exist", user)
			}
			return err
		}
		fmt.Fprintf(stdout, "deleted: %s (and its roster, archive and stored data)\n", user)
	default:
		return fmt.Errorf("unknown user command %q (add, passwd, del, list)", sub)
	}
	return nil
}

// accountJID parses a user argument: a bare JID of the served domain, or a bare localpart.
func accountJID(s, domain string) (jid.JID, error) {
	if !strings.Contains(s, "@") {
		s += "@" + domain
	}
	j, err := jid.Parse(s)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		return jid.JID{}, fmt.Errorf("%q is not an account JID like alice@%s", s, domain)
	}
	if j.Domainpart() != domain {
		return jid.JID{}, fmt.Errorf("%s is not on this server's domain %s", j, domain)
	}
	return j, nil
}

func readPassword(stdin io.Reader, stdout io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdout, "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stdout, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passwords differ")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// migrateCmd is `parley migrate`: opening a store applies pending migrations; this reports them.
func migrateCmd(cfg Config, stdout io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx := context.Background()
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	m, ok := store.(interface {
		Migrate(context.Context) ([]string, error)
	})
	if !ok {
		return errors.New("this storage driver has no migrations")
	}
	applied, err := m.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema up to date (%s); applied now: %d %v\n", cfg.Storage.Driver, len(applied), applied)
	return nil
}
