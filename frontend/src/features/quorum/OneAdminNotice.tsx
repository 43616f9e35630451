import { Alert } from '@mantine/core';
import { IconUserExclamation } from '@tabler/icons-react';
import { quorumStatus } from '../../stores/approvals';
import { useResource } from '../../stores/resource';

/** OneAdminNotice warns when one admin alone can do everything (one admin, or rules of 1). */
export function OneAdminNotice() {
  const st = useResource(quorumStatus).data;
  if (!st || !st.one_person_can_do_everything) return null;
  return (
    <Alert color="orange" icon={<IconUserExclamation size={18} />} mb="md" title="One person can do everything" data-testid="one-admin-notice">
      {st.admins <= 1
        ? 'This console has a single admin, who alone can export the recovery shares or a backup, add officers and change the policy. Add a second admin: from then on these actions need two.'
        : 'The two-person rule is set to one admin for every action: any admin alone can export the recovery shares or a backup, add officers and change the policy.'}
    </Alert>
  );
}
