#pragma once

// Umbrella header: everything a uvwt user needs.
#include <uvwt/error.hpp>
#include <uvwt/log.hpp>
#include <uvwt/version.hpp>
