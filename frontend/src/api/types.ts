// DTOs as the Go services return them (app/ and backend/ JSON tags).

export type GuestStatus = 'verified' | 'stale' | 'failing' | 'pending' | 'revoked';

export interface TCB {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** Turin only; absent (0) on Milan and Genoa. */
  fmc?: number;
}

export interface Guest {
  id: string;
  name: string;
  image_id: string;
  image_name: string;
  /** The volume of the latest release. */
  volume_id: string;
  /** Every volume released to the VM (its root and data disks), by ID. */
  volumes?: string[];
  status: GuestStatus;
  product: string;
  /** The VCEK's hardware ID (never the report's maskable CHIP_ID); '' with a VLEK. */
  chip_id: string;
  /** VCEK or VLEK ('' before any authentic evidence). */
  signer: string;
  /** The chip in words: its hardware ID, or 'none (VLEK)'. */
  chip_identity: string;
  measurement: string;
  tcb: TCB;
  generation: number;
  simulated: boolean;
  last_evidence_at: string | null;
  created_at: string;
  /** why a failing guest fails (its latest refusal); empty otherwise. */
  reason?: string;
  /** the refusal's code (evidence_invalid, denied_by_officer, …); empty otherwise. */
  reason_code?: string;
}

export interface FleetFilter {
  status?: GuestStatus | '';
  search?: string;
  limit?: number;
  /** "attention": failing, pending, stale, revoked, then verified; "id": by VM ID (for slices); "" newest evidence first */
  order?: '' | 'attention' | 'id';
  /** with order "id": the guests after this VM ID (the next slice). */
  after?: string;
}

export interface FleetSummary {
  total: number;
  by_status: Record<GuestStatus, number>;
}

export interface Approval {
  officer: string;
  note: string;
  at: string;
  evidence_hash: string;
}

export interface ReleaseRequest {
  id: string;
  vm_id: string;
  volume_id: string;
  purpose: string;
  generation: number;
  class: string;
  signals: string[];
  status: string;
  approvals_needed: number;
  approvals: Approval[] | null;
  evidence_hash: string;
  summary: unknown;
  simulated: boolean;
  reason: string;
  /** The request claims the first boot of a volume whose image has no reference values. */
  first_boot_claim?: boolean;
  /** The other open claims of the same volume's first boot (approving one denies them). */
  competing?: string[];
  created_at: string;
  expires_at: string;
}

export interface Image {
  id: string;
  name: string;
  description: string;
  created_at: string;
  created_by: string;
  volumes: number;
  guests: number;
}

export interface Volume {
  id: string;
  name: string;
  image_id: string;
  image_name: string;
  status: string;
  current_generation: number;
  created_at: string;
}

export interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  subject: string;
  decision: string;
  reason: string;
  evidence_hash: string;
  prev_hash: string;
  hash: string;
}

/** AuditQuery filters the log on the server; empty fields match everything. */
export interface AuditQuery {
  search?: string;
  /** "officer:alice", "guest:vm-1", "console", or a name ("alice") */
  actor?: string;
  /** an action ("release.deny") or a family ("release") */
  action?: string;
  /** a release event class: first_boot, migration, restore, platform_change, rotation, routine_boot */
  class?: string;
  /** a VM ID: its guest's entries, decisions on its requests, its volume */
  vm?: string;
  /** RFC 3339; from <= at < to */
  from?: string;
  to?: string;
  before_seq?: number;
  limit?: number;
}

export interface ConsoleInfo {
  version: string;
  mode: 'desktop' | 'web';
  data_dir: string;
  database_path: string;
  schema_version: number;
  dev_simulated_root: boolean;
  platform: string;
  hostname: string;
  trusted_roots: TrustedRoot[];
  database: 'sqlite' | 'postgres';
  /** The replica that answers ('' in the desktop app). */
  replica: string;
  replicas: ReplicaInfo[];
}

/** One console process (`keyholder serve`) on the shared database. */
export interface ReplicaInfo {
  id: string;
  name: string;
  console_url: string;
  release_addr: string;
  started_at: string;
  heartbeat_at: string;
  alive: boolean;
  self: boolean;
}

export interface Progress {
  id: string;
  stage: string;
  done: number;
  total: number;
  rate: number;
  finished: boolean;
  error?: ApiErrorBody;
}

