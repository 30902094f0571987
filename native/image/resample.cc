// Pillow's antialiased bilinear and bicubic resizes of 8-bit RGB (libImaging/Resample.c's algorithm: a triangle, or
// Keys' cubic with a = -0.5, widened by the scale factor, coefficients normalised and rounded to 22-bit fixed point,
// a horizontal pass then a vertical pass, each rounded to 8 bits). Written here because no maintained library
// reproduces Pillow's pixels: libvips (sharp) pre-shrinks with a box filter and differed by up to 17 grey levels on
// striped or text images. On x86-64 both passes run with SSE2 (16-bit multiply-adds on split weights, below), which
// give the scalar loops' bytes exactly (tested on random images against the scalar path) in ~0.55x their time (a
// 320 px image to 224: 0.64 -> 0.41 ms; 640x480: 1.2 -> 0.69 ms), or, on CPUs with AVX2 (checked when the addon
// loads), the same arithmetic on two output pixels (horizontal) or 16 bytes (vertical) at once. Plain C++ (no N-API):
// addon.cc runs it in libuv's thread pool.
#include "resample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "scratch.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MMTRAIN_AVX2 1
#endif

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

// The horizontal pass as Pillow writes it: one output pixel at a time, its taps in turn, three sums (R, G, B).
void HorizontalReference(const uint8_t* src, int srcWidth, int left, int top, int height, int outWidth, const Coefficients& h, uint8_t* mid) {
  for (int y = 0; y < height; y++) {
    const uint8_t* row = src + (static_cast<size_t>(top + y) * srcWidth + left) * 3;
    uint8_t* o = mid + static_cast<size_t>(y) * outWidth * 3;
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

// The vertical pass: each output row the weighted sum of its input rows, every byte of a row alike.
void VerticalReference(const uint8_t* mid, size_t stride, int outHeight, const Coefficients& v, uint8_t* out) {
  std::vector<int32_t> acc(stride);
  for (int yy = 0; yy < outHeight; yy++) {
    std::fill(acc.begin(), acc.end(), kRound);
    const int32_t* w = &v.weights[static_cast<size_t>(yy) * v.ksize];
    for (int y = 0; y < v.count[yy]; y++) {
      const uint8_t* row = mid + static_cast<size_t>(v.start[yy] + y) * stride;
      const int32_t wy = w[y];
      for (size_t c = 0; c < stride; c++) acc[c] += row[c] * wy;
    }
    uint8_t* o = out + yy * stride;
    for (size_t c = 0; c < stride; c++) o[c] = Clip8(acc[c]);
  }
}

#if defined(__SSE2__)
// The same sums with SSE2 (every x86-64 CPU has it), bit for bit: pmaddwd multiplies 16-bit pairs, so each 22-bit
// weight is split as w = hi * 2^15 + lo (lo in [0, 2^15), hi in [-64, 128]) and the sum taken as
// (sum p * hi) * 2^15 + sum p * lo in 32-bit lanes. The lanes wrap where a partial sum would overflow, but the whole
// sum fits in 32 bits (Pillow's own accumulator), and wrapping addition is exact modulo 2^32: the result is Pillow's.

// Each output's taps in pairs (a zero weight past its count), each pair's weights split into 16-bit halves and laid
// out for pmaddwd against `lanes` pairs of samples, [R0 R1 G0 G1 B0 B1 . .] (3) or a byte of two rows 4 times (4):
// lo = [lo0 lo1] x lanes, hi = [hi0 hi1] x lanes, zeros after.
struct PairWeights {
  int pairs = 0;
  std::vector<int16_t> lo, hi;  // [(output * pairs + pair) * 8 + lane]
};

PairWeights Pairs(const Coefficients& c, int outSize, int lanes) {
  PairWeights s;
  s.pairs = (c.ksize + 1) / 2;
  s.lo.assign(static_cast<size_t>(outSize) * s.pairs * 8, 0);
  s.hi.assign(static_cast<size_t>(outSize) * s.pairs * 8, 0);
  for (int o = 0; o < outSize; o++) {
    const int32_t* w = &c.weights[static_cast<size_t>(o) * c.ksize];
    for (int k = 0; k < s.pairs; k++) {
      const int32_t w0 = 2 * k < c.count[o] ? w[2 * k] : 0;
      const int32_t w1 = 2 * k + 1 < c.count[o] ? w[2 * k + 1] : 0;
      const auto lo = [](int32_t v) { return static_cast<int16_t>(v & 0x7fff); };
      const auto hi = [](int32_t v) { return static_cast<int16_t>(v >> 15); };
      int16_t* l = &s.lo[(static_cast<size_t>(o) * s.pairs + k) * 8];
      int16_t* h = &s.hi[(static_cast<size_t>(o) * s.pairs + k) * 8];
      for (int c = 0; c < lanes; c++) {
        l[2 * c] = lo(w0), l[2 * c + 1] = lo(w1);
        h[2 * c] = hi(w0), h[2 * c + 1] = hi(w1);
      }
    }
  }
  return s;
}

// Output row yy of a vertical pass on pairs of rows: its input rows in `rows` (2 * pairs of them; a pair's second row
// past the count has weight 0, so any row inside the image will do), its split weights and where it goes.
struct PairedRow {
  const int16_t* lo;
  const int16_t* hi;
  uint8_t* out;
};

inline PairedRow RowOf(const PairWeights& s, const Coefficients& v, const uint8_t* mid, size_t stride, int yy, uint8_t* out, const uint8_t** rows) {
  for (int k = 0; k < 2 * s.pairs; k++) rows[k] = mid + static_cast<size_t>(v.start[yy] + (k < v.count[yy] ? k : 0)) * stride;
  const size_t at = static_cast<size_t>(yy) * s.pairs * 8;
  return {&s.lo[at], &s.hi[at], out + yy * stride};
}

// Bytes [from, stride) of output row yy, one at a time as VerticalReference sums them: the vector passes' bytes past
// their last whole vector.
inline void VerticalTail(const uint8_t* mid, size_t stride, const Coefficients& v, int yy, size_t from, uint8_t* o) {
  const int32_t* w = &v.weights[static_cast<size_t>(yy) * v.ksize];
  for (size_t c = from; c < stride; c++) {
    int32_t acc = kRound;
    for (int y = 0; y < v.count[yy]; y++) acc += mid[static_cast<size_t>(v.start[yy] + y) * stride + c] * w[y];
    o[c] = Clip8(acc);
  }
}

void HorizontalSse2(const uint8_t* src, int srcWidth, int left, int top, int width, int height, int outWidth, const Coefficients& h, uint8_t* mid) {
  const PairWeights s = Pairs(h, outWidth, 3);
  // a row with room after it: a pair of taps reads 8 bytes from its first pixel (2 pixels and 2 bytes more), the
  // last output's pixel is stored as 4 bytes
  std::vector<uint8_t> row(static_cast<size_t>(width) * 3 + 2 * s.pairs * 3 + 16, 0);
  std::vector<uint8_t> line(static_cast<size_t>(outWidth) * 3 + 4);
  const __m128i zero = _mm_setzero_si128();
  const __m128i round = _mm_set1_epi32(kRound);
  for (int y = 0; y < height; y++) {
    std::memcpy(row.data(), src + (static_cast<size_t>(top + y) * srcWidth + left) * 3, static_cast<size_t>(width) * 3);
    for (int xx = 0; xx < outWidth; xx++) {
      const uint8_t* p = row.data() + h.start[xx] * 3;
      const int16_t* wl = &s.lo[static_cast<size_t>(xx) * s.pairs * 8];
      const int16_t* wh = &s.hi[static_cast<size_t>(xx) * s.pairs * 8];
      __m128i accLo = zero, accHi = zero;
      for (int k = 0; k < s.pairs; k++, p += 6, wl += 8, wh += 8) {
        const __m128i a = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)), zero);  // R0 G0 B0 R1 G1 B1 R2 G2
        const __m128i x = _mm_unpacklo_epi16(a, _mm_srli_si128(a, 6));                                     // R0 R1 G0 G1 B0 B1 R1 R2
        accLo = _mm_add_epi32(accLo, _mm_madd_epi16(x, _mm_loadu_si128(reinterpret_cast<const __m128i*>(wl))));
        accHi = _mm_add_epi32(accHi, _mm_madd_epi16(x, _mm_loadu_si128(reinterpret_cast<const __m128i*>(wh))));
      }
      __m128i sum = _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(accHi, 15), accLo), round);  // R G B .
      sum = _mm_srai_epi32(sum, kPrecisionBits);
      sum = _mm_packs_epi32(sum, sum);
      const int32_t px = _mm_cvtsi128_si32(_mm_packus_epi16(sum, sum));
      std::memcpy(&line[static_cast<size_t>(xx) * 3], &px, 4);
    }
    std::memcpy(mid + static_cast<size_t>(y) * outWidth * 3, line.data(), static_cast<size_t>(outWidth) * 3);
  }
}

