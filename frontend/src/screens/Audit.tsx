import { Autocomplete, Badge, Button, Group, Select, Table, Text, TextInput, Tooltip } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { IconDownload, IconFilterOff, IconListDetails, IconSearch, IconShieldCheck, IconShieldX } from '@tabler/icons-react';
import { notifications } from '@mantine/notifications';
import { api, ApiError, type AuditQuery } from '../api';
import { useMemo } from 'react';
import { useSearchParams } from 'react-router-dom';
import { EmptyState, ErrorNotice, formatTime, Loading, PageHeader, shortHex } from '../components/common';
import { auditChain, auditList } from '../stores/audit';
import { useResource } from '../stores/resource';


/** ChainBadge shows whether the whole hash chain and its signed checkpoints verify. */
export function ChainBadge() {
  const r = useResource(auditChain);
  if (r.error) return <Badge color="gray">chain not checked: {r.error.message}</Badge>;
  if (!r.data) return <Badge color="gray">checking chain…</Badge>;
  const v = r.data;
  if (!v.ok) {
    return (
      <Tooltip label={v.problem} multiline w={360}>
        <Badge color="red" size="lg" leftSection={<IconShieldX size={14} />} data-testid="chain-badge" data-ok="false">
          chain broken at entry #{v.first_bad}
        </Badge>
      </Tooltip>
    );
  }
  return (
    <Tooltip
      label={`${v.report.entries} entries, ${v.report.checkpoints} signed checkpoints${v.report.unsigned ? `, ${v.report.unsigned} entries since the last checkpoint` : ''}`}
    >
      <Badge color="teal" size="lg" leftSection={<IconShieldCheck size={14} />} data-testid="chain-badge" data-ok="true">
        chain verified · {v.report.entries} entries
      </Badge>
    </Tooltip>
  );
}

async function exportLog() {
  try {
    const text = await api().audit.export();
    const url = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `keyholder-audit-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.jsonl`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (e) {
    notifications.show({ color: 'red', title: 'Export failed', message: e instanceof ApiError ? e.message : String(e) });
  }
}

/** The filters the Audit screen offers; they live in the URL (?actor=…&class=…), so a link, a reload or a return keeps them. */
const FILTERS = ['search', 'actor', 'action', 'class', 'vm', 'from', 'to'] as const;
type Filter = (typeof FILTERS)[number];

/** Actions the console records, offered as suggestions; a family ("release") matches all its members. */
const ACTIONS = [
  'release',
  'release.approve',
  'release.deny',
  'release.expire',
  'heartbeat',
  'rotation.confirm',
  'guest.revoke',
  'guest.reinstate',
  'volume',
  'volume.create',
  'volume.rotate',
  'volume.revoke',
  'volume.destroy',
  'officer',
  'officer.auth',
  'officer.add',
  'officer.role',
  'officer.remove',
  'admin',
  'admin.request',
  'admin.approve',
  'admin.deny',
  'policy.set',
  'reference.set',
  'reference.approve',
  'recovery.split',
  'recovery.use',
  'image.prepare',
  'console.init',
  'console.backup',
];

const CLASSES = [
  { value: 'first_boot', label: 'First boot' },
  { value: 'migration', label: 'Migration' },
  { value: 'restore', label: 'Restore' },
  { value: 'platform_change', label: 'Platform change' },
  { value: 'rotation', label: 'Key rotation' },
  { value: 'routine_boot', label: 'Routine boot' },
];

/** dayStart turns a date input's value (YYYY-MM-DD, the officer's local day) into the instant it starts. */
function dayStart(d: string, plusDays = 0): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(d);
  if (!m) return undefined;
  return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + plusDays).toISOString();
}

/** toQuery makes the server query from the URL's filters: the "to" day is included. */
export function toQuery(f: Record<Filter, string>): AuditQuery {
  const q: AuditQuery = {};
  if (f.search.trim()) q.search = f.search.trim();
  if (f.actor.trim()) q.actor = f.actor.trim();
  if (f.action.trim()) q.action = f.action.trim();
  if (f.class) q.class = f.class;
  if (f.vm.trim()) q.vm = f.vm.trim();
  const from = dayStart(f.from);
  const to = dayStart(f.to, 1);
  if (from) q.from = from;
  if (to) q.to = to;
  return q;
}

