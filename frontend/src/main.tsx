import '@mantine/core/styles.css';
import '@mantine/notifications/styles.css';
import '@mantine/charts/styles.css';
import './global.css';
import { Alert, createTheme, Drawer, MantineProvider, Modal, Notification } from '@mantine/core';
import { Notifications } from '@mantine/notifications';
import React from 'react';
import ReactDOM from 'react-dom/client';
import { BrowserRouter, HashRouter } from 'react-router-dom';
import { hasWails } from './api/wails';
import { App } from './App';
import { DesktopGate } from './components/DesktopGate';

const theme = createTheme({
  primaryColor: 'teal',
  fontFamily: 'Inter, "Segoe UI", "DejaVu Sans", system-ui, sans-serif',
  fontFamilyMonospace: '"JetBrains Mono", "DejaVu Sans Mono", ui-monospace, monospace',
  defaultRadius: 'md',
  // Every close button has a name a screen reader can say.
  components: {
    Modal: Modal.extend({ defaultProps: { closeButtonProps: { 'aria-label': 'Close dialog' } } }),
    Drawer: Drawer.extend({ defaultProps: { closeButtonProps: { 'aria-label': 'Close panel' } } }),
    Notification: Notification.extend({ defaultProps: { closeButtonProps: { 'aria-label': 'Dismiss notice' } } }),
    Alert: Alert.extend({ defaultProps: { closeButtonLabel: 'Dismiss' } }),
  },
});

// The desktop window has no server-side routes; the web console serves the
// app shell for every path, so clean URLs work there.
const Router = hasWails() ? HashRouter : BrowserRouter;

ReactDOM.createRoot(document.getElementById('root')!).render(
  <React.StrictMode>
    <MantineProvider theme={theme} defaultColorScheme="auto">
      {/* Bottom left, over the sidebar's empty lower part: never over a countdown, a decision button or the officer menu. */}
      <Notifications position="bottom-left" limit={3} containerWidth={204} zIndex={300} />
      <Router>
        <DesktopGate>
          <App />
        </DesktopGate>
      </Router>
    </MantineProvider>
  </React.StrictMode>,
);
