import '@mantine/core/styles.css';
import '@mantine/notifications/styles.css';
import '@mantine/charts/styles.css';
import './global.css';
import { createTheme, MantineProvider } from '@mantine/core';
import { Notifications } from '@mantine/notifications';
import React from 'react';
import ReactDOM from 'react-dom/client';
import { BrowserRouter, HashRouter } from 'react-router-dom';
import { hasWails } from './api/wails';
import { App } from './App';

const theme = createTheme({
  primaryColor: 'teal',
  fontFamily: 'Inter, "Segoe UI", "DejaVu Sans", system-ui, sans-serif',
  fontFamilyMonospace: '"JetBrains Mono", "DejaVu Sans Mono", ui-monospace, monospace',
  defaultRadius: 'md',
});

// The desktop window has no server-side routes; the web console serves the
// app shell for every path, so clean URLs work there.
const Router = hasWails() ? HashRouter : BrowserRouter;

ReactDOM.createRoot(document.getElementById('root')!).render(
  <React.StrictMode>
    <MantineProvider theme={theme} defaultColorScheme="auto">
      <Notifications position="top-right" limit={3} />
      <Router>
        <App />
      </Router>
    </MantineProvider>
  </React.StrictMode>,
);
