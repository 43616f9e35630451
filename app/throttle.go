package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"keyholder/backend/audit"
)

// Login throttling per source address. custody throttles per officer (and
// reserves the attempt in the store before its passphrase check runs);
// this limiter covers the source: unknown officer names, many officers
// tried from one address, and KDFs run at once by one address.
const (
	// maxKDFPerSource is how many passphrase checks one address may have
	// running at once.
	maxKDFPerSource = 2
	// sourceFreeAttempts wrong passphrases from one address cost nothing
	// extra; after that each failure doubles the wait, up to
	// sourceMaxBackoff.
	sourceFreeAttempts = 5
	sourceMaxBackoff   = 15 * time.Minute
	// maxSources bounds the table; the oldest idle entries are dropped.
	maxSources = 4096
)

type loginLimiter struct {
	mu      sync.Mutex
	sources map[string]*sourceState
}

type sourceState struct {
	inFlight int
	failures int
	nextTry  time.Time
	seen     time.Time
}

func newLoginLimiter() *loginLimiter { return &loginLimiter{sources: map[string]*sourceState{}} }

func sourceBackoff(failures int) time.Duration {
	if failures < sourceFreeAttempts {
		return 0
	}
	n := failures - sourceFreeAttempts
	if n > 20 {
		return sourceMaxBackoff
	}
	return min(time.Second<<n, sourceMaxBackoff)
}

// reserve takes an attempt for source before its passphrase check runs,
// or refuses (the source waits after failures, or has too many checks in
// flight). The attempt counts as failed until done reports success, so
// concurrent attempts see each other. done must be called once.
func (l *loginLimiter) reserve(source string, now time.Time) (done func(ok bool, now time.Time), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.sources[source]
	if st == nil {
		if len(l.sources) >= maxSources {
			l.pruneLocked(now)
		}
		st = &sourceState{}
		l.sources[source] = st
	}
	st.seen = now
	switch {
	case now.Before(st.nextTry):
		return nil, &Error{Code: CodeUnauthorized, Message: fmt.Sprintf("too many wrong passphrases from this address; try again in %s", st.nextTry.Sub(now).Round(time.Second))}
	case st.inFlight >= maxKDFPerSource:
		// A burst counts against the address like failures do.
		st.failures++
		if d := sourceBackoff(st.failures); d > 0 {
			st.nextTry = now.Add(d)
		}
		return nil, &Error{Code: CodeUnauthorized, Message: "too many logins at once from this address; try again in a moment"}
	}
	st.inFlight++
	st.failures++
	if d := sourceBackoff(st.failures); d > 0 {
		st.nextTry = now.Add(d)
	}
	var once sync.Once
	return func(ok bool, now time.Time) {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			st.inFlight--
			if ok {
				st.failures, st.nextTry = 0, time.Time{}
			}
		})
	}, nil
}

// pruneLocked drops sources with nothing in flight and no wait pending,
// then, if still full, the least recently seen idle ones. l.mu held.
func (l *loginLimiter) pruneLocked(now time.Time) {
	var oldest string
	for k, st := range l.sources {
		if st.inFlight == 0 && !now.Before(st.nextTry) {
			delete(l.sources, k)
			continue
		}
		if st.inFlight == 0 && (oldest == "" || st.seen.Before(l.sources[oldest].seen)) {
			oldest = k
		}
	}
	if len(l.sources) >= maxSources && oldest != "" {
		delete(l.sources, oldest)
	}
}

// auditSession records a session change made by an admin.
func (s *Session) auditSession(ctx context.Context, admin, action, subject, reason string) {
	if _, err := s.custody.AuditLog().AppendDB(ctx, audit.Entry{At: s.now(), Actor: "officer:" + admin, Action: action, Subject: subject, Decision: "ok", Reason: reason}); err != nil {
		s.log.Warn("audit session change", "err", err)
	}
}
