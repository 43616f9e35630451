//go:build tools

// Package tools pins the Wails CLI. Wails v2.9.2 pins golang.org/x/tools
// v0.17.0, which no longer compiles with current Go; this module builds the
// same CLI against a current x/tools.
package tools

import _ "github.com/wailsapp/wails/v2/cmd/wails"
