import { Alert, Group, NumberInput, SegmentedControl, Stack, Switch, Text, Textarea } from '@mantine/core';
import { measurements, type ReferenceChoice } from '../state';
import type { StepProps } from './props';

/** ReferencesStep: the launch measurements and policy guests of the image must prove, or a first boot that waits for an officer. */
export function ReferencesStep({ s, dispatch }: StepProps) {
  const parsed = measurements(s);
  return (
    <Stack mt="md">
      <SegmentedControl
        value={s.refChoice}
        onChange={(v) => dispatch({ type: 'edit', patch: { refChoice: v as ReferenceChoice } })}
        data={[
          { value: 'paste', label: 'Paste launch measurements' },
          { value: 'first-boot', label: 'Capture on first boot' },
        ]}
      />
      {s.refChoice === 'paste' ? (
        <>
          <Textarea
            label="Approved launch measurements"
            description="One SHA-384 launch measurement per line (96 hex digits), as sev-snp-measure or your cloud's tooling prints it."
            autosize
            minRows={3}
            ff="monospace"
            value={s.measurementText}
            onChange={(e) => dispatch({ type: 'edit', patch: { measurementText: e.currentTarget.value } })}
            error={parsed.errors.join('; ') || undefined}
            data-testid="wizard-measurements"
          />
          <Text size="sm" fw={500}>
            Minimum TCB (0 = no minimum)
          </Text>
          <Text size="xs" c={s.fleetTCB ? 'dimmed' : 'orange'} data-testid="wizard-tcb-note">
            {s.fleetTCB
              ? 'Set to the TCB your fleet runs at now: guests on older firmware are refused.'
              : 'No guest has reported a TCB yet: enter the current TCB of your hosts, or 0 accepts any firmware.'}
          </Text>
          <Group>
            {(['bootloader', 'tee', 'snp', 'microcode'] as const).map((k) => (
              <NumberInput
                key={k}
                label={k === 'snp' ? 'SNP firmware' : k === 'tee' ? 'TEE' : k[0].toUpperCase() + k.slice(1)}
                min={0}
                max={255}
                w={130}
                value={s.minTCB[k]}
                data-testid={`wizard-tcb-${k}`}
                onChange={(v) => dispatch({ type: 'edit', patch: { minTCB: { ...s.minTCB, [k]: Number(v) || 0 } } })}
              />
            ))}
          </Group>
          <Switch
            checked={s.allowSMT}
            onChange={(e) => dispatch({ type: 'edit', patch: { allowSMT: e.currentTarget.checked } })}
            label="Allow SMT (simultaneous multithreading) on the host"
            description="Off is the strict choice: SMT siblings share a core with other tenants."
            data-testid="wizard-allow-smt"
          />
          <Text size="xs" c="dimmed">
            Debug mode is never allowed, and neither is the migration agent unless you change the image's reference values: you can edit
            them once the image is ready, on the wizard's last step or on the Images screen.
          </Text>
        </>
      ) : (
        <Alert color="blue" title="The first boot waits for you">
          The guest's first request is held as a first-boot approval showing its measurement and TCB. Approving it releases the key; or
          enter the measurement as the image's reference values once the image is ready, on the wizard's last step or on the Images screen.
        </Alert>
      )}
    </Stack>
  );
}
