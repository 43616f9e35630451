import { Alert, Button, Card, Code, Group, Stack, Text, Title } from '@mantine/core';
import { IconCheck } from '@tabler/icons-react';
import type { PrepareResult } from '../../../api';
import { ErrorNotice, Loading, shortHex } from '../../../components/common';
import { referencesOf } from '../../../stores/images';
import { useResource } from '../../../stores/resource';
import { ReferenceEditor } from '../../references/ReferenceEditor';
import { formatBytes, uploadCommand } from '../logic';
import classes from '../PrepareWizard.module.css';
import type { StepProps } from './props';

/** SummaryStep: the encrypted image, its reference values (editable here), the upload command and the manifest. */
export function SummaryStep({ s, onClose }: StepProps & { onClose: () => void }) {
  const { result, refVersion, refPending, refErr } = s;
  if (!result) return null;
  return (
    <Stack mt="md" data-testid="wizard-summary">
      <Alert color="teal" title="The encrypted image is ready" icon={<IconCheck />}>
        {result.output} ({formatBytes(result.manifest.output.size)}), volume <Code>{result.manifest.volume_id}</Code>, generation 1.
      </Alert>
      {refVersion && (
        <Text size="sm">
          Reference values version {refVersion.version} stored for {result.manifest.image_name} ({refVersion.values.measurements.length} measurement
          {refVersion.values.measurements.length === 1 ? '' : 's'}).
        </Text>
      )}
      {refPending && (
        <Alert color="blue" data-testid="reference-pending">
          The reference values wait for a second admin (two-person rule): {refPending.summary}, action <Code>{refPending.id}</Code> on the
          Approvals screen.
        </Alert>
      )}
      {refErr && <Alert color="orange">The image is ready, but its reference values were not stored: {refErr}</Alert>}
      <ImageReferences result={result} />
      <Text fw={600}>Upload it</Text>
      <Code block data-testid="upload-command">
        {uploadCommand(s.output, result.output, result.manifest.image_name)}
      </Code>
      <Text fw={600}>Manifest ({result.manifest_path})</Text>
      <Code block className={classes.manifest} data-testid="manifest">
        {JSON.stringify(result.manifest, null, 2)}
      </Code>
      <Group>
        <Button onClick={onClose}>Done</Button>
      </Group>
    </Stack>
  );
}

/** ImageReferences shows the image's current reference values and lets an admin save a new version. */
function ImageReferences({ result }: { result: PrepareResult }) {
  const id = result.manifest.image_id;
  const r = useResource(referencesOf(id));
  const current = r.data?.[0];
  return (
    <Card withBorder data-testid="wizard-references">
      <Title order={5}>Reference values</Title>
      {r.error && <ErrorNotice error={r.error} onRetry={r.reload} />}
      {!r.data && !r.error && <Loading />}
      {r.data && (
        <Text size="sm" data-testid="wizard-reference-current">
          {current
            ? `Version ${current.version}: ${current.values.measurements.map((m) => shortHex(m, 16)).join(', ')}; minimum TCB ${current.values.minimum_tcb.bootloader}/${current.values.minimum_tcb.tee}/${current.values.minimum_tcb.snp}/${current.values.minimum_tcb.microcode}; SMT ${current.values.allow_smt ? 'allowed' : 'not allowed'}; migration agent ${current.values.allow_migration_agent ? 'allowed' : 'not allowed'}.`
            : 'None yet: the first boot of a guest of this image waits for an officer. Enter the launch measurements here if you know them.'}
        </Text>
      )}
      {r.data && <ReferenceEditor image={{ id, name: result.manifest.image_name }} latest={current} onSaved={() => void r.reload()} />}
    </Card>
  );
}
