import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as Result from "effect/Result"
import { hasLimits } from "../domain/ApiKey.ts"
import { decodedLength } from "../domain/ImageFormat.ts"
import type { UpstreamHealth } from "../domain/Usage.ts"
import { CircuitBreaker } from "../services/CircuitBreaker.ts"
import { GatewayConfig } from "../services/GatewayConfig.ts"
import { GenerationCache } from "../services/GenerationCache.ts"
import { ImageGenerator } from "../services/ImageGenerator.ts"
import { ImageStore } from "../services/ImageStore.ts"
import { KeyReports } from "../services/KeyReports.ts"
import { ModelRegistry } from "../services/ModelRegistry.ts"
import { publicBaseUrl, UpstreamRegistry } from "../services/UpstreamRegistry.ts"
import { UsageStats } from "../services/UsageStats.ts"
import { Api, VERSION } from "./Api.ts"
import { StatsUnavailable } from "./ApiErrors.ts"
import { failWith, limitFailures, modelNotFound, upstreamOutcome } from "./ErrorMapping.ts"

const PROBE_PROMPT = "A small lighthouse on a rocky shore at dusk, soft light"

const statsUnavailable = (error: { readonly message: string }) =>
  new StatsUnavailable({ message: error.message, param: null, code: "usage_stats_unavailable" })

/** The cockpit's data: status, statistics, recent requests and the probe. Logic lives in the services. */
export const GatewayHttp = HttpApiBuilder.group(
  Api,
  "gateway",
  Effect.fn(function* (handlers) {
    const config = yield* GatewayConfig
    const registry = yield* ModelRegistry
    const generator = yield* ImageGenerator
    const usage = yield* UsageStats
    const store = yield* ImageStore
    const cache = yield* GenerationCache
    const breaker = yield* CircuitBreaker
    const reports = yield* KeyReports
    const { upstreams } = yield* UpstreamRegistry
    const { catalogue } = registry

    const aliasesOf = (id: string) =>
      Object.entries(catalogue.aliases)
        .filter(([, target]) => target === id)
        .map(([alias]) => alias)
    const models = catalogue.models.map((model) => ({
      id: model.id as string,
      provider: model.provider,
      upstream: model.upstream,
      upstreamModelId: model.upstreamModelId,
      fallbacks: model.fallbacks ?? [],
      aliases: aliasesOf(model.id),
      aspectRatios: model.aspectRatios,
      description: model.description ?? null,
      edits: model.edits === true
    }))
    const instances = upstreams.map(({ instance }) => ({
      id: instance.id,
      kind: instance.kind,
      baseUrl: publicBaseUrl(instance.baseUrl),
      models: catalogue.models.filter((model) => model.upstream === instance.id).length
    }))
    const settings = {
      defaultModel: catalogue.defaultModel.id as string,
      retry: {
        maxAttempts: config.upstreamMaxAttempts,
        backoffMs: config.upstreamBackoffMs,
        backoffMaxMs: config.upstreamBackoffMaxMs
      },
      upstreamTimeoutMs: config.upstreamTimeoutMs,
      maxConcurrentUpstream: config.maxConcurrentUpstream,
      circuit: { failures: config.circuitFailures, cooldownMs: config.circuitCooldownMs },
      hostedImages: { enabled: store.enabled, ttlHours: config.imageTtlHours },
      cache: { enabled: cache.enabled, ttlSeconds: config.cacheTtlSeconds },
      usageStats: usage.enabled,
      corsOrigins: config.corsOrigins,
      keepAliveMs: config.keepAliveMs,
      chatProgress: config.chatProgress,
      logPrompts: config.logPrompts,
      localModel: config.enableLocalModel,
      maxBodyBytes: config.maxBodyBytes,
      keys: {
        apiKeys: config.apiKeys.length,
        named: config.keys.length,
        limited: config.keys.filter(hasLimits).length,
        limitsFailOpen: config.limitsFailOpen
      }
    }

    return handlers
      .handle("status", () =>
        Effect.gen(function* () {
          const health = yield* Effect.result(usage.upstreams)
          const known: ReadonlyArray<UpstreamHealth> = Result.isSuccess(health) ? health.success : []
          return {
            version: VERSION,
            environment: config.environment,
            now: yield* Clock.currentTimeMillis,
            upstreams: yield* Effect.forEach(instances, (instance) =>
              Effect.map(breaker.state(instance.id), (circuit) => ({
                ...instance,
                circuit,
                health: known.find((row) => row.upstream === instance.id) ?? null
              }))
            ),
            config: settings,
            models,
            statsError: Result.isFailure(health) ? health.failure.message : null
          }
        })
      )
      .handle("stats", ({ query }) =>
        usage.summary(query.window ?? "24h").pipe(Effect.catch((error) => failWith(statsUnavailable(error))))
      )
      .handle("keys", ({ query }) => {
        const window = query.window ?? "24h"
        return Effect.map(reports.all(window), (data) => ({ window, data }))
      })
      .handle("requests", ({ query }) =>
        usage.recent(query.limit ?? 50).pipe(
          Effect.map((data) => ({ data })),
          Effect.catch((error) => failWith(statsUnavailable(error)))
        )
      )
      .handle("probe", ({ payload }) =>
        Effect.gen(function* () {
          const model = yield* registry.resolve(payload.model)
          const started = yield* Clock.currentTimeMillis
          const outcome = yield* Effect.result(
            generator.generate({ prompt: payload.prompt ?? PROBE_PROMPT, model: model.id, n: 1 })
          )
          const latencyMs = (yield* Clock.currentTimeMillis) - started
          if (Result.isSuccess(outcome)) {
            const image = outcome.success.images[0]
            return {
              model: model.id as string,
              upstream: model.upstream,
              ok: true,
              latencyMs,
              attempts: image?.attempts ?? 1,
              outputFormat: image?.format ?? null,
              bytes: image === undefined ? null : decodedLength(image.base64),
              error: null
            }
          }
          const failure = outcome.failure
          if (failure._tag !== "UpstreamError") return yield* failure
          const { status, body } = upstreamOutcome(failure)
          return {
            model: model.id as string,
            upstream: model.upstream,
            ok: false,
            latencyMs,
            attempts: failure.attempts,
            outputFormat: null,
            bytes: null,
            error: { status, message: body.error.message, type: body.error.type, code: body.error.code }
          }
        }).pipe(Effect.catchTags({ ModelNotFound: (error) => failWith(modelNotFound(error)), ...limitFailures }))
      )
  })
)
