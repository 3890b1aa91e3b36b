// Drives uvwt-server from a real browser. The runner (run_browser_test.py)
// serves this page with ?port=WTPORT&hash=BASE64 and collects what it POSTs:
// progress lines on /log, the verdict on /result.
'use strict';

const params = new URLSearchParams(location.search);
const wtPort = params.get('port');
const certHash = Uint8Array.from(atob(params.get('hash')), (c) => c.charCodeAt(0));
const checks = [];

function post(path, body) {
  return fetch(path, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body)})
    .catch(() => {});
}

function log(msg) {
  document.getElementById('log').textContent += msg + '\n';
  post('/log', {msg});
}

function check(name, ok, detail) {
  checks.push({name, ok: !!ok, detail: String(detail)});
  log(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
}

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function open(path) {
  return new WebTransport(`https://localhost:${wtPort}${path}`,
                          {serverCertificateHashes: [{algorithm: 'sha-256', value: certHash}]});
}

async function readAll(readable) {
  const reader = readable.getReader();
  const parts = [];
  let total = 0;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    parts.push(value);
    total += value.byteLength;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.byteLength; }
  return out;
}

function pattern(n, seed) {
  const a = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    a[i] = x >>> 24;
  }
  return a;
}

function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

const text = (bytes) => new TextDecoder().decode(bytes);

async function bidiEcho(wt) {
  const data = pattern(1 << 20, 7);
  const stream = await wt.createBidirectionalStream();
  const echoed = readAll(stream.readable);
  const writer = stream.writable.getWriter();
  const started = performance.now();
  await writer.write(data);
  await writer.close();
  const got = await echoed;
  const ms = performance.now() - started;
  const diff = firstDifference(data, got);
  check('bidi echo 1 MiB', diff < 0,
        diff < 0 ? `${got.length} bytes equal in ${ms.toFixed(0)} ms` : `got ${got.length} bytes, first difference at ${diff}`);
}

async function uniEcho(wt) {
  const data = pattern(64 * 1024, 11);
  const incoming = wt.incomingUnidirectionalStreams.getReader();
  const out = await wt.createUnidirectionalStream();
  const writer = out.getWriter();
  await writer.write(data);
  await writer.close();
  const {value: stream, done} = await incoming.read();
  incoming.releaseLock();
  if (done) return check('uni echo', false, 'no incoming uni stream');
  const got = await readAll(stream);
  const diff = firstDifference(data, got);
  check('uni echo', diff < 0, diff < 0 ? `${got.length} bytes equal` : `got ${got.length} bytes, first difference at ${diff}`);
}

// Sends one 100-byte datagram per id (the id in its first 4 bytes), 10 at a
// time with a 5 ms pause between groups, so that the browser's outgoing
// datagram queue stays short (`group` 0: no pauses). Returns how many were sent.
async function sendDatagrams(writer, ids, group = 10) {
  let burst = 0;
  for (const i of ids) {
    const d = new Uint8Array(100);
    new DataView(d.buffer).setUint32(0, i);
    await writer.ready;
    writer.write(d).catch(() => {});
    if (group > 0 && ++burst % group === 0) await sleep(5);
  }
  return ids.length;
}

// Collects echoed ids into `seen` until stopped; `all` resolves once `count` are seen.
function collectDatagrams(wt, seen, count) {
  const reader = wt.datagrams.readable.getReader();
  let allSeen;
  const all = new Promise((r) => { allSeen = r; });
  const state = {stop: false, all, reader};
  (async () => {
    while (!state.stop) {
      const {value, done} = await reader.read();
      if (done) break;
      if (value.byteLength >= 4) seen.add(new DataView(value.buffer, value.byteOffset, 4).getUint32(0));
      if (seen.size === count) { allSeen(); break; }
    }
  })().catch(() => {});
  return state;
}

// Datagrams are unreliable by design, so "all 100 echoed" can only be asked
// of a sender that makes up for losses: the page paces its sends and re-sends
// every id not yet echoed, up to 20 rounds. Every one of the 100 ids must
// then come back; the detail line tells how many came back from the first
// round alone and how many re-sends the rest took (0 on a quiet loopback).
async function datagramEcho(wt) {
  const count = 100;
  const seen = new Set();
  const rx = collectDatagrams(wt, seen, count);
  const writer = wt.datagrams.writable.getWriter();
  let sent = 0;
  let rounds = 0;
  let firstRound = 0;
  for (; rounds < 20 && seen.size < count; rounds++) {
    const missing = [];
    for (let i = 0; i < count; i++) if (!seen.has(i)) missing.push(i);
    sent += await sendDatagrams(writer, missing);
    await Promise.race([rx.all, sleep(rounds === 0 ? 1000 : 300)]);
    if (rounds === 0) firstRound = seen.size;
  }
  writer.releaseLock();
  rx.stop = true;
  check('datagram echo', seen.size === count,
        `${seen.size}/${count} echoed (${firstRound} from the first round), ${sent} sent in ${rounds} round(s), ` +
        `${sent - count} re-sent`);
  rx.reader.releaseLock();
}

