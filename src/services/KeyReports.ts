import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type CallerKey, type KeyReport, type KeyTraffic, quotaResetsAt } from "../domain/ApiKey.ts"
import type { UsageWindow } from "../domain/Usage.ts"
import { apiKeyCaller, DEVELOPMENT_CALLER, GatewayConfig } from "./GatewayConfig.ts"
import { KeyLimits } from "./KeyLimits.ts"
import { ModelRegistry } from "./ModelRegistry.ts"
import { UsageStats } from "./UsageStats.ts"

type Source = KeyReport["source"]

const noTraffic = (key: string): KeyTraffic => ({
  key,
  requests: 0,
  generations: 0,
  images: 0,
  errors: 0,
  latencyMs: { p50: null, p95: null }
})

/**
 * Keys as the cockpit shows them: each configured key by name (API_KEYS, then KEYS, or the development
 * key), with its rights, its limits, its traffic over a window (usage statistics) and today's quota (its
 * limits object). Never a key, a hash or a part of either.
 */
export class KeyReports extends Context.Service<
  KeyReports,
  {
    /** Every key: `/v1/gateway/keys`, for admins. */
    all(window: UsageWindow): Effect.Effect<ReadonlyArray<KeyReport>>
    /** One key: `/v1/me`, what any key may read about itself. */
    one(key: CallerKey, window: UsageWindow): Effect.Effect<KeyReport>
  }
>()("ai-image-gateway/services/KeyReports") {
  static readonly layer = Layer.effect(
    KeyReports,
    Effect.gen(function* () {
      const config = yield* GatewayConfig
      const registry = yield* ModelRegistry
      const usage = yield* UsageStats
      const limits = yield* KeyLimits
      const configured: ReadonlyArray<{ readonly key: CallerKey; readonly source: Source }> = [
        ...config.apiKeys.map((_, index) => ({ key: apiKeyCaller(index), source: "API_KEYS" as const })),
        ...config.keys.map(({ key: _, sha256: __, ...key }) => ({ key, source: "KEYS" as const })),
        ...(config.developmentKey ? [{ key: DEVELOPMENT_CALLER, source: "development" as const }] : [])
      ]
      const sourceOf = new Map(configured.map(({ key, source }) => [key.name, source]))

      // Statistics that are off or down leave `usage` null: the keys, their limits and quotas still show.
      const traffic = (window: UsageWindow) =>
        usage.enabled
          ? usage.keys(window).pipe(
              Effect.map((rows) => new Map(rows.map((row) => [row.key, row]))),
              Effect.catch((error) => Effect.as(Effect.logWarning("key usage not read", { reason: error.message }), undefined))
            )
          : Effect.succeed(undefined)

      const report = (key: CallerKey, rows: ReadonlyMap<string, KeyTraffic> | undefined, now: number) =>
        Effect.map(
          limits.today(key),
          (today): KeyReport => ({
            name: key.name,
            role: key.role,
            source: sourceOf.get(key.name) ?? "KEYS",
            models: registry.allowed(key)?.map((model) => model.id as string) ?? null,
            limits: { rpm: key.rpm ?? null, imagesPerDay: key.imagesPerDay ?? null },
            usage: rows === undefined ? null : (rows.get(key.name) ?? noTraffic(key.name)),
            today: { images: Option.getOrNull(today), limit: key.imagesPerDay ?? null, resetsAt: quotaResetsAt(now) }
          })
        )

      return KeyReports.of({
        all: (window) =>
          Effect.gen(function* () {
            const rows = yield* traffic(window)
            const now = yield* Clock.currentTimeMillis
            return yield* Effect.forEach(configured, ({ key }) => report(key, rows, now), { concurrency: "unbounded" })
          }),
        one: (key, window) =>
          Effect.gen(function* () {
            const rows = yield* traffic(window)
            return yield* report(key, rows, yield* Clock.currentTimeMillis)
          })
      })
    })
  )
}
