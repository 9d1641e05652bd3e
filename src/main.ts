import { env } from "cloudflare:workers"
import { ConfigProvider } from "effect"
import { makeHandler, runScheduled } from "./http/App.ts"

/**
 * The composition root. Built once per isolate at module load (building does
 * no I/O), reading configuration from the Worker's vars and secrets.
 */
const config = ConfigProvider.fromUnknown(env)
const bindings = { images: (env as { IMAGES?: R2Bucket }).IMAGES }
const app = makeHandler(config, bindings)

export default {
  fetch: (request) => app.handler(request),
  // The cron trigger in wrangler.toml: delete expired hosted images.
  scheduled: (_controller, _env, ctx) => ctx.waitUntil(runScheduled(config, bindings))
} satisfies ExportedHandler
