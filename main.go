// Command keyholder is the data owner's console for confidential VMs: it
// prepares encrypted disk images, decides which attested guest may receive a
// disk key, and watches the fleet. Without arguments it opens the desktop
// window; `keyholder serve` offers the same console in a browser.
//
// main.go only wires: it hands the embedded frontend, the version and the
// desktop window (desktop.go, the only code that needs Wails) to the command
// line in internal/cli, which parses the command line, opens the store and
// makes the app services.
package main

import (
	"embed"
	"fmt"
	"io/fs"
	"os"

	"keyholder/internal/cli"
)

//go:embed all:frontend/dist
var frontendDist embed.FS

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	assets, err := fs.Sub(frontendDist, "frontend/dist")
	if err != nil {
		fmt.Fprintf(os.Stderr, "keyholder: %v\n", err)
		os.Exit(1)
	}
	cfg := cli.Config{Version: version, Assets: assets, Desktop: openWindow}
	if generatingBindings {
		cfg.GenerateBindings = generateBindings
	}
	os.Exit(cli.Run(cfg, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
