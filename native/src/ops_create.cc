// Tensor creation, reading back, metadata, release and process-wide controls.
#include "code_tables.h"
#include "handles.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/Version.h>
#include <torch/version.h>

#include <cstring>

namespace mm {

static at::TensorOptions opts(int dtype, const Napi::Value& device) {
  at::TensorOptions o = at::TensorOptions().dtype(toScalarType(dtype));
  if (device.IsString()) o = o.device(toDevice(device.As<Napi::String>().Utf8Value()));
  return o;
}

// fromTypedArray(typedArray, shape, srcDtype, dstDtype, zeroCopy, device)
MM_FN(FromTypedArray) {
  return guarded(info, "fromArray", [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    drainPending(env);
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    std::vector<int64_t> shape = intList(info[1]);
    at::ScalarType src = toScalarType(info[2].As<Napi::Number>().Int32Value());
    at::ScalarType dst = toScalarType(info[3].As<Napi::Number>().Int32Value());
    bool zeroCopy = info[4].As<Napi::Boolean>().Value();
    Napi::ArrayBuffer buf = ta.ArrayBuffer();
    void* data = static_cast<uint8_t*>(buf.Data()) + ta.ByteOffset();
    if (zeroCopy && src == dst && !info[5].IsString()) {
      // Keep the ArrayBuffer alive for the tensor's life; the deleter may run on any thread, so the
      // reference is released later on the JS thread.
      napi_ref ref;
      napi_create_reference(env, buf, 1, &ref);
      State* st = &state(env);
      at::Tensor t = at::from_blob(
          data, shape,
          [st, ref](void*) {
            std::lock_guard<std::mutex> lock(st->pendingMutex);
            st->pendingRelease.push_back(ref);
          },
          at::TensorOptions().dtype(src));
      return Napi::Number::New(env, wrap(env, t));
    }
    at::Tensor view = at::from_blob(data, shape, at::TensorOptions().dtype(src));
    at::Tensor t = view.to(dst, /*non_blocking=*/false, /*copy=*/true);
    if (info[5].IsString()) t = t.to(toDevice(info[5].As<Napi::String>().Utf8Value()));
    return Napi::Number::New(env, wrap(env, t));
  });
}

// full(shape, value, dtype, device)
MM_FN(Full) {
  return guarded(info, "full", [&]() -> Napi::Value {
    std::vector<int64_t> shape = intList(info[0]);
    double v = info[1].As<Napi::Number>().DoubleValue();
    return Napi::Number::New(info.Env(), wrap(info.Env(), at::full(shape, v, opts(info[2].As<Napi::Number>().Int32Value(), info[3]))));
  });
}

MM_FN(Empty) {
  return guarded(info, "empty", [&]() -> Napi::Value {
    std::vector<int64_t> shape = intList(info[0]);
    return Napi::Number::New(info.Env(), wrap(info.Env(), at::empty(shape, opts(info[1].As<Napi::Number>().Int32Value(), info[2]))));
  });
}

// arange(start, end, step, dtype, device)
MM_FN(Arange) {
  return guarded(info, "arange", [&]() -> Napi::Value {
    double a = info[0].As<Napi::Number>().DoubleValue(), b = info[1].As<Napi::Number>().DoubleValue(),
           s = info[2].As<Napi::Number>().DoubleValue();
    return Napi::Number::New(info.Env(), wrap(info.Env(), at::arange(a, b, s, opts(info[3].As<Napi::Number>().Int32Value(), info[4]))));
  });
}

// The random distributions random() draws from (a code table, code_tables.h); a and b are their parameters.
struct RandomKind {
  const char* name;
  at::Tensor (*draw)(at::IntArrayRef shape, const at::TensorOptions& o, double a, double b);
};

#define MM_DRAW(expr) [](at::IntArrayRef shape, const at::TensorOptions& o, double a, double b) -> at::Tensor { return expr; }
static const RandomKind kRandomKinds[] = {
    {"randn", MM_DRAW(at::randn(shape, o))},
    {"rand", MM_DRAW(at::rand(shape, o))},
    {"randint", MM_DRAW(at::randint(static_cast<int64_t>(a), static_cast<int64_t>(b), shape, o))},  // [a, b)
    {"normal", MM_DRAW(at::empty(shape, o).normal_(a, b))},  // mean a, std b
    {"uniform", MM_DRAW(at::empty(shape, o).uniform_(a, b))},  // [a, b)
};
#undef MM_DRAW

// random(kind, shape, dtype, device, a, b)
MM_FN(Random) {
  return guarded(info, "random", [&]() -> Napi::Value {
    const RandomKind& kind = tableEntry(kRandomKinds, info[0].As<Napi::Number>().Int32Value(), "random kind");
    std::vector<int64_t> shape = intList(info[1]);
    at::TensorOptions o = opts(info[2].As<Napi::Number>().Int32Value(), info[3]);
    double a = info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : 0;
    double b = info[5].IsNumber() ? info[5].As<Napi::Number>().DoubleValue() : 1;
    return Napi::Number::New(info.Env(), wrap(info.Env(), kind.draw(shape, o, a, b)));
  });
}

// read(h, asDtype|-1) -> ArrayBuffer holding a contiguous CPU copy
MM_FN(Read) {
  return guarded(info, "read", [&]() -> Napi::Value {
    at::Tensor t = unwrap(info.Env(), info[0]).detach();
    int as = info[1].As<Napi::Number>().Int32Value();
    if (as >= 0 && t.scalar_type() != toScalarType(as)) t = t.to(toScalarType(as));
    t = t.to(at::kCPU).contiguous();
    size_t n = t.numel() * t.element_size();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(info.Env(), n);
    if (n) std::memcpy(buf.Data(), t.data_ptr(), n);
    return buf;
  });
}

MM_FN(Item) {
  return guarded(info, "item", [&]() -> Napi::Value {
    const at::Tensor& t = unwrap(info.Env(), info[0]);
    return Napi::Number::New(info.Env(), t.item<double>());
  });
}

MM_FN(Shape) {
  return guarded(info, "shape", [&]() -> Napi::Value { return toJsShape(info.Env(), unwrap(info.Env(), info[0]).sizes()); });
}

MM_FN(Dtype) {
  return guarded(info, "dtype", [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), fromScalarType(unwrap(info.Env(), info[0]).scalar_type()));
  });
}

