import { Alert, Button, Group, Modal, PasswordInput, Stack, Text } from '@mantine/core';
import { createContext, useCallback, useContext, useRef, useState, type ReactNode } from 'react';
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
      setOpen(false);
      waiter.current?.resolve();
    } catch (e) {
      setErr(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
      setPass('');
    }
  };

  const cancel = () => {
    setOpen(false);
    waiter.current?.reject(new ApiError('canceled', 'Cancelled: the action needs your passphrase.'));
  };

  return (
    <Ctx.Provider value={reauth}>
      {children}
      <Modal opened={open} onClose={cancel} title="Confirm it is you" centered>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void submit();
          }}
        >
          <Stack>
            <Text size="sm">This action needs a recent authentication. Enter your passphrase again.</Text>
            <PasswordInput value={pass} onChange={(e) => setPass(e.currentTarget.value)} autoFocus data-testid="reauth-pass" />
            {err && <Alert color="red">{err}</Alert>}
            <Group justify="flex-end">
              <Button variant="default" onClick={cancel}>
                Cancel
              </Button>
              <Button type="submit" loading={busy} disabled={!pass} data-testid="reauth-submit">
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
