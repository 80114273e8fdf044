// The benchmark harness's pure parts: the statistics BENCHMARKS.md reports, and the report writer
// fed fake results (every benchmark's rows, goals met and missed). No timing is measured here.
import { describe, expect, it } from 'vitest';
import { creepSection, type CreepResult } from '../../bench/creep.ts';
import { demoSection, type DemoResult } from '../../bench/demo.ts';
import { engineOverheadSection, type EngineOverheadResult } from '../../bench/engine-overhead.ts';
import { guidanceSection, type GuidanceResult } from '../../bench/guidance.ts';
import { incrementalSection, type IncrementalResult } from '../../bench/incremental.ts';
import { memorySection, type MemoryResult } from '../../bench/memory.ts';
import { renderReport, type Machine, type Section } from '../../bench/report.ts';
import { serverPingSection, type ServerPingResult } from '../../bench/server-ping.ts';
import {
  fmtSummary,
  mapSummary,
  median,
  pairedRatios,
  percentile,
  summarize,
  type Summary,
} from '../../bench/stats.ts';

describe('stats', () => {
  it('median is the middle value, or the mean of the two middle values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it('median does not reorder its input', () => {
    const values = [5, 1, 4];
    median(values);
    expect(values).toEqual([5, 1, 4]);
  });

  it('rejects empty and non-finite input', () => {
    expect(() => median([])).toThrow(/no values/);
    expect(() => summarize([1, NaN])).toThrow(/finite/);
    expect(() => percentile([1], 101)).toThrow(/\[0, 100\]/);
  });

  it('percentile interpolates linearly between order statistics', () => {
    const v = [10, 20, 30, 40, 50];
    expect(percentile(v, 0)).toBe(10);
    expect(percentile(v, 100)).toBe(50);
    expect(percentile(v, 50)).toBe(30);
    expect(percentile(v, 25)).toBe(20);
    expect(percentile(v, 90)).toBeCloseTo(46, 10);
    expect(
      percentile(
        Array.from({ length: 101 }, (_, i) => i),
        99,
      ),
    ).toBeCloseTo(99, 10);
  });

  it('summarize gives median, min, max and count', () => {
    expect(summarize([5, 1, 9, 3, 7])).toEqual({ median: 5, min: 1, max: 9, n: 5 });
  });

  it('paired ratios divide run by run and insist on equal counts', () => {
    expect(pairedRatios([2, 9], [1, 3])).toEqual([2, 3]);
    expect(() => pairedRatios([1], [1, 2])).toThrow(/1 vs 2/);
  });

  it('formats a summary as median (min–max) and maps units', () => {
    expect(fmtSummary({ median: 1.234, min: 1, max: 2.5, n: 3 }, 2, ' ms')).toBe('1.23 ms (1.00–2.50)');
    expect(mapSummary({ median: 2048, min: 1024, max: 4096, n: 2 }, (b) => b / 1024)).toEqual({
      median: 2,
      min: 1,
      max: 4,
      n: 2,
    });
  });
});

const S = (median: number, min = median * 0.9, max = median * 1.1): Summary => ({ median, min, max, n: 5 });

const machine: Machine = {
  cpu: 'Test CPU 3000',
  cores: 2,
  ramGiB: 24,
  node: 'v20.0.0',
  onnxruntime: 'onnxruntime-node 1.30.0',
  os: 'Linux test',
  load: 1.5,
};

function engine(ratio: number): EngineOverheadResult {
  return {
    warm: {
      engine: S(1000 * ratio),
      plain: S(1000),
      ratio: S(ratio),
      nospill: S(1000),
      nospillRatio: S(1.0),
      nospillCpuRatio: S(1.0),
      engineCpu: S(1500 * ratio),
      plainCpu: S(1500),
      cpuRatio: S(ratio),
      ort: S(900),
      unetCallMs: S(28),
    },
    firstRun: { engine: 1800, plain: 1500 },
    cold: {
      engine: S(3000),
      plain: S(2500),
      ratio: S(1.2),
      engineRss: S(200 * 2 ** 20),
      plainRss: S(160 * 2 ** 20),
    },
    unetCalls: 30,
    long: { steps: 30, engine: S(3000 * ratio), plain: S(3000), ratio: S(ratio), cpuRatio: S(ratio) },
    breakdown: {
      validateMs: 4,
      unetRuntimeMs: 30,
      unetDirectMs: 28,
      hopMs: 2,
      hopCpuMs: 0.5,
      previewMs: 1,
    },
  };
}

const memory = (ratio: number): MemoryResult => ({
  rows: [2, 8, 32, 64].map((clips, i) => ({
    clips,
    rss: S(400 * (i === 0 ? 1 : ratio) * 2 ** 20),
    ms: S(1000 * clips),
  })),
  ratio,
  pairedRatio: S(ratio),
  record: {
    bytes: 1441792,
    latentBytes: 131072,
    imageBytes: 6291456,
    steps: 50,
    beta: 0.4,
    referenceFrames: 4,
    shape: [1, 4, 8, 32, 32],
  },
});

const incremental = (fpsFraction: number): IncrementalResult => ({
  full: S(7000),
  fps: S(7000 * fpsFraction),
  prompt: S(6900),
  fpsFraction: S(fpsFraction),
  promptFraction: S(0.98),
  encodeFloor: S(300),
  fpsExecuted: ['8', '5', '13'],
  promptExecuted: ['2', '6', '7', '8', '9', '5', '13'],
});

const guidance: GuidanceResult = {
  bench: { batched: S(60), split: S(100), ratio: S(0.6) },
  demo: { batched: S(25), split: S(50), ratio: S(0.5) },
};

