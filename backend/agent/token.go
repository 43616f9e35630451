package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"

	"keyholder/backend/luks2"
)

// ReadToken reads the keyholder LUKS2 token of device: the volume ID, the
// generation of its release keyslot, the consoles' URLs and SPKI pins.
func ReadToken(device string) (luks2.Token, error) {
	f, err := os.Open(device)
	if err != nil {
		return luks2.Token{}, err
	}
	defer f.Close()
	v, err := luks2.Open(f)
	if err != nil {
		return luks2.Token{}, fmt.Errorf("read LUKS2 header of %s: %w", device, err)
	}
	t, ok := v.Token()
	if !ok {
		return luks2.Token{}, fmt.Errorf("%s has no keyholder token; pass --console, --pin and --volume", device)
	}
	return t, nil
}

// WriteToken replaces token 0 of device with t (cryptsetup token import).
func (c Cryptsetup) WriteToken(ctx context.Context, device string, t luks2.Token) error {
	b, err := json.Marshal(struct {
		Type     string   `json:"type"`
		Keyslots []string `json:"keyslots"`
		luks2.Token
	}{luks2.TokenType, []string{strconv.Itoa(t.Keyslot)}, t})
	if err != nil {
		return err
	}
	return c.run(ctx, []string{"token", "import", "--token-id", "0", "--token-replace", "--json-file=-", device}, b)
}

var slotRE = regexp.MustCompile(`Key slot (\d+) unlocked`)

// Keyslot returns the keyslot that secret opens.
func (c Cryptsetup) Keyslot(ctx context.Context, device string, secret []byte) (int, error) {
	out, err := c.output(ctx, []string{"open", "--test-passphrase", "--verbose", "--key-file=-", device}, secret)
	if err != nil {
		return 0, err
	}
	m := slotRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("cryptsetup did not say which keyslot opened")
	}
	return strconv.Atoi(string(m[1]))
}

// Rotate moves device from res's current secret to its new one: add a
// keyslot for the new secret, check it, point the token at it, remove the
// old slot, then confirm to the console. A guest that dies before the
// confirmation still opens with the old generation, which stays current on
// the console until then.
func (c *Client) Rotate(ctx context.Context, cs Cryptsetup, device, vmID string, tok luks2.Token, res *Result) error {
	return PoolOf(c).Rotate(ctx, cs, device, vmID, tok, res)
}

// Rotate is Client.Rotate confirming to the first console that answers.
func (c *Pool) Rotate(ctx context.Context, cs Cryptsetup, device, vmID string, tok luks2.Token, res *Result) error {
	if res.NewGeneration == 0 {
		return fmt.Errorf("the console did not send a new generation")
	}
	if err := cs.AddKey(ctx, device, res.Secret, res.NewSecret); err != nil {
		return err
	}
	slot, err := cs.Keyslot(ctx, device, res.NewSecret)
	if err != nil {
		return fmt.Errorf("check new keyslot: %w", err)
	}
	tok.Keyslot, tok.Generation = slot, res.NewGeneration
	if err := cs.WriteToken(ctx, device, tok); err != nil {
		return err
	}
	if err := cs.RemoveKey(ctx, device, res.Secret); err != nil {
		return err
	}
	return c.ConfirmRotation(ctx, vmID, tok.VolumeID, res)
}
