import { execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gzipSync } from "node:zlib"
import { expect, it } from "vitest"

/**
 * The budget the README sets (Cloudflare's free plan allows 3 MB gzipped; a small bundle is a fast cold start).
 * Importing Effect through its barrels (`import { Schema } from "effect"`) would break it by about 100 KB; Biome's
 * noRestrictedImports rule catches that first.
 */
const LIMIT = 250 * 1024

it("the Worker bundle wrangler would deploy is at most 250 KB gzipped", () => {
  const outdir = mkdtempSync(join(tmpdir(), "ai-image-gateway-bundle-"))
  try {
    execFileSync("npx", ["wrangler", "deploy", "--dry-run", "--outdir", outdir], {
      stdio: "pipe",
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" }
    })
    const files = readdirSync(outdir).filter((file) => file.endsWith(".js"))
    expect(files.length).toBeGreaterThan(0)
    const gzipped = files.reduce((sum, file) => sum + gzipSync(readFileSync(join(outdir, file)), { level: 9 }).length, 0)
    expect(gzipped).toBeLessThanOrEqual(LIMIT)
  } finally {
    rmSync(outdir, { recursive: true, force: true })
  }
}, 120_000)
