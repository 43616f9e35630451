package store

import (
	"fmt"
	"testing"
)

func TestConfigCache(t *testing.T) {
	var c ConfigCache[string]
	if _, ok := c.Get("img", 3); ok {
		t.Fatal("an empty cache hit")
	}
	c.Put("img", 3, "v3")
	if v, ok := c.Get("img", 3); !ok || v != "v3" {
		t.Fatalf("Get(img, 3) = %q, %v", v, ok)
	}
	if _, ok := c.Get("img", 4); ok {
		t.Fatal("an entry read at version 3 served version 4")
	}
	if _, ok := c.Get("img", 0); ok {
		t.Fatal("an unknown version (0) hit")
	}
	c.Put("img", 0, "unknown")
	if _, ok := c.Get("img", 0); ok {
		t.Fatal("an entry put at version 0 hit")
	}
	for i := range maxConfigEntries + 1 {
		c.Put(fmt.Sprint("image-", i), 5, "x")
	}
	if len(c.m) > maxConfigEntries {
		t.Fatalf("the cache holds %d entries, bound %d", len(c.m), maxConfigEntries)
	}
}
