#pragma once

#include <string>

#include <uvwt/types.hpp>

namespace uvwt::detail {

// The CONNECT headers of one Client::connect: user-agent, then the config's
// headers, the client's defaults and the call's own, a later layer replacing
// every earlier value of the names it sets. Errc::configuration for pseudo
// headers or empty names.
Error merge_connect_headers(const std::string &user_agent, const Headers &config_headers, const Headers &defaults,
                            const Headers &per_call, Headers &out);

// Header names lower-cased, as HTTP/3 requires.
Headers lower_case_names(Headers h);

}  // namespace uvwt::detail