MM_FN(Device) {
  return guarded(info, "device", [&]() -> Napi::Value { return Napi::String::New(info.Env(), unwrap(info.Env(), info[0]).device().str()); });
}

MM_FN(Strides) {
  return guarded(info, "strides", [&]() -> Napi::Value { return toJsShape(info.Env(), unwrap(info.Env(), info[0]).strides()); });
}

MM_FN(IsContiguous) {
  return guarded(info, "isContiguous", [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), unwrap(info.Env(), info[0]).is_contiguous());
  });
}

MM_FN(Free) {
  Napi::Env env = info.Env();
  if (info[0].IsNumber()) release(env, info[0].As<Napi::Number>().DoubleValue());
  drainPending(env);
  return env.Undefined();
}

MM_FN(FreeMany) {
  Napi::Env env = info.Env();
  Napi::Array arr = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) release(env, arr.Get(i).As<Napi::Number>().DoubleValue());
  drainPending(env);
  return env.Undefined();
}

MM_FN(ReportExternal) {
  Napi::Env env = info.Env();
  if (info[0].IsNumber()) reportExternal(env, info[0].As<Napi::Number>().DoubleValue());
  return env.Undefined();
}

MM_FN(IsLive) {
  Napi::Env env = info.Env();
  try {
    unwrap(env, info[0]);
    return Napi::Boolean::New(env, true);
  } catch (...) {
    return Napi::Boolean::New(env, false);
  }
}

