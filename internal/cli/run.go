// Package cli is the `keyholder` command line: one file per command, a
// command table that knows each command's flags and subcommands, and the
// help text made from it. The root package hands it the embedded frontend,
// the version and the desktop window (Config); the commands call the domain
// packages under backend/ and app/.
package cli

import (
	"fmt"
	"io"
	"io/fs"
	"keyholder/backend/custody"
)

// Config is what the binary hands the command line.
type Config struct {
	// Version is printed by `keyholder version` and shown by the console.
	Version string
	// Assets is the built frontend (the root of frontend/dist).
	Assets fs.FS
	// Desktop opens the desktop window on a prepared console and returns
	// when it closes; nil in a binary without one.
	Desktop func(Window) error
	// Custody configures the key service of every command; the zero value
	// is production's (tests pass a cheap KDF).
	Custody custody.Options
	// GenerateBindings, when set, replaces the desktop console: the Wails
	// CLI runs the binary to generate the frontend bindings.
	GenerateBindings func() error
}

// commands is the command table; the order is the order of `keyholder help`.
var commands = []*command{
	desktopCommand,
	serveCommand,
	initCommand,
	officersCommand,
	backupCommand,
	restoreCommand,
	splitKeyCommand,
	recoverCommand,
	auditCommand,
	attestCommand,
	requestsCommand,
	fleetCommand,
	benchCommand,
	demoCommand,
	imageCommand,
	unsealCommand,
	passphraseSharesCommand,
	versionCommand,
}

// Run runs the command line args (without the program name) and returns
// the exit status.
func Run(cfg Config, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &cliEnv{cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		return desktopCommand.run(env, nil)
	}
	name := args[0]
	switch name {
	case "-h", "--help", "help":
		if len(args) > 1 {
			if c := findCommand(args[1]); c != nil {
				sub := ""
				if len(args) > 2 {
					sub = args[2]
				}
				c.helpText(stdout, sub)
				return 0
			}
		}
		usage(stdout, cfg.Version)
		return 0
	case "-v", "--version":
		name = "version"
	}
	c := findCommand(name)
	if c == nil {
		// Flags without a command belong to the desktop (keyholder --data DIR).
		if len(name) > 0 && name[0] == '-' {
			return desktopCommand.run(env, args)
		}
		fmt.Fprintf(stderr, "keyholder: unknown command %q\nRun 'keyholder help' for the list of commands.\n", name)
		return 2
	}
	return c.run(env, args[1:])
}

func usage(w io.Writer, version string) {
	fmt.Fprintf(w, `Keyholder %s — the data owner's console for confidential VMs (AMD SEV-SNP)

Usage:
  keyholder [--data DIR]            open the desktop console
  keyholder COMMAND [flags]

Commands:
`, version)
	for _, c := range commands {
		if c.name == "" {
			continue
		}
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.short)
	}
	fmt.Fprintf(w, `
Every command takes --data DIR (default: %s).
Run 'keyholder help COMMAND' for a command's flags.
`, defaultDataDirForHelp())
}
