package release

import (
	"encoding/base64"
	"strings"
	"testing"

	"keyholder/backend/release/wire"
	"keyholder/backend/store"
)

func TestPublish(t *testing.T) {
	e := newEnv(t)
	pin := strings.Repeat("ab", 32)
	if err := Publish(e.ctx, e.db, "https://console.example:8443", pin); err != nil {
		t.Fatal(err)
	}
	// An officer's URL is kept; the pin always follows the listener.
	e.db.Exec(`UPDATE settings SET value = '"https://officer.choice:9000"' WHERE key = ?`, store.SettingReleaseURL)
	pin2 := strings.Repeat("cd", 32)
	if err := Publish(e.ctx, e.db, "https://other:1", pin2); err != nil {
		t.Fatal(err)
	}
	var u, p string
	e.db.QueryRow(`SELECT value FROM settings WHERE key = ?`, store.SettingReleaseURL).Scan(&u)
	e.db.QueryRow(`SELECT value FROM settings WHERE key = ?`, store.SettingSPKIPin).Scan(&p)
	raw, _ := wire.ParsePin(pin2)
	if u != `"https://officer.choice:9000"` || p != `"`+base64.StdEncoding.EncodeToString(raw)+`"` {
		t.Fatalf("settings: url %s pin %s", u, p)
	}
	if err := Publish(e.ctx, e.db, "", "not a pin"); err == nil {
		t.Fatal("bad pin published")
	}
}
