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

// command is one `keyholder` command: a row of the command table.
type command struct {
	name  string // "" for the desktop (no command)
	short string // one line for `keyholder help`
	// usage is the command's help. With subcommands it follows the usage
	// lines the table makes from theirs.
	usage func(w io.Writer)
	// flags declares the command's flags on fs and returns the action.
	flags func(fs *flag.FlagSet, env *cliEnv) func(args []string) error
	// subcommands, instead of flags: declares on fs the flags that all the
	// subcommands share (they are accepted before and after the
	// subcommand's name) and returns the subcommands, in the order of the
	// help.
	subcommands func(fs *flag.FlagSet, env *cliEnv) []*subcommand
}

// subcommand is one of a command's subcommands (`keyholder attest verify`).
type subcommand struct {
	name string
	// synopsis is its usage line(s) without the leading "Usage:" and
	// indent, e.g. "keyholder image inspect FILE [--json]".
	synopsis string
	// args is how many arguments follow the name; -1: the action checks.
	args int
	// flags declares the subcommand's own flags on fs, which also holds
	// the command's shared ones, and returns the action. Flags may stand
	// before, between and after the arguments.
	flags func(fs *flag.FlagSet) func(args []string) error
}

// sharedFlagsOnly is the flags function of a subcommand that has no flags
// of its own besides its command's shared ones.
func sharedFlagsOnly(action func(args []string) error) func(*flag.FlagSet) func([]string) error {
	return func(*flag.FlagSet) func([]string) error { return action }
}

// cliEnv is what a command reads and writes.
type cliEnv struct {
	cfg            Config
	stdin          io.Reader
	stdout, stderr io.Writer
	dataDir        string
	// database is --database: a PostgreSQL URL shared by console
	// replicas; empty means keyholder.db in dataDir.
	database string
}

// databaseFlagUsage explains --database (common to every command).
const databaseFlagUsage = "the console's database: a postgres://USER@HOST/DB URL that console replicas share (password from PGPASSWORD or ~/.pgpass); default: keyholder.db in the data directory, or $KEYHOLDER_DATABASE"

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

// newFlagSet is a command's flag set, with --data and --database, which
// every command takes.
func newFlagSet(name string, env *cliEnv) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&env.dataDir, "data", "", "data directory (default: the per-user config directory)")
	fs.StringVar(&env.database, "database", os.Getenv("KEYHOLDER_DATABASE"), databaseFlagUsage)
	return fs
}

// declare declares c's flags on fs and returns the action.
func (c *command) declare(fs *flag.FlagSet, env *cliEnv) func(args []string) error {
	if c.subcommands != nil {
		subs := c.subcommands(fs, env)
		return func(args []string) error { return c.dispatch(env, fs, subs, args) }
	}
	return c.flags(fs, env)
}

func (c *command) run(env *cliEnv, args []string) int {
	name := "keyholder"
	if c.name != "" {
		name += " " + c.name
	}
	fs := newFlagSet(name, env)
	action := c.declare(fs, env)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printUsage(env.stdout, fs)
			return 0
		}
		fmt.Fprintf(env.stderr, "%s: %v\nRun 'keyholder help %s' for usage.\n", name, err, c.name)
		return 2
	}
	if c.subcommands == nil { // a subcommand's flags may still set it
		if err := defaultData(env); err != nil {
			fmt.Fprintf(env.stderr, "%s: %v\n", name, err)
			return 1
		}
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

// dispatch runs the subcommand that args name; shared is the command's flag
// set, already parsed up to the subcommand's name.
func (c *command) dispatch(env *cliEnv, shared *flag.FlagSet, subs []*subcommand, args []string) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: "missing subcommand: " + subcommandNames(subs)}
	}
	var sub *subcommand
	for _, s := range subs {
		if s.name == args[0] {
			sub = s
		}
	}
	if sub == nil {
		return &exitError{code: 2, msg: fmt.Sprintf("unknown subcommand %q: want %s", args[0], subcommandNames(subs))}
	}
	fs := sub.flagSet(c, shared)
	action := sub.flags(fs)
	pos, err := interspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		sub.printUsage(env.stdout, fs)
		return &exitError{code: 0}
	}
	if err != nil {
		return err
	}
	if err := defaultData(env); err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	switch {
	case sub.args < 0 || len(pos) == sub.args:
	case len(pos) > sub.args:
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", pos[sub.args])}
	default:
		return &exitError{code: 2, msg: "usage: " + strings.SplitN(sub.synopsis, "\n", 2)[0]}
	}
	return action(pos)
}

