import { Alert, Anchor, Button, Card, Center, Group, Loader, SimpleGrid, Stack, Text, TextInput, Title } from '@mantine/core';
import { IconPlugConnected, IconPlugConnectedX, IconServer2, IconShieldLock, IconWorld } from '@tabler/icons-react';
import { useState, type ReactNode } from 'react';
import { ApiError } from '../api';
import { desktop, hasWails } from '../api/wails';
import { connection, useConnection } from '../stores/connection';

/**
 * DesktopGate decides, in the desktop window, which console the screens
 * talk to: on first start it asks ("This computer is the console" or
 * "Connect to a console"); with a shared console it shows a banner while
 * the connection is down. In a browser it shows its children as they are.
 */
export function DesktopGate({ children }: { children: ReactNode }) {
  if (!hasWails()) return <>{children}</>;
  return <Gate>{children}</Gate>;
}

function Gate({ children }: { children: ReactNode }) {
  const { info, error } = useConnection();
  if (!info) {
    return (
      <Center h="100vh">
        {error ? (
          <Alert color="red" title="The desktop app does not answer" maw={480}>
            {error.message}
          </Alert>
        ) : (
          <Loader />
        )}
      </Center>
    );
  }
  if (info.mode === 'choose') return <ChoiceScreen />;
  return (
    <>
      <ConnectionBanner />
      {children}
    </>
  );
}

/** ChoiceScreen is the desktop's first start: whose console is this window? */
export function ChoiceScreen() {
  const [busy, setBusy] = useState<'local' | 'remote' | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [url, setUrl] = useState('https://');
  const [pin, setPin] = useState('');
  const [ca, setCa] = useState('');
  const run = async (which: 'local' | 'remote', fn: () => Promise<import('../api').ConnectionInfo>) => {
    setBusy(which);
    setErr(null);
    try {
      connection.apply(await fn());
    } catch (e) {
      setErr(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(null);
    }
  };
  const plainHttp = /^http:\/\//i.test(url.trim());
  return (
    <Center mih="100vh" p="md">
      <Stack maw={900} w="100%" data-testid="console-choice">
        <Group gap="xs">
          <IconShieldLock size={30} color="var(--mantine-color-teal-6)" />
          <Title order={2}>Which console is this?</Title>
        </Group>
        <Text c="dimmed" size="sm">
          Keyholder decides which attested guest receives which disk key. It runs either on this computer, or once for the whole team as a
          shared console (<code>keyholder serve</code>) that every officer reaches from their own desk.
        </Text>
        <SimpleGrid cols={2} spacing="lg">
          <Card withBorder padding="lg">
            <Stack h="100%" justify="space-between">
              <div>
                <Group gap="xs" mb="xs">
                  <IconServer2 size={22} />
                  <Title order={4}>This computer is the console</Title>
                </Group>
                <Text size="sm">
                  The store, the master key and the release API for guests live on this computer. Guests can fetch their keys only while it runs
                  and is awake.
                </Text>
              </div>
              <Button onClick={() => void run('local', desktop.useLocal)} loading={busy === 'local'} disabled={busy !== null} data-testid="choose-local">
                Use this computer
              </Button>
            </Stack>
          </Card>
          <Card withBorder padding="lg">
            <form
              onSubmit={(e) => {
                e.preventDefault();
                void run('remote', () => desktop.connect(url.trim(), pin.trim(), ca.trim()));
              }}
            >
              <Stack>
                <Group gap="xs">
                  <IconWorld size={22} />
                  <Title order={4}>Connect to a console</Title>
                </Group>
                <Text size="sm">
                  A shared console for the team. The connection trusts only the certificate you pin here, and officers log in on that console.
                </Text>
                <TextInput
                  label="Console URL"
                  placeholder="https://keyholder.example:8420"
                  value={url}
                  onChange={(e) => setUrl(e.currentTarget.value)}
                  error={plainHttp ? 'Only https: officer passphrases never travel unencrypted' : undefined}
                  required
                  data-testid="connect-url"
                />
                <TextInput
                  label="Certificate pin (SPKI SHA-256)"
                  description="As keyholder serve prints it: 64 hex digits or base64."
                  value={pin}
                  onChange={(e) => setPin(e.currentTarget.value)}
                  disabled={ca !== ''}
                  data-testid="connect-pin"
                />
                <Group align="end" gap="xs" wrap="nowrap">
                  <TextInput
                    label="…or a CA file (PEM)"
                    value={ca}
                    onChange={(e) => setCa(e.currentTarget.value)}
                    disabled={pin !== ''}
                    style={{ flex: 1 }}
                    data-testid="connect-ca"
                  />
                  <Button
                    variant="default"
                    disabled={pin !== ''}
                    onClick={() =>
                      void desktop
                        .pickCAFile()
                        .then((p) => p && setCa(p))
                        .catch(() => {})
                    }
                  >
                    Browse…
                  </Button>
                </Group>
                <Button
                  type="submit"
                  loading={busy === 'remote'}
                  disabled={busy !== null || plainHttp || !url.trim() || (!pin.trim() && !ca.trim())}
                  data-testid="connect-submit"
                >
                  Connect
                </Button>
              </Stack>
            </form>
          </Card>
        </SimpleGrid>
        {err && (
          <Alert color="red" title="Not connected" data-testid="choice-error">
            {err}
          </Alert>
        )}
      </Stack>
    </Center>
  );
}

/** ConnectionBanner says when the shared console cannot be reached, and when it is back. */
export function ConnectionBanner() {
  const { info, restored } = useConnection();
  if (info?.mode !== 'remote' || !info.state) return null;
  const s = info.state;
  if (!s.connected) {
    const secs = Math.max(1, Math.round((s.retry_in_ms ?? 0) / 1000));
    return (
      <Alert
        color="red"
        variant="filled"
        radius={0}
        icon={<IconPlugConnectedX size={18} />}
        title={`The console at ${s.url} cannot be reached`}
        style={{ position: 'fixed', top: 0, left: 0, right: 0, zIndex: 400 }}
        role="alert"
        data-testid="connection-banner"
      >
        <Text size="sm" inherit>
          Keyholder tries again by itself (next attempt in about {secs} s). Decisions wait until it is back.
        </Text>
        {s.error && (
          <Text size="xs" inherit opacity={0.85} data-testid="connection-error">
            {s.error}
          </Text>
        )}
      </Alert>
    );
  }
  if (restored) {
    return (
      <Alert
        color="teal"
        variant="filled"
        radius={0}
        icon={<IconPlugConnected size={18} />}
        style={{ position: 'fixed', top: 0, left: 0, right: 0, zIndex: 400 }}
        role="status"
        data-testid="connection-restored"
      >
        Connected again to {s.url}.
      </Alert>
    );
  }
  return null;
}

/** RemoteConsoleLine names the shared console on the login screen, with a way to choose another. */
export function RemoteConsoleLine() {
  const { info } = useConnection();
  if (info?.mode !== 'remote') return null;
  return (
    <Text size="xs" c="dimmed" data-testid="remote-console">
      Console: {info.url} ·{' '}
      <Anchor
        component="button"
        type="button"
        size="xs"
        onClick={() =>
          void desktop.forget().then((ci) => {
            connection.apply(ci);
            // Every store starts again for the next console.
            window.location.reload();
          })
        }
      >
        Change console
      </Anchor>
    </Text>
  );
}
