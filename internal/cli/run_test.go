package cli

import (
	"io"
	"testing/fstest"
)

// testConfig is the binary's configuration in tests: a stand-in frontend and
// no desktop window.
var testConfig = Config{
	Version: "0.1.0-test",
	Assets:  fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>Keyholder</title>")}},
}

// run runs the command line as the binary does.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Run(testConfig, args, stdin, stdout, stderr)
}
