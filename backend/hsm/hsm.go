// Package hsm wraps small secrets (the console's master key) with an AES
// key that never leaves a PKCS#11 token: a hardware security module, a
// cloud HSM's PKCS#11 library, or SoftHSM2 in tests. It is what auto-unseal
// uses (backend/custody, AutoUnseal): a replica that can log in to the
// token unwraps the master key at start without an officer.
//
// The wrapping is AES-256-GCM computed by the token (CKM_AES_GCM) with a
// fresh random 96-bit IV, a 128-bit tag and the caller's associated data;
// the result is stored as IV || ciphertext || tag. The key is generated in
// the token as sensitive and not extractable, so no copy of it exists
// outside the token.
//
// A Token is a logged-in session: Open it, use it, Close it. The PKCS#11
// library is initialised per Open and finalised by Close, so only one
// Token per module may be open at a time in a process.
package hsm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// DefaultKeyLabel is the label of the wrapping key when none is given.
const DefaultKeyLabel = "keyholder-auto-unseal"

// Mechanism names the wrapping the token does (stored with the wrapped key).
const Mechanism = "CKM_AES_GCM"

const (
	ivSize  = 12
	tagBits = 128
)

// Config says which token and key to use.
type Config struct {
	// Module is the path of the token's PKCS#11 library.
	Module string
	// TokenLabel selects the token (slot) by its label.
	TokenLabel string
	// PIN is the token user's PIN. It is only passed to C_Login.
	PIN []byte
	// KeyLabel is the AES key's label (default DefaultKeyLabel).
	KeyLabel string
}

// ErrNoKey means the token has no AES key with the label (and Open was not
// asked to create one).
var ErrNoKey = errors.New("the token holds no AES wrapping key with that label")

// ErrUnwrap means the token could not open a wrapped value: another key,
// another token, or the value or its associated data were altered.
var ErrUnwrap = errors.New("the token's key does not open the wrapped value")

// Token is a logged-in session on a PKCS#11 token with its wrapping key.
// It is safe for concurrent use.
type Token struct {
	mu       sync.Mutex
	ctx      *pkcs11.Ctx
	session  pkcs11.SessionHandle
	open     bool // session is open
	key      pkcs11.ObjectHandle
	label    string
	keyLabel string
	created  bool
}

// Open loads the module, finds the token by label, logs in with the PIN and
// finds the wrapping key; with create it generates the key in the token if
// there is none. Errors name the step and the PKCS#11 return code, never
// the PIN.
func Open(cfg Config, create bool) (*Token, error) {
	if cfg.Module == "" {
		return nil, errors.New("pkcs11: no module (library path) given")
	}
	if cfg.TokenLabel == "" {
		return nil, errors.New("pkcs11: no token label given")
	}
	if len(cfg.PIN) == 0 {
		return nil, errors.New("pkcs11: no PIN given")
	}
	if cfg.KeyLabel == "" {
		cfg.KeyLabel = DefaultKeyLabel
	}
	p := pkcs11.New(cfg.Module)
	if p == nil {
		return nil, fmt.Errorf("pkcs11: cannot load module %s", cfg.Module)
	}
	if err := p.Initialize(); err != nil {
		p.Destroy()
		return nil, fmt.Errorf("pkcs11: initialise %s: %w", cfg.Module, err)
	}
	t := &Token{ctx: p, label: cfg.TokenLabel, keyLabel: cfg.KeyLabel}
	fail := func(err error) (*Token, error) {
		t.Close()
		return nil, err
	}
	slot, err := findSlot(p, cfg.TokenLabel)
	if err != nil {
		return fail(err)
	}
	if t.session, err = p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
		return fail(fmt.Errorf("pkcs11: open a session on token %q: %w", cfg.TokenLabel, err))
	}
	t.open = true
	if err := p.Login(t.session, pkcs11.CKU_USER, string(cfg.PIN)); err != nil {
		return fail(fmt.Errorf("pkcs11: log in to token %q: %w", cfg.TokenLabel, err))
	}
	t.key, err = t.findKey()
	if errors.Is(err, ErrNoKey) && create {
		t.key, err = t.generateKey()
		t.created = err == nil
	}
	if err != nil {
		return fail(err)
	}
	return t, nil
}

