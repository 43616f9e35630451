import { Badge, Card, Group, Stack, Text } from '@mantine/core';
import { IconChecklist } from '@tabler/icons-react';
import { EmptyState, ErrorNotice, formatTime, Loading, PageHeader, shortHex, SimulatedBadge } from '../components/common';
import { pendingRequests } from '../stores/approvals';
import { useResource } from '../stores/resource';

export function ApprovalsScreen() {
  const r = useResource(pendingRequests);
  return (
    <>
      <PageHeader
        title="Approvals"
        description="Release requests that need an officer: first boots, migrations to a new host, restores, platform changes and rotations."
      />
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!r.data && r.loading && <Loading />}
      {r.data && r.data.length === 0 && (
        <EmptyState icon={<IconChecklist />} title="Nothing waits for you" testId="approvals-empty">
          Routine attested boots are released automatically. When a guest migrates, is restored, or its firmware changes, its request
          appears here for a one-click decision.
        </EmptyState>
      )}
      <Stack>
        {r.data?.map((q) => (
          <Card withBorder key={q.id} data-testid="approval-card">
            <Group justify="space-between">
              <Group gap="xs">
                <Badge>{q.class.replace('_', ' ')}</Badge>
                <Text fw={600}>{q.vm_id}</Text>
                {q.simulated && <SimulatedBadge />}
              </Group>
              <Text size="sm" c="dimmed">
                expires {formatTime(q.expires_at)}
              </Text>
            </Group>
            <Text size="sm" mt="xs">
              Volume {q.volume_id} · evidence {shortHex(q.evidence_hash)} · asked {formatTime(q.created_at)}
            </Text>
          </Card>
        ))}
      </Stack>
    </>
  );
}
