import { MantineProvider } from '@mantine/core';
import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { EvidenceDiff } from './EvidenceDiff';

const tcb = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
const wrap = (ui: React.ReactNode) => render(<MantineProvider>{ui}</MantineProvider>);

afterEach(cleanup);

describe('EvidenceDiff', () => {
  it('shows only the changed rows, the weaker one flagged, and all rows on request', () => {
    wrap(<EvidenceDiff before={{ chip_id: 'aa', measurement: 'm1', tcb }} after={{ chip_id: 'bb', measurement: 'm1', tcb: { ...tcb, snp: 7 } }} />);
    const root = screen.getByTestId('evidence-diff');
    expect(root.getAttribute('data-changes')).toBe('2');
    expect(screen.getByText('2 changes since the last approved boot')).toBeTruthy();
    const changed = root.querySelectorAll('tbody tr[data-changed]');
    expect([...changed].map((r) => r.textContent)).toEqual(['Chipaabb', 'TCB: SNP firmware87weaker']);
    expect(root.querySelectorAll('tbody tr').length).toBe(2);
    fireEvent.click(screen.getByLabelText('show unchanged'));
    expect(root.querySelectorAll('tbody tr').length).toBeGreaterThan(5);
  });

  it('says when nothing changed and lists every field', () => {
    wrap(<EvidenceDiff before={{ chip_id: 'aa', tcb }} after={{ chip_id: 'aa', tcb }} />);
    expect(screen.getByText('Nothing changed since the last approved boot')).toBeTruthy();
    expect(screen.getByTestId('evidence-diff').querySelectorAll('tbody tr[data-changed]').length).toBe(0);
    expect(screen.getByText('Chip')).toBeTruthy();
  });

  it('has nothing to compare on a first boot', () => {
    wrap(<EvidenceDiff before={null} after={{ chip_id: 'aa', tcb }} />);
    expect(screen.getByText('First boot: nothing to compare with yet')).toBeTruthy();
    expect(screen.getByTestId('evidence-diff').getAttribute('data-changes')).toBe('0');
  });
});
