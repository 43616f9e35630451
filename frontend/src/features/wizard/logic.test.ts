import { describe, expect, it } from 'vitest';
import { defaultDest, eta, formatBytes, generateRecoveryPassphrase, parseMeasurements, stageLabel, uploadCommand } from './logic';

const M = 'ab'.repeat(48);

describe('parseMeasurements', () => {
  it('accepts hex lines, ignores comments and blanks, and de-duplicates', () => {
    const r = parseMeasurements(`# release 3\n${M}\n\n0x${M.toUpperCase()}\n${'cd'.repeat(48)} # release 4`);
    expect(r.errors).toEqual([]);
    expect(r.values).toEqual([M, 'cd'.repeat(48)]);
  });
  it('names the bad lines', () => {
    const r = parseMeasurements(`${M}\nnot hex at all\n${'ab'.repeat(32)}`);
    expect(r.values).toEqual([M]);
    expect(r.errors).toEqual(['line 2: not hexadecimal', 'line 3: 32 bytes; a launch measurement has 48 (96 hex digits)']);
  });
});

describe('generateRecoveryPassphrase', () => {
  it('makes 6 groups of 5 unambiguous characters from the random bytes', () => {
    const p = generateRecoveryPassphrase((n) => new Uint8Array(n).map((_, i) => i));
    expect(p).toBe('01234-56789-ABCDE-FGHJK-MNPQR-STVWX');
    expect(generateRecoveryPassphrase()).toMatch(/^([0-9A-HJKMNP-TV-Z]{5}-){5}[0-9A-HJKMNP-TV-Z]{5}$/);
    expect(generateRecoveryPassphrase()).not.toBe(generateRecoveryPassphrase());
  });
});

describe('uploadCommand and defaultDest', () => {
  it.each([
    ['gcp', /gcloud compute images create web-01 .*SEV_SNP_CAPABLE/s],
    ['azure', /az storage blob upload .*--type page.*--file \/tmp\/web-01-encrypted\.vhd/s],
    ['aws', /aws s3 cp \/tmp\/web-01-encrypted\.raw .*aws ec2 import-snapshot .*Format=RAW,.*S3Key=web-01\.raw/s],
    ['vmdk', /govc import\.vmdk \/tmp\/web-01-encrypted\.vmdk .*aws ec2 import-snapshot .*Format=VMDK,.*S3Key=web-01\.vmdk/s],
    ['raw', /scp \/tmp\/web-01-encrypted\.raw/],
  ] as const)('%s', (out, re) => {
    const dest = defaultDest('/tmp/web-01.qcow2', out);
    expect(uploadCommand(out, dest, 'Web 01')).toMatch(re);
  });
  it('quotes paths with spaces', () => {
    expect(uploadCommand('raw', "/tmp/my disk's.raw", 'x')).toContain(`'/tmp/my disk'\\''s.raw'`);
  });
});

describe('formatting', () => {
  it('formats sizes and time left', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(4 * 1024 ** 3)).toBe('4.00 GiB');
    expect(eta(50, 150, 10)).toBe(10);
    expect(eta(10, 10, 5)).toBeNull();
    expect(eta(1, 10, 0)).toBeNull();
  });
});

describe('stageLabel', () => {
  it('says what each stage of a preparation does', () => {
    expect(stageLabel('encrypt')).toBe('Encrypting on this machine…');
    expect(stageLabel('hash')).toBe('Computing the output checksum…');
    expect(stageLabel('sync')).toMatch(/every byte is written; the disk is making the image durable/i);
    expect(stageLabel(undefined)).toBe('Encrypting on this machine…');
  });
});
