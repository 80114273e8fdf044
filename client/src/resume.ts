// The queue panel's resume action: a prompt that was interrupted or failed after some clips
// continues from its last finished clip (POST /runs/resume), and a finished one can be extended by
// N clips (the same video as K+N clips from the start). See server/api/README.md.
import { el } from './dom.ts';

export interface ResumeActions {
  readonly element: HTMLElement;
  /** Shows the action that fits the last run: resume after a stop, extend after a success. */
  update(promptId: string | undefined, phase: string): void;
}

function base(): URL {
  return new URL('.', window.location.href);
}

/** POST /runs/resume; resolves to the new prompt id or rejects with the server's message. */
export async function resumePrompt(promptId: string, extend?: number): Promise<string> {
  const res = await fetch(new URL('runs/resume', base()), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(extend === undefined ? { prompt_id: promptId } : { prompt_id: promptId, extend }),
  });
  const body = (await res.json().catch(() => ({}))) as { prompt_id?: string; error?: { message?: string } };
  if (!res.ok || typeof body.prompt_id !== 'string') {
    throw new Error(body.error?.message ?? `POST /runs/resume answered ${res.status}`);
  }
  return body.prompt_id;
}

export function createResumeActions(
  onQueued: (promptId: string) => void,
  onError: (message: string) => void,
): ResumeActions {
  const element = Object.assign(el('div', 'resume-actions'), { id: 'resume-actions', hidden: true });
  const resume = Object.assign(el('button', undefined, 'Resume'), {
    id: 'resume-run',
    title: 'Continue from the last finished clip',
  });
  const clips = Object.assign(el('input'), {
    type: 'number',
    min: '1',
    value: '2',
    id: 'extend-clips',
    title: 'Clips to add',
  });
  const extend = Object.assign(el('button', undefined, 'Extend'), {
    id: 'extend-run',
    title: 'Add clips to the finished video (the same as running more clips from the start)',
  });
  element.append(resume, extend, clips);
  let current: string | undefined;
  const go = (n?: number) => {
    if (current === undefined) return;
    resumePrompt(current, n).then(onQueued, (e: unknown) =>
      onError(e instanceof Error ? e.message : String(e)),
    );
  };
  resume.addEventListener('click', () => go());
  extend.addEventListener('click', () => {
    const n = Number(clips.value);
    if (Number.isInteger(n) && n >= 1) go(n);
    else onError('Extend: the number of clips must be a whole number ≥ 1');
  });
  return {
    element,
    update(promptId, phase) {
      current = promptId;
      const stopped = phase === 'interrupted' || phase === 'error';
      const finished = phase === 'success';
      element.hidden = promptId === undefined || (!stopped && !finished);
      resume.hidden = !stopped;
      extend.hidden = !finished;
      clips.hidden = !finished;
    },
  };
}
