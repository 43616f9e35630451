import { Badge, Group, Switch, Table, Text, Tooltip } from '@mantine/core';
import { IconArrowRight } from '@tabler/icons-react';
import { useState } from 'react';
import { diffSnapshots, type Snapshot } from './diff';
import classes from './EvidenceDiff.module.css';
import { shortChip } from '../risk/risk';

/** showValue shortens 128-digit chip IDs to their first and last digits; the full value is on hover. */
function showValue(key: string, v: string) {
  if (key !== 'chip_id' || v === '—') return v;
  return (
    <span title={v} data-full={v}>
      {shortChip(v)}
    </span>
  );
}

/** EvidenceDiff shows what changed since the last approved boot, side by side. */
export function EvidenceDiff({ before, after, beforeLabel = 'Last approved boot', afterLabel = 'This request' }: {
  before: Snapshot | null;
  after: Snapshot;
  beforeLabel?: string;
  afterLabel?: string;
}) {
  const rows = diffSnapshots(before, after);
  const changed = rows.filter((r) => r.changed);
  const [all, setAll] = useState(changed.length === 0);
  const shown = all ? rows : changed;
  return (
    <div data-testid="evidence-diff" data-changes={changed.length}>
      <Group justify="space-between" mb={4}>
        <Text size="sm" fw={600}>
          {before === null ? 'First boot: nothing to compare with yet' : changed.length === 0 ? 'Nothing changed since the last approved boot' : `${changed.length} change${changed.length === 1 ? '' : 's'} since the last approved boot`}
        </Text>
        {before !== null && changed.length > 0 && <Switch size="xs" label="show unchanged" checked={all} onChange={(e) => setAll(e.currentTarget.checked)} />}
      </Group>
      <Table className={classes.table} withRowBorders={false}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th w="26%">Field</Table.Th>
            <Table.Th>{beforeLabel}</Table.Th>
            <Table.Th w={24} />
            <Table.Th>{afterLabel}</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {(before === null ? rows : shown).map((r) => (
            <Table.Tr key={r.key} className={r.changed ? (r.worse ? classes.worse : classes.changed) : undefined} data-changed={r.changed || undefined}>
              <Table.Td>
                <Tooltip label={r.explain} multiline w={320} withArrow>
                  <Text size="sm" className={classes.label}>
                    {r.label}
                  </Text>
                </Tooltip>
              </Table.Td>
              <Table.Td ff="monospace" fz="xs" className={classes.value}>
                {showValue(r.key, r.before)}
              </Table.Td>
              <Table.Td>{r.changed && <IconArrowRight size={14} />}</Table.Td>
              <Table.Td ff="monospace" fz="xs" className={classes.value}>
                {showValue(r.key, r.after)}
                {r.worse && (
                  <Badge ml={6} size="xs" color="red">
                    weaker
                  </Badge>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </div>
  );
}
