package app

import (
	"errors"

	"keyholder/backend/quorum"
)

// errNoToken: Keys.SetupAutoUnseal on a console started without a token.
var errNoToken = errors.New("this console was started without a PKCS#11 token (keyholder serve --pkcs11-module, --pin-file); set up auto-unseal with 'keyholder unseal setup' on a machine that reaches the token")

// SetupAutoUnseal asks to let the console unlock itself at start through
// the PKCS#11 token it was started with (Config.AutoUnsealTokenInfo): an
// admin action under the two-person rule whose approvers approve the
// token's description; the token is not touched. Once approved, the
// requester carries it out with CollectAutoUnseal (on a console with one
// admin, in this answer). Admins only.
func (k *Keys) SetupAutoUnseal(c Caller) (AdminOutcome, error) {
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	if k.cfg.AutoUnsealToken == nil || k.cfg.AutoUnsealTokenInfo == nil {
		return AdminOutcome{}, toError(k.log, "set up auto-unseal", errNoToken)
	}
	info, err := k.cfg.AutoUnsealTokenInfo()
	if err != nil {
		return AdminOutcome{}, toError(k.log, "set up auto-unseal", err)
	}
	a, err := k.quorum.SetupAutoUnseal(k.ctx, by, info)
	if err != nil || !collectable(a, by) {
		return k.outcome("ask to set up auto-unseal", a, err)
	}
	return k.collectAutoUnseal(by, a.ID)
}

// CollectAutoUnseal carries out approved auto-unseal setup id for the
// admin who asked, once: the master key is wrapped now by the AES key of
// the token the console was started with (created in the token when it
// has none), which must be the token the admins approved. Admins only.
func (k *Keys) CollectAutoUnseal(c Caller, id string) (AdminOutcome, error) {
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	return k.collectAutoUnseal(by, id)
}

func (k *Keys) collectAutoUnseal(by quorum.Actor, id string) (AdminOutcome, error) {
	if k.cfg.AutoUnsealToken == nil || k.cfg.AutoUnsealTokenInfo == nil {
		return AdminOutcome{}, toError(k.log, "set up auto-unseal", errNoToken)
	}
	// Open the token (which may create a key in it) only for the setup
	// the admins approved, and only for its requester.
	approved, err := k.quorum.ApprovedAutoUnseal(k.ctx, by, id)
	if err != nil {
		return AdminOutcome{}, toError(k.log, "set up auto-unseal", err)
	}
	desc, err := k.cfg.AutoUnsealTokenInfo()
	if err == nil {
		err = quorum.MatchAutoUnseal(id, approved, desc)
	}
	if err != nil {
		return AdminOutcome{}, toError(k.log, "set up auto-unseal", err)
	}
	w, info, done, err := k.cfg.AutoUnsealToken()
	if err != nil {
		return AdminOutcome{}, toError(k.log, "set up auto-unseal", err)
	}
	defer done()
	if err := k.quorum.CollectAutoUnseal(k.ctx, by, id, w, info); err != nil {
		return AdminOutcome{}, toError(k.log, "set up auto-unseal", err)
	}
	a, err := quorum.Get(k.ctx, k.db, id)
	if err != nil {
		return AdminOutcome{}, toError(k.log, "set up auto-unseal", err)
	}
	return AdminOutcome{Action: a, Done: true}, nil
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
