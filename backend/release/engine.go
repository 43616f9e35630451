package release

import (
	"context"
	"crypto/hpke"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/fleet"
	"keyholder/backend/release/wire"
	"keyholder/backend/store"
)

// Verifier checks a guest's evidence against the reference values of
// image.ID ("" when the volume has no image: authenticity only, which the
// engine then treats as unverified) and the transcript hash expected in
// REPORT_DATA. A refusal is Claims.Verified false with reasons; an error
// means the check could not be made at all.
type Verifier interface {
	Verify(ctx context.Context, ev wire.Evidence, image ImageRef, expected [64]byte) (Claims, error)
	// AKDigest returns the SHA-256 of the vTPM attestation key the evidence
	// carries (nil without a vTPM attestation); the transcript binds it.
	AKDigest(ev wire.Evidence) []byte
}

// ImageRef names the image whose reference values a verification applies, and
// the configuration version (store.ConfigVersionSQL) the engine read with
// the request's volume: reference values read at that version may be
// reused. ConfigVersion 0 means unknown (read afresh).
type ImageRef struct {
	ID            string
	ConfigVersion int64
	// RefuseStaleCRL refuses evidence whose revocation cannot be checked
	// (Policy.StaleCRL "refuse"); otherwise that is a warning.
	RefuseStaleCRL bool
}

// Secrets is the part of the key service the engine uses
// (*custody.Service implements it). Every call runs in the engine's
// transaction so that a release and its audit entry commit together.
type Secrets interface {
	// ReleaseSecretTx unwraps one generation's secret; the caller wipes it.
	ReleaseSecretTx(ctx context.Context, tx *sql.Tx, volumeID string, generation int) ([]byte, error)
	// CurrentGenerationTx returns the current and the pending (0: none) generation.
	CurrentGenerationTx(ctx context.Context, tx *sql.Tx, volumeID string) (current, pending int, err error)
	// RotateTx makes a pending generation N+1.
	RotateTx(ctx context.Context, tx *sql.Tx, actor, volumeID string) (int, error)
	// ConfirmRotationTx makes a pending generation current.
	ConfirmRotationTx(ctx context.Context, tx *sql.Tx, actor, volumeID string, generation int) error
	// AuditLog is the console's audit log, which the engine appends its
	// decisions to (signed while the key service is unlocked).
	AuditLog() *audit.Log
	// ChallengeKey MACs the challenges (challenges.go).
	ChallengeKey
}

// generationQueuer is what a Secrets may implement to read a volume's
// generations together with other statements (*custody.Service does):
// the engine then reads them in the batch it reads the guest's history in.
type generationQueuer interface {
	QueueCurrentGeneration(b *store.Batch, volumeID string) func() (current, pending int, err error)
}

// secretQueuer is what a Secrets may implement to read a generation's
// wrapped secret together with other statements (*custody.Service does);
// the returned function unwraps it as ReleaseSecretTx would.
type secretQueuer interface {
	QueueReleaseSecret(b *store.Batch, volumeID string, generation int) func() ([]byte, error)
}

// Errors that officers' calls branch on.
var (
	ErrNotPending      = errors.New("the request is no longer waiting for a decision")
	ErrExpired         = errors.New("the request expired")
	ErrAlreadyApproved = errors.New("this officer has approved the request already")
	ErrReauthenticate  = errors.New("approving needs a recent authentication; sign in again")
	ErrNoOfficer       = errors.New("no officer named")
	// ErrReasonRequired: a denial must say why; the reason goes into the
	// request, the guest's history and the audit entry.
	ErrReasonRequired = errors.New("a denial needs a reason: say why the request is refused (it goes into the audit log)")
)

// Event tells the UI what changed; Notify receives it after the commit.
type Event struct {
	Kind      string // "fleet", "request" or EventResync
	VMID      string
	RequestID string
}

// EventResync is the kind of an event that says others may have been lost
// (a replica's listener reconnected, and notifications sent meanwhile never
// reached it): officers' views reload, and every waiting guest's poll
// re-reads its request.
const EventResync = "resync"

// Config is what the engine needs.
type Config struct {
	DB *store.DB
	// Verifier checks evidence; nil gives an officer-side engine (list,
	// approve, deny, expire) whose release and heartbeat calls answer
	// unavailable.
	Verifier Verifier
	Secrets  Secrets
	// ChallengeTTL is how long a challenge is valid; zero means 60 s.
	ChallengeTTL time.Duration
	// Now is the clock; nil means the database's clock.
	Now func() time.Time
	// Notify is called after each committed change; nil ignores them.
	Notify func(Event)
	// MaxAuthAge is how recently an approver must have authenticated; zero
	// means 5 minutes.
	MaxAuthAge time.Duration
	Log        *slog.Logger
	// MaxInService, when positive, bounds the releases and heartbeats being
	// decided at once (admitted: verifying, waiting for their group commit,
	// sealing); the others wait for admission in arrival order. Zero means
	// no bound: requests wait for a processor slot (in arrival order, those
	// sealing an answer first) instead. Under a boot storm a bound of a few
	// dozen shrinks the committer's batches and costs throughput.
	MaxInService int
	// ServiceTime, when set, receives the service time of each release or
	// heartbeat that got as far as verifying its evidence: from the moment
	// it got a processor slot to verify until its answer is ready (the
	// decision durable, the secrets sealed). The wait before that slot
	// (under a storm, most of a caller's latency) is excluded.
	ServiceTime func(time.Duration)
	// MaxWaiting bounds the releases and heartbeats waiting for a processor
	// slot to verify their evidence; a request beyond it is answered
	// unavailable (HTTP 503 with Retry-After) at once instead of holding its
	// evidence in memory in a queue that grows. Zero means 1024.
	MaxWaiting int
	// Committers, on PostgreSQL, is how many batches of decisions the
	// engine runs at once (commit.go); zero means 2. On SQLite, whose
	// writes are serial, there is one.
	Committers int
	// MaxPollWaiters bounds the guests' polls waiting for their request to
	// change (PollWait); a poll beyond it is answered at once. Zero means
	// 4096.
	MaxPollWaiters int
}

