import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { KeyTraffic } from "../domain/ApiKey.ts"
import { UsageStoreUnavailable } from "../domain/Errors.ts"
import type { UpstreamHealth, UsageEvent, UsageSummary, UsageWindow } from "../domain/Usage.ts"
import { type UsageStoreNamespace, WorkerBindings } from "./WorkerBindings.ts"
import { inBackground } from "./WorkerContext.ts"

/** A streamed answer can run for minutes; past this its event is dropped rather than kept waiting. */
const SETTLE_LIMIT = Duration.minutes(10)
const CALL_LIMIT = Duration.seconds(10)
/** How long events gather in memory before one call writes them all (and between the calls of one flush). */
const FLUSH_DELAY = Duration.seconds(1)
/**
 * How long one request's flush keeps sending the batches that arrive while it sends, well inside the 30 s
 * that `waitUntil` work is given. A flush that stopped after a fixed number of rounds under load left the
 * last events of a busy spell in the buffer until the next request, and for good if none came.
 */
const FLUSH_WINDOW_MS = 20_000
const FLUSH_STALE_MS = 60_000
/** Beyond this many unsent events (a store that is down for a while, batches kept for another try), the oldest are dropped. */
const MAX_BUFFERED = 5_000

/**
 * The gateway's side of the statistics store (`UsageStatsObject`). Writes
 * happen after the response, through `ctx.waitUntil`, batched per isolate, and
 * their failures are logged, never returned: a store that is down costs
 * statistics, not requests.
 */
export class UsageStats extends Context.Service<
  UsageStats,
  {
    readonly enabled: boolean
    /**
     * Records `event(now)` once `settled` (a streamed body's end) resolves, `now` read from the Clock then;
     * written after the response, in batches.
     */
    record(settled: Promise<unknown> | undefined, event: (now: number) => UsageEvent): Effect.Effect<void>
    summary(window: UsageWindow): Effect.Effect<UsageSummary, UsageStoreUnavailable>
    recent(limit: number): Effect.Effect<ReadonlyArray<UsageEvent>, UsageStoreUnavailable>
    readonly upstreams: Effect.Effect<ReadonlyArray<UpstreamHealth>, UsageStoreUnavailable>
    /** Each key's traffic over the window, by name. */
    keys(window: UsageWindow): Effect.Effect<ReadonlyArray<KeyTraffic>, UsageStoreUnavailable>
    readonly prune: Effect.Effect<{ readonly events: number; readonly rollups: number }, UsageStoreUnavailable>
  }
>()("ai-image-gateway/services/UsageStats") {
  static readonly layer = Layer.effect(
    UsageStats,
    WorkerBindings.useSync(({ usage }) => (usage === undefined ? disabled : make(usage)))
  )
}

const notBound = new UsageStoreUnavailable({
  message: "Usage statistics are off: this deployment has no USAGE_STATS Durable Object binding (see wrangler.toml)."
})

const disabled = UsageStats.of({
  enabled: false,
  record: () => Effect.void,
  summary: () => Effect.fail(notBound),
  recent: () => Effect.fail(notBound),
  upstreams: Effect.fail(notBound),
  keys: () => Effect.fail(notBound),
  prune: Effect.fail(notBound)
})

