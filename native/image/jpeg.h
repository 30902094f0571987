// JPEG decoding with libjpeg (jpeg.cc): the plain JPEGs it takes, decoded to 8-bit RGB.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "scratch.h"

namespace mmtrain_image {

/** Whether the addon was built with libjpeg (MMTRAIN_JPEG); without it the two below always answer false. */
bool JpegAvailable();

/** The size of a plain JPEG from its markers; false when the file is left to sharp. */
bool ProbeJpeg(const uint8_t* src, size_t len, int* width, int* height);

/**
 * Decodes a plain JPEG into `out`'s memory (width * height * 3, row-major RGB), returned; null on any error or
 * warning.
 */
const uint8_t* DecodeJpeg(const uint8_t* src, size_t len, Scratch& out, int* width, int* height);

}  // namespace mmtrain_image
