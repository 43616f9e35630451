import { Alert, Button, Card, Center, Group, Loader, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { IconLock, IconShieldLock } from '@tabler/icons-react';
import { useState, type ReactNode } from 'react';
import { api, ApiError } from '../api';
import { session, useSession } from '../stores/session';
import { RemoteConsoleLine } from './DesktopGate';

/**
 * SessionGate shows the first-run setup, the login or the lock screen until
 * an officer has an open session, then its children.
 */
export function SessionGate({ children }: { children: ReactNode }) {
  const { session: s, error } = useSession();
  if (!s) {
    return (
      <Center h="100vh">
        {error ? (
          <Alert color="red" title="The console does not answer" maw={480}>
            {error.message}
            <Button mt="sm" size="xs" onClick={session.refresh}>
              Try again
            </Button>
          </Alert>
        ) : (
          <Loader />
        )}
      </Center>
    );
  }
  if (!s.initialized) return <SetupScreen />;
  if (!s.logged_in) return <LoginScreen />;
  if (s.locked) return <LockScreen officer={s.officer} />;
  return <>{children}</>;
}

function Frame({ title, subtitle, children }: { title: string; subtitle: string; children: ReactNode }) {
  return (
    <Center mih="100vh" p="md">
      <Card withBorder shadow="sm" padding="xl" w={440}>
        <Group gap="xs" mb="xs">
          <IconShieldLock size={30} color="var(--mantine-color-teal-6)" />
          <Title order={3}>{title}</Title>
        </Group>
        <Text size="sm" c="dimmed" mb="lg">
          {subtitle}
        </Text>
        {children}
      </Card>
    </Center>
  );
}

function useSubmit() {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const run = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setErr(null);
    try {
      await fn();
      await session.refresh();
    } catch (e) {
      setErr(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return { busy, err, run };
}

export function SetupScreen() {
  const [name, setName] = useState('');
  const [pass, setPass] = useState('');
  const [again, setAgain] = useState('');
  const { busy, err, run } = useSubmit();
  const mismatch = again.length > 0 && pass !== again;
  return (
    <Frame
      title="Set up Keyholder"
      subtitle="Create the first officer. Their passphrase protects the master key that wraps every disk key; Keyholder cannot recover it for you, so choose a long one and keep it safe (you can add recovery shares later)."
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!mismatch) void run(() => api().session.setup(name, pass));
        }}
      >
        <Stack>
          <TextInput label="Officer name" value={name} onChange={(e) => setName(e.currentTarget.value)} required data-testid="setup-name" />
          <PasswordInput
            label="Passphrase"
            description="At least 12 characters; a few unrelated words work well."
            value={pass}
            onChange={(e) => setPass(e.currentTarget.value)}
            required
            data-testid="setup-pass"
          />
          <PasswordInput
            label="Passphrase again"
            value={again}
            onChange={(e) => setAgain(e.currentTarget.value)}
            error={mismatch ? 'The passphrases differ' : undefined}
            required
            data-testid="setup-pass2"
          />
          {err && (
            <Alert color="red" data-testid="setup-error">
              {err}
            </Alert>
          )}
          <Button type="submit" loading={busy} disabled={!name || !pass || mismatch} data-testid="setup-submit">
            Create officer and master key
          </Button>
          <Text size="xs" c="dimmed">
            Deriving the key from the passphrase takes about a second on purpose: it makes guessing slow.
          </Text>
        </Stack>
      </form>
    </Frame>
  );
}

export function LoginScreen() {
  const [name, setName] = useState('');
  const [pass, setPass] = useState('');
  const { busy, err, run } = useSubmit();
  return (
    <Frame title="Officer login" subtitle="Log in with your officer name and passphrase. The first login after a start also unlocks the key service.">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run(() => api().session.login(name, pass));
        }}
      >
        <Stack>
          <TextInput label="Officer name" value={name} onChange={(e) => setName(e.currentTarget.value)} required data-testid="login-name" />
          <PasswordInput label="Passphrase" value={pass} onChange={(e) => setPass(e.currentTarget.value)} required data-testid="login-pass" />
          {err && (
            <Alert color="red" data-testid="login-error">
              {err}
            </Alert>
          )}
          <Button type="submit" loading={busy} disabled={!name || !pass} data-testid="login-submit">
            Log in
          </Button>
          <RemoteConsoleLine />
        </Stack>
      </form>
    </Frame>
  );
}

export function LockScreen({ officer }: { officer: string }) {
  const [pass, setPass] = useState('');
  const { busy, err, run } = useSubmit();
  return (
    <Frame title="Session locked" subtitle={`The console locked after a while without activity. ${officer}, enter your passphrase to continue.`}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run(() => api().session.unlock(pass));
        }}
      >
        <Stack>
          <PasswordInput
            label="Passphrase"
            leftSection={<IconLock size={16} />}
            value={pass}
            onChange={(e) => setPass(e.currentTarget.value)}
            required
            autoFocus
            data-testid="unlock-pass"
          />
          {err && <Alert color="red">{err}</Alert>}
          <Group grow>
            <Button variant="default" onClick={() => void run(() => api().session.logout())}>
              Log out
            </Button>
            <Button type="submit" loading={busy} disabled={!pass} data-testid="unlock-submit">
              Unlock
            </Button>
          </Group>
        </Stack>
      </form>
    </Frame>
  );
}
