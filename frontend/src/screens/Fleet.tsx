import { Card, Group, SegmentedControl, SimpleGrid, Table, Text, TextInput } from '@mantine/core';
import { IconSearch, IconServer } from '@tabler/icons-react';
import { useState } from 'react';
import type { GuestStatus } from '../api';
import { EmptyState, ErrorNotice, formatTime, Loading, PageHeader, shortHex, SimulatedBadge, StatusBadge } from '../components/common';
import { fleetList, fleetSummary } from '../stores/fleet';
import { useResource } from '../stores/resource';

const counters: { status: GuestStatus; label: string; color: string }[] = [
  { status: 'verified', label: 'Verified', color: 'teal' },
  { status: 'pending', label: 'Pending', color: 'yellow' },
  { status: 'failing', label: 'Failing', color: 'red' },
  { status: 'stale', label: 'Stale', color: 'gray' },
];

export function FleetScreen() {
  const [status, setStatus] = useState<GuestStatus | ''>('');
  const [search, setSearch] = useState('');
  const summary = useResource(fleetSummary);
  const list = useResource(fleetList({ status, search }));

  return (
    <>
      <PageHeader title="Fleet" description="Every confidential VM that uses one of your keys, with the attestation evidence it last presented." />
      <SimpleGrid cols={{ base: 2, md: 5 }} mb="lg">
        <Card withBorder padding="md" data-testid="counter-total">
          <Text size="xs" c="dimmed" tt="uppercase" fw={700}>
            Guests
          </Text>
          <Text size="xl" fw={700}>
            {summary.data?.total ?? '—'}
          </Text>
        </Card>
        {counters.map((c) => (
          <Card withBorder padding="md" key={c.status} data-testid={`counter-${c.status}`}>
            <Text size="xs" c={c.color} tt="uppercase" fw={700}>
              {c.label}
            </Text>
            <Text size="xl" fw={700}>
              {summary.data?.by_status?.[c.status] ?? '—'}
            </Text>
          </Card>
        ))}
      </SimpleGrid>
      <Group mb="md">
        <TextInput
          placeholder="Search by VM, image or chip ID"
          leftSection={<IconSearch size={16} />}
          value={search}
          onChange={(e) => setSearch(e.currentTarget.value)}
          w={320}
        />
        <SegmentedControl
          value={status}
          onChange={(v) => setStatus(v as GuestStatus | '')}
          data={[{ label: 'All', value: '' }, ...counters.map((c) => ({ label: c.label, value: c.status })), { label: 'Revoked', value: 'revoked' }]}
        />
      </Group>
      {list.error && <ErrorNotice error={list.error} onRetry={list.reload} />}
      {!list.data && list.loading && <Loading />}
      {list.data && list.data.length === 0 && (
        <EmptyState icon={<IconServer />} title="No guests yet" testId="fleet-empty">
          Guests appear here when they first ask for a disk key. Prepare an image on the Images screen, boot it with the Keyholder agent,
          or run <code>keyholder demo</code> to see a simulated fleet.
        </EmptyState>
      )}
      {list.data && list.data.length > 0 && (
        <Table striped highlightOnHover data-testid="fleet-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>VM</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Image</Table.Th>
              <Table.Th>Product</Table.Th>
              <Table.Th>Chip</Table.Th>
              <Table.Th>TCB (BL/TEE/SNP/µcode)</Table.Th>
              <Table.Th>Last evidence</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {list.data.map((g) => (
              <Table.Tr key={g.id}>
                <Table.Td>
                  <Group gap={6}>
                    <Text size="sm" fw={500}>
                      {g.name || g.id}
                    </Text>
                    {g.simulated && <SimulatedBadge />}
                  </Group>
                </Table.Td>
                <Table.Td>
                  <StatusBadge status={g.status} />
                </Table.Td>
                <Table.Td>{g.image_name || '—'}</Table.Td>
                <Table.Td>{g.product || '—'}</Table.Td>
                <Table.Td ff="monospace">{shortHex(g.chip_id)}</Table.Td>
                <Table.Td ff="monospace">
                  {g.tcb.bootloader}/{g.tcb.tee}/{g.tcb.snp}/{g.tcb.microcode}
                </Table.Td>
                <Table.Td>{formatTime(g.last_evidence_at)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </>
  );
}