// Output row by output row, 8 bytes at a time, two input rows at once: [r0 r1] byte pairs against [w0 w1] pairs.
void VerticalSse2(const uint8_t* mid, size_t stride, int outHeight, const Coefficients& v, uint8_t* out) {
  const PairWeights s = Pairs(v, outHeight, 4);
  const __m128i zero = _mm_setzero_si128();
  const __m128i round = _mm_set1_epi32(kRound);
  const size_t whole = stride / 8 * 8;
  std::vector<const uint8_t*> rows(static_cast<size_t>(s.pairs) * 2);
  for (int yy = 0; yy < outHeight; yy++) {
    const PairedRow r = RowOf(s, v, mid, stride, yy, out, rows.data());
    for (size_t c = 0; c < whole; c += 8) {
      __m128i lo0 = zero, lo1 = zero, hi0 = zero, hi1 = zero;
      for (int k = 0; k < s.pairs; k++) {
        const __m128i a = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[2 * k] + c));
        const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[2 * k + 1] + c));
        const __m128i ab = _mm_unpacklo_epi8(a, b);  // a0 b0 a1 b1 ... a7 b7
        const __m128i x0 = _mm_unpacklo_epi8(ab, zero), x1 = _mm_unpackhi_epi8(ab, zero);
        const __m128i wl = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r.lo + 8 * k));
        const __m128i wh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r.hi + 8 * k));
        lo0 = _mm_add_epi32(lo0, _mm_madd_epi16(x0, wl));
        lo1 = _mm_add_epi32(lo1, _mm_madd_epi16(x1, wl));
        hi0 = _mm_add_epi32(hi0, _mm_madd_epi16(x0, wh));
        hi1 = _mm_add_epi32(hi1, _mm_madd_epi16(x1, wh));
      }
      const __m128i s0 = _mm_srai_epi32(_mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(hi0, 15), lo0), round), kPrecisionBits);
      const __m128i s1 = _mm_srai_epi32(_mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(hi1, 15), lo1), round), kPrecisionBits);
      const __m128i w16 = _mm_packs_epi32(s0, s1);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(r.out + c), _mm_packus_epi16(w16, w16));
    }
    VerticalTail(mid, stride, v, yy, whole, r.out);
  }
}
#endif

