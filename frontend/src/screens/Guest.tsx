import { LineChart, ScatterChart } from '@mantine/charts';
import { Alert, Anchor, Badge, Button, Card, Group, Modal, SimpleGrid, Stack, Table, Text, TextInput, Title, Tooltip } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconArrowLeft, IconBan, IconRestore } from '@tabler/icons-react';
import { Fragment, useMemo, useState } from 'react';
import { Link, useParams } from 'react-router-dom';
import { api, type AttestationRecord, type GuestDetail } from '../api';
import { ErrorNotice, formatTime, Loading, SimulatedBadge, StatusBadge } from '../components/common';
import { useReauth } from '../components/Reauth';
import { useAction } from '../hooks/useAction';
import { nextStep } from '../features/guidance/nextStep';
import { EvidenceDiff } from '../features/diff/EvidenceDiff';
import type { Snapshot } from '../features/diff/diff';
import { asEvidence, explain, snapshotOf, tcbText } from '../features/diff/evidence';
import { pendingRequests } from '../stores/approvals';
import { guestOf } from '../stores/guest';
import { useResource } from '../stores/resource';


/** resultLevel places each result on the timeline's y axis (higher is healthier). */
export const resultLevel: Record<string, number> = { released: 4, verified: 4, approved: 3, pending: 2, failing: 1, denied: 0 };
const levelName = ['denied', 'failing', 'pending', 'approved', 'verified / released'];

function snap(a: AttestationRecord | undefined, g: GuestDetail): Snapshot | null {
  if (!a) return null;
  return { product: g.product, chip_id: a.chip_id, measurement: a.measurement, tcb: a.tcb };
}

/** lastApproved is the newest history entry that released the key. */
export function lastApproved(h: AttestationRecord[]): AttestationRecord | undefined {
  return h.find((a) => a.result === 'released');
}

const fieldHelp: { k: string; label: string; help: string; value: (g: GuestDetail) => string }[] = [
  { k: 'product', label: 'Processor', help: 'The AMD EPYC generation whose secure processor signed the evidence (Milan, Genoa or Turin).', value: (g) => g.product || '—' },
  {
    k: 'chip',
    label: 'Chip identity',
    help: "The hardware ID in the chip's VCEK certificate (never the report's CHIP_ID, which a host may zero). The same VM on another chip means it was migrated or restored on another host. With a VLEK there is none: the console cannot tell chips apart.",
    value: (g) => g.chip_identity || '—',
  },
  {
    k: 'measurement',
    label: 'Launch measurement',
    help: "A SHA-384 hash of the guest's initial memory — its firmware, and with measured direct boot its kernel, initrd and command line. It changes when any of them changes.",
    value: (g) => g.measurement || '—',
  },
  {
    k: 'tcb',
    label: 'TCB (reported)',
    help: "Security patch levels of the platform: boot loader, TEE (the secure processor's OS), SNP firmware and CPU microcode. Lower numbers mean older, possibly vulnerable firmware.",
    value: (g) => tcbText(g.tcb),
  },
  {
    k: 'volumes',
    label: 'Volumes',
    help: 'The Keyholder volumes released to this VM: its encrypted root and data disks. A volume new to the VM waits for an officer, like a first boot.',
    value: (g) => (g.volumes && g.volumes.length ? g.volumes.join(', ') : g.volume_id || '—'),
  },
  {
    k: 'generation',
    label: 'Disk key generation',
    help: 'Which generation of the release secret the guest last received. Rotation creates a new one; restores from old backups ask for older ones.',
    value: (g) => String(g.generation || '—'),
  },
];

/** The times a history row stands for: its own, or a run's first and newest heartbeat. */
function spanOf(a: AttestationRecord): string[] {
  return a.count > 1 && a.last_at && a.last_at !== a.at ? [a.at, a.last_at] : [a.at];
}

