import { Alert, Button, Group, Radio, SimpleGrid, Stack, Text, TextInput } from '@mantine/core';
import type { OutputFormat } from '../../../api';
import classes from '../PrepareWizard.module.css';
import type { StepProps } from './props';

const outputs: { value: OutputFormat; label: string; what: string }[] = [
  { value: 'raw', label: 'Raw disk', what: 'a plain disk file for any hypervisor' },
  { value: 'gcp', label: 'Google Cloud', what: 'disk.raw inside a tar.gz, as Compute Engine imports it' },
  { value: 'azure', label: 'Azure', what: 'a fixed VHD rounded up to a whole MiB' },
  { value: 'aws', label: 'AWS', what: 'a raw disk, as EC2 import-snapshot takes it (Format=RAW)' },
  { value: 'vmdk', label: 'VMware (VMDK)', what: 'a streamOptimized VMDK for vSphere, or for EC2 as Format=VMDK' },
];

/** OutputStep: the cloud format, the image's name and where the encrypted image goes. */
export function OutputStep({ s, dispatch, prep, desktop }: StepProps) {
  return (
    <Stack mt="md">
      <Radio.Group value={s.output} onChange={(v) => dispatch({ type: 'output', output: v as OutputFormat })}>
        <SimpleGrid cols={{ base: 2, sm: 3, md: 5 }}>
          {outputs.map((o) => (
            <Radio.Card key={o.value} value={o.value} className={classes.choice} data-testid={`output-${o.value}`}>
              <Text fw={600}>{o.label}</Text>
              <Text size="xs" c="dimmed">
                {o.what}
              </Text>
            </Radio.Card>
          ))}
        </SimpleGrid>
      </Radio.Group>
      <TextInput label="Image name" value={s.name} onChange={(e) => dispatch({ type: 'edit', patch: { name: e.currentTarget.value } })} data-testid="wizard-name" />
      <Group align="flex-end">
        <TextInput
          label="Output file"
          value={s.dest}
          onChange={(e) => dispatch({ type: 'edit', patch: { dest: e.currentTarget.value } })}
          style={{ flex: 1 }}
          data-testid="wizard-dest"
        />
        {desktop && (
          <Button variant="default" onClick={() => void prep.browse(true)}>
            Choose…
          </Button>
        )}
      </Group>
      <Text size="xs" c="dimmed">
        A manifest with the volume ID, the LUKS2 UUID, the console's release URL and pin and the output's SHA-256 is written beside it.
      </Text>
      {s.runErr && (
        <Alert color="red" title="Could not start" data-testid="wizard-start-error">
          {s.runErr.message}
        </Alert>
      )}
    </Stack>
  );
}