#if defined(MMTRAIN_AVX2)
// The SSE2 passes' arithmetic in 256-bit registers: each 128-bit lane does what one SSE2 register did (AVX2's
// unpacks, shifts and packs work lane by lane), so the bytes are the SSE2 passes' and the scalar loops'. Compiled for
// AVX2 alone (target attribute) and used only where the CPU has it (Avx2()).

// Two output pixels at once: lane 0 the even one, lane 1 the odd one, each with its own taps and weights.
__attribute__((target("avx2"))) void HorizontalAvx2(const uint8_t* src, int srcWidth, int left, int top, int width, int height, int outWidth, const Coefficients& h, uint8_t* mid) {
  const PairWeights s = Pairs(h, outWidth, 3);
  const int pairs = s.pairs;
  // an odd last output gets a partner with zero weights reading the same pixels; its result goes past the line's end
  const int evenWidth = (outWidth + 1) / 2 * 2;
  std::vector<int16_t> wl(static_cast<size_t>(evenWidth) * pairs * 8, 0), wh(wl.size(), 0);
  for (int xx = 0; xx < outWidth; xx++) {
    for (int k = 0; k < pairs; k++) {
      // [(pair of outputs * pairs + k) * 16 + (output's lane) * 8]: a pair of taps' weights for both outputs side by side
      const size_t to = ((static_cast<size_t>(xx / 2) * pairs + k) * 2 + xx % 2) * 8;
      const size_t from = (static_cast<size_t>(xx) * pairs + k) * 8;
      std::memcpy(&wl[to], &s.lo[from], 8 * sizeof(int16_t));
      std::memcpy(&wh[to], &s.hi[from], 8 * sizeof(int16_t));
    }
  }
  std::vector<uint8_t> row(static_cast<size_t>(width) * 3 + 2 * pairs * 3 + 16, 0);
  std::vector<uint8_t> line(static_cast<size_t>(evenWidth) * 3 + 4);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i round = _mm256_set1_epi32(kRound);
  for (int y = 0; y < height; y++) {
    std::memcpy(row.data(), src + (static_cast<size_t>(top + y) * srcWidth + left) * 3, static_cast<size_t>(width) * 3);
    for (int xx = 0; xx < evenWidth; xx += 2) {
      const uint8_t* p0 = row.data() + h.start[xx] * 3;
      const uint8_t* p1 = row.data() + h.start[xx + 1 < outWidth ? xx + 1 : xx] * 3;
      const int16_t* l = &wl[static_cast<size_t>(xx / 2) * pairs * 16];
      const int16_t* hh = &wh[static_cast<size_t>(xx / 2) * pairs * 16];
      __m256i accLo = zero, accHi = zero;
      for (int k = 0; k < pairs; k++, p0 += 6, p1 += 6, l += 16, hh += 16) {
        const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p0))), _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p1)), 1);
        const __m256i a = _mm256_unpacklo_epi8(b, zero);                     // R0 G0 B0 R1 G1 B1 R2 G2 | the same, odd output
        const __m256i x = _mm256_unpacklo_epi16(a, _mm256_srli_si256(a, 6));  // R0 R1 G0 G1 B0 B1 R1 R2 | ...
        accLo = _mm256_add_epi32(accLo, _mm256_madd_epi16(x, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(l))));
        accHi = _mm256_add_epi32(accHi, _mm256_madd_epi16(x, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hh))));
      }
      __m256i sum = _mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(accHi, 15), accLo), round);  // R G B . | R G B .
      sum = _mm256_srai_epi32(sum, kPrecisionBits);
      sum = _mm256_packs_epi32(sum, sum);
      sum = _mm256_packus_epi16(sum, sum);
      const int32_t even = _mm256_cvtsi256_si32(sum);
      const int32_t odd = _mm_cvtsi128_si32(_mm256_extracti128_si256(sum, 1));
      std::memcpy(&line[static_cast<size_t>(xx) * 3], &even, 4);
      std::memcpy(&line[static_cast<size_t>(xx + 1) * 3], &odd, 4);  // (after the even one: it overwrites its 4th byte)
    }
    std::memcpy(mid + static_cast<size_t>(y) * outWidth * 3, line.data(), static_cast<size_t>(outWidth) * 3);
  }
}

