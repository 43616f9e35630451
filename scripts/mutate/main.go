// Command mutate repeats the mutation run over the release path's security
// checks (backend/release/SECURITY-CHECKS.md): it disables each check in
// turn, runs the package tests and reports whether a test noticed.
//
//	go run ./scripts/mutate [-only ID] [-pkgs "./backend/release/... ./backend/fleet/"] backend/release/testdata/mutations.txt
//
// Each line of the table is "ID<TAB>FILE<TAB>FROM<TAB>TO": FROM must occur
// exactly once in FILE (a path from the module root; \n and \t in FROM
// and TO stand for a newline and a tab); the run replaces it by
// TO, runs `go test` on the packages, and puts the file back, whatever
// happens. Lines starting with # are comments. The exit status is 1 when a
// mutation went unnoticed, 2 when a line cannot be applied or built.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
)

type mutation struct{ id, file, from, to string }

// unescape reads the table's \n, \t and \\.
var unescape = strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\t`, "\t")

func main() {
	only := flag.String("only", "", "run only the mutation with this ID")
	pkgs := flag.String("pkgs", "./backend/release/... ./backend/fleet/", "packages whose tests must notice")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mutate [-only ID] [-pkgs PKGS] TABLE")
		os.Exit(2)
	}
	ms, err := readTable(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(2)
	}
	missed, broken := 0, 0
	fmt.Println("| ID | caught | failing tests |")
	fmt.Println("|---|---|---|")
	for _, m := range ms {
		if *only != "" && m.id != *only {
			continue
		}
		caught, test, err := run(m, strings.Fields(*pkgs))
		if err != nil {
			// A mutation that cannot be applied or built is a broken table
			// line, not a result: say so and go on.
			fmt.Fprintln(os.Stderr, "mutate:", m.id+":", err)
			fmt.Printf("| %s | TABLE ERROR | - |\n", m.id)
			broken++
			continue
		}
		verdict := "caught"
		if !caught {
			verdict, test = "NOT caught", "-"
			missed++
		}
		fmt.Printf("| %s | %s | %s |\n", m.id, verdict, test)
	}
	if broken > 0 {
		os.Exit(2)
	}
	if missed > 0 {
		os.Exit(1)
	}
}

func readTable(path string) ([]mutation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []mutation
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.Split(line, "\t")
		if len(p) != 4 {
			return nil, fmt.Errorf("%s:%d: want 4 tab-separated fields, have %d", path, n, len(p))
		}
		ms = append(ms, mutation{p[0], p[1], unescape.Replace(p[2]), unescape.Replace(p[3])})
	}
	return ms, sc.Err()
}

// run applies m, runs the tests and restores the file.
func run(m mutation, pkgs []string) (caught bool, test string, err error) {
	orig, err := os.ReadFile(m.file)
	if err != nil {
		return false, "", err
	}
	if n := bytes.Count(orig, []byte(m.from)); n != 1 {
		return false, "", fmt.Errorf("%q occurs %d times in %s, want once", m.from, n, m.file)
	}
	st, err := os.Stat(m.file)
	if err != nil {
		return false, "", err
	}
	restore := func() { os.WriteFile(m.file, orig, st.Mode()) }
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	go func() {
		if _, ok := <-sig; ok {
			restore()
			os.Exit(130)
		}
	}()
	defer restore()
	if err := os.WriteFile(m.file, bytes.Replace(orig, []byte(m.from), []byte(m.to), 1), st.Mode()); err != nil {
		return false, "", err
	}
	out, err := exec.Command("go", append([]string{"test", "-count=1"}, pkgs...)...).CombinedOutput()
	if err == nil {
		return false, "", nil
	}
	if bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")) {
		return false, "", fmt.Errorf("the mutant does not build:\n%s", out)
	}
	var failed []string
	for _, l := range strings.Split(string(out), "\n") {
		// Top-level tests only: subtests are indented.
		if t, ok := strings.CutPrefix(l, "--- FAIL: "); ok {
			failed = append(failed, strings.Fields(t)[0])
		}
	}
	if len(failed) == 0 {
		return true, "(package failed)", nil
	}
	return true, strings.Join(failed, ", "), nil
}
