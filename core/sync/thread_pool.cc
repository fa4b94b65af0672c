// ThreadPool implementation. ParallelFor lets the caller work too, so a pool of N threads
// serving M callers makes progress even when every worker is busy.
#include "core/sync/thread_pool.h"

#include <new>

#include <atomic>

namespace oz {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers_.reserve(threads);
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void ThreadPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (n == 1) {
    fn(0);
    return;
  }
  struct Shared {
    std::atomic<size_t> next{0};
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;  // guarded by mu
  };
  auto shared = std::make_shared<Shared>();
  auto run = [shared, n, &fn] {
    size_t finished = 0;
    for (size_t i; (i = shared->next.fetch_add(1)) < n;) {
      fn(i);
      ++finished;
    }
    if (finished) {
      std::lock_guard<std::mutex> l(shared->mu);
      shared->done += finished;
      if (shared->done == n) shared->cv.notify_all();
    }
  };
  // Helpers only pick up indices; once indices run out they return without touching fn,
  // so fn may safely go out of scope after we return.
  size_t helpers = std::min(n - 1, workers_.size());
  for (size_t h = 0; h < helpers; ++h) Submit(run);
  run();
  std::unique_lock<std::mutex> l(shared->mu);
  shared->cv.wait(l, [&] { return shared->done == n; });
}

Status ParallelForStatus(ThreadPool* pool, size_t n, const std::function<Status(size_t)>& fn,
                         const std::function<std::string(size_t)>& what) {
  std::vector<Status> results(n);
  auto work = [&](size_t i) {
    try {
      results[i] = fn(i);
    } catch (const std::bad_alloc&) {
      results[i] = ResourceExhaustedError("out of memory " + what(i));
    } catch (...) {
      results[i] = InternalError("unexpected exception " + what(i));
    }
  };
  if (pool && n > 1)
    pool->ParallelFor(n, work);
  else
    for (size_t i = 0; i < n; ++i) work(i);
  for (Status& st : results)
    if (!st.ok()) return st;
  return OkStatus();
}

}  // namespace oz
