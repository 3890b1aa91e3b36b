#include "connection/resolve.hpp"

#include <netdb.h>

namespace uvwt::detail {

uv_getaddrinfo_t *resolve(const std::shared_ptr<Deferred> &deferred, const std::string &host, std::uint16_t port,
                          std::function<void(const Error &, const std::vector<SockAddr> &)> cb) {
  if (auto lit = SockAddr::parse(host, port)) {
    deferred->post([cb = std::move(cb), a = *lit] { cb(Error(), {a}); });
    return nullptr;
  }
  struct Req {
    uv_getaddrinfo_t req;
    std::function<void(const Error &, const std::vector<SockAddr> &)> cb;
    std::uint16_t port;
    std::string host;
  };
  auto *r = new Req{{}, std::move(cb), port, host};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  const int rv = uv_getaddrinfo(
      deferred->loop(), &r->req,
      [](uv_getaddrinfo_t *req, int status, addrinfo *res) {
        std::unique_ptr<Req> r(reinterpret_cast<Req *>(req));
        std::vector<SockAddr> out;
        for (addrinfo *ai = status == 0 ? res : nullptr; ai != nullptr; ai = ai->ai_next) {
          auto a = SockAddr::from(ai->ai_addr, static_cast<socklen_t>(ai->ai_addrlen));
          if (a.empty()) continue;
          a.set_port(r->port);
          bool dup = false;
          for (const auto &o : out) dup = dup || o == a;
          if (!dup) out.push_back(a);
        }
        uv_freeaddrinfo(res);
        if (status == UV_ECANCELED) return;
        if (out.empty())
          r->cb(Error(Errc::dns,
                      "cannot resolve '" + r->host + "': " + (status != 0 ? uv_strerror(status) : "no usable address")),
                {});
        else
          r->cb(Error(), out);
      },
      host.c_str(), nullptr, &hints);
  if (rv != 0) {
    auto cb2 = std::move(r->cb);
    delete r;
    deferred->post([cb2 = std::move(cb2), host, rv] {
      cb2(Error(Errc::dns, "cannot resolve '" + host + "': " + uv_strerror(rv)), {});
    });
    return nullptr;
  }
  return &r->req;
}

}  // namespace uvwt::detail
