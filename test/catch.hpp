#pragma once

// The one Catch2 shim: Debian 12 ships Catch2 v2 (single header), newer
// systems ship v3 (split headers). Tests include this file only.
#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#define UVWT_CATCH_MAJOR 3
#else
#include <catch2/catch.hpp>
#define UVWT_CATCH_MAJOR 2
#endif
