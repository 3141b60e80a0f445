/**
 * Child process of the crash-safe save test (`io_test.ts`): writes model
 * folders into a directory, as `saveModel` does, over and over until it is
 * killed. Prints `ready` once its files are loaded. It imports the folder
 * writer alone (no TensorFlow.js), so that it starts in tens of milliseconds.
 *
 * Usage: deno run --allow-read --allow-write=DIR tests/_save_child.ts SOURCE DIR INDEX
 * where SOURCE is a saved model folder to copy and INDEX numbers this child
 * (so that its folder names do not collide with another child's).
 *
 * @module
 */
import { writeNewFolder } from "../lib/new_folder.ts";

const [source, dir, index] = Deno.args;
const files = {
  "model.json": await Deno.readFile(`${source}/model.json`),
  "weights.bin": await Deno.readFile(`${source}/weights.bin`),
};
await Deno.stdout.write(new TextEncoder().encode("ready\n"));
for (let i = 0;; i++) {
  await writeNewFolder(dir, `mnist_model_20260101_${index.padStart(4, "0")}${i}`, files);
}
