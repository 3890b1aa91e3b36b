#pragma once

#include <string>

#include <uvwt/config.hpp>
#include <uvwt/types.hpp>

namespace uvwt::detail {

// The CONNECT headers of one session request: user-agent, then the config's
// headers, the client's defaults and the call's own, a later layer replacing
// every earlier value of the names it sets. Errc::configuration for pseudo
// headers or empty names. Every client CONNECT goes through it (Client::connect,
// Connection::create_client, Connection::open_session), so all send the same.
Error merge_connect_headers(const std::string &user_agent, const Headers &config_headers, const Headers &defaults,
                            const Headers &per_call, Headers &out);

// ClientConfig::user_agent, or "uvwt/<version>" when it is empty.
std::string connect_user_agent(const ClientConfig &config);

// Header names lower-cased, as HTTP/3 requires.
Headers lower_case_names(Headers h);

}  // namespace uvwt::detail
