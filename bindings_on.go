//go:build bindings

package main

// generatingBindings is true when the Wails CLI runs this binary to generate
// the frontend bindings (it builds with -tags bindings): open no store and
// need no display.
const generatingBindings = true
