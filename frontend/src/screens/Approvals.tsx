import { Alert, Badge, Button, Card, Group, Kbd, Progress, SegmentedControl, SimpleGrid, Stack, Text, Textarea, Title, Tooltip } from '@mantine/core';
import { useHotkeys, useInterval } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { IconCheck, IconChecklist, IconX } from '@tabler/icons-react';
import { useEffect, useRef, useState } from 'react';
import { api, type ReleaseClass, type ReleaseRequest, type TCB } from '../api';
import { EmptyState, ErrorNotice, formatTime, Loading, notifyError, PageHeader, shortHex, SimulatedBadge } from '../components/common';
import { useReauth } from '../components/Reauth';
import { DenyDialog } from '../features/approvals/DenyDialog';
import { RequestTrustNotices } from '../features/approvals/TrustNotices';
import { EvidenceDiff } from '../features/diff/EvidenceDiff';
import { diffSnapshots, type Snapshot } from '../features/diff/diff';
import { asEvidence, snapshotOf } from '../features/diff/evidence';
import { AdminActions } from '../features/quorum/AdminActions';
import { classLabels } from '../features/policy/classes';
import { expiredRequests, openAdminActions, pendingRequests } from '../stores/approvals';
import { riskColor, riskOf, shortChip, shortMeasurement } from '../features/risk/risk';
import { useResource } from '../stores/resource';
import { canAskForBrowserNotifications } from '../stores/attention';
import { useSession } from '../stores/session';

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
  /** a name an officer gave the chip, when the console knows one */
  chip_name?: string;
  generation?: number;
  current_generation?: number;
  simulated?: boolean;
  /** the VM received releases before, but never of this volume; vm_volumes are those it holds */
  new_volume?: boolean;
  vm_volumes?: string[];
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

/** RECENT_MS is how long an expired request stays on the Waiting list after its deadline. */
const RECENT_MS = 15 * 60_000;

/** HEADER is the height of the console's fixed header, which covers the top of the page. */
const HEADER = 56;

/** fullyVisible is true when el is entirely inside the viewport, below the fixed header. */
export function fullyVisible(el: Element | null | undefined): boolean {
  if (!el) return false;
  const r = el.getBoundingClientRect();
  return r.height > 0 && r.top >= HEADER && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth;
}

