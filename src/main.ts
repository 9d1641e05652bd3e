import { env } from "cloudflare:workers"
import { ConfigProvider, Context } from "effect"
import type { UsageStatsObject } from "./durable/UsageStatsObject.ts"
import { makeHandler, runScheduled } from "./http/App.ts"
import { WorkerContext } from "./services/WorkerContext.ts"

export { UsageStatsObject } from "./durable/UsageStatsObject.ts"

/**
 * The composition root. Built once per isolate at module load (building does
 * no I/O), reading configuration from the Worker's vars and secrets.
 */
const config = ConfigProvider.fromUnknown(env)
const bound = env as { IMAGES?: R2Bucket; USAGE_STATS?: DurableObjectNamespace<UsageStatsObject> }
const bindings = { images: bound.IMAGES, usage: bound.USAGE_STATS }
const app = makeHandler(config, bindings)

export default {
  // ctx reaches the handlers as a service, for work after the response (usage statistics).
  fetch: (request, _env, ctx) => app.handler(request, Context.make(WorkerContext, ctx) as Context.Context<never>),
  // The cron trigger in wrangler.toml: delete expired hosted images and prune the usage statistics.
  scheduled: (_controller, _env, ctx) => ctx.waitUntil(runScheduled(config, bindings))
} satisfies ExportedHandler
