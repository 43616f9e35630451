import { MantineProvider } from '@mantine/core';
import { notifications, Notifications } from '@mantine/notifications';
import { act, cleanup, renderHook } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api';
import { useAction } from './useAction';

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
});

const wrapper = ({ children }: { children: React.ReactNode }) => (
  <MantineProvider>
    <Notifications />
    {children}
  </MantineProvider>
);

describe('useAction', () => {
  it('marks the key busy while the action runs and clears it after', async () => {
    const { result } = renderHook(() => useAction(), { wrapper });
    let finish!: () => void;
    let done!: Promise<boolean>;
    act(() => {
      done = result.current.run('save', () => new Promise<void>((r) => (finish = r)));
    });
    expect(result.current.busy).toBe('save');
    await act(async () => {
      finish();
      expect(await done).toBe(true);
    });
    expect(result.current.busy).toBeNull();
  });

  it('notifies a failure under the given title and resolves false', async () => {
    const show = vi.spyOn(notifications, 'show');
    const { result } = renderHook(() => useAction(), { wrapper });
    let ok = true;
    await act(async () => {
      ok = await result.current.run('x', () => Promise.reject(new ApiError('conflict', 'the volume is revoked')), { fail: 'Not saved' });
    });
    expect(ok).toBe(false);
    expect(result.current.busy).toBeNull();
    expect(show).toHaveBeenCalledWith(expect.objectContaining({ title: 'Not saved', message: 'the volume is revoked' }));
  });

  it('stays quiet on a cancelled re-authentication', async () => {
    const show = vi.spyOn(notifications, 'show');
    const onError = vi.fn(() => true);
    const { result } = renderHook(() => useAction(), { wrapper });
    await act(async () => {
      await result.current.run('x', () => Promise.reject(new ApiError('canceled', 'cancelled')), { onError });
    });
    expect(show).not.toHaveBeenCalled();
    expect(onError).not.toHaveBeenCalled();
  });

  it('lets the caller handle an error on its form instead of a notification', async () => {
    const show = vi.spyOn(notifications, 'show');
    const seen: string[] = [];
    const { result } = renderHook(() => useAction(), { wrapper });
    await act(async () => {
      await result.current.run('x', () => Promise.reject(new ApiError('invalid', 'passphrase too short')), {
        onError: (e) => {
          seen.push(e.message);
          return true;
        },
      });
    });
    expect(seen).toEqual(['passphrase too short']);
    expect(show).not.toHaveBeenCalled();
  });
});
