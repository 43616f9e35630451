import type { Transport } from './transport';
import type {
  AuditEntry,
  AuditVerifyResult,
  CustodyState,
  Generation,
  Officer,
  SessionState,
  AuditQuery,
  ConsoleInfo,
  FleetFilter,
  FleetSummary,
  Guest,
  Image,
  ReleaseRequest,
  Volume,
} from './types';

/** Events the console pushes (names match app/events.go). */
export const Events = {
  fleetChanged: 'fleet:changed',
  approvalsChanged: 'approvals:changed',
  auditAppended: 'audit:appended',
  progress: 'progress',
  sessionChanged: 'session:changed',
  keysChanged: 'keys:changed',
  /** resync is synthesised by a transport after a gap or a reconnect. */
  resync: 'resync',
} as const;

/** Client is the one typed interface every screen and store uses. */
export interface Client {
  readonly transport: Transport['kind'];
  console: { info(): Promise<ConsoleInfo> };
  fleet: {
    list(filter: FleetFilter): Promise<Guest[]>;
    summary(): Promise<FleetSummary>;
  };
  approvals: { pending(): Promise<ReleaseRequest[]> };
  images: { list(): Promise<Image[]> };
  keys: {
    volumes(): Promise<Volume[]>;
    state(): Promise<CustodyState>;
    generations(volumeID: string): Promise<Generation[]>;
    rotate(volumeID: string): Promise<number>;
    revoke(volumeID: string, reason: string): Promise<void>;
    destroy(volumeID: string, confirm: string): Promise<void>;
    officers(): Promise<Officer[]>;
    addOfficer(name: string, role: string, passphrase: string): Promise<Officer>;
    removeOfficer(name: string): Promise<void>;
    setRole(name: string, role: string): Promise<void>;
    changePassphrase(oldPassphrase: string, newPassphrase: string): Promise<void>;
  };
  audit: {
    list(q: AuditQuery): Promise<AuditEntry[]>;
    verify(): Promise<AuditVerifyResult>;
    export(): Promise<string>;
  };
  session: {
    state(): Promise<SessionState>;
    touch(): Promise<SessionState>;
    setup(name: string, passphrase: string): Promise<SessionState>;
    login(name: string, passphrase: string): Promise<SessionState>;
    lock(): Promise<SessionState>;
    unlock(passphrase: string): Promise<SessionState>;
    logout(): Promise<void>;
  };
  on(event: string, handler: (data: unknown) => void): () => void;
}

export function makeClient(t: Transport): Client {
  const c =
    (service: string, method: string) =>
    <T>(...args: unknown[]) =>
      t.call<T>(service, method, args);
  return {
    transport: t.kind,
    console: { info: () => c('Console', 'Info')<ConsoleInfo>() },
    fleet: {
      list: (f) => c('Fleet', 'List')<Guest[]>(f),
      summary: () => c('Fleet', 'Summary')<FleetSummary>(),
    },
    approvals: { pending: () => c('Approvals', 'Pending')<ReleaseRequest[]>() },
    images: { list: () => c('Images', 'List')<Image[]>() },
    keys: {
      volumes: () => c('Keys', 'Volumes')<Volume[]>(),
      state: () => c('Keys', 'State')<CustodyState>(),
      generations: (id) => c('Keys', 'Generations')<Generation[]>(id),
      rotate: (id) => c('Keys', 'Rotate')<number>(id),
      revoke: (id, reason) => c('Keys', 'Revoke')<void>(id, reason),
      destroy: (id, confirm) => c('Keys', 'Destroy')<void>(id, confirm),
      officers: () => c('Keys', 'Officers')<Officer[]>(),
      addOfficer: (n, r, p) => c('Keys', 'AddOfficer')<Officer>(n, r, p),
      removeOfficer: (n) => c('Keys', 'RemoveOfficer')<void>(n),
      setRole: (n, r) => c('Keys', 'SetRole')<void>(n, r),
      changePassphrase: (o, n) => c('Keys', 'ChangePassphrase')<void>(o, n),
    },
    audit: {
      list: (q) => c('Audit', 'List')<AuditEntry[]>(q),
      verify: () => c('Audit', 'Verify')<AuditVerifyResult>(),
      export: () => c('Audit', 'Export')<string>(),
    },
    session: {
      state: () => c('Session', 'State')<SessionState>(),
      touch: () => c('Session', 'Touch')<SessionState>(),
      setup: (n, p) => c('Session', 'Setup')<SessionState>(n, p),
      login: (n, p) => c('Session', 'Login')<SessionState>(n, p),
      lock: () => c('Session', 'Lock')<SessionState>(),
      unlock: (p) => c('Session', 'Unlock')<SessionState>(p),
      logout: () => c('Session', 'Logout')<void>(),
    },
    on: (e, h) => t.on(e, h),
  };
}
