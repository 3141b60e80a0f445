/**
 * Convolutions on the WASM backend: `Conv2D`, `FusedConv2D` (with a bias and
 * a ReLU, as inference runs its folded layers), `Conv2DBackpropFilter` (which
 * the backend lacks) and a stride-1 `Conv2DBackpropInput`. Stride-1
 * convolutions with output channels a multiple of 8 run on our kernels: 3 × 3
 * ones with a multiple of 4 channels going in by Winograd's F(4 × 4, 3 × 3)
 * (`kernels/winograd.c`; forward, input and filter gradients; inference's
 * fused ones only from 64 output pixels), the others on the direct kernels of
 * `kernels/conv.c`, all register-blocked, with relaxed SIMD's fused
 * multiply-add where the runtime has it. The rest go to XNNPACK or the
 * backend's own kernels. Internal.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { BackendError } from "../backend_error.ts";
import {
  type KernelArgs,
  type KernelFn,
  replaceKernel,
  type WasmHeapBackend,
  wasmKernel,
  withScratch,
} from "./kernel.ts";
import { type DirectConvArgs, type SimdKernels, simdKernels } from "./simd.ts";

type Shape4 = [number, number, number, number];

/**
 * Geometry of a forward convolution: the one a kernel computes, or whose
 * gradient it computes (whose attributes have no dilations: 1).
 */
function convInfo(
  inShape: readonly number[],
  filterShape: readonly number[],
  attrs: Pick<tf.Conv2DAttrs, "strides" | "pad" | "dimRoundingMode" | "dataFormat"> & {
    dilations?: tf.Conv2DAttrs["dilations"];
  },
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inShape as Shape4,
    filterShape as Shape4,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(attrs.dataFormat ?? "NHWC"),
  );
}

const runs = { direct: 0, winograd: 0 };

/**
 * How many times the direct kernels of `kernels/conv.c` and the Winograd
 * kernel of `kernels/winograd.c` have run in this process. Internal: the
 * tests check that each case takes the path they name.
 */
export function convolutionRuns(): { direct: number; winograd: number } {
  return { ...runs };
}

/**
 * Tiles of 4 × 4 outputs the Winograd kernels transform at a time; their
 * scratch holds 36 · (chunk · (Ci + Co) + 2 · skew) floats besides the
 * filter's (or the summed products') 36 · Ci · Co (for the default model's
 * layers, 32 measured within 5% of the fastest of 8, 16, 32 and 64 for each
 * kernel).
 */
const WINOGRAD_CHUNK = 32;
/** `SKEW` in `kernels/winograd.c`: floats added between the 36 planes of a chunk's scratch. */
const WINOGRAD_SKEW = 16;

/**
 * The SIMD kernels when the direct convolution of `kernels/conv.c` can take
 * a convolution: float32, stride 1, dilation 1, channels last, output
 * channels a multiple of 8 (its vector blocks), a non-empty output, and
 * padding that fits inside the padded copy it reads.
 */
function directConv(
  backend: tf.KernelBackend,
  info: tf.backend_util.Conv2DInfo,
  x: tf.TensorInfo,
): SimdKernels | null {
  if (
    x.dtype !== "float32" || info.strideHeight !== 1 || info.strideWidth !== 1 ||
    info.dilationHeight !== 1 || info.dilationWidth !== 1 || info.dataFormat !== "channelsLast" ||
    info.outChannels % 8 !== 0 || info.batchSize < 1 || info.outHeight < 1 || info.outWidth < 1
  ) return null;
  const { top, left } = info.padInfo;
  if (top < 0 || left < 0 || farPadding(info).bottom < 0 || farPadding(info).right < 0) return null;
  return simdKernels(backend);
}

/** Padding after the last row and column that makes a stride-1 convolution's output OH × OW. */
function farPadding(info: tf.backend_util.Conv2DInfo): { bottom: number; right: number } {
  return {
    bottom: info.outHeight + info.filterHeight - 1 - info.inHeight - info.padInfo.top,
    right: info.outWidth + info.filterWidth - 1 - info.inWidth - info.padInfo.left,
  };
}

/**
 * The input of a convolution zero-padded to [N, Hp, Wp, Ci], by default
 * [N, OH + KH − 1, OW + KW − 1, Ci], the form `kernels/conv.c` reads
 * (`pad_nhwc`; rows and columns past the input are zeros); the caller frees it.
 */
