import { Box, Group, Text } from '@mantine/core';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useRef } from 'react';
import type { Guest } from '../api';
import type { FleetSort, SortKey } from '../stores/fleet';
import { nextStep } from '../features/guidance/nextStep';
import { formatTime, shortHex, SimulatedBadge, StatusBadge } from './common';
import classes from './GuestTable.module.css';

const ROW = 44;

const columns: { key: SortKey | null; label: string; title?: string }[] = [
  { key: 'name', label: 'VM' },
  { key: 'status', label: 'Status' },
  { key: 'reason', label: 'Reason' },
  { key: 'image', label: 'Image' },
  { key: null, label: 'Product' },
  { key: null, label: 'Chip' },
  { key: null, label: 'TCB', title: 'Bootloader / TEE / SNP firmware / microcode (/ FMC on Turin)' },
  { key: 'generation', label: 'Gen.' },
  { key: 'evidence', label: 'Last evidence' },
];

interface Props {
  guests: Guest[];
  onOpen: (g: Guest) => void;
  sort?: FleetSort;
  onSort?: (k: SortKey) => void;
  onPointerEnter?: () => void;
  onPointerMove?: () => void;
  onPointerLeave?: () => void;
}

/** GuestTable renders any number of guests; only the visible rows are in the DOM. */
export function GuestTable({ guests, onOpen, sort, onSort, onPointerEnter, onPointerMove, onPointerLeave }: Props) {
  const parent = useRef<HTMLDivElement>(null);
  const v = useVirtualizer({ count: guests.length, getScrollElement: () => parent.current, estimateSize: () => ROW, overscan: 12 });
  return (
    <Box
      className={classes.table}
      role="table"
      aria-label="Guests"
      aria-rowcount={guests.length + 1}
      data-testid="fleet-table"
      data-rows={guests.length}
      data-sort={sort ? `${sort.key}${sort.desc ? ':desc' : ''}` : ''}
      onPointerEnter={onPointerEnter}
      onPointerMove={onPointerMove}
      onPointerLeave={onPointerLeave}
    >
      <div role="rowgroup">
        <div className={`${classes.row} ${classes.head}`} role="row">
          {columns.map((c) => {
            const active = sort && c.key && (sort.key === c.key || (sort.key === 'attention' && c.key === 'status'));
            const dir = active ? (sort!.desc ? 'descending' : 'ascending') : 'none';
            return (
              <div key={c.label} role="columnheader" aria-sort={c.key ? dir : undefined} title={c.title}>
                {c.key && onSort ? (
                  <button type="button" className={classes.sort} onClick={() => onSort(c.key!)} data-testid={`sort-${c.key}`}>
                    {c.label}
                    {active ? (sort!.desc ? ' ▼' : ' ▲') : ''}
                  </button>
                ) : (
                  c.label
                )}
              </div>
            );
          })}
        </div>
      </div>
      <div ref={parent} className={classes.body} role="rowgroup">
        <div style={{ height: v.getTotalSize(), position: 'relative' }} role="presentation">
          {v.getVirtualItems().map((item) => {
            const g = guests[item.index];
            return (
              <div
                key={g.id}
                role="row"
                tabIndex={0}
                className={`${classes.row} ${classes.item}`}
                style={{ transform: `translateY(${item.start}px)`, height: ROW }}
                onClick={() => onOpen(g)}
                onKeyDown={(e) => e.key === 'Enter' && onOpen(g)}
                data-testid="fleet-row"
                data-guest={g.id}
                data-status={g.status}
                data-evidence-at={g.last_evidence_at ?? ''}
              >
                <Group gap={6} wrap="nowrap" className={classes.cell} role="cell">
                  <Text size="sm" fw={500} lh={1.15} lineClamp={2} title={g.name || g.id} style={{ overflowWrap: 'anywhere' }} data-testid="guest-name">
                    {g.name || g.id}
                  </Text>
                  {g.simulated && <SimulatedBadge />}
                </Group>
                <div role="cell">
                  <StatusBadge status={g.status} />
                </div>
                <ReasonCell g={g} />
                <Text size="sm" truncate role="cell">
                  {g.image_name || '—'}
                </Text>
                <Text size="sm" role="cell">{g.product || '—'}</Text>
                <Text size="sm" ff="monospace" truncate role="cell">
                  {g.signer === 'VLEK' ? 'none (VLEK)' : shortHex(g.chip_id, 10)}
                </Text>
                <Text size="sm" ff="monospace" role="cell">
                  {g.tcb.bootloader}/{g.tcb.tee}/{g.tcb.snp}/{g.tcb.microcode}
                  {g.tcb.fmc ? `/${g.tcb.fmc}` : ''}
                </Text>
                <Text size="sm" role="cell">{g.generation || '—'}</Text>
                <Text size="sm" c="dimmed" role="cell">
                  {formatTime(g.last_evidence_at)}
                </Text>
              </div>
            );
          })}
        </div>
      </div>
    </Box>
  );
}

/** ReasonCell says why a guest needs attention and, below, what to do next (in full on hover). */
function ReasonCell({ g }: { g: Guest }) {
  const next = nextStep(g);
  if (!g.reason && !next) {
    return (
      <Text size="sm" c="dimmed" role="cell" data-testid="fleet-reason">
        —
      </Text>
    );
  }
  return (
    <div role="cell" className={classes.cell} title={[g.reason, next?.long].filter(Boolean).join('\n\nNext step: ')} data-testid="fleet-reason">
      {g.reason && (
        <Text size="xs" c="red" truncate lh={1.3}>
          {g.reason}
        </Text>
      )}
      {next && (
        <Text size="xs" truncate lh={1.3} data-testid="fleet-next-step" data-kind={next.kind}>
          → {next.short}
        </Text>
      )}
    </div>
  );
}
