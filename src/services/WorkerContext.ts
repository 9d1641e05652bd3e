import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/**
 * The Worker's per-request `ExecutionContext`, passed by `main.ts` as the
 * handler's second argument. Only `waitUntil` is needed: work that must
 * finish after the response (recording usage statistics).
 */
export class WorkerContext extends Context.Service<WorkerContext, { waitUntil(promise: Promise<unknown>): void }>()(
  "ai-image-gateway/services/WorkerContext"
) {}

/** Runs `work` after the response: inside `ctx.waitUntil` in the Worker, as a plain promise elsewhere. */
export const inBackground = Effect.fnUntraced(function* (work: Effect.Effect<void>) {
  const context = yield* Effect.context<never>()
  const promise = Effect.runPromiseWith(context)(work)
  const worker = yield* Effect.serviceOption(WorkerContext)
  // Outside the Workers runtime (Node unit tests) there is no ctx; the promise simply runs.
  if (Option.isSome(worker)) worker.value.waitUntil(promise)
})
