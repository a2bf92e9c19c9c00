// Replays one comparison workload with one CRDT engine and prints one JSON line
// of figures (the schema is in docs/benchmarks.md).
//
//   node run.mjs <yjs|automerge|loro|json-joy> <w1|w2|w3> <opfile>
//
// Sets are modelled the way each engine gives add-wins (see SET_MODEL below and
// docs/benchmarks.md): Yjs and Automerge maps-as-sets (a delete removes only the
// entries it observed, so a concurrent re-add survives); Loro and json-joy maps
// are last-writer-wins per key, so there each add writes a fresh key
// "<element>\x01<replica>.<seq>" and deletes the keys it observed (dots as keys,
// the ORSWOT construction); an element is present while one of its keys is.
import { readFileSync, readFileSync as rf } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const [engineName, workload, opfile] = process.argv.slice(2);
if (!engineName || !workload || !opfile) {
  process.stderr.write('usage: node run.mjs <engine> <w1|w2|w3> <opfile>\n');
  process.exit(2);
}

const SET_MODEL = {
  yjs: 'Y.Map per set, element -> true; delete removes only the observed item (add-wins)',
  automerge: 'map per set, element -> a fresh int per add (a re-add is a real write); delete removes only observed ops (add-wins)',
  loro: 'LoroMap per set with one key per add (element + dot), add deletes observed keys (add-wins)',
  'json-joy': 'obj per set with one key per add (element + dot), add deletes observed keys (add-wins)',
};

function pkgVersion(name) {
  const dir = new URL(`./node_modules/${name}/package.json`, import.meta.url);
  return JSON.parse(rf(dir, 'utf8')).version;
}

// ---------------------------------------------------------------------------
// Operation file

function parseOps(path) {
  const lines = readFileSync(path, 'utf8').split('\n');
  const phases = {};
  let cur = null;
  for (const line of lines) {
    if (!line || line[0] === '#') continue;
    const t = line.split('\t');
    if (t[0] === 'P') {
      cur = phases[t[1]] = [];
      continue;
    }
    const op = { k: t[0], r: t[1], d: t[2], f: t[3] };
    if (op.k === 'S') op.v = t[4] === 'i' ? Number(t[5]) : t[5];
    else op.v = t[4];
    cur.push(op);
  }
  return phases;
}

// Groups consecutive ops on the same (replica, document): one action each in
// the initial phase (creating a profile is one user action).
function groupByDoc(ops) {
  const groups = [];
  let g = null;
  for (const op of ops) {
    if (!g || g[0].d !== op.d || g[0].r !== op.r) groups.push((g = []));
    g.push(op);
  }
  return groups;
}

// Canonical JSON: sorted keys, so equal states print equal.
function canon(x) {
  if (Array.isArray(x)) return '[' + x.map(canon).join(',') + ']';
  if (x && typeof x === 'object') {
    return '{' + Object.keys(x).sort().map((k) => JSON.stringify(k) + ':' + canon(x[k])).join(',') + '}';
  }
  return JSON.stringify(x);
}

const SET_FIELDS = new Set(['interests', 'members']);

// View normaliser: set fields become sorted element arrays.
function normalise(docs, elemOfKey) {
  const out = {};
  for (const [id, doc] of Object.entries(docs || {})) {
    const o = {};
    for (const [f, v] of Object.entries(doc)) {
      if (SET_FIELDS.has(f)) {
        const s = new Set();
        for (const [k, present] of Object.entries(v || {})) if (present) s.add(elemOfKey(k));
        o[f] = [...s].sort();
      } else o[f] = typeof v === 'object' && v !== null ? String(v) : v;
    }
    out[id] = o;
  }
  return out;
}

const plainKey = (k) => k;
const dotKey = (k) => k.slice(0, k.indexOf('\u0001'));

function vmHWM() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------
// Engines. Each one: replica(id), apply(rep, ops) (one transaction), state(rep),
// load(bytes, id), mark(rep), delta(rep, mark), merge(rep, delta), view(rep).
// A delta is an array of Uint8Array.

