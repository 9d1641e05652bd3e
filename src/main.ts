import { env } from "cloudflare:workers"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import { makeHandler, runScheduled } from "./App.ts"
import { WorkerBindings } from "./services/WorkerBindings.ts"
import { WorkerContext } from "./services/WorkerContext.ts"

export { KeyLimitsObject } from "./durable/KeyLimitsObject.ts"
export { UsageStatsObject } from "./durable/UsageStatsObject.ts"

/**
 * The Worker's entry. Built once per isolate at module load (building does no I/O), reading
 * configuration from the Worker's vars and secrets and its bindings (IMAGES, USAGE_STATS, AI) from
 * `env`; `App.ts` composes the layers.
 */
const config = ConfigProvider.fromUnknown(env)
const bindings = WorkerBindings.fromEnv(env as unknown as Record<string, unknown>)
const app = makeHandler(config, bindings)

export default {
  // ctx reaches the handlers as a service, for work after the response (usage statistics).
  fetch: (request, _env, ctx) => app.handler(request, Context.make(WorkerContext, ctx) as Context.Context<never>),
  // The cron trigger in wrangler.toml: delete expired hosted images and prune the usage statistics.
  scheduled: (_controller, _env, ctx) => ctx.waitUntil(runScheduled(config, bindings))
} satisfies ExportedHandler