function paddedInput(
  backend: tf.KernelBackend,
  simd: SimdKernels,
  x: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  Hp = info.outHeight + info.filterHeight - 1,
  Wp = info.outWidth + info.filterWidth - 1,
): tf.TensorInfo {
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C } = info;
  const xp = (backend as WasmHeapBackend).makeOutput([N, Hp, Wp, C], "float32");
  simd.exports.pad_nhwc(
    simd.offset(x),
    N,
    H,
    W,
    C,
    info.padInfo.top,
    info.padInfo.left,
    Hp,
    Wp,
    simd.offset(xp),
  );
  return xp;
}

let originalConv2D: KernelFn | undefined;

/** Whether Winograd's F(4 × 4, 3 × 3) takes a convolution {@linkcode directConv} takes. */
const winogradTakes = (info: tf.backend_util.Conv2DInfo) =>
  info.filterHeight === 3 && info.filterWidth === 3 && info.inChannels % 4 === 0;

/**
 * Fewest output pixels (batch × height × width) for which inference's fused
 * convolution runs on Winograd's kernel rather than the direct one: below,
 * its transforms cost more than they save (training's convolutions, on
 * shards of 16 or more images, keep to Winograd's, so that trained weights do
 * not depend on this). In a scratch timing of `tf.fused.conv2d` (2,000 calls
 * each, two runs), the default model's last layer at batch 1 (7 × 7 = 49
 * pixels, 32 → 32 channels, with bias and ReLU) took 42–46 µs on the direct
 * kernel against 55–56 on Winograd's; at batch 2 (98 pixels), 77–86 against
 * 71–79.
 */
const WINOGRAD_MIN_PIXELS = 64;

/** Whether a fused convolution runs on Winograd's kernel: it takes it, and it is large enough. */
const winogradFused = (info: tf.backend_util.Conv2DInfo) =>
  winogradTakes(info) && info.batchSize * info.outHeight * info.outWidth >= WINOGRAD_MIN_PIXELS;

/**
 * A 2-D convolution on the WASM backend: stride-1 convolutions that
 * {@linkcode directConv} takes run on `winograd_conv3x3` of
 * `kernels/winograd.c` when the filter is 3 × 3 and the input channels a
 * multiple of 4, else on `conv_forward` of `kernels/conv.c`; the others on
 * the backend's own kernel (XNNPACK).
 */
function conv2DWasm(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const x = inputs.x as tf.TensorInfo, filter = inputs.filter as tf.TensorInfo;
  const info = convInfo(x.shape, filter.shape, args.attrs as unknown as tf.Conv2DAttrs);
  const simd = directConv(backend, info, x);
  if (!simd) return originalConv2D!(args);
  const kernel = winogradTakes(info) ? "winograd" : "direct";
  return runForward(kernel, backend, simd, x, filter, null, false, info);
}

let originalFusedConv2D: KernelFn | undefined;

/**
 * A 2-D convolution with a bias and a ReLU or no activation, as inference
 * runs each folded convolution and batch norm (`../inference.ts`): on
 * `winograd_conv3x3` where Winograd takes the convolution and it has at least
 * {@linkcode WINOGRAD_MIN_PIXELS} output pixels, else on `conv_forward` where
 * {@linkcode directConv} takes it (the first layer's one input channel, and
 * small outputs such as the last layer's at batch 1), each adding the bias and
 * applying the ReLU as it stores; else on the backend's own kernel.
 */
function fusedConv2DWasm(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const attrs = args.attrs as unknown as tf.FusedConv2DAttrs;
  const x = inputs.x as tf.TensorInfo, filter = inputs.filter as tf.TensorInfo;
  const bias = (inputs.bias ?? null) as tf.TensorInfo | null;
  const info = convInfo(x.shape, filter.shape, attrs);
  const simd = directConv(backend, info, x);
  const activation = attrs.activation ?? "linear";
  if (
    !simd || inputs.preluActivationWeights ||
    (activation !== "linear" && activation !== "relu") ||
    (bias && (bias.dtype !== "float32" || tf.util.sizeFromShape(bias.shape) !== info.outChannels))
  ) return originalFusedConv2D!(args);
  const relu = activation === "relu";
  const kernel = winogradFused(info) ? "winograd" : "direct";
  return runForward(kernel, backend, simd, x, filter, bias, relu, info);
}

/**
 * A forward convolution, plus `bias` [Co] when given, then a ReLU when `relu`
 * is set: by Winograd's F(4 × 4, 3 × 3) (`winograd_conv3x3` of
 * `kernels/winograd.c`, for a 3 × 3 filter) or directly (`conv_forward` of
 * `kernels/conv.c`).
 */
