// Client -> uvwt CONNECT-UDP proxy -> uvwt WebTransport server, all on
// loopback (RFC 9298 tunnels carrying the client's QUIC packets).

#include <uvwt/client.hpp>

#include "client/proxy_fixture.hpp"
#include "connection/connection_impl.hpp"
#include "connection/proxy_tunnel.hpp"

using namespace uvwt;
using namespace uvwt::test;

TEST_CASE("proxy: session through the proxy echoes bidi, uni and datagrams with checksums", "[proxy][loop]") {
  TestLoop tl;
  auto rig = start_proxy_rig(tl);
  auto client = make_client(tl, proxied_client_config(rig.proxy_server->port()));
  auto r = connect_client(tl, *client, url_of(rig.target->port(), "/echo"));
  INFO(r.err.to_string());
  REQUIRE(r.err.ok());
  REQUIRE(r.session);
  CHECK(r.session->is_ready());

  const Bytes big = pattern(300'000, 7);
  auto bidi = echo_over_bidi(r.session, big);
  REQUIRE(tl.run_until([&] { return bidi->done; }, 20'000));
  REQUIRE(bidi->got.size() == big.size());
  CHECK(checksum(bidi->got) == checksum(big));

  // Uni: the server echoes on a uni stream of its own.
  Bytes uni_got;
  bool uni_done = false;
  r.session->on_uni_stream([&](std::shared_ptr<Stream> st) {
    st->on_data([&](std::span<const std::uint8_t> d, bool fin) {
      uni_got.insert(uni_got.end(), d.begin(), d.end());
      uni_done = uni_done || fin;
    });
  });
  const Bytes uni = pattern(50'000, 9);
  r.session->open_uni_stream([&](const Error &e, std::shared_ptr<Stream> st) {
    REQUIRE(e.ok());
    st->write_and_end(uni);
  });
  REQUIRE(tl.run_until([&] { return uni_done; }, 20'000));
  CHECK(checksum(uni_got) == checksum(uni));

  // Datagrams: the inner datagram room is what the tunnel leaves.
  const std::size_t max = r.session->max_datagram_size();
  CHECK(max >= 1000);
  CHECK(max < 1400);
  int echoed = 0;
  r.session->on_datagram([&](std::span<const std::uint8_t> d) {
    if (d.size() == 800 && d[0] == 0xab) ++echoed;
  });
  Bytes dg(800, 0xab);
  for (int i = 0; i < 20; ++i) CHECK(r.session->send_datagram(dg).ok());
  REQUIRE(tl.run_until([&] { return echoed >= 15; }, 10'000));

  const auto st = rig.proxy->stats();
  CHECK(st.tunnels_opened == 1);
  CHECK(st.tunnels_active == 1);
  CHECK(st.bytes_to_targets > big.size());
  CHECK(st.bytes_from_targets > big.size());
  close_client(tl, client);
  close_rig(tl, rig);
}
