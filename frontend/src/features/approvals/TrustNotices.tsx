import { Alert, Stack, Text } from '@mantine/core';
import { IconAlertTriangle, IconCpuOff, IconPin } from '@tabler/icons-react';
import type { ReleaseRequest } from '../../api';

/** The parts of release.Summary these notices read. */
interface TrustSummary {
  signer?: string;
  chip_identity?: string;
  pins?: string;
}

/** competitionText is the warning on a request that competes with others for a volume's first boot. */
export function competitionText(r: ReleaseRequest): string | null {
  const n = r.competing?.length ?? 0;
  if (!r.first_boot_claim || n === 0) return null;
  return (
    `${n} other launch${n === 1 ? '' : 'es'} claim${n === 1 ? 's' : ''} the first boot of this volume (${r.competing!.join(', ')}). ` +
    'Any genuine SEV-SNP guest can make such a claim: at most one of them is your guest. ' +
    'Compare the evidence; approving this request denies the others.'
  );
}

/**
 * RequestTrustNotices says what an officer must know before approving: the
 * competing claims of a first boot, the measurement an approval pins as the
 * image's reference values, and a chip the console cannot identify (VLEK).
 */
export function RequestTrustNotices({ request, pins = true }: { request: ReleaseRequest; pins?: boolean }) {
  const s0 = (request.summary && typeof request.summary === 'object' ? request.summary : {}) as TrustSummary;
  // pins=false leaves the pinned measurement out (the approval card says it in its risk sentence and shows this in its details).
  const s = pins ? s0 : { ...s0, pins: undefined };
  const competition = competitionText(request);
  if (!competition && !s.pins && s.signer !== 'VLEK') return null;
  return (
    <Stack gap="xs" mb="sm">
      {competition && (
        <Alert color="red" icon={<IconAlertTriangle />} title="Competing first boots" data-testid="first-boot-competition">
          <Text size="sm">{competition}</Text>
        </Alert>
      )}
      {s.pins && (
        <Alert color="blue" icon={<IconPin />} title="This approval sets the image's reference values" data-testid="first-boot-pins">
          <Text size="sm" style={{ overflowWrap: 'anywhere' }}>
            {s.pins}
          </Text>
        </Alert>
      )}
      {s.signer === 'VLEK' && (
        <Alert color="orange" icon={<IconCpuOff />} title={`Chip identity: ${s.chip_identity || 'none (VLEK)'}`} data-testid="chip-identity-vlek">
          <Text size="sm">
            The report is signed by the cloud provider's VLEK, which is the same on every chip: the console cannot tell which chip runs
            this VM, so it cannot see a migration.
          </Text>
        </Alert>
      )}
    </Stack>
  );
}
