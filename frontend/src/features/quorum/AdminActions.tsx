import { Alert, Badge, Button, Card, Group, Modal, Progress, Stack, Text, Textarea, Title, Tooltip } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconCheck, IconDownload, IconPrinter, IconShieldLock, IconX } from '@tabler/icons-react';
import { useEffect, useState } from 'react';
import { api, type AdminAction } from '../../api';
import { ErrorNotice, formatTime, shortHex, ShareList } from '../../components/common';
import { useReauth } from '../../components/Reauth';
import { useAction } from '../../hooks/useAction';
import { consoleInfo } from '../../stores/console';
import { openAdminActions } from '../../stores/approvals';
import { useResource } from '../../stores/resource';
import { useSession } from '../../stores/session';
import { downloadBackup } from './outcome';

const kindLabels: Record<string, string> = {
  'recovery.shares': 'Recovery shares',
  'backup.export': 'Backup',
  'officer.add': 'Add officer',
  'officer.role': 'Change role',
  'officer.remove': 'Remove officer',
  'policy.set': 'Loosen policy',
  'reference.set': 'Trust reference values',
  'volume.destroy': 'Destroy volume',
  'quorum.rules': 'Two-person rule',
  'auto_unseal.setup': 'Set up auto-unseal',
  'auto_unseal.remove': 'Remove auto-unseal',
};

/**
 * AdminActions lists the custody actions that wait for admins under the
 * two-person rule, with their quorum progress; admins approve or deny
 * them, and the admin who asked for a secret result collects it once.
 */
