import { Context, Duration, Effect, Layer, Option } from "effect"
import { UsageStoreUnavailable } from "../domain/Errors.ts"
import type { UpstreamHealth, UsageEvent, UsageSummary, UsageWindow } from "../domain/Usage.ts"
import type { UsageStatsObject } from "../durable/UsageStatsObject.ts"
import { WorkerContext } from "./WorkerContext.ts"

/** A streamed answer can run for minutes; past this its event is dropped rather than kept waiting. */
const SETTLE_LIMIT = Duration.minutes(10)
const CALL_LIMIT = Duration.seconds(10)

/**
 * The gateway's side of the statistics store (`UsageStatsObject`). Writes
 * happen after the response, through `ctx.waitUntil`, and their failures are
 * logged, never returned: a store that is down costs statistics, not requests.
 */
export class UsageStats extends Context.Service<
  UsageStats,
  {
    readonly enabled: boolean
    /** Records `event()` once `settled` (a streamed body's end) resolves, after the response. */
    record(settled: Promise<unknown> | undefined, event: () => UsageEvent): Effect.Effect<void>
    summary(window: UsageWindow): Effect.Effect<UsageSummary, UsageStoreUnavailable>
    recent(limit: number): Effect.Effect<ReadonlyArray<UsageEvent>, UsageStoreUnavailable>
    readonly upstreams: Effect.Effect<ReadonlyArray<UpstreamHealth>, UsageStoreUnavailable>
    readonly prune: Effect.Effect<{ readonly events: number; readonly rollups: number }, UsageStoreUnavailable>
  }
>()("ai-image-gateway/services/UsageStats") {
  static readonly layer = (namespace: DurableObjectNamespace<UsageStatsObject> | undefined) =>
    Layer.succeed(UsageStats, namespace === undefined ? disabled : make(namespace))
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
  prune: Effect.fail(notBound)
})

const make = (namespace: DurableObjectNamespace<UsageStatsObject>) => {
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

  const record = (settled: Promise<unknown> | undefined, event: () => UsageEvent) =>
    Effect.gen(function* () {
      const work = Effect.gen(function* () {
        if (settled !== undefined) {
          const ended = yield* Effect.promise(() => settled).pipe(Effect.timeoutOption(SETTLE_LIMIT))
          if (Option.isNone(ended)) return yield* Effect.logWarning("usage event dropped: the stream did not end in time")
        }
        const built = event()
        yield* call("record", () => store().record(built) as Promise<void>)
      }).pipe(Effect.catch((error) => Effect.logWarning("usage event not recorded", { reason: error.message })))
      const context = yield* Effect.context<never>()
      const promise = Effect.runPromiseWith(context)(work)
      const worker = yield* Effect.serviceOption(WorkerContext)
      // Outside the Workers runtime (Node unit tests) there is no ctx; the promise simply runs.
      if (Option.isSome(worker)) worker.value.waitUntil(promise)
    })

  return UsageStats.of({
    enabled: true,
    record,
    summary: (window) => call("summary", () => store().summary(window) as Promise<UsageSummary>),
    recent: (limit) => call("recent", () => store().recent(limit) as Promise<Array<UsageEvent>>),
    upstreams: call("upstreams", () => store().upstreams() as Promise<Array<UpstreamHealth>>),
    prune: call("prune", () => store().prune() as Promise<{ events: number; rollups: number }>)
  })
}
