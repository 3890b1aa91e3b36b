#pragma once

#include <uvwt/ticket_cache.hpp>

#include <memory>
#include <string>

namespace uvwt::detail {

class QuicConnection;

// Client, between QuicConnection::create_client and its first write: offers
// the newest ticket `cache` holds for `authority` (with 0-RTT when
// `early_data` and the ticket allows it), files every ticket the server
// issues on this connection, and tells ngtcp2 when the server turned the
// early data down. A null cache only does the last part.
void use_ticket_cache(QuicConnection &c, const std::shared_ptr<TicketCache> &cache, const std::string &authority,
                      bool early_data);

}  // namespace uvwt::detail
