// convkit/src/result_cache.hpp -- memory for large results (>= kLargeResultBytes), reused.
//
// The first touch of a fresh page costs a page fault in which the OS zeroes it: for a
// 51 MB grad_x (ResNet stem, batch 16) that was 2-4 ms a call here, as long as the kernel
// writing it. glibc keeps freed blocks of up to 32 MiB for reuse (its mmap threshold rises
// to the largest block freed, up to that bound) but maps and unmaps larger ones each time,
// and a training step asks for the same large sizes step after step. So large results are
// allocated here: 2 MiB aligned (whole lines for streaming stores, whole huge pages) with
// transparent huge pages requested, and a freed block is kept, up to a byte limit, for the
// next result of the same rounded size. Thread safe.
#pragma once
#include <cstddef>

namespace convkit {

constexpr std::size_t kLargeResultBytes = std::size_t(16) << 20;   // = streaming.hpp's kStreamBytes

struct ResultCacheInfo {
    std::size_t cached_bytes, cached_blocks, limit_bytes, hits, misses;
};

// At least `bytes` (>= 1) bytes, 2 MiB aligned; nullptr when out of memory.
void* result_alloc(std::size_t bytes);
// Returns a block of result_alloc(bytes) (the same `bytes`): kept while the cache stays
// within its limit (the oldest blocks go first), else given back to the OS.
void result_free(void* p, std::size_t bytes);
ResultCacheInfo result_cache_info();
// Bytes the cache may keep (0: keep none); frees the oldest blocks beyond it.
void set_result_cache_limit(std::size_t bytes);

}  // namespace convkit
