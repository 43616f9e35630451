package release

// EmitForTest emits ev as if it happened in this engine (tests of what
// carries events between replicas).
func (s *Service) EmitForTest(ev Event) { s.emit(ev) }
