// A user's program: built only with `pkg-config --cflags --libs libuvwt`.
#include <uv.h>

#include <cstdio>
#include <string>

#include <uvwt/uvwt.hpp>

int main() {
  uv_loop_t loop;
  uv_loop_init(&loop);
  uvwt::ServerConfig cfg;  // no certificate: must be refused with a configuration error
  uvwt::Error err;
  auto server = uvwt::Server::create(&loop, cfg, err);
  const bool refused = !server && err.errc == uvwt::Errc::configuration;
  uv_run(&loop, UV_RUN_DEFAULT);
  const int rv = uv_loop_close(&loop);
  std::printf("uvwt %s: config check %s, loop close %d\n", std::string(uvwt::version()).c_str(),
              refused ? "ok" : "FAILED", rv);
  return refused && rv == 0 ? 0 : 1;
}
