// Mutex and MutexLock with clang's thread-safety attributes, so `-Wthread-safety` (clang builds,
// scripts/test.sh) checks the locking rules written on the structs: OZ_GUARDED_BY(mu) on a member,
// OZ_REQUIRES(mu) / OZ_EXCLUDES(mu) on a function, OZ_ACQUIRED_AFTER(mu) for a lock order. With g++
// the attributes expand to nothing and these are plain std::mutex / std::lock_guard.
#pragma once

#include <mutex>

#if defined(__clang__)
#define OZ_TSA(x) __attribute__((x))
#else
#define OZ_TSA(x)
#endif

#define OZ_CAPABILITY(x) OZ_TSA(capability(x))
#define OZ_SCOPED_CAPABILITY OZ_TSA(scoped_lockable)
#define OZ_GUARDED_BY(x) OZ_TSA(guarded_by(x))
#define OZ_PT_GUARDED_BY(x) OZ_TSA(pt_guarded_by(x))
#define OZ_ACQUIRED_AFTER(...) OZ_TSA(acquired_after(__VA_ARGS__))
#define OZ_REQUIRES(...) OZ_TSA(requires_capability(__VA_ARGS__))
#define OZ_EXCLUDES(...) OZ_TSA(locks_excluded(__VA_ARGS__))
#define OZ_ACQUIRE(...) OZ_TSA(acquire_capability(__VA_ARGS__))
#define OZ_RELEASE(...) OZ_TSA(release_capability(__VA_ARGS__))
#define OZ_NO_THREAD_SAFETY_ANALYSIS OZ_TSA(no_thread_safety_analysis)

namespace oz {

class OZ_CAPABILITY("mutex") Mutex {
 public:
  void lock() OZ_ACQUIRE() { m_.lock(); }
  void unlock() OZ_RELEASE() { m_.unlock(); }
  // For std::condition_variable waits (std::unique_lock<std::mutex> on it, with the Mutex held).
  std::mutex& native() { return m_; }

 private:
  std::mutex m_;
};

class OZ_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& m) OZ_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~MutexLock() OZ_RELEASE() { m_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& m_;
};

}  // namespace oz
