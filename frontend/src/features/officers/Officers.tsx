import { Alert, Badge, Button, Card, Group, Modal, PasswordInput, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { IconUserPlus } from '@tabler/icons-react';
import { useState } from 'react';
import { api } from '../../api';

/** MIN_PASSPHRASE is custody's minimum passphrase length, shown before the officer submits. */
export const MIN_PASSPHRASE = 10;
import { ErrorNotice, formatTime } from '../../components/common';
import { useReauth } from '../../components/Reauth';
import { useAction } from '../../hooks/useAction';
import { officers } from '../../stores/keys';
import { useResource } from '../../stores/resource';
import { useSession } from '../../stores/session';
import type { AdminOutcome } from '../../api';
import { notifyOutcome } from '../quorum/outcome';


export function Officers() {
  const r = useResource(officers);
  const me = useSession().session;
  const [adding, setAdding] = useState(false);
  const reauth = useReauth();
  const admin = me?.role === 'admin';
  const { run } = useAction();
  const act = (fn: () => Promise<AdminOutcome>, done: string) =>
    run('act', async () => {
      notifyOutcome(await reauth(fn), 'Done', done);
      void officers.reload();
    });
  return (
    <Card withBorder>
      <Group justify="space-between" mb="sm">
        <div>
          <Title order={4}>Officers</Title>
          <Text size="sm" c="dimmed">
            Each officer has their own envelope of the master key. Admins manage officers and policy, approvers decide releases, viewers watch.
          </Text>
        </div>
        {admin && (
          <Button leftSection={<IconUserPlus size={16} />} variant="light" onClick={() => setAdding(true)} data-testid="add-officer">
            Add officer
          </Button>
        )}
      </Group>
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {r.data && (
        <Table data-testid="officers-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Name</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>Last login</Table.Th>
              <Table.Th>Failed attempts</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {r.data.map((o) => (
              <Table.Tr key={o.id}>
                <Table.Td>{o.name}</Table.Td>
                <Table.Td>
                  {admin && o.name !== me?.officer ? (
                    <Select
                      size="xs"
                      w={130}
                      aria-label={`Role of ${o.name}`}
                      value={o.role}
                      data={['admin', 'approver', 'viewer']}
                      onChange={(v) => v && void act(() => api().keys.setRole(o.name, v), `${o.name} is now ${v}.`)}
                      allowDeselect={false}
                    />
                  ) : (
                    <Badge variant="light">{o.role}</Badge>
                  )}
                </Table.Td>
                <Table.Td>{formatTime(o.last_login_at)}</Table.Td>
                <Table.Td>{o.failed_attempts}</Table.Td>
                <Table.Td>
                  {admin && o.name !== me?.officer && (
                    <Button size="xs" variant="subtle" color="red" aria-label={`Remove officer ${o.name}`} onClick={() => void act(() => api().keys.removeOfficer(o.name), `${o.name} was removed.`)}>
                      Remove
                    </Button>
                  )}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {adding && <AddOfficerDialog onClose={() => setAdding(false)} />}
    </Card>
  );
}

function AddOfficerDialog({ onClose }: { onClose: () => void }) {
  const [name, setName] = useState('');
  const [role, setRole] = useState('approver');
  const [pass, setPass] = useState('');
  const { busy, run } = useAction();
  const [err, setErr] = useState<string | null>(null);
  const reauth = useReauth();
  const submit = () =>
    run(
      'add',
      async () => {
        notifyOutcome(await reauth(() => api().keys.addOfficer(name, role, pass)), 'Officer added', `${name} (${role}) can log in now.`);
        void officers.reload();
        onClose();
      },
      {
        // The form keeps what was typed: fix the field, try again.
        onError: (e) => {
          setErr(e.message);
          return true;
        },
      },
    );
  const short = pass.length > 0 && [...pass].length < MIN_PASSPHRASE;
  const missing = !name ? 'Enter a name first' : !pass ? 'Enter an initial passphrase first' : short ? `The passphrase needs at least ${MIN_PASSPHRASE} characters` : '';
  return (
    <Modal opened onClose={onClose} title="Add an officer" centered data-testid="add-officer-dialog">
      <Stack>
        <TextInput label="Name" value={name} onChange={(e) => setName(e.currentTarget.value)} data-autofocus data-testid="add-officer-name" />
        <Select label="Role" value={role} onChange={(v) => v && setRole(v)} data={['admin', 'approver', 'viewer']} allowDeselect={false} />
        <PasswordInput
          label="Initial passphrase"
          description={`At least ${MIN_PASSPHRASE} characters. Hand it over in person; the officer changes it at first login.`}
          value={pass}
          onChange={(e) => setPass(e.currentTarget.value)}
          error={short ? `${[...pass].length} of at least ${MIN_PASSPHRASE} characters` : undefined}
          data-testid="add-officer-pass"
        />
        {err && (
          <Alert color="red" data-testid="add-officer-error">
            {err}
          </Alert>
        )}
        {missing && (
          <Text size="xs" c="dimmed" id="add-officer-why">
            {missing}
          </Text>
        )}
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button loading={busy === 'add'} disabled={!!missing} title={missing || undefined} aria-describedby={missing ? 'add-officer-why' : undefined} onClick={() => void submit()} data-testid="add-officer-submit">
            Add officer
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
