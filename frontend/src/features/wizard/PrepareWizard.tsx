import { Button, Card, Group, Stepper, Title } from '@mantine/core';
import { IconX } from '@tabler/icons-react';
import { useReducer } from 'react';
import { consoleInfo } from '../../stores/console';
import { fleet } from '../../stores/fleet';
import { useResource } from '../../stores/resource';
import { generateRecoveryPassphrase } from './logic';
import { canNext, initialState, running, Steps, wizardReducer, type MinTCB } from './state';
import { EncryptStep } from './steps/EncryptStep';
import { KeysStep } from './steps/KeysStep';
import { ModeStep } from './steps/ModeStep';
import { OutputStep } from './steps/OutputStep';
import type { StepProps } from './steps/props';
import { ReferencesStep } from './steps/ReferencesStep';
import { SourceStep } from './steps/SourceStep';
import { SummaryStep } from './steps/SummaryStep';
import { usePreparation } from './usePreparation';

/**
 * PrepareWizard walks an officer from a plaintext disk image to an encrypted
 * one ready to upload. Its state is one value (state.ts) changed by actions;
 * each step is a component of its own (steps/); the console calls and the
 * run's progress live in usePreparation.
 */
export function PrepareWizard({ onClose }: { onClose: () => void }) {
  const desktop = useResource(consoleInfo).data?.mode === 'desktop';
  const [s, dispatch] = useReducer(wizardReducer, null, () => initialState(generateRecoveryPassphrase(), fleetTCB()));
  const prep = usePreparation(s, dispatch);
  const props: StepProps = { s, dispatch, prep, desktop };
  const busy = running(s);
  const { step } = s;

  return (
    <Card withBorder padding="lg" data-testid="prepare-wizard">
      <Group justify="space-between" mb="md">
        <Title order={3}>Prepare an encrypted image</Title>
        {!busy && (
          <Button variant="subtle" color="gray" onClick={onClose} leftSection={<IconX size={16} />}>
            Close
          </Button>
        )}
      </Group>
      <Stepper
        active={step}
        size="sm"
        allowNextStepsSelect={false}
        onStepClick={(to) => !busy && !s.result && to < step && dispatch({ type: 'goto', step: to })}
      >
        <Stepper.Step label="Source" description="Choose and inspect">
          <SourceStep {...props} />
        </Stepper.Step>
        <Stepper.Step label="Mode" description="Data or OS disk">
          <ModeStep {...props} />
        </Stepper.Step>
        <Stepper.Step label="Keys" description="Recovery">
          <KeysStep {...props} />
        </Stepper.Step>
        <Stepper.Step label="Reference values" description="What guests must prove">
          <ReferencesStep {...props} />
        </Stepper.Step>
        <Stepper.Step label="Output" description="Cloud format">
          <OutputStep {...props} />
        </Stepper.Step>
        <Stepper.Step label="Encrypt" description="Progress">
          <EncryptStep {...props} />
        </Stepper.Step>
        <Stepper.Completed>
          <SummaryStep {...props} onClose={onClose} />
        </Stepper.Completed>
      </Stepper>

      {step < Steps.encrypt && (
        <Group justify="flex-end" mt="xl">
          {step > Steps.source && (
            <Button variant="default" onClick={() => dispatch({ type: 'goto', step: step - 1 })}>
              Back
            </Button>
          )}
          {step < Steps.output && (
            <Button onClick={() => dispatch({ type: 'goto', step: step + 1 })} disabled={!canNext(s)} data-testid="wizard-next">
              Next
            </Button>
          )}
          {step === Steps.output && (
            <Button onClick={() => void prep.start()} disabled={!canNext(s) || s.starting} loading={s.starting} data-testid="wizard-start">
              Encrypt
            </Button>
          )}
        </Group>
      )}
    </Card>
  );
}

/**
 * fleetTCB is the TCB the fleet runs at now: per component, the lowest any
 * verified guest reports (so no healthy guest is locked out), or null while
 * no guest has reported one.
 */
function fleetTCB(): MinTCB | null {
  let out: MinTCB | null = null;
  for (const g of fleet.getState().guests.values()) {
    if (g.status !== 'verified') continue;
    const t = g.tcb;
    out = out
      ? { bootloader: Math.min(out.bootloader, t.bootloader), tee: Math.min(out.tee, t.tee), snp: Math.min(out.snp, t.snp), microcode: Math.min(out.microcode, t.microcode) }
      : { bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode };
  }
  return out;
}