function riskOfRequest(q: ReleaseRequest) {
  const s = summaryOf(q);
  return riskOf({
    class: q.class,
    vm_id: q.vm_id,
    generation: q.generation,
    current_generation: s.current_generation,
    measurement: s.measurement,
    chip_id: s.chip_id,
    chip_name: s.chip_name,
    new_chip: s.new_chip,
    measurement_unapproved: (s.reasons ?? []).some((x) => /measurement/i.test(x.code)),
    pins: (s as { pins?: string }).pins,
  });
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
  const [view, setView] = useState<'waiting' | 'expired'>('waiting');
  const expired = useResource(expiredRequests);
  const cards = useRef(new Map<string, HTMLElement>());
  const [refused, setRefused] = useState<string | null>(null);
  const selectedId = list[sel]?.id;
  // The selected card follows the keyboard into view.
  const moved = useRef(false);
  useEffect(() => {
    if (!moved.current || !selectedId) return;
    moved.current = false;
    cards.current.get(selectedId)?.scrollIntoView({ block: 'nearest', behavior: 'auto' });
  }, [selectedId, sel]);
  const move = (to: number) => {
    moved.current = true;
    setRefused(null);
    setSelected(Math.max(0, Math.min(to, list.length - 1)));
  };
  /** shortcut decides the selected request only while its whole card is on screen. */
  const shortcut = (approve: boolean) => {
    const q = list[sel];
    if (!q || busy || denying || view !== 'waiting') return;
    const el = cards.current.get(q.id);
    if (!fullyVisible(el)) {
      el?.scrollIntoView({ block: 'nearest', behavior: 'auto' });
      setRefused(`Nothing was decided: the selected request (${q.vm_id}) was not fully on screen. Check it, then press ${approve ? 'a' : 'd'} again.`);
      return;
    }
    if (new Date(q.expires_at).getTime() <= Date.now()) {
      setRefused(`Nothing was decided: the request of ${q.vm_id} expired. Its guest asks again at its next boot.`);
      return;
    }
    setRefused(null);
    void decide(q, approve);
  };

  const [denying, setDenying] = useState<ReleaseRequest | null>(null);
  const decide = async (req: ReleaseRequest, approve: boolean) => {
    if (!approve) {
      // A denial asks why first (DenyDialog); the console refuses one without a reason.
      setDenying(req);
      return;
    }
    setBusy(req.id + ':a');
    try {
      const note = notes[req.id] ?? '';
      const res = await reauth(() => api().approvals.approve(req.id, note));
      const got = (res.approvals ?? []).length;
      notifications.show({
        color: 'teal',
        title: res.status === 'approved' ? 'Approved' : `Approval recorded (${got} of ${res.approvals_needed})`,
        autoClose: 5000,
        message:
          res.status === 'approved'
            ? `${req.vm_id} receives its key when its agent asks again (it is polling).`
            : `${res.approvals_needed - got} more officer(s) must approve.`,
      });
      void pendingRequests.reload();
    } catch (e) {
      notifyError(e, 'Not recorded');
    } finally {
      setBusy(null);
    }
  };
  const deny = async (req: ReleaseRequest, reason: string) => {
    setBusy(req.id + ':d');
    try {
      await reauth(() => api().approvals.deny(req.id, reason));
      notifications.show({
        color: 'orange',
        title: 'Denied',
        autoClose: 5000,
        message: `${req.vm_id} is refused; the decision is final for this request.`,
      });
      setNotes((n) => ({ ...n, [req.id]: '' }));
      void pendingRequests.reload();
    } finally {
      setBusy(null);
    }
  };

  useHotkeys([
    ['j', () => move(sel + 1)],
    ['k', () => move(sel - 1)],
    ['a', () => shortcut(true)],
    ['d', () => shortcut(false)],
  ]);

  const expiredList = expired.data ?? [];
  // Requests that ran out of time stay in view, greyed, for RECENT_MS after
  // their deadline: a request must not vanish while the officer reads it.
  const open = new Set(list.map((q) => q.id));
  const recentlyExpired = expiredList.filter(
    (q) => !open.has(q.id) && !/^superseded/.test(q.reason ?? '') && now - new Date(q.expires_at).getTime() < RECENT_MS,
  );
  return (
    <>
      <PageHeader
        title="Approvals"
        description="Release requests that need an officer (first boots, migrations to a new host, restores, platform changes, rotations) and custody actions that need a second admin. Newest first."
        right={
          <Group gap="xs" align="center">
            <SegmentedControl
              size="xs"
              value={view}
              onChange={(v) => setView(v as 'waiting' | 'expired')}
              data={[
                { value: 'waiting', label: `Waiting (${list.length})` },
                { value: 'expired', label: `Expired (${expiredList.length})` },
              ]}
              aria-label="Which requests"
              data-testid="approvals-filter"
            />
            {askable && (
              <Button size="xs" variant="light" onClick={() => void Notification.requestPermission().then(() => setAskable(canAskForBrowserNotifications()))}>
                Notify me in this browser
              </Button>
            )}
          </Group>
        }
      />
      <AdminActions />
      <DenyDialog
        opened={!!denying}
        what={denying ? `${classLabel(denying.class).toLowerCase()} of ${denying.vm_id}` : ''}
        initial={denying ? (notes[denying.id] ?? '') : ''}
        onClose={() => setDenying(null)}
        onDeny={(reason) => deny(denying!, reason)}
      />
      {list.length > 0 && view === 'waiting' && (
        <Text size="xs" c="dimmed" mt={-12} mb="xs">
          <Kbd>j</Kbd>/<Kbd>k</Kbd> next/previous · <Kbd>a</Kbd> approve · <Kbd>d</Kbd> deny — only the selected request, and only when it is fully on screen
        </Text>
      )}
      {refused && (
        <Alert color="yellow" mb="md" role="status" data-testid="shortcut-refused" withCloseButton onClose={() => setRefused(null)}>
          {refused}
        </Alert>
      )}
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!r.data && r.loading && <Loading />}
      {view === 'waiting' && r.data && r.data.length === 0 && (admin.data ?? []).length === 0 && (
        <EmptyState icon={<IconChecklist />} title="Nothing waits for you" testId="approvals-empty">
          Routine attested boots are released automatically. When a guest migrates, is restored, or its firmware changes, its request
          appears here for a one-click decision.
        </EmptyState>
      )}
      {view === 'waiting' && (
        <Stack gap={8} data-testid="approval-list">
          {list.map((q, i) => (
            <RequestCard
              key={q.id}
              q={q}
              now={now}
              selected={i === sel}
              onSelect={() => setSelected(i)}
              cardRef={(el) => (el ? cards.current.set(q.id, el) : cards.current.delete(q.id))}
              busy={busy}
              note={notes[q.id] ?? ''}
              onNote={(v) => setNotes({ ...notes, [q.id]: v })}
              decide={decide}
              mayDecide={mayDecide}
              me={me?.officer}
            />
          ))}
          {recentlyExpired.map((q) => (
            <RequestCard key={q.id} q={q} now={now} selected={false} busy={null} note="" decide={decide} testId="expired-card" />
          ))}
        </Stack>
      )}
      {view === 'expired' && (
        <Stack gap={8} data-testid="expired-list">
          {expiredList.length === 0 && (
            <Text size="sm" c="dimmed">
              No request expired. A request nobody decides before its deadline lands here; its guest asks again on its next boot.
            </Text>
          )}
          {expiredList.map((q) => (
            <RequestCard key={q.id} q={q} now={now} selected={false} busy={null} note="" />
          ))}
        </Stack>
      )}
    </>
  );
}

