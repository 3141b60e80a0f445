/**
 * Convolution gradients on the WASM backend: `Conv2DBackpropFilter` (which
 * the backend lacks) and a stride-1 `Conv2DBackpropInput` on XNNPACK's
 * convolution. Internal.
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
import { type SimdKernels, simdKernels } from "./simd.ts";

type Shape4 = [number, number, number, number];

/** Geometry of the forward convolution whose gradient a kernel computes (dilation 1). */
function convInfo(
  inShape: readonly number[],
  filterShape: readonly number[],
  attrs: Pick<tf.Conv2DBackpropFilterAttrs, "strides" | "pad" | "dimRoundingMode">,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inShape as Shape4,
    filterShape as Shape4,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
}

/**
 * The filter gradient of a 2-D convolution on the WASM backend.
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
  const transpose = wasmKernel("Transpose"), conv2d = wasmKernel("Conv2D");
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
 * channel axes swapped (XNNPACK runs it far faster than the reference kernel).
 * Other strides go to the backend's own kernel.
 */
function conv2DBackpropInputWasm(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const dy = inputs.dy as tf.TensorInfo, filter = inputs.filter as tf.TensorInfo;
  const info = convInfo(attrs.inputShape, filter.shape, attrs);
  if (
    info.strideHeight !== 1 || info.strideWidth !== 1 ||
    (attrs.dataFormat && attrs.dataFormat !== "NHWC")
  ) {
    return originalConv2DBackpropInput!(args);
  }
  return withScratch(backend, (keep) => {
    const flipped = keep(
      wasmKernel("Reverse")({ inputs: { x: filter }, backend, attrs: { dims: [0, 1] } }),
    );
    const rotated = keep(
      wasmKernel("Transpose")({ inputs: { x: flipped }, backend, attrs: { perm: [0, 1, 3, 2] } }),
    );
    const kh = info.filterHeight, kw = info.filterWidth;
    const top = kh - 1 - info.padInfo.top, left = kw - 1 - info.padInfo.left;
    // Far-edge padding that brings the output back to the input's size.
    const bottom = info.inHeight + kh - 1 - info.outHeight - top;
    const right = info.inWidth + kw - 1 - info.outWidth - left;
    if (top < 0 || left < 0 || bottom < 0 || right < 0) return originalConv2DBackpropInput!(args);
    return wasmKernel("Conv2D")({
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

/** Register the two convolution-gradient kernels. Internal. */
export function registerConvKernels(): void {
  replaceKernel("Conv2DBackpropFilter", conv2DBackpropFilterWasm);
  originalConv2DBackpropInput = replaceKernel("Conv2DBackpropInput", conv2DBackpropInputWasm);
}
