import { Alert, Badge, Button, Center, Code, CopyButton, Group, Loader, Stack, Text, ThemeIcon, Title, Tooltip } from '@mantine/core';
import { IconAlertTriangle, IconFlask } from '@tabler/icons-react';
import type { ReactNode } from 'react';
import { notifications } from '@mantine/notifications';
import { ApiError, type GuestStatus } from '../api';

export function PageHeader({ title, description, right }: { title: string; description: string; right?: ReactNode }) {
  return (
    <Group justify="space-between" align="flex-start" mb="lg">
      <div>
        <Title order={2}>{title}</Title>
        <Text c="dimmed" size="sm" maw={720}>
          {description}
        </Text>
      </div>
      {right}
    </Group>
  );
}

export function EmptyState({ icon, title, children, testId }: { icon: ReactNode; title: string; children: ReactNode; testId?: string }) {
  return (
    <Center py={60} data-testid={testId}>
      <Stack align="center" gap="xs" maw={460}>
        <ThemeIcon size={56} radius="xl" variant="light">
          {icon}
        </ThemeIcon>
        <Title order={4}>{title}</Title>
        <Text c="dimmed" ta="center" size="sm">
          {children}
        </Text>
      </Stack>
    </Center>
  );
}

export function ErrorNotice({ error, onRetry }: { error: ApiError; onRetry?: () => void }) {
  return (
    <Alert color="red" icon={<IconAlertTriangle />} title="Something went wrong" mb="md" data-testid="error-notice">
      <Text size="sm">{error.message}</Text>
      {onRetry && (
        <Button size="xs" variant="light" color="red" mt="xs" onClick={onRetry}>
          Try again
        </Button>
      )}
    </Alert>
  );
}

export function Loading() {
  return (
    <Center py={60}>
      <Loader />
    </Center>
  );
}

export function SimulatedBadge() {
  return (
    <Tooltip label="Evidence signed by Keyholder's simulated AMD root — not genuine hardware">
      <Badge color="grape" variant="filled" leftSection={<IconFlask size={12} />} data-testid="simulated-badge">
        SIMULATED
      </Badge>
    </Tooltip>
  );
}

const statusColor: Record<GuestStatus, string> = {
  verified: 'teal',
  pending: 'yellow',
  failing: 'red',
  stale: 'gray',
  revoked: 'dark',
};

export function StatusBadge({ status }: { status: GuestStatus }) {
  return (
    <Badge color={statusColor[status] ?? 'gray'} variant="light">
      {status}
    </Badge>
  );
}

export function statusColorOf(s: GuestStatus) {
  return statusColor[s];
}

export function formatTime(t: string | null | undefined) {
  if (!t) return '—';
  const d = new Date(t);
  if (Number.isNaN(d.getTime()) || d.getFullYear() < 2000) return '—';
  return d.toLocaleString();
}

export function shortHex(h: string, n = 12) {
  if (!h) return '—';
  return h.length > n ? h.slice(0, n) + '…' : h;
}

/** notifyError tells the officer an action failed (a cancelled re-authentication stays quiet). */
export function notifyError(e: unknown, title = 'That did not work') {
  if (e instanceof ApiError && e.code === 'canceled') return;
  notifications.show({ color: 'red', title, message: e instanceof ApiError ? e.message : String(e) });
}

/** Shamir shares, each numbered, in full and with a copy button (hidden when printed). */
export function ShareList({ shares, testId }: { shares: string[]; testId: string }) {
  return (
    <Stack gap={6}>
      {shares.map((s, i) => (
        <div key={s}>
          <Text size="xs" c="dimmed">
            Share {i + 1} of {shares.length}
          </Text>
          <Group wrap="nowrap" align="flex-start">
            <Code block style={{ flex: 1, wordBreak: 'break-all' }} data-testid={testId}>
              {s}
            </Code>
            <CopyButton value={s}>
              {({ copied, copy }) => (
                <Button size="xs" variant="subtle" onClick={copy} className="no-print">
                  {copied ? 'Copied' : 'Copy'}
                </Button>
              )}
            </CopyButton>
          </Group>
        </div>
      ))}
    </Stack>
  );
}
