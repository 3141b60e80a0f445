/**
 * What a way of taking a training step is: the interface that the two
 * step modules (`worker_step.ts`, `thread_step.ts`) implement and the
 * training loop (`train.ts`) drives.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import type { AugmentOptions } from "./augment.ts";
import type { DifficultyTracker } from "./difficulty_tracker.ts";
import type { LabelledImages } from "./images.ts";
import type { Distillation } from "./loss.ts";
import type { Rng } from "./rng.ts";

/** A teacher's model and its distillation settings. Internal. */
export interface Teacher {
  /** The teacher, in inference mode. */
  readonly net: tf.LayersModel;
  /** Temperature and weight of its soft targets. */
  readonly settings: Distillation;
}

/** What every step needs: the model, the data and the recipe's loss settings. Internal. */
export interface StepContext {
  /** The model trained in place. */
  readonly net: tf.LayersModel;
  /** The training images and labels. */
  readonly data: LabelledImages;
  /** Label smoothing, in [0, 1). */
  readonly smoothing: number;
  /** The teacher to distil, or `null`. */
  readonly teacher: Teacher | null;
  /** The run's random numbers (augmentation seeds, and augmentation in this thread). */
  readonly rng: Rng;
  /** Where per-example losses go, or `null` when no difficult examples are drawn. */
  readonly tracker: DifficultyTracker | null;
  /** Images in a batch, at most. */
  readonly batchSize: number;
  /**
   * Stop the run: `what` (e.g. "loss", "weight") stopped being finite. Throws
   * a `DivergenceError` naming the step (0-based) and learning rate `at`, or
   * the current ones.
   */
  diverged(what: string, at?: { step: number; learningRate: number }): never;
}

/**
 * A batch's mean loss: a number, or something that reads it back later (a
 * scalar tensor, or a step still running) and is disposed after. Internal.
 */
export type LossReading = number | {
  data(): Promise<ArrayLike<number>>;
  dispose(): void;
};

/** One way of taking gradient steps (Adam, one update per batch). Internal. */
export interface TrainingStep {
  /**
   * Take one step on a batch.
   * @param ids The batch's example indices.
   * @param learningRate The step's learning rate.
   * @param augment The batch's augmentation, or `null`.
   * @returns The batch's mean loss: a number, or a scalar the caller reads back and disposes.
   */
  take(
    ids: Int32Array,
    learningRate: number,
    augment: AugmentOptions | null,
  ): Promise<LossReading>;
  /**
   * Wait until every step taken so far is done and its per-example losses
   * are with the tracker (before the tracker picks difficult examples).
   */
  drain(): Promise<void>;
  /**
   * Whether every weight is still finite. Called when the loss is read back;
   * a step that checks its weights itself at every step resolves `true`.
   */
  weightsFinite(): Promise<boolean>;
  /** Write the trained weights into the model and free what the steps held. */
  finish(): void;
}
