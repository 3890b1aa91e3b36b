#pragma once

// Marks what libuvwt.so exports. The library is built with hidden symbol
// visibility (meson: gnu_symbol_visibility 'hidden'), so everything without
// this mark stays inside the shared library: lib/ internals (uvwt::detail)
// cannot be linked against, and only the public API below include/uvwt is
// part of the ABI (docs/architecture.md, "Public surface"). Classes carry it
// so that their type_info and vtables are shared with the application
// (dynamic_cast and exceptions across the library boundary).
#if defined(__GNUC__) || defined(__clang__)
#define UVWT_EXPORT [[gnu::visibility("default")]]
#define UVWT_NO_EXPORT [[gnu::visibility("hidden")]]
#else
#define UVWT_EXPORT
#define UVWT_NO_EXPORT
#endif