export interface ApiErrorBody {
  code: string;
  message: string;
  /** the argument the message is about, e.g. "reason" */
  field?: string;
}

export type Role = 'admin' | 'approver' | 'viewer';

export interface SessionState {
  initialized: boolean;
  key_service_unlocked: boolean;
  /** Why the key service is still locked after auto-unseal (PKCS#11) failed; absent otherwise. */
  key_service_locked_reason?: string;
  logged_in: boolean;
  locked: boolean;
  officer: string;
  role: Role | '';
  /** session_id names this window's session (Settings marks it). */
  session_id: string;
  fresh_until: string;
  idle_lock_seconds: number;
  login_required: boolean;
}

/** SessionInfo is one live officer session (Settings lists them for admins). */
export interface SessionInfo {
  id: string;
  officer: string;
  role: Role;
  device: string;
  user_agent: string;
  address: string;
  since: string;
  last_seen: string;
  locked: boolean;
  current: boolean;
}

export interface Officer {
  id: string;
  name: string;
  role: Role;
  created_at: string;
  last_login_at: string;
  failed_attempts: number;
}

export interface Generation {
  volume_id: string;
  generation: number;
  status: string;
  created_at: string;
  created_by: string;
  activated_at: string;
}

export interface CustodyState {
  initialized: boolean;
  unlocked: boolean;
  console_id: string;
  officers: number;
}

export interface AuditVerifyResult {
  ok: boolean;
  report: { entries: number; head: string; checkpoints: number; last_checkpoint: number; unsigned: number };
  first_bad: number;
  problem: string;
  key_authenticated: boolean;
}

export interface DiskPartition {
  index: number;
  type: string;
  type_name?: string;
  uuid?: string;
  name?: string;
  first_lba: number;
  last_lba: number;
  filesystem?: string;
}

export interface DiskInfo {
  path: string;
  format: string;
  detail: string;
  file_size: number;
  virtual_size: number;
  partition_table: 'gpt' | 'mbr' | 'none';
  disk_guid?: string;
  partitions: DiskPartition[];
  filesystem?: string;
  root_partition?: number;
  /** Set for a raw file with no partition table and no recognised filesystem: preparing it needs confirm_raw. */
  raw_warning?: string;
}

export type PrepareMode = 'data' | 'os';
/** The outputs image prepare writes: aws is raw (EC2 import-snapshot's RAW); vmdk is a streamOptimized VMDK. */
export type OutputFormat = 'raw' | 'gcp' | 'azure' | 'aws' | 'vmdk';

export interface PrepareRequest {
  source: string;
  dest: string;
  mode: PrepareMode;
  output: OutputFormat;
  sector_size: 512 | 4096;
  name: string;
  recovery_passphrase: string;
  /** The officer confirmed that a source with a raw_warning is a raw disk. */
  confirm_raw?: boolean;
}

export interface Manifest {
  manifest_version: number;
  image_id: string;
  image_name: string;
  volume_id: string;
  luks_uuid: string;
  cipher: string;
  key_bits: number;
  sector_size: number;
  keyslots: { id: number; role: string; kdf: string; generation?: number }[];
  mode: string;
  output: { format: string; file: string; size: number; sha256: string; disk_size: number };
  source: Record<string, unknown>;
  release_url: string;
  spki_sha256: string;
  os?: Record<string, unknown>;
  created_at: string;
}

export interface PrepareResult {
  output: string;
  manifest_path: string;
  manifest: Manifest;
}

export interface TCBMinimum {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** Turin only. */
  fmc?: number;
}

export interface ReferenceValues {
  measurements: string[];
  minimum_tcb: TCBMinimum;
  product?: string;
  allow_migration_agent: boolean;
  allow_smt: boolean;
  require_single_socket: boolean;
  allowed_vmpls?: number[];
}

export interface ReferenceVersion {
  image_id: string;
  version: number;
  values: ReferenceValues;
  hash: string;
  comment: string;
  created_at: string;
  created_by: string;
}

export type ReleaseClass = 'routine_boot' | 'first_boot' | 'migration' | 'restore' | 'platform_change' | 'rotation' | 'refused';
export type ReleaseAction = 'release' | 'approve' | 'deny';

