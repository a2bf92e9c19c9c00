#!/usr/bin/env node
// The side-by-side merge benchmark: cosmicsync against Yjs, Automerge, Loro and
// json-joy on the same generated operation files, in one run, interleaved
// (every contender once per repetition, in turn), medians over repetitions.
//
//   node bench/compare/harness.mjs [--build DIR] [--reps N] [--smoke] [--json]
//                                  [--no-docs] [--only a,b] [--timeout SECONDS]
//
// --smoke: tiny workloads, one repetition, no docs written; exits non-zero when
// a contender that ran fails, or does not converge (add-wins included).
// Writes docs/benchmarks.md and docs/benchmarks.png (unless --smoke/--no-docs).
import { spawnSync, execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};

const SMOKE = flag('--smoke');
const JSON_OUT = flag('--json');
const BUILD = resolve(ROOT, opt('--build', process.env.BUILD || 'build'));
const REPS = Number(opt('--reps', process.env.REPS || (SMOKE ? 1 : 3)));
const TIMEOUT_S = Number(opt('--timeout', process.env.CS_BENCH_TIMEOUT || 120));
// A contender whose run of a workload takes longer than this is not repeated:
// its figure is that one run (the table shows reps = 1). Keeps the whole
// comparison within about 15 minutes on a small machine.
const SLOW_S = Number(opt('--slow', process.env.CS_BENCH_SLOW || 45));
const WRITE_DOCS = !SMOKE && !flag('--no-docs');
const ONLY = opt('--only', null)?.split(',');
const SEED = Number(opt('--seed', 42));

const SIZES = SMOKE
  ? { '--w1-docs': 50, '--w1-edits': 200, '--w2-n': 100, '--w3-adds': 500, '--w3-pairs': 200 }
  : { '--w1-docs': 10000, '--w1-edits': 50000, '--w2-n': 6000, '--w3-adds': 100000, '--w3-pairs': 50000 };

const log = (...m) => process.stderr.write(m.join(' ') + '\n');
const WORK = join(BUILD, 'bench-compare');
const SCRATCH = join(WORK, 'scratch');
mkdirSync(SCRATCH, { recursive: true });

// ---------------------------------------------------------------------------
// Programs

function bin(name) {
  return join(BUILD, 'bench', name);
}