func findSlot(p *pkcs11.Ctx, label string) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("pkcs11: list slots: %w", err)
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && strings.TrimRight(ti.Label, " \x00") == label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("pkcs11: no token labelled %q is present", label)
}

func (t *Token) keyTemplate() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, t.keyLabel),
	}
}

func (t *Token) findKey() (pkcs11.ObjectHandle, error) {
	if err := t.ctx.FindObjectsInit(t.session, t.keyTemplate()); err != nil {
		return 0, fmt.Errorf("pkcs11: find key %q: %w", t.keyLabel, err)
	}
	objs, _, err := t.ctx.FindObjects(t.session, 2)
	t.ctx.FindObjectsFinal(t.session)
	if err != nil {
		return 0, fmt.Errorf("pkcs11: find key %q: %w", t.keyLabel, err)
	}
	switch len(objs) {
	case 0:
		return 0, fmt.Errorf("pkcs11: key %q on token %q: %w", t.keyLabel, t.label, ErrNoKey)
	case 1:
		return objs[0], nil
	}
	return 0, fmt.Errorf("pkcs11: token %q holds several AES keys labelled %q; label them apart", t.label, t.keyLabel)
}

func (t *Token) generateKey() (pkcs11.ObjectHandle, error) {
	tmpl := append(t.keyTemplate(),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
	)
	k, err := t.ctx.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, tmpl)
	if err != nil {
		return 0, fmt.Errorf("pkcs11: generate AES key %q on token %q: %w", t.keyLabel, t.label, err)
	}
	return k, nil
}

// Created reports whether Open generated the key.
func (t *Token) Created() bool { return t.created }

// TokenLabel is the token's label.
func (t *Token) TokenLabel() string { return t.label }

// KeyLabel is the wrapping key's label.
func (t *Token) KeyLabel() string { return t.keyLabel }

// Wrap encrypts plaintext in the token under its key, binding ad:
// IV || ciphertext || tag.
func (t *Token) Wrap(plaintext, ad []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx == nil {
		return nil, errors.New("pkcs11: the token session is closed")
	}
	iv := make([]byte, ivSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	params := pkcs11.NewGCMParams(iv, ad, tagBits)
	defer params.Free()
	if err := t.ctx.EncryptInit(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, t.key); err != nil {
		return nil, fmt.Errorf("pkcs11: wrap with key %q: %w", t.keyLabel, err)
	}
	ct, err := t.ctx.Encrypt(t.session, plaintext)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: wrap with key %q: %w", t.keyLabel, err)
	}
	if got := params.IV(); len(got) == ivSize {
		iv = got // a token that chooses its own IV says which
	}
	return append(iv, ct...), nil
}

// Unwrap decrypts a value made by Wrap in the token; the caller wipes the
// result. Any failure to authenticate is ErrUnwrap.
func (t *Token) Unwrap(wrapped, ad []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx == nil {
		return nil, errors.New("pkcs11: the token session is closed")
	}
	if len(wrapped) < ivSize+tagBits/8 {
		return nil, ErrUnwrap
	}
	params := pkcs11.NewGCMParams(append([]byte(nil), wrapped[:ivSize]...), ad, tagBits)
	defer params.Free()
	if err := t.ctx.DecryptInit(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, t.key); err != nil {
		return nil, fmt.Errorf("pkcs11: unwrap with key %q: %w", t.keyLabel, err)
	}
	pt, err := t.ctx.Decrypt(t.session, wrapped[ivSize:])
	if err != nil {
		var pe pkcs11.Error
		if errors.As(err, &pe) && (pe == pkcs11.CKR_ENCRYPTED_DATA_INVALID || pe == pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE ||
			pe == pkcs11.CKR_GENERAL_ERROR) {
			return nil, ErrUnwrap
		}
		return nil, fmt.Errorf("pkcs11: unwrap with key %q: %w", t.keyLabel, err)
	}
	return pt, nil
}

// Close logs out, closes the session and unloads the module.
func (t *Token) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx == nil {
		return nil
	}
	if t.open {
		t.ctx.Logout(t.session)
		t.ctx.CloseSession(t.session)
	}
	err := t.ctx.Finalize()
	t.ctx.Destroy()
	t.ctx = nil
	if err != nil {
		return fmt.Errorf("pkcs11: finalise: %w", err)
	}
	return nil
}
