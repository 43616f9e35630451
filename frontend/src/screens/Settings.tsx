import { Alert, Card, Table } from '@mantine/core';
import { IconFlask } from '@tabler/icons-react';
import { ErrorNotice, Loading, PageHeader } from '../components/common';
import { consoleInfo } from '../stores/console';
import { useResource } from '../stores/resource';

export function SettingsScreen() {
  const r = useResource(consoleInfo);
  const i = r.data;
  return (
    <>
      <PageHeader title="Settings" description="This console: where its data lives, how it runs, and what it trusts." />
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!i && r.loading && <Loading />}
      {i?.dev_simulated_root && (
        <Alert color="grape" variant="filled" icon={<IconFlask />} title="Development mode: the simulated AMD root is trusted" mb="md">
          Evidence signed by Keyholder's simulated AMD root is accepted and marked SIMULATED. Never run a production console like this.
        </Alert>
      )}
      {i && (
        <Card withBorder>
          <Table data-testid="console-info">
            <Table.Tbody>
              <Row k="Version" v={i.version} />
              <Row k="Mode" v={i.mode === 'desktop' ? 'Desktop app' : 'Web console'} />
              <Row k="Data directory" v={i.data_dir} />
              <Row k="Database" v={i.database_path} />
              <Row k="Schema version" v={String(i.schema_version)} />
              <Row k="Platform" v={`${i.platform} on ${i.hostname}`} />
              <Row k="Simulated AMD root" v={i.dev_simulated_root ? 'TRUSTED (development)' : 'not trusted'} />
            </Table.Tbody>
          </Table>
        </Card>
      )}
    </>
  );
}

function Row({ k, v }: { k: string; v: string }) {
  return (
    <Table.Tr>
      <Table.Th w={220}>{k}</Table.Th>
      <Table.Td ff={k === 'Data directory' || k === 'Database' ? 'monospace' : undefined}>{v}</Table.Td>
    </Table.Tr>
  );
}
