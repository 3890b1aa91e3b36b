// A chat room server for browsers: https://localhost:PORT/chat/ROOM?nick=NAME
//
// Messages go over streams because they must all arrive, in full: a client
// sends each message on its own unidirectional stream, and the server
// broadcasts it to every member of the room on a fresh unidirectional stream
// (one stream per message: its FIN frames it, no length prefix needed).
// Presence goes over datagrams because only the latest state matters: clients
// send a heartbeat datagram every second and the server sends every member the
// list of who is online once a second. A lost datagram is simply superseded by
// the next one; retransmitting stale presence would be wasted work.
//
//   chat_server [--port N]      (N 0 picks a free port; default 4433)
// prints "listening: PORT", the certificate hash (hex and base64) and the page
// URL to open; SIGINT/SIGTERM shut down gracefully (exit status 0 when every
// handle closed).
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <uvwt/uvwt.hpp>

namespace {

constexpr std::size_t kMaxMessage = 4096;                    // bytes; a longer message is refused (STOP_SENDING)
constexpr std::uint64_t kPresenceTtlMs = 3500;               // a member missing 3 heartbeats is shown offline
constexpr std::uint32_t kBadNick = 4000, kNickTaken = 4001;  // session close codes the page shows

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

bool valid_nick(const std::string &n) {
  if (n.empty() || n.size() > 20) return false;
  for (const char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

std::string query_param(const std::string &query, const std::string &name) {
  std::size_t at = 0;
  while (at <= query.size()) {
    const auto end = std::min(query.find('&', at), query.size());
    const auto part = query.substr(at, end - at);
    if (part.rfind(name + "=", 0) == 0) return part.substr(name.size() + 1);
    at = end + 1;
  }
  return {};
}

struct Member {
  std::weak_ptr<uvwt::Session> session;
  std::string nick;
  std::optional<std::uint64_t> last_seen_ms;  // last heartbeat; online only once one arrived
};

// A room is the set of its members' sessions. Raw Session pointers are only
// keys: the members hold weak references and leave on on_closed.
using Room = std::map<const uvwt::Session *, Member>;

struct ChatServer {
  uv_loop_t *loop = nullptr;
  std::shared_ptr<uvwt::Server> server;
  std::map<std::string, Room> rooms;
  uv_timer_t presence_timer{};
  uv_signal_t sigint{}, sigterm{};
  bool stopping = false;

  // One message to every member, each on its own unidirectional stream.
  void broadcast(const Room &room, const std::string &json) {
    for (const auto &[key, m] : room) {
      auto s = m.session.lock();
      if (!s || !s->is_ready()) continue;
      s->open_uni_stream([json](const uvwt::Error &err, std::shared_ptr<uvwt::Stream> st) {
        if (err) return;  // the member is leaving; its own close tells the room
        st->write_and_end(uvwt::Bytes(json.begin(), json.end()));
      });
    }
  }

  void send_presence() {
    const std::uint64_t now = uv_now(loop);
    for (const auto &[name, room] : rooms) {
      std::string json = "{\"type\":\"presence\",\"online\":[";
      bool first = true;
      for (const auto &[key, m] : room) {
        if (!m.last_seen_ms || now - *m.last_seen_ms > kPresenceTtlMs) continue;
        json += (first ? "" : ",") + json_string(m.nick);
        first = false;
      }
      json += "]}";
      const auto bytes = std::span(reinterpret_cast<const std::uint8_t *>(json.data()), json.size());
      for (const auto &[key, m] : room) {
        // A full queue or a room too large for one datagram loses this round
        // only; the next tick carries the same state.
        if (auto s = m.session.lock()) (void)s->send_datagram(bytes);
      }
    }
  }

  void on_message(const std::string &room_name, const std::string &nick, const std::string &text) {
    auto it = rooms.find(room_name);
    if (it == rooms.end()) return;
    std::printf("chat: [%s] %s: %s\n", room_name.c_str(), nick.c_str(), text.c_str());
    broadcast(it->second,
              "{\"type\":\"message\",\"from\":" + json_string(nick) + ",\"text\":" + json_string(text) + "}");
  }

  // Reads one message: a unidirectional stream up to its FIN, bounded.
  void read_message(std::shared_ptr<uvwt::Stream> st, std::string room, std::string nick) {
    struct Incoming {
      std::string text;
      bool refused = false;
    };
    auto in = std::make_shared<Incoming>();
    st->on_data([this, in, room, nick](uvwt::Stream &stream, std::span<const std::uint8_t> d, bool fin) {
      if (in->refused) return;
      if (in->text.size() + d.size() > kMaxMessage) {
        in->refused = true;  // bounded: never buffer an endless message
        in->text.clear();
        stream.stop_sending(1);
        return;
      }
      in->text.append(d.begin(), d.end());
      if (fin && !in->text.empty()) on_message(room, nick, in->text);
    });
  }

  void join(std::shared_ptr<uvwt::Session> s, const uvwt::SessionRequest &req) {
    const std::string room_name = req.params.at("room");
    const std::string nick = query_param(req.query, "nick");
    if (!valid_nick(nick)) return s->close(kBadNick, "nick must be 1-20 letters, digits, - or _");
    Room &room = rooms[room_name];
    for (const auto &[key, m] : room)
      if (m.nick == nick) return s->close(kNickTaken, "nick already in the room");
    const uvwt::Session *key = s.get();
    room[key] = Member{s, nick, std::nullopt};
    std::printf("chat: [%s] %s joined\n", room_name.c_str(), nick.c_str());
    broadcast(room, "{\"type\":\"join\",\"nick\":" + json_string(nick) + "}");

    s->on_uni_stream([this, room_name, nick](std::shared_ptr<uvwt::Stream> st) { read_message(st, room_name, nick); });
    s->on_datagram([this, room_name, key](std::span<const std::uint8_t>) {
      auto r = rooms.find(room_name);
      if (r == rooms.end()) return;
      if (auto m = r->second.find(key); m != r->second.end()) m->second.last_seen_ms = uv_now(loop);
    });
    s->on_closed([this, room_name, nick, key](const uvwt::SessionCloseInfo &) {
      auto r = rooms.find(room_name);
      if (r == rooms.end()) return;
      r->second.erase(key);
      std::printf("chat: [%s] %s left\n", room_name.c_str(), nick.c_str());
      if (r->second.empty()) {
        rooms.erase(r);
      } else {
        broadcast(r->second, "{\"type\":\"leave\",\"nick\":" + json_string(nick) + "}");
      }
    });
  }

  void stop(const char *why) {
    if (stopping) return;
    stopping = true;
    std::printf("%s: shutting down\n", why);
    uv_close(reinterpret_cast<uv_handle_t *>(&presence_timer), nullptr);
    uv_close(reinterpret_cast<uv_handle_t *>(&sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t *>(&sigterm), nullptr);
    server->shutdown(uvwt::Duration{3000});
  }
};

}  // namespace

int main(int argc, char **argv) {
  std::uint16_t port = 4433;
  if (argc == 3 && std::strcmp(argv[1], "--port") == 0) port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop;
  uv_loop_init(&loop);
  ChatServer chat;
  chat.loop = &loop;

  // Browsers accept a self-signed certificate pinned by hash only if it is
  // ECDSA and valid for at most 14 days: generate_self_signed_certificate does that.
  uvwt::CertificatePair cert;
  uvwt::Error err = uvwt::generate_self_signed_certificate({"localhost", "127.0.0.1", "::1"}, cert);
  uvwt::ServerConfig cfg;
  cfg.cert_pem = cert.cert_pem;
  cfg.key_pem = cert.key_pem;
  if (!err) chat.server = uvwt::Server::create(&loop, cfg, err);
  if (!err) err = chat.server->listen("localhost", port);
  if (err) {
    std::fprintf(stderr, "chat_server: %s\n", err.to_string().c_str());
    if (chat.server) chat.server->close();
    chat.server.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 1;
  }
  chat.server->route("/chat/{room}", [&chat](std::shared_ptr<uvwt::Session> s, const uvwt::SessionRequest &req) {
    chat.join(std::move(s), req);
  });

  uv_timer_init(&loop, &chat.presence_timer);
  chat.presence_timer.data = &chat;
  uv_timer_start(
      &chat.presence_timer, [](uv_timer_t *t) { static_cast<ChatServer *>(t->data)->send_presence(); }, 1000, 1000);
  uv_signal_init(&loop, &chat.sigint);
  uv_signal_init(&loop, &chat.sigterm);
  chat.sigint.data = chat.sigterm.data = &chat;
  uv_signal_start(
      &chat.sigint, [](uv_signal_t *h, int) { static_cast<ChatServer *>(h->data)->stop("SIGINT"); }, SIGINT);
  uv_signal_start(
      &chat.sigterm, [](uv_signal_t *h, int) { static_cast<ChatServer *>(h->data)->stop("SIGTERM"); }, SIGTERM);

  port = chat.server->port();
  std::printf("listening: %u\ncert-sha256: %s\ncert-sha256-b64: %s\n", port, cert.sha256_hex().c_str(),
              cert.sha256_base64().c_str());
  std::printf(
      "page: serve examples/chat over HTTP (python3 -m http.server -d examples/chat 8000) and open\n"
      "  http://localhost:8000/?port=%u&hash=%s&room=lobby\n",
      port, cert.sha256_hex().c_str());

  uv_run(&loop, UV_RUN_DEFAULT);
  chat.server.reset();
  uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks queued by the last release
  const int rc = uv_loop_close(&loop);
  std::printf("uv_loop_close: %s\n", rc == 0 ? "0 (every handle closed)" : uv_strerror(rc));
  return rc == 0 ? 0 : 1;
}
