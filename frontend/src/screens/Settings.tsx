import { ActionIcon, Alert, Badge, Button, Card, CopyButton, Group, NumberInput, Select, SimpleGrid, Stack, Switch, Table, Text, TextInput, Title, Tooltip } from '@mantine/core';
import { IconCheck, IconCopy, IconFlask } from '@tabler/icons-react';
import { useEffect, useState } from 'react';
import { api, type ReleaseAction, type ReleaseClass, type ReleasePolicy } from '../api';
import { classLabels } from '../features/policy/classes';
import { durationError, plainError } from '../features/policy/duration';
import { ErrorNotice, Loading, PageHeader } from '../components/common';
import { useReauth } from '../components/Reauth';
import { useAction } from '../hooks/useAction';
import { Officers } from '../features/officers/Officers';
import { ImageFolders, Sessions } from '../features/sessions/Sessions';
import { notifyOutcome } from '../features/quorum/outcome';
import { OneAdminNotice } from '../features/quorum/OneAdminNotice';
import { defaultPolicy } from '../stores/approvals';
import { consoleInfo, releaseAPI } from '../stores/console';
import { useResource } from '../stores/resource';
import { useSession } from '../stores/session';
import { useConnection } from '../stores/connection';



const editable: ReleaseClass[] = ['routine_boot', 'first_boot', 'migration', 'restore', 'platform_change', 'rotation'];