async function yjsEngine() {
  const Y = await import('yjs');
  return {
    version: pkgVersion('yjs'),
    replica(id) {
      const doc = new Y.Doc();
      doc.clientID = id;
      return doc;
    },
    apply(doc, ops) {
      const root = doc.getMap('docs');
      doc.transact(() => {
        for (const op of ops) {
          let m = root.get(op.d);
          if (!m) root.set(op.d, (m = new Y.Map()));
          if (op.k === 'S') m.set(op.f, op.v);
          else {
            let s = m.get(op.f);
            if (!s) m.set(op.f, (s = new Y.Map()));
            if (op.k === 'A') s.set(op.v, true);
            else s.delete(op.v);
          }
        }
      });
    },
    state: (doc) => Y.encodeStateAsUpdate(doc),
    load(bytes, id) {
      const doc = this.replica(id);
      Y.applyUpdate(doc, bytes);
      return doc;
    },
    mark: (doc) => Y.encodeStateVector(doc),
    delta: (doc, sv) => [Y.encodeStateAsUpdate(doc, sv)],
    merge(doc, delta) {
      for (const u of delta) Y.applyUpdate(doc, u);
    },
    view: (doc) => normalise(doc.getMap('docs').toJSON(), plainKey),
    // W2: one client's update, and the merge of all of them into one document.
    w2client(id, v) {
      const d = new Y.Doc();
      d.clientID = id;
      d.getMap('map').set('v', v);
      return Y.encodeStateAsUpdate(d);
    },
    w2merge(updates) {
      const d = new Y.Doc();
      for (const u of updates) Y.applyUpdate(d, u);
      return d;
    },
    w2view: (d) => canon(d.getMap('map').toJSON()),
    w2state: (d) => Y.encodeStateAsUpdate(d),
    w2load(bytes) {
      const d = new Y.Doc();
      Y.applyUpdate(d, bytes);
      return d;
    },
  };
}

async function automergeEngine() {
  const A = await import('@automerge/automerge');
  const actor = (id) => id.toString(16).padStart(32, '0');
  // The document API (A.change with proxies) rebuilds the immutable JS view on
  // every change, which costs O(document) per edit here (45 ms per change with
  // 10,000 profiles). The same Automerge document is driven through its own
  // low-level handle (A.getBackend) instead: put / delete / commit, one commit
  // per edit, no JS view until the final check.
  const wrap = (h, id) => ({ h, id, seq: 0, objs: new Map() });
  const obj = (rep, parent, key, cacheKey) => {
    let o = rep.objs.get(cacheKey);
    if (o) return o;
    const cur = rep.h.getWithType(parent, key);
    o = cur && cur[0] === 'map' ? cur[1] : rep.h.putObject(parent, key, {});
    rep.objs.set(cacheKey, o);
    return o;
  };
  return {
    version: pkgVersion('@automerge/automerge'),
    replica: (id) => wrap(A.getBackend(A.init({ actor: actor(id) })), id),
    apply(rep, ops) {
      const h = rep.h;
      const docs = obj(rep, '_root', 'docs', '');
      for (const op of ops) {
        const m = obj(rep, docs, op.d, op.d);
        if (op.k === 'S') h.put(m, op.f, op.v, typeof op.v === 'number' ? 'int' : 'str');
        else {
          const so = obj(rep, m, op.f, op.d + '/' + op.f);
          // A put of the value a key already holds could be dropped as a no-op,
          // and then a concurrent delete would win: every add writes a value of
          // its own, so a re-add is a real write superseding only what it saw.
          if (op.k === 'A') h.put(so, op.v, rep.id * 1e9 + ++rep.seq, 'int');
          else h.delete(so, op.v);
        }
      }
      h.commit();
    },
    state: (rep) => rep.h.save(),
    load: (bytes, id) => wrap(A.getBackend(A.load(bytes, { actor: actor(id) })), id),
    mark(rep) {
      rep.h.saveIncremental(); // later saveIncremental() = changes made after this point
      return null;
    },
    delta: (rep) => [rep.h.saveIncremental()],
    merge(rep, delta) {
      for (const u of delta) rep.h.loadIncremental(u);
      rep.objs.clear();
    },
    view: (rep) => normalise(rep.h.materialize('/').docs || {}, plainKey),
    w2client(id, v) {
      const h = A.getBackend(A.init({ actor: actor(id) }));
      h.put('_root', 'v', v, 'int');
      h.commit();
      return h.save();
    },
    w2merge(updates) {
      const h = A.getBackend(A.init({ actor: actor(1) }));
      for (const u of updates) h.loadIncremental(u);
      return h;
    },
    w2view: (h) => canon(h.materialize('/')),
    w2state: (h) => h.save(),
    w2load: (bytes) => A.getBackend(A.load(bytes)),
  };
}

// Dots-as-keys add-wins set over a last-writer-wins map. `index` maps element ->
// live keys, built once per set from the map's keys and kept up to date by the
// replica's own edits (only the replica itself edits between syncs here).
function dotSet(keysOf) {
  const index = new Map();
  return {
    observed(setId, mapKeys, elem) {
      let idx = index.get(setId);
      if (!idx) {
        idx = new Map();
        for (const k of mapKeys()) {
          const e = dotKey(k);
          if (!idx.has(e)) idx.set(e, []);
          idx.get(e).push(k);
        }
        index.set(setId, idx);
      }
      return idx;
    },
    reset() {
      index.clear();
    },
  };
}

