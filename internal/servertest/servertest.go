// Package servertest holds the checks that the console's HTTP listeners
// share in their tests.
package servertest

import (
	"net/http"
	"testing"
	"time"
)

// Bounded fails t unless srv cuts off clients that send or read slowly:
// every timeout set, the header timeout within the read timeout, and a
// header limit of at most 64 KiB (issue 12, item 2).
func Bounded(t testing.TB, srv *http.Server) {
	t.Helper()
	for name, v := range map[string]time.Duration{"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout} {
		if v <= 0 {
			t.Errorf("%s is not set", name)
		}
	}
	if srv.ReadHeaderTimeout > srv.ReadTimeout {
		t.Errorf("ReadHeaderTimeout %s exceeds ReadTimeout %s", srv.ReadHeaderTimeout, srv.ReadTimeout)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes %d", srv.MaxHeaderBytes)
	}
}
