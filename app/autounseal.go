package app

import (
	"errors"
)

// errNoToken: Keys.SetupAutoUnseal on a console started without a token.
var errNoToken = errors.New("this console was started without a PKCS#11 token (keyholder serve --pkcs11-module, --pin-file); set up auto-unseal with 'keyholder unseal setup' on a machine that reaches the token")

// SetupAutoUnseal asks to let the console unlock itself at start through
// the PKCS#11 token it was started with (Config.AutoUnsealToken): the
// master key is wrapped by the token's AES key now (the key is created in
// the token when it has none). An admin action under the two-person rule;
// approving admins need not reach the token. Admins only.
func (k *Keys) SetupAutoUnseal(c Caller) (AdminOutcome, error) {
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	if k.cfg.AutoUnsealToken == nil {
		return AdminOutcome{}, toError(k.log, "set up auto-unseal", errNoToken)
	}
	w, info, done, err := k.cfg.AutoUnsealToken()
	if err != nil {
		return AdminOutcome{}, toError(k.log, "set up auto-unseal", err)
	}
	defer done()
	a, err := k.quorum.SetupAutoUnseal(k.ctx, by, w, info)
	return k.outcome("set up auto-unseal", a, err)
}

// RemoveAutoUnseal asks to delete the token-wrapped master key: once
// carried out, every start waits for an officer's login. An admin action
// under the two-person rule. Admins only.
func (k *Keys) RemoveAutoUnseal(c Caller) (AdminOutcome, error) {
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	a, err := k.quorum.RemoveAutoUnseal(k.ctx, by)
	return k.outcome("remove auto-unseal", a, err)
}
