import { ActionIcon, AppShell, Badge, Group, Menu, NavLink, Text, Tooltip, UnstyledButton, useMantineColorScheme } from '@mantine/core';
import {
  IconChecklist,
  IconDisc,
  IconKey,
  IconListDetails,
  IconLock,
  IconLogout,
  IconUserShield,
  IconMoon,
  IconServer,
  IconSettings,
  IconShieldLock,
  IconSun,
} from '@tabler/icons-react';
import { Link, Navigate, Route, Routes, useLocation, useNavigate } from 'react-router-dom';
import { SimulatedBadge } from './components/common';
import { ReauthProvider } from './components/Reauth';
import { SessionGate } from './components/SessionGate';
import { api } from './api';
import { session, useSession } from './stores/session';
import { showWaiting, watchApprovals } from './stores/attention';
import { useEffect } from 'react';
import { ApprovalsScreen } from './screens/Approvals';
import { AuditScreen } from './screens/Audit';
import { FleetScreen } from './screens/Fleet';
import { GuestScreen } from './screens/Guest';
import { ImagesScreen } from './screens/Images';
import { KeysScreen } from './screens/Keys';
import { SettingsScreen } from './screens/Settings';
import { pendingRequests } from './stores/approvals';
import { consoleInfo } from './stores/console';
import { useResource } from './stores/resource';
import { useConnection } from './stores/connection';

const nav = [
  { to: '/fleet', label: 'Fleet', icon: IconServer },
  { to: '/approvals', label: 'Approvals', icon: IconChecklist },
  { to: '/images', label: 'Images', icon: IconDisc },
  { to: '/keys', label: 'Keys', icon: IconKey },
  { to: '/audit', label: 'Audit', icon: IconListDetails },
  { to: '/settings', label: 'Settings', icon: IconSettings },
];

export function App() {
  return (
    <SessionGate>
      <ReauthProvider>
        <Shell />
      </ReauthProvider>
    </SessionGate>
  );
}

function Shell() {
  const sess = useSession().session;
  const loc = useLocation();
  const go = useNavigate();
  const info = useResource(consoleInfo);
  const conn = useConnection().info;
  const remote = conn?.mode === 'remote' ? conn.url?.replace(/^https:\/\//, '') : undefined;
  const pending = useResource(pendingRequests);
  const { colorScheme, toggleColorScheme } = useMantineColorScheme();
  useEffect(() => watchApprovals(() => go('/approvals')), [go]);
  const waiting = pending.data?.length ?? 0;
  useEffect(() => {
    document.title = waiting > 0 ? `(${waiting}) Keyholder` : 'Keyholder';
  }, [waiting]);
  // One grouped notice for every waiting request, gone once they are decided,
  // and none on the Approvals screen itself, which lists them.
  const onApprovals = loc.pathname === '/approvals';
  useEffect(() => showWaiting(onApprovals ? [] : pending.data ?? [], () => go('/approvals')), [pending.data, onApprovals, go]);
  // Every screen opens at its top, whichever page the officer came from.
  useEffect(() => {
    window.scrollTo(0, 0);
  }, [loc.pathname]);

  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 220, breakpoint: 0 }} padding="lg">
      <a href="#main" className="skip-link" data-testid="skip-link">
        Skip to content
      </a>
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between">
          <Group gap="xs">
            <IconShieldLock size={26} color="var(--mantine-color-teal-6)" />
            <Text fw={700} size="lg">
              Keyholder
            </Text>
            {info.data && (
              <Text size="xs" c="dimmed">
                {info.data.version} · {remote ? `desktop · console ${remote}` : info.data.mode === 'desktop' ? 'desktop' : 'web console'}
              </Text>
            )}
            {info.data?.dev_simulated_root && <SimulatedBadge />}
          </Group>
          <Group gap="xs">
          {sess?.logged_in && (
            <Menu position="bottom-end" withinPortal>
              <Menu.Target>
                <UnstyledButton data-testid="officer-menu">
                  <Group gap={6}>
                    <IconUserShield size={18} />
                    <Text size="sm" fw={500} data-testid="officer-name">
                      {sess.officer}
                    </Text>
                    <Badge size="xs" variant="light" data-testid="officer-role">
                      {sess.role}
                    </Badge>
                  </Group>
                </UnstyledButton>
              </Menu.Target>
              <Menu.Dropdown>
                <Menu.Item leftSection={<IconLock size={16} />} onClick={() => void api().session.lock().then(session.refresh)} data-testid="lock-now">
                  Lock now
                </Menu.Item>
                <Menu.Item
                  leftSection={<IconLogout size={16} />}
                  color="red"
                  onClick={() => void api().session.logout().then(session.refresh)}
                  data-testid="logout"
                >
                  Log out
                </Menu.Item>
              </Menu.Dropdown>
            </Menu>
          )}
          <Tooltip label={colorScheme === 'dark' ? 'Light theme' : 'Dark theme'}>
            <ActionIcon variant="default" size="lg" onClick={toggleColorScheme} aria-label="Toggle theme">
              {colorScheme === 'dark' ? <IconSun size={18} /> : <IconMoon size={18} />}
            </ActionIcon>
          </Tooltip>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" component="nav" aria-label="Screens">
        {nav.map((n) => (
          <NavLink
            component={Link}
            to={n.to}
            aria-current={loc.pathname === n.to || loc.pathname.startsWith(n.to + '/') ? 'page' : undefined}
            key={n.to}
            label={n.label}
            leftSection={<n.icon size={18} />}
            active={loc.pathname === n.to || loc.pathname.startsWith(n.to + '/')}
            data-testid={`nav-${n.label.toLowerCase()}`}
            rightSection={
              n.to === '/approvals' && pending.data && pending.data.length > 0 ? (
                <Badge size="sm" color="yellow" circle aria-label={`${pending.data.length} waiting`}>
                  {pending.data.length}
                </Badge>
              ) : undefined
            }
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main id="main" tabIndex={-1}>
        <Routes>
          <Route path="/" element={<Navigate to="/fleet" replace />} />
          <Route path="/fleet" element={<FleetScreen />} />
          <Route path="/fleet/:id" element={<GuestScreen />} />
          <Route path="/approvals" element={<ApprovalsScreen />} />
          <Route path="/images" element={<ImagesScreen />} />
          <Route path="/keys" element={<KeysScreen />} />
          <Route path="/audit" element={<AuditScreen />} />
          <Route path="/settings" element={<SettingsScreen />} />
          <Route path="*" element={<Navigate to="/fleet" replace />} />
        </Routes>
      </AppShell.Main>
    </AppShell>
  );
}
