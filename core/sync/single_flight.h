// SingleFlight: concurrent calls for one key share one execution and its result or error
// (tensorstore's "at most one read in flight per entry"). Nothing is remembered once a call
// returns: pair it with a cache (LruCache, DiskCache) for that, and check the cache again inside
// the function, since a flight may have completed between the caller's miss and its Do.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>

#include "core/base/status.h"
#include "core/sync/mutex.h"

namespace oz {

template <typename K, typename V, typename Hash = std::hash<K>>
class SingleFlight {
 public:
  // Runs fn() (returning Result<V>) unless a call for `key` is in flight; then waits for that
  // call and returns its result. *joined (if given) tells which happened. An exception from fn
  // becomes kResourceExhausted (bad_alloc) or kInternal, for the caller and every waiter.
  template <typename Fn>
  Result<V> Do(const K& key, Fn&& fn, bool* joined = nullptr) {
    std::shared_ptr<Flight> flight;
    bool leader = false;
    {
      MutexLock l(mu_);
      auto [it, inserted] = flights_.try_emplace(key);
      if (inserted) it->second = std::make_shared<Flight>();
      flight = it->second;
      leader = inserted;
    }
    if (joined) *joined = !leader;
    if (!leader) {
      std::unique_lock<std::mutex> l(flight->mu);
      flight->cv.wait(l, [&] { return flight->done; });
      return flight->result;
    }
    Result<V> r = InternalError("single-flight call did not run");
    try {
      r = fn();
    } catch (const std::bad_alloc&) {
      r = ResourceExhaustedError("out of memory");
    } catch (const std::exception& e) {
      r = InternalError(std::string("unexpected exception: ") + e.what());
    }
    {
      MutexLock l(mu_);
      flights_.erase(key);
    }
    {
      std::lock_guard<std::mutex> l(flight->mu);
      flight->result = r;
      flight->done = true;
    }
    flight->cv.notify_all();
    return r;
  }

 private:
  struct Flight {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;                                                        // guarded by mu
    Result<V> result{Status(ErrorCode::kInternal, "single-flight pending")};  // guarded by mu
  };
  Mutex mu_;
  std::unordered_map<K, std::shared_ptr<Flight>, Hash> flights_ OZ_GUARDED_BY(mu_);
};

}  // namespace oz
