/**
 * The error for a backend that cannot be used. Internal module; exported
 * from `backend.ts`.
 *
 * @module
 */

/** Thrown when a backend that was asked for by name cannot be used. */
export class BackendError extends Error {
  /** Create a backend error with the given message. */
  constructor(message: string) {
    super(message);
    this.name = "BackendError";
  }
}
