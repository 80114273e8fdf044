// promptFlow on its own: the order and shape of what reaches the socket for the outcomes a prompt
// can have, without a server.
import { describe, expect, it } from 'vitest';
import { CLIP_MESSAGE, historyOutputs, previewsWanted, promptFlow } from '../../server/api/messages.ts';

type Sent = { type: string; data: Record<string, unknown>; toAll?: boolean };

function recorder() {
  const sent: Sent[] = [];
  const send = promptFlow((type, data, toAll) => sent.push({ type, data, toAll }));
  return { sent, send, types: () => sent.map((m) => m.type) };
}

const file = (name: string) => ({ filename: name, subfolder: '', type: 'output' });

describe('promptFlow', () => {
  it('a loop: clips as their own messages at once, one executed per node before execution_success', () => {
    const { sent, send, types } = recorder();
    send('execution_start', { prompt_id: 'p' });
    send('execution_cached', { nodes: ['1'], prompt_id: 'p', timestamp: 5 });
    for (let c = 0; c < 2; c++) {
      send('executing', { node: '8', prompt_id: 'p' });
      send('executed', {
        node: '8',
        display_node: '8',
        prompt_id: 'p',
        output: { clips: [{ iteration: c, iterations: 3, frames: 8 * (c + 1) }] },
      });
      send('execution_cached', { nodes: ['6'], prompt_id: 'p', timestamp: 9 });
    }
    send('executed', {
      node: '8',
      display_node: '8',
      prompt_id: 'p',
      output: { images: [file('a.mp4')], animated: [true] },
    });
    send('execution_success', { prompt_id: 'p' });
    expect(types()).toEqual([
      'execution_start',
      'executing',
      CLIP_MESSAGE,
      'executing',
      CLIP_MESSAGE,
      'execution_cached',
      'executed',
      'execution_success',
    ]);
    expect(sent[2].data).toEqual({
      node: '8',
      display_node: '8',
      prompt_id: 'p',
      iteration: 0,
      iterations: 3,
      frames: 8,
    });
    expect(sent[5].data).toEqual({ nodes: ['1', '6'], prompt_id: 'p', timestamp: 5 });
    expect(sent[6].data).toEqual({
      node: '8',
      display_node: '8',
      prompt_id: 'p',
      output: { images: [file('a.mp4')], animated: [true] },
    });
  });

  it('merges a node reported several times into one executed, a repeated item once', () => {
    const { sent, send } = recorder();
    send('execution_start', { prompt_id: 'p' });
    send('executed', { node: '3', prompt_id: 'p', output: { images: [file('a.png')], animated: [false] } });
    send('executed', { node: '3', prompt_id: 'p', output: { images: [file('a.png'), file('b.png')] } });
    send('execution_success', { prompt_id: 'p' });
    const executed = sent.filter((m) => m.type === 'executed');
    expect(executed).toHaveLength(1);
    expect(executed[0].data.output).toEqual({ images: [file('a.png'), file('b.png')], animated: [false] });
  });

  it('an error: what finished is sent before execution_error; an interrupt likewise, to all', () => {
    const a = recorder();
    a.send('execution_start', { prompt_id: 'p' });
    a.send('executed', { node: '3', prompt_id: 'p', output: { images: [file('a.png')] } });
    a.send('execution_error', { prompt_id: 'p', node_id: '4' });
    expect(a.types()).toEqual(['execution_start', 'execution_cached', 'executed', 'execution_error']);

    const b = recorder();
    b.send('execution_start', { prompt_id: 'p' });
    b.send('execution_interrupted', { prompt_id: 'p' }, true);
    expect(b.types()).toEqual(['execution_start', 'execution_cached', 'execution_interrupted']);
    expect(b.sent[2].toAll).toBe(true);
  });

  it('a prompt that never started (invalid when its turn came) ends with execution_error alone', () => {
    const { send, types } = recorder();
    send('execution_error', { prompt_id: 'p', node_id: '1' });
    expect(types()).toEqual(['execution_error']);
  });

  it('passes progress and other messages through untouched and at once', () => {
    const { sent, send } = recorder();
    send('progress', { value: 1, max: 2, prompt_id: 'p', node: '6' }, false, true);
    send('iteration', { iteration: 0, iterations: 2, prompt_id: 'p', node: '5' });
    expect(sent.map((m) => m.type)).toEqual(['progress', 'iteration']);
  });
});

describe('historyOutputs and previewsWanted', () => {
  it('history keeps only nodes with results, without progress keys', () => {
    expect(
      historyOutputs({
        '8': { clips: [{ iteration: 0 }], images: [file('a.mp4')], animated: [true] },
        '9': { clips: [{ iteration: 0 }] },
        '10': {},
      }),
    ).toEqual({ '8': { images: [file('a.mp4')], animated: [true] } });
  });

  it('previews only for a listener that did not ask for none', () => {
    expect(previewsWanted({}, 1)).toBe(true);
    expect(previewsWanted({ preview_method: 'auto' }, 2)).toBe(true);
    expect(previewsWanted({ preview_method: 'none' }, 1)).toBe(false);
    expect(previewsWanted({}, 0)).toBe(false);
  });
});
