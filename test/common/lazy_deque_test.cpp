#include "common/lazy_deque.hpp"

#include <memory>
#include <string>

#include "catch.hpp"

using uvwt::detail::LazyDeque;

TEST_CASE("LazyDeque: an unused queue is an empty range", "[common]") {
  LazyDeque<std::string> q;
  CHECK(q.empty());
  CHECK(q.size() == 0);
  CHECK(q.begin() == q.end());
  int n = 0;
  for (const auto &s : q) n += static_cast<int>(s.size());
  CHECK(n == 0);
  CHECK(erase_if(q, [](const std::string &) { return true; }) == 0);
  CHECK(erase(q, std::string("x")) == 0);
  CHECK(q.erase(q.begin(), q.end()) == q.end());
  const auto &cq = q;
  CHECK(cq.begin() == cq.end());
}

TEST_CASE("LazyDeque: queue operations keep order and references", "[common]") {
  LazyDeque<std::string> q;
  q.push_back("a");
  auto &first = q.front();
  for (int i = 0; i < 1000; ++i) q.emplace_back(std::to_string(i));
  CHECK(&first == &q.front());  // push_back never moves existing elements
  CHECK(q.size() == 1001);
  CHECK(q[1] == "0");
  CHECK(q.back() == "999");
  q.pop_front();
  CHECK(q.front() == "0");
  CHECK(erase_if(q, [](const std::string &s) { return s.size() == 3; }) == 900);
  CHECK(q.size() == 100);
  CHECK(erase(q, std::string("42")) == 1);
  const auto next = q.erase(q.begin());
  CHECK(next == q.begin());
  CHECK(q.front() == "1");
  q.pop_back();
  CHECK(q.back() == "98");

  LazyDeque<std::string> moved = std::move(q);
  CHECK(moved.size() == 97);
  CHECK(q.empty());  // NOLINT(bugprone-use-after-move): a moved-from queue is empty and usable
  q.push_back("again");
  CHECK(q.size() == 1);
  moved.clear();
  CHECK(moved.empty());
  CHECK(moved.begin() == moved.end());
}

TEST_CASE("LazyDeque: move-only elements", "[common]") {
  LazyDeque<std::unique_ptr<int>> q;
  q.push_back(std::make_unique<int>(7));
  q.push_front(std::make_unique<int>(6));
  CHECK(*q.front() == 6);
  auto p = std::move(q.back());
  q.pop_back();
  CHECK(*p == 7);
  CHECK(q.size() == 1);
}
