import { Box, Group, Text } from '@mantine/core';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useRef } from 'react';
import type { Guest } from '../api';
import { formatTime, shortHex, SimulatedBadge, StatusBadge } from './common';
import classes from './GuestTable.module.css';

const ROW = 44;

/** GuestTable renders any number of guests; only the visible rows are in the DOM. */
export function GuestTable({ guests, onOpen }: { guests: Guest[]; onOpen: (g: Guest) => void }) {
  const parent = useRef<HTMLDivElement>(null);
  const v = useVirtualizer({ count: guests.length, getScrollElement: () => parent.current, estimateSize: () => ROW, overscan: 12 });
  return (
    <Box className={classes.table} data-testid="fleet-table" data-rows={guests.length}>
      <div className={`${classes.row} ${classes.head}`} role="row">
        <div>VM</div>
        <div>Status</div>
        <div>Image</div>
        <div>Product</div>
        <div>Chip</div>
        <div title="Bootloader / TEE / SNP firmware / microcode (/ FMC on Turin)">TCB</div>
        <div>Gen.</div>
        <div>Last evidence</div>
      </div>
      <div ref={parent} className={classes.body} role="rowgroup">
        <div style={{ height: v.getTotalSize(), position: 'relative' }}>
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
                <Group gap={6} wrap="nowrap" className={classes.cell}>
                  <Text size="sm" fw={500} truncate>
                    {g.name || g.id}
                  </Text>
                  {g.simulated && <SimulatedBadge />}
                </Group>
                <div>
                  <StatusBadge status={g.status} />
                </div>
                <Text size="sm" truncate>
                  {g.image_name || '—'}
                </Text>
                <Text size="sm">{g.product || '—'}</Text>
                <Text size="sm" ff="monospace" truncate>
                  {g.signer === 'VLEK' ? 'none (VLEK)' : shortHex(g.chip_id, 10)}
                </Text>
                <Text size="sm" ff="monospace">
                  {g.tcb.bootloader}/{g.tcb.tee}/{g.tcb.snp}/{g.tcb.microcode}
                  {g.tcb.fmc ? `/${g.tcb.fmc}` : ''}
                </Text>
                <Text size="sm">{g.generation || '—'}</Text>
                <Text size="sm" c="dimmed">
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
