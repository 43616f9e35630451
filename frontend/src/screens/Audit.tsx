import { Table, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { IconListDetails, IconSearch } from '@tabler/icons-react';
import { useState } from 'react';
import { EmptyState, ErrorNotice, formatTime, Loading, PageHeader, shortHex } from '../components/common';
import { auditList } from '../stores/audit';
import { useResource } from '../stores/resource';

export function AuditScreen() {
  const [search, setSearch] = useState('');
  const [debounced] = useDebouncedValue(search, 250);
  const r = useResource(auditList({ search: debounced }));
  return (
    <>
      <PageHeader
        title="Audit"
        description="Every release, approval, denial and key operation, in an append-only log where each entry carries the hash of the one before it."
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
