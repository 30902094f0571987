// Pillow's antialiased resize of 8-bit RGB (resample.cc), shared by the JPEG path (jpeg.cc).
#pragma once
#include <cstdint>

namespace mmtrain_image {

/** The loops a resize runs: the fastest this CPU has, or one of them by name (tests compare them byte for byte). */
enum class ResizePath { kBest = 0, kScalar = 1, kSse2 = 2, kAvx2 = 3 };

/** Filters by code: 0 bilinear, 1 bicubic (src/data/resample.ts RESAMPLE_FILTERS). A path this build or CPU lacks: the best. */
void Resize(const uint8_t* src, int srcWidth, int left, int top, int width, int height, int outWidth, int outHeight, int filter, uint8_t* out, ResizePath path = ResizePath::kBest);

/** Whether this build and CPU can run a path (kScalar, Pillow's own loops, always). */
bool ResizePathAvailable(ResizePath path);

/** The path kBest stands for here. */
ResizePath BestResizePath();

}  // namespace mmtrain_image