// Builds an on-demand target; a target that does not build is unavailable
// (reported, not fatal): the layers it needs may still be in progress.
function buildTarget(target) {
  const r = spawnSync('cmake', ['--build', BUILD, '--target', target], { encoding: 'utf8' });
  if (r.status === 0 && existsSync(bin(target))) return null;
  const out = (r.stdout || '') + (r.stderr || '');
  const undef = new Set([...out.matchAll(/undefined reference to `([^']+)'/g)].map((m) => m[1]));
  if (undef.size) return `does not link yet: ${undef.size} missing symbols (e.g. ${[...undef].slice(0, 3).join(', ')})`;
  const err = out.split('\n').find((l) => /error/i.test(l));
  return `does not build: ${err ? err.trim().slice(0, 160) : 'cmake --build failed'}`;
}

for (const t of ['gen_workload', 'cs_limits']) {
  const why = buildTarget(t);
  if (why) {
    log(`bench-compare: ${t} ${why}`);
    process.exit(1);
  }
}

const unavailable = {};
let memBin = null;
{
  const why = buildTarget('cs_mem');
  if (!why) memBin = 'cs_mem';
  else {
    const why2 = buildTarget('cs_mem_nocodec');
    if (!why2) {
      memBin = 'cs_mem_nocodec';
      log(`bench-compare: cs_mem without codec byte counts (${why})`);
    } else unavailable['cosmicsync-mem'] = why2;
  }
}
{
  const why = buildTarget('cs_store');
  if (why) {
    unavailable['cosmicsync-store-sync'] = why;
    unavailable['cosmicsync-store-fast'] = why;
  }
}

// ---------------------------------------------------------------------------
// Workloads: generated once, replayed by everyone.

const WL_DIR = join(WORK, SMOKE ? 'ops-smoke' : 'ops');
mkdirSync(WL_DIR, { recursive: true });
{
  const a = [WL_DIR, '--seed', String(SEED)];
  for (const [k, v] of Object.entries(SIZES)) a.push(k, String(v));
  const r = spawnSync(bin('gen_workload'), a, { encoding: 'utf8' });
  if (r.status !== 0) {
    log('bench-compare: gen_workload failed', r.stderr);
    process.exit(1);
  }
}
const WORKLOADS = ['w1', 'w2', 'w3'];
const opfile = (wl) => join(WL_DIR, `${wl}.ops`);

const PEERS = join(ROOT, 'bench', 'peers');
const NODE = process.execPath;
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

// A contender: name, workloads it runs, and the command for one workload.
const CONTENDERS = [
  // The in-memory join runs first: when it cannot finish a workload in time, the
  // stores (which do the same joins and more) are not started on it.
  { name: 'cosmicsync-mem', wls: WORKLOADS, cmd: (wl) => [bin(memBin || 'cs_mem'), wl, opfile(wl)] },
  { name: 'cosmicsync-store-sync', wls: ['w1', 'w3'], cmd: (wl) => [bin('cs_store'), 'sync', wl, opfile(wl), SCRATCH] },
  { name: 'cosmicsync-store-fast', wls: ['w1', 'w3'], cmd: (wl) => [bin('cs_store'), 'fast', wl, opfile(wl), SCRATCH] },
  ...['yjs', 'automerge', 'loro', 'json-joy'].map((e) => ({
    name: e,
    wls: WORKLOADS,
    cmd: (wl) => [NODE, join(PEERS, 'run.mjs'), e, wl, opfile(wl)],
  })),
  // The physical limits: one process, three rows (msgpack-c, RocksDB WAL, RocksDB WAL+fsync).
  { name: 'limits', wls: ['w1'], cmd: () => [bin('cs_limits'), opfile('w1'), SCRATCH] },
].filter((c) => !ONLY || ONLY.includes(c.name));

if (!existsSync(join(PEERS, 'node_modules'))) {
  for (const e of ['yjs', 'automerge', 'loro', 'json-joy'])
    unavailable[e] = 'bench/peers/node_modules missing (run npm ci in bench/peers)';
}

function runOne(c, wl) {
  let argv = c.cmd(wl);
  const timeFile = join(WORK, 'time.txt');
  if (TIME) argv = [TIME, '-f', '%M', '-o', timeFile, ...argv];
  const r = spawnSync(argv[0], argv.slice(1), {
    encoding: 'utf8',
    timeout: TIMEOUT_S * 1000,
    maxBuffer: 64 << 20,
    cwd: ROOT,
  });
  if (r.error && r.error.code === 'ETIMEDOUT') return [{ contender: c.name, workload: wl, ok: false, error: `timeout after ${TIMEOUT_S}s` }];
  const rows = [];
  for (const line of (r.stdout || '').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      rows.push(JSON.parse(line));
    } catch {
      /* not ours */
    }
  }
  if (!rows.length || r.status !== 0) {
    const err = (r.stderr || '').trim().split('\n').slice(-3).join(' | ').slice(0, 300);
    if (!rows.length) return [{ contender: c.name, workload: wl, ok: false, error: `exit ${r.status}: ${err}` }];
    for (const row of rows) if (row.ok !== false) Object.assign(row, { ok: false, error: `exit ${r.status}: ${err}` });
  }
  let peak = null;
  if (TIME && existsSync(timeFile)) {
    const m = /(\d+)\s*$/.exec(readFileSync(timeFile, 'utf8').trim());
    if (m) peak = Number(m[1]);
    rmSync(timeFile, { force: true });
  }
  for (const row of rows) {
    row.workload = row.workload || wl;
    // /usr/bin/time's maximum RSS covers the whole process (Node included);
    // rows of a multi-row process share it.
    row.peak_rss_kib = peak ?? row.rss_kib ?? null;
  }
  return rows;
}

// ---------------------------------------------------------------------------
// Interleaved repetitions

const runs = {}; // key "wl|contender" -> [row]
const once = new Set(); // "wl|contender" not to repeat (slow), or not to run at all
const skipped = {}; // "wl|contender" -> reason
const loadBefore = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const started = Date.now();
for (let rep = 0; rep < REPS; rep++) {
  for (const wl of WORKLOADS) {
    for (const c of CONTENDERS) {
      if (!c.wls.includes(wl)) continue;
      if (unavailable[c.name]) continue;
      const key = `${wl}|${c.name}`;
      if (skipped[key] || (rep > 0 && once.has(key))) continue;
      const t = Date.now();
      const rows = runOne(c, wl);
      const took = (Date.now() - t) / 1000;
      for (const row of rows) (runs[`${wl}|${row.contender}`] ||= []).push(row);
      const bad = rows.find((x) => x.ok === false);
      if (took > SLOW_S) once.add(key);
      if (bad && /timeout/.test(bad.error || '')) {
        once.add(key);
        if (c.name === 'cosmicsync-mem')
          for (const n of ['cosmicsync-store-sync', 'cosmicsync-store-fast'])
            skipped[`${wl}|${n}`] = `not run: the in-memory join alone did not finish ${wl.toUpperCase()} within ${TIMEOUT_S}s`;
      }
      log(`rep ${rep + 1}/${REPS} ${wl} ${c.name}: ${took.toFixed(1)}s${bad ? ' FAILED: ' + bad.error : ''}${took > SLOW_S && rep === 0 ? ' (slow: not repeated)' : ''}`);
    }
  }
}
const loadAfter = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const elapsedS = (Date.now() - started) / 1000;

// ---------------------------------------------------------------------------
// Medians

const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length & 1 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const NUMERIC = ['merge_ms', 'merge_ops_s', 'local_ms', 'local_ops_s', 'encode_ms', 'bytes_per_edit', 'delta_bytes',
  'state_bytes', 'load_ms', 'total_ms', 'peak_rss_kib', 'edits'];

const results = [];
for (const [key, rows] of Object.entries(runs)) {
  const [wl, contender] = key.split('|');
  const okRows = rows.filter((r) => r.ok !== false);
  const res = { workload: wl, contender, reps: rows.length, ok: okRows.length > 0 };
  if (!okRows.length) res.error = rows[0].error;
  for (const f of NUMERIC) res[f] = median(okRows.map((r) => r[f]));
  res.converged = okRows.length ? okRows.every((r) => r.converged === true) : null;
  if (okRows.some((r) => 'add_wins' in r)) res.add_wins = okRows.every((r) => r.add_wins === true);
  for (const f of ['version', 'set_model', 'note', 'limit', 'codec', 'node', 'batch']) {
    const v = okRows.find((r) => r[f] !== undefined);
    if (v) res[f] = v[f];
  }
  if (res.ok && okRows.length < rows.length) res.error = `${rows.length - okRows.length} of ${rows.length} runs failed`;
  results.push(res);
}
for (const [key, why] of Object.entries(skipped)) {
  const [wl, contender] = key.split('|');
  if (!runs[key]) results.push({ workload: wl, contender, ok: false, unavailable: true, error: why });
}
for (const [name, why] of Object.entries(unavailable)) {
  const c = CONTENDERS.find((x) => x.name === name);
  for (const wl of c ? c.wls : []) results.push({ workload: wl, contender: name, ok: false, unavailable: true, error: why });
}
const ORDER = ['cosmicsync-store-sync', 'cosmicsync-store-fast', 'cosmicsync-mem', 'yjs', 'automerge', 'loro', 'json-joy',
  'rocksdb-writebatch-sync', 'rocksdb-writebatch', 'msgpack-c'];
results.sort((a, b) => a.workload.localeCompare(b.workload) || ORDER.indexOf(a.contender) - ORDER.indexOf(b.contender));

// The cosmicsync row others are compared with: the durable store when it ran,
// else the in-memory join.
function reference(wl) {
  for (const n of ['cosmicsync-store-sync', 'cosmicsync-store-fast', 'cosmicsync-mem']) {
    const r = results.find((x) => x.workload === wl && x.contender === n && x.ok);
    if (r) return r;
  }
  return null;
}
for (const r of results) {
  const ref = reference(r.workload);
  r.ref = ref ? ref.contender : null;
  // Limit rows count documents, not edits: no ratio.
  r.ops_vs_cs = ref && r.ok && !r.limit && r.merge_ops_s && ref.merge_ops_s ? r.merge_ops_s / ref.merge_ops_s : null;
  r.bytes_vs_cs = ref && r.ok && !r.limit && r.bytes_per_edit && ref.bytes_per_edit ? r.bytes_per_edit / ref.bytes_per_edit : null;
}

// ---------------------------------------------------------------------------
// Targets (issue: medians, same run)

const get = (wl, c) => results.find((x) => x.workload === wl && x.contender === c && x.ok) || null;
function target(text, fn) {
  try {
    const v = fn();
    if (v === null || v === undefined) return { text, status: 'not measured', detail: '' };
    return { text, status: v.pass ? 'met' : 'missed', detail: v.detail };
  } catch (e) {
    return { text, status: 'not measured', detail: String(e.message || e) };
  }
}
const durable = (wl) => get(wl, 'cosmicsync-store-sync');
const fmt = (x, d = 1) => (x === null || x === undefined ? 'n/a' : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: 0 }));
const TARGETS = [
  target('W1 durable merge ops/s >= 3x json-joy in-memory merge ops/s', () => {
    const c = durable('w1'), j = get('w1', 'json-joy');
    if (!c || !j) return null;
    const x = c.merge_ops_s / j.merge_ops_s;
    return { pass: x >= 3, detail: `${fmt(c.merge_ops_s, 0)} vs ${fmt(j.merge_ops_s, 0)} ops/s = ${x.toFixed(2)}x` };
  }),
  // The exchange merges on both stores, each rewriting about every document, so
  // the raw equivalent is two fsynced batches of the same documents.
  target('W1 durable merge time <= 1.5x raw RocksDB WriteBatch (fsync) of the same documents, both sides (2 batches)', () => {
    const c = durable('w1'), r = get('w1', 'rocksdb-writebatch-sync');
    if (!c || !r) return null;
    const x = c.merge_ms / (2 * r.merge_ms);
    return { pass: x <= 1.5, detail: `${fmt(c.merge_ms, 2)} ms vs 2 x ${fmt(r.merge_ms, 2)} ms = ${x.toFixed(2)}x` };
  }),
  target('W1 <= 12 bytes/edit', () => {
    const c = durable('w1') || get('w1', 'cosmicsync-mem');
    if (!c || c.bytes_per_edit === null) return null;
    return { pass: c.bytes_per_edit <= 12, detail: `${c.contender}: ${fmt(c.bytes_per_edit, 2)} B/edit` };
  }),
  target('W2 merge <= 3 ms and full state <= 24 KB', () => {
    const c = get('w2', 'cosmicsync-mem');
    if (!c) return null;
    const okBytes = c.state_bytes !== null && c.state_bytes <= 24 * 1024;
    return { pass: c.merge_ms <= 3 && okBytes, detail: `${fmt(c.merge_ms, 2)} ms, ${c.state_bytes === null ? 'n/a' : fmt(c.state_bytes, 0)} B` };
  }),
  target('W3 merge >= 2M ops/s and <= 3 bytes/op', () => {
    const c = durable('w3') || get('w3', 'cosmicsync-mem');
    if (!c) return null;
    const okBytes = c.bytes_per_edit !== null && c.bytes_per_edit <= 3;
    return { pass: c.merge_ops_s >= 2e6 && okBytes, detail: `${c.contender}: ${fmt(c.merge_ops_s, 0)} ops/s, ${fmt(c.bytes_per_edit, 2)} B/op` };
  }),
  target('W3 add-wins holds for every contender', () => {
    const rows = results.filter((r) => r.workload === 'w3' && r.ok && 'add_wins' in r);
    if (!rows.length) return null;
    const bad = rows.filter((r) => !r.add_wins).map((r) => r.contender);
    return { pass: bad.length === 0, detail: bad.length ? `fails: ${bad.join(', ')}` : `${rows.length} contenders` };
  }),
  target('W1 peak RSS <= 80 MiB', () => {
    const c = durable('w1');
    if (!c || !c.peak_rss_kib) return null;
    return { pass: c.peak_rss_kib <= 80 * 1024, detail: `${fmt(c.peak_rss_kib / 1024, 1)} MiB` };
  }),
];

// ---------------------------------------------------------------------------
// Machine and versions

function sh(cmd) {
  try {
    return execSync(cmd, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}
const cpuModel = (() => {
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? m[1].trim() : cpus()[0]?.model;
  } catch {
    return cpus()[0]?.model || 'unknown';
  }
})();
const machine = {
  cpu: cpuModel,
  cores: cpus().length,
  mem_gib: Math.round(Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] || 0) / 1048576),
  os: sh('. /etc/os-release && echo "$PRETTY_NAME"') || process.platform,
  kernel: sh('uname -r'),
  node: process.version,
  cc: sh('cc --version | head -1'),
  cosmicsync: sh(`git -C "${ROOT}" describe --always --dirty`) || 'unknown',
  date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  loadavg: `${loadBefore} at start, ${loadAfter} at end`,
};
const versions = {};
for (const r of results) if (r.version) versions[r.contender] = r.version;

// ---------------------------------------------------------------------------
// Output

const COLS = [
  ['workload', (r) => r.workload.toUpperCase()],

  ['contender', (r) => r.contender],
  ['merge ms', (r) => (r.ok ? fmt(r.merge_ms, 2) : '')],
  ['merge ops/s', (r) => (r.ok ? fmt(r.merge_ops_s, 0) : '')],
  ['local ops/s', (r) => (r.ok ? fmt(r.local_ops_s, 0) : '')],
  ['B/edit', (r) => (r.ok ? fmt(r.bytes_per_edit, 2) : '')],
  ['state B', (r) => (r.ok ? fmt(r.state_bytes, 0) : '')],
  ['load ms', (r) => (r.ok ? fmt(r.load_ms, 2) : '')],
  ['peak RSS MiB', (r) => (r.ok && r.peak_rss_kib ? fmt(r.peak_rss_kib / 1024, 1) : '')],
  ['reps', (r) => (r.ok ? String(r.reps) : '')],
  ['converged', (r) => (!r.ok ? (r.unavailable ? (/^not run/.test(r.error || '') ? 'not run' : 'unavailable') : /timeout/.test(r.error || '') ? 'TIMEOUT' : 'FAILED') : r.converged ? ('add_wins' in r ? (r.add_wins ? 'yes, add-wins' : 'yes, NOT add-wins') : 'yes') : 'NO')],
  ['ops/s vs cs', (r) => (r.ops_vs_cs ? r.ops_vs_cs.toFixed(2) + 'x' : '')],
  ['B/edit vs cs', (r) => (r.bytes_vs_cs ? r.bytes_vs_cs.toFixed(2) + 'x' : '')],
];

function textTable() {
  const rows = results.map((r) => COLS.map(([, f]) => String(f(r))));
  const head = COLS.map(([h]) => h);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

function mdTable() {
  const head = '| ' + COLS.map(([h]) => h).join(' | ') + ' |';
  const sep = '|' + COLS.map((_, i) => (i < 2 ? ' --- |' : ' ---: |')).join('');
  const rows = results.map((r) => '| ' + COLS.map(([, f]) => String(f(r)) || ' ').join(' | ') + ' |');
  return [head, sep, ...rows].join('\n');
}

const report = { machine, versions, reps: REPS, smoke: SMOKE, sizes: SIZES, seed: SEED, elapsed_s: elapsedS, targets: TARGETS, results, raw: runs };

if (JSON_OUT) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
else {
  process.stdout.write(`\n${textTable()}\n\n`);
  process.stdout.write(`medians of ${REPS} interleaved repetition(s); ratios: contender / ${[...new Set(results.map((r) => r.ref).filter(Boolean))].join(', ') || 'n/a (no cosmicsync row ran)'}\n`);
  for (const t of TARGETS) process.stdout.write(`target ${t.status.padEnd(12)} ${t.text}${t.detail ? ' — ' + t.detail : ''}\n`);
  for (const [n, why] of Object.entries(unavailable)) process.stdout.write(`unavailable: ${n}: ${why}\n`);
  for (const [n, why] of Object.entries(skipped)) process.stdout.write(`skipped: ${n}: ${why}\n`);
  process.stdout.write(`load average ${machine.loadavg}\n`);
  process.stdout.write(`elapsed ${elapsedS.toFixed(0)} s\n`);
}

if (WRITE_DOCS) writeDocs();

if (SMOKE) {
  // Smoke: every contender that ran must have succeeded and converged.
  const bad = results.filter((r) => !r.unavailable && (!r.ok || r.converged === false || r.add_wins === false));
  if (bad.length) {
    log('bench-compare smoke: failures: ' + bad.map((r) => `${r.workload} ${r.contender}: ${r.error || 'not converged'}`).join('; '));
    process.exit(1);
  }
}

// ---------------------------------------------------------------------------
// docs/benchmarks.md and docs/benchmarks.png

function plot(pngPath) {
  if (!sh('command -v gnuplot')) return 'gnuplot not installed: no plot';
  const dat = join(WORK, 'plot.dat');
  const rows = results.filter((r) => r.ok && r.merge_ops_s);
  const names = [...new Set(rows.map((r) => r.contender))];
  const cell = (wl, n, f) => {
    const r = rows.find((x) => x.workload === wl && x.contender === n);
    return r && r[f] ? r[f] : '-';
  };
  let d = '# contender ' + WORKLOADS.map((w) => `${w}_ops ${w}_bytes`).join(' ') + '\n';
  for (const n of names) d += `"${n}" ` + WORKLOADS.map((w) => `${cell(w, n, 'merge_ops_s')} ${cell(w, n, 'bytes_per_edit')}`).join(' ') + '\n';
  writeFileSync(dat, d);
  const gp = `
set terminal pngcairo size 1400,900 noenhanced font ",10"
set output "${pngPath}"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right
set grid ytics
set xtics rotate by -30
set multiplot layout 2,1 title "cosmicsync bench-compare ${machine.date} (${machine.cpu}, ${machine.cores} cores), medians of ${REPS}"
set title "merge throughput (edits merged per second, log scale, higher is better)"
set logscale y
set ylabel "ops/s"
plot "${dat}" using 2:xtic(1) title "W1 profile sync", "" using 4 title "W2 B3.1", "" using 6 title "W3 OR-set"
set title "delta bytes per edit (log scale, lower is better)"
set ylabel "bytes/edit"
plot "${dat}" using 3:xtic(1) title "W1 profile sync", "" using 5 title "W2 B3.1", "" using 7 title "W3 OR-set"
unset multiplot
`;
  const gpFile = join(WORK, 'plot.gp');
  writeFileSync(gpFile, gp);
  const r = spawnSync('gnuplot', [gpFile], { encoding: 'utf8' });
  return r.status === 0 ? null : `gnuplot failed: ${(r.stderr || '').slice(0, 200)}`;
}

function writeDocs() {
  const docs = join(ROOT, 'docs');
  mkdirSync(docs, { recursive: true });
  const plotErr = plot(join(docs, 'benchmarks.png'));
  if (plotErr) log('bench-compare: ' + plotErr);
  const setModels = {};
  for (const r of results) if (r.set_model) setModels[r.contender] = r.set_model;
  const tpl = readFileSync(join(ROOT, 'bench', 'compare', 'benchmarks.md.in'), 'utf8');
  const unavail = Object.entries(unavailable).map(([n, why]) => `- **${n}**: unavailable in this run — ${why}.`).join('\n');
  const skippedTxt = Object.entries(skipped).map(([k, why]) => `- **${k.replace('|', ' ')}**: ${why}.`).join('\n');
  const failed = results.filter((r) => !r.ok && !r.unavailable).map((r) => `- ${r.workload.toUpperCase()} ${r.contender}: ${r.error}`).join('\n');
  const fill = {
    DATE: machine.date,
    MACHINE: `${machine.cpu}, ${machine.cores} cores, ${machine.mem_gib} GiB RAM; ${machine.os}, Linux ${machine.kernel}; ${machine.cc}; load average ${machine.loadavg}`,
    NODE: machine.node,
    COSMICSYNC: machine.cosmicsync,
    VERSIONS: Object.entries(versions).map(([k, v]) => `| ${k} | ${v} |`).join('\n'),
    REPS: String(REPS),
    ELAPSED: elapsedS.toFixed(0),
    SIZES: Object.entries(SIZES).map(([k, v]) => `\`${k} ${v}\``).join(' '),
    SEED: String(SEED),
    TABLE: mdTable(),
    TARGETS: TARGETS.map((t) => `| ${t.text} | **${t.status}** | ${t.detail || ''} |`).join('\n'),
    SET_MODELS: Object.entries(setModels).map(([k, v]) => `| ${k} | ${v} |`).join('\n'),
    UNAVAILABLE: [unavail, skippedTxt, failed].filter(Boolean).join('\n') || '- none: every contender ran.',
    TIMEOUT: String(TIMEOUT_S),
    SLOW: String(SLOW_S),
    PLOT: plotErr ? `(no plot in this run: ${plotErr})` : '![ops/s and bytes/edit per contender](benchmarks.png)',
  };
  const md = tpl.replace(/@([A-Z_]+)@/g, (m, k) => (k in fill ? fill[k] : m));
  writeFileSync(join(docs, 'benchmarks.md'), md);
  writeFileSync(join(WORK, 'last-run.json'), JSON.stringify(report, null, 2));
  log(`bench-compare: wrote docs/benchmarks.md${plotErr ? '' : ' and docs/benchmarks.png'}`);
}
