// BufferPool: reuses large byte buffers (unit buffers of computations, chunk strings) so that each
// computation does not fault fresh pages in from the kernel (nor zero them); bounded in bytes kept.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace oz {

// Asks the kernel for transparent huge pages for the pages of [p, p + n) not touched yet (with
// THP in "madvise" mode, the default of Debian's kernels, anonymous memory gets them only when
// asked). Best effort: a failure (no THP, a kernel without madvise support) changes nothing.
inline void AdviseHugePages(void* p, size_t n) {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t b = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n + page - 1) & ~(page - 1);
  (void)::madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
}

// A new zeroed buffer of n bytes. Big ones (chunks, units: megabytes, kept by the pools and reused)
// get huge pages before their first touch: 512x fewer page faults, and the strided reads that cut
// chunks out of a unit (one 256-byte row piece per 4 KiB page) stop missing the TLB.
template <typename Buf>
Buf NewBuffer(size_t n) {
  constexpr size_t kHugeFrom = 4u << 20;
  if (n < kHugeFrom) return Buf(n, 0);
  Buf b;
  b.reserve(n);  // allocated, not touched yet
  AdviseHugePages(b.data(), b.capacity());
  b.resize(n);
  return b;
}

// Buf: std::vector<uint8_t> or std::string. A kept buffer keeps its size, so a buffer of the same
// size comes back without zeroing a byte.
template <typename Buf>
class BasicBufferPool {
 public:
  explicit BasicBufferPool(uint64_t max_kept_bytes) : max_kept_(max_kept_bytes) {}

  // A buffer of exactly n bytes (contents unspecified), reusing a kept one when one is big enough.
  Buf Get(size_t n) {
    {
      std::lock_guard<std::mutex> l(mu_);
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i].capacity() >= n && (best == free_.size() || free_[i].capacity() < free_[best].capacity()))
          best = i;
      if (best != free_.size()) {
        Buf b = std::move(free_[best]);
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
        kept_ -= b.capacity();
        b.resize(n);
        return b;
      }
    }
    return NewBuffer<Buf>(n);
  }

  // Returns a buffer for reuse; dropped when the pool would exceed its budget.
  void Put(Buf&& b) {
    if (b.capacity() == 0) return;
    std::lock_guard<std::mutex> l(mu_);
    if (kept_ + b.capacity() > max_kept_) return;
    kept_ += b.capacity();
    free_.push_back(std::move(b));
  }

  // Raises the budget to at least n bytes (a user that will hold that many buffers in flight:
  // kept ones are reused before any is allocated, so keeping them adds nothing to the peak).
  void KeepAtLeast(uint64_t n) {
    std::lock_guard<std::mutex> l(mu_);
    max_kept_ = std::max(max_kept_, n);
  }

 private:
  uint64_t max_kept_;  // guarded by mu_
  std::mutex mu_;
  std::vector<Buf> free_;  // guarded by mu_
  uint64_t kept_ = 0;      // guarded by mu_
};

using BufferPool = BasicBufferPool<std::vector<uint8_t>>;
using StringPool = BasicBufferPool<std::string>;

// Shares s as an immutable string that goes back to pool when its last owner drops it (the pool
// lives as long as any string it handed out).
inline std::shared_ptr<const std::string> ShareToPool(std::string&& s, const std::shared_ptr<StringPool>& pool) {
  return std::shared_ptr<const std::string>(new std::string(std::move(s)), [pool](const std::string* p) {
    pool->Put(std::move(*const_cast<std::string*>(p)));
    delete p;
  });
}

// Gives a pooled buffer back when it goes out of scope, unless Release() moved it out.
template <typename Buf>
class BasicPooledBuffer {
 public:
  // n == 0 takes nothing from the pool until resize().
  BasicPooledBuffer(BasicBufferPool<Buf>& pool, size_t n) : pool_(pool), buf_(n ? pool.Get(n) : Buf()) {}
  ~BasicPooledBuffer() { pool_.Put(std::move(buf_)); }
  BasicPooledBuffer(const BasicPooledBuffer&) = delete;
  BasicPooledBuffer& operator=(const BasicPooledBuffer&) = delete;
  uint8_t* data() { return reinterpret_cast<uint8_t*>(buf_.data()); }
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
  // Hands the buffer over (it no longer goes back to the pool from here); leaves this empty.
  Buf Release() { return std::exchange(buf_, Buf()); }

 private:
  BasicBufferPool<Buf>& pool_;
  Buf buf_;
};

using PooledBuffer = BasicPooledBuffer<std::vector<uint8_t>>;
using PooledString = BasicPooledBuffer<std::string>;

}  // namespace oz
