import { Alert, Button, Card, Group, Modal, NumberInput, SimpleGrid, Stack, Text, Title } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconDatabaseExport, IconPrinter, IconPuzzle } from '@tabler/icons-react';
import { useState } from 'react';
import { api } from '../../api';
import { ShareList } from '../../components/common';
import { downloadBackup, notifyOutcome } from '../quorum/outcome';
import { useReauth } from '../../components/Reauth';
import { useAction } from '../../hooks/useAction';
import { consoleInfo } from '../../stores/console';
import { useResource } from '../../stores/resource';
import { useSession } from '../../stores/session';

/** RecoveryCard offers the admin's custody safety nets: recovery shares and encrypted backups. */
export function RecoveryCard() {
  const admin = useSession().session?.role === 'admin';
  const desktop = useResource(consoleInfo).data?.mode === 'desktop';
  const reauth = useReauth();
  const [m, setM] = useState(2);
  const [n, setN] = useState(3);
  const [shares, setShares] = useState<string[] | null>(null);
  const { busy, run } = useAction();

  const split = () =>
    run(
      'split',
      async () => {
        const out = await reauth(() => api().keys.recoveryShares(m, n));
        if (out.done && out.shares) setShares(out.shares);
        else notifyOutcome(out, '', '');
      },
      { fail: 'No shares made' },
    );

  const backup = () => run('backup', writeBackup, { fail: 'No backup written' });
  const writeBackup = async () => {
    if (desktop) {
      const path = await api().console.pickSaveFile('Save the encrypted backup', `keyholder-${new Date().toISOString().slice(0, 10)}.khbackup`);
      if (!path) return;
      const out = await reauth(() => api().keys.backup(path));
      const info = out.backup_info;
      if (out.done && info) {
        notifications.show({ color: 'teal', title: 'Backup written', message: `${path} (${info.officers.length} officers, schema ${info.schema_version})` });
      } else {
        notifyOutcome(out, '', '');
      }
    } else {
      const out = await reauth(() => api().keys.backupDownload());
      const f = out.backup;
      if (out.done && f) {
        downloadBackup(f);
        notifications.show({ color: 'teal', title: 'Backup downloaded', message: f.name });
      } else {
        notifyOutcome(out, '', '');
      }
    }
  };

  return (
    <Card withBorder mt="xl" data-testid="recovery-card-keys">
      <Title order={4} mb="xs">
        Recovery and backup
      </Title>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Stack gap="xs">
          <Text size="sm">
            Split the master key into recovery shares for trusted people. Any {m} of {n} rebuild access with <code>keyholder recover</code>{' '}
            if every officer's passphrase is lost. Each share has a checksum, so a typo is caught.
          </Text>
          <Group align="flex-end">
            <NumberInput label="Threshold" min={2} max={16} w={110} value={m} onChange={(v) => setM(Number(v) || 2)} disabled={!admin} />
            <NumberInput label="Shares" min={2} max={16} w={110} value={n} onChange={(v) => setN(Number(v) || 3)} disabled={!admin} />
            <Button leftSection={<IconPuzzle size={16} />} onClick={() => void split()} loading={busy === 'split'} disabled={!admin || m < 2 || n < m} data-testid="split-key">
              Make shares
            </Button>
          </Group>
        </Stack>
        <Stack gap="xs">
          <Text size="sm">
            An encrypted, integrity-protected copy of the whole console (store, officer envelopes, release listener certificate). Restore it
            on another machine with <code>keyholder restore --in FILE</code> and an officer's passphrase.
          </Text>
          <Group>
            <Button variant="light" leftSection={<IconDatabaseExport size={16} />} onClick={() => void backup()} loading={busy === 'backup'} disabled={!admin} data-testid="backup">
              {desktop ? 'Save backup…' : 'Download backup'}
            </Button>
          </Group>
        </Stack>
      </SimpleGrid>
      {shares && (
        <Modal opened onClose={() => setShares(null)} title={`${shares.length} recovery shares — any ${m} rebuild the master key`} size="lg" centered>
          <Stack className="print-area">
            <Alert color="orange" className="no-print">
              They are shown once and not stored. Give each share to a different person; never keep {m} of them together.
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
    </Card>
  );
}
