// The one LRU, the one single-flight and the buffer pools (core/sync/): eviction order and
// budget; concurrent callers of one key share one execution, its result and its error; exceptions
// become statuses; pooled buffers are reused within the pool's budget and new ones are zeroed.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "core/sync/buffer_pool.h"
#include "core/sync/lru_cache.h"
#include "core/sync/single_flight.h"

namespace oz {
namespace {

TEST_CASE("LruCache evicts least recently used under its budget", "[sync]") {
  LruCache<int, int> c(3);
  c.Put(1, std::make_shared<int>(10), 1);
  c.Put(2, std::make_shared<int>(20), 1);
  c.Put(3, std::make_shared<int>(30), 1);
  REQUIRE(c.Get(1));  // 1 is now the newest
  c.Put(4, std::make_shared<int>(40), 1);
  CHECK(c.Get(2) == nullptr);
  CHECK(*c.Get(1) == 10);
  CHECK(*c.Get(4) == 40);
  c.Put(5, std::make_shared<int>(50), 4);  // over budget: not kept, nothing evicted
  CHECK(c.Get(5) == nullptr);
  CHECK(c.used() == 3);
  c.Put(1, std::make_shared<int>(11), 2);  // replace
  CHECK(*c.Get(1) == 11);
  CHECK(c.used() <= 3);
}

TEST_CASE("SingleFlight: concurrent callers of one key share one run", "[sync][concurrency]") {
  SingleFlight<int, int> sf;
  std::atomic<int> runs{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  std::vector<int> got(8, -1);
  std::atomic<int> joined{0};
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      bool j = false;
      auto r = sf.Do(
          7,
          [&]() -> Result<int> {
            ++runs;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            return 42;
          },
          &j);
      if (j) ++joined;
      got[i] = r.ok() ? *r : -2;
    });
  go = true;
  for (auto& t : ts) t.join();
  CHECK(runs == 8 - joined);
  CHECK(runs >= 1);
  for (int v : got) CHECK(v == 42);
  // Nothing is remembered: the next call runs again.
  CHECK(*sf.Do(7, [&]() -> Result<int> {
    ++runs;
    return 1;
  }) == 1);
}

TEST_CASE("SingleFlight: errors and exceptions are shared as statuses", "[sync]") {
  SingleFlight<int, int> sf;
  CHECK(sf.Do(1, []() -> Result<int> { return IoError("disk gone"); }).status().code() == ErrorCode::kIoError);
  CHECK(sf.Do(1, []() -> Result<int> { throw std::bad_alloc(); }).status().code() == ErrorCode::kResourceExhausted);
  CHECK(sf.Do(1, []() -> Result<int> { throw std::runtime_error("x"); }).status().code() == ErrorCode::kInternal);
}

TEST_CASE("BufferPool: new buffers are zeroed (small and huge-page sized), kept ones reused within budget", "[sync]") {
  for (size_t n : {size_t{1000}, size_t{(4u << 20) + 123}, size_t{64u << 20}}) {
    auto v = NewBuffer<std::vector<uint8_t>>(n);
    auto s = NewBuffer<std::string>(n);
    REQUIRE(v.size() == n);
    REQUIRE(s.size() == n);
    REQUIRE(std::all_of(v.begin(), v.end(), [](uint8_t c) { return c == 0; }));
    REQUIRE(std::all_of(s.begin(), s.end(), [](char c) { return c == 0; }));
  }
  BufferPool pool(8u << 20);
  auto a = pool.Get(5u << 20);
  a[0] = 7;
  const uint8_t* pa = a.data();
  pool.Put(std::move(a));
  auto b = pool.Get(1u << 20);  // a kept buffer big enough comes back (contents unspecified)
  REQUIRE(b.data() == pa);
  REQUIRE(b.size() == (1u << 20));
  pool.Put(std::move(b));
  auto c = pool.Get(5u << 20);
  const uint8_t* pc = c.data();
  auto d = pool.Get(5u << 20);  // the kept one is taken: a fresh, zeroed one
  REQUIRE(std::all_of(d.begin(), d.end(), [](uint8_t x) { return x == 0; }));
  pool.Put(std::move(c));
  pool.Put(std::move(d));  // over the 8 MiB budget: dropped
  auto e = pool.Get(5u << 20);
  auto f = pool.Get(5u << 20);
  REQUIRE(e.data() == pc);  // c was kept, d was not
  REQUIRE(std::all_of(f.begin(), f.end(), [](uint8_t x) { return x == 0; }));
}

}  // namespace
}  // namespace oz
