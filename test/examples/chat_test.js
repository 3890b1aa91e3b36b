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
  // Alice first, so that she is in the room when Bob's join is announced.
  const alice = member('alice');
  await alice.ready;
  const bob = member('bob');
  await bob.ready;
  check('two sessions ready', true, 'alice and bob connected to /chat/test-room');

  const both = (p) => p.includes('alice') && p.includes('bob');
  // Presence (datagrams) and the join event (a stream) race each other: wait for both.
  const tp = await waitFor(() => both(alice.seen.presence) && both(bob.seen.presence) &&
                                 alice.seen.joins.includes('bob'), 10000, 'presence').catch(() => -1);
  check('presence over datagrams', both(alice.seen.presence) && both(bob.seen.presence),
        `alice sees [${alice.seen.presence}], bob sees [${bob.seen.presence}] (with the join after ${tp.toFixed(0)} ms)`);
  check('join announced', alice.seen.joins.includes('bob'), `alice saw joins [${alice.seen.joins}]`);

  await alice.send('hello bob');
  await bob.send('hello alice, ünïcödé "quoted"');
  const got = (r, from, text) => r.seen.messages.some((m) => m.from === from && m.text === text);
  const a = 'hello bob', b = 'hello alice, ünïcödé "quoted"';
  const others = () => got(bob, 'alice', a) && got(alice, 'bob', b);
  const own = () => got(alice, 'alice', a) && got(bob, 'bob', b);
  // Every message reaches every member, its sender included: wait for all four.
  const tm = await waitFor(() => others() && own(), 10000, 'messages').catch(() => -1);
  check('broadcast over streams', others(), `each saw the other's message (all four after ${tm.toFixed(0)} ms)`);
  check('sender sees its own message too', own(),
        `alice saw ${JSON.stringify(alice.seen.messages)}, bob saw ${JSON.stringify(bob.seen.messages)}`);

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
