// The browser side of examples/chat/chat_server.cpp, written to be copied.
//
//   const room = new ChatRoom({port, hash, room: 'lobby', nick: 'alice'});
//   room.onmessage = ({from, text}) => ...;   room.onpresence = (nicks) => ...;
//   room.onjoin / room.onleave = (nick) => ...;  room.onclose = ({closeCode, reason}) => ...;
//   await room.ready;  await room.send('hi');  room.close();
//
// Messages: one unidirectional stream each way per message (reliable, framed
// by the stream's end). Presence: a heartbeat datagram every second; the
// server answers with datagrams listing who is online (unreliable is fine:
// the next one supersedes a lost one).
'use strict';

class ChatRoom {
  constructor({port, hash, room, nick, host = 'localhost'}) {
    const pin = new Uint8Array(hash.match(/../g).map((h) => parseInt(h, 16)));
    this.nick = nick;
    this.onmessage = this.onpresence = this.onjoin = this.onleave = this.onclose = () => {};
    this.wt = new WebTransport(`https://${host}:${port}/chat/${encodeURIComponent(room)}?nick=${encodeURIComponent(nick)}`,
                               {serverCertificateHashes: [{algorithm: 'sha-256', value: pin}]});
    this.ready = this.wt.ready.then(() => {
      this._readEvents();
      this._readPresence();
      this._heartbeat();
    });
    this.closed = this.wt.closed.then((info) => info, (e) => ({closeCode: -1, reason: String(e)}))
      .then((info) => { clearInterval(this._timer); this.onclose(info); return info; });
  }

  async send(text) {
    const stream = await this.wt.createUnidirectionalStream();
    const writer = stream.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
  }

  close() { this.wt.close({closeCode: 0, reason: 'bye'}); }

  // Every server event arrives on its own unidirectional stream.
  async _readEvents() {
    const streams = this.wt.incomingUnidirectionalStreams.getReader();
    for (;;) {
      const {value: stream, done} = await streams.read().catch(() => ({done: true}));
      if (done) return;
      new Response(stream).text().then((text) => this._dispatch(JSON.parse(text))).catch(() => {});
    }
  }

  _dispatch(ev) {
    if (ev.type === 'message') this.onmessage({from: ev.from, text: ev.text});
    else if (ev.type === 'join') this.onjoin(ev.nick);
    else if (ev.type === 'leave') this.onleave(ev.nick);
  }

  async _readPresence() {
    const datagrams = this.wt.datagrams.readable.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const {value, done} = await datagrams.read().catch(() => ({done: true}));
      if (done) return;
      try {
        const ev = JSON.parse(decoder.decode(value));
        if (ev.type === 'presence') this.onpresence(ev.online);
      } catch (e) { /* a garbled datagram is dropped, the next one follows in a second */ }
    }
  }

  _heartbeat() {
    const writer = this.wt.datagrams.writable.getWriter();
    const beat = () => writer.write(new Uint8Array([1])).catch(() => {});
    beat();
    this._timer = setInterval(beat, 1000);
  }
}
