import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { invalidConfiguration, isRequestRejection, UpstreamCircuitOpen, UpstreamError } from "../domain/Errors.ts"
import { takesEdit } from "../domain/ImageEdit.ts"
import type { GeneratedImage } from "../domain/ImageFormat.ts"
import type { ModelEntry } from "../domain/Model.ts"
import { splitImages, type UpstreamJob } from "../domain/Upstream.ts"
import { CircuitBreaker } from "./CircuitBreaker.ts"
import { ModelRegistry } from "./ModelRegistry.ts"
import { UpstreamRegistry } from "./UpstreamRegistry.ts"
import type { ModelCall } from "./upstreams/ImageUpstream.ts"

/**
 * Routes one upstream call of a model through its fallback chain, past open circuits. A model's
 * upstream is called unless its circuit is open; when the call fails after its retries (for any
 * reason but a rejection of the request itself) the next model of the chain is tried. The client
 * sees the first real failure, or, when every circuit was open, 503 with the shortest wait.
 */
export class UpstreamRouter extends Context.Service<
  UpstreamRouter,
  {
    /** How many images one call may ask this model for (its `maxN`). A fallback that takes fewer gets the call split. */
    imagesPerCall(model: ModelEntry): number
    generate(model: ModelEntry, job: UpstreamJob): Effect.Effect<ReadonlyArray<GeneratedImage>, UpstreamError>
  }
>()("ai-image-gateway/services/UpstreamRouter") {
  static readonly layerNoDeps = Layer.effect(
    UpstreamRouter,
    Effect.gen(function* () {
      const registry = yield* ModelRegistry
      const upstreams = yield* UpstreamRegistry
      const breaker = yield* CircuitBreaker

      // Every model is bound to its upstream once, when the isolate starts: option errors surface now, not on a request.
      const calls = new Map<string, ModelCall>()
      for (const model of registry.catalogue.models) {
        const upstream = upstreams.get(model.upstream)
        const call = upstream?.bind(model) ?? "its upstream is missing"
        if (typeof call === "string") {
          return yield* invalidConfiguration(`model '${model.id}' on upstream '${model.upstream}': ${call}`)
        }
        calls.set(model.id, call)
      }
      const perCall = (model: ModelEntry) => Math.max(1, model.maxN ?? 1)

      /** One model's call, its circuit told the outcome. */
      const attempt = (model: ModelEntry, job: UpstreamJob, trial: boolean) =>
        calls.get(model.id)!(job).pipe(
          Effect.onExit((exit) => {
            if (Exit.isSuccess(exit)) return breaker.succeeded(model.upstream)
            const error = Exit.findErrorOption(exit)
            if (error._tag === "Some") {
              return isRequestRejection(error.value.reason) ? breaker.succeeded(model.upstream) : breaker.failed(model.upstream)
            }
            return trial ? breaker.abandoned(model.upstream) : Effect.void
          })
        )

      /**
       * A call for more images than this model takes a call (a fallback with a smaller `maxN`): split,
       * run together, and answered with the images that came; it fails only when every part failed.
       */
      const split = (model: ModelEntry, job: UpstreamJob, trial: boolean) => {
        if (job.n <= perCall(model)) return attempt(model, job, trial)
        return Effect.forEach(
          splitImages(job.n, perCall(model)),
          (part, i) =>
            Effect.result(
              attempt(model, { ...job, n: part.n, firstImage: (job.firstImage ?? 0) + part.first }, trial && i === 0)
            ),
          {
            concurrency: "unbounded"
          }
        ).pipe(
          Effect.flatMap((results) => {
            const images = results.flatMap((result) => (result._tag === "Success" ? result.success : []))
            const failures = results.flatMap((result) => (result._tag === "Failure" ? [result.failure] : []))
            const attempts = failures.reduce((sum, failure) => sum + failure.attempts, 0)
            const first = failures[0]
            if (images.length > 0 || first === undefined) return Effect.succeed(images)
            return Effect.fail(withTotals(first, attempts, 0))
          })
        )
      }

      const generate = Effect.fnUntraced(function* (model: ModelEntry, job: UpstreamJob) {
        const chain = registry.chain(model)
        let first: UpstreamError | undefined
        let attempts = 0
        let waitMs = Number.POSITIVE_INFINITY
        for (const [failovers, entry] of chain.entries()) {
          // An edit goes only to the models of the chain that take it (the requested one was checked before).
          if (job.inputs !== undefined && !takesEdit(entry, job.inputs)) continue
          const admission = yield* breaker.admit(entry.upstream)
          if (admission._tag === "Rejected") {
            waitMs = Math.min(waitMs, admission.retryAfterMs)
            continue
          }
          const result = yield* Effect.result(split(entry, job, admission.trial))
          if (result._tag === "Success") {
            if (failovers > 0)
              yield* Effect.logWarning("served by a fallback", { model: model.id, servedBy: entry.id, failovers })
            return result.success.map((image) => ({ ...image, attempts: image.attempts + attempts, failovers }))
          }
          const error = result.failure
          attempts += error.attempts
          // The request itself was refused: another model would refuse it too, and the client can act on it.
          if (isRequestRejection(error.reason)) return yield* Effect.fail(withTotals(error, attempts, failovers))
          first ??= error
        }
        const failovers = chain.length - 1
        if (first !== undefined) return yield* Effect.fail(withTotals(first, attempts, failovers))
        return yield* Effect.fail(
          new UpstreamError({
            reason: new UpstreamCircuitOpen({ retryAfterMs: waitMs }),
            attempts: 0,
            upstream: model.upstream,
            failovers
          })
        )
      })

      return UpstreamRouter.of({ imagesPerCall: perCall, generate })
    })
  )
}

const withTotals = (error: UpstreamError, attempts: number, failovers: number) =>
  new UpstreamError({ reason: error.reason, attempts, upstream: error.upstream, failovers })
