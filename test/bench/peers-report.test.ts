import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { goals, renderCharts, renderSection, renderTables, type PeersResults } from '../../bench/peers/report.js';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/peers-results.json', import.meta.url), 'utf8')) as PeersResults;

describe('peers bench report', () => {
  it('renders the tables from a saved results file', () => {
    const md = renderTables(fixture);
    expect(md).toContain('| Tally | bulk | 625,000 | 625 | 12.5 | 31.2 | 2.40 | 100 | 180 | 0 / 0 |');
    expect(md).toContain('| InfluxDB | single | 9,993 | 9,993 |');
    expect(md).toMatch(/\| Tally \|[^\n]*keep first \(sums exact\)[^\n]*59,900 acknowledged, 0 lost \|/);
    expect(md).toMatch(/\| InfluxDB \|[^\n]*overwrite \(last write wins\), \+300,000 vs first writes/);
    expect(md).toMatch(/\| VictoriaMetrics \|[^\n]*\*\*double count\*\*[^\n]*\*\*20,500 lost\*\*/);
  });

  it('names the package of a peer that was not installed, and judges goals it cannot as n/a', () => {
    const reason = 'influxd not found: install it with `apt-get install influxdb`';
    const without: PeersResults = { ...fixture, skipped: [{ system: 'influxdb', reason }], systems: fixture.systems.filter((s) => s.system !== 'influxdb') };
    const md = renderTables(without);
    expect(md).toContain(`- influxdb not benchmarked: ${reason}`);
    expect(md).not.toContain('| InfluxDB |');
    expect(goals(without).find((g) => g.name.startsWith('bulk'))).toMatchObject({ value: 'n/a', pass: null });
  });

  it('judges the goals from the figures', () => {
    const byName = Object.fromEntries(goals(fixture).map((g) => [g.name.split(':')[0], g]));
    expect(byName.bulk).toMatchObject({ value: '1.25×', pass: true });
    expect(byName.single).toMatchObject({ value: '1.60×', pass: true });
    expect(byName.durable).toMatchObject({ value: '0', pass: true });
    expect(byName['exact sums']).toMatchObject({ value: 'exact', pass: true });

    const slower: PeersResults = { ...fixture, systems: fixture.systems.map((s) => (s.system === 'tally' ? { ...s, bulk: { ...s.bulk!, readingsPerS: 550_000 } } : s)) };
    expect(goals(slower).find((g) => g.name.startsWith('bulk'))).toMatchObject({ value: '1.10×', pass: false });
  });

  it('judges Tally\'s line-protocol bulk figure against its JSON one, and its sums', () => {
    const tallyJson = fixture.systems.find((s) => s.system === 'tally')!;
    const lp = (readingsPerS: number, exact = true) => ({
      ...tallyJson,
      system: 'tally-lp' as const,
      label: 'Tally (line protocol)',
      bulk: { ...tallyJson.bulk!, readingsPerS, sums: { ...tallyJson.bulk!.sums!, exact } },
      single: undefined,
      crash: undefined,
    });
    const goal = (r: PeersResults, start: string) => goals(r).find((g) => g.name.startsWith(start));
    const faster = { ...fixture, systems: [...fixture.systems, lp(700_000)] };
    expect(goal(faster, 'bulk: Tally line protocol')).toMatchObject({ value: '1.12×', pass: true });
    expect(goal(faster, 'exact sums: Tally line protocol')).toMatchObject({ value: 'exact', pass: true });
    expect(renderTables(faster)).toContain('| Tally (line protocol) | bulk | 700,000 |');
    const slower = { ...fixture, systems: [...fixture.systems, lp(500_000, false)] };
    expect(goal(slower, 'bulk: Tally line protocol')).toMatchObject({ value: '0.80×', pass: false });
    expect(goal(slower, 'exact sums: Tally line protocol')).toMatchObject({ value: 'wrong', pass: false });
    // Runs without it judge nothing about it.
    expect(goal(fixture, 'bulk: Tally line protocol')).toBeUndefined();
  });

  it('with several passes, judges by the median of the ratios of passes run side by side', () => {
    const withPasses = (id: string, bulk: number[], single: number[]) => (s: PeersResults['systems'][number]) =>
      s.system !== id
        ? s
        : {
            ...s,
            passes: {
              bulk: bulk.map((readingsPerS) => ({ ...s.bulk!, readingsPerS })),
              single: single.map((requestsPerS) => ({ ...s.single!, requestsPerS })),
              duplicates: [],
            },
          };
    // Tally's own median (600k) over InfluxDB's (500k) would be 1.20; pass by pass it is 0.60, 1.50, 1.00.
    const systems = fixture.systems
      .map(withPasses('tally', [300_000, 600_000, 700_000], [9_000, 12_000, 10_000]))
      .map(withPasses('influxdb', [500_000, 400_000, 700_000], [10_000, 10_000, 10_000]));
    const byName = Object.fromEntries(goals({ ...fixture, systems }).map((g) => [g.name.split(':')[0], g]));
    expect(byName.bulk).toMatchObject({ value: '1.00× (median of 0.60, 1.50, 1.00)', pass: false });
    expect(byName.single).toMatchObject({ value: '1.00× (median of 0.90, 1.20, 1.00)', pass: false });
    // Passes that do not pair up (a peer with fewer) fall back to the figures shown in the tables.
    const unpaired = systems.map((s) => (s.system === 'influxdb' ? { ...s, passes: { ...s.passes!, bulk: s.passes!.bulk.slice(0, 2) } } : s));
    expect(goals({ ...fixture, systems: unpaired }).find((g) => g.name.startsWith('bulk'))).toMatchObject({ value: '1.25×', pass: true });
  });

  it('shows what each server did while warming up, and the bulk ratio from a cold start for reference', () => {
    const part = (readingsPerS: number) => ({ readings: 1_000_000, seconds: 1_000_000 / readingsPerS, readingsPerS, cpuSPerMillion: 2.5 });
    const warmed = (id: string, parts: number[]) => (s: PeersResults['systems'][number]) =>
      s.system === id ? { ...s, bulk: { ...s.bulk!, warmup: parts.map(part) } } : s;
    const systems = fixture.systems.map(warmed('tally', [400_000, 600_000])).map(warmed('influxdb', [500_000, 500_000]));
    const r = { ...fixture, systems };
    expect(renderTables(r)).toContain('| Tally | bulk | 400,000 (2.50) → 600,000 (2.50) | 625,000 |');
    const cold = goals(r).find((g) => g.name.includes('cold start'));
    expect(cold).toMatchObject({ value: '0.80×', pass: null });
    // The timed figures still decide the goal.
    expect(goals(r).find((g) => g.name.startsWith('bulk'))).toMatchObject({ value: '1.25×', pass: true });
    // Files written before warm-up figures existed render without the table or the row.
    expect(renderTables(fixture)).not.toContain('warm-up from the start');
    expect(goals(fixture).some((g) => g.name.includes('cold start'))).toBe(false);
  });

  it('renders the section with machine, versions and date', () => {
    const section = renderSection(fixture);
    expect(section).toContain('Measured 2025-01-02');
    expect(section).toContain('Test CPU, 2 cores');
    expect(section).toContain('InfluxDB 1.6.7~rc0-1+b13');
    expect(section).toContain('![readings/s per system](bench/results/peers-readings.svg)');
    expect(section).toContain('bulk in parts of up to 1,000 steps'); // files written before the part size was saved
    const parts500 = renderSection({ ...fixture, options: { ...fixture.options, bulkWarmupPartSteps: 500 } });
    expect(parts500).toContain('bulk in parts of up to 500 steps');
  });

  it('renders both charts as SVG', async () => {
    const charts = await renderCharts(fixture);
    for (const svg of [charts.readings, charts.p99]) {
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('</svg>');
      for (const label of ['Tally', 'InfluxDB', 'VictoriaMetrics']) expect(svg).toContain(label);
    }
    expect(charts.readings).toContain('625,000');
    expect(charts.p99).toContain('31.2');
  });
});
