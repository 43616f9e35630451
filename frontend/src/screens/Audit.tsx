import { Badge, Button, Group, Table, Text, TextInput, Tooltip } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { IconDownload, IconListDetails, IconSearch, IconShieldCheck, IconShieldX } from '@tabler/icons-react';
import { notifications } from '@mantine/notifications';
import { api, ApiError } from '../api';
import { useState } from 'react';
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

export function AuditScreen() {
  const [search, setSearch] = useState('');
  const [debounced] = useDebouncedValue(search, 250);
  const r = useResource(auditList({ search: debounced }));
  return (
    <>
      <PageHeader
        title="Audit"
        description="Every release, approval, denial and key operation, in an append-only log where each entry carries the hash of the one before it."
        right={
          <Group>
            <ChainBadge />
            <Button variant="default" leftSection={<IconDownload size={16} />} onClick={() => void exportLog()} data-testid="audit-export">
              Export
            </Button>
          </Group>
        }
      />
      <TextInput
        placeholder="Search actor, action, subject or reason"
        leftSection={<IconSearch size={16} />}
        value={search}
        onChange={(e) => setSearch(e.currentTarget.value)}
        w={360}
        mb="md"
      />
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!r.data && r.loading && <Loading />}
      {r.data && r.data.length === 0 && (
        <EmptyState icon={<IconListDetails />} title={debounced ? 'No matching entries' : 'The log is empty'} testId="audit-empty">
          {debounced ? 'Try another search.' : 'Entries appear with the first key operation or release decision.'}
        </EmptyState>
      )}
      {r.data && r.data.length > 0 && (
        <Table striped data-testid="audit-table">
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
              <Table.Tr key={e.seq}>
                <Table.Td>{e.seq}</Table.Td>
                <Table.Td>{formatTime(e.at)}</Table.Td>
                <Table.Td>{e.actor}</Table.Td>
                <Table.Td>{e.action}</Table.Td>
                <Table.Td>{e.subject}</Table.Td>
                <Table.Td>
                  <Text size="sm">{e.decision}</Text>
                  {e.reason && (
                    <Text size="xs" c="dimmed">
                      {e.reason}
                    </Text>
                  )}
                </Table.Td>
                <Table.Td ff="monospace">{shortHex(e.hash)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </>
  );
}
