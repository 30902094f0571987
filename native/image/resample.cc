// Pillow's antialiased bilinear and bicubic resizes of 8-bit RGB (libImaging/Resample.c's algorithm: a triangle, or
// Keys' cubic with a = -0.5, widened by the scale factor, coefficients normalised and rounded to 22-bit fixed point,
// a horizontal pass then a vertical pass, each rounded to 8 bits). Written here because no maintained library
// reproduces Pillow's pixels: libvips (sharp) pre-shrinks with a box filter and differed by up to 17 grey levels on
// striped or text images. Plain C++ (no N-API): addon.cc runs it in libuv's thread pool.
#include "resample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace mmtrain_image {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int32_t kRound = 1 << (kPrecisionBits - 1);

double Triangle(double x) {
  if (x < 0) x = -x;
  return x < 1 ? 1 - x : 0;
}

// Pillow's bicubic_filter: Keys' cubic convolution with a = -0.5, support 2.
double Bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

struct Filter {
  double (*fn)(double);
  double support;
};
constexpr Filter kFilters[] = {{Triangle, 1.0}, {Bicubic, 2.0}};

struct Coefficients {
  std::vector<int> start, count;
  std::vector<int32_t> weights;
  int ksize = 0;
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for input [0, inSize) onto outSize pixels.
Coefficients Compute(int inSize, int outSize, const Filter& f) {
  Coefficients c;
  const double scale = static_cast<double>(inSize) / outSize;
  const double filterScale = std::max(scale, 1.0);
  const double support = f.support * filterScale;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.start.resize(outSize);
  c.count.resize(outSize);
  c.weights.assign(static_cast<size_t>(outSize) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < outSize; xx++) {
    const double center = (xx + 0.5) * scale;
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), inSize) - xmin;
    double ww = 0;
    for (int x = 0; x < xmax; x++) {
      k[x] = f.fn((x + xmin - center + 0.5) / filterScale);
      ww += k[x];
    }
    for (int x = 0; x < c.ksize; x++) {
      const double w = x < xmax && ww != 0 ? k[x] / ww : 0;
      c.weights[static_cast<size_t>(xx) * c.ksize + x] =
          static_cast<int32_t>(w < 0 ? std::trunc(-0.5 + w * (1 << kPrecisionBits)) : std::trunc(0.5 + w * (1 << kPrecisionBits)));
    }
    c.start[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t Clip8(int32_t v) {
  const int32_t s = v >> kPrecisionBits;
  return static_cast<uint8_t>(s < 0 ? 0 : s > 255 ? 255 : s);
}

}  // namespace

void Resize(const uint8_t* src, int srcWidth, int left, int top, int width, int height, int outWidth, int outHeight, int filter, uint8_t* out) {
  const Filter& f = kFilters[filter];
  std::vector<uint8_t> mid;
  const uint8_t* m;
  if (outWidth == width) {
    mid.resize(static_cast<size_t>(width) * height * 3);
    for (int y = 0; y < height; y++) std::memcpy(&mid[static_cast<size_t>(y) * width * 3], src + (static_cast<size_t>(top + y) * srcWidth + left) * 3, static_cast<size_t>(width) * 3);
  } else {
    const Coefficients h = Compute(width, outWidth, f);
    mid.resize(static_cast<size_t>(outWidth) * height * 3);
    for (int y = 0; y < height; y++) {
      const uint8_t* row = src + (static_cast<size_t>(top + y) * srcWidth + left) * 3;
      uint8_t* o = &mid[static_cast<size_t>(y) * outWidth * 3];
      for (int xx = 0; xx < outWidth; xx++, o += 3) {
        const int32_t* w = &h.weights[static_cast<size_t>(xx) * h.ksize];
        const uint8_t* p = row + h.start[xx] * 3;
        int32_t r = kRound, g = kRound, b = kRound;
        for (int x = 0; x < h.count[xx]; x++, p += 3) {
          r += p[0] * w[x];
          g += p[1] * w[x];
          b += p[2] * w[x];
        }
        o[0] = Clip8(r);
        o[1] = Clip8(g);
        o[2] = Clip8(b);
      }
    }
  }
  m = mid.data();
  const size_t stride = static_cast<size_t>(outWidth) * 3;
  if (outHeight == height) {
    std::memcpy(out, m, stride * outHeight);
    return;
  }
  const Coefficients v = Compute(height, outHeight, f);
  std::vector<int32_t> acc(stride);
  for (int yy = 0; yy < outHeight; yy++) {
    std::fill(acc.begin(), acc.end(), kRound);
    const int32_t* w = &v.weights[static_cast<size_t>(yy) * v.ksize];
    for (int y = 0; y < v.count[yy]; y++) {
      const uint8_t* row = m + static_cast<size_t>(v.start[yy] + y) * stride;
      const int32_t wy = w[y];
      for (size_t c = 0; c < stride; c++) acc[c] += row[c] * wy;
    }
    uint8_t* o = out + yy * stride;
    for (size_t c = 0; c < stride; c++) o[c] = Clip8(acc[c]);
  }
}

}  // namespace mmtrain_image