// 16 bytes of an output row at once, two input rows at a time (the SSE2 pass did 8).
__attribute__((target("avx2"))) void VerticalAvx2(const uint8_t* mid, size_t stride, int outHeight, const Coefficients& v, uint8_t* out) {
  const PairWeights s = Pairs(v, outHeight, 4);
  const __m256i round = _mm256_set1_epi32(kRound);
  const size_t whole = stride / 16 * 16;
  std::vector<const uint8_t*> rows(static_cast<size_t>(s.pairs) * 2);
  for (int yy = 0; yy < outHeight; yy++) {
    const PairedRow r = RowOf(s, v, mid, stride, yy, out, rows.data());
    for (size_t c = 0; c < whole; c += 16) {
      __m256i lo0 = _mm256_setzero_si256(), lo1 = lo0, hi0 = lo0, hi1 = lo0;
      for (int k = 0; k < s.pairs; k++) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2 * k] + c));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2 * k + 1] + c));
        const __m256i x0 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b));  // a0 b0 ... a7 b7
        const __m256i x1 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, b));  // a8 b8 ... a15 b15
        const __m256i wl = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r.lo + 8 * k)));
        const __m256i wh = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r.hi + 8 * k)));
        lo0 = _mm256_add_epi32(lo0, _mm256_madd_epi16(x0, wl));
        lo1 = _mm256_add_epi32(lo1, _mm256_madd_epi16(x1, wl));
        hi0 = _mm256_add_epi32(hi0, _mm256_madd_epi16(x0, wh));
        hi1 = _mm256_add_epi32(hi1, _mm256_madd_epi16(x1, wh));
      }
      const __m256i s0 = _mm256_srai_epi32(_mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(hi0, 15), lo0), round), kPrecisionBits);  // bytes 0-7
      const __m256i s1 = _mm256_srai_epi32(_mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(hi1, 15), lo1), round), kPrecisionBits);  // bytes 8-15
      // packs works lane by lane: [s0 0-3, s1 0-3 | s0 4-7, s1 4-7]; put back in order, then to bytes
      const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(s0, s1), 0xd8);  // s0 0-7 | s1 0-7
      const __m256i b8 = _mm256_permute4x64_epi64(_mm256_packus_epi16(w16, w16), 0x08);  // bytes 0-7, 8-15 in the low half
      _mm_storeu_si128(reinterpret_cast<__m128i*>(r.out + c), _mm256_castsi256_si128(b8));
    }
    VerticalTail(mid, stride, v, yy, whole, r.out);
  }
}