export function GuestScreen() {
  const { id = '' } = useParams();
  const r = useResource(guestOf(id));
  const pending = useResource(pendingRequests);
  const g = r.data;
  const [dialog, setDialog] = useState<'revoke' | 'reinstate' | null>(null);

  const history = useMemo(() => [...(g?.history ?? [])].reverse(), [g]);
  const timeline = useMemo(
    () =>
      ['released', 'verified', 'approved', 'pending', 'failing', 'denied'].map((res) => ({
        color: { released: 'teal.6', verified: 'teal.4', approved: 'blue.5', pending: 'yellow.6', failing: 'orange.6', denied: 'red.6' }[res]!,
        name: res,
        data: history
          .filter((a) => a.result === res)
          .flatMap((a) => spanOf(a).map((t) => ({ t: new Date(t).getTime(), level: resultLevel[res] ?? 0 }))),
      })),
    [history],
  );
  const tcbSeries = useMemo(
    () =>
      history
        .filter((a) => a.measurement !== '')
        .flatMap((a) => spanOf(a).map((t) => ({ t: formatTime(t), bootloader: a.tcb.bootloader, tee: a.tcb.tee, snp: a.tcb.snp, microcode: a.tcb.microcode }))),
    [history],
  );

  if (r.error) return <ErrorNotice error={r.error} onRetry={r.reload} />;
  if (!g) return <Loading />;
  const approved = lastApproved(g.history);
  const latest = g.history.find((a) => a.measurement !== '');
  const decoded = asEvidence(g.evidence);
  const approvedDecoded = asEvidence(g.approved_evidence);
  // The disk generation is part of what changes: a restore asks for an older
  // one than the guest last received, so it shows as a change, never as "Nothing changed".
  const waitingReq = (pending.data ?? []).find((q) => q.vm_id === g.id);
  const wantGen = waitingReq?.generation ?? (g.generation || undefined);
  const baseAfter = snapshotOf(decoded) ?? snap(latest, g);
  const diffAfter = baseAfter && { ...baseAfter, generation: wantGen };
  const baseBefore = approvedDecoded ? snapshotOf(approvedDecoded) : snap(approved, g);
  const diffBefore = baseBefore && { ...baseBefore, generation: g.generation || undefined };
  const next = nextStep(g);

  return (
    <>
      <Anchor component={Link} to="/fleet" size="sm">
        <Group gap={4}>
          <IconArrowLeft size={14} /> Fleet
        </Group>
      </Anchor>
      <Group justify="space-between" my="md">
        <Group gap="sm">
          <Title order={2} data-testid="guest-title">
            {g.name || g.id}
          </Title>
          <span data-testid="guest-status" data-status={g.status}>
            <StatusBadge status={g.status} />
          </span>
          {g.simulated && <SimulatedBadge />}
        </Group>
        {g.status === 'revoked' ? (
          <Button variant="light" leftSection={<IconRestore size={16} />} onClick={() => setDialog('reinstate')}>
            Reinstate…
          </Button>
        ) : (
          <Button color="red" variant="light" leftSection={<IconBan size={16} />} onClick={() => setDialog('revoke')} data-testid="guest-revoke">
            Revoke…
          </Button>
        )}
      </Group>
      {g.status !== 'verified' && (g.status_reason || next) && (
        <Alert color={g.status === 'failing' || g.status === 'revoked' ? 'red' : 'yellow'} mb="md" data-testid="guest-reason">
          {(g.reason || g.status_reason) && <Text size="sm">{g.reason || g.status_reason}</Text>}
          {next && (
            <Text size="sm" fw={600} mt={4} data-testid="guest-next-step" data-kind={next.kind}>
              What to do: {next.long}
            </Text>
          )}
        </Alert>
      )}
      <SimpleGrid cols={{ base: 1, lg: 2 }} mb="md">
        <Card withBorder>
          <Title order={4} mb="sm">
            Attestation results over time
          </Title>
          {history.length === 0 ? (
            <Text c="dimmed" size="sm">
              No evidence yet.
            </Text>
          ) : (
            <div aria-hidden="true">
            <ScatterChart
              h={220}
              data={timeline}
              dataKey={{ x: 't', y: 'level' }}
              xAxisProps={{ type: 'number', domain: ['dataMin', 'dataMax'], tickFormatter: (v: number) => new Date(v).toLocaleTimeString() }}
              yAxisProps={{ domain: [0, 4], ticks: [0, 1, 2, 3, 4], tickFormatter: (v: number) => levelName[v] ?? '', width: 110 }}
              withLegend
              data-testid="guest-timeline"
            />
            </div>
          )}
        </Card>
        <Card withBorder>
          <Title order={4} mb="sm">
            TCB over time
          </Title>
          {history.length === 0 ? (
            <Text c="dimmed" size="sm">
              No evidence yet.
            </Text>
          ) : (
            <div aria-hidden="true">
            <LineChart
              h={220}
              data={tcbSeries}
              dataKey="t"
              curveType="stepAfter"
              withLegend
              series={[
                { name: 'bootloader', color: 'blue.6' },
                { name: 'tee', label: 'TEE', color: 'grape.6' },
                { name: 'snp', label: 'SNP firmware', color: 'teal.6' },
                { name: 'microcode', color: 'orange.6' },
              ]}
              xAxisProps={{ hide: true }}
              data-testid="guest-tcb-chart"
            />
            </div>
          )}
        </Card>
      </SimpleGrid>
      <SimpleGrid cols={{ base: 1, lg: 2 }} mb="md">
        <Card withBorder data-testid="guest-evidence">
          <Title order={4} mb="sm">
            What the guest proved
          </Title>
          {decoded ? (
            <Table data-testid="decoded-evidence" verticalSpacing={6}>
              <Table.Tbody>
                {explain(decoded).map((f, i, all) => (
                  <Fragment key={f.group + f.label}>
                    {(i === 0 || all[i - 1].group !== f.group) && (
                      <Table.Tr>
                        <Table.Th colSpan={2} pt="md">
                          <Text size="xs" tt="uppercase" c="dimmed" fw={700}>
                            {f.group}
                          </Text>
                        </Table.Th>
                      </Table.Tr>
                    )}
                    <Table.Tr>
                      <Table.Td w="30%" valign="top">
                        <Text size="sm" fw={600}>
                          {f.label}
                        </Text>
                      </Table.Td>
                      <Table.Td>
                        <Group gap={6} wrap="nowrap" align="flex-start">
                          <Text size="sm" ff="monospace" style={{ wordBreak: 'break-all' }}>
                            {f.value}
                          </Text>
                          {f.warn && (
                            <Badge size="xs" color="red">
                              check
                            </Badge>
                          )}
                        </Group>
                        <Text size="xs" c="dimmed">
                          {f.help}
                        </Text>
                      </Table.Td>
                    </Table.Tr>
                  </Fragment>
                ))}
              </Table.Tbody>
            </Table>
          ) : (
          <Stack gap="sm">
            {fieldHelp.map((f) => (
              <div key={f.k}>
                <Text size="sm" fw={600}>
                  {f.label}
                </Text>
                <Text size="sm" ff="monospace" style={{ wordBreak: 'break-all' }}>
                  {f.value(g)}
                </Text>
                <Text size="xs" c="dimmed">
                  {f.help}
                </Text>
              </div>
            ))}
            <div>
              <Text size="sm" fw={600}>
                Last evidence
              </Text>
              <Text size="sm">{formatTime(g.last_evidence_at)}</Text>
            </div>
          </Stack>
          )}
        </Card>
        <Card withBorder>
          <Title order={4} mb="sm">
            What changed since the last approved boot
          </Title>
          {diffAfter ? (
            <EvidenceDiff before={diffBefore} after={diffAfter} afterLabel="Newest evidence" />
          ) : (
            <Text size="sm" c="dimmed">
              No evidence yet.
            </Text>
          )}
        </Card>
      </SimpleGrid>
      <Card withBorder>
        <Title order={4} mb="sm">
          History
        </Title>
        <Table striped data-testid="guest-history">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Time</Table.Th>
              <Table.Th>Kind</Table.Th>
              <Table.Th>Result</Table.Th>
              <Table.Th>Class</Table.Th>
              <Table.Th>Detail</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {g.history.map((a) => (
              <Table.Tr key={a.id}>
                <Table.Td>
                  {formatTime(a.at)}
                  {a.count > 1 && (
                    <Text span size="xs" c="dimmed" data-testid="history-run">
                      {' '}
                      to {formatTime(a.last_at)}
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>{a.count > 1 ? `${a.kind} ×${a.count}` : a.kind}</Table.Td>
                <Table.Td>
                  <Badge variant="light" color={(resultLevel[a.result] ?? 0) >= 3 ? 'teal' : a.result === 'pending' ? 'yellow' : 'red'}>
                    {a.result}
                  </Badge>
                </Table.Td>
                <Table.Td>{a.class.replace(/_/g, ' ')}</Table.Td>
                <Table.Td>
                  <Tooltip label={a.code} disabled={!a.code}>
                    <Text size="sm">{a.message}</Text>
                  </Tooltip>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Card>
      {dialog && <GuestDialog guest={g} action={dialog} onClose={() => setDialog(null)} />}
    </>
  );
}

function GuestDialog({ guest, action, onClose }: { guest: GuestDetail; action: 'revoke' | 'reinstate'; onClose: () => void }) {
  const [reason, setReason] = useState('');
  const { busy, run } = useAction();
  const reauth = useReauth();
  const submit = () =>
    run(
      action,
      async () => {
        await reauth(() => (action === 'revoke' ? api().fleet.revoke(guest.id, reason) : api().fleet.reinstate(guest.id, reason)));
        notifications.show({
          color: action === 'revoke' ? 'red' : 'teal',
          title: action === 'revoke' ? 'Guest revoked' : 'Guest reinstated',
          message: action === 'revoke' ? `${guest.id} gets no key and its heartbeats are refused.` : `${guest.id}'s next request is decided afresh.`,
        });
        void guestOf(guest.id).reload();
        onClose();
      },
      { fail: 'Not done' },
    );
  return (
    <Modal opened onClose={onClose} title={action === 'revoke' ? `Revoke ${guest.name || guest.id}?` : `Reinstate ${guest.name || guest.id}?`} centered>
      <Stack>
        <Text size="sm">
          {action === 'revoke'
            ? 'The guest receives no key from now on, not even on a routine boot, and its heartbeats count as failing. A running guest keeps its already opened disk until it reboots.'
            : 'The guest may ask again; its next request is classified afresh and usually needs an approval.'}
        </Text>
        <TextInput label="Reason (goes into the audit log)" value={reason} onChange={(e) => setReason(e.currentTarget.value)} data-autofocus data-testid="guest-dialog-reason" />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button color={action === 'revoke' ? 'red' : 'teal'} loading={busy !== null} disabled={!reason.trim()} onClick={() => void submit()} data-testid="guest-dialog-confirm">
            {action === 'revoke' ? 'Revoke guest' : 'Reinstate guest'}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