export function AdminActions() {
  const r = useResource(openAdminActions);
  const me = useSession().session;
  const admin = me?.role === 'admin';
  const desktop = useResource(consoleInfo).data?.mode === 'desktop';
  const reauth = useReauth();
  const action = useAction();
  const busy = action.busy;
  const [notes, setNotes] = useState<Record<string, string>>({});
  const [shares, setShares] = useState<string[] | null>(null);
  // Votes cast while this screen was closed reached no subscriber: read afresh.
  useEffect(() => {
    void openAdminActions.reload();
  }, []);
  const list = r.data ?? [];
  if (r.error) return <ErrorNotice error={r.error} onRetry={r.reload} />;
  // The shares modal outlives the action's card (delivered: no longer listed).
  if (list.length === 0 && !shares) return null;

  const run = (key: string, fn: () => Promise<void>, fail: string) =>
    action.run(
      key,
      async () => {
        await fn();
        void openAdminActions.reload();
      },
      { fail },
    );
  const approve = (a: AdminAction) =>
    run(a.id + ':a', async () => {
      const out = await reauth(() => api().approvals.approveAction(a.id, a.hash));
      const got = (out.action.votes ?? []).length;
      notifications.show({
        color: 'teal',
        title: out.done ? 'Approved and carried out' : out.action.status === 'approved' ? 'Approved' : `Approval recorded (${got} of ${out.action.approvals_needed})`,
        message: out.action.status === 'approved' ? `${a.requested_by} can now collect the result, once.` : a.summary,
      });
    }, 'Not recorded');
  const deny = (a: AdminAction) =>
    run(a.id + ':d', async () => {
      await reauth(() => api().approvals.denyAction(a.id, notes[a.id] ?? ''));
      notifications.show({ color: 'orange', title: 'Denied', message: `${a.summary}: refused for good.` });
    }, 'Not recorded');
  const collect = (a: AdminAction) =>
    run(a.id + ':c', async () => {
      if (a.kind === 'recovery.shares') {
        setShares(await reauth(() => api().keys.collectShares(a.id)));
      } else if (a.kind === 'auto_unseal.setup') {
        await reauth(() => api().keys.collectAutoUnseal(a.id));
        notifications.show({ color: 'teal', title: 'Auto-unseal set up', message: 'The master key is wrapped by the approved token.' });
      } else if (desktop) {
        const path = await api().console.pickSaveFile('Save the encrypted backup', `keyholder-${new Date().toISOString().slice(0, 10)}.khbackup`);
        if (!path) return;
        await reauth(() => api().keys.collectBackupTo(a.id, path));
        notifications.show({ color: 'teal', title: 'Backup written', message: path });
      } else {
        const f = await reauth(() => api().keys.collectBackup(a.id));
        downloadBackup(f);
        notifications.show({ color: 'teal', title: 'Backup downloaded', message: f.name });
      }
    }, 'Not collected');

  return (
    <Stack mb="xl" data-testid="admin-actions">
      <Title order={3}>Admin actions</Title>
      <Text size="sm" c="dimmed">
        Custody changes under the two-person rule: each takes effect only when enough distinct admins approved it. An approval is bound to the
        exact parameters shown.
      </Text>
      {list.map((a) => {
        const votes = a.votes ?? [];
        const mine = votes.some((v) => v.officer === me?.officer);
        const left = Math.max(0, a.approvals_needed - votes.length);
        return (
          <Card withBorder key={a.id} data-testid="admin-action-card" data-action={a.id} data-kind={a.kind} data-status={a.status}>
            <Group justify="space-between" mb="xs">
              <Group gap="xs">
                <Badge size="lg" color="grape" leftSection={<IconShieldLock size={14} />}>
                  {kindLabels[a.kind] ?? a.kind}
                </Badge>
                <Title order={4}>{a.summary}</Title>
              </Group>
              <Tooltip label={`expires ${formatTime(a.expires_at)}`}>
                <Badge variant="light" color={a.status === 'approved' ? 'teal' : 'gray'}>
                  {a.status}
                </Badge>
              </Tooltip>
            </Group>
            <Group gap="xs" mb="xs">
              <Text size="sm" data-testid="quorum-progress">
                {votes.length} of {a.approvals_needed} admins
              </Text>
              <Progress value={(100 * votes.length) / a.approvals_needed} w={160} />
              <Text size="xs" c="dimmed">
                {votes.map((v) => v.officer).join(', ')}
                {a.status === 'pending' && left > 0 ? ` · ${left} more needed` : ''}
              </Text>
            </Group>
            <Text size="xs" c="dimmed">
              asked by {a.requested_by} {formatTime(a.created_at)} · {a.id} · parameters {shortHex(a.hash, 16)}
            </Text>
            {a.status === 'pending' && admin && (
              <Group mt="md" align="flex-end">
                <Textarea
                  placeholder="Note for the audit log (optional)"
                  autosize
                  minRows={1}
                  style={{ flex: 1 }}
                  value={notes[a.id] ?? ''}
                  onChange={(e) => setNotes({ ...notes, [a.id]: e.currentTarget.value })}
                  onKeyDown={(e) => e.stopPropagation()}
                />
                <Button color="red" variant="light" leftSection={<IconX size={16} />} loading={busy === a.id + ':d'} onClick={() => void deny(a)} data-testid="admin-deny">
                  Deny
                </Button>
                <Tooltip label="you approved it already" disabled={!mine}>
                  <Button color="teal" leftSection={<IconCheck size={16} />} loading={busy === a.id + ':a'} disabled={mine} onClick={() => void approve(a)} data-testid="admin-approve">
                    Approve
                  </Button>
                </Tooltip>
              </Group>
            )}
            {a.status === 'approved' && a.secret && a.requested_by === me?.officer && (
              <Group mt="md">
                <Button leftSection={<IconDownload size={16} />} loading={busy === a.id + ':c'} onClick={() => void collect(a)} data-testid="admin-collect">
                  {a.kind === 'recovery.shares' ? 'Show the shares (once)' : a.kind === 'auto_unseal.setup' ? 'Set up auto-unseal (once)' : 'Get the backup (once)'}
                </Button>
              </Group>
            )}
            {a.status === 'approved' && a.secret && a.requested_by !== me?.officer && (
              <Text size="sm" mt="xs">
                Approved; only {a.requested_by} receives the result, once.
              </Text>
            )}
          </Card>
        );
      })}
      {shares && (
        <Modal opened onClose={() => setShares(null)} title={`${shares.length} recovery shares`} size="lg" centered>
          <Stack className="print-area">
            <Alert color="orange" className="no-print">
              They are shown once and not stored. Give each share to a different person.
            </Alert>
            <ShareList shares={shares} testId="recovery-share" />
            <Group justify="flex-end" className="no-print">
              <Button variant="light" leftSection={<IconPrinter size={16} />} onClick={() => window.print()}>
                Print
              </Button>
              <Button onClick={() => setShares(null)}>I have handed them out</Button>
            </Group>
          </Stack>
        </Modal>
      )}
    </Stack>
  );
}
