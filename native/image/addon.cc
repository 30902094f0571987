// mmtrain_image: the image addon's N-API surface. Pillow's resize (resample.cc) and the JPEG path (jpeg.cc: decode
// then resize in one trip) run in libuv's thread pool; jpegHeader reads markers only, synchronously. A separate addon
// without LibTorch, so the batch thread can load it. TypeScript (src/data/resample.ts, src/data/jpeg.ts) validates.
//
// resize(src: Uint8Array, srcWidth, left, top, width, height, outWidth, outHeight, filter, out?): Promise<Uint8Array>
//   resizes the box (left, top, width, height) of a row-major RGB image, as Pillow's
//   img.crop(box).resize((outWidth, outHeight), Image.BILINEAR) (filter 0) or Image.BICUBIC (filter 1); into `out`
//   (a Uint8Array of outWidth * outHeight * 3 bytes, e.g. a buffer used before) when given, else a new Buffer.
// resizeWith(path, same arguments): Uint8Array   synchronous, with the loops named ("scalar": Pillow's own; "sse2",
//   "avx2"): what the SIMD passes must equal byte for byte, for tests; resizePaths: those this build and CPU run, the
//   one resize() uses first
// Built with libjpeg only:
// jpegHeader(src: Uint8Array): { width, height } | null        null: a file left to sharp
// decodeJpegResize(src, left, top, width, height, outWidth, outHeight, filter, out?): Promise<Uint8Array | null>
//   decodes, then resizes the box as resize() does (into `out` when given); null on any libjpeg error or warning.
// Built with snappy only:
// snappyUncompress(src: Uint8Array, outputLength, out?: Uint8Array of outputLength bytes): Uint8Array (out when
//   given)   synchronous (the stream thread calls it); throws on
//   invalid data or a length other than outputLength
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "jpeg.h"
#include "resample.h"
#include "snappy.h"

