// Command parley is the Parley XMPP server and its administration tool.
//
//	parley [serve] [-config FILE] [-set key=value ...] [-ready-file FILE]
//	parley user add|passwd|del|list [-config FILE] [JID] [-password P]
//	parley migrate [-config FILE]
//	parley version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Version is the release string, set at build time with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	sub := ""
	if cmd == "user" {
		if len(args) == 0 {
			return errors.New("usage: parley user add|passwd|del|list [flags] [JID]")
		}
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("parley "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("PARLEY_CONFIG"), "configuration file (YAML); default: built-in defaults")
	var sets multiFlag
	fs.Var(&sets, "set", "override a configuration key, e.g. -set c2s.max_stanza=65536 (repeatable)")
	readyFile := fs.String("ready-file", "", "serve: write the listening addresses as JSON to this file once ready")
	password := fs.String("password", "", "user add/passwd: the password (prompted for when absent)")
	// Flags may follow the JID: parse, then parse what remains after the first positional argument.
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos := fs.Args()
	if len(pos) > 1 {
		if err := fs.Parse(pos[1:]); err != nil {
			return err
		}
		pos = append([]string{pos[0]}, fs.Args()...)
	}
	if cmd == "version" {
		fmt.Fprintln(stdout, "parley", Version)
		return nil
	}
	cfg, err := loadConfig(*configPath, sets)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	switch cmd {
	case "serve":
		return serveCmd(cfg, log, *readyFile)
	case "migrate":
		return migrateCmd(cfg, stdout)
	case "user":
		return userCmd(context.Background(), cfg, sub, pos, *password, stdin, stdout)
	}
	return fmt.Errorf("unknown command %q (serve, user, migrate, version)", cmd)
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
