import { Badge, Button, Card, Group, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useCallback, useEffect, useState } from 'react';
import { api, ApiError, Events, type SessionInfo } from '../../api';
import { ErrorNotice, formatTime } from '../../components/common';
import { useReauth } from '../../components/Reauth';
import { useAction } from '../../hooks/useAction';
import { useSession } from '../../stores/session';

/** shortAgent names a browser from its User-Agent, briefly. */
function shortAgent(ua: string, device: string): string {
  if (device === 'desktop') return 'desktop app';
  const m = /(Firefox|Edg|Chrome|Chromium|Safari)\/([\d.]+)/.exec(ua);
  const os = /Windows|Mac OS X|Linux|Android|iPhone|iPad/.exec(ua)?.[0] ?? '';
  return m ? `${m[1] === 'Edg' ? 'Edge' : m[1]} ${m[2].split('.')[0]}${os ? ' · ' + os : ''}` : ua || 'unknown browser';
}

/** Sessions lists the live officer sessions; admins can end any of them. */
export function Sessions() {
  const me = useSession().session;
  const admin = me?.role === 'admin';
  const reauth = useReauth();
  const [list, setList] = useState<SessionInfo[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const { busy, run } = useAction();
  // load depends on admin only; the effect below reloads when that changes.
  const load = useCallback(() => {
    if (!admin) return;
    api()
      .session.list()
      .then((l) => {
        setList(l);
        setError(null);
      })
      .catch((e) => setError(e instanceof ApiError ? e : new ApiError('internal', String(e))));
  }, [admin]);
  useEffect(() => {
    load();
    if (!admin) return;
    const off = api().on(Events.sessionChanged, load);
    const t = setInterval(load, 30_000);
    return () => {
      off();
      clearInterval(t);
    };
  }, [admin, load]);
  if (!admin) return null;
  const end = (s: SessionInfo) =>
    run(
      s.id,
      async () => {
        await reauth(() => api().session.end(s.id));
        notifications.show({ color: 'teal', title: 'Session ended', message: `${s.officer} must log in again on that device.` });
        load();
      },
      { fail: 'Not ended' },
    );
  return (
    <Card withBorder data-testid="sessions">
      <Title order={4} mb="xs">
        Live sessions
      </Title>
      <Text size="sm" c="dimmed" mb="sm">
        Every officer logged in, on every device. Ending a session logs that device out; changing an officer's role or removing them ends all of theirs.
      </Text>
      {error && <ErrorNotice error={error} onRetry={load} />}
      <Table data-testid="sessions-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Officer</Table.Th>
            <Table.Th>Device</Table.Th>
            <Table.Th>Address</Table.Th>
            <Table.Th>Since</Table.Th>
            <Table.Th>Last seen</Table.Th>
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {(list ?? []).map((s) => (
            <Table.Tr key={s.id} data-testid="session-row" data-officer={s.officer} data-current={s.current ? 'true' : 'false'}>
              <Table.Td>
                <Group gap={6}>
                  <Text size="sm" fw={500}>
                    {s.officer}
                  </Text>
                  <Badge size="xs" variant="light">
                    {s.role}
                  </Badge>
                  {s.current && (
                    <Badge size="xs" color="teal">
                      this window
                    </Badge>
                  )}
                  {s.locked && (
                    <Badge size="xs" color="gray">
                      locked
                    </Badge>
                  )}
                </Group>
              </Table.Td>
              <Table.Td title={s.user_agent}>{shortAgent(s.user_agent, s.device)}</Table.Td>
              <Table.Td ff="monospace" fz="xs">
                {s.address}
              </Table.Td>
              <Table.Td fz="xs">{formatTime(s.since)}</Table.Td>
              <Table.Td fz="xs">{formatTime(s.last_seen)}</Table.Td>
              <Table.Td>
                {!s.current && (
                  <Button size="xs" color="red" variant="light" loading={busy === s.id} onClick={() => void end(s)} data-testid="end-session">
                    End session
                  </Button>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Card>
  );
}

/** ImageFolders edits where the web console may read and write disk images. */
export function ImageFolders() {
  const me = useSession().session;
  const admin = me?.role === 'admin';
  const reauth = useReauth();
  const [text, setText] = useState('');
  const { busy, run } = useAction();
  useEffect(() => {
    if (!me?.logged_in) return;
    api()
      .images.imageFolders()
      .then((f) => setText(f.join(', ')))
      .catch(() => {});
  }, [me?.logged_in]);
  const save = () =>
    run(
      'save',
      async () => {
        const folders = text
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
        await reauth(() => api().images.setImageFolders(folders));
        notifications.show({ color: 'teal', title: 'Image folders saved', message: folders.length ? folders.join(', ') : 'The web console may not touch files.' });
      },
      { fail: 'Not saved' },
    );
  return (
    <Card withBorder data-testid="image-folders">
      <Title order={4} mb="xs">
        Image folders
      </Title>
      <Text size="sm" c="dimmed" mb="sm">
        Folders on the console's machine that the web console may read disk images from and write prepared images to (admins and approvers only). Empty: none. The
        desktop app uses your own machine's files.
      </Text>
      <Stack gap="xs">
        <TextInput
          placeholder="/srv/images, /srv/prepared"
          value={text}
          disabled={!admin}
          onChange={(e) => setText(e.currentTarget.value)}
          data-testid="image-folders-input"
        />
        {admin && (
          <Group>
            <Button loading={busy === 'save'} onClick={() => void save()} data-testid="image-folders-save">
              Save folders
            </Button>
          </Group>
        )}
      </Stack>
    </Card>
  );
}
