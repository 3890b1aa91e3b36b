#pragma once

// Shared by the fuzz targets and the replay driver: a failed invariant
// aborts (libFuzzer and the replay test both report it), and each target
// offers valid encodings for the replay driver to mutate.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

namespace uvwt_fuzz {

// Valid inputs of the target, for mutation.
std::vector<std::vector<std::uint8_t>> seeds();

// Deterministic cut points derived from the input itself, so that a crash
// reproduces from the input alone.
inline std::vector<std::size_t> cuts_for(std::span<const std::uint8_t> in, std::uint64_t salt) {
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ salt;
  for (std::uint8_t b : in) h = (h ^ b) * 0x100000001b3ull;
  std::vector<std::size_t> cuts;
  std::size_t at = 0;
  while (at < in.size()) {
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    at += 1 + static_cast<std::size_t>(h % 9);
    if (at < in.size()) cuts.push_back(at);
  }
  return cuts;
}

// Calls fn(piece) for each piece of `in` between consecutive cuts.
template <class F>
void for_pieces(std::span<const std::uint8_t> in, const std::vector<std::size_t> &cuts, F &&fn) {
  std::size_t at = 0;
  for (std::size_t c : cuts) {
    fn(in.subspan(at, c - at));
    at = c;
  }
  fn(in.subspan(at));
}

}  // namespace uvwt_fuzz
