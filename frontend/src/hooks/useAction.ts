import { useCallback, useState } from 'react';
import { ApiError } from '../api';
import { notifyError } from '../components/common';

/** ActionOptions say how a failed action is reported. */
export interface ActionOptions {
  /** fail is the notification's title when the action fails. */
  fail?: string;
  /**
   * onError sees an error before it is notified (never a cancelled
   * re-authentication); returning true means it handled it, for a form that
   * shows the message on its field and keeps what was typed.
   */
  onError?: (e: ApiError) => boolean;
}

/** Action is what useAction returns. */
export interface Action {
  /** busy is the key of the action that runs now, or null. */
  busy: string | null;
  /**
   * run marks key busy, runs fn and reports a failure (a cancelled
   * re-authentication stays quiet). It resolves to whether fn succeeded; it
   * never rejects.
   */
  run: (key: string, fn: () => Promise<unknown>, opts?: ActionOptions) => Promise<boolean>;
}

/**
 * useAction is the busy/try/notify pattern of a button that calls the
 * console: the button shows it runs, a failure becomes a notification (or
 * the caller's own message), and the busy mark clears either way.
 */
export function useAction(): Action {
  const [busy, setBusy] = useState<string | null>(null);
  const run = useCallback(async (key: string, fn: () => Promise<unknown>, opts?: ActionOptions) => {
    setBusy(key);
    try {
      await fn();
      return true;
    } catch (e) {
      const handled = e instanceof ApiError && e.code !== 'canceled' && opts?.onError?.(e) === true;
      if (!handled) notifyError(e, opts?.fail);
      return false;
    } finally {
      setBusy(null);
    }
  }, []);
  return { busy, run };
}