export function SettingsScreen() {
  const r = useResource(consoleInfo);
  const i = r.data;
  const conn = useConnection().info;
  return (
    <>
      <PageHeader title="Settings" description="This console: what it trusts, how it decides, who works with it, and where its data lives." />
      <OneAdminNotice />
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!i && r.loading && <Loading />}
      {i?.dev_simulated_root && (
        <Alert color="grape" variant="filled" icon={<IconFlask />} title="Development mode: the simulated AMD root is trusted" mb="md" data-testid="dev-flag">
          Evidence signed by Keyholder's simulated AMD root is accepted and marked SIMULATED. Never run a production console like this.
        </Alert>
      )}
      <Stack>
        <SimpleGrid cols={{ base: 1, lg: 2 }}>
          <ReleaseListener />
          {i && (
            <Card withBorder>
              <Title order={4} mb="xs">
                Trusted AMD roots
              </Title>
              <Text size="sm" c="dimmed" mb="sm">
                Evidence must chain to one of these AMD root keys (ARK). They are built into Keyholder; verification never contacts AMD.
              </Text>
              <Table data-testid="trusted-roots">
                <Table.Tbody>
                  {i.trusted_roots.map((t) => (
                    <Table.Tr key={t.product}>
                      <Table.Th w={90}>{t.product}</Table.Th>
                      <Table.Td ff="monospace" fz="xs">
                        {t.ark_sha256.slice(0, 32)}…
                      </Table.Td>
                      <Table.Td>{t.vlek ? <Badge variant="light">VCEK + VLEK</Badge> : <Badge variant="light">VCEK</Badge>}</Table.Td>
                    </Table.Tr>
                  ))}
                  {i.dev_simulated_root && (
                    <Table.Tr>
                      <Table.Th>Simulated</Table.Th>
                      <Table.Td colSpan={2}>
                        <Badge color="grape">SIMULATED root trusted (development)</Badge>
                      </Table.Td>
                    </Table.Tr>
                  )}
                </Table.Tbody>
              </Table>
            </Card>
          )}
        </SimpleGrid>
        <PolicyEditor />
        <Officers />
        <Sessions />
        {i?.mode === 'web' && <ImageFolders />}
        {i && (
          <Card withBorder>
            <Title order={4} mb="xs">
              This console
            </Title>
            <Table data-testid="console-info">
              <Table.Tbody>
                <Row k="Version" v={i.version} />
                <Row k="Mode" v={i.mode === 'desktop' ? 'Desktop app' : conn?.mode === 'remote' ? 'Shared console (this desktop app is its client)' : 'Web console'} />
                {conn?.mode === 'remote' && <Row k="Connected to" v={`${conn.url}${conn.pin ? ` (pin ${conn.pin})` : ` (CA ${conn.ca_file})`}`} mono />}
                <Row k="Data directory" v={i.data_dir} mono />
                <Row k="Database" v={`${i.database === 'postgres' ? 'PostgreSQL' : 'SQLite'}: ${i.database_path}`} mono />
                <Row k="Schema version" v={String(i.schema_version)} />
                <Row k="Platform" v={`${i.platform} on ${i.hostname}`} />
                <Row k="Simulated AMD root" v={i.dev_simulated_root ? 'TRUSTED (development)' : 'not trusted'} />
              </Table.Tbody>
            </Table>
            {(i.replicas ?? []).length > 0 && (
              <>
                <Title order={5} mt="md" mb="xs">
                  Replicas on this database
                </Title>
                <Table data-testid="replicas">
                  <Table.Tbody>
                    {i.replicas.map((r) => (
                      <Table.Tr key={r.id}>
                        <Table.Td>
                          <Text size="sm" ff="monospace">
                            {r.name}
                          </Text>
                        </Table.Td>
                        <Table.Td>
                          <Text size="sm" ff="monospace">
                            {r.console_url} {r.release_addr && `· release ${r.release_addr}`}
                          </Text>
                        </Table.Td>
                        <Table.Td>
                          <Text size="sm">
                            {r.alive ? 'alive' : 'gone'}
                            {r.self ? ' · you are on this one' : ''}
                          </Text>
                        </Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </>
            )}
          </Card>
        )}
      </Stack>
    </>
  );
}

function ReleaseListener() {
  const r = useResource(releaseAPI);
  return (
    <Card withBorder data-testid="release-listener">
      <Title order={4} mb="xs">
        Release API
      </Title>
      <Text size="sm" c="dimmed" mb="sm">
        Guests ask for their disk key here, over TLS with this certificate pinned in their image manifest. It never shares a port with this
        console.
      </Text>
      {r.error && <ErrorNotice error={r.error} />}
      {r.data && !r.data.serving && (
        <Text size="sm">
          Not served by this process. Start the console with <code>keyholder serve --release-listen ADDR</code> to serve guests.
        </Text>
      )}
      {r.data?.serving && (
        <Stack gap="xs">
          <Group>
            <Text size="sm" fw={600} w={80}>
              Address
            </Text>
            <Text size="sm" ff="monospace">
              {r.data.address}
            </Text>
          </Group>
          <Group wrap="nowrap" align="flex-start">
            <Text size="sm" fw={600} w={80}>
              SPKI pin
            </Text>
            <Text size="sm" ff="monospace" style={{ wordBreak: 'break-all' }} data-testid="spki-pin">
              {r.data.pin}
            </Text>
            <CopyButton value={r.data.pin}>
              {({ copied, copy }) => (
                <Tooltip label={copied ? 'Copied' : 'Copy'}>
                  <ActionIcon variant="subtle" onClick={copy} aria-label="Copy the SPKI pin">
                    {copied ? <IconCheck size={16} /> : <IconCopy size={16} />}
                  </ActionIcon>
                </Tooltip>
              )}
            </CopyButton>
          </Group>
        </Stack>
      )}
    </Card>
  );
}

function PolicyEditor() {
  const r = useResource(defaultPolicy);
  const admin = useSession().session?.role === 'admin';
  const reauth = useReauth();
  const [p, setP] = useState<ReleasePolicy | null>(null);
  const { busy, run } = useAction();
  const [serverErr, setServerErr] = useState<{ field: 'ttl' | 'heartbeat' | null; msg: string } | null>(null);
  useEffect(() => {
    if (r.data) setP(structuredClone(r.data));
  }, [r.data]);
  if (r.error) return <ErrorNotice error={r.error} onRetry={r.reload} />;
  if (!p) return <Loading />;
  const ttlErr = durationError(p.approval_ttl ?? '15m0s', { min: 60 });
  const hbErr = durationError(p.heartbeat_interval ?? '1m0s', { min: 1 });
  const invalid = ttlErr || hbErr ? 'Fix the marked fields first' : '';
  const save = async () => {
    if (invalid) return;
    setServerErr(null);
    await run(
      'save',
      async () => {
        notifyOutcome(await reauth(() => api().approvals.setPolicy('', p)), 'Policy saved', 'New requests are decided with it; the change is in the audit log.');
        void defaultPolicy.reload();
      },
      {
        fail: 'Not saved',
        // The server's words, on the field they are about, without the call's plumbing.
        onError: (e) => {
          const msg = plainError(e.message);
          setServerErr({ field: /approval_ttl|expire/i.test(msg) ? 'ttl' : /heartbeat/i.test(msg) ? 'heartbeat' : null, msg });
          return true;
        },
      },
    );
  };
  return (
    <Card withBorder data-testid="policy-editor">
      <Title order={4} mb="xs">
        Release policy (console default)
      </Title>
      <Text size="sm" c="dimmed" mb="sm">
        What happens to each kind of request. Images may override it. Refused evidence is always denied.
      </Text>
      <Table>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Event</Table.Th>
            <Table.Th>Action</Table.Th>
            <Table.Th>Approvers needed</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {editable.map((c) => (
            <Table.Tr key={c}>
              <Table.Td>
                <Text size="sm" fw={500}>
                  {classLabels[c].label}
                </Text>
                <Text size="xs" c="dimmed">
                  {classLabels[c].what}
                </Text>
              </Table.Td>
              <Table.Td>
                <Select
                  size="xs"
                  w={150}
                  aria-label={`Action for ${classLabels[c].label}`}
                  disabled={!admin}
                  value={p.actions[c] ?? 'approve'}
                  data={[
                    { value: 'release', label: 'Release' },
                    { value: 'approve', label: 'Ask an officer' },
                    { value: 'deny', label: 'Deny' },
                  ]}
                  onChange={(v) => v && setP({ ...p, actions: { ...p.actions, [c]: v as ReleaseAction } })}
                  allowDeselect={false}
                  data-testid={`policy-${c}`}
                />
              </Table.Td>
              <Table.Td>
                <NumberInput
                  size="xs"
                  w={90}
                  aria-label={`Approvers needed for ${classLabels[c].label}`}
                  min={1}
                  max={9}
                  disabled={!admin || (p.actions[c] ?? 'approve') !== 'approve'}
                  value={p.approvers?.[c] ?? 1}
                  onChange={(v) => setP({ ...p, approvers: { ...(p.approvers ?? {}), [c]: Math.max(1, Number(v) || 1) } })}
                  data-testid={`approvers-${c}`}
                />
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <Group mt="md" align="flex-end">
        <TextInput
          label="Approvals expire after"
          description="e.g. 15m or 1h (at least 1 min)"
          w={200}
          disabled={!admin}
          value={p.approval_ttl ?? '15m0s'}
          onChange={(e) => setP({ ...p, approval_ttl: e.currentTarget.value })}
          error={ttlErr ?? (serverErr?.field === 'ttl' ? serverErr.msg : undefined)}
          data-testid="policy-ttl"
        />
        <TextInput
          label="Heartbeat interval"
          description="e.g. 1m or 30s"
          w={200}
          disabled={!admin}
          value={p.heartbeat_interval ?? '1m0s'}
          onChange={(e) => setP({ ...p, heartbeat_interval: e.currentTarget.value })}
          error={hbErr ?? (serverErr?.field === 'heartbeat' ? serverErr.msg : undefined)}
          data-testid="policy-heartbeat"
        />
        <Switch
          label="Allow guests with a migration agent"
          disabled={!admin}
          checked={!!p.allow_migration_agent}
          onChange={(e) => setP({ ...p, allow_migration_agent: e.currentTarget.checked })}
        />
        <Select
          label="Without a fresh AMD CRL"
          description="Revocation cannot be checked when the certificate cache has no CRL younger than 30 days"
          w={260}
          disabled={!admin}
          value={p.stale_crl ?? 'warn'}
          data={[
            { value: 'warn', label: 'Warn (release, show a warning)' },
            { value: 'refuse', label: 'Refuse the evidence' },
          ]}
          onChange={(v) => v && setP({ ...p, stale_crl: v as 'warn' | 'refuse' })}
          allowDeselect={false}
          data-testid="policy-stale-crl"
        />
        <Switch
          label="VLEK launches may be routine"
          description="A VLEK names no chip: by default every new launch is treated as a migration"
          disabled={!admin}
          checked={!!p.vlek_routine}
          onChange={(e) => setP({ ...p, vlek_routine: e.currentTarget.checked })}
        />
        {admin && (
          <Button
            loading={busy !== null}
            onClick={() => void save()}
            disabled={!!invalid}
            title={invalid || undefined}
            aria-describedby={invalid ? 'policy-why' : undefined}
            data-testid="policy-save"
          >
            Save policy
          </Button>
        )}
      </Group>
      {invalid && (
        <Text size="xs" c="red" mt={4} id="policy-why">
          {invalid}
        </Text>
      )}
      {serverErr && !serverErr.field && (
        <Alert color="red" mt="sm" data-testid="policy-error">
          {serverErr.msg}
        </Alert>
      )}
    </Card>
  );
}

function Row({ k, v, mono }: { k: string; v: string; mono?: boolean }) {
  return (
    <Table.Tr>
      <Table.Th w={220}>{k}</Table.Th>
      <Table.Td ff={mono ? 'monospace' : undefined}>{v}</Table.Td>
    </Table.Tr>
  );
}
