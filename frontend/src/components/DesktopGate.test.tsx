import { MantineProvider } from '@mantine/core';
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConnectionInfo, ConnectionState } from '../api';
import { connection } from '../stores/connection';
import { DesktopGate } from './DesktopGate';

/**
 * FakeDesktop stands in for the Go side of the desktop window: app.Bridge
 * as Wails binds it (window.go.app.Bridge) and Wails' runtime events.
 */
class FakeDesktop {
  info: ConnectionInfo = { mode: 'choose' };
  connects: string[][] = [];
  connectError = '';
  private handlers = new Map<string, Set<(d: unknown) => void>>();

  install() {
    const w = window as unknown as Record<string, unknown>;
    w.go = {
      app: {
        Bridge: {
          Call: async () => null,
          Connection: async () => this.info,
          UseLocal: async () => (this.info = { mode: 'local' }),
          Connect: async (url: string, pin: string, ca: string) => {
            this.connects.push([url, pin, ca]);
            if (this.connectError) throw this.connectError;
            return (this.info = { mode: 'remote', url, pin, state: { url, connected: true, streaming: false } });
          },
          Forget: async () => (this.info = { mode: 'choose' }),
          Watch: async () => {},
          PickCAFile: async () => '',
        },
      },
    };
    w.runtime = {
      EventsOn: (name: string, cb: (d: unknown) => void) => {
        if (!this.handlers.has(name)) this.handlers.set(name, new Set());
        this.handlers.get(name)!.add(cb);
        return () => this.handlers.get(name)!.delete(cb);
      },
    };
  }

  emit(name: string, data: unknown) {
    this.handlers.get(name)?.forEach((h) => h(data));
  }
}

const fake = new FakeDesktop();
fake.install();

const wrap = () =>
  render(
    <MantineProvider>
      <DesktopGate>
        <div data-testid="screens">screens</div>
      </DesktopGate>
    </MantineProvider>,
  );

beforeEach(async () => {
  fake.info = { mode: 'choose' };
  fake.connects = [];
  fake.connectError = '';
  await connection.refresh();
});
afterEach(cleanup);

describe('DesktopGate', () => {
  it('asks on first start, and this computer becomes the console', async () => {
    wrap();
    expect(await screen.findByTestId('console-choice')).toBeTruthy();
    expect(screen.queryByTestId('screens')).toBeNull();
    fireEvent.click(screen.getByTestId('choose-local'));
    expect(await screen.findByTestId('screens')).toBeTruthy();
    expect(screen.queryByTestId('connection-banner')).toBeNull();
  });

  it('connects only over https with a pin, and shows why a console was refused', async () => {
    wrap();
    await screen.findByTestId('console-choice');
    const url = screen.getByTestId('connect-url') as HTMLInputElement;
    const submit = screen.getByTestId('connect-submit') as HTMLButtonElement;
    fireEvent.change(url, { target: { value: 'http://console.example:8420' } });
    fireEvent.change(screen.getByTestId('connect-pin'), { target: { value: 'ab'.repeat(32) } });
    expect(submit.disabled).toBe(true);
    expect(screen.getByText(/Only https/)).toBeTruthy();
    fireEvent.change(url, { target: { value: ' https://console.example:8420 ' } });
    fireEvent.change(screen.getByTestId('connect-pin'), { target: { value: '' } });
    expect(submit.disabled).toBe(true); // unpinned
    fireEvent.change(screen.getByTestId('connect-pin'), { target: { value: 'ab'.repeat(32) } });
    expect(submit.disabled).toBe(false);
    fake.connectError = "unavailable: https://console.example:8420: the console's certificate does not match the pinned key; refused";
    fireEvent.click(submit);
    expect((await screen.findByTestId('choice-error')).textContent).toContain('does not match the pinned key');
    expect(fake.connects).toEqual([['https://console.example:8420', 'ab'.repeat(32), '']]);
    expect(screen.queryByTestId('screens')).toBeNull();
    fake.connectError = '';
    fireEvent.click(submit);
    expect(await screen.findByTestId('screens')).toBeTruthy();
  });

  it('shows a banner while the shared console is down, and says when it is back', async () => {
    fake.info = { mode: 'remote', url: 'https://console.example:8420', state: { url: 'https://console.example:8420', connected: true, streaming: true } };
    await connection.refresh();
    wrap();
    await screen.findByTestId('screens');
    expect(screen.queryByTestId('connection-banner')).toBeNull();
    const down: ConnectionState = { url: 'https://console.example:8420', connected: false, error: 'connection refused', attempt: 3, retry_in_ms: 4000, streaming: false };
    act(() => fake.emit('connection:changed', down));
    const banner = await screen.findByTestId('connection-banner');
    expect(banner.textContent).toContain('https://console.example:8420 cannot be reached');
    expect(banner.textContent).toContain('about 4 s');
    expect(banner.textContent).toContain('connection refused');
    expect(screen.getByTestId('screens')).toBeTruthy(); // the screens stay
    act(() => fake.emit('connection:changed', { url: down.url, connected: true, streaming: true }));
    await waitFor(() => expect(screen.queryByTestId('connection-banner')).toBeNull());
    expect(screen.getByTestId('connection-restored').textContent).toContain('Connected again to https://console.example:8420');
  });
});
