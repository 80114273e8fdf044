// One slow or dead WebSocket client never stalls the others or the run: a client that stops
// reading has its previews dropped (and is closed past the hard limit) while a normal client
// receives every preview and event.
import crypto from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, isDone, request, startTestServer, type TestServer } from './helpers.ts';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ ws: { softLimitBytes: 256 * 1024, hardLimitBytes: 4 * 1024 * 1024 } });
});
afterAll(async () => {
  await server.close();
});

/** A WebSocket client that completes the handshake and then never reads. */
async function stalledClient(
  port: number,
  clientId: string,
): Promise<{ sock: net.Socket; received: () => number }> {
  const sock = net.connect(port, '127.0.0.1');
  let bytes = 0;
  let handshake = '';
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.on('data', (d: Buffer) => {
      bytes += d.length;
      if (handshake.includes('\r\n\r\n')) return;
      handshake += d.toString('latin1');
      if (handshake.includes('\r\n\r\n')) {
        // Stop reading: the kernel buffers fill, then the server's send buffer for us grows.
        sock.pause();
        resolve();
      }
    });
    sock.write(
      `GET /ws?clientId=${clientId} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
  return { sock, received: () => bytes };
}

describe('a client that stops reading', () => {
  it('does not stall the run or other clients; its previews are dropped', async () => {
    const stalled = await stalledClient(server.port, 'watcher');
    const fast = await connect(server.url, 'fast');
    const count = 40;
    const bytes = 512 * 1024;
    const prompt = {
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '2': { class_type: 'TestPreviews', inputs: { value: ['1', 0], count, bytes, delay_ms: 2 } },
    };
    // No client_id: every socket gets every event and preview (ComfyUI broadcasts those).
    const res = await request(`${server.url}/prompt`, { body: { prompt } });
    const { prompt_id } = res.body as { prompt_id: string };
    await fast.waitFor(isDone(prompt_id), 30_000);
    expect(fast.binary).toHaveLength(count);
    expect(fast.messages.filter((m) => m.data.prompt_id === prompt_id).map((m) => m.type)).toContain(
      'execution_success',
    );

    // The server kept serving while the stalled socket held its buffer.
    expect((await request(`${server.url}/prompt`)).status).toBe(200);

    // Let the stalled client drain what was buffered for it: far less than everything sent.
    stalled.sock.resume();
    await new Promise<void>((resolve) => {
      let last = -1;
      const tick = setInterval(() => {
        if (stalled.received() === last || stalled.sock.destroyed) {
          clearInterval(tick);
          resolve();
        }
        last = stalled.received();
      }, 200);
    });
    expect(stalled.received()).toBeLessThan(count * bytes);
    stalled.sock.destroy();
    fast.close();
  });
});
