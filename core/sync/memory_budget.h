// MemoryBudget: a byte semaphore bounding the working buffers of concurrent computations.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace oz {

class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t total) : total_(total ? total : 1) {}

  // Blocks until `bytes` (clamped to the total, so one oversized request runs alone) are free.
  // Returns the amount actually reserved, to pass to Release.
  uint64_t Acquire(uint64_t bytes) {
    if (bytes > total_) bytes = total_;
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return used_ + bytes <= total_; });
    used_ += bytes;
    return bytes;
  }
  void Release(uint64_t bytes) {
    {
      std::lock_guard<std::mutex> l(mu_);
      used_ -= bytes;
    }
    cv_.notify_all();
  }
  uint64_t total() const { return total_; }

 private:
  const uint64_t total_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t used_ = 0;  // guarded by mu_
};

// RAII reservation.
class MemoryReservation {
 public:
  MemoryReservation(MemoryBudget& b, uint64_t bytes) : b_(b), bytes_(b.Acquire(bytes)) {}
  ~MemoryReservation() { b_.Release(bytes_); }
  MemoryReservation(const MemoryReservation&) = delete;
  MemoryReservation& operator=(const MemoryReservation&) = delete;

 private:
  MemoryBudget& b_;
  uint64_t bytes_;
};

}  // namespace oz