// defaultData sets the data directory when --data did not.
func defaultData(env *cliEnv) error {
	if env.dataDir != "" {
		return nil
	}
	d, err := defaultDataDir()
	if err != nil {
		return fmt.Errorf("%v; pass --data DIR", err)
	}
	env.dataDir = d
	return nil
}

// interspersed lets flags follow positional arguments ("officers add bob
// --role viewer"): it parses args with fs, flags and arguments in any
// order, and returns the arguments. "--" ends the flags.
func interspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &exitError{code: 2, msg: err.Error()}
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	return pos, nil
}

// flagSet is the subcommand's flag set: the shared flags of c (the same
// values) and, once flags is called, its own.
func (s *subcommand) flagSet(c *command, shared *flag.FlagSet) *flag.FlagSet {
	fs := flag.NewFlagSet("keyholder "+c.name+" "+s.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	shared.VisitAll(func(f *flag.Flag) { fs.Var(f.Value, f.Name, f.Usage) })
	return fs
}

func subcommandNames(subs []*subcommand) string {
	var b strings.Builder
	for i, s := range subs {
		switch {
		case i == 0:
		case i == len(subs)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(s.name)
	}
	return b.String()
}

func (c *command) printUsage(w io.Writer, fs *flag.FlagSet) {
	if c.subcommands != nil {
		fmt.Fprintf(w, "Usage:\n")
		for _, s := range c.subcommands(flag.NewFlagSet("", flag.ContinueOnError), &cliEnv{}) {
			printIndented(w, s.synopsis)
		}
		if c.usage != nil {
			fmt.Fprintln(w)
		}
	}
	if c.usage != nil {
		c.usage(w)
	} else if c.subcommands == nil {
		fmt.Fprintf(w, "%s\n", c.short)
	}
	fmt.Fprintf(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func (s *subcommand) printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage:\n")
	printIndented(w, s.synopsis)
	fmt.Fprintf(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func printIndented(w io.Writer, lines string) {
	for _, l := range strings.Split(lines, "\n") {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// helpText prints the command's help with its flags (for `keyholder help
// CMD`), or a subcommand's (`keyholder help CMD SUB`).
func (c *command) helpText(w io.Writer, sub string) {
	env := &cliEnv{}
	fs := newFlagSet(c.name, env)
	if c.subcommands != nil && sub != "" {
		for _, s := range c.subcommands(fs, env) {
			if s.name == sub {
				sfs := s.flagSet(c, fs)
				s.flags(sfs)
				s.printUsage(w, sfs)
				return
			}
		}
	}
	c.declare(fs, env)
	c.printUsage(w, fs)
}

// humanError turns a backend error into one line with a hint where we know one.
func humanError(err error) string {
	msg := err.Error()
	if h := custodyHint(err); h != "" {
		return h
	}
	switch {
	case errors.Is(err, store.ErrInUse):
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

// openCommandStore opens the store (shared, as tools do) for one command,
// under a context that an interrupt cancels; done closes the store, then
// the context.
func openCommandStore(env *cliEnv) (ctx context.Context, db *store.DB, done func(), err error) {
	ctx, cancel := signalContext()
	if db, err = openStore(ctx, env, false); err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, db, func() { db.Close(); cancel() }, nil
}

// openStore opens the console's database in env's data directory. A console
// (desktop or serve) opens it exclusively; tools share it.
func openStore(ctx context.Context, env *cliEnv, exclusive bool) (*store.DB, error) {
	if err := os.MkdirAll(env.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", env.dataDir, err)
	}
	if env.database != "" && !store.IsPostgresURL(env.database) {
		return nil, &exitError{code: 2, msg: fmt.Sprintf("--database %q is not a postgres:// URL (the embedded database is chosen with --data)", env.database)}
	}
	return store.Open(ctx, databaseLocation(env), store.Options{Exclusive: exclusive, DataDir: env.dataDir})
}

// databaseLocation is the console's database: --database, or keyholder.db
// in the data directory.
func databaseLocation(env *cliEnv) string {
	if env.database != "" {
		return env.database
	}
	return filepath.Join(env.dataDir, "keyholder.db")
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