function runForward(
  kernel: "winograd" | "direct",
  backend: tf.KernelBackend,
  simd: SimdKernels,
  x: tf.TensorInfo,
  filter: tf.TensorInfo,
  bias: tf.TensorInfo | null,
  relu: boolean,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const { batchSize: N, inChannels: Ci, outChannels: Co, outHeight: OH, outWidth: OW } = info;
  if (kernel === "direct") {
    return runDirect(
      backend,
      simd,
      x,
      filter,
      info,
      [N, OH, OW, Co],
      (shared, out) =>
        simd.exports.conv_forward(...shared, bias ? simd.offset(bias) : 0, relu ? 1 : 0, out),
    );
  }
  return runWinogradKernel(
    backend,
    simd,
    x,
    info,
    [N, OH, OW, Co],
    (xp, Hp, Wp, out, scratch) =>
      simd.exports.winograd_conv3x3(
        xp,
        N,
        Hp,
        Wp,
        Ci,
        simd.offset(filter),
        Co,
        bias ? simd.offset(bias) : 0,
        relu ? 1 : 0,
        out,
        OH,
        OW,
        WINOGRAD_CHUNK,
        scratch,
      ),
  );
}

/**
 * The filter gradient [3, 3, Ci, Co] of a 3 × 3 convolution that
 * {@linkcode runForward} on Winograd would run, from its output gradient `dy`, by the
 * same F(4 × 4, 3 × 3) transforms (`winograd_filter_grad3x3`).
 */
function runWinogradFilterGrad(
  backend: tf.KernelBackend,
  simd: SimdKernels,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const { batchSize: N, inChannels: Ci, outChannels: Co, outHeight: OH, outWidth: OW } = info;
  return runWinogradKernel(
    backend,
    simd,
    x,
    info,
    [3, 3, Ci, Co],
    (xp, Hp, Wp, out, scratch) =>
      simd.exports.winograd_filter_grad3x3(
        xp,
        N,
        Hp,
        Wp,
        Ci,
        simd.offset(dy),
        Co,
        out,
        OH,
        OW,
        WINOGRAD_CHUNK,
        scratch,
      ),
  );
}

/**
 * Run one of the Winograd kernels: `call` gets the input padded to whole
 * 4 × 4 tiles of output plus the filter's border, [N, Hp = 4⌈OH/4⌉ + 2,
 * Wp = 4⌈OW/4⌉ + 2, Ci], the output of `outShape` and the kernels' scratch
 * (offsets in the backend's memory).
 */
function runWinogradKernel(
  backend: tf.KernelBackend,
  simd: SimdKernels,
  x: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  outShape: number[],
  call: (xp: number, Hp: number, Wp: number, out: number, scratch: number) => void,
): tf.TensorInfo {
  const { inChannels: Ci, outChannels: Co, outHeight: OH, outWidth: OW } = info;
  const heap = backend as WasmHeapBackend;
  const out = heap.makeOutput(outShape, "float32");
  runs.winograd++;
  withScratch(backend, (keep) => {
    const Hp = 4 * Math.ceil(OH / 4) + 2, Wp = 4 * Math.ceil(OW / 4) + 2;
    const xp = keep(paddedInput(backend, simd, x, info, Hp, Wp));
    const scratch = keep(
      heap.makeOutput(
        [36 * Ci * Co + 36 * (WINOGRAD_CHUNK * (Ci + Co) + 2 * WINOGRAD_SKEW)],
        "float32",
      ),
    );
    call(simd.offset(xp), Hp, Wp, simd.offset(out), simd.offset(scratch));
  });
  return out;
}

/**
 * Run one of the two direct kernels of `kernels/conv.c` on the padded input,
 * into a new output of `outShape`: `call` gets the arguments they share (the
 * padded input, its geometry, `operand` and the output channels) and the
 * output's offset.
 */
function runDirect(
  backend: tf.KernelBackend,
  simd: SimdKernels,
  x: tf.TensorInfo,
  operand: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  outShape: number[],
  call: (shared: DirectConvArgs, out: number) => void,
): tf.TensorInfo {
  const out = (backend as WasmHeapBackend).makeOutput(outShape, "float32");
  runs.direct++;
  withScratch(backend, (keep) => {
    const xp = keep(paddedInput(backend, simd, x, info));
    call([
      simd.offset(xp),
      info.batchSize,
      xp.shape[1],
      xp.shape[2],
      info.inChannels,
      info.filterHeight,
      info.filterWidth,
      simd.offset(operand),
      info.outChannels,
    ], simd.offset(out));
  });
  return out;
}

