/**
 * The model card: what a saved model records about how it was made (after
 * Mitchell et al., "Model Cards for Model Reporting", FAT* 2019, cut to what
 * a training run knows). It lives in `model.json` under
 * `userDefinedMetadata.tinymnist`, which plain TensorFlow.js loads and ignores.
 *
 * @module
 */
import config from "../deno.json" with { type: "json" };

/** The version of tinymnist (from deno.json), recorded in every saved model. */
export const VERSION: string = config.version;

/** What a saved model records about itself; see {@linkcode ModelCardInput} for what callers give. */
export interface ModelCard {
  /** The tinymnist version that saved it. */
  version: string;
  /** The architecture (a preset such as `"small"` or `"tiny"`, or `"custom"`). */
  preset: string;
  /** Trainable parameters. */
  params: number;
  /** When it was saved, ISO 8601 (UTC). */
  savedAt: string;
  /** How the weights are stored: `"float32"`, or `"uint8"` (quantized). */
  weights: "float32" | "uint8";
  /** The dataset it was trained on (`"mnist"`, `"fashion-mnist"`). */
  dataset?: string;
  /** The seed of its weights, shuffling and augmentation. */
  seed?: number;
  /** The training options that differ from nothing: epochs, batch size, learning rate, …. */
  training?: Record<string, string | number | boolean | null>;
  /** The backend it was trained on. */
  backend?: string;
  /** Training wall time in seconds (data loading excluded). */
  trainSeconds?: number;
  /** Accuracy on the test set, 0..1, measured before saving. */
  testAccuracy?: number;
  /** Where the teacher came from, for a distilled model. */
  teacher?: string;
}

/** What a caller of `saveModel` tells about a model; the rest is filled in. */
export type ModelCardInput = Omit<
  Partial<ModelCard>,
  "version" | "preset" | "params" | "savedAt" | "weights"
>;

const OPTIONAL_FIELDS: Record<string, string> = {
  dataset: "string",
  seed: "number",
  training: "object",
  backend: "string",
  trainSeconds: "number",
  testAccuracy: "number",
  teacher: "string",
};

/**
 * The card in a parsed `model.json`'s `userDefinedMetadata.tinymnist`, or
 * `undefined` for a model saved elsewhere. Fields of the wrong type are
 * dropped rather than trusted. Internal.
 */
export function readModelCard(metadata: unknown, params: number): ModelCard | undefined {
  if (typeof metadata !== "object" || metadata === null) return undefined;
  const raw = metadata as Record<string, unknown>;
  const card: ModelCard = {
    version: typeof raw.version === "string" ? raw.version : "unknown",
    preset: typeof raw.preset === "string" ? raw.preset : "custom",
    params,
    savedAt: typeof raw.savedAt === "string" ? raw.savedAt : "unknown",
    weights: raw.weights === "uint8" ? "uint8" : "float32",
  };
  for (const [key, type] of Object.entries(OPTIONAL_FIELDS)) {
    const value = raw[key];
    if (typeof value === type && value !== null) {
      (card as unknown as Record<string, unknown>)[key] = value;
    }
  }
  return card;
}

/**
 * The card as lines of `key: value`, as `deno task predict --info` prints it.
 *
 * @param card The card.
 * @returns One line per field present.
 *
 * @example
 * ```ts
 * import { formatModelCard } from "@tinymnist/tinymnist";
 * import assert from "node:assert/strict";
 *
 * const lines = formatModelCard({
 *   version: "0.1.0", preset: "tiny", params: 17018, savedAt: "2026-11-29T12:00:00.000Z",
 *   weights: "float32", testAccuracy: 0.9924,
 * });
 * assert.ok(lines.includes("test accuracy: 99.24%"));
 * ```
 */
export function formatModelCard(card: ModelCard): string[] {
  const lines = [
    `tinymnist: ${card.version}`,
    `preset: ${card.preset} (${
      card.params.toLocaleString("en-US")
    } parameters, ${card.weights} weights)`,
    `saved: ${card.savedAt}`,
  ];
  if (card.dataset !== undefined) lines.push(`dataset: ${card.dataset}`);
  if (card.seed !== undefined) lines.push(`seed: ${card.seed}`);
  if (card.backend !== undefined) lines.push(`backend: ${card.backend}`);
  if (card.trainSeconds !== undefined) lines.push(`training: ${card.trainSeconds.toFixed(1)} s`);
  if (card.training !== undefined) {
    lines.push(`options: ${Object.entries(card.training).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  }
  if (card.teacher !== undefined) lines.push(`teacher: ${card.teacher}`);
  if (card.testAccuracy !== undefined) {
    lines.push(`test accuracy: ${(100 * card.testAccuracy).toFixed(2)}%`);
  }
  return lines;
}
