import { Card, Group, SegmentedControl, SimpleGrid, Text, TextInput } from '@mantine/core';
import { IconSearch, IconServer } from '@tabler/icons-react';
import { useMemo, useState } from 'react';
import { useNavigate } from 'react-router-dom';
import type { GuestStatus } from '../api';
import { EmptyState, ErrorNotice, Loading, PageHeader } from '../components/common';
import { GuestTable } from '../components/GuestTable';
import { OneAdminNotice } from '../features/quorum/OneAdminNotice';
import { filterGuests, fleetSummary, useFleet } from '../stores/fleet';
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
  const fl = useFleet();
  const go = useNavigate();
  const rows = useMemo(() => filterGuests(fl.guests, { status, search }), [fl.guests, status, search]);

  return (
    <>
      <PageHeader title="Fleet" description="Every confidential VM that uses one of your keys, with the attestation evidence it last presented." />
      <OneAdminNotice />
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
      {fl.error && <ErrorNotice error={fl.error} onRetry={fl.reload} />}
      {!fl.loaded && fl.loading && <Loading />}
      {fl.loaded && fl.guests.size === 0 && (
        <EmptyState icon={<IconServer />} title="No guests yet" testId="fleet-empty">
          Guests appear here when they first ask for a disk key. Prepare an image on the Images screen, boot it with the Keyholder agent,
          or run <code>keyholder demo</code> to see a simulated fleet.
        </EmptyState>
      )}
      {fl.loaded && fl.guests.size > 0 && rows.length === 0 && (
        <Text c="dimmed" ta="center" py="xl" data-testid="fleet-no-match">
          No guest matches this filter.
        </Text>
      )}
      {rows.length > 0 && <GuestTable guests={rows} onOpen={(g) => go(`/fleet/${encodeURIComponent(g.id)}`)} />}
    </>
  );
}