MM_FN(MemoryStats) {
  Napi::Env env = info.Env();
  State& s = state(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("liveTensors", Napi::Number::New(env, static_cast<double>(s.liveCount)));
  o.Set("liveBytes", Napi::Number::New(env, static_cast<double>(s.liveBytes)));
  o.Set("slots", Napi::Number::New(env, static_cast<double>(s.slots.size())));
  return o;
}

MM_FN(ManualSeed) {
  return guarded(info, "manualSeed", [&]() -> Napi::Value {
    at::manual_seed(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    return info.Env().Undefined();
  });
}

MM_FN(SetNumThreads) {
  return guarded(info, "setNumThreads", [&]() -> Napi::Value {
    at::set_num_threads(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  });
}

MM_FN(GetNumThreads) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

MM_FN(SetInteropThreads) {
  // Setting interop threads twice, or after parallel work started, aborts in 1.13 (pytorch#87960): TS calls
  // this at most once, at load.
  return guarded(info, "setInteropThreads", [&]() -> Napi::Value {
    at::set_num_interop_threads(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  });
}

MM_FN(BuildInfo) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("libtorch", Napi::String::New(env, TORCH_VERSION));
  o.Set("cudaAvailable", Napi::Boolean::New(env, at::hasCUDA()));
  o.Set("cudaDeviceCount", Napi::Number::New(env, at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0));
  o.Set("parallelInfo", Napi::String::New(env, at::get_parallel_info()));
  o.Set("cxx11Abi", Napi::Boolean::New(env, _GLIBCXX_USE_CXX11_ABI == 1));
  o.Set("allocator", Napi::String::New(env, allocatorTuning));
  // LibTorch's build configuration (torch.__config__.show()): BLAS, CPU capability, CUDA/cuDNN/NCCL settings.
  o.Set("config", Napi::String::New(env, at::show_config()));
#ifdef MMTRAIN_WITH_CUDA
  o.Set("cudaBuild", Napi::Boolean::New(env, true));
#else
  o.Set("cudaBuild", Napi::Boolean::New(env, false));
#endif
  // cuDNN as LibTorch's CUDA hooks see it (the stub hooks of a CPU build say no); its version is compiled in.
  const auto& hooks = at::detail::getCUDAHooks();
  bool cudnn = false;
  try { cudnn = hooks.compiledWithCuDNN(); } catch (...) {}
  o.Set("cudnnCompiled", Napi::Boolean::New(env, cudnn));
  long cudnnVersion = 0;
  if (cudnn) try { cudnnVersion = hooks.versionCuDNN(); } catch (...) {}
  o.Set("cudnnVersion", Napi::Number::New(env, static_cast<double>(cudnnVersion)));
  o.Set("onednnConvolution", Napi::Boolean::New(env, onednnConvolutionIsRight()));
  return o;
}

// The CPU generator's state as a uint8 tensor handle, and back: checkpoints need exact RNG resume.
MM_FN(GetRngState) {
  return guarded(info, "getRngState", [&]() -> Napi::Value {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    return Napi::Number::New(info.Env(), wrap(info.Env(), gen.get_state()));
  });
}

MM_FN(SetRngState) {
  return guarded(info, "setRngState", [&]() -> Napi::Value {
    const at::Tensor& t = unwrap(info.Env(), info[0]);
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(t);
    return info.Env().Undefined();
  });
}

void registerCreate(Napi::Env env, Napi::Object exports) {
  exportCodeTable(env, exports, "random", kRandomKinds);
  MM_EXPORT(exports, "fromTypedArray", FromTypedArray);
  MM_EXPORT(exports, "full", Full);
  MM_EXPORT(exports, "empty", Empty);
  MM_EXPORT(exports, "arange", Arange);
  MM_EXPORT(exports, "random", Random);
  MM_EXPORT(exports, "read", Read);
  MM_EXPORT(exports, "item", Item);
  MM_EXPORT(exports, "shape", Shape);
  MM_EXPORT(exports, "dtype", Dtype);
  MM_EXPORT(exports, "device", Device);
  MM_EXPORT(exports, "strides", Strides);
  MM_EXPORT(exports, "isContiguous", IsContiguous);
  MM_EXPORT(exports, "free", Free);
  MM_EXPORT(exports, "freeMany", FreeMany);
  MM_EXPORT(exports, "reportExternal", ReportExternal);
  MM_EXPORT(exports, "isLive", IsLive);
  MM_EXPORT(exports, "memoryStats", MemoryStats);
  MM_EXPORT(exports, "manualSeed", ManualSeed);
  MM_EXPORT(exports, "setNumThreads", SetNumThreads);
  MM_EXPORT(exports, "getNumThreads", GetNumThreads);
  MM_EXPORT(exports, "setInteropThreads", SetInteropThreads);
  MM_EXPORT(exports, "buildInfo", BuildInfo);
  MM_EXPORT(exports, "getRngState", GetRngState);
  MM_EXPORT(exports, "setRngState", SetRngState);
}

}  // namespace mm
