// Runs a fuzz target without libFuzzer: over the files named on the command
// line (to reproduce a crash), or over a fixed, seeded set of inputs: random
// buffers and mutations of the target's valid encodings. Registered as a
// meson test so that the normal (sanitized) suite exercises the parsers.
//   fuzz-replay-NAME [FILE|DIR...]      replay files (a directory: every file in it)
//   fuzz-replay-NAME --runs N           N generated inputs instead of the default
//   fuzz-replay-NAME --write-seeds DIR  write the seeds as a libFuzzer corpus

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

namespace {

constexpr int kDefaultRandomRuns = 20000;

struct Rng {
  std::uint64_t s;
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }
};

// Values parsers care about: varint length edges and protocol codepoints.
constexpr std::uint8_t kInteresting[] = {0x00, 0x01, 0x04, 0x07, 0x08, 0x33, 0x3f, 0x40, 0x41,
                                         0x54, 0x7f, 0x80, 0xbf, 0xc0, 0xff, 0x21, 0x2b, 0x68};

void mutate(std::vector<std::uint8_t> &b, Rng &rng) {
  const std::size_t rounds = 1 + rng.below(4);
  for (std::size_t r = 0; r < rounds; ++r) {
    switch (rng.below(6)) {
      case 0:  // flip a bit
        if (!b.empty()) b[rng.below(b.size())] ^= static_cast<std::uint8_t>(1u << rng.below(8));
        break;
      case 1:  // set an interesting byte
        if (!b.empty()) b[rng.below(b.size())] = kInteresting[rng.below(sizeof kInteresting)];
        break;
      case 2:  // insert bytes
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(rng.below(b.size() + 1)), 1 + rng.below(4),
                 static_cast<std::uint8_t>(rng.next()));
        break;
      case 3:  // delete a byte
        if (!b.empty()) b.erase(b.begin() + static_cast<std::ptrdiff_t>(rng.below(b.size())));
        break;
      case 4:  // truncate
        b.resize(rng.below(b.size() + 1));
        break;
      case 5: {  // duplicate a slice at the end
        if (b.empty()) break;
        const std::size_t from = rng.below(b.size());
        const std::size_t len = 1 + rng.below(b.size() - from);
        std::vector<std::uint8_t> slice(b.begin() + static_cast<std::ptrdiff_t>(from),
                                        b.begin() + static_cast<std::ptrdiff_t>(from + len));
        b.insert(b.end(), slice.begin(), slice.end());
        break;
      }
    }
  }
}

void run(const std::vector<std::uint8_t> &b) {
  // A copy of exactly the input's size, so that ASan catches over-reads.
  std::vector<std::uint8_t> exact(b);
  LLVMFuzzerTestOneInput(exact.empty() ? nullptr : exact.data(), exact.size());
}

}  // namespace

int main(int argc, char **argv) {
  const auto seeds = uvwt_fuzz::seeds();
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") {
    for (std::size_t i = 0; i < seeds.size(); ++i) {
      std::ofstream f(std::string(argv[2]) + "/seed-" + std::to_string(i), std::ios::binary);
      f.write(reinterpret_cast<const char *>(seeds[i].data()), static_cast<std::streamsize>(seeds[i].size()));
    }
    return 0;
  }
  int random_runs = kDefaultRandomRuns;
  if (argc == 3 && std::string(argv[1]) == "--runs") {
    random_runs = std::stoi(argv[2]);
    argc = 1;
  }
  if (argc > 1) {
    std::vector<std::filesystem::path> files;
    for (int i = 1; i < argc; ++i) {
      std::error_code ec;
      if (std::filesystem::is_directory(argv[i], ec)) {
        for (const auto &e : std::filesystem::directory_iterator(argv[i]))
          if (e.is_regular_file()) files.push_back(e.path());
      } else {
        files.emplace_back(argv[i]);
      }
    }
    std::sort(files.begin(), files.end());  // a fixed order: a crash reproduces alike
    for (const auto &p : files) {
      std::ifstream f(p, std::ios::binary);
      if (!f) {
        std::fprintf(stderr, "cannot read %s\n", p.c_str());
        return 2;
      }
      run(std::vector<std::uint8_t>(std::istreambuf_iterator<char>(f), {}));
    }
    if (files.empty()) {
      std::fprintf(stderr, "no input files\n");
      return 2;
    }
    std::printf("replayed %zu file(s)\n", files.size());
    return 0;
  }

  Rng rng{0x75767774};  // fixed: every run sees the same inputs
  std::size_t runs = 0;
  for (const auto &s : seeds) {
    run(s);
    ++runs;
  }
  run({});
  for (int i = 0; i < random_runs; ++i) {
    std::vector<std::uint8_t> b;
    if (!seeds.empty() && i % 4 != 0) {
      b = seeds[rng.below(seeds.size())];
      mutate(b, rng);
    } else {
      // Mostly short buffers, some long ones.
      const std::size_t len = rng.below(8) == 0 ? rng.below(4096) : rng.below(64);
      b.resize(len);
      for (auto &x : b)
        x = rng.below(3) == 0 ? kInteresting[rng.below(sizeof kInteresting)] : static_cast<std::uint8_t>(rng.next());
    }
    run(b);
    ++runs;
  }
  std::printf("%zu inputs, no invariant broken\n", runs);
  return 0;
}