/**
 * The filter gradient of a 2-D convolution on the WASM backend: where
 * {@linkcode directConv} takes the convolution, on the Winograd kernel when it
 * takes it too, else on the direct kernel; else (stride 1) as one matrix
 * product of patches; else as follows.
 *
 * dW[kh,kw,ci,co] = Σ_{b,oh,ow} x[b, oh·s + kh − padTop, ow·s + kw − padLeft, ci] · dy[b,oh,ow,co]
 *
 * which is itself a convolution: the input transposed to [ci,H,W,b] convolved
 * with the output gradient transposed to [OH,OW,b,co] as the filter, with
 * stride 1 and dilation s. The result [ci,KH,KW,co] is transposed back.
 */
function conv2DBackpropFilterWasm(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const x = inputs.x as tf.TensorInfo, dy = inputs.dy as tf.TensorInfo;
  if (attrs.dataFormat && attrs.dataFormat !== "NHWC") {
    throw new BackendError(
      `Cannot compute Conv2DBackpropFilter on wasm: expected dataFormat NHWC, got ${attrs.dataFormat}`,
    );
  }
  const info = convInfo(x.shape, attrs.filterShape, attrs);
  const direct = directConv(backend, info, x);
  // dW[k, co] = Σ_m xp[patch k of pixel m] · dy[m, co], over a zero-padded copy of x.
  if (direct) {
    return winogradTakes(info) ? runWinogradFilterGrad(backend, direct, x, dy, info) : runDirect(
      backend,
      direct,
      x,
      dy,
      info,
      attrs.filterShape,
      (shared, out) => direct.exports.conv_filter_grad(...shared, out),
    );
  }
  const transpose = wasmKernel("Transpose"), conv2d = originalConv2D!;
  const slice = wasmKernel("Slice");
  const simd = info.strideHeight === 1 && info.strideWidth === 1 ? simdKernels(backend) : null;
  if (simd) return conv2DBackpropFilterIm2col(args, info, simd);
  return withScratch(backend, (keep) => {
    const xT = keep(
      transpose({ inputs: { x }, backend, attrs: { perm: [3, 1, 2, 0] } }),
    );
    const dyT = keep(
      transpose({ inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } }),
    );
    const { top, left } = info.padInfo;
    const sh = info.strideHeight, sw = info.strideWidth;
    // Padding at the far edges that makes the result exactly KH x KW; when the
    // forward pass never read the last rows/columns it would be negative, so
    // clamp at 0 and slice the extra rows/columns off below.
    const bottom = Math.max(
      0,
      info.filterHeight + (info.outHeight - 1) * sh - info.inHeight - top,
    );
    const right = Math.max(
      0,
      info.filterWidth + (info.outWidth - 1) * sw - info.inWidth - left,
    );
    let grad = keep(conv2d({
      inputs: { x: xT, filter: dyT },
      backend,
      attrs: {
        strides: [1, 1],
        pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
        dilations: [sh, sw],
        dataFormat: "NHWC",
        dimRoundingMode: undefined,
      } as unknown as tf.NamedAttrMap,
    }));
    const [ci, kh, kw, co] = grad.shape;
    if (kh !== info.filterHeight || kw !== info.filterWidth) {
      grad = keep(slice({
        inputs: { x: grad },
        backend,
        attrs: {
          begin: [0, 0, 0, 0],
          size: [ci, info.filterHeight, info.filterWidth, co],
        },
      }));
    }
    return transpose({
      inputs: { x: grad },
      backend,
      attrs: { perm: [1, 2, 0, 3] },
    });
  });
}

/**
 * The filter gradient of a stride-1 convolution as one matrix product:
 * dW[k·Ci + ci, co] = Σ_m P[k·Ci + ci, m] · dy[m, co], where P holds the
 * input patches, transposed (`im2col_t` of the SIMD module, from the input
 * in channel-major order) and m runs over batch × output rows × columns.
 * XNNPACK's matrix product then does the arithmetic; the convolution form
 * above packs the whole output gradient as a filter on every call.
 */
