import { ActionIcon, Alert, Badge, Button, Group, Menu, Modal, Stack, Table, Text, TextInput } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconDots, IconKey, IconRefresh, IconTrash, IconBan } from '@tabler/icons-react';
import { Fragment, useState } from 'react';
import { api, type Volume } from '../api';
import { EmptyState, ErrorNotice, formatTime, Loading, PageHeader } from '../components/common';
import { useReauth } from '../components/Reauth';
import { useAction } from '../hooks/useAction';
import { notifyOutcome } from '../features/quorum/outcome';
import { RecoveryCard } from '../features/recovery/RecoveryCard';
import { useResource } from '../stores/resource';
import { generationsOf, volumeList } from '../stores/keys';
import { useSession } from '../stores/session';


export function KeysScreen() {
  const r = useResource(volumeList);
  const role = useSession().session?.role;
  const [open, setOpen] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<Volume | null>(null);
  const [destroying, setDestroying] = useState<Volume | null>(null);
  const reauth = useReauth();

  const { run } = useAction();
  const rotate = (v: Volume) =>
    run(v.id, async () => {
      const gen = await reauth(() => api().keys.rotate(v.id));
      notifications.show({
        color: 'teal',
        title: `Generation ${gen} prepared`,
        message: `${v.name || v.id}: the guest moves to it at its next boot, after approval; until it confirms, generation ${v.current_generation} stays current.`,
      });
      void r.reload();
    });

  return (
    <>
      <PageHeader
        title="Keys"
        description="Encrypted volumes and the generations of their release secrets. Secrets are stored only wrapped under the master key and are never shown."
      />
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!r.data && r.loading && <Loading />}
      {r.data && r.data.length === 0 && (
        <EmptyState icon={<IconKey />} title="No volumes yet" testId="keys-empty">
          A volume and its first release secret are created when you prepare an image on the Images screen.
        </EmptyState>
      )}
      {r.data && r.data.length > 0 && (
        <Table striped data-testid="keys-table" mb="xl">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Volume</Table.Th>
              <Table.Th>Image</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Current generation</Table.Th>
              <Table.Th>Created</Table.Th>
              <Table.Th w={50} />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {r.data.map((v) => (
              <Fragment key={v.id}>
                <Table.Tr style={{ cursor: 'pointer' }} onClick={() => setOpen(open === v.id ? null : v.id)} data-testid="volume-row">
                  <Table.Td>
                    <Text size="sm" fw={500}>
                      {v.name || v.id}
                    </Text>
                    <Text size="xs" c="dimmed" ff="monospace">
                      {v.id}
                    </Text>
                  </Table.Td>
                  <Table.Td>{v.image_name || '—'}</Table.Td>
                  <Table.Td>
                    <Badge variant="light" color={v.status === 'active' ? 'teal' : v.status === 'revoked' ? 'orange' : 'red'}>
                      {v.status}
                    </Badge>
                  </Table.Td>
                  <Table.Td>{v.current_generation}</Table.Td>
                  <Table.Td>{formatTime(v.created_at)}</Table.Td>
                  <Table.Td onClick={(e) => e.stopPropagation()}>
                    <Menu position="bottom-end" withinPortal>
                      <Menu.Target>
                        <ActionIcon variant="subtle" aria-label="Volume actions" data-testid="volume-actions">
                          <IconDots size={16} />
                        </ActionIcon>
                      </Menu.Target>
                      <Menu.Dropdown>
                        <Menu.Item leftSection={<IconRefresh size={16} />} disabled={v.status !== 'active'} onClick={() => void rotate(v)}>
                          Rotate release secret
                        </Menu.Item>
                        <Menu.Item leftSection={<IconBan size={16} />} color="orange" disabled={v.status !== 'active'} onClick={() => setRevoking(v)}>
                          Revoke…
                        </Menu.Item>
                        <Menu.Item
                          leftSection={<IconTrash size={16} />}
                          color="red"
                          disabled={v.status !== 'revoked' || role !== 'admin'}
                          onClick={() => setDestroying(v)}
                        >
                          Destroy secrets…
                        </Menu.Item>
                      </Menu.Dropdown>
                    </Menu>
                  </Table.Td>
                </Table.Tr>
                {open === v.id && (
                  <Table.Tr>
                    <Table.Td colSpan={6}>
                      <Generations volume={v} />
                    </Table.Td>
                  </Table.Tr>
                )}
              </Fragment>
            ))}
          </Table.Tbody>
        </Table>
      )}
      <RecoveryCard />
      {revoking && <RevokeDialog volume={revoking} onClose={() => setRevoking(null)} />}
      {destroying && <DestroyDialog volume={destroying} onClose={() => setDestroying(null)} />}
    </>
  );
}

