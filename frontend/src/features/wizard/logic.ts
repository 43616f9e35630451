import type { OutputFormat } from '../../api';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32: no I, L, O, U

/** generateRecoveryPassphrase returns 6 groups of 5 base32 characters (150 random bits). */
export function generateRecoveryPassphrase(random: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n))): string {
  const groups: string[] = [];
  const bytes = random(30);
  for (let g = 0; g < 6; g++) {
    let s = '';
    for (let i = 0; i < 5; i++) s += ALPHABET[bytes[g * 5 + i] & 31];
    groups.push(s);
  }
  return groups.join('-');
}

export interface ParsedMeasurements {
  values: string[];
  errors: string[];
}

/** parseMeasurements reads one 48-byte launch measurement (96 hex digits) per line. */
export function parseMeasurements(text: string): ParsedMeasurements {
  const values: string[] = [];
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim().replace(/^0x/i, '').replace(/[\s:]/g, '');
    if (!line) return;
    if (!/^[0-9a-fA-F]+$/.test(line)) {
      errors.push(`line ${i + 1}: not hexadecimal`);
    } else if (line.length !== 96) {
      errors.push(`line ${i + 1}: ${line.length / 2} bytes; a launch measurement has 48 (96 hex digits)`);
    } else if (!values.includes(line.toLowerCase())) {
      values.push(line.toLowerCase());
    }
  });
  return { values, errors };
}

/** defaultDest suggests an output file beside the source. */
export function defaultDest(source: string, output: OutputFormat): string {
  const slash = Math.max(source.lastIndexOf('/'), source.lastIndexOf('\\'));
  const dir = slash >= 0 ? source.slice(0, slash + 1) : '';
  const base = (slash >= 0 ? source.slice(slash + 1) : source).replace(/\.(raw|img|qcow2|vmdk|vhd|vhdx|vdi)$/i, '');
  const ext = { raw: '.raw', gcp: '.tar.gz', azure: '.vhd', aws: '.raw', vmdk: '.vmdk' }[output];
  return `${dir}${base || 'image'}-encrypted${ext}`;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:@=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** uploadCommand is the command that puts the prepared file into the chosen cloud. */
export function uploadCommand(output: OutputFormat, file: string, name: string): string {
  const f = shellQuote(file);
  const n = name.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '') || 'keyholder-image';
  switch (output) {
    case 'gcp':
      return [
        `gcloud storage cp ${f} gs://BUCKET/${n}.tar.gz`,
        `gcloud compute images create ${n} --source-uri=gs://BUCKET/${n}.tar.gz \\`,
        `  --guest-os-features=UEFI_COMPATIBLE,SEV_SNP_CAPABLE,GVNIC`,
      ].join('\n');
    case 'azure':
      return [
        `az storage blob upload --account-name ACCOUNT --container-name vhds --type page \\`,
        `  --name ${n}.vhd --file ${f}`,
        `az disk create --resource-group GROUP --name ${n} --source https://ACCOUNT.blob.core.windows.net/vhds/${n}.vhd \\`,
        `  --security-type ConfidentialVM_NonPersistedTPM --hyper-v-generation V2`,
      ].join('\n');
    case 'aws':
      return [
        `aws s3 cp ${f} s3://BUCKET/${n}.raw`,
        `aws ec2 import-snapshot --description ${n} \\`,
        `  --disk-container "Format=RAW,UserBucket={S3Bucket=BUCKET,S3Key=${n}.raw}"`,
      ].join('\n');
    case 'vmdk':
      return [
        `# VMware vSphere: import it into a datastore`,
        `govc import.vmdk ${f} ${n}`,
        `# or EC2: upload it and import it as a snapshot`,
        `aws s3 cp ${f} s3://BUCKET/${n}.vmdk`,
        `aws ec2 import-snapshot --description ${n} \\`,
        `  --disk-container "Format=VMDK,UserBucket={S3Bucket=BUCKET,S3Key=${n}.vmdk}"`,
      ].join('\n');
    default:
      return `# a raw disk: copy it to the host or storage that boots the guest, for example\nscp ${f} HOST:/var/lib/images/${n}.raw`;
  }
}

/** formatBytes renders a byte count with binary units. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : n < 10 ? 2 : 1)} ${units[i]}`;
}

/** eta returns the seconds left at the current rate, or null when unknown. */
export function eta(done: number, total: number, rate: number): number | null {
  if (!(rate > 0) || !(total > done)) return null;
  return (total - done) / rate;
}

export function formatDuration(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return '—';
  if (s < 60) return `${Math.ceil(s)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

/** stageLabel says what the preparation is doing in a progress stage. */
export function stageLabel(stage: string | undefined): string {
  switch (stage) {
    case 'hash':
      return 'Computing the output checksum…';
    case 'sync':
      return 'Every byte is written; the disk is making the image durable…';
    default:
      return 'Encrypting on this machine…';
  }
}
