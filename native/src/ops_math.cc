// Elementwise math, comparisons, reductions, shape and indexing ops, matrix products.
// The unary, binary and reduction families are code tables (code_tables.h): TypeScript selects an entry by its
// index, and takes the indices from the names this unit exports.
#include "code_tables.h"
#include "handles.h"

#include <ATen/ATen.h>

namespace mm {

struct UnaryOp {
  const char* name;
  at::Tensor (*apply)(const at::Tensor& a);
};

#define MM_UNARY(expr) [](const at::Tensor& a) -> at::Tensor { return expr; }
static const UnaryOp kUnaryOps[] = {
    {"neg", MM_UNARY(at::neg(a))},
    {"abs", MM_UNARY(at::abs(a))},
    {"exp", MM_UNARY(at::exp(a))},
    {"log", MM_UNARY(at::log(a))},
    {"sqrt", MM_UNARY(at::sqrt(a))},
    {"rsqrt", MM_UNARY(at::rsqrt(a))},
    {"sin", MM_UNARY(at::sin(a))},
    {"cos", MM_UNARY(at::cos(a))},
    {"tanh", MM_UNARY(at::tanh(a))},
    {"sigmoid", MM_UNARY(at::sigmoid(a))},
    {"relu", MM_UNARY(at::relu(a))},
    {"gelu", MM_UNARY(at::gelu(a, "none"))},
    {"geluTanh", MM_UNARY(at::gelu(a, "tanh"))},
    {"silu", MM_UNARY(at::silu(a))},
    {"square", MM_UNARY(at::square(a))},
    {"sign", MM_UNARY(at::sign(a))},
    {"floor", MM_UNARY(at::floor(a))},
    {"ceil", MM_UNARY(at::ceil(a))},
    {"round", MM_UNARY(at::round(a))},
    {"reciprocal", MM_UNARY(at::reciprocal(a))},
    {"logicalNot", MM_UNARY(at::logical_not(a))},
    {"isfinite", MM_UNARY(at::isfinite(a))},
    {"isnan", MM_UNARY(at::isnan(a))},
    {"contiguous", MM_UNARY(a.contiguous())},
    {"clone", MM_UNARY(a.clone())},
    {"detach", MM_UNARY(a.detach())},
    {"erf", MM_UNARY(at::erf(a))},
    {"log1p", MM_UNARY(at::log1p(a))},
    {"expm1", MM_UNARY(at::expm1(a))},
    {"isinf", MM_UNARY(at::isinf(a))},
};
#undef MM_UNARY

MM_FN(Unary) {
  int code = info[0].As<Napi::Number>().Int32Value();
  return guarded(info, tableName(kUnaryOps, code, "unary"), [&]() -> Napi::Value {
    return out(info, tableEntry(kUnaryOps, code, "unary op").apply(T(info, 1)));
  });
}

// One code names the op for both operand kinds: binary(code, a, b) and binaryScalar(code, a, number).
struct BinaryOp {
  const char* name;
  at::Tensor (*withTensor)(const at::Tensor& a, const at::Tensor& b);  // null: the op takes a number only
  at::Tensor (*withScalar)(const at::Tensor& a, const at::Scalar& s);
};

#define MM_WITH_TENSOR(expr) [](const at::Tensor& a, const at::Tensor& b) -> at::Tensor { return expr; }
#define MM_WITH_SCALAR(expr) [](const at::Tensor& a, const at::Scalar& s) -> at::Tensor { return expr; }
static const BinaryOp kBinaryOps[] = {
    {"add", MM_WITH_TENSOR(at::add(a, b)), MM_WITH_SCALAR(at::add(a, s))},
    {"sub", MM_WITH_TENSOR(at::sub(a, b)), MM_WITH_SCALAR(at::sub(a, s))},
    {"mul", MM_WITH_TENSOR(at::mul(a, b)), MM_WITH_SCALAR(at::mul(a, s))},
    {"div", MM_WITH_TENSOR(at::div(a, b)), MM_WITH_SCALAR(at::div(a, s))},
    {"pow", MM_WITH_TENSOR(at::pow(a, b)), MM_WITH_SCALAR(at::pow(a, s))},
    {"maximum", MM_WITH_TENSOR(at::maximum(a, b)), MM_WITH_SCALAR(at::clamp_min(a, s))},
    {"minimum", MM_WITH_TENSOR(at::minimum(a, b)), MM_WITH_SCALAR(at::clamp_max(a, s))},
    {"eq", MM_WITH_TENSOR(at::eq(a, b)), MM_WITH_SCALAR(at::eq(a, s))},
    {"ne", MM_WITH_TENSOR(at::ne(a, b)), MM_WITH_SCALAR(at::ne(a, s))},
    {"lt", MM_WITH_TENSOR(at::lt(a, b)), MM_WITH_SCALAR(at::lt(a, s))},
    {"le", MM_WITH_TENSOR(at::le(a, b)), MM_WITH_SCALAR(at::le(a, s))},
    {"gt", MM_WITH_TENSOR(at::gt(a, b)), MM_WITH_SCALAR(at::gt(a, s))},
    {"ge", MM_WITH_TENSOR(at::ge(a, b)), MM_WITH_SCALAR(at::ge(a, s))},
    {"logicalAnd", MM_WITH_TENSOR(at::logical_and(a, b)), MM_WITH_SCALAR(at::logical_and(a, at::scalar_tensor(s, a.options())))},
    {"logicalOr", MM_WITH_TENSOR(at::logical_or(a, b)), MM_WITH_SCALAR(at::logical_or(a, at::scalar_tensor(s, a.options())))},
    {"remainder", MM_WITH_TENSOR(at::remainder(a, b)), MM_WITH_SCALAR(at::remainder(a, s))},
    {"rsub", nullptr, MM_WITH_SCALAR(at::rsub(a, s))},
    {"rdiv", nullptr, MM_WITH_SCALAR(at::div(at::scalar_tensor(s, a.options()), a))},
    {"rpow", nullptr, MM_WITH_SCALAR(at::pow(s, a))},
    {"floorDivide", MM_WITH_TENSOR(at::floor_divide(a, b)), MM_WITH_SCALAR(at::floor_divide(a, s))},
};
#undef MM_WITH_TENSOR
#undef MM_WITH_SCALAR

MM_FN(Binary) {
  int code = info[0].As<Napi::Number>().Int32Value();
  return guarded(info, tableName(kBinaryOps, code, "binary"), [&]() -> Napi::Value {
    const BinaryOp& op = tableEntry(kBinaryOps, code, "binary op");
    if (!op.withTensor) throw std::invalid_argument(std::string(op.name) + " takes a number as its other operand, not a tensor");
    return out(info, op.withTensor(T(info, 1), T(info, 2)));
  });
}

// binaryScalar(code, a, scalar, isInt): integer scalars keep integer tensors integer.
MM_FN(BinaryScalar) {
  int code = info[0].As<Napi::Number>().Int32Value();
  return guarded(info, tableName(kBinaryOps, code, "binary"), [&]() -> Napi::Value {
    const BinaryOp& op = tableEntry(kBinaryOps, code, "binary op");
    at::Scalar s = B(info, 3) ? at::Scalar(I(info, 2)) : at::Scalar(D(info, 2));
    return out(info, op.withScalar(T(info, 1), s));
  });
}

// add(a, b, alpha) = a + alpha * b
MM_FN(AddScaled) {
  return guarded(info, "add", [&]() -> Napi::Value { return out(info, at::add(T(info, 0), T(info, 1), D(info, 2))); });
}

// A reduction's inputs: `all` when no dims were given; `extra` is the correction for var/std and p for norm.
struct ReduceArgs {
  const at::Tensor& a;
  bool all;
  const std::vector<int64_t>& dims;
  at::OptionalIntArrayRef odims;
  bool keep;
  double extra;
};

struct ReduceOp {
  const char* name;
  at::Tensor (*apply)(const ReduceArgs& r);
};

#define MM_REDUCE(body) [](const ReduceArgs& r) -> at::Tensor body
static const ReduceOp kReduceOps[] = {
    {"sum", MM_REDUCE({ return r.all && !r.keep ? at::sum(r.a) : at::sum(r.a, r.dims, r.keep); })},
    {"mean", MM_REDUCE({ return r.all && !r.keep ? at::mean(r.a) : at::mean(r.a, r.dims, r.keep); })},
    {"amax", MM_REDUCE({ return at::amax(r.a, r.dims, r.keep); })},
    {"amin", MM_REDUCE({ return at::amin(r.a, r.dims, r.keep); })},
    {"prod", MM_REDUCE({ return r.all ? at::prod(r.a) : at::prod(r.a, r.dims.at(0), r.keep); })},
    {"var", MM_REDUCE({ return at::var(r.a, r.odims, static_cast<int64_t>(r.extra), r.keep); })},
    {"std", MM_REDUCE({ return at::std(r.a, r.odims, static_cast<int64_t>(r.extra), r.keep); })},
    {"norm", MM_REDUCE({ return at::linalg_vector_norm(r.a, r.extra, r.odims, r.keep); })},
    {"logsumexp", MM_REDUCE({
       if (!r.all) return at::logsumexp(r.a, r.dims, r.keep);
       std::vector<int64_t> every(r.a.dim());
       for (int64_t i = 0; i < r.a.dim(); i++) every[i] = i;
       return at::logsumexp(r.a, every, r.keep);
     })},
    {"argmax", MM_REDUCE({ return r.all ? at::argmax(r.a) : at::argmax(r.a, r.dims.at(0), r.keep); })},
    {"argmin", MM_REDUCE({ return r.all ? at::argmin(r.a) : at::argmin(r.a, r.dims.at(0), r.keep); })},
    {"all", MM_REDUCE({ return r.all ? at::all(r.a) : at::all(r.a, r.dims.at(0), r.keep); })},
    {"any", MM_REDUCE({ return r.all ? at::any(r.a) : at::any(r.a, r.dims.at(0), r.keep); })},
};
#undef MM_REDUCE

// reduce(code, h, dims|null, keepdim, extra)
MM_FN(Reduce) {
  int code = info[0].As<Napi::Number>().Int32Value();
  return guarded(info, tableName(kReduceOps, code, "reduce"), [&]() -> Napi::Value {
    const ReduceOp& op = tableEntry(kReduceOps, code, "reduction");
    bool all = info[2].IsNull() || info[2].IsUndefined();
    std::vector<int64_t> dims = all ? std::vector<int64_t>{} : intList(info[2]);
    at::OptionalIntArrayRef odims = all ? at::OptionalIntArrayRef() : at::OptionalIntArrayRef(dims);
    ReduceArgs args{T(info, 1), all, dims, odims, B(info, 3), info[4].IsNumber() ? D(info, 4) : 0};
    return out(info, op.apply(args));
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
    // non_blocking: a copy from pinned host memory to a GPU (or back) is queued and returns at once
    return out(info, a.to(dev, st, /*non_blocking=*/B(info, 4), /*copy=*/B(info, 3)));
  });
}

void registerMath(Napi::Env env, Napi::Object exports) {
  exportCodeTable(env, exports, "unary", kUnaryOps);
  exportCodeTable(env, exports, "binary", kBinaryOps);
  exportCodeTable(env, exports, "reduce", kReduceOps);
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
