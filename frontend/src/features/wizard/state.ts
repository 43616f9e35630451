import type {
  AdminAction,
  ApiError,
  DiskInfo,
  OutputFormat,
  PrepareMode,
  PrepareResult,
  Progress,
  ReferenceVersion,
  TCBMinimum,
} from '../../api';
import { defaultDest, parseMeasurements, type ParsedMeasurements } from './logic';

/** RecoveryChoice is the second keyslot the officer asks for. */
export type RecoveryChoice = 'none' | 'passphrase' | 'shares';
/** ReferenceChoice says where the image's reference values come from. */
export type ReferenceChoice = 'paste' | 'first-boot';
/** MinTCB is the minimum TCB the wizard edits (no FMC: Milan and Genoa hosts have none). */
export type MinTCB = Pick<TCBMinimum, 'bootloader' | 'tee' | 'snp' | 'microcode'>;

/** Step numbers, in the Stepper's order; the summary follows the last. */
export const Steps = { source: 0, mode: 1, keys: 2, references: 3, output: 4, encrypt: 5, summary: 6 } as const;

/** WizardState is everything the preparation wizard shows and remembers, in one value. */
export interface WizardState {
  step: number;
  // Source and inspection.
  source: string;
  disk: DiskInfo | null;
  inspecting: boolean;
  inspectErr: string | null;
  convertCmd: string | null;
  rawConfirmed: boolean;
  // Mode.
  mode: PrepareMode;
  sector: '512' | '4096';
  // Keys: the recovery passphrase, or Shamir shares of it handed out custodian by custodian.
  recovery: RecoveryChoice;
  passphrase: string;
  savedIt: boolean;
  shareM: number;
  shareN: number;
  shares: string[] | null;
  shareErr: string | null;
  custodian: number;
  /** seen is the furthest custodian shown: the shares count as handed out only after each was. */
  seen: number;
  // Reference values.
  refChoice: ReferenceChoice;
  measurementText: string;
  /** fleetTCB is the TCB the fleet runs at now (the default minimum), or null while no guest reported one. */
  fleetTCB: MinTCB | null;
  minTCB: MinTCB;
  allowSMT: boolean;
  // Output.
  output: OutputFormat;
  dest: string;
  name: string;
  // The run.
  starting: boolean;
  opID: string | null;
  progress: Progress | null;
  runErr: ApiError | null;
  result: PrepareResult | null;
  refVersion: ReferenceVersion | null;
  refPending: AdminAction | null;
  refErr: string | null;
}

/** WizardAction is every change the wizard's steps and its run make. */
export type WizardAction =
  | { type: 'goto'; step: number }
  | { type: 'edit'; patch: Partial<Pick<WizardState, 'rawConfirmed' | 'mode' | 'sector' | 'savedIt' | 'passphrase' | 'refChoice' | 'measurementText' | 'minTCB' | 'allowSMT' | 'dest' | 'name'>> }
  | { type: 'source'; source: string }
  | { type: 'inspecting' }
  | { type: 'inspected'; disk: DiskInfo; baseName: string }
  | { type: 'inspect-failed'; message: string; convertCmd: string | null }
  | { type: 'recovery'; recovery: RecoveryChoice; fresh: string }
  | { type: 'share-params'; m?: number; n?: number }
  | { type: 'shares'; shares: string[] }
  | { type: 'share-failed'; message: string }
  | { type: 'custodian'; index: number }
  | { type: 'output'; output: OutputFormat }
  | { type: 'run-starting' }
  | { type: 'run-named'; opID: string }
  | { type: 'run-start-ended' }
  | { type: 'progress'; progress: Progress }
  | { type: 'run-failed'; err: ApiError }
  | { type: 'finished'; result: PrepareResult }
  | { type: 'references'; version?: ReferenceVersion | null; pending?: AdminAction | null; err?: string | null }
  | { type: 'retry' };

const zeroTCB: MinTCB = { bootloader: 0, tee: 0, snp: 0, microcode: 0 };

/**
 * initialState starts the wizard with strict defaults: a recovery passphrase
 * (passphrase is a fresh one), SMT disallowed, and the fleet's current TCB
 * as the minimum (0 only while no guest has reported one, which the step says).
 */
