// Tensor handles: JS holds a number, native holds the at::Tensor in a slot table kept in per-environment
// instance data (so worker_threads each get their own table). A handle encodes slot + generation so a stale
// handle (disposed, slot reused) is detected instead of touching another tensor.
#pragma once

#include <napi.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mm {

struct Slot {
  at::Tensor tensor;
  uint32_t generation = 0;
  int64_t storageBytes = 0;  // bytes of this handle's storage (0 for views), counted in State::liveBytes
  int64_t externalBytes = 0;  // bytes reported to V8 via AdjustExternalMemory (only for GC-managed tensors)
  bool live = false;
};

struct State {
  std::vector<Slot> slots;
  std::vector<uint32_t> freeList;
  int64_t liveCount = 0;
  int64_t liveBytes = 0;
  // JS ArrayBuffer references held by zero-copy tensors; their release is deferred to the JS thread.
  std::mutex pendingMutex;
  std::vector<napi_ref> pendingRelease;
  // Optimizers (native/src/optim.cc), opaque here to keep torch's C++ API headers out of this file.
  std::shared_ptr<void> optim;
};

State& state(Napi::Env env);

constexpr double kSlotBits = 4194304.0;  // 2^22 slots; handle = slot + generation * 2^22

double wrap(Napi::Env env, at::Tensor t);
// argIndex orders the inputs named in error messages (C++ evaluates call arguments in any order).
const at::Tensor& unwrap(Napi::Env env, const Napi::Value& v, int argIndex = 0);
// Handle or -1 for "none" (optional tensor arguments and results).
c10::optional<at::Tensor> unwrapOptional(Napi::Env env, const Napi::Value& v, int argIndex = 0);
Napi::Value wrapOptional(Napi::Env env, const at::Tensor& t);
Napi::Array wrapList(Napi::Env env, const std::vector<at::Tensor>& ts);
std::vector<at::Tensor> unwrapList(Napi::Env env, const Napi::Value& v, int argIndex = 0);
void release(Napi::Env env, double handle);
// Reports a handle's bytes to V8 once it is left to the garbage collector (see scope.ts).
void reportExternal(Napi::Env env, double handle);
void drainPending(Napi::Env env);

/** whether LibTorch's oneDNN convolution gives its reference numbers here (ops_nn.cc; else conv2d avoids it) */
bool onednnConvolutionIsRight();

/** how the process's allocator was set up at load (addon.cc) */
extern std::string allocatorTuning;

std::vector<int64_t> intList(const Napi::Value& v);
std::vector<double> doubleList(const Napi::Value& v);
Napi::Array toJsShape(Napi::Env env, at::IntArrayRef sizes);
std::string shapeString(const at::Tensor& t);

// Runs fn, turning LibTorch and C++ exceptions into JS errors that name the op and its input shapes.
// Native code trusts its arguments (validated in TypeScript) except for handles, which are always checked.
Napi::Value guarded(const Napi::CallbackInfo& info, const char* op, const std::function<Napi::Value()>& fn);

// dtype codes (handles.cc's table): a type outside the table is -1
at::ScalarType toScalarType(int code);
int fromScalarType(at::ScalarType t);
at::Device toDevice(const std::string& s);

using Registrar = void (*)(Napi::Env, Napi::Object);
void registerDtypes(Napi::Env env, Napi::Object exports);
void registerCreate(Napi::Env env, Napi::Object exports);
void registerMath(Napi::Env env, Napi::Object exports);
void registerNN(Napi::Env env, Napi::Object exports);
void registerTrain(Napi::Env env, Napi::Object exports);
void registerOptim(Napi::Env env, Napi::Object exports);
void registerDistributed(Napi::Env env, Napi::Object exports);
void registerDevice(Napi::Env env, Napi::Object exports);

// Argument helpers for the op units: tensor (checked handle), optional tensor, integer, double, boolean, result.
inline const at::Tensor& T(const Napi::CallbackInfo& info, int i) { return unwrap(info.Env(), info[i], i); }
inline c10::optional<at::Tensor> OT(const Napi::CallbackInfo& info, int i) { return unwrapOptional(info.Env(), info[i], i); }
inline int64_t I(const Napi::CallbackInfo& info, int i) { return info[i].As<Napi::Number>().Int64Value(); }
inline double D(const Napi::CallbackInfo& info, int i) { return info[i].As<Napi::Number>().DoubleValue(); }
inline bool B(const Napi::CallbackInfo& info, int i) { return info[i].ToBoolean().Value(); }
inline Napi::Value out(const Napi::CallbackInfo& info, const at::Tensor& t) { return Napi::Number::New(info.Env(), wrap(info.Env(), t)); }

#define MM_FN(name) static Napi::Value name(const Napi::CallbackInfo& info)
#define MM_EXPORT(obj, name, fn) obj.Set(name, Napi::Function::New(env, fn, name))

}  // namespace mm
