#include "common/callback_scope.hpp"

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "catch.hpp"

using uvwt::detail::CallbackScope;
using uvwt::detail::Deferred;
using uvwt::detail::DeferredTasks;
using uvwt::detail::ReentryState;

namespace {

struct Shared : std::enable_shared_from_this<Shared> {
  ReentryState state;
  std::vector<std::string> *log = nullptr;
  ReentryState &reentry() { return state; }
  ~Shared() { log->push_back("destroyed"); }
};

struct Unique {
  ReentryState state;
  std::vector<std::string> *log = nullptr;
  ReentryState &reentry() { return state; }
  ~Unique() { log->push_back("destroyed"); }
};

}  // namespace

TEST_CASE("CallbackScope: work deferred inside nested scopes runs once the outermost exits", "[common][lifetime]") {
  std::vector<std::string> log;
  ReentryState s;
  s.run_or_defer([&] { log.push_back("outside"); });
  REQUIRE(log == std::vector<std::string>{"outside"});
  {
    CallbackScope outer(s);
    CHECK(s.active());
    {
      CallbackScope inner(s);
      CHECK(s.depth() == 2);
      s.run_or_defer([&] { log.push_back("close"); });
    }
    CHECK(log.size() == 1);  // the inner exit is not the outermost
    s.run_or_defer([&] {
      // Runs as if no scope were on the stack: nested requests run at once.
      CHECK_FALSE(s.active());
      s.run_or_defer([&] { log.push_back("nested"); });
    });
    log.push_back("end of scope");
  }
  CHECK_FALSE(s.active());
  CHECK(log == std::vector<std::string>{"outside", "end of scope", "close", "nested"});
}

TEST_CASE("CallbackScope: a scope keeps its shared owner alive until deferred work ran", "[common][lifetime]") {
  std::vector<std::string> log;
  auto owner = std::make_shared<Shared>();
  owner->log = &log;
  std::weak_ptr<Shared> weak = owner;
  {
    CallbackScope scope(*owner);
    owner->state.run_or_defer([&log, weak] {
      CHECK_FALSE(weak.expired());
      log.push_back("flush");
    });
    owner.reset();  // the last outside reference goes inside a callback
    CHECK_FALSE(weak.expired());
  }
  CHECK(weak.expired());
  CHECK(log == std::vector<std::string>{"flush", "destroyed"});
}

TEST_CASE("CallbackScope: a unique owner is destroyed after its outermost scope and its queue", "[common][lifetime]") {
  std::vector<std::string> log;
  auto owner = std::make_unique<Unique>();
  owner->log = &log;
  {
    CallbackScope outer(owner->reentry());
    {
      CallbackScope inner(owner->reentry());
      owner->state.destroy_outside([&] { owner.reset(); });
      owner->state.run_or_defer([&] {
        log.push_back("close");
        // A destruction requested while the queue drains still waits for it.
        owner->state.destroy_outside([&] { log.push_back("second request ignored"); });
        CallbackScope reentered(owner->reentry());
        owner->state.run_or_defer([&] { log.push_back("queued by queue"); });
      });
    }
    REQUIRE(owner != nullptr);
    log.push_back("outer exit");
  }
  CHECK(owner == nullptr);
  CHECK(log == std::vector<std::string>{"outer exit", "close", "queued by queue", "destroyed"});
}

TEST_CASE("CallbackScope: destroy_outside outside any scope destroys at once", "[common][lifetime]") {
  std::vector<std::string> log;
  auto owner = std::make_unique<Unique>();
  owner->log = &log;
  owner->state.destroy_outside([&] { owner.reset(); });
  CHECK(owner == nullptr);
  CHECK(log == std::vector<std::string>{"destroyed"});
}

TEST_CASE("DeferredTasks: tasks of a destroyed owner never run, others do", "[common][lifetime]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  std::vector<std::string> log;
  {
    auto d = std::make_shared<Deferred>(&loop);
    auto gone = std::make_unique<DeferredTasks>(d);
    DeferredTasks kept(d);
    auto token = std::make_shared<int>(0);
    gone->post([&log, token] { log.push_back("gone"); });
    kept.post([&log] { log.push_back("kept"); });
    d->post([&log] { log.push_back("plain"); });
    CHECK(token.use_count() == 2);
    gone.reset();
    CHECK(token.use_count() == 1);  // the cancelled task's captures are released at once
    // Posted after the cancellation by an owner that may reuse the address.
    auto later = std::make_unique<DeferredTasks>(d);
    later->post([&log] { log.push_back("later"); });
    CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    CHECK(log == std::vector<std::string>{"kept", "plain", "later"});
    // Cancelling with nothing queued is harmless.
    later.reset();
  }
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);  // the idle handle's close
  CHECK(uv_loop_close(&loop) == 0);
}