export interface ReleasePolicy {
  actions: Partial<Record<ReleaseClass, ReleaseAction>>;
  approvers?: Partial<Record<ReleaseClass, number>>;
  allow_migration_agent?: boolean;
  /** A new launch with VLEK evidence may be routine (default: it is a migration). */
  vlek_routine?: boolean;
  /** What a missing or stale CRL does: warn (default) or refuse. */
  stale_crl?: 'warn' | 'refuse';
  approval_ttl?: string;
  heartbeat_interval?: string;
}

export interface ReleaseAPIInfo {
  serving: boolean;
  address: string;
  pin: string;
}

export interface TrustedRoot {
  product: string;
  ark_sha256: string;
  vlek: boolean;
}

export interface AttestationRecord {
  id: number;
  at: string;
  /** A run of unchanged verified heartbeats: the newest one's time (= at otherwise). */
  last_at: string;
  /** How many heartbeats the run holds (1 for every other row). */
  count: number;
  kind: string;
  result: string;
  class: string;
  code: string;
  message: string;
  request_id: string;
  evidence_hash: string;
  chip_id: string;
  measurement: string;
  tcb: TCB;
  simulated: boolean;
}

export interface GuestDetail extends Guest {
  status_reason: string;
  history: AttestationRecord[];
  /** decoded claims of the newest authentic evidence ({snp, tpm}), null before any */
  evidence: unknown;
  /** decoded claims of the last released launch, null before the first release */
  approved_evidence: unknown;
}

export interface BackupInfo {
  console_id: string;
  created_at: string;
  schema_version: number;
  officers: string[];
  bytes: number;
  files: string[];
}

/** AdminActionKind names an admin action under the two-person rule (backend/quorum Kind). */
export type AdminActionKind =
  | 'recovery.shares'
  | 'backup.export'
  | 'officer.add'
  | 'officer.role'
  | 'officer.remove'
  | 'policy.set'
  | 'reference.set'
  | 'volume.destroy'
  | 'quorum.rules'
  | 'auto_unseal.setup'
  | 'auto_unseal.remove';

/** AdminVote is one admin's approval, bound to the action's hash. */
export interface AdminVote {
  officer: string;
  hash: string;
  at: string;
}

/** AdminAction is a custody action waiting for (or decided by) M distinct admins (quorum.Action). */
export interface AdminAction {
  id: string;
  kind: AdminActionKind;
  summary: string;
  params: unknown;
  /** hash binds an approval to the exact parameters; ApproveAction sends it back. */
  hash: string;
  requested_by: string;
  status: 'pending' | 'approved' | 'done' | 'delivered' | 'denied' | 'expired' | 'failed';
  approvals_needed: number;
  votes: AdminVote[] | null;
  /** secret: the result (shares, a backup, an auto-unseal setup) goes once to requested_by. */
  secret: boolean;
  reason: string;
  created_at: string;
  expires_at: string;
}

/** BackupFile is an encrypted backup for download. */
export interface BackupFile {
  name: string;
  /** data is the file, base64. */
  data: string;
  info: BackupInfo;
}

/** AdminOutcome is what a call under the two-person rule returns (app.AdminOutcome). */
export interface AdminOutcome {
  action: AdminAction;
  /** done: carried out, or the secret result is in this answer. */
  done: boolean;
  shares?: string[];
  backup?: BackupFile;
  backup_info?: BackupInfo;
}

/** QuorumRules configure the two-person rule (quorum.Rules). */
export interface QuorumRules {
  approvals?: Partial<Record<AdminActionKind, number>>;
  ttl?: string;
}

/** QuorumStatus is quorum.Status: what each kind needs now. */
export interface QuorumStatus {
  admins: number;
  needed: Record<AdminActionKind, number>;
  one_person_can_do_everything: boolean;
  rules: QuorumRules;
}

/** ConnectionState is a shared console's connection as the desktop sees it (remote.State). */
export interface ConnectionState {
  url: string;
  connected: boolean;
  error?: string;
  /** failed attempts since the connection was lost */
  attempt?: number;
  /** wait before the next attempt */
  retry_in_ms?: number;
  /** live events arrive (a session is open) */
  streaming: boolean;
}

/** ConnectionInfo says which console the desktop window talks to (app.ConnectionInfo). */
export interface ConnectionInfo {
  mode: 'choose' | 'local' | 'remote';
  url?: string;
  pin?: string;
  ca_file?: string;
  state?: ConnectionState;
}