const ping: ServerPingResult = {
  idle: { p50: S(0.4), p99: S(3), max: S(10), samples: 800 },
  busy: { p50: S(0.5), p99: S(19), max: S(45), samples: 790 },
};

const demo: DemoResult = { ms: S(15000), rss: S(420 * 2 ** 20), generateMs: 1600 };

const creep = (ratio: number): CreepResult => ({
  after1: S(400 * 2 ** 20),
  after2: S(410 * 2 ** 20),
  after20: S(400 * ratio * 2 ** 20),
  ratio: S(ratio),
  ratioFrom2: S(ratio * 0.98),
  curve: Array.from({ length: 20 }, () => 400),
  servers: 3,
});

function sections(missed: boolean): Section[] {
  return [
    engineOverheadSection(engine(missed ? 1.2 : 1.01)),
    memorySection(memory(missed ? 1.5 : 1.05)),
    incrementalSection(incremental(missed ? 0.12 : 0.02)),
    guidanceSection(guidance),
    serverPingSection(ping),
    demoSection(missed ? { ...demo, ms: S(130_000) } : demo),
    creepSection(creep(missed ? 1.3 : 1.02)),
  ];
}

/** The markdown table rows under the heading `title`. */
function tableRows(md: string, title: string): string[] {
  const start = md.indexOf(`## ${title}`);
  expect(start).toBeGreaterThanOrEqual(0);
  const body = md.slice(start).split('\n').slice(1);
  const end = body.findIndex((l) => l.startsWith('## '));
  return (end < 0 ? body : body.slice(0, end)).filter((l) => l.startsWith('| ') && !l.startsWith('| ---'));
}

describe('report', () => {
  it('states the machine, the date, the repetitions and the total time', () => {
    const md = renderReport({
      machine,
      date: '2026-01-02T03:04:05Z',
      reps: 5,
      totalMs: 312_000,
      sections: sections(false),
      problems: [],
    });
    expect(md).toContain('Test CPU 3000, 2 cores, 24 GiB RAM');
    expect(md).toContain('Node v20.0.0, onnxruntime-node 1.30.0');
    expect(md).toContain('2026-01-02T03:04:05Z');
    expect(md).toContain('median of 5 runs');
    expect(md).toContain('312 s');
  });

  it('writes every row of every benchmark, each with a way to reproduce it', () => {
    const all = sections(false);
    const md = renderReport({ machine, date: 'd', reps: 5, totalMs: 1, sections: all, problems: [] });
    for (const s of all) {
      const rows = tableRows(md, s.title);
      // Header + one line per result row.
      expect(rows).toHaveLength(s.rows.length + 1);
      for (const row of s.rows) {
        expect(row).toHaveLength(s.columns.length);
        expect(row[row.length - 1]).not.toBe('');
      }
    }
    expect(all.map((s) => s.title)).toEqual([
      '1. Engine overhead',
      '2. Memory flat in length',
      '3. Incremental re-run',
      '4. Guidance batching',
      '5. Server responsiveness',
      '6. Demo end to end',
      '7. No creep across runs',
    ]);
    // The summary lists each benchmark once.
    const summary = tableRows(md, 'Summary');
    expect(summary).toHaveLength(all.length + 1);
  });

  it('puts the numbers of the results into the rows', () => {
    const md = renderReport({
      machine,
      date: 'd',
      reps: 5,
      totalMs: 1,
      sections: sections(false),
      problems: [],
    });
    expect(md).toContain('1.010×'); // engine ratio
    expect(md).toContain('1408 KiB'); // DSG record of the shipped defaults
    expect(md).toContain('| 32 | 256 |'); // 32 clips of 8 frames
    expect(md).toContain('| 64 | 512 |');
    expect(md).toContain('2.0 %'); // fps change fraction
    expect(md).toContain('8, 5, 13'); // nodes re-run by the fps change
    expect(md).toContain('0.60×'); // CFG batch 2 vs two batch 1
    expect(md).toContain('19.00'); // busy p99
    expect(md).toContain('15.0'); // demo seconds
    expect(md).toContain('1.020×'); // creep ratio
  });

  it('marks goals met, and says by how much a missed goal is missed', () => {
    const ok = renderReport({
      machine,
      date: 'd',
      reps: 5,
      totalMs: 1,
      sections: sections(false),
      problems: [],
    });
    expect(ok).not.toContain('**missed**');
    const bad = renderReport({
      machine,
      date: 'd',
      reps: 5,
      totalMs: 1,
      sections: sections(true),
      problems: ['the engine copies every tensor twice'],
    });
    expect(bad).toContain('missed** by 16.5 %'); // 1.2 / 1.03
    expect(bad).toContain('missed** by 36.4 %'); // 1.5 / 1.10
    expect(bad).toContain('missed** by 9.0 points'); // 12 % vs 3 %
    expect(bad).toContain('missed** by 10.0 s'); // 130 s vs 120 s
    expect(bad).toContain('missed** by 18.2 %'); // 1.3 / 1.10
    expect(bad).toContain('## Problems found');
    expect(bad).toContain('- the engine copies every tensor twice');
    // Each missed goal also lists its finding, with numbers, for the owners to route.
    for (const finding of [
      'Engine overhead (',
      'Peak RSS vs video length',
      'Incremental fps change',
      'Server RSS creeps',
    ])
      expect(bad).toContain(`- ${finding}`);
    expect(ok).not.toContain('## Problems found');
  });

  it('escapes pipes inside cells so a table keeps its columns', () => {
    const s: Section = {
      title: 'x',
      headline: 'a|b',
      columns: ['c1', 'c2'],
      rows: [['p|q', 'r']],
      notes: [],
    };
    const md = renderReport({ machine, date: 'd', reps: 5, totalMs: 1, sections: [s], problems: [] });
    expect(md).toContain('| p\\|q | r |');
  });
});
