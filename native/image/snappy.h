// Snappy decompression with the snappy library (snappy.cc), for Parquet pages read on the stream thread.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mmtrain_image {

/** Whether the addon was built with the snappy library (MMTRAIN_SNAPPY). */
bool SnappyAvailable();

/** The uncompressed length a snappy block declares; false when its header is invalid. */
bool SnappyLength(const uint8_t* src, size_t len, size_t* out);

/** Decompresses a snappy block into `out` (exactly `outLen` bytes, its declared length); false on invalid data. */
bool SnappyUncompress(const uint8_t* src, size_t len, uint8_t* out, size_t outLen);

}  // namespace mmtrain_image