async function loroEngine() {
  const { LoroDoc, LoroMap } = await import('loro-crdt');
  return {
    version: pkgVersion('loro-crdt'),
    replica(id) {
      const doc = new LoroDoc();
      doc.setPeerId(id);
      return { doc, id, seq: 0, sets: dotSet(), handles: new Map() };
    },
    apply(rep, ops) {
      // Container handlers are cached: each get() makes a wasm-backed JS object
      // with a finaliser, and making one per edit costs more in GC than the edit.
      const root = rep.root || (rep.root = rep.doc.getMap('docs'));
      for (const op of ops) {
        let m = rep.handles.get(op.d);
        if (!m) {
          m = root.get(op.d) || root.setContainer(op.d, new LoroMap());
          rep.handles.set(op.d, m);
        }
        if (op.k === 'S') m.set(op.f, op.v);
        else {
          const hk = op.d + '/' + op.f;
          let s = rep.handles.get(hk);
          if (!s) {
            s = m.get(op.f) || m.setContainer(op.f, new LoroMap());
            rep.handles.set(hk, s);
          }
          const idx = rep.sets.observed(hk, () => s.keys());
          for (const k of idx.get(op.v) || []) s.delete(k);
          if (op.k === 'A') {
            const k = `${op.v}\u0001${rep.id}.${++rep.seq}`;
            s.set(k, true);
            idx.set(op.v, [k]);
          } else idx.delete(op.v);
        }
      }
      rep.doc.commit();
    },
    state: (rep) => rep.doc.export({ mode: 'snapshot' }),
    load(bytes, id) {
      const doc = LoroDoc.fromSnapshot(bytes);
      doc.setPeerId(id);
      return { doc, id, seq: 0, sets: dotSet(), handles: new Map() };
    },
    mark: (rep) => rep.doc.oplogVersion(),
    delta: (rep, vv) => [rep.doc.export({ mode: 'update', from: vv })],
    merge(rep, delta) {
      for (const u of delta) rep.doc.import(u);
      rep.sets.reset();
    },
    view: (rep) => normalise(rep.doc.getMap('docs').toJSON(), dotKey),
    w2client(id, v) {
      const d = new LoroDoc();
      d.setPeerId(id);
      d.getMap('map').set('v', v);
      d.commit();
      return d.export({ mode: 'update' });
    },
    w2merge(updates) {
      const d = new LoroDoc();
      for (const u of updates) d.import(u);
      return d;
    },
    w2view: (d) => canon(d.getMap('map').toJSON()),
    w2state: (d) => d.export({ mode: 'snapshot' }),
    w2load: (bytes) => LoroDoc.fromSnapshot(bytes),
  };
}

async function jsonJoyEngine() {
  const { Model } = require('json-joy/lib/json-crdt');
  const { Patch, s } = require('json-joy/lib/json-crdt-patch');
  const scalar = (v) => (typeof v === 'string' ? s.con(v) : v);
  const sid = (id) => 65536 + id; // session ids below 65536 are reserved
  const wrap = (model, id) => ({ model, id, seq: 0, log: [], sets: dotSet() });
  const flush = (rep) => {
    const p = rep.model.api.flush();
    if (p && p.ops.length) rep.log.push(p.toBinary());
  };
  return {
    version: pkgVersion('json-joy'),
    replica(id) {
      const model = Model.create(undefined, sid(id));
      model.api.set({ docs: {} });
      const rep = wrap(model, id);
      flush(rep);
      return rep;
    },
    apply(rep, ops) {
      const api = rep.model.api;
      for (const op of ops) {
        const docs = api.obj(['docs']);
        if (!docs.has(op.d)) docs.set({ [op.d]: {} });
        const m = api.obj(['docs', op.d]);
        if (op.k === 'S') m.set({ [op.f]: scalar(op.v) });
        else {
          if (!m.has(op.f)) m.set({ [op.f]: {} });
          const so = api.obj(['docs', op.d, op.f]);
          const idx = rep.sets.observed(op.d + '/' + op.f, () => Object.keys(so.view()));
          const old = idx.get(op.v) || [];
          if (old.length) so.del(old);
          if (op.k === 'A') {
            const k = `${op.v}\u0001${rep.id}.${++rep.seq}`;
            so.set({ [k]: true });
            idx.set(op.v, [k]);
          } else idx.delete(op.v);
        }
      }
      flush(rep);
    },
    state: (rep) => rep.model.toBinary(),
    load: (bytes, id) => wrap(Model.load(bytes, sid(id)), id),
    mark(rep) {
      rep.log = [];
      return null;
    },
    delta: (rep) => rep.log.slice(),
    merge(rep, delta) {
      for (const u of delta) rep.model.applyPatch(Patch.fromBinary(u));
      rep.sets.reset();
    },
    view: (rep) => normalise(rep.model.view().docs, dotKey),
    // B3.1 needs a shared map: every client starts from the same base model
    // (its creation patch is shipped once, not counted per client).
    w2base() {
      const m = Model.create(undefined, sid(0));
      m.api.set({});
      m.api.flush();
      return m.toBinary();
    },
    w2client(id, v, base) {
      const m = Model.load(base, sid(id));
      m.api.obj([]).set({ v });
      return m.api.flush().toBinary();
    },
    w2merge(updates, base) {
      const m = Model.load(base, sid(1 << 20));
      for (const u of updates) m.applyPatch(Patch.fromBinary(u));
      return m;
    },
    w2view: (m) => canon(m.view()),
    w2state: (m) => m.toBinary(),
    w2load: (bytes) => Model.fromBinary(bytes),
  };
}

