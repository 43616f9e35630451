// Command keyholder is the data owner's console for confidential VMs: it
// prepares encrypted disk images, decides which attested guest may receive a
// disk key, and watches the fleet. Without arguments it opens the desktop
// window; `keyholder serve` offers the same console in a browser.
//
// main.go only wires: it parses the command line, opens the store, makes the
// app services and hands them to Wails or to the web server.
package main

import (
	"embed"
	"fmt"
	"io"
	"os"
)

//go:embed all:frontend/dist
var frontendDist embed.FS

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// commands is the command table; the order is the order of `keyholder help`.
var commands = []*command{
	desktopCommand,
	serveCommand,
	initCommand,
	officersCommand,
	backupCommand,
	restoreCommand,
	recoverySharesCommand,
	recoverCommand,
	auditCommand,
	attestCommand,
	requestsCommand,
	fleetCommand,
	benchCommand,
	demoCommand,
	imageCommand,
	unsealCommand,
	sharesCommand,
	versionCommand,
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &cliEnv{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		return desktopCommand.run(env, nil)
	}
	name := args[0]
	switch name {
	case "-h", "--help", "help":
		if len(args) > 1 {
			if c := findCommand(args[1]); c != nil {
				c.helpText(stdout)
				return 0
			}
		}
		usage(stdout)
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

func usage(w io.Writer) {
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
