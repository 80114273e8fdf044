// Entry point: styles, then the app; `window.rdflow` exposes it for tests and the console.
import '@comfyorg/litegraph/style.css';
import './style.css';
import { startApp, type App } from './app.ts';
import { messageOf, toast } from './errors.ts';

declare global {
  interface Window {
    rdflow?: App;
  }
}

startApp().then(
  (app) => {
    window.rdflow = app;
    document.body.dataset.ready = 'true';
  },
  (e: unknown) => {
    toast(`The editor could not start: ${messageOf(e)}`, 'error', 600_000);
    document.body.dataset.ready = 'failed';
  },
);
