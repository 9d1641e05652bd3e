import type * as Effect from "effect/Effect"
import type * as HttpClient from "effect/http/HttpClient"
import type * as Redacted from "effect/Redacted"
import type { UpstreamError } from "../../domain/Errors.ts"
import type { GeneratedImage } from "../../domain/ImageFormat.ts"
import type { ModelEntry } from "../../domain/Model.ts"
import type { UpstreamJob } from "../../domain/Upstream.ts"
import type { WorkerBindings } from "../WorkerBindings.ts"

/**
 * The upstream port. Every kind of upstream (one file each in this folder) turns a job (prompt,
 * size, `n`, the optional fields) into images or a typed failure, after its own retries.
 * Nothing outside `src/services/upstreams/` knows which kinds exist.
 */

/** One upstream instance's settings: a built-in one, or an entry of `UPSTREAMS` with its secret read. */
export interface UpstreamInstance {
  readonly id: string
  readonly kind: string
  readonly baseUrl: URL | undefined
  /** The key, read from the secret the entry names. */
  readonly apiKey: Redacted.Redacted<string> | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly timeoutMs: number
  readonly maxAttempts: number
  readonly backoffMs: number
  readonly backoffMaxMs: number
  /** Largest image fetched from an upstream `url`. */
  readonly maxBytes: number
}

/** One catalogue model on one instance: `job.n` is at most the model's `maxN`; at least one image on success. */
export type ModelCall = (job: UpstreamJob) => Effect.Effect<ReadonlyArray<GeneratedImage>, UpstreamError>

/** An upstream instance, ready for calls. */
export interface ImageUpstream {
  readonly instance: UpstreamInstance
  /**
   * Binds a catalogue entry to this instance, once, when the catalogue is built: the kind checks
   * the entry's `options` and prepares what every call shares. A string is the configuration problem.
   */
  bind(model: ModelEntry): ModelCall | string
}

/** What the kind needs from its instance's settings, checked before it is built. */
export interface UpstreamKind {
  readonly kind: string
  /** Whether `baseUrl` is required (HTTP upstreams) or meaningless (bindings, the offline model). */
  readonly baseUrl: "required" | "optional" | "none"
  make(instance: UpstreamInstance): Effect.Effect<ImageUpstream | string, never, HttpClient.HttpClient | WorkerBindings>
}