namespace mmtrain_image {
namespace {

// The output: the caller's array when it gives one of the right length (TypeScript checks it), else a Buffer made here,
// on the JS thread; written by the pool thread, no copy when it is handed over.
Napi::Uint8Array OutputArray(Napi::Env env, const Napi::Value& given, size_t n) {
  if (given.IsTypedArray()) {
    auto a = given.As<Napi::Uint8Array>();
    if (a.ByteLength() == n) return a;
  }
  return Napi::Buffer<uint8_t>::New(env, n);
}

// The workers resolve their promises in OnOK on the thread that queued them. When that thread is a worker being
// stopped (its process exiting while images are still decoding), it cannot run JS: resolving fails, and the error
// node-addon-api then throws out of the completion callback used to abort the process ("terminate called after
// throwing an instance of 'Napi::Error'"). binding.gyp defines NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS, with which
// node-addon-api drops such an error when the environment is shutting down (and only then).
class ResizeWorker : public Napi::AsyncWorker {
 public:
  ResizeWorker(Napi::Env env, Napi::Uint8Array src, const int (&a)[8], const Napi::Value& given)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), srcRef_(Napi::Persistent(src)),
        src_(src.Data()), srcWidth_(a[0]), left_(a[1]), top_(a[2]), width_(a[3]), height_(a[4]), outWidth_(a[5]), outHeight_(a[6]), filter_(a[7]) {
    auto out = OutputArray(env, given, static_cast<size_t>(outWidth_) * outHeight_ * 3);
    out_ = out.Data();
    outRef_ = Napi::Persistent(out);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { Resize(src_, srcWidth_, left_, top_, width_, height_, outWidth_, outHeight_, filter_, out_); }
  void OnOK() override { deferred_.Resolve(outRef_.Value()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Uint8Array> srcRef_;  // keeps the input alive while a pool thread reads it
  const uint8_t* src_;
  int srcWidth_, left_, top_, width_, height_, outWidth_, outHeight_;
  int filter_;
  Napi::Reference<Napi::Uint8Array> outRef_;  // and the output while it writes it
  uint8_t* out_;
};

Napi::Value ResizeJs(const Napi::CallbackInfo& info) {
  int a[8];
  for (int i = 0; i < 8; i++) a[i] = info[i + 1].As<Napi::Number>().Int32Value();
  auto* w = new ResizeWorker(info.Env(), info[0].As<Napi::Uint8Array>(), a, info[9]);
  auto p = w->Promise();
  w->Queue();
  return p;
}

// The paths by name, as resizeWith and resizePaths give them.
constexpr struct {
  const char* name;
  ResizePath path;
} kPaths[] = {{"avx2", ResizePath::kAvx2}, {"sse2", ResizePath::kSse2}, {"scalar", ResizePath::kScalar}};

Napi::Value ResizeWithJs(const Napi::CallbackInfo& info) {
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  ResizePath path = ResizePath::kBest;
  for (const auto& p : kPaths) if (name == p.name && ResizePathAvailable(p.path)) path = p.path;
  if (path == ResizePath::kBest) throw Napi::Error::New(info.Env(), "resizeWith: no resize path \"" + name + "\" in this build or on this CPU");
  int a[8];
  for (int i = 0; i < 8; i++) a[i] = info[i + 2].As<Napi::Number>().Int32Value();
  auto out = Napi::Buffer<uint8_t>::New(info.Env(), static_cast<size_t>(a[5]) * a[6] * 3);
  Resize(info[1].As<Napi::Uint8Array>().Data(), a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], out.Data(), path);
  return out;
}

Napi::Array ResizePaths(Napi::Env env) {
  auto out = Napi::Array::New(env);
  uint32_t n = 0;
  for (const auto& p : kPaths) if (p.path == BestResizePath()) out.Set(n++, p.name);
  for (const auto& p : kPaths) if (p.path != BestResizePath() && ResizePathAvailable(p.path)) out.Set(n++, p.name);
  return out;
}

class DecodeResizeWorker : public Napi::AsyncWorker {
 public:
  DecodeResizeWorker(Napi::Env env, Napi::Uint8Array src, const int (&a)[7], const Napi::Value& given)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), srcRef_(Napi::Persistent(src)),
        src_(src.Data()), len_(src.ByteLength()), left_(a[0]), top_(a[1]), width_(a[2]), height_(a[3]), outWidth_(a[4]), outHeight_(a[5]), filter_(a[6]) {
    auto out = OutputArray(env, given, static_cast<size_t>(outWidth_) * outHeight_ * 3);
    out_ = out.Data();
    outRef_ = Napi::Persistent(out);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    // the whole decoded image: this pool thread's scratch memory, kept from one image to the next (scratch.h)
    thread_local Scratch full;
    int w = 0, h = 0;
    const uint8_t* pixels = DecodeJpeg(src_, len_, full, &w, &h);
    // the box was computed from jpegHeader's size; a file changed in between is left to sharp
    if (pixels && left_ + width_ <= w && top_ + height_ <= h) {
      Resize(pixels, w, left_, top_, width_, height_, outWidth_, outHeight_, filter_, out_);
      ok_ = true;
    }
    full.Release();
  }
  void OnOK() override { deferred_.Resolve(ok_ ? outRef_.Value() : Env().Null()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Uint8Array> srcRef_;  // keeps the input alive while a pool thread reads it
  const uint8_t* src_;
  size_t len_;
  int left_, top_, width_, height_, outWidth_, outHeight_, filter_;
  Napi::Reference<Napi::Uint8Array> outRef_;  // and the output while it writes it
  uint8_t* out_;
  bool ok_ = false;
};

Napi::Value JpegHeaderJs(const Napi::CallbackInfo& info) {
  auto src = info[0].As<Napi::Uint8Array>();
  int w = 0, h = 0;
  if (!ProbeJpeg(src.Data(), src.ByteLength(), &w, &h)) return info.Env().Null();
  auto o = Napi::Object::New(info.Env());
  o.Set("width", w);
  o.Set("height", h);
  return o;
}

Napi::Value DecodeJpegResizeJs(const Napi::CallbackInfo& info) {
  int a[7];
  for (int i = 0; i < 7; i++) a[i] = info[i + 1].As<Napi::Number>().Int32Value();
  auto* w = new DecodeResizeWorker(info.Env(), info[0].As<Napi::Uint8Array>(), a, info[8]);
  auto p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value SnappyUncompressJs(const Napi::CallbackInfo& info) {
  auto src = info[0].As<Napi::Uint8Array>();
  const double want = info[1].As<Napi::Number>().DoubleValue();
  size_t declared = 0;
  if (!SnappyLength(src.Data(), src.ByteLength(), &declared)) throw Napi::Error::New(info.Env(), "invalid snappy data (its length header does not parse)");
  if (static_cast<double>(declared) != want) {
    throw Napi::Error::New(info.Env(), "snappy data of " + std::to_string(declared) + " bytes uncompressed, expected " + std::to_string(static_cast<int64_t>(want)));
  }
  // into the caller's array (outputLength bytes, e.g. on a SharedArrayBuffer) when given, else a new Buffer
  if (info.Length() > 2 && info[2].IsTypedArray()) {
    auto out = info[2].As<Napi::Uint8Array>();
    if (!SnappyUncompress(src.Data(), src.ByteLength(), out.Data(), declared)) throw Napi::Error::New(info.Env(), "invalid snappy data (corrupt or truncated)");
    return out;
  }
  auto out = Napi::Buffer<uint8_t>::New(info.Env(), declared);
  if (!SnappyUncompress(src.Data(), src.ByteLength(), out.Data(), declared)) throw Napi::Error::New(info.Env(), "invalid snappy data (corrupt or truncated)");
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("resize", Napi::Function::New(env, ResizeJs));
  exports.Set("resizeWith", Napi::Function::New(env, ResizeWithJs));
  exports.Set("resizePaths", ResizePaths(env));
  if (JpegAvailable()) {
    exports.Set("jpegHeader", Napi::Function::New(env, JpegHeaderJs));
    exports.Set("decodeJpegResize", Napi::Function::New(env, DecodeJpegResizeJs));
  }
  if (SnappyAvailable()) exports.Set("snappyUncompress", Napi::Function::New(env, SnappyUncompressJs));
  return exports;
}

}  // namespace
}  // namespace mmtrain_image

Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return mmtrain_image::Init(env, exports); }

NODE_API_MODULE(mmtrain_image, InitModule)