export function initialState(passphrase: string, fleetTCB: MinTCB | null): WizardState {
  return {
    step: Steps.source,
    source: '',
    disk: null,
    inspecting: false,
    inspectErr: null,
    convertCmd: null,
    rawConfirmed: false,
    mode: 'data',
    sector: '4096',
    recovery: 'passphrase',
    passphrase,
    savedIt: false,
    shareM: 2,
    shareN: 3,
    shares: null,
    shareErr: null,
    custodian: 0,
    seen: 0,
    refChoice: 'paste',
    measurementText: '',
    fleetTCB,
    minTCB: fleetTCB ?? zeroTCB,
    allowSMT: false,
    output: 'raw',
    dest: '',
    name: '',
    starting: false,
    opID: null,
    progress: null,
    runErr: null,
    result: null,
    refVersion: null,
    refPending: null,
    refErr: null,
  };
}

/** wizardReducer applies one action; it is pure (randomness comes in the action). */
export function wizardReducer(s: WizardState, a: WizardAction): WizardState {
  switch (a.type) {
    case 'goto':
      return { ...s, step: a.step };
    case 'edit':
      return { ...s, ...a.patch };
    case 'source':
      return { ...s, source: a.source, disk: null };
    case 'inspecting':
      return { ...s, inspecting: true, inspectErr: null, convertCmd: null, disk: null, rawConfirmed: false };
    case 'inspected':
      return {
        ...s,
        inspecting: false,
        disk: a.disk,
        name: s.name || a.baseName,
        dest: defaultDest(s.source.trim(), s.output),
        mode: a.disk.root_partition ? 'os' : s.mode,
      };
    case 'inspect-failed':
      return { ...s, inspecting: false, inspectErr: a.message, convertCmd: a.convertCmd };
    case 'recovery':
      // A recovery keyslot always has a passphrase to show; the officer confirms anew.
      return { ...s, recovery: a.recovery, savedIt: false, passphrase: a.recovery !== 'none' && !s.passphrase ? a.fresh : s.passphrase };
    case 'share-params':
      return { ...s, shareM: a.m ?? s.shareM, shareN: a.n ?? s.shareN, shares: null };
    case 'shares':
      return { ...s, shares: a.shares, shareErr: null, custodian: 0, seen: 0, savedIt: false };
    case 'share-failed':
      return { ...s, shareErr: a.message };
    case 'custodian':
      return { ...s, custodian: a.index, seen: Math.max(s.seen, a.index) };
    case 'output':
      return { ...s, output: a.output, dest: defaultDest(s.source.trim(), a.output) };
    case 'run-starting':
      return { ...s, runErr: null, progress: null, result: null, starting: true };
    case 'run-named':
      return { ...s, opID: a.opID, step: Steps.encrypt };
    case 'run-start-ended':
      return { ...s, starting: false };
    case 'progress':
      return { ...s, progress: a.progress };
    case 'run-failed':
      return { ...s, runErr: a.err };
    case 'finished':
      // The passphrase has done its job; forget it in this page.
      return { ...s, result: a.result, passphrase: '' };
    case 'references':
      return {
        ...s,
        refVersion: a.version === undefined ? s.refVersion : a.version,
        refPending: a.pending === undefined ? s.refPending : a.pending,
        refErr: a.err === undefined ? s.refErr : a.err,
      };
    case 'retry':
      return { ...s, opID: null, progress: null, runErr: null, step: Steps.output };
  }
}

/** sharesInvalid says why a threshold cannot work, or null. */
export function sharesInvalid(s: Pick<WizardState, 'shareM' | 'shareN'>): string | null {
  return s.shareM > s.shareN
    ? `A threshold of ${s.shareM} needs at least ${s.shareM} shares: any ${s.shareM} of ${s.shareN} could never rebuild the passphrase.`
    : null;
}

/** measurements parses what the officer pasted on the reference values step. */
export function measurements(s: Pick<WizardState, 'measurementText'>): ParsedMeasurements {
  return parseMeasurements(s.measurementText);
}

/** running is whether an operation was started and has not ended. */
export function running(s: WizardState): boolean {
  return s.opID !== null && !s.progress?.finished && !s.runErr;
}

/** canNext is whether the current step is complete (on the output step: whether Encrypt may start). */
export function canNext(s: WizardState, parsed: ParsedMeasurements = measurements(s)): boolean {
  switch (s.step) {
    case Steps.source:
      return !!s.disk && (!s.disk.raw_warning || s.rawConfirmed);
    case Steps.mode:
      return true;
    case Steps.keys:
      return s.recovery === 'none' || (s.savedIt && (s.recovery === 'passphrase' || s.shares !== null));
    case Steps.references:
      return s.refChoice === 'first-boot' || (parsed.values.length > 0 && parsed.errors.length === 0);
    case Steps.output:
      return !!s.dest.trim() && !!s.name.trim();
    default:
      return false;
  }
}
