#include "handles.h"

#include "code_tables.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace mm {

namespace {
// Inputs seen by unwrap() during the current call, so an error can name their shapes.
thread_local std::vector<std::pair<int, at::Tensor>> tlsInputs;
thread_local bool tlsRecording = false;
}  // namespace

State& state(Napi::Env env) { return *env.GetInstanceData<State>(); }

double wrap(Napi::Env env, at::Tensor t) {
  State& s = state(env);
  uint32_t idx;
  if (!s.freeList.empty()) {
    idx = s.freeList.back();
    s.freeList.pop_back();
  } else {
    if (s.slots.size() >= static_cast<size_t>(kSlotBits)) {
      throw std::runtime_error("too many live tensors (4194304): dispose tensors or use tidy() scopes");
    }
    idx = static_cast<uint32_t>(s.slots.size());
    s.slots.emplace_back();
  }
  Slot& slot = s.slots[idx];
  // Count bytes per storage, not per view: views share their base's storage.
  int64_t bytes = 0;
  if (t.defined() && !t.is_view() && t.has_storage()) bytes = static_cast<int64_t>(t.storage().nbytes());
  slot.tensor = std::move(t);
  slot.live = true;
  slot.storageBytes = bytes;
  s.liveCount++;
  s.liveBytes += bytes;
  // Not reported to V8 here: most tensors live in tidy() scopes and are freed when they close. Reporting them
  // made V8 run a full collection ~3 times per step of the small preset (external memory grows by GBs per step)
  // with nothing to collect. Only tensors left to the garbage collector are reported (reportExternal).
  return static_cast<double>(idx) + static_cast<double>(slot.generation) * kSlotBits;
}

static Slot* lookup(Napi::Env env, double h) {
  if (!(h >= 0) || h != std::floor(h)) return nullptr;
  State& s = state(env);
  double gen = std::floor(h / kSlotBits);
  double idx = h - gen * kSlotBits;
  if (idx >= static_cast<double>(s.slots.size())) return nullptr;
  Slot& slot = s.slots[static_cast<size_t>(idx)];
  if (!slot.live || static_cast<double>(slot.generation) != gen) return nullptr;
  return &slot;
}

const at::Tensor& unwrap(Napi::Env env, const Napi::Value& v, int argIndex) {
  Slot* slot = v.IsNumber() ? lookup(env, v.As<Napi::Number>().DoubleValue()) : nullptr;
  if (!slot) throw std::invalid_argument("tensor handle is invalid or was disposed");
  if (tlsRecording) tlsInputs.emplace_back(argIndex, slot->tensor);
  return slot->tensor;
}

c10::optional<at::Tensor> unwrapOptional(Napi::Env env, const Napi::Value& v, int argIndex) {
  if (v.IsUndefined() || v.IsNull() || (v.IsNumber() && v.As<Napi::Number>().DoubleValue() < 0)) return c10::nullopt;
  return unwrap(env, v, argIndex);
}

Napi::Value wrapOptional(Napi::Env env, const at::Tensor& t) {
  if (!t.defined()) return Napi::Number::New(env, -1);
  return Napi::Number::New(env, wrap(env, t));
}

Napi::Array wrapList(Napi::Env env, const std::vector<at::Tensor>& ts) {
  Napi::Array out = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, wrap(env, ts[i])));
  return out;
}

std::vector<at::Tensor> unwrapList(Napi::Env env, const Napi::Value& v, int argIndex) {
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(unwrap(env, arr.Get(i), argIndex * 4096 + static_cast<int>(i)));
  return out;
}

void release(Napi::Env env, double handle) {
  Slot* slot = lookup(env, handle);
  if (!slot) return;  // idempotent: a second dispose or a late finalizer is a no-op
  State& s = state(env);
  int64_t bytes = slot->storageBytes;
  int64_t external = slot->externalBytes;
  slot->tensor = at::Tensor();
  slot->live = false;
  slot->storageBytes = 0;
  slot->externalBytes = 0;
  slot->generation = (slot->generation + 1) % (1u << 30);
  s.liveCount--;
  s.liveBytes -= bytes;
  s.freeList.push_back(static_cast<uint32_t>(slot - s.slots.data()));
  if (external > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -external);
}

