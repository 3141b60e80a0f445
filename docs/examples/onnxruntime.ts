// Run an ONNX file from `deno task export --onnx` in onnxruntime and classify
// one PNG. Usage: deno run --allow-read --allow-ffi onnxruntime.ts MODEL.onnx DIGIT.png
import * as ort from "onnxruntime-node"; // in a browser: onnxruntime-web, same API
import { decode } from "fast-png";

const [onnxFile, imageFile] = Deno.args;
const session = await ort.InferenceSession.create(await Deno.readFile(onnxFile));

// Input "images": float32 [n, 28, 28, 1] (NHWC, as in TensorFlow.js), pixels in [0, 1].
const png = decode(await Deno.readFile(imageFile)); // a 28×28 8-bit grey PNG
const pixels = Float32Array.from(png.data, (v) => v / 255);
const { probabilities } = await session.run({
  images: new ort.Tensor("float32", pixels, [1, 28, 28, 1]),
});
const p = probabilities.data as Float32Array; // output "probabilities": [n, 10]
const digit = p.indexOf(Math.max(...p));
console.log(`digit ${digit}, probabilities ${Array.from(p, (x) => x.toFixed(3))}`);
