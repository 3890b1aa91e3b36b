// Drives examples/chat from a real browser: two ChatRoom clients (the code the
// demo page uses) in one room, each on its own WebTransport session. The
// runner (run_chat_browser_test.py) serves this page with ?port=P&hash=HEX and
// collects /log lines and the /result verdict.
'use strict';

const params = new URLSearchParams(location.search);
const opts = {port: params.get('port'), hash: params.get('hash'), room: 'test-room'};
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

// Resolves when pred() holds, re-checked on every event the client records.
function waitFor(pred, ms, what) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const tick = () => {
      if (pred()) return resolve(performance.now() - started);
      if (performance.now() - started > ms) return reject(new Error(`${what}: not within ${ms} ms`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

// A client with everything it saw recorded.
function member(nick) {
  const room = new ChatRoom({...opts, nick});
  room.seen = {messages: [], joins: [], leaves: [], presence: []};
  room.onmessage = (m) => room.seen.messages.push(m);
  room.onjoin = (n) => room.seen.joins.push(n);
  room.onleave = (n) => room.seen.leaves.push(n);
  room.onpresence = (nicks) => { room.seen.presence = nicks; };
  return room;
}

async function run() {
  const alice = member('alice');
  const bob = member('bob');
  await Promise.all([alice.ready, bob.ready]);
  check('two sessions ready', true, 'alice and bob connected to /chat/test-room');

  const both = (p) => p.includes('alice') && p.includes('bob');
  const tp = await waitFor(() => both(alice.seen.presence) && both(bob.seen.presence), 10000, 'presence');
  check('presence over datagrams', true,
        `alice sees [${alice.seen.presence}], bob sees [${bob.seen.presence}] after ${tp.toFixed(0)} ms`);
  check('join announced', alice.seen.joins.includes('bob'), `alice saw joins [${alice.seen.joins}]`);

  await alice.send('hello bob');
  await bob.send('hello alice, ünïcödé "quoted"');
  const got = (r, from, text) => r.seen.messages.some((m) => m.from === from && m.text === text);
  const tm = await waitFor(() => got(bob, 'alice', 'hello bob') && got(alice, 'bob', 'hello alice, ünïcödé "quoted"'),
                           10000, 'messages');
  check('broadcast over streams', true, `each saw the other's message after ${tm.toFixed(0)} ms`);
  check('sender sees its own message too', got(alice, 'alice', 'hello bob') && got(bob, 'bob', 'hello alice, ünïcödé "quoted"'),
        `alice saw ${JSON.stringify(alice.seen.messages)}`);

  // A second "alice" is refused with the server's close code.
  const clash = new ChatRoom({...opts, nick: 'alice'});
  const info = await Promise.race([clash.closed, new Promise((r) => setTimeout(() => r(null), 10000))]);
  check('duplicate nick refused', info && info.closeCode === 4001, info ? `closed ${info.closeCode}: ${info.reason}` : 'not closed');

  bob.close();
  const tl = await waitFor(() => alice.seen.leaves.includes('bob') && !alice.seen.presence.includes('bob'), 10000, 'leave');
  check('leave seen', true, `alice saw bob leave and drop from presence after ${tl.toFixed(0)} ms`);
  alice.close();
  await alice.closed;
}

run().catch((e) => check('chat run', false, e.stack || e)).finally(() => post('/result', {checks}));