const ENGINES = { yjs: yjsEngine, automerge: automergeEngine, loro: loroEngine, 'json-joy': jsonJoyEngine };

// ---------------------------------------------------------------------------
// Workloads

const now = () => performance.now();
const sum = (arr) => arr.reduce((a, u) => a + u.length, 0);

function runSync(E, phases, wl) {
  const res = {};
  const t0 = now();
  const a = E.replica(1);
  for (const g of groupByDoc(phases.init)) E.apply(a, g);
  let t = now();
  const full = E.state(a);
  res.encode_state_ms = now() - t;
  t = now();
  const b = E.load(full, 2);
  res.load_ms = now() - t;
  res.state_bytes = full.length;
  const ma = E.mark(a);
  const mb = E.mark(b);
  const reps = { A: a, B: b };
  t = now();
  for (const op of phases.edit) E.apply(reps[op.r], [op]);
  res.local_ms = now() - t;
  const edits = phases.edit.length;
  t = now();
  const da = E.delta(a, ma);
  const db = E.delta(b, mb);
  res.encode_ms = now() - t;
  t = now();
  E.merge(b, da);
  E.merge(a, db);
  res.merge_ms = now() - t;
  res.total_ms = now() - t0;
  res.edits = edits;
  res.delta_bytes = sum(da) + sum(db);
  const va = canon(E.view(a));
  const vb = canon(E.view(b));
  res.converged = va === vb;
  if (wl === 'w3') {
    // Add-wins: every element ever added is present after the exchange.
    const want = new Set(phases.init.filter((o) => o.k === 'A').map((o) => o.v));
    const got = new Set((E.view(b)[phases.init[0].d] || {})[phases.init[0].f] || []);
    res.add_wins = got.size === want.size && [...want].every((x) => got.has(x));
  }
  return res;
}

function runW2(E, phases) {
  const res = {};
  const t0 = now();
  const base = E.w2base ? E.w2base() : null;
  const ops = phases.clients;
  let t = now();
  const updates = ops.map((op, i) => E.w2client(10 + i, op.v, base));
  res.local_ms = now() - t;
  res.edits = ops.length;
  res.delta_bytes = sum(updates);
  t = now();
  const d1 = E.w2merge(updates, base);
  res.merge_ms = now() - t;
  res.encode_ms = 0;
  const d2 = E.w2merge(updates.slice().reverse(), base);
  res.converged = E.w2view(d1) === E.w2view(d2);
  t = now();
  const st = E.w2state(d1);
  res.encode_state_ms = now() - t;
  res.state_bytes = st.length;
  t = now();
  const d3 = E.w2load(st);
  res.load_ms = now() - t;
  res.converged = res.converged && E.w2view(d3) === E.w2view(d1);
  res.total_ms = now() - t0;
  return res;
}

const E = await ENGINES[engineName]();
const phases = parseOps(opfile);
const res = workload === 'w2' ? runW2(E, phases) : runSync(E, phases, workload);
const out = {
  contender: engineName,
  version: E.version,
  workload,
  ok: true,
  ...res,
  merge_ops_s: res.edits / (res.merge_ms / 1000),
  local_ops_s: res.edits / (res.local_ms / 1000),
  bytes_per_edit: res.delta_bytes / res.edits,
  rss_kib: vmHWM(),
  set_model: SET_MODEL[engineName],
  node: process.version,
};
process.stdout.write(JSON.stringify(out) + '\n');
