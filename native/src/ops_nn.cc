// Neural-network functional ops: linear, normalisation, activations with options, dropout, embedding,
// convolution, attention and losses.
#include "code_tables.h"
#include "handles.h"
#include "torch_compat.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Reduction.h>

#include <cmath>
#include <limits>

namespace mm {


MM_FN(Linear) {
  return guarded(info, "linear", [&]() -> Napi::Value { return out(info, at::linear(T(info, 0), T(info, 1), OT(info, 2))); });
}

// layerNorm(x, normalizedShape, weight|-1, bias|-1, eps)
MM_FN(LayerNorm) {
  return guarded(info, "layerNorm", [&]() -> Napi::Value {
    std::vector<int64_t> shape = intList(info[1]);
    return out(info, at::layer_norm(T(info, 0), shape, OT(info, 2), OT(info, 3), D(info, 4)));
  });
}

// softmax(x, dim, dtype|-1), logSoftmax likewise
MM_FN(Softmax) {
  return guarded(info, "softmax", [&]() -> Napi::Value {
    int dt = info[2].As<Napi::Number>().Int32Value();
    c10::optional<at::ScalarType> st;
    if (dt >= 0) st = toScalarType(dt);
    return out(info, at::softmax(T(info, 0), I(info, 1), st));
  });
}
MM_FN(LogSoftmax) {
  return guarded(info, "logSoftmax", [&]() -> Napi::Value {
    int dt = info[2].As<Napi::Number>().Int32Value();
    c10::optional<at::ScalarType> st;
    if (dt >= 0) st = toScalarType(dt);
    return out(info, at::log_softmax(T(info, 0), I(info, 1), st));
  });
}

// dropout(x, p, train)
MM_FN(Dropout) {
  return guarded(info, "dropout", [&]() -> Napi::Value { return out(info, at::dropout(T(info, 0), D(info, 1), B(info, 2))); });
}

// embedding(weight, indices, paddingIdx)
MM_FN(Embedding) {
  return guarded(info, "embedding", [&]() -> Napi::Value { return out(info, at::embedding(T(info, 0), T(info, 1), I(info, 2))); });
}

// Convolution on the CPU where LibTorch's oneDNN (mkldnn) convolution is wrong. Debian 13's LibTorch 2.6 is linked
// against the system's oneDNN 3.7 instead of the 3.5 it was written for, and there the oneDNN convolution's input
// gradient is wrong for most shapes (and its output for some): measured against the same LibTorch with mkldnn
// disabled, 110 of 288 small configurations differ by up to 20 (e.g. 2x3x8x8 input, 6 filters of 4x4, stride 4: 24
// elements of the input gradient are 0). Debian's python3-torch 2.6 computes the same wrong numbers. Where that is
// so (onednnConvolutionIsRight, checked once per process), convolutions run LibTorch's own kernels instead, without
// touching the process-wide mkldnn switch (which would also take away the bf16 matmul kernels, which are right):
//  - a patch embedding (kernel == stride, no padding, dilation 1: ViT's) is one matmul over the unfolded patches;
//  - any other ungrouped convolution runs LibTorch's im2col + GEMM kernels (thnn_conv2d, slow_conv_dilated2d).
// Those ops are not on autocast's list as conv2d is, so the autocast cast (lower precision for conv) is done here.
// Where oneDNN is right (Debian 12's 1.13, pip wheels), at::conv2d keeps its fast kernels and its exact numbers.
static at::Tensor conv2dCpu(at::Tensor x, at::Tensor w, c10::optional<at::Tensor> b, const std::vector<int64_t>& stride,
                            const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation) {
  if (compat::autocastEnabled(false) && at::isFloatingType(x.scalar_type())) {
    at::ScalarType dt = compat::autocastDtype(false);
    x = at::autocast::cached_cast(dt, x, c10::DeviceType::CPU);
    w = at::autocast::cached_cast(dt, w, c10::DeviceType::CPU);
    if (b) b = at::autocast::cached_cast(dt, *b, c10::DeviceType::CPU);
  }
  const int64_t kh = w.size(2), kw = w.size(3);
  const bool unit = dilation[0] == 1 && dilation[1] == 1;
  if (unit && stride[0] == kh && stride[1] == kw && padding[0] == 0 && padding[1] == 0 && x.dim() == 4) {
    const int64_t B = x.size(0), C = x.size(1), nh = x.size(2) / kh, nw = x.size(3) / kw, O = w.size(0);
    // (B, C, H, W) -> (B, C, nh, kh, nw, kw) -> (B, nh, nw, C, kh, kw) -> (B, nh*nw, C*kh*kw): one row per patch
    at::Tensor patches = x.narrow(2, 0, nh * kh).narrow(3, 0, nw * kw).reshape({B, C, nh, kh, nw, kw})
                             .permute({0, 2, 4, 1, 3, 5}).reshape({B, nh * nw, C * kh * kw});
    // (O, C, kh, kw) -> (O, C*kh*kw); y (B, nh*nw, O) -> (B, nh, nw, O) -> (B, O, nh, nw)
    at::Tensor y = at::linear(patches, w.reshape({O, C * kh * kw}), b);
    return y.reshape({B, nh, nw, O}).permute({0, 3, 1, 2});
  }
  if (unit) return at::thnn_conv2d(x, w, {kh, kw}, b, stride, padding);
  return at::slow_conv_dilated2d(x, w, {kh, kw}, b, stride, padding, dilation);
}

// Whether at::conv2d (oneDNN where LibTorch enables it) gives LibTorch's reference numbers, forward and backward, on
// the two shapes Debian 13's build gets wrong (a 4x4 patch embedding, a 3x3 same-padding convolution). Checked once,
// in fp32, with grad mode on and autocast off whatever the caller's modes.
bool onednnConvolutionIsRight() {
  static const bool right = [] {
    at::AutoGradMode grad(true);
    c10::impl::ExcludeDispatchKeyGuard noAutocast(c10::DispatchKeySet({c10::DispatchKey::AutocastCPU, c10::DispatchKey::AutocastCUDA}));
    struct Case { int64_t k, stride, pad; };
    for (Case c : {Case{4, 4, 0}, Case{3, 1, 1}}) {
      at::Tensor x0 = at::arange(2 * 3 * 8 * 8, at::kFloat).reshape({2, 3, 8, 8}).mul(0.37).sin();
      at::Tensor w0 = at::arange(6 * 3 * c.k * c.k, at::kFloat).reshape({6, 3, c.k, c.k}).mul(0.53).cos();
      std::vector<at::Tensor> outs[2];
      for (int ref = 0; ref < 2; ref++) {
        at::Tensor x = x0.clone().requires_grad_(true);
        at::Tensor w = w0.clone().requires_grad_(true);
        at::Tensor y = ref ? at::thnn_conv2d(x, w, {c.k, c.k}, {}, {c.stride, c.stride}, {c.pad, c.pad})
                           : at::conv2d(x, w, {}, {c.stride, c.stride}, {c.pad, c.pad});
        y.backward(at::ones_like(y).mul(at::arange(y.numel(), at::kFloat).reshape(y.sizes()).mul(0.11).cos()));
        outs[ref] = {y.detach(), x.grad(), w.grad()};
      }
      for (size_t i = 0; i < 3; i++) if (!at::allclose(outs[0][i], outs[1][i], 1e-4, 1e-4)) return false;
    }
    return true;
  }();
  return right;
}

// conv2d(x, w, b|-1, stride[2], padding[2], dilation[2], groups)
MM_FN(Conv2d) {
  return guarded(info, "conv2d", [&]() -> Napi::Value {
    const at::Tensor& x = T(info, 0);
    const at::Tensor& w = T(info, 1);
    c10::optional<at::Tensor> b = OT(info, 2);
    std::vector<int64_t> stride = intList(info[3]), padding = intList(info[4]), dilation = intList(info[5]);
    int64_t groups = I(info, 6);
    if (x.is_cpu() && groups == 1 && x.dim() == 4 && !onednnConvolutionIsRight()) return out(info, conv2dCpu(x, w, b, stride, padding, dilation));
    return out(info, at::conv2d(x, w, b, stride, padding, dilation, groups));
  });
}

// A boolean mask means "may attend" (True) as in torch 2.x; it becomes an additive mask here so that 1.13 and
// 2.x builds agree on its meaning.
static at::Tensor additiveMask(const at::Tensor& mask, const at::Tensor& q) {
  if (mask.scalar_type() != at::kBool) return mask;
  auto zero = at::zeros({}, q.options());
  auto neg = at::full({}, -std::numeric_limits<double>::infinity(), q.options());
  return at::where(mask, zero, neg);
}

// sdpa(q, k, v, mask|-1, dropoutP, isCausal, scale|null): q,k,v are (..., T, hs).
MM_FN(Sdpa) {
  return guarded(info, "scaledDotProductAttention", [&]() -> Napi::Value {
    at::Tensor q = T(info, 0);
    const at::Tensor& k = T(info, 1);
    const at::Tensor& v = T(info, 2);
    c10::optional<at::Tensor> mask = OT(info, 3);
    double p = D(info, 4);
    bool causal = B(info, 5);
    if (mask) mask = additiveMask(*mask, q);
    c10::optional<double> scale;
    if (info[6].IsNumber()) scale = D(info, 6);
    return out(info, compat::scaledDotProductAttention(q, k, v, mask, p, causal, scale));
  });
}

// How a loss reduces over the batch (a code table, code_tables.h), as LibTorch's enum.
struct LossReduction {
  const char* name;
  at::Reduction::Reduction value;
};

static const LossReduction kLossReductions[] = {
    {"none", at::Reduction::None},
    {"mean", at::Reduction::Mean},
    {"sum", at::Reduction::Sum},
};

static int64_t lossReduction(const Napi::CallbackInfo& info, int i) {
  return tableEntry(kLossReductions, info[i].As<Napi::Number>().Int32Value(), "loss reduction").value;
}

// crossEntropy(logits, target, weight|-1, reduction, ignoreIndex, labelSmoothing)
MM_FN(CrossEntropy) {
  return guarded(info, "crossEntropy", [&]() -> Napi::Value {
    return out(info, at::cross_entropy_loss(T(info, 0), T(info, 1), OT(info, 2), lossReduction(info, 3), I(info, 4), D(info, 5)));
  });
}

// mseLoss(a, b, reduction)
MM_FN(MseLoss) {
  return guarded(info, "mseLoss", [&]() -> Napi::Value { return out(info, at::mse_loss(T(info, 0), T(info, 1), lossReduction(info, 2))); });
}

// binaryCrossEntropyWithLogits(logits, target, reduction)
MM_FN(BceWithLogits) {
  return guarded(info, "binaryCrossEntropyWithLogits", [&]() -> Napi::Value {
    return out(info, at::binary_cross_entropy_with_logits(T(info, 0), T(info, 1), c10::nullopt, c10::nullopt, lossReduction(info, 2)));
  });
}

// The resampling modes interpolate() offers (a code table, code_tables.h).
struct InterpolationMode {
  const char* name;
  at::Tensor (*resize)(const at::Tensor& x, at::IntArrayRef size, bool alignCorners);
};

#define MM_RESIZE(expr) [](const at::Tensor& x, at::IntArrayRef size, bool alignCorners) -> at::Tensor { return expr; }
static const InterpolationMode kInterpolationModes[] = {
    {"bilinear", MM_RESIZE(at::upsample_bilinear2d(x, size, alignCorners, c10::nullopt, c10::nullopt))},
    {"bicubic", MM_RESIZE(at::upsample_bicubic2d(x, size, alignCorners, c10::nullopt, c10::nullopt))},
    {"nearest", MM_RESIZE(at::upsample_nearest2d(x, size, c10::nullopt, c10::nullopt))},  // no corners to align
};
#undef MM_RESIZE

// interpolate(x, [H, W], mode, alignCorners)
MM_FN(Interpolate) {
  return guarded(info, "interpolate", [&]() -> Napi::Value {
    std::vector<int64_t> size = intList(info[1]);
    const InterpolationMode& mode = tableEntry(kInterpolationModes, info[2].As<Napi::Number>().Int32Value(), "interpolation mode");
    return out(info, mode.resize(T(info, 0), size, B(info, 3)));
  });
}

// normalizeImages(u8 (B, H, W, 3), mean[3], std[3]) -> float32 (B, 3, H, W) = x * scale + bias, with
// scale = 1 / (255 std) and bias = -mean / std, each product and sum rounded to float32.
// On the CPU: one pass through a 256-entry table per channel (x * scale, then + bias, rounded as two float32
// operations, so the values are those of a multiply pass then an add pass), rows split over LibTorch's threads. The
// earlier three passes (a widening, transposing copy, then mul_ and add_ over the planes) wrote and re-read the
// float batch twice: 13 ms for 32 x 224 x 224 here against ~3 ms. On a GPU the three passes stay (they are
// kernels there).
MM_FN(NormalizeImages) {
  return guarded(info, "normalizeImages", [&]() -> Napi::Value {
    const at::Tensor& x = T(info, 0);
    std::vector<double> mean = doubleList(info[1]);
    std::vector<double> stdev = doubleList(info[2]);
    std::vector<float> scale(3), bias(3);
    for (int c = 0; c < 3; c++) {
      scale[c] = static_cast<float>(1.0 / (255.0 * stdev[c]));
      bias[c] = static_cast<float>(-mean[c] / stdev[c]);
    }
    const int64_t B = x.size(0), H = x.size(1), W = x.size(2);
    at::Tensor y = at::empty({B, 3, H, W}, x.options().dtype(at::kFloat));
    if (!x.device().is_cpu()) {
      at::Tensor s = at::tensor(scale).view({1, 3, 1, 1}).to(x.device());
      at::Tensor b = at::tensor(bias).view({1, 3, 1, 1}).to(x.device());
      y.copy_(x.permute({0, 3, 1, 2}));  // (B, H, W, 3) -> (B, 3, H, W), widened to float
      y.mul_(s).add_(b);
      return out(info, y);
    }
    float table[3][256];
    for (int c = 0; c < 3; c++) {
      for (int v = 0; v < 256; v++) {
        volatile float product = static_cast<float>(v) * scale[c];  // rounded here, as the multiply pass rounds
        table[c][v] = product + bias[c];
      }
    }
    const at::Tensor xc = x.contiguous();
    const uint8_t* src = xc.data_ptr<uint8_t>();
    float* dst = y.data_ptr<float>();
    const int64_t plane = H * W;
    at::parallel_for(0, B * H, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) {
        const int64_t b = r / H, h = r % H;
        const uint8_t* p = src + r * W * 3;  // row h of image b, (W, 3)
        float* o0 = dst + b * 3 * plane + h * W;  // row h of image b's R, G, B planes
        float* o1 = o0 + plane;
        float* o2 = o1 + plane;
        for (int64_t w = 0; w < W; w++, p += 3) {
          o0[w] = table[0][p[0]];
          o1[w] = table[1][p[1]];
          o2[w] = table[2][p[2]];
        }
      }
    });
    return out(info, y);
  });
}

void registerNN(Napi::Env env, Napi::Object exports) {
  exportCodeTable(env, exports, "lossReduction", kLossReductions);
  exportCodeTable(env, exports, "interpolation", kInterpolationModes);
  MM_EXPORT(exports, "normalizeImages", NormalizeImages);
  MM_EXPORT(exports, "linear", Linear);
  MM_EXPORT(exports, "layerNorm", LayerNorm);
  MM_EXPORT(exports, "softmax", Softmax);
  MM_EXPORT(exports, "logSoftmax", LogSoftmax);
  MM_EXPORT(exports, "dropout", Dropout);
  MM_EXPORT(exports, "embedding", Embedding);
  MM_EXPORT(exports, "conv2d", Conv2d);
  MM_EXPORT(exports, "sdpa", Sdpa);
  MM_EXPORT(exports, "crossEntropy", CrossEntropy);
  MM_EXPORT(exports, "mseLoss", MseLoss);
  MM_EXPORT(exports, "bceWithLogits", BceWithLogits);
  MM_EXPORT(exports, "interpolate", Interpolate);
}

}  // namespace mm
