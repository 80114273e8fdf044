// Property: whatever malformed prompt or body a client sends, the server answers 4xx in api.md's
// error shape and keeps serving. Over 1,000 generated requests, bounded in count and time.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, slowPrompt, startTestServer, type TestServer } from './helpers.ts';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

function expectClientError(res: { status: number; body: unknown }, what: unknown): void {
  expect(res.status, JSON.stringify(what).slice(0, 300)).toBeGreaterThanOrEqual(400);
  expect(res.status, JSON.stringify(what).slice(0, 300)).toBeLessThan(500);
  const body = res.body as { error?: { type?: unknown; message?: unknown } };
  expect(typeof body.error?.type).toBe('string');
  expect(typeof body.error?.message).toBe('string');
}

function inRange(v: unknown): boolean {
  if (v === null || typeof v === 'object') return false;
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 1000;
}

/** A valid prompt (TestInt → TestSlow → TestFileWriter) with exactly one defect. */
const brokenPrompt = fc
  .tuple(
    fc.integer({ min: 0, max: 13 }),
    fc.oneof(
      fc.jsonValue(),
      fc.constantFrom(-1, Number.MAX_VALUE, 'NaN', null, [], {}, ['9', 0], ['1', 7], ['1', -1]),
    ),
    fc.string({ maxLength: 12 }),
  )
  .map(([defect, junk, text]) => {
    const p = slowPrompt(1) as Record<string, { class_type: string; inputs: Record<string, unknown> }>;
    switch (defect) {
      case 0:
        // Anything the INT widget would accept (5, "5", " 0x10 ") is swapped for an out-of-range 0.
        p['2'].inputs.steps = inRange(junk) ? 0 : junk;
        break;
      case 1:
        delete p['2'].inputs.steps;
        break;
      case 2:
        p['2'].class_type = `NoSuchNode${text}`;
        break;
      case 3:
        p['3'].inputs.value = ['404', 0];
        break;
      case 4:
        p['3'].inputs.value = ['2', 5];
        break;
      case 5:
        p['1'].inputs.value = 5000;
        break;
      case 6:
        (p as Record<string, unknown>)['2'] =
          junk === null || typeof junk !== 'object' || Array.isArray(junk) ? junk : 'x';
        break;
      case 7:
        p['2'].inputs.value = ['2', 0];
        break;
      case 8:
        delete (p['2'] as { class_type?: string }).class_type;
        break;
      case 9:
        (p['2'] as { inputs: unknown }).inputs = Array.isArray(junk) ? junk : [junk];
        break;
      case 10:
        p['3'].class_type = 'TestInt';
        p['3'].inputs = { value: 1 };
        break;
      case 11:
        p['2'].inputs.delay_ms = `${text}x`;
        break;
      case 12:
        p['1'].inputs.value = { __value__: [junk] };
        break;
      case 13:
        p['3'] = { class_type: 'TestLatentSink', inputs: { latent: ['1', 0] } };
        break;
    }
    return p;
  });

/** Bodies that are not a prompt request at all. */
const wrongBody = fc.oneof(
  fc.jsonValue().filter((v) => v === null || typeof v !== 'object' || Array.isArray(v) || !('prompt' in v)),
  fc.record({ prompt: fc.oneof(fc.jsonValue(), fc.constant({})) }).filter((b) => {
    const p = b.prompt;
    return p === null || typeof p !== 'object' || Array.isArray(p) || Object.keys(p).length < 2;
  }),
  fc.record({ prompt: fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue(), { maxKeys: 4 }) }),
);

/** Raw text that is not JSON. */
const notJson = fc.string({ maxLength: 200 }).filter((s) => {
  // An empty body is a valid "no fields" request (clients POST /interrupt without one).
  if (s.trim() === '') return false;
  try {
    JSON.parse(s);
    return false;
  } catch {
    return true;
  }
});

describe('fuzzing /prompt', () => {
  it('answers 1,000+ malformed prompts and bodies with 4xx and keeps serving', async () => {
    let sent = 0;
    const endpoints = ['/prompt', '/api/prompt'];
    await fc.assert(
      fc.asyncProperty(brokenPrompt, fc.nat(1), async (prompt, e) => {
        const res = await request(`${server.url}${endpoints[e]}`, { body: { prompt, client_id: 'fuzz' } });
        sent++;
        expectClientError(res, prompt);
      }),
      { numRuns: 500, interruptAfterTimeLimit: 25_000 },
    );
    await fc.assert(
      fc.asyncProperty(wrongBody, async (body) => {
        const res = await request(`${server.url}/prompt`, { body });
        sent++;
        expectClientError(res, body);
      }),
      { numRuns: 300, interruptAfterTimeLimit: 15_000 },
    );
    await fc.assert(
      fc.asyncProperty(
        notJson,
        fc.constantFrom('/prompt', '/queue', '/history', '/interrupt', '/free'),
        async (raw, ep) => {
          const res = await request(`${server.url}${ep}`, {
            raw,
            headers: { 'content-type': 'application/json' },
          });
          sent++;
          expectClientError(res, raw);
        },
      ),
      { numRuns: 300, interruptAfterTimeLimit: 15_000 },
    );
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.constantFrom('/queue', '/history', '/interrupt'), async (v, ep) => {
        // Lists and primitives are not request objects; objects with wrong field types are refused.
        const body =
          Array.isArray(v) || v === null || typeof v !== 'object' ? v : { delete: v, prompt_id: 5 };
        const res = await request(`${server.url}${ep}`, { body });
        sent++;
        expectClientError(res, body);
      }),
      { numRuns: 100, interruptAfterTimeLimit: 10_000 },
    );
    expect(sent).toBeGreaterThanOrEqual(1000);
    // Nothing was queued, and the server still serves and runs prompts.
    const q = (await request(`${server.url}/queue`)).body as { queue_pending: unknown[] };
    expect(q.queue_pending).toEqual([]);
    const ok = await request(`${server.url}/prompt`, { body: { prompt: slowPrompt(2) } });
    expect(ok.status).toBe(200);
  }, 120_000);
});
