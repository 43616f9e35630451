import { Alert, Badge, Button, Group, Progress, Stack, Text } from '@mantine/core';
import { eta, formatBytes, formatDuration, stageLabel } from '../logic';
import { running } from '../state';
import type { StepProps } from './props';

/** EncryptStep shows the running preparation with Cancel, or how it failed and the way back. */
export function EncryptStep({ s, prep }: StepProps) {
  const { progress, runErr } = s;
  const busy = running(s);
  return (
    <Stack mt="md" data-testid="wizard-progress">
      <Text size="sm">
        {stageLabel(progress?.stage)} {formatBytes(progress?.done ?? 0)} of{' '}
        {formatBytes(progress?.total ?? s.disk?.virtual_size ?? 0)}
      </Text>
      <Progress
        value={progress && progress.total > 0 ? (100 * progress.done) / progress.total : 0}
        size="xl"
        striped={busy}
        animated={busy}
        color={runErr ? 'red' : 'teal'}
      />
      <Group>
        {progress?.stage === 'sync' ? (
          <Badge variant="light" data-testid="wizard-syncing">
            waiting for the disk
          </Badge>
        ) : (
          <>
            <Badge variant="light">{progress?.rate ? `${formatBytes(progress.rate)}/s` : 'starting…'}</Badge>
            <Badge variant="light">time left {formatDuration(progress ? eta(progress.done, progress.total, progress.rate) : null)}</Badge>
          </>
        )}
      </Group>
      {busy && (
        <Group>
          <Button color="red" variant="light" onClick={() => void prep.cancel()} data-testid="wizard-cancel">
            Cancel
          </Button>
        </Group>
      )}
      {runErr && (
        <Alert
          color={runErr.code === 'canceled' ? 'yellow' : 'red'}
          title={runErr.code === 'canceled' ? 'Cancelled' : 'Encryption failed'}
          data-testid="wizard-run-error"
        >
          {runErr.message}. Nothing was left behind: no output file and no registered volume.
        </Alert>
      )}
      {runErr && (
        <Group>
          <Button variant="default" onClick={prep.retry} data-testid="wizard-back-to-output">
            Change the output and try again
          </Button>
        </Group>
      )}
    </Stack>
  );
}
