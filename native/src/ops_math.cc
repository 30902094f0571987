// Elementwise math, comparisons, reductions, shape and indexing ops, matrix products.
// Op codes are shared with src/tensor/opcodes.ts.
#include "handles.h"

#include <ATen/ATen.h>

namespace mm {


static const char* kUnaryNames[] = {"neg", "abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid",
                                    "relu", "gelu", "gelu_tanh", "silu", "square", "sign", "floor", "ceil", "round",
                                    "reciprocal", "logical_not", "isfinite", "isnan", "contiguous", "clone", "detach",
                                    "erf", "log1p", "expm1", "isinf"};

static at::Tensor unaryOp(int code, const at::Tensor& a) {
  switch (code) {
    case 0: return at::neg(a);
    case 1: return at::abs(a);
    case 2: return at::exp(a);
    case 3: return at::log(a);
    case 4: return at::sqrt(a);
    case 5: return at::rsqrt(a);
    case 6: return at::sin(a);
    case 7: return at::cos(a);
    case 8: return at::tanh(a);
    case 9: return at::sigmoid(a);
    case 10: return at::relu(a);
    case 11: return at::gelu(a, "none");
    case 12: return at::gelu(a, "tanh");
    case 13: return at::silu(a);
    case 14: return at::square(a);
    case 15: return at::sign(a);
    case 16: return at::floor(a);
    case 17: return at::ceil(a);
    case 18: return at::round(a);
    case 19: return at::reciprocal(a);
    case 20: return at::logical_not(a);
    case 21: return at::isfinite(a);
    case 22: return at::isnan(a);
    case 23: return a.contiguous();
    case 24: return a.clone();
    case 25: return a.detach();
    case 26: return at::erf(a);
    case 27: return at::log1p(a);
    case 28: return at::expm1(a);
    case 29: return at::isinf(a);
    default: throw std::invalid_argument("unknown unary op " + std::to_string(code));
  }
}

MM_FN(Unary) {
  int code = info[0].As<Napi::Number>().Int32Value();
  const char* name = (code >= 0 && code < 30) ? kUnaryNames[code] : "unary";
  return guarded(info, name, [&]() -> Napi::Value { return out(info, unaryOp(code, T(info, 1))); });
}

static const char* kBinaryNames[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt",
                                     "le", "gt", "ge", "logical_and", "logical_or", "remainder", "rsub", "rdiv",
                                     "rpow", "floor_divide"};

static at::Tensor binaryOp(int code, const at::Tensor& a, const at::Tensor& b) {
  switch (code) {
    case 0: return at::add(a, b);
    case 1: return at::sub(a, b);
    case 2: return at::mul(a, b);
    case 3: return at::div(a, b);
    case 4: return at::pow(a, b);
    case 5: return at::maximum(a, b);
    case 6: return at::minimum(a, b);
    case 7: return at::eq(a, b);
    case 8: return at::ne(a, b);
    case 9: return at::lt(a, b);
    case 10: return at::le(a, b);
    case 11: return at::gt(a, b);
    case 12: return at::ge(a, b);
    case 13: return at::logical_and(a, b);
    case 14: return at::logical_or(a, b);
    case 15: return at::remainder(a, b);
    case 19: return at::floor_divide(a, b);
    default: throw std::invalid_argument("unknown binary op " + std::to_string(code));
  }
}

static at::Tensor binaryScalarOp(int code, const at::Tensor& a, const at::Scalar& s) {
  switch (code) {
    case 0: return at::add(a, s);
    case 1: return at::sub(a, s);
    case 2: return at::mul(a, s);
    case 3: return at::div(a, s);
    case 4: return at::pow(a, s);
    case 5: return at::clamp_min(a, s);
    case 6: return at::clamp_max(a, s);
    case 7: return at::eq(a, s);
    case 8: return at::ne(a, s);
    case 9: return at::lt(a, s);
    case 10: return at::le(a, s);
    case 11: return at::gt(a, s);
    case 12: return at::ge(a, s);
    case 13: return at::logical_and(a, at::scalar_tensor(s, a.options()));
    case 14: return at::logical_or(a, at::scalar_tensor(s, a.options()));
    case 15: return at::remainder(a, s);
    case 16: return at::rsub(a, s);
    case 17: return at::div(at::scalar_tensor(s, a.options()), a);
    case 18: return at::pow(s, a);
    case 19: return at::floor_divide(a, s);
    default: throw std::invalid_argument("unknown binary op " + std::to_string(code));
  }
}

MM_FN(Binary) {
  int code = info[0].As<Napi::Number>().Int32Value();
  const char* name = (code >= 0 && code < 20) ? kBinaryNames[code] : "binary";
  return guarded(info, name, [&]() -> Napi::Value { return out(info, binaryOp(code, T(info, 1), T(info, 2))); });
}

// binaryScalar(code, a, scalar, isInt): integer scalars keep integer tensors integer.
MM_FN(BinaryScalar) {
  int code = info[0].As<Napi::Number>().Int32Value();
  const char* name = (code >= 0 && code < 20) ? kBinaryNames[code] : "binary";
  return guarded(info, name, [&]() -> Napi::Value {
    at::Scalar s = B(info, 3) ? at::Scalar(I(info, 2)) : at::Scalar(D(info, 2));
    return out(info, binaryScalarOp(code, T(info, 1), s));
  });
}

// add(a, b, alpha) = a + alpha * b
MM_FN(AddScaled) {
  return guarded(info, "add", [&]() -> Napi::Value { return out(info, at::add(T(info, 0), T(info, 1), D(info, 2))); });
}

static const char* kReduceNames[] = {"sum", "mean", "amax", "amin", "prod", "var", "std", "norm", "logsumexp",
                                     "argmax", "argmin", "all", "any"};

// reduce(code, h, dims|null, keepdim, extra): extra is the correction for var/std and p for norm.
MM_FN(Reduce) {
  int code = info[0].As<Napi::Number>().Int32Value();
  const char* name = (code >= 0 && code < 13) ? kReduceNames[code] : "reduce";
  return guarded(info, name, [&]() -> Napi::Value {
    const at::Tensor& a = T(info, 1);
    bool all = info[2].IsNull() || info[2].IsUndefined();
    std::vector<int64_t> dims = all ? std::vector<int64_t>{} : intList(info[2]);
    bool keep = B(info, 3);
    double extra = info[4].IsNumber() ? D(info, 4) : 0;
    at::OptionalIntArrayRef odims = all ? at::OptionalIntArrayRef() : at::OptionalIntArrayRef(dims);
    switch (code) {
      case 0: return out(info, all && !keep ? at::sum(a) : at::sum(a, dims, keep));
      case 1: return out(info, all && !keep ? at::mean(a) : at::mean(a, dims, keep));
      case 2: return out(info, at::amax(a, dims, keep));
      case 3: return out(info, at::amin(a, dims, keep));
      case 4:
        if (all) return out(info, at::prod(a));
        return out(info, at::prod(a, dims.at(0), keep));
      case 5: return out(info, at::var(a, odims, static_cast<int64_t>(extra), keep));
      case 6: return out(info, at::std(a, odims, static_cast<int64_t>(extra), keep));
      case 7: return out(info, at::linalg_vector_norm(a, extra, odims, keep));
      case 8: {
        if (all) {
          std::vector<int64_t> every(a.dim());
          for (int64_t i = 0; i < a.dim(); i++) every[i] = i;
          return out(info, at::logsumexp(a, every, keep));
        }
        return out(info, at::logsumexp(a, dims, keep));
      }
      case 9: return out(info, all ? at::argmax(a) : at::argmax(a, dims.at(0), keep));
      case 10: return out(info, all ? at::argmin(a) : at::argmin(a, dims.at(0), keep));
      case 11: return out(info, all ? at::all(a) : at::all(a, dims.at(0), keep));
      case 12: return out(info, all ? at::any(a) : at::any(a, dims.at(0), keep));
      default: throw std::invalid_argument("unknown reduction");
    }
  });
}

// maxDim(h, dim, keepdim) -> [values, indices]; minDim likewise.
MM_FN(MaxDim) {
  return guarded(info, "max", [&]() -> Napi::Value {
    auto r = at::max(T(info, 0), I(info, 1), B(info, 2));
    return wrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
MM_FN(MinDim) {
  return guarded(info, "min", [&]() -> Napi::Value {
    auto r = at::min(T(info, 0), I(info, 1), B(info, 2));
    return wrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
MM_FN(Sort) {
  return guarded(info, "sort", [&]() -> Napi::Value {
    auto r = at::sort(T(info, 0), I(info, 1), B(info, 2));
    return wrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
MM_FN(Topk) {
  return guarded(info, "topk", [&]() -> Napi::Value {
    auto r = at::topk(T(info, 0), I(info, 1), I(info, 2), B(info, 3), true);
    return wrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
MM_FN(Cumsum) {
  return guarded(info, "cumsum", [&]() -> Napi::Value { return out(info, at::cumsum(T(info, 0), I(info, 1))); });
}

// ---- shape and indexing ----
MM_FN(Reshape) {
  return guarded(info, "reshape", [&]() -> Napi::Value { return out(info, T(info, 0).reshape(intList(info[1]))); });
}
MM_FN(View) {
  return guarded(info, "view", [&]() -> Napi::Value { return out(info, T(info, 0).view(intList(info[1]))); });
}
MM_FN(Permute) {
  return guarded(info, "permute", [&]() -> Napi::Value { return out(info, T(info, 0).permute(intList(info[1]))); });
}
MM_FN(Transpose) {
  return guarded(info, "transpose", [&]() -> Napi::Value { return out(info, T(info, 0).transpose(I(info, 1), I(info, 2))); });
}
// slice(h, dim, start, end, step)
MM_FN(Slice) {
  return guarded(info, "slice", [&]() -> Napi::Value {
    return out(info, T(info, 0).slice(I(info, 1), I(info, 2), I(info, 3), I(info, 4)));
  });
}
MM_FN(Select) {
  return guarded(info, "select", [&]() -> Napi::Value { return out(info, T(info, 0).select(I(info, 1), I(info, 2))); });
}
MM_FN(IndexSelect) {
  return guarded(info, "indexSelect", [&]() -> Napi::Value { return out(info, at::index_select(T(info, 0), I(info, 1), T(info, 2))); });
}
MM_FN(Gather) {
  return guarded(info, "gather", [&]() -> Napi::Value { return out(info, at::gather(T(info, 0), I(info, 1), T(info, 2))); });
}
// index(h, idx): advanced indexing along dim 0 with an integer or boolean tensor.
MM_FN(IndexTensor) {
  return guarded(info, "index", [&]() -> Napi::Value {
    c10::List<c10::optional<at::Tensor>> idx;
    idx.push_back(T(info, 1));
    return out(info, at::index(T(info, 0), idx));
  });
}
MM_FN(Cat) {
  return guarded(info, "cat", [&]() -> Napi::Value { return out(info, at::cat(unwrapList(info.Env(), info[0]), I(info, 1))); });
}
MM_FN(Stack) {
  return guarded(info, "stack", [&]() -> Napi::Value { return out(info, at::stack(unwrapList(info.Env(), info[0]), I(info, 1))); });
}
// split(h, sizeOrSizes, dim)
MM_FN(Split) {
  return guarded(info, "split", [&]() -> Napi::Value {
    const at::Tensor& a = T(info, 0);
    std::vector<at::Tensor> parts = info[1].IsArray() ? at::split_with_sizes(a, intList(info[1]), I(info, 2))
                                                      : at::split(a, I(info, 1), I(info, 2));
    return wrapList(info.Env(), parts);
  });
}
MM_FN(Chunk) {
  return guarded(info, "chunk", [&]() -> Napi::Value { return wrapList(info.Env(), at::chunk(T(info, 0), I(info, 1), I(info, 2))); });
}
MM_FN(Squeeze) {
  return guarded(info, "squeeze", [&]() -> Napi::Value {
    return out(info, info[1].IsNumber() ? T(info, 0).squeeze(I(info, 1)) : T(info, 0).squeeze());
  });
}
MM_FN(Unsqueeze) {
  return guarded(info, "unsqueeze", [&]() -> Napi::Value { return out(info, T(info, 0).unsqueeze(I(info, 1))); });
}
MM_FN(Expand) {
  return guarded(info, "expand", [&]() -> Napi::Value { return out(info, T(info, 0).expand(intList(info[1]))); });
}
MM_FN(Flatten) {
  return guarded(info, "flatten", [&]() -> Napi::Value { return out(info, T(info, 0).flatten(I(info, 1), I(info, 2))); });
}
MM_FN(Repeat) {
  return guarded(info, "repeat", [&]() -> Napi::Value { return out(info, T(info, 0).repeat(intList(info[1]))); });
}
MM_FN(Flip) {
  return guarded(info, "flip", [&]() -> Napi::Value { return out(info, at::flip(T(info, 0), intList(info[1]))); });
}
MM_FN(Tril) {
  return guarded(info, "tril", [&]() -> Napi::Value {
    return out(info, B(info, 2) ? at::triu(T(info, 0), I(info, 1)) : at::tril(T(info, 0), I(info, 1)));
  });
}
MM_FN(OneHot) {
  return guarded(info, "oneHot", [&]() -> Napi::Value { return out(info, at::one_hot(T(info, 0), I(info, 1))); });
}

// ---- products ----
MM_FN(Matmul) {
  return guarded(info, "matmul", [&]() -> Napi::Value { return out(info, at::matmul(T(info, 0), T(info, 1))); });
}
MM_FN(Bmm) {
  return guarded(info, "bmm", [&]() -> Napi::Value { return out(info, at::bmm(T(info, 0), T(info, 1))); });
}
MM_FN(Mm) {
  return guarded(info, "mm", [&]() -> Napi::Value { return out(info, at::mm(T(info, 0), T(info, 1))); });
}

// ---- selection ----
MM_FN(Where) {
  return guarded(info, "where", [&]() -> Napi::Value { return out(info, at::where(T(info, 0), T(info, 1), T(info, 2))); });
}
MM_FN(MaskedFill) {
  return guarded(info, "maskedFill", [&]() -> Napi::Value { return out(info, at::masked_fill(T(info, 0), T(info, 1), D(info, 2))); });
}
// clamp(h, min|null, max|null)
MM_FN(Clamp) {
  return guarded(info, "clamp", [&]() -> Napi::Value {
    c10::optional<at::Scalar> lo, hi;
    if (info[1].IsNumber()) lo = D(info, 1);
    if (info[2].IsNumber()) hi = D(info, 2);
    return out(info, at::clamp(T(info, 0), lo, hi));
  });
}

// to(h, dtype|-1, device|null, copy)
MM_FN(To) {
  return guarded(info, "to", [&]() -> Napi::Value {
    const at::Tensor& a = T(info, 0);
    int dt = info[1].As<Napi::Number>().Int32Value();
    at::ScalarType st = dt >= 0 ? toScalarType(dt) : a.scalar_type();
    at::Device dev = info[2].IsString() ? toDevice(info[2].As<Napi::String>().Utf8Value()) : a.device();
    return out(info, a.to(dev, st, /*non_blocking=*/false, /*copy=*/B(info, 3)));
  });
}

void registerMath(Napi::Env env, Napi::Object exports) {
  MM_EXPORT(exports, "unary", Unary);
  MM_EXPORT(exports, "binary", Binary);
  MM_EXPORT(exports, "binaryScalar", BinaryScalar);
  MM_EXPORT(exports, "addScaled", AddScaled);
  MM_EXPORT(exports, "reduce", Reduce);
  MM_EXPORT(exports, "maxDim", MaxDim);
  MM_EXPORT(exports, "minDim", MinDim);
  MM_EXPORT(exports, "sort", Sort);
  MM_EXPORT(exports, "topk", Topk);
  MM_EXPORT(exports, "cumsum", Cumsum);
  MM_EXPORT(exports, "reshape", Reshape);
  MM_EXPORT(exports, "view", View);
  MM_EXPORT(exports, "permute", Permute);
  MM_EXPORT(exports, "transpose", Transpose);
  MM_EXPORT(exports, "slice", Slice);
  MM_EXPORT(exports, "select", Select);
  MM_EXPORT(exports, "indexSelect", IndexSelect);
  MM_EXPORT(exports, "gather", Gather);
  MM_EXPORT(exports, "indexTensor", IndexTensor);
  MM_EXPORT(exports, "cat", Cat);
  MM_EXPORT(exports, "stack", Stack);
  MM_EXPORT(exports, "split", Split);
  MM_EXPORT(exports, "chunk", Chunk);
  MM_EXPORT(exports, "squeeze", Squeeze);
  MM_EXPORT(exports, "unsqueeze", Unsqueeze);
  MM_EXPORT(exports, "expand", Expand);
  MM_EXPORT(exports, "flatten", Flatten);
  MM_EXPORT(exports, "repeat", Repeat);
  MM_EXPORT(exports, "flip", Flip);
  MM_EXPORT(exports, "tril", Tril);
  MM_EXPORT(exports, "oneHot", OneHot);
  MM_EXPORT(exports, "matmul", Matmul);
  MM_EXPORT(exports, "bmm", Bmm);
  MM_EXPORT(exports, "mm", Mm);
  MM_EXPORT(exports, "where", Where);
  MM_EXPORT(exports, "maskedFill", MaskedFill);
  MM_EXPORT(exports, "clamp", Clamp);
  MM_EXPORT(exports, "to", To);
}

}  // namespace mm
