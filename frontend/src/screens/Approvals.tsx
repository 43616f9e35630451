import { Badge, Button, Card, Group, Kbd, Progress, SimpleGrid, Stack, Text, Textarea, Title, Tooltip } from '@mantine/core';
import { useHotkeys, useInterval } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { IconCheck, IconChecklist, IconX } from '@tabler/icons-react';
import { useEffect, useState } from 'react';
import { api, type ReleaseClass, type ReleaseRequest, type TCB } from '../api';
import { EmptyState, ErrorNotice, formatTime, Loading, notifyError, PageHeader, shortHex, SimulatedBadge } from '../components/common';
import { useReauth } from '../components/Reauth';
import { RequestTrustNotices } from '../features/approvals/TrustNotices';
import { EvidenceDiff } from '../features/diff/EvidenceDiff';
import type { Snapshot } from '../features/diff/diff';
import { asEvidence, snapshotOf } from '../features/diff/evidence';
import { AdminActions } from '../features/quorum/AdminActions';
import { openAdminActions, pendingRequests } from '../stores/approvals';
import { useResource } from '../stores/resource';
import { canAskForBrowserNotifications } from '../stores/attention';
import { useSession } from '../stores/session';
import { classLabels } from './Settings';

/** RequestSummary is release.Summary: what the console recorded about a pending request. */
interface RequestSummary {
  vm_id?: string;
  signals?: string[];
  product?: string;
  chip_id?: string;
  signer?: string;
  measurement?: string;
  tcb?: TCB;
  previous_tcb?: TCB | null;
  new_chip?: boolean;
  generation?: number;
  current_generation?: number;
  simulated?: boolean;
  reasons?: { code: string; message: string }[];
  previous?: unknown;
  evidence?: unknown;
}

export function summaryOf(r: ReleaseRequest): RequestSummary {
  return (r.summary && typeof r.summary === 'object' ? r.summary : {}) as RequestSummary;
}

/** snapshots turns a request summary into the two sides of the diff. */
export function snapshots(s: RequestSummary, r: ReleaseRequest): { before: Snapshot | null; after: Snapshot } {
  const decoded = snapshotOf(asEvidence(s.evidence), r.generation);
  const after: Snapshot = decoded ?? { product: s.product, chip_id: s.chip_id, measurement: s.measurement, tcb: s.tcb, generation: r.generation };
  const prev = snapshotOf(asEvidence(s.previous), s.current_generation);
  if (prev) return { before: prev, after };
  if (r.class === 'first_boot' && !s.previous_tcb) return { before: null, after };
  return {
    before: {
      product: s.product,
      chip_id: s.new_chip ? '(another chip)' : s.chip_id,
      measurement: s.measurement,
      tcb: s.previous_tcb ?? s.tcb,
      generation: s.current_generation,
    },
    after,
  };
}

function classLabel(c: string) {
  return classLabels[c as ReleaseClass]?.label ?? c.replace(/_/g, ' ');
}

