// Autograd, grad mode, autocast and in-place updates used by optimizers and initialisers.
// Grad mode and autocast are thread-local in LibTorch: every call here runs on the JS thread, and TypeScript
// never holds a mode across an await.
#include "code_tables.h"
#include "handles.h"
#include "torch_compat.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace mm {


// backward(h, grad|-1, retainGraph)
MM_FN(Backward) {
  return guarded(info, "backward", [&]() -> Napi::Value {
    const at::Tensor& t = T(info, 0);
    c10::optional<at::Tensor> g = OT(info, 1);
    t.backward(g ? *g : at::Tensor(), B(info, 2), false);
    return info.Env().Undefined();
  });
}

MM_FN(Grad) {
  return guarded(info, "grad", [&]() -> Napi::Value { return wrapOptional(info.Env(), T(info, 0).grad()); });
}

// setGrad(h, g|-1): -1 clears the gradient (set_to_none semantics)
MM_FN(SetGrad) {
  return guarded(info, "setGrad", [&]() -> Napi::Value {
    at::Tensor t = T(info, 0);
    c10::optional<at::Tensor> g = OT(info, 1);
    t.mutable_grad() = g ? *g : at::Tensor();
    return info.Env().Undefined();
  });
}

MM_FN(RequiresGrad) {
  return guarded(info, "requiresGrad", [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), T(info, 0).requires_grad()); });
}

MM_FN(SetRequiresGrad) {
  return guarded(info, "setRequiresGrad", [&]() -> Napi::Value {
    at::Tensor t = T(info, 0);
    t.set_requires_grad(B(info, 1));
    return info.Env().Undefined();
  });
}

MM_FN(IsLeaf) {
  return guarded(info, "isLeaf", [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), T(info, 0).is_leaf()); });
}

MM_FN(RetainGrad) {
  return guarded(info, "retainGrad", [&]() -> Napi::Value {
    T(info, 0).retain_grad();
    return info.Env().Undefined();
  });
}

MM_FN(SetGradEnabled) {
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(info[0].ToBoolean().Value());
  return Napi::Boolean::New(info.Env(), prev);
}

MM_FN(IsGradEnabled) { return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); }

// ---- autocast (version differences in torch_compat.h) ----
using compat::autocastEnabled;
using compat::autocastDtype;
using compat::setAutocast;

// autocastEnter(cuda, dtype) -> [prevEnabled, prevDtype]
MM_FN(AutocastEnter) {
  return guarded(info, "autocast", [&]() -> Napi::Value {
    bool cuda = B(info, 0);
    at::ScalarType dt = toScalarType(info[1].As<Napi::Number>().Int32Value());
    Napi::Array prev = Napi::Array::New(info.Env(), 2);
    prev.Set(0u, Napi::Boolean::New(info.Env(), autocastEnabled(cuda)));
    prev.Set(1u, Napi::Number::New(info.Env(), fromScalarType(autocastDtype(cuda))));
    setAutocast(cuda, true, dt);
    at::autocast::increment_nesting();
    return prev;
  });
}

// autocastExit(cuda, prevEnabled, prevDtype): the cast cache is cleared when the outermost scope closes, else
// it leaks (pytorch#86136).
MM_FN(AutocastExit) {
  return guarded(info, "autocast", [&]() -> Napi::Value {
    bool cuda = B(info, 0);
    setAutocast(cuda, B(info, 1), toScalarType(info[2].As<Napi::Number>().Int32Value()));
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    return info.Env().Undefined();
  });
}

// ---- in-place updates (optimizers, initialisers); callers run them with grad mode off on leaves ----
// Two code tables (code_tables.h): updates by a tensor, and updates by up to two numbers.
struct InplaceTensorOp {
  const char* name;
  void (*apply)(at::Tensor& t, const at::Tensor& other, double alpha);
};

#define MM_UPDATE_BY_TENSOR(expr) [](at::Tensor& t, const at::Tensor& o, double alpha) { expr; }
static const InplaceTensorOp kInplaceTensorOps[] = {
    {"add_", MM_UPDATE_BY_TENSOR(t.add_(o, alpha))},
    {"sub_", MM_UPDATE_BY_TENSOR(t.sub_(o, alpha))},
    {"mul_", MM_UPDATE_BY_TENSOR(t.mul_(o))},
    {"div_", MM_UPDATE_BY_TENSOR(t.div_(o))},
    {"copy_", MM_UPDATE_BY_TENSOR(t.copy_(o))},
};
#undef MM_UPDATE_BY_TENSOR

// inplaceBinary(code, h, other, alpha): alpha scales `other` for add_ and sub_
MM_FN(InplaceBinary) {
  int code = info[0].As<Napi::Number>().Int32Value();
  return guarded(info, tableName(kInplaceTensorOps, code, "inplace"), [&]() -> Napi::Value {
    const InplaceTensorOp& op = tableEntry(kInplaceTensorOps, code, "in-place op");
    at::Tensor t = T(info, 1);
    op.apply(t, T(info, 2), D(info, 3));
    return info.Env().Undefined();
  });
}

