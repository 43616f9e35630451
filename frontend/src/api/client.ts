import type { Transport } from './transport';
import type {
  AuditEntry,
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
  keys: { volumes(): Promise<Volume[]> };
  audit: { list(q: AuditQuery): Promise<AuditEntry[]> };
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
    keys: { volumes: () => c('Keys', 'Volumes')<Volume[]>() },
    audit: { list: (q) => c('Audit', 'List')<AuditEntry[]>(q) },
    on: (e, h) => t.on(e, h),
  };
}
