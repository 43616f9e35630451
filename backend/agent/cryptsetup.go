package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Cryptsetup runs the cryptsetup binary. Secrets reach it only through
// pipes (standard input or inherited descriptors), never through argv, the
// environment or a file.
type Cryptsetup struct {
	// Path is the binary; "" means "cryptsetup" from PATH (or /usr/sbin, /sbin).
	Path string
}

func (c Cryptsetup) bin() string {
	if c.Path != "" {
		return c.Path
	}
	if p, err := exec.LookPath("cryptsetup"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/cryptsetup", "/sbin/cryptsetup"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "cryptsetup"
}

func (c Cryptsetup) run(ctx context.Context, args []string, secrets ...[]byte) error {
	_, err := c.output(ctx, args, secrets...)
	return err
}

// output starts cryptsetup with the secrets on descriptors: secrets[0] on
// standard input, secrets[1:] on fd 3, 4, ... ("/dev/fd/N" in args).
func (c Cryptsetup) output(ctx context.Context, args []string, secrets ...[]byte) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.bin(), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	for i, s := range secrets {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		if i == 0 {
			cmd.Stdin = r
		} else {
			cmd.ExtraFiles = append(cmd.ExtraFiles, r)
		}
		defer r.Close()
		go func(w *os.File, s []byte) {
			w.Write(s)
			w.Close()
		}(w, s)
	}
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("cryptsetup %s: %s", args[0], msg)
	}
	return stdout.Bytes(), nil
}

// Open maps device as /dev/mapper/name with secret.
func (c Cryptsetup) Open(ctx context.Context, device, name string, secret []byte) error {
	return c.run(ctx, []string{"open", "--type", "luks2", "--key-file=-", device, name}, secret)
}

// Test checks that secret opens a keyslot of device without mapping it.
func (c Cryptsetup) Test(ctx context.Context, device string, secret []byte) error {
	return c.run(ctx, []string{"open", "--test-passphrase", "--key-file=-", device}, secret)
}

// AddKey adds a keyslot for newSecret, authorised by oldSecret.
func (c Cryptsetup) AddKey(ctx context.Context, device string, oldSecret, newSecret []byte) error {
	return c.run(ctx, []string{"luksAddKey", "--batch-mode", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha256",
		"--key-file=-", device, "/dev/fd/3"}, oldSecret, newSecret)
}

// RemoveKey removes the keyslot that secret opens.
func (c Cryptsetup) RemoveKey(ctx context.Context, device string, secret []byte) error {
	return c.run(ctx, []string{"luksRemoveKey", "--batch-mode", "--key-file=-", device}, secret)
}
