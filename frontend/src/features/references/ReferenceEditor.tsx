import { Button, Group, Stack, Text, Textarea, TextInput } from '@mantine/core';
import { useState } from 'react';
import { api, type Image, type ReferenceValues, type ReferenceVersion } from '../../api';
import { useReauth } from '../../components/Reauth';
import { useAction } from '../../hooks/useAction';
import { notifyOutcome } from '../quorum/outcome';
import { useSession } from '../../stores/session';

/**
 * parseReferenceInput reads what an admin typed: a reference values file
 * (JSON, as `keyholder image references import` reads it), or launch
 * measurements (hex, one per line or comma-separated) that replace the
 * measurements of latest (or of empty values). It throws a message a
 * person can act on.
 */
export function parseReferenceInput(text: string, latest?: ReferenceValues): ReferenceValues {
  const t = text.trim();
  if (t === '') throw new Error('Enter at least one measurement, or paste a reference values file.');
  if (t.startsWith('{')) {
    let v: ReferenceValues;
    try {
      v = JSON.parse(t) as ReferenceValues;
    } catch (e) {
      throw new Error(`The reference values file is not JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(v.measurements) || v.measurements.length === 0) throw new Error('The reference values file lists no measurements.');
    return v;
  }
  const ms = t.split(/[\s,]+/).filter(Boolean).map((m) => m.toLowerCase());
  for (const m of ms) {
    if (!/^[0-9a-f]{96}$/.test(m)) throw new Error(`${m.slice(0, 20)}… is not a measurement (96 hex digits, SHA-384).`);
  }
  const base: ReferenceValues = latest ?? {
    measurements: [],
    minimum_tcb: { bootloader: 0, tee: 0, snp: 0, microcode: 0 },
    allow_migration_agent: false,
    allow_smt: false,
    require_single_socket: false,
  };
  return { ...base, measurements: ms };
}

/** ReferenceEditor lets an admin enter or import an image's reference values before any guest boots. */
export function ReferenceEditor({ image, latest, onSaved }: { image: Pick<Image, 'id' | 'name'>; latest?: ReferenceVersion; onSaved: () => void }) {
  const admin = useSession().session?.role === 'admin';
  const reauth = useReauth();
  const [text, setText] = useState('');
  const [comment, setComment] = useState('');
  const [error, setError] = useState<string | null>(null);
  const { busy, run } = useAction();
  if (!admin) return null;
  const save = async () => {
    let values: ReferenceValues;
    try {
      values = parseReferenceInput(text, latest?.values);
    } catch (e) {
      setError((e as Error).message);
      return;
    }
    setError(null);
    await run(
      'save',
      async () => {
        const out = await reauth(() => api().images.setReference(image.id, values, comment));
        notifyOutcome(out, 'Reference values saved', `Guests of ${image.name} must now prove one of ${values.measurements.length} measurement(s).`);
        setText('');
        setComment('');
        onSaved();
      },
      { fail: 'Not saved' },
    );
  };
  return (
    <Stack gap="xs" mt="sm" data-testid="reference-editor">
      <Text size="sm" fw={500}>
        Set reference values
      </Text>
      <Textarea
        size="xs"
        autosize
        minRows={2}
        label="Launch measurements (hex, one per line) or a reference values file (JSON)"
        description="With reference values in place no first boot needs to pin them, so no other guest can claim it."
        value={text}
        error={error}
        onChange={(e) => setText(e.currentTarget.value)}
        data-testid="reference-input"
      />
      <Group align="flex-end">
        <TextInput size="xs" label="Comment" w={320} value={comment} onChange={(e) => setComment(e.currentTarget.value)} />
        <Button size="xs" loading={busy === 'save'} onClick={() => void save()} data-testid="reference-save">
          Save as a new version
        </Button>
      </Group>
    </Stack>
  );
}