function RequestCard({
  q,
  now,
  selected,
  onSelect,
  cardRef,
  busy,
  note,
  onNote,
  decide,
  mayDecide = true,
  me,
  testId = 'approval-card',
}: {
  mayDecide?: boolean;
  me?: string;
  /** testId is "approval-card" for an open request, "expired-card" for one kept in view after it expired */
  testId?: string;
  q: ReleaseRequest;
  now: number;
  selected: boolean;
  onSelect?: () => void;
  cardRef?: (el: HTMLElement | null) => void;
  busy: string | null;
  note: string;
  onNote?: (v: string) => void;
  decide?: (q: ReleaseRequest, approve: boolean) => void;
}) {
  const s = summaryOf(q);
  const { before, after } = snapshots(s, q);
  const got = (q.approvals ?? []).length;
  const risk = riskOfRequest(q);
  const color = riskColor[risk.level];
  const isExpired = q.status === 'expired' || new Date(q.expires_at).getTime() <= now;
  const changes = diffSnapshots(before, after).filter((d) => d.changed);
  const [details, setDetails] = useState(false);
  const label = classLabel(q.class);
  const why = isExpired
    ? `This request expired at ${formatTime(q.expires_at)}: nothing can be approved or denied any more. The guest asks again at its next boot, and that request appears here.`
    : undefined;
  return (
    <Card
      withBorder
      ref={cardRef}
      padding={6}
      px="sm"
      shadow={selected ? 'md' : undefined}
      onClick={onSelect}
      aria-current={selected ? 'true' : undefined}
      aria-label={`${label} of ${q.vm_id}`}
      style={{ scrollMarginTop: 72, scrollMarginBottom: 16, opacity: isExpired ? 0.75 : undefined }}
      data-testid={testId}
      data-request={q.id}
      data-vm={q.vm_id}
      data-class={q.class}
      data-risk={risk.level}
      data-selected={selected || undefined}
      data-status={isExpired ? 'expired' : q.status}
      data-needed={q.approvals_needed}
      data-approvals={got}
    >
      <Group justify="space-between" wrap="nowrap" gap="xs">
        <Group gap="xs" wrap="nowrap" style={{ minWidth: 0 }}>
          <Badge color={color} variant="filled" data-testid="class-badge" style={{ flexShrink: 0 }}>
            {label}
          </Badge>
          {(q.signals ?? []).filter((x) => x !== q.class).map((x) => (
            <Badge key={x} variant="outline" size="sm" style={{ flexShrink: 0 }}>
              + {classLabel(x)}
            </Badge>
          ))}
          <Title order={4} size="h5" style={{ flexShrink: 0 }} data-testid="request-vm">
            {q.vm_id}
          </Title>
          {q.simulated && <SimulatedBadge />}
          <Text size="xs" c="dimmed" truncate data-testid="change-summary" style={{ minWidth: 0 }}>
            {changes.length > 0
              ? changes.map((d, i) => (
                  <span key={d.key}>
                    {i > 0 && ' · '}
                    {d.label}: <ChangeValue k={d.key} v={d.before} /> → <ChangeValue k={d.key} v={d.after} />
                  </span>
                ))
              : before === null
                ? <>{s.product ?? '—'} · chip <ChangeValue k="chip_id" v={s.chip_id ?? '—'} /> · gen {q.generation}</>
                : 'no change in the evidence'}
          </Text>
        </Group>
        <Group gap="xs" wrap="nowrap">
          <Tooltip label={`expires ${formatTime(q.expires_at)}`}>
            <Badge color={isExpired ? 'gray' : new Date(q.expires_at).getTime() - now < 120_000 ? 'red' : 'gray'} variant="light" data-testid="expires">
              {isExpired ? 'expired' : timeLeft(q.expires_at, now)}
            </Badge>
          </Tooltip>
          {decide && (
            <DecisionButtons
              q={q}
              risk={risk}
              color={color}
              busy={busy}
              decide={decide}
              mayDecide={mayDecide}
              mine={!!me && (q.approvals ?? []).some((a) => a.officer === me)}
              expired={why ?? ''}
            />
          )}
        </Group>
      </Group>
      <Group gap="xs" wrap="nowrap" align="center">
        <Text size="sm" c={risk.level === 'high' ? 'red' : undefined} fw={risk.level === 'high' ? 600 : undefined} data-testid="risk-sentence" style={{ minWidth: 0 }}>
          {risk.sentence}
        </Text>
        <Button
          size="compact-xs"
          variant="subtle"
          color="gray"
          ml="auto"
          style={{ flexShrink: 0 }}
          onClick={(e) => {
            e.stopPropagation();
            setDetails((d) => !d);
          }}
          aria-expanded={details}
          aria-label={`${details ? 'Hide' : 'Show'} details of ${label.toLowerCase()} of ${q.vm_id}`}
          data-testid="details-toggle"
        >
          {details ? 'Hide details' : 'Details'}
        </Button>
      </Group>
      <RequestTrustNotices request={q} pins={false} />
      {details && (
        <div onClick={(e) => e.stopPropagation()}>
          <RequestTrustNotices request={{ ...q, competing: [], summary: { pins: (s as { pins?: string }).pins } }} />
          <SimpleGrid cols={{ base: 2, md: 4 }} my="sm">
            <Fact
              label="Volume"
              value={`${shortHex(q.volume_id, 16)} · gen ${q.generation}`}
              full={s.new_volume ? `${q.volume_id} (the VM holds ${(s.vm_volumes ?? []).join(', ') || 'no other volume'})` : q.volume_id}
              badge={s.new_volume ? { text: 'new to this VM', color: 'orange' } : undefined}
            />
            <Fact
              label="Chip"
              value={`${s.product ?? '—'} · ${s.signer === 'VLEK' ? 'none (VLEK)' : shortChip(s.chip_id, s.chip_name)}`}
              full={s.chip_id}
              badge={s.new_chip ? { text: 'new chip', color: 'orange' } : { text: 'known chip', color: 'teal' }}
            />
            <Fact
              label="Measurement"
              value={shortMeasurement(s.measurement)}
              full={s.measurement}
              badge={
                q.first_boot_claim
                  ? { text: 'no reference values yet', color: 'orange' }
                  : (s.reasons ?? []).some((x) => /measurement/i.test(x.code))
                    ? { text: 'not approved', color: 'red' }
                    : { text: 'approved', color: 'teal' }
              }
            />
            <Fact label="Evidence" value={shortHex(q.evidence_hash, 16)} full={q.evidence_hash} />
          </SimpleGrid>
          <CardDetails q={q} s={s} before={before} after={after} note={note} onNote={onNote} isExpired={isExpired} />
        </div>
      )}
      {q.approvals_needed > 1 && (
        <Group mt={4} gap="xs" data-testid="quorum">
          <Text size="sm" data-testid="quorum-count">
            {got} of {q.approvals_needed} approvals · {Math.max(0, q.approvals_needed - got)} more needed
          </Text>
          <Progress value={(100 * got) / q.approvals_needed} w={160} aria-label={`${got} of ${q.approvals_needed} approvals`} />
          <Text size="xs" c="dimmed" data-testid="quorum-officers">
            {got > 0 ? 'approved by ' + (q.approvals ?? []).map((a) => a.officer).join(', ') : 'no approvals yet'}
          </Text>
        </Group>
      )}
      {isExpired && (
        <Text size="xs" c="dimmed" data-testid="expired-why">
          {why}
        </Text>
      )}
    </Card>
  );
}