void reportExternal(Napi::Env env, double handle) {
  Slot* slot = lookup(env, handle);
  if (!slot || slot->externalBytes > 0 || slot->storageBytes <= 0) return;
  slot->externalBytes = slot->storageBytes;
  Napi::MemoryManagement::AdjustExternalMemory(env, slot->externalBytes);
}

void drainPending(Napi::Env env) {
  State& s = state(env);
  std::vector<napi_ref> refs;
  {
    std::lock_guard<std::mutex> lock(s.pendingMutex);
    if (s.pendingRelease.empty()) return;
    refs.swap(s.pendingRelease);
  }
  for (napi_ref r : refs) napi_delete_reference(env, r);
}

std::vector<int64_t> intList(const Napi::Value& v) {
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = arr.Get(i).As<Napi::Number>().Int64Value();
  return out;
}

std::vector<double> doubleList(const Napi::Value& v) {
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<double> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = arr.Get(i).As<Napi::Number>().DoubleValue();
  return out;
}

Napi::Array toJsShape(Napi::Env env, at::IntArrayRef sizes) {
  Napi::Array out = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(sizes[i])));
  return out;
}

std::string shapeString(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream os;
  os << "[";
  for (int64_t i = 0; i < t.dim(); i++) os << (i ? ", " : "") << t.size(i);
  os << "] " << c10::toString(t.scalar_type());
  if (!t.device().is_cpu()) os << " " << t.device().str();
  return os.str();
}

Napi::Value guarded(const Napi::CallbackInfo& info, const char* op, const std::function<Napi::Value()>& fn) {
  Napi::Env env = info.Env();
  tlsInputs.clear();
  tlsRecording = true;
  std::string message;
  try {
    Napi::Value v = fn();
    tlsRecording = false;
    tlsInputs.clear();
    return v;
  } catch (const Napi::Error&) {
    tlsRecording = false;
    tlsInputs.clear();
    throw;
  } catch (const c10::Error& e) {
    message = e.what_without_backtrace();
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "unknown native error";
  }
  tlsRecording = false;
  std::ostringstream os;
  os << op << " failed";
  if (!tlsInputs.empty()) {
    std::stable_sort(tlsInputs.begin(), tlsInputs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    os << " for inputs ";
    // a list op (optimizer, clipping, collectives) can take hundreds of tensors: name the first few and count
    const size_t shown = tlsInputs.size() > 8 ? 6 : tlsInputs.size();
    for (size_t i = 0; i < shown; i++) os << (i ? ", " : "") << shapeString(tlsInputs[i].second);
    if (shown < tlsInputs.size()) os << " and " << (tlsInputs.size() - shown) << " more";
  }
  // Keep LibTorch's first lines: they carry the reason; later lines are internal context.
  std::string first = message;
  size_t cut = 0, lines = 0;
  while (cut != std::string::npos && lines < 3) {
    cut = first.find('\n', cut ? cut + 1 : 0);
    lines++;
  }
  if (cut != std::string::npos) first = first.substr(0, cut);
  os << ": " << first;
  tlsInputs.clear();
  throw Napi::Error::New(env, os.str());
}

// The dtypes TypeScript names, as LibTorch's scalar types (a code table, code_tables.h).
struct Dtype {
  const char* name;
  at::ScalarType type;
};

static const Dtype kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},    {"int32", at::kInt},      {"uint8", at::kByte},   {"bool", at::kBool},
    {"int8", at::kChar},     {"int16", at::kShort},
};

at::ScalarType toScalarType(int code) { return tableEntry(kDtypes, code, "dtype").type; }

int fromScalarType(at::ScalarType t) {
  for (size_t i = 0; i < sizeof(kDtypes) / sizeof(kDtypes[0]); i++) {
    if (kDtypes[i].type == t) return static_cast<int>(i);
  }
  return -1;
}

void registerDtypes(Napi::Env env, Napi::Object exports) { exportCodeTable(env, exports, "dtype", kDtypes); }

at::Device toDevice(const std::string& s) { return at::Device(s); }

}  // namespace mm
