// convkit/src/result_cache.cpp -- see result_cache.hpp.
#include "result_cache.hpp"

#include <cstdlib>
#include <deque>
#include <mutex>
#include <utility>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace convkit {
namespace {

constexpr std::size_t kHugePage = std::size_t(2) << 20;

std::size_t rounded(std::size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

struct ResultCache {
    std::mutex lock;
    std::deque<std::pair<void*, std::size_t>> blocks;   // (block, rounded size), oldest first
    std::size_t cached_bytes = 0, limit = std::size_t(256) << 20, hits = 0, misses = 0;

    // Frees the oldest blocks until the cache holds at most `limit` bytes (lock held).
    void trim() {
        while (cached_bytes > limit) {
            std::free(blocks.front().first);
            cached_bytes -= blocks.front().second;
            blocks.pop_front();
        }
    }
};

ResultCache& cache() {
    static ResultCache* c = new ResultCache;   // never destroyed: results may outlive static destruction
    return *c;
}

}  // namespace

void* result_alloc(std::size_t bytes) {
    const std::size_t size = rounded(bytes ? bytes : 1);
    ResultCache& c = cache();
    {
        std::lock_guard<std::mutex> guard(c.lock);
        for (auto it = c.blocks.rbegin(); it != c.blocks.rend(); ++it) {   // the newest is the warmest
            if (it->second != size) continue;
            void* p = it->first;
            c.cached_bytes -= size;
            c.blocks.erase(std::next(it).base());
            ++c.hits;
            return p;
        }
        ++c.misses;
    }
    void* p = nullptr;
    if (posix_memalign(&p, kHugePage, size) != 0) return nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, size, MADV_HUGEPAGE);   // advice only: where THP is off it changes nothing
#endif
    return p;
}

void result_free(void* p, std::size_t bytes) {
    if (!p) return;
    ResultCache& c = cache();
    std::lock_guard<std::mutex> guard(c.lock);
    c.blocks.emplace_back(p, rounded(bytes ? bytes : 1));
    c.cached_bytes += c.blocks.back().second;
    c.trim();
}

ResultCacheInfo result_cache_info() {
    ResultCache& c = cache();
    std::lock_guard<std::mutex> guard(c.lock);
    return {c.cached_bytes, c.blocks.size(), c.limit, c.hits, c.misses};
}

void set_result_cache_limit(std::size_t bytes) {
    ResultCache& c = cache();
    std::lock_guard<std::mutex> guard(c.lock);
    c.limit = bytes;
    c.trim();
}

}  // namespace convkit
