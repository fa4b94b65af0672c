// LruCache: a thread-safe map with least-recently-used eviction under a cost budget (bytes, or 1
// per entry). Values are shared_ptrs, so an evicted value stays valid for its holders.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <utility>

#include "core/sync/mutex.h"

namespace oz {

template <typename K, typename V, typename Hash = std::hash<K>>
class LruCache {
 public:
  explicit LruCache(uint64_t budget) : budget_(budget) {}

  // The value, marked most recently used; nullptr on a miss.
  std::shared_ptr<V> Get(const K& k) {
    MutexLock l(mu_);
    auto it = index_.find(k);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->value;
  }

  // True if k is cached (recency unchanged).
  bool Contains(const K& k) const {
    MutexLock l(mu_);
    return index_.count(k) != 0;
  }

  // Inserts or replaces; a value costing more than the budget is not kept.
  void Put(const K& k, std::shared_ptr<V> v, uint64_t cost) {
    MutexLock l(mu_);
    if (auto it = index_.find(k); it != index_.end()) {
      used_ -= it->second->cost;
      lru_.erase(it->second);
      index_.erase(it);
    }
    if (cost > budget_) return;
    while (used_ + cost > budget_ && !lru_.empty()) {
      used_ -= lru_.back().cost;
      index_.erase(lru_.back().key);
      lru_.pop_back();
    }
    lru_.push_front(Node{k, std::move(v), cost});
    index_.emplace(k, lru_.begin());
    used_ += cost;
  }

  uint64_t used() const {
    MutexLock l(mu_);
    return used_;
  }

 private:
  struct Node {
    K key;
    std::shared_ptr<V> value;
    uint64_t cost;
  };
  const uint64_t budget_;
  mutable Mutex mu_;
  std::list<Node> lru_ OZ_GUARDED_BY(mu_);  // front = newest
  std::unordered_map<K, typename std::list<Node>::iterator, Hash> index_ OZ_GUARDED_BY(mu_);
  uint64_t used_ OZ_GUARDED_BY(mu_) = 0;
};

}  // namespace oz
