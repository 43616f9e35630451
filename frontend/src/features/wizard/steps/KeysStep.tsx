import { Alert, Button, Card, Code, CopyButton, Group, NumberInput, SegmentedControl, Stack, Switch, Text } from '@mantine/core';
import { IconCheck, IconCopy, IconPrinter } from '@tabler/icons-react';
import { generateRecoveryPassphrase } from '../logic';
import classes from '../PrepareWizard.module.css';
import { sharesInvalid, type RecoveryChoice } from '../state';
import type { StepProps } from './props';

/** KeysStep: the recovery keyslot, as a passphrase shown once, as Shamir shares of it, or none (with a warning). */
export function KeysStep(props: StepProps) {
  const { s, dispatch } = props;
  return (
    <Stack mt="md">
      <Text size="sm">
        The disk opens with a release secret that Keyholder keeps and hands only to attested guests. A recovery passphrase adds a second
        keyslot that opens the disk without Keyholder, for emergencies.
      </Text>
      <SegmentedControl
        value={s.recovery}
        onChange={(v) => dispatch({ type: 'recovery', recovery: v as RecoveryChoice, fresh: generateRecoveryPassphrase() })}
        data={[
          { value: 'passphrase', label: 'Recovery passphrase' },
          { value: 'shares', label: 'Shamir shares of it' },
          { value: 'none', label: 'No recovery keyslot' },
        ]}
        data-testid="recovery-choice"
      />
      {s.recovery === 'shares' && <SharesCard {...props} />}
      {s.recovery === 'passphrase' && (
        <Card withBorder className="print-area" data-testid="recovery-card">
          <Text size="sm" fw={600}>
            Recovery passphrase for {s.name || 'this image'} — shown once
          </Text>
          <Text className={classes.passphrase} data-testid="recovery-passphrase">
            {s.passphrase}
          </Text>
          <Group className="no-print">
            <CopyButton value={s.passphrase} timeout={2000}>
              {({ copied, copy }) => (
                <Button size="xs" variant="light" leftSection={copied ? <IconCheck size={14} /> : <IconCopy size={14} />} onClick={copy}>
                  {copied ? 'Copied' : 'Copy'}
                </Button>
              )}
            </CopyButton>
            <Button size="xs" variant="light" leftSection={<IconPrinter size={14} />} onClick={() => window.print()}>
              Print
            </Button>
            <Button size="xs" variant="subtle" onClick={() => dispatch({ type: 'edit', patch: { passphrase: generateRecoveryPassphrase() } })}>
              New passphrase
            </Button>
          </Group>
          <Text size="xs" c="dimmed" mt="xs" className="no-print">
            Keyholder does not store it. Write it down or print it and keep it where your other recovery material lives; clear the clipboard
            if you copied it.
          </Text>
        </Card>
      )}
      {s.recovery === 'passphrase' && (
        <Switch
          checked={s.savedIt}
          onChange={(e) => dispatch({ type: 'edit', patch: { savedIt: e.currentTarget.checked } })}
          label="I have stored the recovery passphrase safely"
          data-testid="recovery-saved"
        />
      )}
      {s.recovery === 'none' && (
        <Alert color="orange" title="No way in without Keyholder" data-testid="no-recovery-warning">
          Without a recovery keyslot, only this console can open the disk: if its database or every officer's passphrase is lost, the data
          is gone. Choose a recovery passphrase or shares unless you keep another copy of the data.
        </Alert>
      )}
      {s.recovery === 'shares' && s.shares && (
        <Switch
          disabled={s.seen < s.shares.length - 1 && !s.savedIt}
          checked={s.savedIt}
          onChange={(e) => dispatch({ type: 'edit', patch: { savedIt: e.currentTarget.checked } })}
          label="I have handed out the shares"
          data-testid="shares-saved"
        />
      )}
    </Stack>
  );
}

/** SharesCard splits the recovery passphrase and shows the shares one custodian at a time. */
function SharesCard({ s, dispatch, prep }: StepProps) {
  const invalid = sharesInvalid(s);
  const { shares, custodian, shareM, shareN } = s;
  return (
    <Card withBorder className="print-area" data-testid="shares-card">
      <Text size="sm">
        The recovery passphrase is split into shares, one per custodian; {invalid ? 'enough of them' : `any ${shareM} of ${shareN}`} rebuild it
        with <code>keyholder shares combine</code>. Nobody sees the passphrase itself, and each custodian sees only their own share.
      </Text>
      <Group align="flex-start" mt="xs" className="no-print">
        <NumberInput
          label="Threshold"
          min={2}
          max={16}
          w={110}
          value={shareM}
          onChange={(v) => dispatch({ type: 'share-params', m: Number(v) || 2 })}
          error={invalid ? 'more than the shares' : undefined}
          data-testid="wizard-share-m"
        />
        <NumberInput
          label="Shares"
          min={2}
          max={16}
          w={110}
          value={shareN}
          onChange={(v) => dispatch({ type: 'share-params', n: Number(v) || 3 })}
          data-testid="wizard-share-n"
        />
        <Button mt={24} variant="light" onClick={() => void prep.makeShares()} disabled={shareM < 2 || !!invalid} data-testid="wizard-make-shares">
          Make shares
        </Button>
      </Group>
      {invalid && (
        <Alert color="red" mt="xs" data-testid="wizard-share-invalid">
          {invalid}
        </Alert>
      )}
      {s.shareErr && (
        <Alert color="red" mt="xs">
          {s.shareErr}
        </Alert>
      )}
      {shares && (
        <Stack gap={6} mt="sm">
          <Text size="sm" fw={600} data-testid="wizard-custodian">
            Custodian {custodian + 1} of {shares.length}
          </Text>
          <Text size="xs" c="dimmed">
            Show this share to custodian {custodian + 1} only (or print it for them), then go to the next.
          </Text>
          <Group wrap="nowrap" align="flex-start">
            <Code block style={{ flex: 1, wordBreak: 'break-all' }} data-testid="wizard-share" data-index={custodian}>
              {shares[custodian]}
            </Code>
            <CopyButton value={shares[custodian]}>
              {({ copied, copy }) => (
                <Button size="xs" variant="subtle" onClick={copy} className="no-print" aria-label={`Copy the share of custodian ${custodian + 1}`}>
                  {copied ? 'Copied' : 'Copy'}
                </Button>
              )}
            </CopyButton>
          </Group>
          <Group className="no-print">
            <Button
              size="xs"
              variant="default"
              disabled={custodian === 0}
              onClick={() => dispatch({ type: 'custodian', index: custodian - 1 })}
              data-testid="wizard-share-prev"
            >
              Previous custodian
            </Button>
            <Button
              size="xs"
              variant="default"
              disabled={custodian === shares.length - 1}
              onClick={() => dispatch({ type: 'custodian', index: custodian + 1 })}
              data-testid="wizard-share-next"
            >
              Next custodian
            </Button>
            <Button size="xs" variant="light" leftSection={<IconPrinter size={14} />} onClick={() => window.print()}>
              Print this share
            </Button>
          </Group>
        </Stack>
      )}
    </Card>
  );
}
