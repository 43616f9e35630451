import { Group, Radio, SegmentedControl, SimpleGrid, Text } from '@mantine/core';
import type { PrepareMode } from '../../../api';
import classes from '../PrepareWizard.module.css';
import type { StepProps } from './props';

/** ModeStep: a data disk (all of it one LUKS2 volume) or an OS disk (only the root partition), and the sector size. */
export function ModeStep({ s, dispatch }: StepProps) {
  const root = s.disk?.root_partition;
  return (
    <>
      <Radio.Group value={s.mode} onChange={(v) => dispatch({ type: 'edit', patch: { mode: v as PrepareMode } })} mt="md">
        <SimpleGrid cols={2}>
          <Radio.Card value="data" className={classes.choice} data-testid="mode-data">
            <Text fw={600}>Data disk</Text>
            <Text size="sm" c="dimmed">
              The whole disk becomes one LUKS2 volume. For disks the guest opens after boot.
            </Text>
          </Radio.Card>
          <Radio.Card value="os" className={classes.choice} disabled={!root} data-testid="mode-os">
            <Text fw={600}>OS disk</Text>
            <Text size="sm" c="dimmed">
              The EFI system partition (and a separate /boot) stay in clear so the guest can boot; the root partition
              {root ? ` (#${root})` : ''} is encrypted. {root ? '' : 'No root partition was found in this image.'}
            </Text>
          </Radio.Card>
        </SimpleGrid>
      </Radio.Group>
      <Group mt="lg">
        <Text size="sm">Encryption sector size</Text>
        <SegmentedControl value={s.sector} onChange={(v) => dispatch({ type: 'edit', patch: { sector: v as '512' | '4096' } })} data={['512', '4096']} />
        <Text size="xs" c="dimmed">
          4096 is faster; use 512 when the guest's file system or boot loader needs it.
        </Text>
      </Group>
    </>
  );
}
