import type { Transport } from './transport';
import type {
  AdminAction,
  AdminOutcome,
  BackupFile,
  QuorumRules,
  QuorumStatus,
  AuditEntry,
  AuditVerifyResult,
  BackupInfo,
  DiskInfo,
  PrepareRequest,
  PrepareResult,
  ReferenceValues,
  ReleaseAPIInfo,
  ReleasePolicy,
  ReferenceVersion,
  CustodyState,
  Generation,
  Officer,
  SessionState,
  SessionInfo,
  AuditQuery,
  ConsoleInfo,
  FleetFilter,
  FleetSummary,
  GuestDetail,
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
  adminActionsChanged: 'admin-actions:changed',
  /** connectionChanged: the desktop's connection to a shared console (ConnectionState). */
  connectionChanged: 'connection:changed',
  /** resync is synthesised by a transport after a gap or a reconnect. */
  resync: 'resync',
} as const;

/** Client is the one typed interface every screen and store uses. */
export interface Client {
  readonly transport: Transport['kind'];
  console: {
    info(): Promise<ConsoleInfo>;
    pickFile(title: string): Promise<string>;
    pickSaveFile(title: string, defaultName: string): Promise<string>;
  };
  fleet: {
    list(filter: FleetFilter): Promise<Guest[]>;
    summary(): Promise<FleetSummary>;
    releaseAPI(): Promise<ReleaseAPIInfo>;
    guest(id: string): Promise<GuestDetail>;
    revoke(id: string, reason: string): Promise<void>;
    reinstate(id: string, reason: string): Promise<void>;
  };
  approvals: {
    pending(): Promise<ReleaseRequest[]>;
    list(status: string): Promise<ReleaseRequest[]>;
    get(id: string): Promise<ReleaseRequest>;
    approve(id: string, note: string): Promise<ReleaseRequest>;
    deny(id: string, note: string): Promise<ReleaseRequest>;
    policy(imageID: string): Promise<ReleasePolicy>;
    /** setPolicy: a loosening change waits for a second admin (two-person rule). */
    setPolicy(imageID: string, p: ReleasePolicy | null): Promise<AdminOutcome>;
    /** adminActions lists custody actions under the two-person rule ('' for all). */
    adminActions(status: string): Promise<AdminAction[]>;
    approveAction(id: string, hash: string): Promise<AdminOutcome>;
    denyAction(id: string, note: string): Promise<AdminAction>;
    quorumStatus(): Promise<QuorumStatus>;
    setQuorumRules(r: QuorumRules): Promise<AdminOutcome>;
  };
  images: {
    list(): Promise<Image[]>;
    inspect(path: string): Promise<DiskInfo>;
    prepare(req: PrepareRequest): Promise<string>;
    cancel(opID: string): Promise<void>;
    result(opID: string): Promise<PrepareResult>;
    references(imageID: string): Promise<ReferenceVersion[]>;
    setReference(imageID: string, values: ReferenceValues, comment: string): Promise<AdminOutcome>;
    splitPassphrase(passphrase: string, m: number, n: number): Promise<string[]>;
    /** imageFolders are where the web console may read and write images. */
    imageFolders(): Promise<string[]>;
    setImageFolders(folders: string[]): Promise<void>;
  };
  keys: {
    volumes(): Promise<Volume[]>;
    state(): Promise<CustodyState>;
    generations(volumeID: string): Promise<Generation[]>;
    rotate(volumeID: string): Promise<number>;
    revoke(volumeID: string, reason: string): Promise<void>;
    destroy(volumeID: string, confirm: string): Promise<AdminOutcome>;
    officers(): Promise<Officer[]>;
    addOfficer(name: string, role: string, passphrase: string): Promise<AdminOutcome>;
    removeOfficer(name: string): Promise<AdminOutcome>;
    setRole(name: string, role: string): Promise<AdminOutcome>;
    changePassphrase(oldPassphrase: string, newPassphrase: string): Promise<void>;
    recoveryShares(m: number, n: number): Promise<AdminOutcome>;
    backup(path: string): Promise<AdminOutcome>;
    backupDownload(): Promise<AdminOutcome>;
    /** collectShares: the requester receives approved shares, once. */
    collectShares(actionID: string): Promise<string[]>;
    collectBackup(actionID: string): Promise<BackupFile>;
    collectBackupTo(actionID: string, path: string): Promise<BackupInfo>;
    /** setupAutoUnseal: ask (two-person rule) to unseal through the PKCS#11 token the console was started with. */
    setupAutoUnseal(): Promise<AdminOutcome>;
    /** collectAutoUnseal: the requester carries out an approved setup (the master key is wrapped by the token then), once. */
    collectAutoUnseal(actionID: string): Promise<AdminOutcome>;
    removeAutoUnseal(): Promise<AdminOutcome>;
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
    /** list returns every live session (admins only). */
    list(): Promise<SessionInfo[]>;
    /** end ends a session by its ID (admins only, fresh authentication). */
    end(id: string): Promise<void>;
  };
  on(event: string, handler: (data: unknown) => void): () => void;
  reconnect(): void;
}

