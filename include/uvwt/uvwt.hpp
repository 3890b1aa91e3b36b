#pragma once

// Umbrella header: everything a uvwt user needs.
#include <uvwt/version.hpp>
