import { Badge, Table } from '@mantine/core';
import { IconKey } from '@tabler/icons-react';
import { EmptyState, ErrorNotice, formatTime, Loading, PageHeader } from '../components/common';
import { volumeList } from '../stores/keys';
import { useResource } from '../stores/resource';

export function KeysScreen() {
  const r = useResource(volumeList);
  return (
    <>
      <PageHeader
        title="Keys"
        description="Encrypted volumes and the generations of their release secrets. Secrets are stored only wrapped under the master key and never shown."
      />
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!r.data && r.loading && <Loading />}
      {r.data && r.data.length === 0 && (
        <EmptyState icon={<IconKey />} title="No volumes yet" testId="keys-empty">
          A volume and its first release secret are created when you prepare an image.
        </EmptyState>
      )}
      {r.data && r.data.length > 0 && (
        <Table striped data-testid="keys-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Volume</Table.Th>
              <Table.Th>Image</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Generation</Table.Th>
              <Table.Th>Created</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {r.data.map((v) => (
              <Table.Tr key={v.id}>
                <Table.Td>{v.name || v.id}</Table.Td>
                <Table.Td>{v.image_name || '—'}</Table.Td>
                <Table.Td>
                  <Badge variant="light" color={v.status === 'active' ? 'teal' : 'red'}>
                    {v.status}
                  </Badge>
                </Table.Td>
                <Table.Td>{v.current_generation}</Table.Td>
                <Table.Td>{formatTime(v.created_at)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </>
  );
}
