/**
 * Entry point of one worker of `measureParallelTrainingStep`: it starts its
 * own wasm backend when asked to (`init`, answered `ready`), then times its
 * share of a training step (`time`, answered `timed` with milliseconds).
 * Internal.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { selectBackend } from "./backend.ts";
import { measureTrainingStep, type ProbeOptions } from "./backend_probe.ts";

type Request = { type: "init" } | { type: "time"; options: ProbeOptions };

self.onmessage = async (event: MessageEvent<Request>) => {
  try {
    if (event.data.type === "init") {
      await selectBackend("wasm");
      self.postMessage({ type: "ready" });
    } else {
      self.postMessage({ type: "timed", ms: await measureTrainingStep(event.data.options) });
    }
  } catch (error) {
    self.postMessage({ type: "error", message: (error as Error).message });
  }
};
