package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"keyholder/backend/store"
)

// command is one `keyholder` subcommand.
type command struct {
	name  string // "" for the desktop (no command)
	short string // one line for `keyholder help`
	usage func(w io.Writer)
	// flags declares the command's flags on fs and returns the action.
	flags func(fs *flag.FlagSet, env *cliEnv) func(args []string) error
}

// cliEnv is what a command reads and writes.
type cliEnv struct {
	cfg            Config
	stdin          io.Reader
	stdout, stderr io.Writer
	dataDir        string
}

// exitError carries an exit status for errors the command already explained.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name != "" && c.name == name {
			return c
		}
	}
	return nil
}

func (c *command) run(env *cliEnv, args []string) int {
	name := "keyholder"
	if c.name != "" {
		name += " " + c.name
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&env.dataDir, "data", "", "data directory (default: the per-user config directory)")
	action := c.flags(fs, env)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printUsage(env.stdout, fs)
			return 0
		}
		fmt.Fprintf(env.stderr, "%s: %v\nRun 'keyholder help %s' for usage.\n", name, err, c.name)
		return 2
	}
	if env.dataDir == "" {
		d, err := defaultDataDir()
		if err != nil {
			fmt.Fprintf(env.stderr, "%s: %v; pass --data DIR\n", name, err)
			return 1
		}
		env.dataDir = d
	}
	if err := action(fs.Args()); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintf(env.stderr, "%s: %s\n", name, ee.msg)
			}
			return ee.code
		}
		fmt.Fprintf(env.stderr, "%s: %s\n", name, humanError(err))
		return 1
	}
	return 0
}

func (c *command) printUsage(w io.Writer, fs *flag.FlagSet) {
	if c.usage != nil {
		c.usage(w)
	} else {
		fmt.Fprintf(w, "%s\n", c.short)
	}
	fmt.Fprintf(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// usage prints the command's help with its flags (for `keyholder help CMD`).
func (c *command) helpText(w io.Writer) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	var data string
	fs.StringVar(&data, "data", "", "data directory (default: the per-user config directory)")
	c.flags(fs, &cliEnv{})
	c.printUsage(w, fs)
}

// humanError turns a backend error into one line with a hint where we know one.
func humanError(err error) string {
	msg := err.Error()
	if h := custodyHint(err); h != "" {
		return h
	}
	switch {
	case errors.Is(err, store.ErrLocked):
		return msg
	case errors.Is(err, store.ErrTooNew):
		return msg
	case errors.Is(err, store.ErrCorrupt):
		return msg + "; restore it from a backup (keyholder restore)"
	}
	return msg
}

func defaultDataDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no per-user config directory: %w", err)
	}
	return filepath.Join(d, "Keyholder"), nil
}

func defaultDataDirForHelp() string {
	d, err := defaultDataDir()
	if err != nil {
		return "the per-user config directory/Keyholder"
	}
	if home, err := os.UserHomeDir(); err == nil && strings.HasPrefix(d, home) {
		return "~" + strings.TrimPrefix(d, home)
	}
	return d
}

// openStore opens the console's database in env's data directory. A console
// (desktop or serve) opens it exclusively; tools share it.
func openStore(ctx context.Context, env *cliEnv, exclusive bool) (*store.DB, error) {
	if err := os.MkdirAll(env.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", env.dataDir, err)
	}
	return store.Open(ctx, filepath.Join(env.dataDir, "keyholder.db"), store.Options{Exclusive: exclusive})
}

// signalContext is cancelled by Ctrl-C or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// printJSON writes v as indented JSON, the --json output of every command.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var versionCommand = &command{
	name:  "version",
	short: "print the version",
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		return func([]string) error {
			fmt.Fprintf(env.stdout, "keyholder %s\n", env.cfg.Version)
			return nil
		}
	},
}