const make = (namespace: UsageStoreNamespace) => {
  // One object holds the whole gateway's statistics.
  const store = () => namespace.getByName("global")

  const call = <A>(name: string, run: () => Promise<A>): Effect.Effect<A, UsageStoreUnavailable> =>
    Effect.tryPromise({
      try: run,
      catch: (cause) =>
        new UsageStoreUnavailable({
          message: `The usage statistics store did not answer (${name}): ${cause instanceof Error ? cause.message : String(cause)}`
        })
    }).pipe(
      Effect.timeoutOrElse({
        duration: CALL_LIMIT,
        orElse: () =>
          Effect.fail(new UsageStoreUnavailable({ message: `The usage statistics store did not answer (${name}) within 10 s.` }))
      })
    )

  // Write-behind batching, per isolate. A call to the Durable Object costs about 2 ms of CPU whatever it
  // carries, so events wait up to FLUSH_DELAY in memory and go in one call. The request that finds no
  // flush pending runs the next one inside its own waitUntil; the others only add their event. An
  // isolate that is evicted in that second loses at most that second's events: statistics, not requests.
  let buffer: Array<UsageEvent> = []
  let flushStarted: number | undefined
  let dropped = 0

  /** Puts a batch the store did not take back in front of the newer events, within the buffer's bound. */
  const requeue = (batch: ReadonlyArray<UsageEvent>) => {
    const merged = [...batch, ...buffer]
    const over = Math.max(0, merged.length - MAX_BUFFERED)
    dropped += over
    buffer = merged.slice(over)
  }

  /** Whether the store took the batch; a batch it did not take waits in the buffer for the next flush. */
  const send = (batch: ReadonlyArray<UsageEvent>) =>
    call("record", () => store().record(batch)).pipe(
      Effect.as(true),
      Effect.catch((error) =>
        Effect.logWarning("usage events not recorded yet; kept for the next flush", {
          events: batch.length,
          reason: error.message
        }).pipe(Effect.andThen(Effect.sync(() => requeue(batch))), Effect.as(false))
      )
    )

  const flush = Effect.gen(function* () {
    // Events that arrive while a batch is in flight go in the next round, a second later (one call a second
    // at most), until the buffer is empty or the window has passed (then the next request takes over). A
    // store that failed is not called again in the same flush: the next request's flush tries it.
    const until = (yield* Clock.currentTimeMillis) + FLUSH_WINDOW_MS
    do {
      yield* Effect.sleep(FLUSH_DELAY)
      const batch = buffer
      buffer = []
      if (batch.length > 0 && !(yield* send(batch))) break
    } while (buffer.length > 0 && (yield* Clock.currentTimeMillis) < until)
    if (dropped > 0) {
      yield* Effect.logWarning("usage events dropped: the buffer was full", { events: dropped })
      dropped = 0
    }
  }).pipe(Effect.ensuring(Effect.sync(() => (flushStarted = undefined))))

  /** Adds an event; returns the flush this caller must run when no live flush is pending. */
  const enqueue = (event: UsageEvent, now: number): Effect.Effect<void> | undefined => {
    if (buffer.length >= MAX_BUFFERED) {
      buffer.shift()
      dropped++
    }
    buffer.push(event)
    // A flush whose request context was torn down never clears its mark; after FLUSH_STALE_MS another one starts.
    if (flushStarted !== undefined && now - flushStarted < FLUSH_STALE_MS) return undefined
    flushStarted = now
    return flush
  }

  /** A streamed answer's event: recorded when its body has ended, or dropped after SETTLE_LIMIT. */
  const afterSettled = Effect.fnUntraced(function* (settled: Promise<unknown>, event: (now: number) => UsageEvent) {
    const ended = yield* Effect.promise(() => settled).pipe(Effect.timeoutOption(SETTLE_LIMIT))
    if (Option.isNone(ended)) return yield* Effect.logWarning("usage event dropped: the stream did not end in time")
    const now = yield* Clock.currentTimeMillis
    const flushNow = enqueue(event(now), now)
    if (flushNow !== undefined) yield* flushNow
  })

  // Most calls only add their event to the buffer: that path stays one synchronous step.
  const record = (settled: Promise<unknown> | undefined, event: (now: number) => UsageEvent) =>
    Clock.clockWith((clock) => {
      if (settled !== undefined) return inBackground(afterSettled(settled, event))
      const now = clock.currentTimeMillisUnsafe()
      const flushNow = enqueue(event(now), now)
      return flushNow === undefined ? Effect.void : inBackground(flushNow)
    })

  return UsageStats.of({
    enabled: true,
    record,
    summary: (window) => call("summary", () => store().summary(window)),
    recent: (limit) => call("recent", () => store().recent(limit)),
    upstreams: call("upstreams", () => store().upstreams()),
    keys: (window) => call("keys", () => store().keys(window)),
    prune: call("prune", () => store().prune())
  })
}