function conv2DBackpropFilterIm2col(
  args: KernelArgs,
  info: tf.backend_util.Conv2DInfo,
  simd: SimdKernels,
): tf.TensorInfo {
  const { backend } = args;
  const x = args.inputs.x as tf.TensorInfo, dy = args.inputs.dy as tf.TensorInfo;
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: Ci, outChannels: Co } = info;
  const { filterHeight: KH, filterWidth: KW, outHeight: OH, outWidth: OW } = info;
  const K = KH * KW * Ci, M = N * OH * OW;
  return withScratch(backend, (keep) => {
    const xT = keep(
      wasmKernel("Transpose")({
        inputs: { x },
        backend,
        attrs: { perm: [3, 0, 1, 2] },
      }),
    );
    const patches = keep((backend as WasmHeapBackend).makeOutput([K, M], "float32"));
    const at = simd.offset;
    simd.exports.im2col_t(
      at(xT),
      N,
      H,
      W,
      Ci,
      KH,
      KW,
      info.padInfo.top,
      info.padInfo.left,
      OH,
      OW,
      at(patches),
    );
    const product = wasmKernel("BatchMatMul")({
      inputs: {
        a: { ...patches, shape: [1, K, M] },
        b: { dataId: dy.dataId, shape: [1, M, Co], dtype: dy.dtype },
      },
      backend,
      attrs: { transposeA: false, transposeB: false },
    });
    return { dataId: product.dataId, shape: [KH, KW, Ci, Co], dtype: "float32" };
  });
}

let originalConv2DBackpropInput: KernelFn | undefined;

/**
 * The input gradient of a stride-1 2-D convolution on the WASM backend, as a
 * convolution of the output gradient with the filter rotated by 180° and its
 * channel axes swapped: on our kernels ({@linkcode conv2DWasm}: Winograd's
 * or the direct one) when the forward convolution's input channels (this
 * one's output channels) are a multiple of 8, else on XNNPACK's; either is far faster than the backend's reference kernel, which
 * other strides still go to.
 */
function conv2DBackpropInputWasm(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const dy = inputs.dy as tf.TensorInfo, filter = inputs.filter as tf.TensorInfo;
  const info = convInfo(attrs.inputShape, filter.shape, attrs);
  if (
    info.strideHeight !== 1 || info.strideWidth !== 1 || filter.dtype !== "float32" ||
    (attrs.dataFormat && attrs.dataFormat !== "NHWC")
  ) {
    return originalConv2DBackpropInput!(args);
  }
  return withScratch(backend, (keep) => {
    const rotated = keep(rotatedFilter(backend as WasmHeapBackend, filter));
    const kh = info.filterHeight, kw = info.filterWidth;
    const top = kh - 1 - info.padInfo.top, left = kw - 1 - info.padInfo.left;
    // Far-edge padding that brings the output back to the input's size.
    const bottom = info.inHeight + kh - 1 - info.outHeight - top;
    const right = info.inWidth + kw - 1 - info.outWidth - left;
    if (top < 0 || left < 0 || bottom < 0 || right < 0) return originalConv2DBackpropInput!(args);
    return conv2DWasm({
      inputs: { x: dy, filter: rotated },
      backend,
      attrs: {
        strides: [1, 1],
        pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
        dilations: [1, 1],
        dataFormat: "NHWC",
        dimRoundingMode: undefined,
      } as unknown as tf.NamedAttrMap,
    });
  });
}

/**
 * The filter [KH, KW, Ci, Co] turned by 180° with its channel axes swapped,
 * [KH, KW, Co, Ci]: the filter of the input gradient as a convolution. One
 * loop here (the backend's `Reverse` took 140 µs for the default model's
 * layer 2, as long as a tenth of the convolution).
 */
function rotatedFilter(heap: WasmHeapBackend, filter: tf.TensorInfo): tf.TensorInfo {
  const [KH, KW, Ci, Co] = filter.shape;
  const out = heap.makeOutput([KH, KW, Co, Ci], "float32");
  // Views taken after the allocation, which may grow the backend's memory.
  const w = heap.typedArrayFromHeap(filter) as Float32Array;
  const r = heap.typedArrayFromHeap(out) as Float32Array;
  for (let ky = 0; ky < KH; ky++) {
    for (let kx = 0; kx < KW; kx++) {
      const from = ((KH - 1 - ky) * KW + (KW - 1 - kx)) * Ci * Co, to = (ky * KW + kx) * Co * Ci;
      for (let ci = 0; ci < Ci; ci++) {
        for (let co = 0; co < Co; co++) r[to + co * Ci + ci] = w[from + ci * Co + co];
      }
    }
  }
  return out;
}

/** Register the convolution (plain and with bias and activation) and its two gradients. Internal. */
export function registerConvKernels(): void {
  originalConv2D = replaceKernel("Conv2D", conv2DWasm);
  originalFusedConv2D = replaceKernel("FusedConv2D", fusedConv2DWasm);
  replaceKernel("Conv2DBackpropFilter", conv2DBackpropFilterWasm);
  originalConv2DBackpropInput = replaceKernel("Conv2DBackpropInput", conv2DBackpropInputWasm);
}
