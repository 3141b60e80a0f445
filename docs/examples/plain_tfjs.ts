// Load a tinymnist model with plain TensorFlow.js (no tinymnist import) and
// classify one PNG. Usage: deno run --allow-read plain_tfjs.ts MODEL_DIR DIGIT.png
import * as tf from "@tensorflow/tfjs";
import { decode } from "fast-png";

const [modelDir, imageFile] = Deno.args;
const json = JSON.parse(await Deno.readTextFile(`${modelDir}/model.json`));
const model = await tf.loadLayersModel(tf.io.fromMemory({
  modelTopology: json.modelTopology,
  weightSpecs: json.weightsManifest[0].weights,
  weightData: (await Deno.readFile(`${modelDir}/weights.bin`)).buffer,
}));
// In a browser: tf.loadLayersModel("/models/mnist_model_…/model.json").

// The model takes [n, 28, 28, 1] pixels in [0, 1], light digit on black (as MNIST).
const png = decode(await Deno.readFile(imageFile)); // a 28×28 8-bit grey PNG
const pixels = Float32Array.from(png.data, (v) => v / 255);
const probabilities = model.predict(tf.tensor4d(pixels, [1, 28, 28, 1])) as tf.Tensor;
const digit = (await probabilities.argMax(1).data())[0];
console.log(
  `digit ${digit}, probabilities ${Array.from(await probabilities.data(), (p) => p.toFixed(3))}`,
);
