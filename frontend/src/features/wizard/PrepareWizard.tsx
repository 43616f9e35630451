import {
  Alert,
  Badge,
  Button,
  Card,
  Checkbox,
  Code,
  CopyButton,
  Group,
  NumberInput,
  Progress,
  Radio,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Stepper,
  Switch,
  Table,
  Text,
  Textarea,
  TextInput,
  Title,
} from '@mantine/core';
import { IconCheck, IconCopy, IconFolderOpen, IconPrinter, IconX } from '@tabler/icons-react';
import { useEffect, useMemo, useRef, useState } from 'react';
import {
  api,
  ApiError,
  Events,
  type DiskInfo,
  type OutputFormat,
  type PrepareMode,
  type PrepareResult,
  type Progress as ProgressEvent,
  type ReferenceVersion,
  type AdminAction,
} from '../../api';
import { fleet } from '../../stores/fleet';
import { useReauth } from '../../components/Reauth';
import { consoleInfo } from '../../stores/console';
import { imageList } from '../../stores/images';
import { useResource } from '../../stores/resource';
import { defaultDest, eta, formatBytes, formatDuration, generateRecoveryPassphrase, parseMeasurements, uploadCommand } from './logic';
import classes from './PrepareWizard.module.css';

type RecoveryChoice = 'none' | 'passphrase' | 'shares';
type ReferenceChoice = 'paste' | 'first-boot';

const outputs: { value: OutputFormat; label: string; what: string }[] = [
  { value: 'raw', label: 'Raw disk', what: 'a plain disk file for any hypervisor' },
  { value: 'gcp', label: 'Google Cloud', what: 'disk.raw inside a tar.gz, as Compute Engine imports it' },
  { value: 'azure', label: 'Azure', what: 'a fixed VHD rounded up to a whole MiB' },
  { value: 'aws', label: 'AWS', what: 'a streamOptimized VMDK for EC2 import-snapshot' },
];

function errText(e: unknown) {
  return e instanceof ApiError ? e.message : String(e);
}