export function AuditScreen() {
  const [params, setParams] = useSearchParams();
  const f = useMemo(() => Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? ''])) as Record<Filter, string>, [params]);
  const set = (k: Filter, v: string | null) =>
    setParams(
      (p) => {
        const n = new URLSearchParams(p);
        if (v) n.set(k, v);
        else n.delete(k);
        return n;
      },
      { replace: true },
    );
  // Typed filters wait for a pause; picked ones (class, dates) apply at once.
  const [typed] = useDebouncedValue(`${f.search}\u0000${f.actor}\u0000${f.action}\u0000${f.vm}`, 300);
  const query = useMemo(() => {
    const [search, actor, action, vm] = typed.split('\u0000');
    return toQuery({ ...f, search, actor, action, vm });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [typed, f.class, f.from, f.to]);
  const filtered = Object.keys(query).length > 0;
  const badRange = !!f.from && !!f.to && f.from > f.to;
  const r = useResource(auditList(badRange ? { ...query, to: query.from } : query));
  return (
    <>
      <PageHeader
        title="Audit"
        description="Every release, approval, denial and key operation, in an append-only log where each entry carries the hash of the one before it. New entries appear as they are written."
        right={
          <Group>
            <ChainBadge />
            <Button variant="default" leftSection={<IconDownload size={16} />} onClick={() => void exportLog()} data-testid="audit-export">
              Export
            </Button>
          </Group>
        }
      />
      <Group mb="md" align="flex-end" gap="sm" data-testid="audit-filters">
        <TextInput
          label="Search"
          placeholder="Any text"
          leftSection={<IconSearch size={16} />}
          value={f.search}
          onChange={(e) => set('search', e.currentTarget.value)}
          w={200}
          data-testid="audit-search"
        />
        <TextInput
          label="Actor"
          placeholder="alice, guest:vm-1, console"
          value={f.actor}
          onChange={(e) => set('actor', e.currentTarget.value)}
          w={170}
          data-testid="audit-actor"
        />
        <Autocomplete
          label="Action"
          placeholder="release.deny or release"
          data={ACTIONS}
          value={f.action}
          onChange={(v) => set('action', v)}
          w={180}
          limit={12}
          data-testid="audit-action"
        />
        <Select
          label="Class"
          placeholder="Any class"
          data={CLASSES}
          value={f.class || null}
          onChange={(v) => set('class', v)}
          clearable
          w={160}
          data-testid="audit-class"
        />
        <TextInput label="VM" placeholder="vm-demo-03" value={f.vm} onChange={(e) => set('vm', e.currentTarget.value)} w={140} data-testid="audit-vm" />
        <TextInput label="From" type="date" value={f.from} onChange={(e) => set('from', e.currentTarget.value)} w={150} data-testid="audit-from" />
        <TextInput
          label="To (included)"
          type="date"
          value={f.to}
          onChange={(e) => set('to', e.currentTarget.value)}
          w={150}
          error={badRange ? 'The range ends before it starts' : undefined}
          data-testid="audit-to"
        />
        {FILTERS.some((k) => f[k]) && (
          <Button variant="subtle" leftSection={<IconFilterOff size={16} />} onClick={() => setParams({}, { replace: true })} data-testid="audit-clear">
            Clear filters
          </Button>
        )}
      </Group>
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!r.data && r.loading && <Loading />}
      {r.data && r.data.length === 0 && (
        <EmptyState icon={<IconListDetails />} title={filtered ? 'No matching entries' : 'The log is empty'} testId="audit-empty">
          {filtered ? 'No entry matches every filter. Loosen one, or clear them.' : 'Entries appear with the first key operation or release decision.'}
        </EmptyState>
      )}
      {r.data && r.data.length > 0 && (
        <>
          <Table striped data-testid="audit-table" data-count={r.data.length}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>#</Table.Th>
                <Table.Th>Time</Table.Th>
                <Table.Th>Actor</Table.Th>
                <Table.Th>Action</Table.Th>
                <Table.Th>Subject</Table.Th>
                <Table.Th>Decision</Table.Th>
                <Table.Th>Hash</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {r.data.map((e) => (
                <Table.Tr key={e.seq} data-testid="audit-row" data-seq={e.seq} data-action={e.action} data-actor={e.actor} data-subject={e.subject}>
                  <Table.Td>{e.seq}</Table.Td>
                  <Table.Td>{formatTime(e.at)}</Table.Td>
                  <Table.Td>{e.actor}</Table.Td>
                  <Table.Td>{e.action}</Table.Td>
                  <Table.Td>{e.subject}</Table.Td>
                  <Table.Td>
                    <Text size="sm">{e.decision}</Text>
                    {e.reason && (
                      <Text size="xs" c="dimmed" data-testid="audit-reason">
                        {e.reason}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td ff="monospace">{shortHex(e.hash)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          {r.data.length >= 200 && (
            <Text size="xs" c="dimmed" mt="xs">
              The newest 200 matching entries. Narrow the filters, or export the whole log.
            </Text>
          )}
        </>
      )}
    </>
  );
}
