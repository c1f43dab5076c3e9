// Storefront init container: obtains the storefront's publishable API key from the backend and
// writes it to a file the storefront exports at start. Medusa generates the key's token, so it
// cannot be known when the chart renders; the setup Job creates it, this fetches it by title
// through the admin API, retrying until the Job has run.
import { readFileSync, writeFileSync } from "node:fs"

const backend = process.env.BACKEND_URL
const email = process.env.ADMIN_EMAIL
const title = process.env.STOREFRONT_API_TITLE
const output = process.env.OUTPUT_FILE
const password = readFileSync(process.env.ADMIN_PASSWORD_FILE, "utf8").trim()

async function fetchKey() {
  const login = await fetch(new URL("/auth/user/emailpass", backend), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
    signal: AbortSignal.timeout(10000),
  })
  if (!login.ok) throw new Error(`admin login answered ${login.status}`)
  const { token } = await login.json()
  const list = await fetch(new URL("/admin/api-keys?type=publishable&limit=100", backend), {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(10000),
  })
  if (!list.ok) throw new Error(`listing API keys answered ${list.status}`)
  const { api_keys: keys } = await list.json()
  const key = (keys || []).find((k) => k.title === title && !k.revoked_at)
  if (!key) throw new Error(`no publishable key titled "${title}" yet (setup Job not finished?)`)
  return key.token
}

for (let attempt = 1; ; attempt++) {
  try {
    writeFileSync(output, await fetchKey(), { mode: 0o444 })
    console.log(`publishable key "${title}" written to ${output}`)
    process.exit(0)
  } catch (err) {
    console.log(`attempt ${attempt}: ${err.cause?.code || err.message}; retrying in 10s`)
    await new Promise((resolve) => setTimeout(resolve, 10000))
  }
}
