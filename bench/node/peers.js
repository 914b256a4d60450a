#!/usr/bin/env node
// bench/node/peers.js: the Node peers of bench/prims (redlock, single instance; the Mutex and
// Semaphore of redis-semaphore), measured the way rl_bench measures libredislock.
//
//   node peers.js contend --impl redlock|mutex|semaphore --url redis://H:P
//                         --procs N --hold-ms H --duration-ms D [--limit L] [--name K]
//   node peers.js crash   --impl redlock|mutex|semaphore --url redis://H:P
//                         --count K --expire-ms E [--limit L] [--name K]
//
// Prints one JSON object, with rl_bench's keys:
//   contend: counts (acquisitions per process within D, from a common start once every
//            process is connected), total, worst_wait_ms (the longest acquire call) and
//            wait_p50/p99/p999_ms, handoff (0.1 us units: an acquire's return minus the start of the
//            latest release call made by another process, when that release started after
//            this acquire call did; the same definition as rl_bench contend)
//   crash:   late_us: a holder takes its lock/permit with expiry E (for the semaphore, the
//            other L - 1 permits are held here, auto-refreshed, also with E) and is kill -9'd;
//            a waiter here acquires (expiry E); its return minus (the holder's return + E)
//
// Times are process.hrtime (CLOCK_MONOTONIC, as rl_bench's). Settings: every library's
// defaults except those needed to wait rather than fail (acquireTimeout / retryCount), no
// automatic refresh (the holds are short; the crashed holder must not be refreshed), and
// redlock's retryDelay 10 ms, jitter 5 (its default 200 +- 100 ms would dominate every
// figure; 10 ms is redis-semaphore's default retryInterval).
'use strict';

const { fork } = require('child_process');
const Redis = require('ioredis');
const Redlock = require('redlock');
const { Mutex, Semaphore } = require('redis-semaphore');

