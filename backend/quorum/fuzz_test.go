package quorum

import (
	"encoding/json"
	"testing"
)

// FuzzRules: rules an admin submits (JSON) either fail Validate or give,
// for every kind and admin count, an M between 1 and the admin count; and
// a valid rule set survives a round trip unchanged in what it applies.
func FuzzRules(f *testing.F) {
	f.Add([]byte(`{"approvals":{"backup.export":1,"recovery.shares":3},"ttl":"2h"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"approvals":{"nonsense":2}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Rules
		if err := json.Unmarshal(b, &r); err != nil || r.Validate() != nil {
			return
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Rules
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("round trip of %s: %v", enc, err)
		}
		for _, k := range Kinds {
			for admins := 0; admins <= 17; admins++ {
				n := r.Needed(k, admins)
				if n < 1 || (admins >= 1 && n > admins) {
					t.Fatalf("%s with %d admins needs %d", k, admins, n)
				}
				if back.Needed(k, admins) != n {
					t.Fatalf("%s changes in a round trip", k)
				}
			}
		}
		if r.Weakens(back) || back.Weakens(r) {
			t.Fatalf("a round trip loosens or tightens %s", enc)
		}
	})
}