function ChangeValue({ k, v }: { k: string; v: string }) {
  if (k === 'chip_id' && v !== '—') {
    return (
      <Text span ff="monospace" size="xs" title={v}>
        {shortChip(v)}
      </Text>
    );
  }
  if (k === 'measurement' && v !== '—') {
    return (
      <Text span ff="monospace" size="xs" title={v}>
        {shortMeasurement(v)}
      </Text>
    );
  }
  return <>{v}</>;
}

function DecisionButtons({
  q,
  risk,
  color,
  busy,
  decide,
  mayDecide = true,
  mine = false,
  expired = '',
}: {
  mayDecide?: boolean;
  mine?: boolean;
  /** expired says why nothing can be decided any more ("" while the request is open) */
  expired?: string;
  q: ReleaseRequest;
  risk: { verb: string; level: string };
  color: string;
  busy: string | null;
  decide?: (q: ReleaseRequest, approve: boolean) => void;
}) {
  const label = classLabel(q.class).toLowerCase();
  // A disabled button says why, on hover and to screen readers.
  const denyWhy = expired || (!mayDecide ? 'Your role (viewer) cannot decide requests' : '');
  const approveWhy = expired || (!mayDecide ? 'Your role (viewer) cannot approve' : mine ? 'You already approved; another officer must' : '');
  const whyId = `why-${q.id}`;
  return (
    <Group gap="xs" wrap="nowrap">
      {(denyWhy || approveWhy) && (
        <span id={whyId} style={{ display: 'none' }}>
          {approveWhy || denyWhy}
        </span>
      )}
      <Button
        size="compact-sm"
        color="gray"
        variant="default"
        leftSection={<IconX size={14} />}
        loading={busy === q.id + ':d'}
        disabled={!!denyWhy}
        title={denyWhy || undefined}
        aria-describedby={denyWhy ? whyId : undefined}
        onClick={(e) => {
          e.stopPropagation();
          decide?.(q, false);
        }}
        aria-label={`Deny ${label} of ${q.vm_id}`}
        data-testid="deny"
      >
        Deny
      </Button>
      <Button
        size="compact-sm"
        color={color}
        leftSection={<IconCheck size={14} />}
        loading={busy === q.id + ':a'}
        disabled={!!approveWhy}
        title={approveWhy || undefined}
        aria-describedby={approveWhy ? whyId : undefined}
        onClick={(e) => {
          e.stopPropagation();
          decide?.(q, true);
        }}
        aria-label={`${risk.verb} of ${q.vm_id}`}
        data-testid="approve"
        data-color={color}
      >
        {mine ? 'You approved' : risk.verb}
      </Button>
    </Group>
  );
}

function CardDetails({
  q,
  s,
  before,
  after,
  note,
  onNote,
  isExpired,
}: {
  q: ReleaseRequest;
  s: RequestSummary;
  before: Snapshot | null;
  after: Snapshot;
  note: string;
  onNote?: (v: string) => void;
  isExpired: boolean;
}) {
  return (
    <>
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
      {!isExpired && onNote && (
        <Textarea
          mt="sm"
          label="Note for the audit log (optional)"
          aria-label={`Note for the audit log about ${q.vm_id}`}
          autosize
          minRows={1}
          value={note}
          onChange={(e) => onNote(e.currentTarget.value)}
          onKeyDown={(e) => e.stopPropagation()}
        />
      )}
      <Text size="xs" c="dimmed" mt={4}>
        asked {formatTime(q.created_at)} · request {q.id}
      </Text>
    </>
  );
}

function Fact({ label, value, badge, full }: { label: string; value: string; badge?: { text: string; color: string }; full?: string }) {
  return (
    <div>
      <Text size="xs" c="dimmed" tt="uppercase" fw={700}>
        {label}
      </Text>
      <Group gap={6}>
        <Text size="sm" ff="monospace" title={full}>
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
