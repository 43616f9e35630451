import { Alert, Badge, Button, Card, Checkbox, Code, Group, Stack, Table, Text, TextInput } from '@mantine/core';
import { IconFolderOpen } from '@tabler/icons-react';
import type { DiskInfo } from '../../../api';
import { formatBytes } from '../logic';
import type { StepProps } from './props';

/** SourceStep: the officer names the plaintext disk image and the console inspects it. */
export function SourceStep({ s, dispatch, prep, desktop }: StepProps) {
  const { disk } = s;
  return (
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
          value={s.source}
          onChange={(e) => dispatch({ type: 'source', source: e.currentTarget.value })}
          style={{ flex: 1 }}
          data-testid="wizard-source"
        />
        {desktop && (
          <Button variant="default" leftSection={<IconFolderOpen size={16} />} onClick={() => void prep.browse(false)}>
            Browse…
          </Button>
        )}
        <Button onClick={() => void prep.inspect()} loading={s.inspecting} disabled={!s.source.trim()} data-testid="wizard-inspect">
          Inspect
        </Button>
      </Group>
      {s.inspectErr && (
        <Alert color="red" title="Keyholder cannot use this file" data-testid="wizard-inspect-error">
          {s.inspectErr}
          {s.convertCmd && (
            <Code block mt="xs" data-testid="wizard-convert-command">
              {s.convertCmd}
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
            checked={s.rawConfirmed}
            onChange={(e) => dispatch({ type: 'edit', patch: { rawConfirmed: e.currentTarget.checked } })}
            label="I know this file is a raw disk; encrypt it as it is"
            data-testid="wizard-raw-confirm"
          />
        </Alert>
      )}
    </Stack>
  );
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