export function makeClient(t: Transport): Client {
  const c =
    (service: string, method: string) =>
    <T>(...args: unknown[]) =>
      t.call<T>(service, method, args);
  return {
    transport: t.kind,
    console: {
      info: () => c('Console', 'Info')<ConsoleInfo>(),
      pickFile: (t) => c('Console', 'PickFile')<string>(t),
      pickSaveFile: (t, n) => c('Console', 'PickSaveFile')<string>(t, n),
    },
    fleet: {
      list: (f) => c('Fleet', 'List')<Guest[]>(f),
      summary: () => c('Fleet', 'Summary')<FleetSummary>(),
      releaseAPI: () => c('Fleet', 'ReleaseAPI')<ReleaseAPIInfo>(),
      guest: (id) => c('Fleet', 'Guest')<GuestDetail>(id),
      revoke: (id, r) => c('Fleet', 'Revoke')<void>(id, r),
      reinstate: (id, r) => c('Fleet', 'Reinstate')<void>(id, r),
    },
    approvals: {
      pending: () => c('Approvals', 'Pending')<ReleaseRequest[]>(),
      list: (s) => c('Approvals', 'List')<ReleaseRequest[]>(s),
      get: (id) => c('Approvals', 'Get')<ReleaseRequest>(id),
      approve: (id, n) => c('Approvals', 'Approve')<ReleaseRequest>(id, n),
      deny: (id, n) => c('Approvals', 'Deny')<ReleaseRequest>(id, n),
      policy: (id) => c('Approvals', 'Policy')<ReleasePolicy>(id),
      setPolicy: (id, p) => c('Approvals', 'SetPolicy')<AdminOutcome>(id, p),
      adminActions: (s) => c('Approvals', 'AdminActions')<AdminAction[]>(s),
      approveAction: (id, h) => c('Approvals', 'ApproveAction')<AdminOutcome>(id, h),
      denyAction: (id, n) => c('Approvals', 'DenyAction')<AdminAction>(id, n),
      quorumStatus: () => c('Approvals', 'QuorumStatus')<QuorumStatus>(),
      setQuorumRules: (r) => c('Approvals', 'SetQuorumRules')<AdminOutcome>(r),
    },
    images: {
      list: () => c('Images', 'List')<Image[]>(),
      inspect: (p) => c('Images', 'Inspect')<DiskInfo>(p),
      prepare: (r) => c('Images', 'Prepare')<string>(r),
      cancel: (id) => c('Images', 'Cancel')<void>(id),
      result: (id) => c('Images', 'Result')<PrepareResult>(id),
      references: (id) => c('Images', 'References')<ReferenceVersion[]>(id),
      setReference: (id, v, cm) => c('Images', 'SetReference')<AdminOutcome>(id, v, cm),
      splitPassphrase: (p, m, n) => c('Images', 'SplitPassphrase')<string[]>(p, m, n),
      imageFolders: () => c('Images', 'ImageFolders')<string[]>(),
      setImageFolders: (f) => c('Images', 'SetImageFolders')<void>(f),
    },
    keys: {
      volumes: () => c('Keys', 'Volumes')<Volume[]>(),
      state: () => c('Keys', 'State')<CustodyState>(),
      generations: (id) => c('Keys', 'Generations')<Generation[]>(id),
      rotate: (id) => c('Keys', 'Rotate')<number>(id),
      revoke: (id, reason) => c('Keys', 'Revoke')<void>(id, reason),
      destroy: (id, confirm) => c('Keys', 'Destroy')<AdminOutcome>(id, confirm),
      officers: () => c('Keys', 'Officers')<Officer[]>(),
      addOfficer: (n, r, p) => c('Keys', 'AddOfficer')<AdminOutcome>(n, r, p),
      removeOfficer: (n) => c('Keys', 'RemoveOfficer')<AdminOutcome>(n),
      setRole: (n, r) => c('Keys', 'SetRole')<AdminOutcome>(n, r),
      changePassphrase: (o, n) => c('Keys', 'ChangePassphrase')<void>(o, n),
      recoveryShares: (m, n) => c('Keys', 'RecoveryShares')<AdminOutcome>(m, n),
      backup: (p) => c('Keys', 'Backup')<AdminOutcome>(p),
      backupDownload: () => c('Keys', 'BackupDownload')<AdminOutcome>(),
      setupAutoUnseal: () => c('Keys', 'SetupAutoUnseal')<AdminOutcome>(),
      collectAutoUnseal: (id) => c('Keys', 'CollectAutoUnseal')<AdminOutcome>(id),
      removeAutoUnseal: () => c('Keys', 'RemoveAutoUnseal')<AdminOutcome>(),
      collectShares: (id) => c('Keys', 'CollectShares')<string[]>(id),
      collectBackup: (id) => c('Keys', 'CollectBackup')<BackupFile>(id),
      collectBackupTo: (id, p) => c('Keys', 'CollectBackupTo')<BackupInfo>(id, p),
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
      list: () => c('Session', 'List')<SessionInfo[]>(),
      end: (id) => c('Session', 'End')<void>(id),
    },
    on: (e, h) => t.on(e, h),
    reconnect: () => t.reconnect?.(),
  };
}