const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parseArgs(argv) {
  const o = { impl: '', url: '', procs: 2, holdMs: 0, durationMs: 2000, limit: 1, count: 5,
              expireMs: 300, name: '' };
  const map = { '--impl': 'impl', '--url': 'url', '--procs': 'procs', '--hold-ms': 'holdMs',
                '--duration-ms': 'durationMs', '--limit': 'limit', '--count': 'count',
                '--expire-ms': 'expireMs', '--name': 'name', '--me': 'me' };
  for (let i = 0; i < argv.length; i++) {
    const k = map[argv[i]];
    if (!k || i + 1 >= argv.length) throw new Error(`unknown or incomplete option ${argv[i]}`);
    const v = argv[++i];
    o[k] = ['impl', 'url', 'name'].includes(k) ? v : Number(v);
    if (typeof o[k] === 'number' && !Number.isFinite(o[k])) throw new Error(`bad number for ${argv[i - 1]}: ${v}`);
  }
  if (!['redlock', 'mutex', 'semaphore'].includes(o.impl)) throw new Error('--impl redlock|mutex|semaphore');
  if (!/^redis:\/\//.test(o.url)) throw new Error('--url redis://host:port');
  if (o.impl !== 'semaphore') o.limit = 1;
  if (!o.name) o.name = `bench:node:${o.impl}`;
  return o;
}

// A handle with acquire() / release() over one connection.
function makeHandle(o, redis, expireMs, refresh = false) {
  if (o.impl === 'redlock') {
    const rl = new Redlock([redis], { retryCount: -1, retryDelay: 10, retryJitter: 5 });
    let lock = null;
    return {
      acquire: async () => { lock = await rl.lock(o.name, expireMs); },
      release: async () => { await lock.unlock(); lock = null; },
    };
  }
  const opts = { lockTimeout: expireMs, acquireTimeout: 600000 };
  if (!refresh) opts.refreshInterval = 0;
  const m = o.impl === 'mutex' ? new Mutex(redis, o.name, opts) : new Semaphore(redis, o.name, o.limit, opts);
  return { acquire: () => m.acquire(), release: () => m.release() };
}

async function child(o) {
  const redis = new Redis(o.url, { enableAutoPipelining: false, lazyConnect: false });
  const h = makeHandle(o, redis, 600000);
  await redis.ping();
  // ready; the parent answers with the common start instant once every child is
  const startUs = await new Promise((resolve) => {
    process.on('message', (m) => resolve(m.startUs));
    process.send({ ready: true });
  });
  const end = startUs + o.durationMs * 1000;
  while (nowUs() < startUs) await sleep(Math.max(0, (startUs - nowUs()) / 1000));
  const acq = []; // [t_call, t_acq] (us)
  const rel = []; // t_release_start (us)
  while (nowUs() < end) {
    const t = nowUs();
    await h.acquire();
    const ta = nowUs();
    acq.push([t, ta]);
    if (o.holdMs) await sleep(o.holdMs);
    rel.push(nowUs());
    await h.release();
  }
  process.send({ me: o.me, acq, rel }, () => { redis.disconnect(); process.exit(0); });
}

async function contend(o) {
  const kids = [];
  const procs = [];
  const results = [];
  let ready = 0;
  let startUs = 0;
  let allReady;
  const readyP = new Promise((r) => { allReady = r; });
  for (let i = 0; i < o.procs; i++) {
    const args = ['child', '--impl', o.impl, '--url', o.url, '--procs', String(o.procs), '--hold-ms',
                  String(o.holdMs), '--duration-ms', String(o.durationMs), '--limit', String(o.limit),
                  '--name', o.name, '--me', String(i)];
    const k = fork(__filename, args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    procs.push(k);
    kids.push(new Promise((resolve, reject) => {
      k.on('message', (m) => {
        if (m.ready) { if (++ready === o.procs) allReady(); } else results.push(m);
      });
      k.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child ${i} exit ${code}`))));
    }));
  }
  const timer = setTimeout(() => { console.error('peers.js: children did not finish'); process.exit(2); },
                           o.durationMs + 60000 + o.procs * 1000);
  await readyP;
  startUs = nowUs() + 200000;
  for (const k of procs) k.send({ startUs });
  await Promise.all(kids);
  clearTimeout(timer);
  const end = startUs + o.durationMs * 1000;
  const counts = new Array(o.procs).fill(0);
  let worst = 0;
  const rels = [];
  for (const r of results) for (const t of r.rel) rels.push([t, r.me]);
  rels.sort((a, b) => a[0] - b[0]);
  const ho = [];
  const waits = [];
  for (const r of results) {
    for (const [t, ta] of r.acq) {
      if (ta >= end) continue;
      counts[r.me]++;
      worst = Math.max(worst, ta - t);
      waits.push(ta - t);
      // the latest release start <= ta
      let lo = 0, hi = rels.length - 1, k = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (rels[mid][0] <= ta) { k = mid; lo = mid + 1; } else hi = mid - 1;
      }
      if (k >= 0 && rels[k][1] !== r.me && rels[k][0] > t) ho.push((ta - rels[k][0]) * 10);
    }
  }
  const total = counts.reduce((a, b) => a + b, 0);
  waits.sort((a, b) => a - b);
  const wq = (q) => (waits.length ? waits[Math.floor(waits.length * q)] / 1000 : 0);
  console.log(JSON.stringify({ impl: o.impl, procs: o.procs, hold_ms: o.holdMs, duration_ms: o.durationMs,
                               limit: o.limit, counts, total, errors: 0, worst_wait_ms: worst / 1000,
                               wait_p50_ms: wq(0.5), wait_p99_ms: wq(0.99), wait_p999_ms: wq(0.999),
                               unit: '0.1us', handoff: ho }));
}

async function crashHolder(o) {
  const redis = new Redis(o.url);
  const h = makeHandle(o, redis, o.expireMs);
  await redis.ping(); // connected first: redis-semaphore stamps a permit with Date.now() at the call
  await h.acquire();
  const t = nowUs();
  process.send({ t });
  await sleep(60000); // kill -9'd long before
}

async function crash(o) {
  const redis = new Redis(o.url);
  const late = [];
  const base = o.name;
  for (let i = 0; i < o.count; i++) {
    o.name = `${base}:${process.pid}:${i}`;
    // redis-semaphore judges a permit's expiry by the acquirer's lockTimeout and sets the
    // whole sorted set's PEXPIRE to it: every holder uses E; the other holders refresh
    const others = [];
    for (let j = 0; j < o.limit - 1; j++) {
      const h = makeHandle(o, redis, o.expireMs, true);
      await h.acquire();
      others.push(h);
    }
    const args = ['holder', '--impl', o.impl, '--url', o.url, '--limit', String(o.limit),
                  '--expire-ms', String(o.expireMs), '--name', o.name];
    const k = fork(__filename, args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const tHolder = await new Promise((resolve, reject) => {
      k.on('message', (m) => resolve(m.t));
      k.on('exit', (code) => reject(new Error(`holder exit ${code}`)));
    });
    const gone = new Promise((r) => k.on('exit', r));
    k.kill('SIGKILL');
    await gone;
    const w = makeHandle(o, redis, o.expireMs);
    await w.acquire();
    const ta = nowUs();
    late.push(ta - (tHolder + o.expireMs * 1000));
    await w.release();
    for (const h of others) await h.release();
  }
  redis.disconnect();
  console.log(JSON.stringify({ impl: o.impl, expire_ms: o.expireMs, limit: o.limit, late_us: late }));
}

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  const o = parseArgs(rest);
  if (cmd === 'contend') return contend(o);
  if (cmd === 'crash') return crash(o);
  if (cmd === 'child') return child(o);
  if (cmd === 'holder') return crashHolder(o);
  throw new Error(`unknown subcommand ${cmd}`);
}

main().then(() => { if (!['child', 'holder'].includes(process.argv[2])) process.exit(0); },
            (e) => { console.error(`peers.js: ${e.message}`); process.exit(2); });
