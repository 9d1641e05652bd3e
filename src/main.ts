import { env } from "cloudflare:workers"
import { ConfigProvider } from "effect"
import { makeHandler } from "./http/App.ts"

/**
 * The composition root. Built once per isolate at module load (building does
 * no I/O), reading configuration from the Worker's vars and secrets.
 */
const app = makeHandler(ConfigProvider.fromUnknown(env))

export default {
  fetch: (request) => app.handler(request)
} satisfies ExportedHandler
