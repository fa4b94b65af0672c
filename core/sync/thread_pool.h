// ThreadPool: a fixed set of workers for leaf work (decode, encode, downsample).
// Tasks must not block waiting on other tasks of the same pool (no nesting), so the pool can
// never deadlock; callers wait on the futures/latches they submit.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/base/status.h"

namespace oz {

class ThreadPool {
 public:
  // threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int threads);
  ~ThreadPool();  // drains queued tasks, joins workers
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Submit(std::function<void()> task);
  int size() const { return static_cast<int>(workers_.size()); }

  // Runs fn(i) for i in [0, n) on the pool and the calling thread, returns when all are done.
  // fn must not throw.
  void ParallelFor(size_t n, const std::function<void(size_t)>& fn);

 private:
  void WorkerLoop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> workers_;
};

// Runs fn(i) -> Status for i in [0, n) on `pool` (inline when pool is null or n <= 1) and returns
// the first error by index, or OK. An exception from fn becomes kResourceExhausted (bad_alloc) or
// kInternal, its message "out of memory " / "unexpected exception " + what(i) (what(i) names the
// item, e.g. "reading slice z=5").
Status ParallelForStatus(ThreadPool* pool, size_t n, const std::function<Status(size_t)>& fn,
                         const std::function<std::string(size_t)>& what);

}  // namespace oz
