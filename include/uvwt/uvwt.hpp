#pragma once

// Umbrella header: everything a uvwt user needs.
#include <uvwt/certificate.hpp>
#include <uvwt/client.hpp>
#include <uvwt/config.hpp>
#include <uvwt/connection.hpp>
#include <uvwt/error.hpp>
#include <uvwt/load_balancer.hpp>
#include <uvwt/log.hpp>
#include <uvwt/protocol_handler.hpp>
#include <uvwt/server.hpp>
#include <uvwt/server_group.hpp>
#include <uvwt/session.hpp>
#include <uvwt/stream.hpp>
#include <uvwt/ticket_cache.hpp>
#include <uvwt/types.hpp>
#include <uvwt/udp_proxy.hpp>
#include <uvwt/version.hpp>
#include <uvwt/webtransport_stats.hpp>
