import { Alert, Button, Group, Modal, PasswordInput, Stack, Text } from '@mantine/core';
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from 'react';
import { api, ApiError } from '../api';
import { session } from '../stores/session';

type Reauth = <T>(action: () => Promise<T>) => Promise<T>;

const Ctx = createContext<Reauth>((a) => a());

/**
 * ReauthProvider lets sensitive actions (approve, rotate, destroy) ask for
 * the passphrase again when the officer's last authentication is too old:
 * the action runs; if it answers reauth_required, a dialog asks for the
 * passphrase, renews the session (Session.Unlock) and runs it once more.
 */
export function ReauthProvider({ children }: { children: ReactNode }) {
  const [open, setOpen] = useState(false);
  const [pass, setPass] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const waiter = useRef<{ resolve: () => void; reject: (e: unknown) => void } | null>(null);

  const ask = () =>
    new Promise<void>((resolve, reject) => {
      waiter.current = { resolve, reject };
      setPass('');
      setErr(null);
      setOpen(true);
    });

  const reauth: Reauth = useCallback(async (action) => {
    try {
      return await action();
    } catch (e) {
      if (!(e instanceof ApiError) || e.code !== 'reauth_required') throw e;
    }
    await ask();
    return action();
  }, []);

  const submit = async () => {
    setBusy(true);
    try {
      await api().session.unlock(pass);
      await session.refresh();
      setPass('');
      setOpen(false);
      waiter.current?.resolve();
    } catch (e) {
      setErr(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  const cancel = () => {
    setOpen(false);
    waiter.current?.reject(new ApiError('canceled', 'Cancelled: the action needs your passphrase.'));
  };
  const cancelRef = useRef(cancel);
  cancelRef.current = cancel;
  const openRef = useRef(open);
  openRef.current = open;

  // Escape closes this dialog only. Every open Mantine dialog listens for
  // Escape on the window; this provider mounts before any dialog of a screen,
  // so its listener runs first and stops the event from closing the dialog
  // that asked for the passphrase (and losing its form).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!openRef.current || e.key !== 'Escape' || e.isComposing) return;
      e.stopImmediatePropagation();
      e.preventDefault();
      cancelRef.current();
    };
    window.addEventListener('keydown', onKey, { capture: true });
    return () => window.removeEventListener('keydown', onKey, { capture: true });
  }, []);

  return (
    <Ctx.Provider value={reauth}>
      {children}
      {/* Above every other dialog: it is often asked for by one (Add officer), and must be the one that is focused and closed by Escape. */}
      <Modal opened={open} onClose={cancel} title="Confirm it is you" centered zIndex={400} trapFocus returnFocus closeOnEscape={false} data-testid="reauth-dialog">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void submit();
          }}
        >
          <Stack>
            <Text size="sm">This action needs a recent authentication. Enter your passphrase again.</Text>
            <PasswordInput
              label="Your passphrase"
              value={pass}
              onChange={(e) => setPass(e.currentTarget.value)}
              data-autofocus
              autoFocus
              autoComplete="current-password"
              data-testid="reauth-pass"
            />
            {err && <Alert color="red">{err}</Alert>}
            <Group justify="flex-end">
              <Button variant="default" onClick={cancel}>
                Cancel
              </Button>
              <Button type="submit" loading={busy} disabled={!pass} title={!pass ? 'Enter your passphrase first' : undefined} data-testid="reauth-submit">
                Confirm
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </Ctx.Provider>
  );
}

export function useReauth(): Reauth {
  return useContext(Ctx);
}
