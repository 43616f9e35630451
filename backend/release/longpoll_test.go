package release

import "testing"

// TestResyncWakesEveryWaitingPoll: a resync (events may have been lost)
// wakes the polls of every request, so each re-reads its request instead
// of waiting out its whole wait for a wake-up that will never come; the
// count of waiting polls stays right when the woken polls then leave.
func TestResyncWakesEveryWaitingPoll(t *testing.T) {
	s := &Service{waiters: newPollWaiters(8), notify: func(Event) {}}
	var chans []chan struct{}
	var removes []func()
	for _, id := range []string{"req_a", "req_a", "req_b"} {
		ch, remove, ok := s.waiters.add(id)
		if !ok {
			t.Fatal("no place to wait")
		}
		chans, removes = append(chans, ch), append(removes, remove)
	}
	s.Deliver(Event{Kind: "request", RequestID: "req_other"})
	for i, ch := range chans {
		select {
		case <-ch:
			t.Fatalf("poll %d woken by another request's event", i)
		default:
		}
	}
	s.Deliver(Event{Kind: EventResync})
	for i, ch := range chans {
		select {
		case <-ch:
		default:
			t.Fatalf("poll %d not woken by the resync", i)
		}
	}
	for _, remove := range removes {
		remove()
	}
	if n := s.waiters.waiting(); n != 0 {
		t.Fatalf("%d polls counted as waiting after all left", n)
	}
	if _, _, ok := s.waiters.add("req_c"); !ok {
		t.Fatal("no place to wait after the resync")
	}
}
