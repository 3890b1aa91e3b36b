#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uvwt/error.hpp>

#include "common/deferred.hpp"
#include "quic/socket_addr.hpp"

namespace uvwt::detail {

// Resolves `host` on the loop's thread pool (an IP literal without asking);
// cb once, on a later turn, with every address found, in the resolver's order
// and without duplicates. Returns the lookup in flight (nullptr when none was
// needed); until cb runs, uv_cancel on it stops the lookup, and then cb is
// never called.
uv_getaddrinfo_t *resolve(const std::shared_ptr<Deferred> &deferred, const std::string &host, std::uint16_t port,
                          std::function<void(const Error &, const std::vector<SockAddr> &)> cb);

}  // namespace uvwt::detail
