package diskimage

import (
	"sync"
	"testing"
)

// TestHashQueueOrder: chunks handed in by many workers in any order are
// hashed exactly once each, in sequence order, each before its worker
// goes on.
func TestHashQueueOrder(t *testing.T) {
	const workers, chunks = 6, 3000
	var order []int64
	hashedAt := make([]bool, chunks)
	q := newHashQueue(workers, func(h *hashed) {
		order = append(order, h.seq) // only the current hasher runs fn
		hashedAt[h.seq] = true
	})
	jobs := make(chan int64)
	var wg sync.WaitGroup
	var bad sync.Map
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := &hashed{done: make(chan struct{}, 1)}
			for seq := range jobs {
				h.seq = seq
				q.hash(h)
				if !hashedAt[seq] {
					bad.Store(seq, true)
				}
			}
		}()
	}
	for i := int64(0); i < chunks; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	bad.Range(func(k, _ any) bool { t.Errorf("chunk %v returned before it was hashed", k); return false })
	if len(order) != chunks {
		t.Fatalf("%d chunks hashed, want %d", len(order), chunks)
	}
	for i, s := range order {
		if s != int64(i) {
			t.Fatalf("hash order %d at %d", s, i)
		}
	}
}

// TestHashQueueSubmitDoesNotWait: a chunk that is not next is left waiting
// and submit returns at once (its worker writes meanwhile); the worker
// whose chunk is next hashes both, in order, and signals the other.
func TestHashQueueSubmitDoesNotWait(t *testing.T) {
	var order []int64
	q := newHashQueue(2, func(h *hashed) { order = append(order, h.seq) })
	later := &hashed{seq: 1, done: make(chan struct{}, 1)}
	if q.submit(later) {
		t.Fatal("chunk 1 was hashed before chunk 0")
	}
	select {
	case <-later.done:
		t.Fatal("chunk 1 signalled before it was hashed")
	default:
	}
	first := &hashed{seq: 0, done: make(chan struct{}, 1)}
	if !q.submit(first) {
		t.Fatal("chunk 0, the next one, was not hashed by its own worker")
	}
	select {
	case <-later.done:
	default:
		t.Fatal("chunk 1 waiting was not hashed after chunk 0")
	}
	if len(order) != 2 || order[0] != 0 || order[1] != 1 {
		t.Fatalf("hash order %v, want [0 1]", order)
	}
}

// hash returns once h was hashed (by this goroutine or another): a worker
// that writes nothing beside the hashing.
func (q *hashQueue) hash(h *hashed) {
	if !q.submit(h) {
		<-h.done
	}
}