struct InplaceScalarOp {
  const char* name;
  void (*apply)(at::Tensor& t, double a, double b);
};

#define MM_UPDATE_BY_NUMBERS(expr) [](at::Tensor& t, double a, double b) { expr; }
static const InplaceScalarOp kInplaceScalarOps[] = {
    {"add_", MM_UPDATE_BY_NUMBERS(t.add_(a))},
    {"mul_", MM_UPDATE_BY_NUMBERS(t.mul_(a))},
    {"fill_", MM_UPDATE_BY_NUMBERS(t.fill_(a))},
    {"zero_", MM_UPDATE_BY_NUMBERS(t.zero_())},
    {"normal_", MM_UPDATE_BY_NUMBERS(t.normal_(a, b))},  // mean a, std b
    {"uniform_", MM_UPDATE_BY_NUMBERS(t.uniform_(a, b))},  // [a, b)
    {"clamp_", MM_UPDATE_BY_NUMBERS(t.clamp_(a, b))},
    {"sqrt_", MM_UPDATE_BY_NUMBERS(t.sqrt_())},
    {"div_", MM_UPDATE_BY_NUMBERS(t.div_(a))},
};
#undef MM_UPDATE_BY_NUMBERS

// inplaceScalar(code, h, a, b): a missing number is 0
MM_FN(InplaceScalar) {
  int code = info[0].As<Napi::Number>().Int32Value();
  return guarded(info, tableName(kInplaceScalarOps, code, "inplace"), [&]() -> Napi::Value {
    const InplaceScalarOp& op = tableEntry(kInplaceScalarOps, code, "in-place op");
    at::Tensor t = T(info, 1);
    op.apply(t, info[2].IsNumber() ? D(info, 2) : 0, info[3].IsNumber() ? D(info, 3) : 0);
    return info.Env().Undefined();
  });
}

// addcmul_(h, t1, t2, value), addcdiv_(h, t1, t2, value), lerp_(h, end, weight)
MM_FN(Addcmul) {
  return guarded(info, "addcmul_", [&]() -> Napi::Value {
    at::Tensor t = T(info, 0);
    t.addcmul_(T(info, 1), T(info, 2), D(info, 3));
    return info.Env().Undefined();
  });
}
MM_FN(Addcdiv) {
  return guarded(info, "addcdiv_", [&]() -> Napi::Value {
    at::Tensor t = T(info, 0);
    t.addcdiv_(T(info, 1), T(info, 2), D(info, 3));
    return info.Env().Undefined();
  });
}
MM_FN(Lerp) {
  return guarded(info, "lerp_", [&]() -> Napi::Value {
    at::Tensor t = T(info, 0);
    t.lerp_(T(info, 1), D(info, 2));
    return info.Env().Undefined();
  });
}

// maskedFill_(h, mask, value)
MM_FN(MaskedFillInplace) {
  return guarded(info, "maskedFill_", [&]() -> Napi::Value {
    at::Tensor t = T(info, 0);
    t.masked_fill_(T(info, 1), D(info, 2));
    return info.Env().Undefined();
  });
}

void registerTrain(Napi::Env env, Napi::Object exports) {
  exportCodeTable(env, exports, "inplaceTensor", kInplaceTensorOps);
  exportCodeTable(env, exports, "inplaceScalar", kInplaceScalarOps);
  MM_EXPORT(exports, "backward", Backward);
  MM_EXPORT(exports, "grad", Grad);
  MM_EXPORT(exports, "setGrad", SetGrad);
  MM_EXPORT(exports, "requiresGrad", RequiresGrad);
  MM_EXPORT(exports, "setRequiresGrad", SetRequiresGrad);
  MM_EXPORT(exports, "isLeaf", IsLeaf);
  MM_EXPORT(exports, "retainGrad", RetainGrad);
  MM_EXPORT(exports, "setGradEnabled", SetGradEnabled);
  MM_EXPORT(exports, "isGradEnabled", IsGradEnabled);
  MM_EXPORT(exports, "autocastEnter", AutocastEnter);
  MM_EXPORT(exports, "autocastExit", AutocastExit);
  MM_EXPORT(exports, "inplaceBinary", InplaceBinary);
  MM_EXPORT(exports, "inplaceScalar", InplaceScalar);
  MM_EXPORT(exports, "addcmul_", Addcmul);
  MM_EXPORT(exports, "addcdiv_", Addcdiv);
  MM_EXPORT(exports, "lerp_", Lerp);
  MM_EXPORT(exports, "maskedFill_", MaskedFillInplace);
}

}  // namespace mm