/** PrepareWizard walks an officer from a plaintext disk image to an encrypted one ready to upload. */
export function PrepareWizard({ onClose }: { onClose: () => void }) {
  const info = useResource(consoleInfo).data;
  const desktop = info?.mode === 'desktop';
  const reauth = useReauth();
  const [step, setStep] = useState(0);

  // 1. source and inspection
  const [source, setSource] = useState('');
  const [disk, setDisk] = useState<DiskInfo | null>(null);
  const [inspectErr, setInspectErr] = useState<string | null>(null);
  const [inspecting, setInspecting] = useState(false);
  const [convertCmd, setConvertCmd] = useState<string | null>(null);
  const [rawConfirmed, setRawConfirmed] = useState(false);
  // 2. mode
  const [mode, setMode] = useState<PrepareMode>('data');
  const [sector, setSector] = useState<'512' | '4096'>('4096');
  // 3. keys
  const [recovery, setRecovery] = useState<RecoveryChoice>('passphrase');
  const [passphrase, setPassphrase] = useState('');
  const [savedIt, setSavedIt] = useState(false);
  const [shareM, setShareM] = useState(2);
  const [shareN, setShareN] = useState(3);
  const [shares, setShares] = useState<string[] | null>(null);
  const [shareErr, setShareErr] = useState<string | null>(null);
  // 4. reference values
  const [refChoice, setRefChoice] = useState<ReferenceChoice>('paste');
  const [measurementText, setMeasurementText] = useState('');
  // Strict defaults: SMT disallowed, and the minimum TCB is the one the
  // fleet runs at now (per component, the lowest a verified guest reports;
  // 0 only while no guest has reported one, which the step says).
  const currentTCB = useMemo(() => fleetTCB(), []);
  const [minTCB, setMinTCB] = useState(currentTCB ?? { bootloader: 0, tee: 0, snp: 0, microcode: 0 });
  const [allowSMT, setAllowSMT] = useState(false);
  const [custodian, setCustodian] = useState(0);
  // seen is the furthest custodian shown: the shares count as handed out only after each was.
  const [seen, setSeen] = useState(0);
  const sharesInvalid = shareM > shareN ? `A threshold of ${shareM} needs at least ${shareM} shares: any ${shareM} of ${shareN} could never rebuild the passphrase.` : null;
  const parsed = useMemo(() => parseMeasurements(measurementText), [measurementText]);
  // 5. output
  const [output, setOutput] = useState<OutputFormat>('raw');
  const [dest, setDest] = useState('');
  const [name, setName] = useState('');
  // 6. run
  const [opID, setOpID] = useState<string | null>(null);
  const [progress, setProgress] = useState<ProgressEvent | null>(null);
  const [runErr, setRunErr] = useState<ApiError | null>(null);
  const [result, setResult] = useState<PrepareResult | null>(null);
  const [refVersion, setRefVersion] = useState<ReferenceVersion | null>(null);
  const [refPending, setRefPending] = useState<AdminAction | null>(null);
  const [refErr, setRefErr] = useState<string | null>(null);
  const opRef = useRef<string | null>(null);
  // settledRef is the operation whose outcome the page has shown;
  // cancelRef, a cancel asked for before the console named the operation.
  const settledRef = useRef<string | null>(null);
  const cancelRef = useRef(false);
  const [starting, setStarting] = useState(false);
  // The progress listener is registered once; it reads the wizard's current
  // choices through this ref, not through a stale closure.
  const finishRef = useRef<(p: ProgressEvent) => Promise<void>>(async () => {});

  useEffect(() => {
    if (recovery !== 'none' && !passphrase) setPassphrase(generateRecoveryPassphrase());
  }, [recovery, passphrase]);

  const makeShares = async () => {
    setShareErr(null);
    try {
      setShares(await api().images.splitPassphrase(passphrase, shareM, shareN));
      setCustodian(0);
      setSeen(0);
      setSavedIt(false);
    } catch (e) {
      setShareErr(errText(e));
    }
  };

  // Progress events for our operation.
  useEffect(() => {
    return api().on(Events.progress, (d) => {
      const p = d as ProgressEvent;
      if (!p || p.id !== opRef.current) return;
      setProgress(p);
      if (p.finished) void finishRef.current(p);
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const inspect = async () => {
    setInspecting(true);
    setInspectErr(null);
    setConvertCmd(null);
    setDisk(null);
    setRawConfirmed(false);
    try {
      const d = await api().images.inspect(source.trim());
      setDisk(d);
      if (!name) setName(baseName(source));
      setDest(defaultDest(source.trim(), output));
      if (d.root_partition) setMode('os');
    } catch (e) {
      setInspectErr(errText(e));
      if (e instanceof ApiError && e.code === 'unsupported_format') setConvertCmd(conversionCommand(e.message));
    } finally {
      setInspecting(false);
    }
  };

  const browse = async (save: boolean) => {
    try {
      const p = save
        ? await api().console.pickSaveFile('Where should the encrypted image go?', dest.split('/').pop() ?? '')
        : await api().console.pickFile('Choose the disk image to encrypt');
      if (!p) return;
      if (save) setDest(p);
      else {
        setSource(p);
        setDisk(null);
      }
    } catch (e) {
      setInspectErr(errText(e));
    }
  };

  // settle asks the console how operation id stands, for when its final
  // event went by before the page knew the ID (an early failure), or a
  // cancel found it finished: the page never waits for an event that came.
  const settle = async (id: string) => {
    try {
      const r = await api().images.result(id);
      if (opRef.current !== id || settledRef.current === id) return;
      void finishRef.current({ id, stage: 'done', finished: true, done: r.manifest.output.size, total: r.manifest.output.size, rate: 0 });
    } catch (e) {
      if (e instanceof ApiError && e.code === 'conflict') return; // still running: its events follow
      if (opRef.current !== id || settledRef.current === id) return;
      settledRef.current = id;
      setRunErr(e instanceof ApiError ? e : new ApiError('internal', String(e)));
    }
  };

  const start = async () => {
    setRunErr(null);
    setProgress(null);
    setResult(null);
    cancelRef.current = false;
    settledRef.current = null;
    setStarting(true);
    try {
      const id = await reauth(() =>
        api().images.prepare({
          source: source.trim(),
          dest: dest.trim(),
          mode,
          output,
          sector_size: sector === '512' ? 512 : 4096,
          name: name.trim(),
          recovery_passphrase: recovery !== 'none' ? passphrase : '',
          confirm_raw: rawConfirmed,
        }),
      );
      opRef.current = id;
      setOpID(id);
      setStep(5);
      if (cancelRef.current) await api().images.cancel(id).catch(() => {});
      await settle(id);
    } catch (e) {
      setRunErr(e instanceof ApiError ? e : new ApiError('internal', String(e)));
    } finally {
      setStarting(false);
    }
  };

  const finish = async (p: ProgressEvent) => {
    if (settledRef.current === p.id) return;
    settledRef.current = p.id;
    if (p.error) {
      setRunErr(ApiError.from(p.error));
      return;
    }
    try {
      const r = await api().images.result(p.id);
      setResult(r);
      // The passphrase has done its job; forget it in this page.
      setPassphrase('');
      void imageList.reload();
      if (refChoice === 'paste' && parsed.values.length > 0) {
        try {
          const out = await reauth(() =>
            api().images.setReference(
              r.manifest.image_id,
              {
                measurements: parsed.values,
                minimum_tcb: minTCB,
                allow_migration_agent: false,
                allow_smt: allowSMT,
                require_single_socket: false,
              },
              'set by the preparation wizard',
            ),
          );
          if (out.done) {
            const vs = await api().images.references(r.manifest.image_id);
            setRefVersion(vs[0] ?? null);
          } else {
            setRefPending(out.action);
          }
        } catch (e) {
          setRefErr(errText(e));
        }
      }
      setStep(6);
    } catch (e) {
      setRunErr(e instanceof ApiError ? e : new ApiError('internal', String(e)));
    }
  };

  finishRef.current = finish;

  // Cancel works at every moment: before the console named the operation
  // (the cancel is sent as soon as it does), while it runs, and after it
  // ended without the page hearing of it (the outcome is fetched).
  const cancel = async () => {
    cancelRef.current = true;
    const id = opRef.current;
    if (!id) return;
    try {
      await api().images.cancel(id);
    } catch (e) {
      if (opRef.current === id && settledRef.current !== id) {
        settledRef.current = id;
        setRunErr(e instanceof ApiError ? e : new ApiError('internal', String(e)));
        return;
      }
    }
    await settle(id);
  };

  const running = opID !== null && !progress?.finished && !runErr;
  const canNext = [
    !!disk && (!disk.raw_warning || rawConfirmed),
    true,
    recovery === 'none' || (savedIt && (recovery === 'passphrase' || shares !== null)),
    refChoice === 'first-boot' || (parsed.values.length > 0 && parsed.errors.length === 0),
    !!dest.trim() && !!name.trim(),
  ][step];

  return (
    <Card withBorder padding="lg" data-testid="prepare-wizard">
      <Group justify="space-between" mb="md">
        <Title order={3}>Prepare an encrypted image</Title>
        {!running && (
          <Button variant="subtle" color="gray" onClick={onClose} leftSection={<IconX size={16} />}>
            Close
          </Button>
        )}
      </Group>
      <Stepper active={step} size="sm" allowNextStepsSelect={false} onStepClick={(s) => !running && !result && s < step && setStep(s)}>
        <Stepper.Step label="Source" description="Choose and inspect">
          <Stack mt="md">
            <Text size="sm" c="dimmed">
              {desktop
                ? 'Choose the plaintext disk image on this computer. It is read here and never uploaded.'
                : "Type the path of the plaintext disk image on the console's machine. It is read there and never uploaded."}
            </Text>
            <Group align="flex-end">
              <TextInput
                label="Disk image"
                placeholder="/path/to/disk.qcow2"
                value={source}
                onChange={(e) => {
                  setSource(e.currentTarget.value);
                  setDisk(null);
                }}
                style={{ flex: 1 }}
                data-testid="wizard-source"
              />
              {desktop && (
                <Button variant="default" leftSection={<IconFolderOpen size={16} />} onClick={() => void browse(false)}>
                  Browse…
                </Button>
              )}
              <Button onClick={() => void inspect()} loading={inspecting} disabled={!source.trim()} data-testid="wizard-inspect">
                Inspect
              </Button>
            </Group>
            {inspectErr && (
              <Alert color="red" title="Keyholder cannot use this file" data-testid="wizard-inspect-error">
                {inspectErr}
                {convertCmd && (
                  <Code block mt="xs" data-testid="wizard-convert-command">
                    {convertCmd}
                  </Code>
                )}
              </Alert>
            )}
            {disk && <DiskSummary disk={disk} />}
            {disk?.raw_warning && (
              <Alert color="yellow" title="Is this really a raw disk?" data-testid="wizard-raw-warning">
                {disk.raw_warning}.
                <Checkbox
                  mt="sm"
                  checked={rawConfirmed}
                  onChange={(e) => setRawConfirmed(e.currentTarget.checked)}
                  label="I know this file is a raw disk; encrypt it as it is"
                  data-testid="wizard-raw-confirm"
                />
              </Alert>
            )}
          </Stack>
        </Stepper.Step>

        <Stepper.Step label="Mode" description="Data or OS disk">
          <Radio.Group value={mode} onChange={(v) => setMode(v as PrepareMode)} mt="md">
            <SimpleGrid cols={2}>
              <Radio.Card value="data" className={classes.choice} data-testid="mode-data">
                <Text fw={600}>Data disk</Text>
                <Text size="sm" c="dimmed">
                  The whole disk becomes one LUKS2 volume. For disks the guest opens after boot.
                </Text>
              </Radio.Card>
              <Radio.Card value="os" className={classes.choice} disabled={!disk?.root_partition} data-testid="mode-os">
                <Text fw={600}>OS disk</Text>
                <Text size="sm" c="dimmed">
                  The EFI system partition (and a separate /boot) stay in clear so the guest can boot; the root partition
                  {disk?.root_partition ? ` (#${disk.root_partition})` : ''} is encrypted. {disk?.root_partition ? '' : 'No root partition was found in this image.'}
                </Text>
              </Radio.Card>
            </SimpleGrid>
          </Radio.Group>
          <Group mt="lg">
            <Text size="sm">Encryption sector size</Text>
            <SegmentedControl value={sector} onChange={(v) => setSector(v as '512' | '4096')} data={['512', '4096']} />
            <Text size="xs" c="dimmed">
              4096 is faster; use 512 when the guest's file system or boot loader needs it.
            </Text>
          </Group>
        </Stepper.Step>

        <Stepper.Step label="Keys" description="Recovery">
          <Stack mt="md">
            <Text size="sm">
              The disk opens with a release secret that Keyholder keeps and hands only to attested guests. A recovery passphrase adds a
              second keyslot that opens the disk without Keyholder, for emergencies.
            </Text>
            <SegmentedControl
              value={recovery}
              onChange={(v) => {
                setRecovery(v as RecoveryChoice);
                setSavedIt(false);
              }}
              data={[
                { value: 'passphrase', label: 'Recovery passphrase' },
                { value: 'shares', label: 'Shamir shares of it' },
                { value: 'none', label: 'No recovery keyslot' },
              ]}
              data-testid="recovery-choice"
            />
            {recovery === 'shares' && (
              <Card withBorder className="print-area" data-testid="shares-card">
                <Text size="sm">
                  The recovery passphrase is split into shares, one per custodian;{' '}
                  {sharesInvalid ? 'enough of them' : `any ${shareM} of ${shareN}`} rebuild it with <code>keyholder shares combine</code>. Nobody
                  sees the passphrase itself, and each custodian sees only their own share.
                </Text>
                <Group align="flex-start" mt="xs" className="no-print">
                  <NumberInput
                    label="Threshold"
                    min={2}
                    max={16}
                    w={110}
                    value={shareM}
                    onChange={(v) => {
                      setShareM(Number(v) || 2);
                      setShares(null);
                    }}
                    error={sharesInvalid ? 'more than the shares' : undefined}
                    data-testid="wizard-share-m"
                  />
                  <NumberInput
                    label="Shares"
                    min={2}
                    max={16}
                    w={110}
                    value={shareN}
                    onChange={(v) => {
                      setShareN(Number(v) || 3);
                      setShares(null);
                    }}
                    data-testid="wizard-share-n"
                  />
                  <Button mt={24} variant="light" onClick={() => void makeShares()} disabled={shareM < 2 || !!sharesInvalid} data-testid="wizard-make-shares">
                    Make shares
                  </Button>
                </Group>
                {sharesInvalid && (
                  <Alert color="red" mt="xs" data-testid="wizard-share-invalid">
                    {sharesInvalid}
                  </Alert>
                )}
                {shareErr && (
                  <Alert color="red" mt="xs">
                    {shareErr}
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
                      <Button size="xs" variant="default" disabled={custodian === 0} onClick={() => setCustodian(custodian - 1)} data-testid="wizard-share-prev">
                        Previous custodian
                      </Button>
                      <Button
                        size="xs"
                        variant="default"
                        disabled={custodian === shares.length - 1}
                        onClick={() => {
                          setCustodian(custodian + 1);
                          setSeen(Math.max(seen, custodian + 1));
                        }}
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
            )}
            {recovery === 'passphrase' && (
              <Card withBorder className="print-area" data-testid="recovery-card">
                <Text size="sm" fw={600}>
                  Recovery passphrase for {name || 'this image'} — shown once
                </Text>
                <Text className={classes.passphrase} data-testid="recovery-passphrase">
                  {passphrase}
                </Text>
                <Group className="no-print">
                  <CopyButton value={passphrase} timeout={2000}>
                    {({ copied, copy }) => (
                      <Button size="xs" variant="light" leftSection={copied ? <IconCheck size={14} /> : <IconCopy size={14} />} onClick={copy}>
                        {copied ? 'Copied' : 'Copy'}
                      </Button>
                    )}
                  </CopyButton>
                  <Button size="xs" variant="light" leftSection={<IconPrinter size={14} />} onClick={() => window.print()}>
                    Print
                  </Button>
                  <Button size="xs" variant="subtle" onClick={() => setPassphrase(generateRecoveryPassphrase())}>
                    New passphrase
                  </Button>
                </Group>
                <Text size="xs" c="dimmed" mt="xs" className="no-print">
                  Keyholder does not store it. Write it down or print it and keep it where your other recovery material lives; clear the
                  clipboard if you copied it.
                </Text>
              </Card>
            )}
            {recovery === 'passphrase' && (
              <Switch
                checked={savedIt}
                onChange={(e) => setSavedIt(e.currentTarget.checked)}
                label="I have stored the recovery passphrase safely"
                data-testid="recovery-saved"
              />
            )}
            {recovery === 'none' && (
              <Alert color="orange" title="No way in without Keyholder" data-testid="no-recovery-warning">
                Without a recovery keyslot, only this console can open the disk: if its database or every officer's passphrase is lost, the
                data is gone. Choose a recovery passphrase or shares unless you keep another copy of the data.
              </Alert>
            )}
            {recovery === 'shares' && shares && (
              <Switch disabled={seen < shares.length - 1 && !savedIt} checked={savedIt} onChange={(e) => setSavedIt(e.currentTarget.checked)} label="I have handed out the shares" data-testid="shares-saved" />
            )}
          </Stack>
        </Stepper.Step>

        <Stepper.Step label="Reference values" description="What guests must prove">
          <Stack mt="md">
            <SegmentedControl
              value={refChoice}
              onChange={(v) => setRefChoice(v as ReferenceChoice)}
              data={[
                { value: 'paste', label: 'Paste launch measurements' },
                { value: 'first-boot', label: 'Capture on first boot' },
              ]}
            />
            {refChoice === 'paste' ? (
              <>
                <Textarea
                  label="Approved launch measurements"
                  description="One SHA-384 launch measurement per line (96 hex digits), as sev-snp-measure or your cloud's tooling prints it."
                  autosize
                  minRows={3}
                  ff="monospace"
                  value={measurementText}
                  onChange={(e) => setMeasurementText(e.currentTarget.value)}
                  error={parsed.errors.join('; ') || undefined}
                  data-testid="wizard-measurements"
                />
                <Text size="sm" fw={500}>
                  Minimum TCB (0 = no minimum)
                </Text>
                <Text size="xs" c={currentTCB ? 'dimmed' : 'orange'} data-testid="wizard-tcb-note">
                  {currentTCB
                    ? 'Set to the TCB your fleet runs at now: guests on older firmware are refused.'
                    : 'No guest has reported a TCB yet: enter the current TCB of your hosts, or 0 accepts any firmware.'}
                </Text>
                <Group>
                  {(['bootloader', 'tee', 'snp', 'microcode'] as const).map((k) => (
                    <NumberInput
                      key={k}
                      label={k === 'snp' ? 'SNP firmware' : k === 'tee' ? 'TEE' : k[0].toUpperCase() + k.slice(1)}
                      min={0}
                      max={255}
                      w={130}
                      value={minTCB[k]}
                      data-testid={`wizard-tcb-${k}`}
                      onChange={(v) => setMinTCB({ ...minTCB, [k]: Number(v) || 0 })}
                    />
                  ))}
                </Group>
                <Switch
                  checked={allowSMT}
                  onChange={(e) => setAllowSMT(e.currentTarget.checked)}
                  label="Allow SMT (simultaneous multithreading) on the host"
                  description="Off is the strict choice: SMT siblings share a core with other tenants."
                  data-testid="wizard-allow-smt"
                />
                <Text size="xs" c="dimmed">
                  Debug mode is never allowed, and neither is the migration agent unless you change the image's policy later.
                </Text>
              </>
            ) : (
              <Alert color="blue" title="The first boot waits for you">
                The guest's first request is held as a first-boot approval showing its measurement and TCB. Approving it releases the key;
                record the measurement as approved on the image afterwards.
              </Alert>
            )}
          </Stack>
        </Stepper.Step>

        <Stepper.Step label="Output" description="Cloud format">
          <Stack mt="md">
            <Radio.Group
              value={output}
              onChange={(v) => {
                setOutput(v as OutputFormat);
                setDest(defaultDest(source.trim(), v as OutputFormat));
              }}
            >
              <SimpleGrid cols={{ base: 2, md: 4 }}>
                {outputs.map((o) => (
                  <Radio.Card key={o.value} value={o.value} className={classes.choice} data-testid={`output-${o.value}`}>
                    <Text fw={600}>{o.label}</Text>
                    <Text size="xs" c="dimmed">
                      {o.what}
                    </Text>
                  </Radio.Card>
                ))}
              </SimpleGrid>
            </Radio.Group>
            <TextInput label="Image name" value={name} onChange={(e) => setName(e.currentTarget.value)} data-testid="wizard-name" />
            <Group align="flex-end">
              <TextInput label="Output file" value={dest} onChange={(e) => setDest(e.currentTarget.value)} style={{ flex: 1 }} data-testid="wizard-dest" />
              {desktop && (
                <Button variant="default" onClick={() => void browse(true)}>
                  Choose…
                </Button>
              )}
            </Group>
            <Text size="xs" c="dimmed">
              A manifest with the volume ID, the LUKS2 UUID, the console's release URL and pin and the output's SHA-256 is written beside it.
            </Text>
            {runErr && (
              <Alert color="red" title="Could not start" data-testid="wizard-start-error">
                {runErr.message}
              </Alert>
            )}
          </Stack>
        </Stepper.Step>

        <Stepper.Step label="Encrypt" description="Progress">
          <Stack mt="md" data-testid="wizard-progress">
            <Text size="sm">
              {progress?.stage === 'hash' ? 'Computing the output checksum…' : 'Encrypting on this machine…'}{' '}
              {formatBytes(progress?.done ?? 0)} of {formatBytes(progress?.total ?? disk?.virtual_size ?? 0)}
            </Text>
            <Progress
              value={progress && progress.total > 0 ? (100 * progress.done) / progress.total : 0}
              size="xl"
              striped={running}
              animated={running}
              color={runErr ? 'red' : 'teal'}
            />
            <Group>
              <Badge variant="light">{progress?.rate ? `${formatBytes(progress.rate)}/s` : 'starting…'}</Badge>
              <Badge variant="light">time left {formatDuration(progress ? eta(progress.done, progress.total, progress.rate) : null)}</Badge>
            </Group>
            {running && (
              <Group>
                <Button color="red" variant="light" onClick={() => void cancel()} data-testid="wizard-cancel">
                  Cancel
                </Button>
              </Group>
            )}
            {runErr && (
              <Alert color={runErr.code === 'canceled' ? 'yellow' : 'red'} title={runErr.code === 'canceled' ? 'Cancelled' : 'Encryption failed'} data-testid="wizard-run-error">
                {runErr.message}. Nothing was left behind: no output file and no registered volume.
              </Alert>
            )}
            {runErr && (
              <Group>
                <Button
                  variant="default"
                  onClick={() => {
                    opRef.current = null;
                    setOpID(null);
                    setProgress(null);
                    setRunErr(null);
                    setStep(4);
                  }}
                  data-testid="wizard-back-to-output"
                >
                  Change the output and try again
                </Button>
              </Group>
            )}
          </Stack>
        </Stepper.Step>

        <Stepper.Completed>
          {result && (
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
              <Text fw={600}>Upload it</Text>
              <Code block data-testid="upload-command">
                {uploadCommand(output, result.output, result.manifest.image_name)}
              </Code>
              <Text fw={600}>Manifest ({result.manifest_path})</Text>
              <Code block className={classes.manifest} data-testid="manifest">
                {JSON.stringify(result.manifest, null, 2)}
              </Code>
              <Group>
                <Button onClick={onClose}>Done</Button>
              </Group>
            </Stack>
          )}
        </Stepper.Completed>
      </Stepper>

      {step < 5 && (
        <Group justify="flex-end" mt="xl">
          {step > 0 && (
            <Button variant="default" onClick={() => setStep(step - 1)}>
              Back
            </Button>
          )}
          {step < 4 && (
            <Button onClick={() => setStep(step + 1)} disabled={!canNext} data-testid="wizard-next">
              Next
            </Button>
          )}
          {step === 4 && (
            <Button onClick={() => void start()} disabled={!canNext || starting} loading={starting} data-testid="wizard-start">
              Encrypt
            </Button>
          )}
        </Group>
      )}
    </Card>
  );
}

/** conversionCommand picks the qemu-img command out of an unsupported_format message. */
function conversionCommand(message: string): string | null {
  const m = /qemu-img convert .*$/.exec(message);
  return m ? m[0] : null;
}

function baseName(p: string) {
  const b = p.trim().split(/[\\/]/).pop() ?? '';
  return b.replace(/\.(raw|img|qcow2|vmdk|vhdx?|vdi)$/i, '');
}

function DiskSummary({ disk }: { disk: DiskInfo }) {
  return (
    <Card withBorder data-testid="disk-summary">
      <Group gap="xl" mb="sm">
        <Stat label="Format" value={disk.format} />
        <Stat label="Virtual size" value={formatBytes(disk.virtual_size)} />
        <Stat label="File size" value={formatBytes(disk.file_size)} />
        <Stat label="Partition table" value={disk.partition_table.toUpperCase()} />
        {disk.filesystem && <Stat label="File system" value={disk.filesystem} />}
      </Group>
      {disk.detail && (
        <Text size="xs" c="dimmed" mb="sm">
          {disk.detail}
        </Text>
      )}
      {disk.partitions.length > 0 && (
        <Table>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>#</Table.Th>
              <Table.Th>Type</Table.Th>
              <Table.Th>Name</Table.Th>
              <Table.Th>Size</Table.Th>
              <Table.Th>Contents</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {disk.partitions.map((p) => (
              <Table.Tr key={p.index}>
                <Table.Td>
                  {p.index}
                  {disk.root_partition === p.index && (
                    <Badge ml={6} size="xs">
                      root
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>{p.type_name || p.type}</Table.Td>
                <Table.Td>{p.name || '—'}</Table.Td>
                <Table.Td>{formatBytes((p.last_lba - p.first_lba + 1) * 512)}</Table.Td>
                <Table.Td>{p.filesystem || '—'}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Card>
  );
}

function Stat({ label, value }: { label: string; value: string }) {
  return (
    <div>
      <Text size="xs" c="dimmed" tt="uppercase" fw={700}>
        {label}
      </Text>
      <Text fw={600}>{value}</Text>
    </div>
  );
}

/**
 * fleetTCB is the TCB the fleet runs at now: per component, the lowest any
 * verified guest reports (so no healthy guest is locked out), or null while
 * no guest has reported one.
 */
function fleetTCB(): { bootloader: number; tee: number; snp: number; microcode: number } | null {
  let out: { bootloader: number; tee: number; snp: number; microcode: number } | null = null;
  for (const g of fleet.getState().guests.values()) {
    if (g.status !== 'verified') continue;
    const t = g.tcb;
    out = out
      ? { bootloader: Math.min(out.bootloader, t.bootloader), tee: Math.min(out.tee, t.tee), snp: Math.min(out.snp, t.snp), microcode: Math.min(out.microcode, t.microcode) }
      : { bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode };
  }
  return out;
}