function timeLeft(expires: string, now: number) {
  const s = Math.max(0, Math.round((new Date(expires).getTime() - now) / 1000));
  if (s === 0) return 'expired';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m} min ${s % 60} s left` : `${s} s left`;
}

export function ApprovalsScreen() {
  const r = useResource(pendingRequests);
  const admin = useResource(openAdminActions);
  const [selected, setSelected] = useState(0);
  const [now, setNow] = useState(Date.now());
  const tick = useInterval(() => setNow(Date.now()), 1000);
  useEffect(() => {
    tick.start();
    return tick.stop;
  }, [tick]);
  const list = r.data ?? [];
  const sel = Math.min(selected, Math.max(0, list.length - 1));
  const [busy, setBusy] = useState<string | null>(null);
  const [notes, setNotes] = useState<Record<string, string>>({});
  const reauth = useReauth();
  const me = useSession().session;
  const mayDecide = me?.role === 'approver' || me?.role === 'admin';
  const [askable, setAskable] = useState(canAskForBrowserNotifications());

  const decide = async (req: ReleaseRequest, approve: boolean) => {
    setBusy(req.id + (approve ? ':a' : ':d'));
    try {
      const note = notes[req.id] ?? '';
      const res = await reauth(() => (approve ? api().approvals.approve(req.id, note) : api().approvals.deny(req.id, note)));
      const got = (res.approvals ?? []).length;
      notifications.show({
        color: approve ? 'teal' : 'orange',
        title: approve ? (res.status === 'approved' ? 'Approved' : `Approval recorded (${got} of ${res.approvals_needed})`) : 'Denied',
        message: approve
          ? res.status === 'approved'
            ? `${req.vm_id} receives its key when its agent asks again (it is polling).`
            : `${res.approvals_needed - got} more officer(s) must approve.`
          : `${req.vm_id} is refused; the decision is final for this request.`,
      });
      void pendingRequests.reload();
    } catch (e) {
      notifyError(e, 'Not recorded');
    } finally {
      setBusy(null);
    }
  };

  useHotkeys([
    ['j', () => setSelected(Math.min(sel + 1, list.length - 1))],
    ['k', () => setSelected(Math.max(sel - 1, 0))],
    ['a', () => list[sel] && void decide(list[sel], true)],
    ['d', () => list[sel] && void decide(list[sel], false)],
  ]);

  return (
    <>
      <PageHeader
        title="Approvals"
        description="Release requests that need an officer (first boots, migrations to a new host, restores, platform changes, rotations) and custody actions that need a second admin. Newest first."
        right={
          <Stack gap={4} align="flex-end">
            {askable && (
              <Button size="xs" variant="light" onClick={() => void Notification.requestPermission().then(() => setAskable(canAskForBrowserNotifications()))}>
                Notify me in this browser
              </Button>
            )}
            {list.length > 0 && (
              <Text size="xs" c="dimmed">
                <Kbd>j</Kbd>/<Kbd>k</Kbd> next/previous · <Kbd>a</Kbd> approve · <Kbd>d</Kbd> deny
              </Text>
            )}
          </Stack>
        }
      />
      <AdminActions />
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!r.data && r.loading && <Loading />}
      {r.data && r.data.length === 0 && (admin.data ?? []).length === 0 && (
        <EmptyState icon={<IconChecklist />} title="Nothing waits for you" testId="approvals-empty">
          Routine attested boots are released automatically. When a guest migrates, is restored, or its firmware changes, its request
          appears here for a one-click decision.
        </EmptyState>
      )}
      <Stack>
        {list.map((q, i) => {
          const s = summaryOf(q);
          const { before, after } = snapshots(s, q);
          const got = (q.approvals ?? []).length;
          const mine = !!me?.officer && (q.approvals ?? []).some((a) => a.officer === me.officer);
          return (
            <Card
              withBorder
              key={q.id}
              shadow={i === sel ? 'md' : undefined}
              style={i === sel ? { borderColor: 'var(--mantine-primary-color-filled)' } : undefined}
              onClick={() => setSelected(i)}
              data-testid="approval-card"
              data-request={q.id}
              data-class={q.class}
              data-needed={q.approvals_needed}
              data-approvals={got}
            >
              <Group justify="space-between" mb="xs">
                <Group gap="xs">
                  <Badge size="lg">{classLabel(q.class)}</Badge>
                  {(q.signals ?? []).filter((x) => x !== q.class).map((x) => (
                    <Badge key={x} variant="outline" size="sm">
                      + {classLabel(x)}
                    </Badge>
                  ))}
                  <Title order={4}>{q.vm_id}</Title>
                  {q.simulated && <SimulatedBadge />}
                </Group>
                <Tooltip label={`expires ${formatTime(q.expires_at)}`}>
                  <Badge color={new Date(q.expires_at).getTime() - now < 120_000 ? 'red' : 'gray'} variant="light" data-testid="expires">
                    {timeLeft(q.expires_at, now)}
                  </Badge>
                </Tooltip>
              </Group>
              <SimpleGrid cols={{ base: 2, md: 4 }} mb="sm">
                <Fact label="Volume" value={`${shortHex(q.volume_id, 16)} · gen ${q.generation}`} />
                <Fact label="Chip" value={`${s.product ?? '—'} · ${s.signer === 'VLEK' ? 'none (VLEK)' : shortHex(s.chip_id ?? '', 10)}`} badge={s.new_chip ? { text: 'new chip', color: 'orange' } : { text: 'known chip', color: 'teal' }} />
                <Fact
                  label="Measurement"
                  value={shortHex(s.measurement ?? '', 16)}
                  badge={
                    q.first_boot_claim
                      ? { text: 'no reference values yet', color: 'orange' }
                      : (s.reasons ?? []).some((x) => /measurement/i.test(x.code))
                        ? { text: 'not approved', color: 'red' }
                        : { text: 'approved', color: 'teal' }
                  }
                />
                <Fact label="Evidence" value={shortHex(q.evidence_hash, 16)} />
              </SimpleGrid>
              <RequestTrustNotices request={q} />
              {(s.reasons ?? []).length > 0 && (
                <Stack gap={2} mb="sm">
                  {s.reasons!.map((x) => (
                    <Text size="sm" key={x.code + x.message} c="orange">
                      {x.message}
                    </Text>
                  ))}
                </Stack>
              )}
              <EvidenceDiff before={before} after={after} />
              {q.approvals_needed > 1 && (
                <Group mt="sm" gap="xs" data-testid="quorum">
                  <Text size="sm" data-testid="quorum-count">
                    {got} of {q.approvals_needed} approvals · {Math.max(0, q.approvals_needed - got)} more needed
                  </Text>
                  <Progress value={(100 * got) / q.approvals_needed} w={160} />
                  <Text size="xs" c="dimmed" data-testid="quorum-officers">
                    {got > 0 ? 'approved by ' + (q.approvals ?? []).map((a) => a.officer).join(', ') : 'no approvals yet'}
                  </Text>
                </Group>
              )}
              <Group mt="md" align="flex-end">
                <Textarea
                  placeholder="Note for the audit log (optional)"
                  autosize
                  minRows={1}
                  style={{ flex: 1 }}
                  value={notes[q.id] ?? ''}
                  onChange={(e) => setNotes({ ...notes, [q.id]: e.currentTarget.value })}
                  onKeyDown={(e) => e.stopPropagation()}
                />
                <Button
                  color="red"
                  variant="light"
                  leftSection={<IconX size={16} />}
                  loading={busy === q.id + ':d'}
                  disabled={!mayDecide}
                  onClick={() => void decide(q, false)}
                  data-testid="deny"
                >
                  Deny
                </Button>
                <Tooltip
                  label={!mayDecide ? 'Your role (viewer) cannot approve' : 'You already approved; another officer must'}
                  disabled={mayDecide && !mine}
                >
                  <Button
                    color="teal"
                    leftSection={<IconCheck size={16} />}
                    loading={busy === q.id + ':a'}
                    disabled={!mayDecide || mine}
                    onClick={() => void decide(q, true)}
                    data-testid="approve"
                  >
                    {mine ? 'You approved' : 'Approve'}
                  </Button>
                </Tooltip>
              </Group>
              <Text size="xs" c="dimmed" mt={4}>
                asked {formatTime(q.created_at)} · request {q.id}
              </Text>
            </Card>
          );
        })}
      </Stack>
    </>
  );
}

function Fact({ label, value, badge }: { label: string; value: string; badge?: { text: string; color: string } }) {
  return (
    <div>
      <Text size="xs" c="dimmed" tt="uppercase" fw={700}>
        {label}
      </Text>
      <Group gap={6}>
        <Text size="sm" ff="monospace">
          {value}
        </Text>
        {badge && (
          <Badge size="xs" color={badge.color} variant="light">
            {badge.text}
          </Badge>
        )}
      </Group>
    </div>
  );
}
