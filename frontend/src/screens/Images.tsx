import { Table } from '@mantine/core';
import { IconDisc } from '@tabler/icons-react';
import { EmptyState, ErrorNotice, formatTime, Loading, PageHeader } from '../components/common';
import { imageList } from '../stores/images';
import { useResource } from '../stores/resource';

export function ImagesScreen() {
  const r = useResource(imageList);
  return (
    <>
      <PageHeader
        title="Images"
        description="VM disk images you prepared: encrypted on this machine with LUKS2, with the reference values their guests must prove."
      />
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!r.data && r.loading && <Loading />}
      {r.data && r.data.length === 0 && (
        <EmptyState icon={<IconDisc />} title="No images yet" testId="images-empty">
          Prepare your first image: Keyholder encrypts a disk image locally so that the plaintext never leaves this machine.
        </EmptyState>
      )}
      {r.data && r.data.length > 0 && (
        <Table striped data-testid="images-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Volumes</Table.Th>
              <Table.Th>Guests</Table.Th>
              <Table.Th>Created</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {r.data.map((im) => (
              <Table.Tr key={im.id}>
                <Table.Td>{im.name}</Table.Td>
                <Table.Td>{im.volumes}</Table.Td>
                <Table.Td>{im.guests}</Table.Td>
                <Table.Td>{formatTime(im.created_at)}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </>
  );
}
