/**
 * `npm start`: `wrangler dev` in development mode (the development key, the offline model as the default),
 * with any further arguments passed on. One thing is turned off: the fetch of Cloudflare's `request.cf`
 * sample from workers.cloudflare.com, which the gateway never reads and which prints a getaddrinfo error
 * on every start without network. Set CLOUDFLARE_CF_FETCH_ENABLED=true to have it anyway.
 */
import { spawn } from "node:child_process"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"

// wrangler's own entry, run by this Node: no PATH lookup, no shell, the same on every platform.
const wrangler = join(dirname(createRequire(import.meta.url).resolve("wrangler/package.json")), "bin", "wrangler.js")
const child = spawn(process.execPath, [wrangler, "dev", "--var", "ENVIRONMENT:development", ...process.argv.slice(2)], {
  stdio: "inherit",
  env: { CLOUDFLARE_CF_FETCH_ENABLED: "false", ...process.env }
})
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal))
child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)))
