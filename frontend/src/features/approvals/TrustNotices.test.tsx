import { MantineProvider } from '@mantine/core';
import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReleaseRequest } from '../../api';
import { competitionText, RequestTrustNotices } from './TrustNotices';

const wrap = (ui: React.ReactNode) => render(<MantineProvider>{ui}</MantineProvider>);
afterEach(cleanup);

const base: ReleaseRequest = {
  id: 'req_a', vm_id: 'vm-1', volume_id: 'vol_1', purpose: 'boot', generation: 1, class: 'first_boot', signals: ['first_boot'],
  status: 'pending', approvals_needed: 1, approvals: [], evidence_hash: 'ee', summary: {}, simulated: false, reason: '',
  created_at: '2026-12-04T10:00:00Z', expires_at: '2026-12-04T10:15:00Z',
};

describe('RequestTrustNotices', () => {
  it('warns about competing first boots and says what the approval pins', () => {
    const r = { ...base, first_boot_claim: true, competing: ['req_b', 'req_c'], summary: { pins: 'Approving this first boot pins measurement abcd as the reference values of image web' } };
    expect(competitionText(r)).toContain('2 other launches claim the first boot of this volume (req_b, req_c)');
    wrap(<RequestTrustNotices request={r} />);
    expect(screen.getByTestId('first-boot-competition').textContent).toContain('approving this request denies the others');
    expect(screen.getByTestId('first-boot-pins').textContent).toContain('pins measurement abcd');
    expect(screen.queryByTestId('chip-identity-vlek')).toBeNull();
  });
  it('says when a VLEK leaves the chip unknown, and shows nothing for an ordinary request', () => {
    wrap(<RequestTrustNotices request={{ ...base, class: 'migration', summary: { signer: 'VLEK', chip_identity: 'none (VLEK)' } }} />);
    expect(screen.getByTestId('chip-identity-vlek').textContent).toContain('Chip identity: none (VLEK)');
    cleanup();
    const { container } = wrap(<RequestTrustNotices request={{ ...base, class: 'migration', summary: { signer: 'VCEK', chip_identity: 'aa' } }} />);
    expect(container.querySelector('[data-testid]')).toBeNull();
    expect(competitionText({ ...base, first_boot_claim: true, competing: [] })).toBeNull();
  });
});
