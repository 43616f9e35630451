package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
	"keyholder/internal/servertest"
)

func newTestServer(t *testing.T) (*httptest.Server, *store.DB, *Hub) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.Location(t, t.TempDir()), store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	hub := NewHub()
	svcs := New(ctx, Config{Version: "test", DataDir: "/data/for/test", Mode: "web"}, db, hub)
	assets := fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>Keyholder</title>")}, "assets/app.js": {Data: []byte("console.log(1)")}}
	h, err := NewHandler(svcs, HandlerOptions{Assets: assets, Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, db, hub
}

func call(t *testing.T, srv *httptest.Server, path, body string, hdr map[string]string) (int, map[string]json.RawMessage) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Keyholder-Client", "1")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]json.RawMessage
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func TestCallReturnsStoreData(t *testing.T) {
	srv, db, _ := newTestServer(t)
	now := store.Time(time.Now())
	mustExec(t, db, `INSERT INTO images(id, name, created_at) VALUES ('img_1', 'web-01', ?)`, now)
	mustExec(t, db, `INSERT INTO vms(id, name, image_id, status, product, chip_id, tcb, created_at, last_evidence_at, simulated)
		VALUES ('vm-a', 'alpha', 'img_1', 'verified', 'Milan', 'abcd', '{"bootloader":3,"tee":0,"snp":8,"microcode":115}', ?, ?, 1),
		       ('vm-b', 'beta', 'img_1', 'failing', 'Genoa', 'ef01', '{}', ?, NULL, 0)`, now, now, now)

	status, out := call(t, srv, "/api/call/Fleet/List", `[{"status":"verified"}]`, nil)
	if status != 200 {
		t.Fatalf("Fleet.List status %d: %s", status, out["error"])
	}
	var guests []struct {
		ID        string `json:"id"`
		ImageName string `json:"image_name"`
		Simulated bool   `json:"simulated"`
		TCB       struct {
			SNP int `json:"snp"`
		} `json:"tcb"`
	}
	json.Unmarshal(out["result"], &guests)
	if len(guests) != 1 || guests[0].ID != "vm-a" || guests[0].ImageName != "web-01" || !guests[0].Simulated || guests[0].TCB.SNP != 8 {
		t.Fatalf("Fleet.List(verified) = %s", out["result"])
	}

	status, out = call(t, srv, "/api/call/Fleet/Summary", `[]`, nil)
	var sum struct {
		Total    int            `json:"total"`
		ByStatus map[string]int `json:"by_status"`
	}
	json.Unmarshal(out["result"], &sum)
	if status != 200 || sum.Total != 2 || sum.ByStatus["failing"] != 1 || sum.ByStatus["pending"] != 0 {
		t.Fatalf("Fleet.Summary = %d %s", status, out["result"])
	}

	status, out = call(t, srv, "/api/call/Console/Info", ``, nil)
	if status != 200 || !strings.Contains(string(out["result"]), `"data_dir":"/data/for/test"`) {
		t.Fatalf("Console.Info = %d %s", status, out["result"])
	}
}

func TestCallRefusals(t *testing.T) {
	srv, _, _ := newTestServer(t)
	cases := []struct {
		name, path, body string
		hdr              map[string]string
		status           int
		code             string
	}{
		{"no client header (cross-site form)", "/api/call/Fleet/Summary", `[]`, map[string]string{"X-Keyholder-Client": ""}, 403, "forbidden"},
		{"foreign origin", "/api/call/Fleet/Summary", `[]`, map[string]string{"Origin": "https://evil.example"}, 403, "forbidden"},
		{"unknown method", "/api/call/Fleet/Explode", `[]`, nil, 404, "not_found"},
		{"unknown service", "/api/call/Nope/List", `[]`, nil, 404, "not_found"},
		{"not an array", "/api/call/Fleet/List", `{"status":"x"}`, nil, 400, "invalid"},
		{"too many args", "/api/call/Fleet/List", `[{}, {}]`, nil, 400, "invalid"},
		{"unknown field", "/api/call/Fleet/List", `[{"statuz":"x"}]`, nil, 400, "invalid"},
		{"wrong type", "/api/call/Fleet/List", `[{"limit":"ten"}]`, nil, 400, "invalid"},
		{"too large", "/api/call/Fleet/List", `[{"search":"` + strings.Repeat("a", MaxRequestBody) + `"}]`, nil, 413, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out := call(t, srv, c.path, c.body, c.hdr)
			var e Error
			json.Unmarshal(out["error"], &e)
			if status != c.status || string(e.Code) != c.code || e.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", status, e, c.status, c.code)
			}
		})
	}
	// GET on a call endpoint is refused too.
	res, err := http.Get(srv.URL + "/api/call/Fleet/Summary")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET call: %d", res.StatusCode)
	}
}

func TestHostHeaderIsChecked(t *testing.T) {
	srv, _, _ := newTestServer(t)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Host = "attacker.example:8420" // DNS rebinding: a foreign name resolving to loopback
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: %d, want 421", res.StatusCode)
	}
}

func TestAssetsAndClientRoutes(t *testing.T) {
	srv, _, _ := newTestServer(t)
	for _, p := range []string{"/", "/fleet", "/approvals/req_1"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), "<title>Keyholder</title>") {
			t.Fatalf("GET %s: %d %q", p, res.StatusCode, b)
		}
		if res.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("GET %s: no CSP", p)
		}
	}
}

func TestEventsStream(t *testing.T) {
	srv, _, hub := newTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	buf := make([]byte, 4096)
	n, _ := res.Body.Read(buf) // the greeting comment: the subscription is live
	if !strings.HasPrefix(string(buf[:n]), ":") {
		t.Fatalf("greeting %q", buf[:n])
	}
	hub.Emit(EventFleetChanged, map[string]string{"id": "vm-a"})
	var got string
	for !strings.Contains(got, "\n\n") {
		n, err := res.Body.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:n])
	}
	if !strings.Contains(got, `data: {"seq":1,"name":"fleet:changed","data":{"id":"vm-a"}}`) {
		t.Fatalf("event frame %q", got)
	}
}

func TestWailsErrorFormat(t *testing.T) {
	// The Wails transport parses "code: message" back into an ApiError.
	e := Errorf(CodeNotFound, "volume %s does not exist", "vol_1")
	if e.Error() != "not_found: volume vol_1 does not exist" {
		t.Fatal(e.Error())
	}
}

func mustExec(t *testing.T, db *store.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

// The console's listener cuts off clients that send or read slowly: every
// timeout and the header limit are set (issue 12, item 2); the event
// stream extends its write deadline itself (TestEventStreamFollowsItsSession).
func TestServerIsBounded(t *testing.T) {
	srv := NewServer(http.NotFoundHandler())
	servertest.Bounded(t, srv)
}