// Service is the release engine. It is safe for concurrent use.
type Service struct {
	db         *store.DB
	verifier   Verifier
	secrets    Secrets
	audit      *audit.Log // secrets.AuditLog()
	challenges *Challenges
	now        func() time.Time
	notify     func(Event)
	publish    func(Event)                // to the other replicas (SetBroadcast)
	lead       func(context.Context) bool // may this replica run the periodic jobs (SetJobLease)
	authAge    time.Duration
	log        *slog.Logger

	mu         sync.Mutex
	listenAddr string
	pin        string

	policies store.ConfigCache[Policy] // policyAt's, by image

	// admit bounds the requests in service (Config.MaxInService); a
	// goroutine blocked sending waits in arrival order.
	admit       chan struct{}
	serviceTime func(time.Duration)
	// cpu bounds the goroutines doing public-key work (cpuslots.go).
	cpu  *cpuSlots
	jobs chan *job
	// deferAudit (PostgreSQL): the committers' batches append their
	// decisions' audit entries at their end (appendAudit). batches maps
	// each running batch's transaction to its entries (*batchAudit).
	deferAudit bool
	batches    sync.Map
	// committers is how many batches run at once: 1 on SQLite (one
	// writer), more on PostgreSQL (commit.go).
	committers int
	// reads bounds, on PostgreSQL, the requests reading their volume and
	// policy before they verify (nil: no bound). Under a storm every
	// request in flight would otherwise hold a connection, and the
	// server would run dozens of backends at once on a few processors;
	// it serves a handful faster than many (bench release: 2 replicas on
	// 2 cores, about half again the throughput with 2 places than with a
	// connection each).
	reads          chan struct{}
	startCommitter sync.Once
	closed         chan struct{}
	closeOnce      sync.Once
	// waiters are the guests' polls waiting for their request to change.
	waiters *pollWaiters
}

// OnEvent replaces the function that receives events after each commit.
// Call it before serving.
func (s *Service) OnEvent(fn func(Event)) {
	if fn == nil {
		fn = func(Event) {}
	}
	s.mu.Lock()
	s.notify = fn
	s.mu.Unlock()
}

func (s *Service) emit(ev Event) {
	s.deliver(ev)
	s.mu.Lock()
	pub := s.publish
	s.mu.Unlock()
	if pub != nil {
		pub(ev)
	}
}

func (s *Service) deliver(ev Event) {
	switch {
	case ev.Kind == "request" && ev.RequestID != "":
		s.waiters.wake(ev.RequestID)
	case ev.Kind == EventResync:
		s.waiters.wakeAll()
	}
	s.mu.Lock()
	fn := s.notify
	s.mu.Unlock()
	fn(ev)
}

// SetJobLease makes RunExpiry run its jobs only while lead reports that
// this replica holds the jobs' lease, so that replicas on one database
// expire requests once, not each.
func (s *Service) SetJobLease(lead func(context.Context) bool) {
	s.mu.Lock()
	s.lead = lead
	s.mu.Unlock()
}

// SetBroadcast hands every event that happens in this process to publish
// as well (replicas: the other console processes on the database).
func (s *Service) SetBroadcast(publish func(Event)) {
	s.mu.Lock()
	s.publish = publish
	s.mu.Unlock()
}

// Deliver takes an event that happened in another replica: guests waiting
// here for that request wake up and OnEvent's function sees it, but it is
// not broadcast again.
func (s *Service) Deliver(ev Event) { s.deliver(ev) }

// SetListener records where the release API listens and its SPKI pin, for
// the UI (Settings) and image manifests.
func (s *Service) SetListener(addr, pin string) {
	s.mu.Lock()
	s.listenAddr, s.pin = addr, pin
	s.mu.Unlock()
}

// Listener returns the address and pin SetListener recorded ("" when the
// release API is not served by this process).
func (s *Service) Listener() (addr, pin string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listenAddr, s.pin
}

