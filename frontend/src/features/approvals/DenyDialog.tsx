import { Button, Group, Modal, Stack, Text, Textarea } from '@mantine/core';
import { useEffect, useState } from 'react';
import { ApiError } from '../../api';

/**
 * DenyDialog asks why before a release request is denied: the reason is
 * required (the console refuses a denial without one too) and goes into the
 * request, the guest's history and the audit entry. It keeps what was typed
 * when the call fails, and shows the console's message on the field.
 */
export function DenyDialog({
  what,
  initial,
  opened,
  onClose,
  onDeny,
}: {
  /** what is denied, e.g. "Restore of vm-demo-04" */
  what: string;
  /** the note the officer already wrote on the card, if any */
  initial: string;
  opened: boolean;
  onClose: () => void;
  /** onDeny runs the denial; it throws an ApiError when the console refuses it. */
  onDeny: (reason: string) => Promise<void>;
}) {
  const [reason, setReason] = useState(initial);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (opened) {
      setReason(initial);
      setError(null);
    }
  }, [opened, initial]);
  const blank = reason.trim() === '';
  const submit = async () => {
    if (blank) {
      setError('Say why this request is refused: the reason goes into the audit log.');
      return;
    }
    setBusy(true);
    try {
      await onDeny(reason.trim());
      onClose();
    } catch (e) {
      if (e instanceof ApiError && e.field === 'reason') setError(e.message);
      else if (e instanceof ApiError) setError(e.message);
      else setError(String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal opened={opened} onClose={onClose} title={`Deny: ${what}`} data-testid="deny-dialog" closeOnClickOutside={!busy}>
      <Stack gap="sm">
        <Text size="sm">The denial is final for this request: the guest gets no key and must ask again. The reason is recorded in the audit log.</Text>
        <Textarea
          label="Reason (required)"
          description="For example: unknown host, not a planned restore, firmware update not announced."
          placeholder="Why is this request refused?"
          autosize
          minRows={2}
          required
          data-autofocus
          value={reason}
          error={error}
          onChange={(e) => {
            setReason(e.currentTarget.value);
            setError(null);
          }}
          onKeyDown={(e) => {
            e.stopPropagation();
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void submit();
          }}
          data-testid="deny-reason"
        />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button
            color="red"
            onClick={() => void submit()}
            loading={busy}
            title={blank ? 'Write a reason first' : undefined}
            data-testid="deny-confirm"
          >
            Deny request
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
