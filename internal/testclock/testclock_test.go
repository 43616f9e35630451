package testclock

import (
	"sync"
	"testing"
	"time"
)

func TestClockMovesOnlyWhenAdvanced(t *testing.T) {
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	c := New(t0)
	if !c.Now().Equal(t0) || !c.Now().Equal(t0) {
		t.Fatalf("Now = %v, want %v", c.Now(), t0)
	}
	c.Advance(90 * time.Second)
	c.Advance(-30 * time.Second)
	if want := t0.Add(time.Minute); !c.Now().Equal(want) {
		t.Fatalf("after advancing: %v, want %v", c.Now(), want)
	}
}

func TestClockConcurrentUse(t *testing.T) {
	c := New(time.Unix(0, 0))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				c.Advance(time.Second)
				_ = c.Now()
			}
		}()
	}
	wg.Wait()
	if got := c.Now().Unix(); got != 800 {
		t.Fatalf("after 800 advances of 1 s: %d s", got)
	}
}