// New returns an engine over cfg.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Secrets == nil {
		return nil, errors.New("release engine needs a database and a key service")
	}
	var admit chan struct{}
	if cfg.MaxInService > 0 {
		admit = make(chan struct{}, cfg.MaxInService)
	}
	if cfg.MaxWaiting <= 0 {
		cfg.MaxWaiting = 1024
	}
	if cfg.MaxPollWaiters <= 0 {
		cfg.MaxPollWaiters = 4096
	}
	s := &Service{db: cfg.DB, verifier: cfg.Verifier, secrets: cfg.Secrets, audit: cfg.Secrets.AuditLog(), now: cfg.Now,
		notify: cfg.Notify, authAge: cfg.MaxAuthAge, log: cfg.Log, jobs: make(chan *job, 1024), closed: make(chan struct{}),
		deferAudit: cfg.DB != nil && cfg.DB.Dialect() == store.Postgres, committers: 1,
		cpu: newCPUSlots(runtime.GOMAXPROCS(0), cfg.MaxWaiting), admit: admit, serviceTime: cfg.ServiceTime,
		waiters: newPollWaiters(cfg.MaxPollWaiters)}
	if s.deferAudit {
		s.committers = pgCommitters
		s.reads = make(chan struct{}, pgReaders)
		if cfg.Committers > 0 {
			s.committers = cfg.Committers
		}
	}
	if s.now == nil {
		s.now = cfg.DB.Now
	}
	s.challenges = NewChallenges(cfg.Secrets, cfg.ChallengeTTL, s.now)
	if s.notify == nil {
		s.notify = func(Event) {}
	}
	if s.authAge <= 0 {
		s.authAge = 5 * time.Minute
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// admission is one request's place in service.
type admission struct {
	held    bool      // it holds a place (Config.MaxInService)
	started time.Time // it got its first processor slot
}

// enter waits for a place in service (in arrival order), when the number
// in service is bounded.
func (s *Service) enter(ctx context.Context, a *admission) error {
	if s.admit == nil {
		return nil
	}
	select {
	case s.admit <- struct{}{}:
		a.held = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave gives the place up and reports the service time; the owner calls
// it once its answer is ready.
func (s *Service) leave(a *admission) {
	if a.held {
		a.held = false
		<-s.admit
	}
	if s.serviceTime != nil && !a.started.IsZero() {
		s.serviceTime(time.Since(a.started))
	}
}

// startRead waits for one of the places of the requests that read before
// their decision (PostgreSQL, see Service.reads); endRead gives it back.
func (s *Service) startRead(ctx context.Context) error {
	if s.reads == nil {
		return nil
	}
	select {
	case s.reads <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) endRead() {
	if s.reads != nil {
		<-s.reads
	}
}

// acquireCPU waits for a processor slot at priority prio (cpuslots.go);
// releaseCPU gives it back.
func (s *Service) acquireCPU(ctx context.Context, prio int) error {
	return s.cpu.acquire(ctx, prio)
}

func (s *Service) releaseCPU() { s.cpu.release() }

// Challenge issues a nonce for one release or heartbeat. It keeps nothing:
// the nonce carries its expiry and a MAC (challenges.go). Limits on who may
// ask how often are the handler's.
func (s *Service) Challenge() (*wire.Challenge, error) {
	n, exp, err := s.challenges.Issue()
	if err != nil {
		return nil, s.internal("issue challenge", err)
	}
	return &wire.Challenge{Nonce: n, ExpiresAt: exp}, nil
}

// volumeInfo is the volume row as the engine reads it.
type volumeInfo struct {
	exists  bool
	imageID string
	status  string
	// config is the configuration version read with the volume (0 when
	// the volume does not exist).
	config int64
}

func readVolume(ctx context.Context, q fleet.Queryer, id string) (volumeInfo, error) {
	var v volumeInfo
	err := q.QueryRowContext(ctx, `SELECT COALESCE(image_id, ''), status, `+store.ConfigVersionSQL+` FROM volumes WHERE id = ?`, id).
		Scan(&v.imageID, &v.status, &v.config)
	if errors.Is(err, sql.ErrNoRows) {
		return v, nil
	}
	if err != nil {
		return v, fmt.Errorf("read volume %s: %w", id, store.Classify(err))
	}
	v.exists = true
	return v, nil
}

func refusal(code wire.Code, msg string) *wire.Error { return &wire.Error{Code: code, Message: msg} }

// internal logs err and returns the generic refusal the guest sees.
func (s *Service) internal(op string, err error) *wire.Error {
	if errors.Is(err, store.ErrBusy) {
		return refusal(wire.CodeUnavailable, "the console is busy; retry shortly")
	}
	if errors.Is(err, custody.ErrLocked) {
		return refusal(wire.CodeUnavailable, "the console's key service is locked; an officer must unlock it")
	}
	s.log.Error("release engine", "op", op, "err", err)
	return refusal(wire.CodeInternal, "the console could not decide; its log has the details")
}

func guestActor(vmID string) string { return "guest:" + vmID }

// Release decides a release request (purpose boot or rotate). It returns a
// released or pending answer, or a *wire.Error for every refusal.
func (s *Service) Release(ctx context.Context, req *wire.ReleaseRequest) (*wire.Release, error) {
	return s.release(ctx, req, nil)
}

// vmGate refuses a request for its VM ID, or returns nil.
type vmGate func(vmID string) *wire.Error

func (s *Service) release(ctx context.Context, req *wire.ReleaseRequest, gate vmGate) (*wire.Release, error) {
	if err := req.Check(); err != nil {
		return nil, refusal(wire.RefusalCode(err), err.Error())
	}
	if req.Purpose == wire.PurposeHeartbeat {
		return nil, refusal(wire.CodeBadRequest, "heartbeats go to /v1/heartbeat")
	}
	var out *wire.Release
	var ts *toSeal
	var adm admission
	defer s.leave(&adm)
	werr := s.decide(ctx, req, &adm, gate, func(ctx context.Context, tx *sql.Tx, d decided) (*wire.Error, error) {
		ts.wipe() // a batch retried the decision
		r, t, werr, err := s.act(ctx, tx, req, d)
		out, ts = r, t
		return werr, err
	})
	if werr != nil {
		ts.wipe()
		return nil, werr
	}
	if ts != nil {
		if err := s.acquireCPU(ctx, prioFinish); err != nil {
			ts.wipe()
			return nil, refusal(wire.CodeUnavailable, "the request was cancelled")
		}
		err := ts.seal(out)
		s.releaseCPU()
		if err != nil {
			return nil, s.internal("seal", err)
		}
	}
	return out, nil
}

// decided is everything known once the evidence is checked.
type decided struct {
	reqID     string
	now       time.Time
	evHash    string
	expected  [64]byte
	claims    Claims
	authentic bool
	vol       volumeInfo
	hist      fleet.History
	current   int
	pending   int
	policy    Policy
	decision  Decision
	gen       int // the generation to release
	// secret, if not nil, unwraps the secret of the generation the
	// request named, read with the guest's history.
	secret func() ([]byte, error)
}

// decide runs the common part of releases and heartbeats: nonce, evidence,
// what the console knows, classification; then act inside the transaction
// (with the context its statements run under, see stmtContext). Refusals are
// recorded and audited here.
//
// After the nonce the request waits for admission (adm, which the caller
// leaves once its answer is ready); after the evidence, gate (nil: none)
// may refuse it for its VM (the handler's per-VM rate limit: only authentic
// evidence, which binds the VM ID, counts against a VM).
func (s *Service) decide(ctx context.Context, req *wire.ReleaseRequest, adm *admission, gate vmGate, act func(context.Context, *sql.Tx, decided) (*wire.Error, error)) *wire.Error {
	d := decided{reqID: store.NewID("req"), now: s.now(), evHash: wire.EvidenceHash(req.Evidence)}
	sctx := stmtContext(ctx)
	var err error
	if s.verifier == nil {
		return refusal(wire.CodeUnavailable, "this console does not serve releases")
	}
	// The challenge is checked first, without storage: a request without a
	// valid one is junk. It is refused without a trace in the fleet or the
	// audit log (the handler counts it per source and audits the counts)
	// and never counts against the VM it names.
	exp, err := s.challenges.Check(req.Nonce)
	if err != nil {
		if !errors.Is(err, ErrNonceUnknown) {
			return s.internal("check challenge", err)
		}
		return nonceRefusal()
	}
	// Used up in this process first (a replay racing the first use costs
	// no verification), then in the decision's transaction (the database
	// refuses a second use by any console process).
	if !s.challenges.claim(req.Nonce, exp) {
		return nonceRefusal()
	}
	var ak []byte
	if len(req.Evidence.TPM) > 0 {
		ak = s.verifier.AKDigest(req.Evidence)
	}
	d.expected, err = wire.Transcript(req.Binding(ak))
	if err != nil {
		return refusal(wire.CodeBadRequest, err.Error())
	}
	if err := s.enter(ctx, adm); err != nil {
		return refusal(wire.CodeUnavailable, "the request was cancelled")
	}
	if err := s.startRead(ctx); err != nil {
		return refusal(wire.CodeUnavailable, "the request was cancelled")
	}
	d.vol, err = readVolume(sctx, s.db, req.VolumeID)
	if err == nil {
		// The policy before the evidence: it says what a stale CRL does.
		d.policy, err = s.policyAt(sctx, d.vol.imageID, d.vol.config)
		if err != nil {
			err = fmt.Errorf("read policy: %w", err)
		}
	}
	s.endRead()
	if err != nil {
		return s.internal("read volume", err)
	}
	if err := s.acquireCPU(ctx, prioStart); err != nil {
		if errors.Is(err, errQueueFull) {
			return refusal(wire.CodeUnavailable, "the console is busy; retry shortly")
		}
		return refusal(wire.CodeUnavailable, "the request was cancelled")
	}
	adm.started = time.Now() // service time runs from here
	// The slot is given back even if the verifier panics (the HTTP server
	// recovers the panic; a slot kept would stop every later release).
	d.claims, err = func() (Claims, error) {
		defer s.releaseCPU()
		return s.verifier.Verify(ctx, req.Evidence, ImageRef{ID: d.vol.imageID, ConfigVersion: d.vol.config,
			RefuseStaleCRL: d.policy.StaleCRL == StaleCRLRefuse}, d.expected)
	}()
	if err != nil {
		return s.internal("verify evidence", err)
	}
	d.authentic = d.claims.Authentic && subtle.ConstantTimeCompare(d.claims.ReportData[:], d.expected[:]) == 1
	// Only authentic evidence counts against the VM it names (wire
	// version 2 binds the VM ID into REPORT_DATA): challenges are free to
	// anyone, and a stranger's forged requests must not spend a guest's
	// allowance.
	if gate != nil && d.authentic {
		if werr := gate(req.VMID); werr != nil {
			return werr
		}
	}
	var werr *wire.Error
	replayed := false
	// What the decision reads to decide and writes: the VM's rows (its
	// history, launches, requests), the volume's (generations, first-boot
	// claims, its other VMs), the challenge, the launch's report ID (seen
	// on another VM?) and the evidence (seen before?). On PostgreSQL the
	// group commit holds these keys' locks instead of the writer lock, so
	// replicas decide for different guests at once (commit.go).
	keys := []string{"vm:" + req.VMID, "volume:" + req.VolumeID, "challenge:" + string(req.Nonce), "evidence:" + d.evHash}
	if d.claims.ReportID != "" {
		keys = append(keys, "launch:"+d.claims.ReportID)
	}
	err = s.txKeyed(ctx, keys, func(tx *sql.Tx) error {
		ctx := sctx
		// The nonce, the guest's history and the evidence together (on
		// PostgreSQL one round trip, see store.Batch); what was read is
		// used only if the nonce was fresh.
		var b store.Batch
		var fresh, seen bool
		queueConsume(&b, req.Nonce, exp, &fresh)
		hist := fleet.QueueLookup(&b, req.VMID, req.VolumeID, d.claims.ChipID, d.claims.Measurement, d.claims.ReportID)
		fleet.QueueEvidenceSeen(&b, d.evHash, &seen)
		var gens func() (int, int, error)
		if q, ok := s.secrets.(generationQueuer); ok && d.vol.exists {
			gens = q.QueueCurrentGeneration(&b, req.VolumeID)
		}
		// A release that names its generation: its secret's row too (only
		// unwrapped if the decision releases it).
		d.secret = nil
		if q, ok := s.secrets.(secretQueuer); ok && d.vol.exists && req.Generation != 0 && req.Purpose != wire.PurposeHeartbeat {
			d.secret = q.QueueReleaseSecret(&b, req.VolumeID, req.Generation)
		}
		if err := store.RunBatch(ctx, tx, &b); err != nil {
			return fmt.Errorf("record used challenge, look up guest: %w", err)
		}
		if replayed = !fresh; replayed {
			return nil
		}
		var err error
		if d.hist, err = hist(); err != nil {
			return err
		}
		if d.vol.exists {
			if gens != nil {
				d.current, d.pending, err = gens()
			} else {
				d.current, d.pending, err = s.secrets.CurrentGenerationTx(ctx, tx, req.VolumeID)
			}
			if err != nil {
				return fmt.Errorf("read generations: %w", err)
			}
		}
		known := Known{
			VMKnown: d.hist.Exists, VMRevoked: d.hist.Revoked, VolumeReleased: d.hist.VolumeReleased,
			VolumeExists: d.vol.exists, VolumeRevoked: d.vol.exists && d.vol.status != "active", CurrentGeneration: d.current,
			EverReleased: d.hist.EverReleased, ChipApproved: d.hist.ChipApproved, MeasurementSeen: d.hist.MeasurementSeen,
			LastTCB: d.hist.ApprovedTCB, ReportIDOtherVM: d.hist.ReportIDOtherVM, ReportIDEarlierLaunch: d.hist.ReportIDEarlierLaunch,
			SameLaunch:   d.hist.SameLaunch,
			EvidenceSeen: seen,
		}
		d.decision = Classify(Ask{Purpose: req.Purpose, VolumeID: req.VolumeID, Generation: req.Generation, Expected: d.expected}, d.claims, known, d.policy)
		d.gen = req.Generation
		if d.gen == 0 {
			d.gen = d.current
		}
		if d.decision.Action == ActionDeny {
			return s.recordRefusal(ctx, tx, req, d)
		}
		werr, err = act(ctx, tx, d)
		return err
	})
	if err != nil {
		return s.internal("decide", err)
	}
	if replayed {
		return nonceRefusal()
	}
	if d.decision.Action == ActionDeny {
		s.emit(Event{Kind: "fleet", VMID: req.VMID})
		return &wire.Error{Code: d.decision.Code, Message: d.decision.Message, Reasons: d.claims.Reasons}
	}
	if werr == nil {
		s.emit(Event{Kind: "fleet", VMID: req.VMID})
		if d.decision.Action == ActionApprove && req.Purpose != wire.PurposeHeartbeat {
			s.emit(Event{Kind: "request", VMID: req.VMID, RequestID: d.reqID})
		}
	}
	return werr
}

// nonceRefusal is the refusal of a request without a valid, unused
// challenge.
func nonceRefusal() *wire.Error {
	return refusal(wire.CodeNonceUnknown, "the nonce is unknown, used or expired; ask for a new challenge")
}

func (s *Service) recordRefusal(ctx context.Context, tx *sql.Tx, req *wire.ReleaseRequest, d decided) error {
	kind, result := "release", fleet.ResultDenied
	if req.Purpose == wire.PurposeHeartbeat {
		kind, result = "heartbeat", fleet.ResultFailing
	}
	o := s.observation(req, d, kind, result)
	o.Status = fleet.Failing
	o.Code, o.Message = string(d.decision.Code), d.decision.Message
	if !d.authentic {
		// Unauthenticated input never changes what the fleet believes: it
		// goes to the VM's history (if the VM exists) and the audit log only.
		o.Authentic, o.Create = false, false
		o.Status = "" // unchanged
	}
	if _, err := fleet.Record(ctx, tx, o); err != nil {
		return err
	}
	action := "release"
	if req.Purpose == wire.PurposeHeartbeat {
		action = "heartbeat"
	}
	err := s.appendAudit(ctx, tx, audit.Entry{At: d.now, Actor: guestActor(req.VMID), Action: action, Subject: req.VolumeID,
		Decision: "denied", Reason: fmt.Sprintf("%s: %s (request %s)", d.decision.Code, d.decision.Message, d.reqID), EvidenceHash: d.evHash})
	return err
}

func (s *Service) observation(req *wire.ReleaseRequest, d decided, kind, result string) fleet.Observation {
	c := d.claims
	return fleet.Observation{
		At: d.now, VMID: req.VMID, VolumeID: req.VolumeID, ImageID: d.vol.imageID, Kind: kind, Result: result,
		Class: string(d.decision.Class), RequestID: d.reqID, EvidenceHash: d.evHash,
		Authentic: d.authentic, Product: c.Product, Signer: c.Signer, ChipID: c.ChipID, Measurement: c.Measurement, ReportID: c.ReportID,
		TCB: c.TCB, Simulated: c.Simulated, Generation: d.gen, HeartbeatEvery: d.policy.Heartbeat(),
		Create: d.authentic && d.vol.exists, Evidence: c.Evidence, Exists: d.hist.Exists,
	}
}

// act carries out a release or approval decision inside the transaction.
// Release checked req (req.Check), its HPKE public key included.
func (s *Service) act(ctx context.Context, tx *sql.Tx, req *wire.ReleaseRequest, d decided) (*wire.Release, *toSeal, *wire.Error, error) {
	switch d.decision.Action {
	case ActionRelease:
		pk, err := req.PublicKey() // parsed by req.Check already
		if err != nil {
			return nil, nil, nil, err
		}
		rel, ts, err := s.releaseTx(ctx, tx, releaseArgs{pk: pk,
			reqID: d.reqID, vmID: req.VMID, volumeID: req.VolumeID, imageID: d.vol.imageID, purpose: req.Purpose,
			gen: d.gen, pub: req.HPKEPublicKey, claims: d.claims, evHash: d.evHash, class: d.decision.Class,
			now: d.now, heartbeat: d.policy.Heartbeat(), reason: "policy releases " + joinClasses(d.decision.Signals),
			pending: d.pending, pendingKnown: true, vmExists: d.hist.Exists,
			chipKnown: d.hist.ChipApproved, measurementKnown: d.hist.MeasurementSeen, secret: d.secret,
		})
		return rel, ts, nil, err
	case ActionApprove:
		if d.claims.Unreferenced {
			if werr, err := claimLimitTx(ctx, tx, req.VolumeID, d.now); werr != nil || err != nil {
				return nil, nil, werr, err
			}
		}
		if err := s.insertPending(ctx, tx, req, d); err != nil {
			return nil, nil, nil, err
		}
		return &wire.Release{RequestID: d.reqID, Status: wire.StatusPending, Class: string(d.decision.Class),
			RetryAfter: 5, ExpiresAt: d.now.Add(d.policy.TTL()), Simulated: d.claims.Simulated}, nil, nil, nil
	}
	return nil, nil, nil, fmt.Errorf("unexpected action %q", d.decision.Action)
}

type releaseArgs struct {
	reqID, vmID, volumeID, imageID string
	purpose                        wire.Purpose
	gen                            int
	pub                            []byte
	claims                         Claims
	evHash                         string
	class                          Class
	now                            time.Time
	heartbeat                      time.Duration
	reason                         string
	actor                          string // who decided; "" for the policy
	// pending is the volume's pending generation when the caller read it
	// in this transaction already (pendingKnown).
	pending      int
	pendingKnown bool
	// vmExists: the caller read in this transaction, holding the VM's
	// key, that its row exists (fleet.Observation.Exists).
	vmExists bool
	// chipKnown, measurementKnown: the VM's chip and measurement are
	// recorded (read with vmExists).
	chipKnown, measurementKnown bool
	// secret, if not nil, unwraps gen's secret (read already).
	secret func() ([]byte, error)
	// pk is pub parsed, when the caller has it (a checked request);
	// otherwise releaseTx parses pub.
	pk hpke.PublicKey
}

// toSeal holds unwrapped secrets between the transaction that decided and
// audited a release and the HPKE sealing, which runs after the commit so
// that the committer (one writer) does no public-key work. Its owner calls
// seal or wipe exactly once.
type toSeal struct {
	pk                hpke.PublicKey
	secret, newSecret []byte
	reqID, volumeID   string
	gen, newGen       int
}

func (t *toSeal) wipe() {
	if t != nil {
		clear(t.secret)
		clear(t.newSecret)
	}
}

// seal seals the secrets into rel and wipes them.
func (t *toSeal) seal(rel *wire.Release) error {
	defer t.wipe()
	var err error
	if rel.Sealed, err = wire.SealTo(t.pk, t.reqID, t.volumeID, uint32(t.gen), t.secret); err != nil {
		return err
	}
	if t.newGen != 0 {
		rel.NewSealed, err = wire.SealTo(t.pk, t.reqID, t.volumeID, uint32(t.newGen), t.newSecret)
	}
	return err
}

// releaseTx unwraps, records and audits one release; the caller seals after
// the commit (or wipes if it fails).
func (s *Service) releaseTx(ctx context.Context, tx *sql.Tx, a releaseArgs) (*wire.Release, *toSeal, error) {
	pk := a.pk
	if pk == nil {
		var err error
		if pk, err = wire.ParsePublicKey(a.pub); err != nil {
			return nil, nil, err
		}
	}
	var secret []byte
	var err error
	if a.secret != nil {
		secret, err = a.secret()
	} else {
		secret, err = s.secrets.ReleaseSecretTx(ctx, tx, a.volumeID, a.gen)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("release secret: %w", err)
	}
	ts := &toSeal{pk: pk, secret: secret, reqID: a.reqID, volumeID: a.volumeID, gen: a.gen}
	ok := false
	defer func() {
		if !ok {
			ts.wipe()
		}
	}()
	rel := &wire.Release{RequestID: a.reqID, Status: wire.StatusReleased, Class: string(a.class), Generation: a.gen, Simulated: a.claims.Simulated}
	// A pending generation (an officer started a rotation, or an approved
	// rotation request made one) travels beside the current secret; the
	// agent's confirmation makes it current.
	pending := a.pending
	if !a.pendingKnown {
		if _, pending, err = s.secrets.CurrentGenerationTx(ctx, tx, a.volumeID); err != nil {
			return nil, nil, err
		}
	}
	if a.purpose == wire.PurposeRotate || (pending != 0 && a.gen < pending) {
		if pending == 0 {
			if pending, err = s.secrets.RotateTx(ctx, tx, guestActor(a.vmID), a.volumeID); err != nil {
				return nil, nil, fmt.Errorf("rotate: %w", err)
			}
		}
		if ts.newSecret, err = s.secrets.ReleaseSecretTx(ctx, tx, a.volumeID, pending); err != nil {
			return nil, nil, fmt.Errorf("release new secret: %w", err)
		}
		ts.newGen, rel.NewGeneration = pending, pending
	}
	c := a.claims
	if _, err := fleet.Record(ctx, tx, fleet.Observation{
		At: a.now, VMID: a.vmID, VolumeID: a.volumeID, ImageID: a.imageID, Kind: "release", Result: fleet.ResultReleased,
		Status: fleet.Verified, Class: string(a.class), RequestID: a.reqID, EvidenceHash: a.evHash,
		Authentic: true, Product: c.Product, Signer: c.Signer, ChipID: c.ChipID, Measurement: c.Measurement, ReportID: c.ReportID, TCB: c.TCB,
		Simulated: c.Simulated, Released: true, Generation: a.gen, HeartbeatEvery: a.heartbeat, Create: true, Evidence: c.Evidence,
		Exists: a.vmExists, ChipKnown: a.vmExists && a.chipKnown, MeasurementKnown: a.vmExists && a.measurementKnown,
	}); err != nil {
		return nil, nil, err
	}
	actor := a.actor
	if actor == "" {
		actor = guestActor(a.vmID)
	}
	reason := fmt.Sprintf("%s; %s; generation %d; request %s", a.class, a.reason, a.gen, a.reqID)
	if rel.NewGeneration != 0 {
		reason += fmt.Sprintf("; new generation %d", rel.NewGeneration)
	}
	if c.Simulated {
		reason += "; SIMULATED evidence"
	}
	if err := s.appendAudit(ctx, tx, audit.Entry{At: a.now, Actor: actor, Action: "release", Subject: a.volumeID,
		Decision: "released", Reason: reason, EvidenceHash: a.evHash}); err != nil {
		return nil, nil, err
	}
	ok = true
	return rel, ts, nil
}

// Summary is what the officer sees about a pending request.
type Summary struct {
	VMID    string  `json:"vm_id"`
	Signals []Class `json:"signals"`
	Product string  `json:"product"`
	ChipID  string  `json:"chip_id"`
	// Signer (VCEK or VLEK) and ChipIdentity, the chip in words: its
	// hardware ID, or "none (VLEK)" when the console cannot tell chips apart.
	Signer       string        `json:"signer"`
	ChipIdentity string        `json:"chip_identity"`
	Measurement  string        `json:"measurement"`
	TCB          fleet.TCB     `json:"tcb"`
	PreviousTCB  *fleet.TCB    `json:"previous_tcb,omitempty"`
	NewChip      bool          `json:"new_chip"`
	Generation   int           `json:"generation"`
	Current      int           `json:"current_generation"`
	Simulated    bool          `json:"simulated"`
	Reasons      []wire.Reason `json:"reasons,omitempty"`
	// ProposedReference, for an image without reference values, is what
	// approving this first boot records as the image's reference values.
	ProposedReference json.RawMessage `json:"proposed_reference,omitempty"`
	// Pins says in plain words what approving such a first boot does.
	Pins string `json:"pins,omitempty"`
	// VolumeReleasedTo lists other VMs this volume's secret was released to
	// (a re-created VM, or a VM presenting another one's disk).
	VolumeReleasedTo []string `json:"volume_released_to,omitempty"`
	// NewVolume: the VM received releases before, but never of this volume
	// (a data disk added to it, or another VM's disk); VMVolumes lists the
	// volumes it holds.
	NewVolume bool     `json:"new_volume,omitempty"`
	VMVolumes []string `json:"vm_volumes,omitempty"`
	// Evidence is the request's decoded evidence and Previous that of the
	// VM's last released launch (absent before it): the officer's diff.
	Evidence json.RawMessage `json:"evidence,omitempty"`
	Previous json.RawMessage `json:"previous,omitempty"`
}

func (s *Service) insertPending(ctx context.Context, tx *sql.Tx, req *wire.ReleaseRequest, d decided) error {
	sum := Summary{VMID: req.VMID, Signals: d.decision.Signals, Product: d.claims.Product, ChipID: d.claims.ChipID,
		Signer: d.claims.Signer, ChipIdentity: fleet.ChipIdentity(d.claims.Signer, d.claims.ChipID),
		Measurement: d.claims.Measurement, TCB: d.claims.TCB, PreviousTCB: d.hist.ApprovedTCB,
		NewChip: d.hist.EverReleased && !d.hist.ChipApproved, Generation: d.gen, Current: d.current, Simulated: d.claims.Simulated,
		Reasons: d.claims.Reasons, ProposedReference: d.claims.ProposedReference, Evidence: d.claims.Evidence}
	prev, err := fleet.ApprovedEvidence(ctx, tx, req.VMID)
	if err != nil {
		return err
	}
	sum.Previous = prev
	if d.claims.Unreferenced {
		if sum.Pins, err = pinsSentence(ctx, tx, d.vol.imageID, d.claims.Measurement); err != nil {
			return err
		}
	}
	if d.hist.EverReleased && !d.hist.VolumeReleased {
		sum.NewVolume = true
		if sum.VMVolumes, err = fleet.VolumesOf(ctx, tx, req.VMID); err != nil {
			return err
		}
	}
	owners, err := tx.QueryContext(ctx, `SELECT vm_id FROM vm_volumes WHERE volume_id = ? AND vm_id != ? ORDER BY vm_id LIMIT 10`, req.VolumeID, req.VMID)
	if err != nil {
		return fmt.Errorf("read volume owners: %w", store.Classify(err))
	}
	for owners.Next() {
		var id string
		if err := owners.Scan(&id); err != nil {
			owners.Close()
			return err
		}
		sum.VolumeReleasedTo = append(sum.VolumeReleasedTo, id)
	}
	owners.Close()
	sumJSON, _ := json.Marshal(sum)
	claimsJSON, err := json.Marshal(d.claims)
	if err != nil {
		return err
	}
	claim := d.claims.Unreferenced
	if !claim {
		if err := s.supersedeTx(ctx, tx, req.VMID, req.VolumeID, d.claims.ChipID, d.reqID, d.now); err != nil {
			return err
		}
	}
	sigJSON, _ := json.Marshal(d.decision.Signals)
	purpose := string(req.Purpose)
	_, err = tx.ExecContext(ctx, `INSERT INTO approval_requests(id, vm_id, volume_id, purpose, generation, class, signals, status, approvals_needed,
		evidence_hash, hpke_public_key, claims, summary, simulated, created_at, expires_at, first_boot_claim)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.reqID, req.VMID, req.VolumeID, purpose, d.gen, string(d.decision.Class), string(sigJSON), max(1, d.decision.Approvers),
		d.evHash, req.HPKEPublicKey, string(claimsJSON), string(sumJSON), boolInt(d.claims.Simulated),
		store.Time(d.now), store.Time(d.now.Add(d.policy.TTL())), boolInt(claim))
	if err != nil {
		return fmt.Errorf("store pending request: %w", store.Classify(err))
	}
	o := s.observation(req, d, "release", fleet.ResultPending)
	o.Status = fleet.Pending
	o.Message = "waiting for approval: " + joinClasses(d.decision.Signals)
	if _, err := fleet.Record(ctx, tx, o); err != nil {
		return err
	}
	err = s.appendAudit(ctx, tx, audit.Entry{At: d.now, Actor: guestActor(req.VMID), Action: "release", Subject: req.VolumeID,
		Decision: "pending", Reason: fmt.Sprintf("%s needs %d approval(s); request %s", joinClasses(d.decision.Signals), max(1, d.decision.Approvers), d.reqID),
		EvidenceHash: d.evHash})
	return err
}

// Limits on the claims of a volume's first boot (requests of an image
// without reference values). Any genuine SNP guest anywhere can make one,
// so they are bounded per volume: at most MaxOpenClaims wait at once, and at
// most MaxClaimsPerHour arrive in an hour. A refused claim answers
// rate_limited, which agents retry; an officer who decides the open claims
// makes room.
const (
	MaxOpenClaims    = 8
	MaxClaimsPerHour = 20
)

func claimLimitTx(ctx context.Context, tx *sql.Tx, volumeID string, now time.Time) (*wire.Error, error) {
	var open, recent int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(CASE WHEN status IN ('pending', 'approved') THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN created_at > ? THEN 1 ELSE 0 END), 0)
		FROM approval_requests WHERE first_boot_claim = 1 AND volume_id = ?`, store.Time(now.Add(-time.Hour)), volumeID).Scan(&open, &recent); err != nil {
		return nil, fmt.Errorf("count first-boot claims: %w", store.Classify(err))
	}
	if open >= MaxOpenClaims || recent >= MaxClaimsPerHour {
		return &wire.Error{Code: wire.CodeRateLimited, Message: fmt.Sprintf(
			"too many launches claim the first boot of volume %s (%d waiting, %d in the last hour); an officer must decide them first", volumeID, open, recent)}, nil
	}
	return nil, nil
}

// pinsSentence says what approving a first boot of imageID with
// measurement does to the image's reference values.
func pinsSentence(ctx context.Context, tx *sql.Tx, imageID, measurement string) (string, error) {
	name := imageID
	if err := tx.QueryRowContext(ctx, `SELECT name FROM images WHERE id = ?`, imageID).Scan(&name); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("read image %s: %w", imageID, store.Classify(err))
	}
	label := "image " + name
	if name != imageID {
		label += " (" + imageID + ")"
	}
	return fmt.Sprintf("Approving this first boot pins measurement %s as the reference values of %s: "+
		"from then on only guests launched with this measurement receive the keys of its volumes, "+
		"until an officer changes the reference values.", measurement, label), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Heartbeat checks a running guest's fresh evidence. A routine result keeps
// the guest verified; anything else (a new chip, a changed TCB or
// measurement, a refusal) marks it failing, and the guest must ask for a
// release again to be trusted.
func (s *Service) Heartbeat(ctx context.Context, req *wire.ReleaseRequest) (*wire.Heartbeat, error) {
	return s.heartbeat(ctx, req, nil)
}

func (s *Service) heartbeat(ctx context.Context, req *wire.ReleaseRequest, gate vmGate) (*wire.Heartbeat, error) {
	if err := req.Check(); err != nil {
		return nil, refusal(wire.RefusalCode(err), err.Error())
	}
	if req.Purpose != wire.PurposeHeartbeat {
		return nil, refusal(wire.CodeBadRequest, "a heartbeat's purpose is heartbeat")
	}
	var out *wire.Heartbeat
	var adm admission
	defer s.leave(&adm)
	werr := s.decide(ctx, req, &adm, gate, func(ctx context.Context, tx *sql.Tx, d decided) (*wire.Error, error) {
		o := s.observation(req, d, "heartbeat", fleet.ResultVerified)
		o.Create = false
		if d.decision.Class != ClassRoutine || !d.hist.EverReleased {
			msg := "the evidence shows " + joinClasses(d.decision.Signals) + "; the guest must ask for a release again"
			o.Result, o.Status, o.Code, o.Message = fleet.ResultFailing, fleet.Failing, string(wire.CodeUnexpectedEvent), msg
			if _, err := fleet.Record(ctx, tx, o); err != nil {
				return nil, err
			}
			err := s.appendAudit(ctx, tx, audit.Entry{At: d.now, Actor: guestActor(req.VMID), Action: "heartbeat", Subject: req.VolumeID,
				Decision: "failing", Reason: msg, EvidenceHash: d.evHash})
			return refusal(wire.CodeUnexpectedEvent, msg), err
		}
		o.Status = fleet.Verified
		if _, err := fleet.Record(ctx, tx, o); err != nil {
			return nil, err
		}
		out = &wire.Heartbeat{Status: "verified", NextIn: int(d.policy.Heartbeat() / time.Second), Simulated: d.claims.Simulated}
		return nil, nil
	})
	if werr != nil {
		return nil, werr
	}
	return out, nil
}

// ConfirmRotation makes the new generation of a completed rotation request
// current, once the agent proves it holds the new secret (it has added the
// keyslot). Until then the old generation stays current, so a guest that
// died half-way still opens with it.
func (s *Service) ConfirmRotation(ctx context.Context, c *wire.RotationConfirm) error {
	now := s.now()
	var werr *wire.Error
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := getRequest(ctx, tx, c.RequestID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (r.Purpose != string(wire.PurposeRotate) || r.Status != StatusCompleted || r.VMID != c.VMID || r.VolumeID != c.VolumeID)) {
			werr = refusal(wire.CodeRequestUnknown, "no completed rotation request matches")
			return nil
		}
		if err != nil {
			return err
		}
		_, pending, err := s.secrets.CurrentGenerationTx(ctx, tx, c.VolumeID)
		if err != nil {
			return err
		}
		if pending == 0 || pending != c.Generation {
			werr = refusal(wire.CodeGenerationUnknown, "that generation is not waiting for confirmation")
			return nil
		}
		secret, err := s.secrets.ReleaseSecretTx(ctx, tx, c.VolumeID, c.Generation)
		if err != nil {
			return err
		}
		want := wire.RotationProof(secret, c.RequestID, c.VolumeID, c.Generation)
		clear(secret)
		if subtle.ConstantTimeCompare(want, c.Proof) != 1 {
			werr = refusal(wire.CodeBadProof, "the proof does not match the new generation's secret")
			_, err := s.audit.Append(ctx, tx, audit.Entry{At: now, Actor: guestActor(c.VMID), Action: "rotation.confirm", Subject: c.VolumeID,
				Decision: "denied", Reason: fmt.Sprintf("bad proof for generation %d (request %s)", c.Generation, c.RequestID)})
			return err
		}
		if err := s.secrets.ConfirmRotationTx(ctx, tx, guestActor(c.VMID), c.VolumeID, c.Generation); err != nil {
			return err
		}
		return fleet.SetGenerationTx(ctx, tx, c.VMID, c.VolumeID, c.Generation)
	})
	if err != nil {
		return s.internal("confirm rotation", err)
	}
	if werr != nil {
		return werr
	}
	s.emit(Event{Kind: "fleet", VMID: c.VMID})
	return nil
}
