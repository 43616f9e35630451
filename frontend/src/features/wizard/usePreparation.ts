import { useEffect, useRef, type Dispatch } from 'react';
import { api, ApiError, Events, type Progress } from '../../api';
import { useReauth } from '../../components/Reauth';
import { imageList } from '../../stores/images';
import { measurements, Steps, type WizardAction, type WizardState } from './state';

const asApiError = (e: unknown) => (e instanceof ApiError ? e : new ApiError('internal', String(e)));
const errText = (e: unknown) => (e instanceof ApiError ? e.message : String(e));

/** Preparation is what the wizard's steps call on the console. */
export interface Preparation {
  inspect(): Promise<void>;
  browse(save: boolean): Promise<void>;
  makeShares(): Promise<void>;
  start(): Promise<void>;
  cancel(): Promise<void>;
  /** retry forgets a failed operation and goes back to the output step. */
  retry(): void;
}

/**
 * usePreparation runs the wizard's calls: inspecting the source, splitting
 * the passphrase, and the preparation itself with its progress events,
 * outcome and cancel. It reads the wizard's current state through a ref, so
 * the progress listener, registered once, never sees stale choices.
 */
export function usePreparation(s: WizardState, dispatch: Dispatch<WizardAction>): Preparation {
  const reauth = useReauth();
  const state = useRef(s);
  state.current = s;
  const opRef = useRef<string | null>(null);
  // settledRef is the operation whose outcome the page has shown;
  // cancelRef, a cancel asked for before the console named the operation.
  const settledRef = useRef<string | null>(null);
  const cancelRef = useRef(false);

  const finish = async (p: Progress) => {
    if (settledRef.current === p.id) return;
    settledRef.current = p.id;
    if (p.error) {
      dispatch({ type: 'run-failed', err: ApiError.from(p.error) });
      return;
    }
    try {
      const r = await api().images.result(p.id);
      dispatch({ type: 'finished', result: r });
      void imageList.reload();
      const cur = state.current;
      const parsed = measurements(cur);
      if (cur.refChoice === 'paste' && parsed.values.length > 0) {
        try {
          const out = await reauth(() =>
            api().images.setReference(
              r.manifest.image_id,
              {
                measurements: parsed.values,
                minimum_tcb: cur.minTCB,
                allow_migration_agent: false,
                allow_smt: cur.allowSMT,
                require_single_socket: false,
              },
              'set by the preparation wizard',
            ),
          );
          if (out.done) {
            const vs = await api().images.references(r.manifest.image_id);
            dispatch({ type: 'references', version: vs[0] ?? null });
          } else {
            dispatch({ type: 'references', pending: out.action });
          }
        } catch (e) {
          dispatch({ type: 'references', err: errText(e) });
        }
      }
      dispatch({ type: 'goto', step: Steps.summary });
    } catch (e) {
      dispatch({ type: 'run-failed', err: asApiError(e) });
    }
  };
  const finishRef = useRef(finish);
  finishRef.current = finish;

  // Progress events for our operation; registered once, reading refs.
  useEffect(
    () =>
      api().on(Events.progress, (d) => {
        const p = d as Progress;
        if (!p || p.id !== opRef.current) return;
        dispatch({ type: 'progress', progress: p });
        if (p.finished) void finishRef.current(p);
      }),
    [dispatch],
  );

  // settle asks the console how operation id stands, for when its final
  // event went by before the page knew the ID (an early failure), or a
  // cancel found it finished: the page never waits for an event that came.
  const settle = async (id: string) => {
    try {
      const r = await api().images.result(id);
      if (opRef.current !== id || settledRef.current === id) return;
      void finishRef.current({ id, stage: 'done', finished: true, done: r.manifest.output.size, total: r.manifest.output.size, rate: 0 });
    } catch (e) {
      if (e instanceof ApiError && e.code === 'conflict') return; // still running: its events follow
      if (opRef.current !== id || settledRef.current === id) return;
      settledRef.current = id;
      dispatch({ type: 'run-failed', err: asApiError(e) });
    }
  };

  return {
    inspect: async () => {
      const src = state.current.source;
      dispatch({ type: 'inspecting' });
      try {
        const disk = await api().images.inspect(src.trim());
        dispatch({ type: 'inspected', disk, baseName: baseName(src) });
      } catch (e) {
        dispatch({
          type: 'inspect-failed',
          message: errText(e),
          convertCmd: e instanceof ApiError && e.code === 'unsupported_format' ? conversionCommand(e.message) : null,
        });
      }
    },

    browse: async (save: boolean) => {
      try {
        const p = save
          ? await api().console.pickSaveFile('Where should the encrypted image go?', state.current.dest.split('/').pop() ?? '')
          : await api().console.pickFile('Choose the disk image to encrypt');
        if (!p) return;
        if (save) dispatch({ type: 'edit', patch: { dest: p } });
        else dispatch({ type: 'source', source: p });
      } catch (e) {
        dispatch({ type: 'inspect-failed', message: errText(e), convertCmd: null });
      }
    },

    makeShares: async () => {
      const { passphrase, shareM, shareN } = state.current;
      try {
        dispatch({ type: 'shares', shares: await api().images.splitPassphrase(passphrase, shareM, shareN) });
      } catch (e) {
        dispatch({ type: 'share-failed', message: errText(e) });
      }
    },

    start: async () => {
      const cur = state.current;
      dispatch({ type: 'run-starting' });
      cancelRef.current = false;
      settledRef.current = null;
      try {
        const id = await reauth(() =>
          api().images.prepare({
            source: cur.source.trim(),
            dest: cur.dest.trim(),
            mode: cur.mode,
            output: cur.output,
            sector_size: cur.sector === '512' ? 512 : 4096,
            name: cur.name.trim(),
            recovery_passphrase: cur.recovery !== 'none' ? cur.passphrase : '',
            confirm_raw: cur.rawConfirmed,
          }),
        );
        opRef.current = id;
        dispatch({ type: 'run-named', opID: id });
        if (cancelRef.current) await api().images.cancel(id).catch(() => {});
        await settle(id);
      } catch (e) {
        dispatch({ type: 'run-failed', err: asApiError(e) });
      } finally {
        dispatch({ type: 'run-start-ended' });
      }
    },

    // Cancel works at every moment: before the console named the operation
    // (the cancel is sent as soon as it does), while it runs, and after it
    // ended without the page hearing of it (the outcome is fetched).
    cancel: async () => {
      cancelRef.current = true;
      const id = opRef.current;
      if (!id) return;
      try {
        await api().images.cancel(id);
      } catch (e) {
        if (opRef.current === id && settledRef.current !== id) {
          settledRef.current = id;
          dispatch({ type: 'run-failed', err: asApiError(e) });
          return;
        }
      }
      await settle(id);
    },

    retry: () => {
      opRef.current = null;
      dispatch({ type: 'retry' });
    },
  };
}

/** conversionCommand picks the qemu-img command out of an unsupported_format message. */
function conversionCommand(message: string): string | null {
  const m = /qemu-img convert .*$/.exec(message);
  return m ? m[0] : null;
}

function baseName(p: string) {
  const b = p.trim().split(/[\\/]/).pop() ?? '';
  return b.replace(/\.(raw|img|qcow2|vmdk|vhdx?|vdi)$/i, '');
}
