package cli

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"keyholder/backend/shamir"
)

// passphraseSharesCommand combines the shares of an image's recovery
// passphrase that the image wizard printed; the console's master-key shares
// (split-key) are combined by recoverCommand.
var passphraseSharesCommand = &command{
	name:  "shares",
	short: "combine the shares of an image's recovery passphrase (image wizard)",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `combine reads M shares of a volume's recovery passphrase (one per line, as the image
wizard printed them; standard input by default), checks each share's
checksum, and writes the passphrase to standard output without a newline,
so it can be piped into cryptsetup:

  keyholder shares combine --in shares.txt | cryptsetup open --key-file=- DISK NAME

It refuses to print the passphrase to a terminal. (The console's master-key
shares are combined with 'keyholder recover'.)
`)
	},
	subcommands: func(fs *flag.FlagSet, env *cliEnv) []*subcommand {
		in := fs.String("in", "", "file with the shares, one per line (default: standard input)")
		combine := func([]string) error {
			if f, ok := env.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				return &exitError{code: 2, msg: "refusing to print a passphrase to the terminal; pipe it into cryptsetup (see 'keyholder help shares')"}
			}
			r := env.stdin
			if *in != "" {
				f, err := os.Open(*in)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			secret, err := combinePassphraseShares(r)
			if err != nil {
				return err
			}
			defer clear(secret)
			_, err = env.stdout.Write(secret)
			return err
		}
		return []*subcommand{{name: "combine", synopsis: "keyholder shares combine [--in FILE]", flags: sharedFlagsOnly(combine)}}
	},
}

// combinePassphraseShares parses one recovery-passphrase share per
// non-empty line and combines them.
func combinePassphraseShares(r io.Reader) ([]byte, error) {
	var shares []shamir.Share
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		s, err := shamir.Parse(text)
		if err != nil {
			return nil, fmt.Errorf("share on line %d: %w", line, err)
		}
		shares = append(shares, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(shares) == 0 {
		return nil, errors.New("no shares given")
	}
	return shamir.Combine(shares)
}
