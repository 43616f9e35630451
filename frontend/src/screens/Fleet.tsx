import { Card, Group, SegmentedControl, SimpleGrid, Text, TextInput, UnstyledButton } from '@mantine/core';
import { IconSearch, IconServer } from '@tabler/icons-react';
import { useCallback, useMemo, useRef, useState } from 'react';
import { useNavigate } from 'react-router-dom';
import type { Guest, GuestStatus } from '../api';
import { EmptyState, ErrorNotice, Loading, PageHeader } from '../components/common';
import { GuestTable } from '../components/GuestTable';
import { OneAdminNotice } from '../features/quorum/OneAdminNotice';
import { comparator, filterGuests, fleetSummary, keepOrder, patchOrder, useFleet, type FleetSort, type SortKey } from '../stores/fleet';
import { useResource } from '../stores/resource';

const counters: { status: GuestStatus; label: string; color: string }[] = [
  { status: 'failing', label: 'Failing', color: 'red' },
  { status: 'pending', label: 'Pending', color: 'yellow' },
  { status: 'stale', label: 'Stale', color: 'gray' },
  { status: 'verified', label: 'Verified', color: 'teal' },
];

/** How long the pointer must rest on the table before a new order may move rows under it. */
const PAUSE_MS = 8000;

export function FleetScreen() {
  const [status, setStatus] = useState<GuestStatus | ''>('');
  const [search, setSearch] = useState('');
  const [sort, setSort] = useState<FleetSort>({ key: 'attention', desc: false });
  // While the officer looks at the table (pointer over it), rows keep their
  // places: new data updates them in place and new rows are appended. A new
  // order applies on an explicit sort, when the pointer leaves, or after it
  // rested for PAUSE_MS.
  const [looking, setLooking] = useState(false);
  const [epoch, setEpoch] = useState(0);
  const order = useRef<string[] | null>(null);
  const applied = useRef({ sort, status, search, epoch, looking, loadVersion: -1, version: -1 });
  const pause = useRef<ReturnType<typeof setTimeout> | null>(null);
  const summary = useResource(fleetSummary);
  const fl = useFleet();
  const go = useNavigate();
  const rows = useMemo(() => {
    const a = applied.current;
    const q = { status, search };
    const explicit = a.sort !== sort || a.status !== status || a.search !== search || a.epoch !== epoch;
    const unfrozen = a.looking && !looking; // the pointer left: the order may change now
    // Pushed changes move only their own rows (no sort of the fleet); a
    // new list, filter or order rebuilds the view.
    const changed = !explicit && !unfrozen && order.current && a.loadVersion === fl.loadVersion ? fl.changedSince(a.version) : null;
    let ids: string[];
    if (changed) {
      ids = patchOrder(order.current!, changed, fl.guests, q, comparator(sort), looking);
    } else {
      const fresh = filterGuests(fl.guests, q, sort);
      ids = (looking && order.current && !explicit ? keepOrder(order.current, fresh) : fresh).map((g) => g.id);
    }
    applied.current = { sort, status, search, epoch, looking, loadVersion: fl.loadVersion, version: fl.version };
    order.current = ids;
    const out: Guest[] = [];
    for (const id of ids) {
      const g = fl.guests.get(id);
      if (g) out.push(g);
    }
    return out;
    // fl.version stands for changes inside fl.guests, which is updated in place.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [fl.guests, fl.version, fl.loadVersion, status, search, sort, looking, epoch]);

  const onSort = useCallback((key: SortKey) => {
    setSort((s) => (s.key === key ? { key, desc: !s.desc } : { key, desc: key === 'evidence' }));
  }, []);
  const restart = useCallback(() => {
    if (pause.current) clearTimeout(pause.current);
    pause.current = setTimeout(() => setEpoch((e) => e + 1), PAUSE_MS);
  }, []);
  const enter = useCallback(() => {
    setLooking(true);
    restart();
  }, [restart]);
  const leave = useCallback(() => {
    if (pause.current) clearTimeout(pause.current);
    setLooking(false);
  }, []);

  const card = (key: GuestStatus | '', label: string, color: string | undefined, value: number | undefined) => (
    <UnstyledButton
      key={key || 'total'}
      onClick={() => setStatus(key)}
      aria-pressed={status === key}
      title={key ? `Show ${label.toLowerCase()} guests only` : 'Show every guest'}
      data-testid={`counter-${key || 'total'}`}
    >
      <Card withBorder padding="md" style={status === key ? { borderColor: `var(--mantine-color-${color ?? 'blue'}-6)`, borderWidth: 2 } : undefined}>
        <Text size="xs" c={color ?? 'dimmed'} tt="uppercase" fw={700}>
          {label}
        </Text>
        <Text size="xl" fw={700}>
          {value ?? '—'}
        </Text>
      </Card>
    </UnstyledButton>
  );

  return (
    <>
      <PageHeader title="Fleet" description="Every confidential VM that uses one of your keys, with the attestation evidence it last presented." />
      <OneAdminNotice />
      <SimpleGrid cols={{ base: 2, md: 5 }} mb="lg">
        {card('', 'Guests', undefined, summary.data?.total)}
        {counters.map((c) => card(c.status, c.label, c.color, summary.data?.by_status?.[c.status]))}
      </SimpleGrid>
      <Group mb="md">
        <TextInput
          placeholder="Search by VM, image or chip ID"
          aria-label="Search guests by VM, image or chip ID"
          leftSection={<IconSearch size={16} />}
          value={search}
          onChange={(e) => setSearch(e.currentTarget.value)}
          w={320}
        />
        <SegmentedControl
          value={status}
          onChange={(v) => setStatus(v as GuestStatus | '')}
          data-testid="status-filter"
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
      {fl.loaded && rows.length > 0 && (
        <GuestTable
          guests={rows}
          sort={sort}
          onSort={onSort}
          onOpen={(g) => go(`/fleet/${encodeURIComponent(g.id)}`)}
          onPointerEnter={enter}
          onPointerMove={looking ? restart : enter}
          onPointerLeave={leave}
        />
      )}
    </>
  );
}