// Measurement mode (?measure=RUNS&group=N): each run is a fresh /echo session
// that sends one burst of 100 datagrams (paced in groups of N, 0 = unpaced),
// never re-sent, and counts the echoes that came back within 2 s.
async function measureDatagramBursts(runs, group) {
  const results = [];
  for (let run = 0; run < runs; run++) {
    const wt = open('/echo');
    await withTimeout(wt.ready, 15000, 'measure ready');
    const hwm = parseInt(params.get('hwm') || '0', 10);
    if (hwm > 0 && 'incomingHighWaterMark' in wt.datagrams) wt.datagrams.incomingHighWaterMark = hwm;
    if (run === 0) log(`incomingHighWaterMark ${wt.datagrams.incomingHighWaterMark}`);
    const seen = new Set();
    const rx = collectDatagrams(wt, seen, 100);
    const writer = wt.datagrams.writable.getWriter();
    await sendDatagrams(writer, Array.from({length: 100}, (_, i) => i), group);
    await Promise.race([rx.all, sleep(2000)]);
    rx.stop = true;
    results.push({run, lost: 100 - seen.size});
    log(`run ${run}: ${seen.size}/100 echoed`);
    writer.releaseLock();
    wt.close({closeCode: 0, reason: ''});
    await withTimeout(wt.closed, 5000, 'measure closed').catch(() => {});
  }
  return results;
}

async function echoSession() {
  const wt = open('/echo');
  await withTimeout(wt.ready, 20000, '/echo ready');
  check('session /echo ready', true, 'ready');
  await withTimeout(bidiEcho(wt), 30000, 'bidi echo').catch((e) => check('bidi echo 1 MiB', false, e));
  await withTimeout(uniEcho(wt), 20000, 'uni echo').catch((e) => check('uni echo', false, e));
  await withTimeout(datagramEcho(wt), 20000, 'datagram echo').catch((e) => check('datagram echo', false, e));
  wt.close({closeCode: 0, reason: 'done'});
  const info = await withTimeout(wt.closed, 10000, '/echo closed');
  check('session /echo closed by client', true, `code ${info.closeCode}`);
}

async function pushSession() {
  const wt = open('/push');
  await withTimeout(wt.ready, 20000, '/push ready');
  const bidi = (async () => {
    const r = wt.incomingBidirectionalStreams.getReader();
    const {value, done} = await r.read();
    if (done) throw new Error('no incoming bidi stream');
    const got = text(await readAll(value.readable));
    check('server-initiated bidi stream', got === 'hello from server', JSON.stringify(got));
  })();
  const uni = (async () => {
    const r = wt.incomingUnidirectionalStreams.getReader();
    const {value, done} = await r.read();
    if (done) throw new Error('no incoming uni stream');
    const got = text(await readAll(value));
    check('server-initiated uni stream', got === 'uni from server', JSON.stringify(got));
  })();
  await withTimeout(bidi, 20000, 'push bidi').catch((e) => check('server-initiated bidi stream', false, e));
  await withTimeout(uni, 20000, 'push uni').catch((e) => check('server-initiated uni stream', false, e));
  wt.close();
  await withTimeout(wt.closed, 10000, '/push closed').catch(() => {});
}

async function closeSession() {
  const wt = open('/close');
  await withTimeout(wt.ready, 20000, '/close ready');
  const info = await withTimeout(wt.closed, 20000, '/close closed');
  check('server close code', info.closeCode === 4242, `closeCode ${info.closeCode}`);
  check('server close reason', info.reason === 'bye from server', JSON.stringify(info.reason));
}

async function main() {
  log(`${navigator.userAgent}; WebTransport ${typeof WebTransport}`);
  const runs = parseInt(params.get('measure') || '0', 10);
  let measure;
  if (typeof WebTransport === 'undefined') {
    check('WebTransport available', false, 'not in this browser or context');
  } else if (runs > 0) {
    measure = await measureDatagramBursts(runs, parseInt(params.get('group') || '10', 10)).catch((e) => {
      check('datagram measurement', false, e && e.stack ? e.stack : e);
      return undefined;
    });
  } else {
    for (const [name, fn] of [['/echo', echoSession], ['/push', pushSession], ['/close', closeSession]]) {
      try {
        await fn();
      } catch (e) {
        check(`session ${name}`, false, e && e.stack ? e.stack : e);
      }
    }
  }
  await post('/result', {checks, measure});
}

main();
