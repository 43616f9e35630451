package app

import (
	"sync"
	"testing"
	"time"
)

func TestDesktopNotifiesOncePerNewPendingRequest(t *testing.T) {
	var mu sync.Mutex
	var got []string
	done := make(chan struct{}, 10)
	d := &DesktopEvents{Notify: func(title, body string) error {
		mu.Lock()
		got = append(got, body)
		mu.Unlock()
		done <- struct{}{}
		return nil
	}}
	type req struct {
		ID        string `json:"id"`
		VMID      string `json:"vm_id"`
		Class     string `json:"class"`
		Status    string `json:"status"`
		Simulated bool   `json:"simulated"`
	}
	// No Wails context is attached: the runtime must not be called (it would
	// log.Fatalf), but notifications still go out.
	d.Emit(EventApprovalsChanged, req{ID: "req_1", VMID: "web-01", Class: "migration", Status: "pending", Simulated: true})
	d.Emit(EventApprovalsChanged, req{ID: "req_1", VMID: "web-01", Class: "migration", Status: "pending"}) // seen
	d.Emit(EventApprovalsChanged, req{ID: "req_2", VMID: "web-02", Class: "restore", Status: "approved"})  // not pending
	d.Emit(EventFleetChanged, req{ID: "req_3", VMID: "web-03", Class: "first_boot", Status: "pending"})    // other event
	d.Emit(EventApprovalsChanged, req{ID: "req_4", VMID: "db-01", Class: "platform_change", Status: "pending"})
	for i := 0; i < 2; i++ {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("notification not sent")
		}
	}
	select {
	case <-done:
		t.Fatal("a third notification was sent")
	case <-time.After(100 * time.Millisecond):
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]bool{
		"web-01 asks for its disk key (migration). SIMULATED evidence.": true,
		"db-01 asks for its disk key (platform change).":                true,
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected notification %q", g)
		}
	}
}
