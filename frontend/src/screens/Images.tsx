import { Badge, Button, Table, Text } from '@mantine/core';
import { IconDisc, IconPlus } from '@tabler/icons-react';
import { Fragment, useState } from 'react';
import type { Image } from '../api';
import { EmptyState, ErrorNotice, formatTime, Loading, PageHeader, shortHex } from '../components/common';
import { ReferenceEditor } from '../features/references/ReferenceEditor';
import { PrepareWizard } from '../features/wizard/PrepareWizard';
import { imageList, referencesOf } from '../stores/images';
import { useResource } from '../stores/resource';


export function ImagesScreen() {
  const r = useResource(imageList);
  const [wizard, setWizard] = useState(false);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <>
      <PageHeader
        title="Images"
        description="VM disk images you prepared: encrypted on this machine with LUKS2, with the reference values their guests must prove."
        right={
          !wizard && (
            <Button leftSection={<IconPlus size={16} />} onClick={() => setWizard(true)} data-testid="prepare-image">
              Prepare image
            </Button>
          )
        }
      />
      {wizard && <PrepareWizard onClose={() => setWizard(false)} />}
      {!wizard && r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!wizard && !r.data && r.loading && <Loading />}
      {!wizard && r.data && r.data.length === 0 && (
        <EmptyState icon={<IconDisc />} title="No images yet" testId="images-empty">
          Prepare your first image: Keyholder encrypts a disk image on this machine, so that the plaintext never leaves it, and records
          what its guests must prove before they get the key.
        </EmptyState>
      )}
      {!wizard && r.data && r.data.length > 0 && (
        <Table striped data-testid="images-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Volumes</Table.Th>
              <Table.Th>Guests</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th>By</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {r.data.map((im) => (
              <Fragment key={im.id}>
                <Table.Tr style={{ cursor: 'pointer' }} onClick={() => setOpen(open === im.id ? null : im.id)} data-testid="image-row">
                  <Table.Td>
                    <Text size="sm" fw={500}>
                      {im.name}
                    </Text>
                    <Text size="xs" c="dimmed" ff="monospace">
                      {im.id}
                    </Text>
                  </Table.Td>
                  <Table.Td>{im.volumes}</Table.Td>
                  <Table.Td>{im.guests}</Table.Td>
                  <Table.Td>{formatTime(im.created_at)}</Table.Td>
                  <Table.Td>{im.created_by || '—'}</Table.Td>
                </Table.Tr>
                {open === im.id && (
                  <Table.Tr>
                    <Table.Td colSpan={5}>
                      <References image={im} />
                    </Table.Td>
                  </Table.Tr>
                )}
              </Fragment>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </>
  );
}

function References({ image }: { image: Image }) {
  const r = useResource(referencesOf(image.id));
  if (r.error) return <ErrorNotice error={r.error} />;
  if (!r.data) return <Loading />;
  const editor = <ReferenceEditor image={image} latest={r.data[0]} onSaved={() => void r.reload()} />;
  if (r.data.length === 0)
    return (
      <>
        <Text size="sm" c="dimmed">
          No reference values yet: the first boot of a guest of this image waits for an officer, and approving it pins that guest's
          measurement. Enter them here before the first boot if you know them.
        </Text>
        {editor}
      </>
    );
  return (
    <>
      <Table withRowBorders={false} data-testid="reference-versions">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Version</Table.Th>
            <Table.Th>Measurements</Table.Th>
            <Table.Th>Minimum TCB</Table.Th>
            <Table.Th>Changed</Table.Th>
            <Table.Th>By</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {r.data.map((v, i) => (
            <Table.Tr key={v.version}>
              <Table.Td>
                {v.version} {i === 0 && <Badge size="xs">current</Badge>}
              </Table.Td>
              <Table.Td ff="monospace">{v.values.measurements.map((m) => shortHex(m, 16)).join(', ')}</Table.Td>
              <Table.Td ff="monospace">
                {v.values.minimum_tcb.bootloader}/{v.values.minimum_tcb.tee}/{v.values.minimum_tcb.snp}/{v.values.minimum_tcb.microcode}
                {v.values.minimum_tcb.fmc ? ` · FMC ${v.values.minimum_tcb.fmc}` : ''}
              </Table.Td>
              <Table.Td>{formatTime(v.created_at)}</Table.Td>
              <Table.Td>{v.created_by}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {editor}
    </>
  );
}
