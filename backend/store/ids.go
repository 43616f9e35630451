package store

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// NewID makes a random identifier with the given prefix, e.g. "img_3f9a…".
// Eighty random bits make collisions irrelevant at any fleet size.
func NewID(prefix string) string {
	var b [10]byte
	rand.Read(b[:]) // never returns an error (crypto/rand since Go 1.24)
	return prefix + "_" + hex.EncodeToString(b[:])
}

// Time formats t the way every table stores times: UTC, RFC 3339 with
// nanoseconds, so that text order is time order.
func Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00") }

// ParseTime reads a time written by Time.
func ParseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }
