// Leaks on purpose. Built only for sanitizer builds: the test that runs it
// passes only when LeakSanitizer reports the leak, which proves leak
// detection is live for the suite's binaries (tools/test --sanitize).
#include <cstdio>
#include <cstdlib>

void *volatile sink;

int main() {
  sink = std::malloc(4096);
  sink = nullptr;  // the only pointer is gone: a definite leak
  std::puts("leaked 4096 bytes");
  return 0;
}
