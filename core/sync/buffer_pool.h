// BufferPool: reuses large byte buffers (unit buffers of computations) so that each computation
// does not fault fresh pages in from the kernel; bounded in bytes kept.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace oz {

class BufferPool {
 public:
  explicit BufferPool(uint64_t max_kept_bytes) : max_kept_(max_kept_bytes) {}

  // A buffer of exactly n bytes (contents unspecified), reusing a kept one when one is big enough.
  std::vector<uint8_t> Get(size_t n) {
    {
      std::lock_guard<std::mutex> l(mu_);
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i].capacity() >= n && (best == free_.size() || free_[i].capacity() < free_[best].capacity()))
          best = i;
      if (best != free_.size()) {
        std::vector<uint8_t> b = std::move(free_[best]);
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
        kept_ -= b.capacity();
        b.resize(n);
        return b;
      }
    }
    return std::vector<uint8_t>(n);
  }

  // Returns a buffer for reuse; dropped when the pool would exceed its budget.
  void Put(std::vector<uint8_t>&& b) {
    if (b.capacity() == 0) return;
    std::lock_guard<std::mutex> l(mu_);
    if (kept_ + b.capacity() > max_kept_) return;
    kept_ += b.capacity();
    free_.push_back(std::move(b));
  }

 private:
  const uint64_t max_kept_;
  std::mutex mu_;
  std::vector<std::vector<uint8_t>> free_;  // guarded by mu_
  uint64_t kept_ = 0;                       // guarded by mu_
};

// Gives a pooled buffer back when it goes out of scope.
class PooledBuffer {
 public:
  // n == 0 takes nothing from the pool until resize().
  PooledBuffer(BufferPool& pool, size_t n) : pool_(pool), buf_(n ? pool.Get(n) : std::vector<uint8_t>()) {}
  ~PooledBuffer() { pool_.Put(std::move(buf_)); }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  uint8_t* data() { return buf_.data(); }
  size_t size() const { return buf_.size(); }
  // Contents are not preserved when the buffer must grow (a bigger pooled buffer is swapped in).
  void resize(size_t n) {
    if (n > buf_.capacity()) {
      pool_.Put(std::move(buf_));
      buf_ = pool_.Get(n);
    } else {
      buf_.resize(n);
    }
  }

 private:
  BufferPool& pool_;
  std::vector<uint8_t> buf_;
};

}  // namespace oz
