import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import type { Admission, KeyLimitsRequest, KeyTraffic } from "../domain/ApiKey.ts"
import type { UpstreamHealth, UsageEvent, UsageSummary, UsageWindow } from "../domain/Usage.ts"

/**
 * The statistics store as the services see it. The Durable Object in `src/durable/` implements it;
 * the services call it through its RPC stub, so they never import the object (no floor imports upward).
 */
export interface UsageStore {
  record(events: ReadonlyArray<UsageEvent>): void
  summary(window: UsageWindow): UsageSummary
  recent(limit: number): Array<UsageEvent>
  upstreams(): Array<UpstreamHealth>
  keys(window: UsageWindow): Array<KeyTraffic>
  prune(): { events: number; rollups: number }
}

/** One named key's limits (`KeyLimitsObject`, one object per key name). */
export interface KeyLimitsStore {
  admit(request: KeyLimitsRequest): Admission
  refund(day: number, images: number): void
  today(): number
}

export interface KeyLimitsNamespace {
  getByName(name: string): Remote<KeyLimitsStore>
}

/** A Durable Object stub: every method of the object, answered as a promise. */
export type Remote<T> = {
  readonly [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<R> : never
}

export interface UsageStoreNamespace {
  getByName(name: string): Remote<UsageStore>
}

/** The part of the Workers AI binding the gateway uses (`env.AI.run`). */
export interface AiBinding {
  run(model: string, inputs: Record<string, unknown>): Promise<unknown>
}

/** The Worker's bindings that are objects, not configuration strings. Each may be absent: its feature is then off. */
export interface Bindings {
  /** R2: hosted image URLs and the generation cache. */
  readonly images?: R2Bucket | undefined
  /** The statistics Durable Object. */
  readonly usage?: UsageStoreNamespace | undefined
  /** Workers AI: the `workers-ai` upstream. */
  readonly ai?: AiBinding | undefined
  /** The limits Durable Objects of named keys (`rpm`, `imagesPerDay`). */
  readonly limits?: KeyLimitsNamespace | undefined
}

/**
 * The bindings, picked out of the Worker's `env` in this one place, by the names `wrangler.toml`
 * gives them (`IMAGES`, `USAGE_STATS`, `AI`, `KEY_LIMITS`). Services take them from here, never from `env`.
 */
export class WorkerBindings extends Context.Service<WorkerBindings, Bindings>()("ai-image-gateway/services/WorkerBindings") {
  static readonly fromEnv = (env: Record<string, unknown>): Bindings => {
    const { IMAGES, USAGE_STATS, AI, KEY_LIMITS } = env
    return {
      images: Predicate.isObjectKeyword(IMAGES) ? (IMAGES as R2Bucket) : undefined,
      usage: Predicate.isObjectKeyword(USAGE_STATS) ? (USAGE_STATS as UsageStoreNamespace) : undefined,
      limits: Predicate.isObjectKeyword(KEY_LIMITS) ? (KEY_LIMITS as KeyLimitsNamespace) : undefined,
      ai: Predicate.isObjectKeyword(AI) && "run" in AI && typeof AI.run === "function" ? (AI as AiBinding) : undefined
    }
  }

  static readonly layer = (bindings: Bindings = {}) => Layer.succeed(WorkerBindings, bindings)
}