bool Avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

}  // namespace

ResizePath BestResizePath() {
#if defined(MMTRAIN_AVX2)
  if (Avx2()) return ResizePath::kAvx2;
#endif
#if defined(__SSE2__)
  return ResizePath::kSse2;
#else
  return ResizePath::kScalar;
#endif
}

bool ResizePathAvailable(ResizePath path) {
  switch (path) {
    case ResizePath::kBest:
    case ResizePath::kScalar:
      return true;
    case ResizePath::kSse2:
#if defined(__SSE2__)
      return true;
#else
      return false;
#endif
    case ResizePath::kAvx2:
#if defined(MMTRAIN_AVX2)
      return Avx2();
#else
      return false;
#endif
  }
  return false;
}

void Resize(const uint8_t* src, int srcWidth, int left, int top, int width, int height, int outWidth, int outHeight, int filter, uint8_t* out, ResizePath path) {
  static const ResizePath best = BestResizePath();
  if (path == ResizePath::kBest || !ResizePathAvailable(path)) path = best;
  const Filter& f = kFilters[filter];
  // the intermediate rows: this thread's scratch memory, kept from one image to the next (scratch.h)
  thread_local Scratch scratch;
  struct ReleaseAfter {
    Scratch& s;
    ~ReleaseAfter() { s.Release(); }
  } release{scratch};
  uint8_t* mid;
  if (outWidth == width) {
    mid = scratch.Get(static_cast<size_t>(width) * height * 3);
    for (int y = 0; y < height; y++) std::memcpy(mid + static_cast<size_t>(y) * width * 3, src + (static_cast<size_t>(top + y) * srcWidth + left) * 3, static_cast<size_t>(width) * 3);
  } else {
    const Coefficients h = Compute(width, outWidth, f);
    mid = scratch.Get(static_cast<size_t>(outWidth) * height * 3);
    switch (path) {
#if defined(MMTRAIN_AVX2)
      case ResizePath::kAvx2:
        HorizontalAvx2(src, srcWidth, left, top, width, height, outWidth, h, mid);
        break;
#endif
#if defined(__SSE2__)
      case ResizePath::kSse2:
        HorizontalSse2(src, srcWidth, left, top, width, height, outWidth, h, mid);
        break;
#endif
      default:
        HorizontalReference(src, srcWidth, left, top, height, outWidth, h, mid);
    }
  }
  const size_t stride = static_cast<size_t>(outWidth) * 3;
  if (outHeight == height) {
    std::memcpy(out, mid, stride * outHeight);
    return;
  }
  const Coefficients v = Compute(height, outHeight, f);
  switch (path) {
#if defined(MMTRAIN_AVX2)
    case ResizePath::kAvx2:
      return VerticalAvx2(mid, stride, outHeight, v, out);
#endif
#if defined(__SSE2__)
    case ResizePath::kSse2:
      return VerticalSse2(mid, stride, outHeight, v, out);
#endif
    default:
      return VerticalReference(mid, stride, outHeight, v, out);
  }
}

}  // namespace mmtrain_image