function Generations({ volume }: { volume: Volume }) {
  const r = useResource(generationsOf(volume.id));
  if (r.error) return <ErrorNotice error={r.error} />;
  if (!r.data) return <Loading />;
  return (
    <Table withRowBorders={false} data-testid="generations">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Generation</Table.Th>
          <Table.Th>Status</Table.Th>
          <Table.Th>Created</Table.Th>
          <Table.Th>By</Table.Th>
          <Table.Th>Current since</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {r.data.map((g) => (
          <Table.Tr key={g.generation}>
            <Table.Td>{g.generation}</Table.Td>
            <Table.Td>
              <Badge variant="light" color={g.status === 'current' ? 'teal' : g.status === 'pending' ? 'yellow' : 'gray'}>
                {g.status}
              </Badge>
            </Table.Td>
            <Table.Td>{formatTime(g.created_at)}</Table.Td>
            <Table.Td>{g.created_by}</Table.Td>
            <Table.Td>{formatTime(g.activated_at)}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

function RevokeDialog({ volume, onClose }: { volume: Volume; onClose: () => void }) {
  const [reason, setReason] = useState('');
  const { busy, run } = useAction();
  const reauth = useReauth();
  const submit = () =>
    run('revoke', async () => {
      await reauth(() => api().keys.revoke(volume.id, reason));
      notifications.show({ color: 'orange', title: 'Volume revoked', message: `${volume.name || volume.id} receives no more releases. Its secrets are kept until an admin destroys them.` });
      void volumeList.reload();
      onClose();
    });
  return (
    <Modal opened onClose={onClose} title={`Revoke ${volume.name || volume.id}?`} centered>
      <Stack>
        <Text size="sm">
          Every guest of this volume is refused from now on, including routine boots. The release secrets stay stored, so you can still
          restore access from a backup; destroying them is a separate step.
        </Text>
        <TextInput label="Reason (goes into the audit log)" value={reason} onChange={(e) => setReason(e.currentTarget.value)} data-autofocus />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button color="orange" loading={busy !== null} disabled={!reason.trim()} onClick={() => void submit()} data-testid="revoke-confirm">
            Revoke volume
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

function DestroyDialog({ volume, onClose }: { volume: Volume; onClose: () => void }) {
  const [step, setStep] = useState(1);
  const [typed, setTyped] = useState('');
  const { busy, run } = useAction();
  const reauth = useReauth();
  const submit = () =>
    run('destroy', async () => {
      notifyOutcome(
        await reauth(() => api().keys.destroy(volume.id, typed)),
        'Secrets destroyed',
        `${volume.name || volume.id} can never be opened through Keyholder again.`,
      );
      void volumeList.reload();
      onClose();
    });
  return (
    <Modal opened onClose={onClose} title="Destroy every release secret of this volume" centered>
      {step === 1 ? (
        <Stack>
          <Alert color="red" title="This cannot be undone">
            Every generation of {volume.name || volume.id}'s release secret is erased. Disks and backups encrypted with them can then only
            be opened with a recovery passphrase, if one was set.
          </Alert>
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Keep the secrets
            </Button>
            <Button color="red" onClick={() => setStep(2)} data-testid="destroy-step1">
              I understand, continue
            </Button>
          </Group>
        </Stack>
      ) : (
        <Stack>
          <Text size="sm">
            Type the volume ID <Text span ff="monospace">{volume.id}</Text> to confirm.
          </Text>
          <TextInput value={typed} onChange={(e) => setTyped(e.currentTarget.value)} ff="monospace" data-testid="destroy-typed" />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button color="red" loading={busy !== null} disabled={typed !== volume.id} onClick={() => void submit()} data-testid="destroy-confirm">
              Destroy secrets
            </Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}
