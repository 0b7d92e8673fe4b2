import { parseArgs } from 'node:util'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { Gateway, VERSION } from './gateway.js'
import { drainLogs } from './observability/logger.js'
import { ConfigError, formatDiagnostics } from './config/diagnostic.js'
import { DPOP_HELP, dpopCommand } from './dpop-cli.js'

const HELP: Record<string, string> = {
  main: `certbound ${VERSION} — an API gateway that terminates mutual TLS and enforces certificate-bound OAuth 2.0 tokens (RFC 8705)

usage: certbound <command> [options]

commands:
  start        run the gateway            certbound start -c gateway.yml
  validate     check a config, start nothing   certbound validate -c gateway.yml
  certs        write a dev PKI (EC P-256)  certbound certs --out certs [--hosts localhost,127.0.0.1]
  hash-secret  print a client_secret_hash for the authorization server (reads the secret from stdin)
  dpop         a DPoP key, or a DPoP proof for curl   certbound dpop --key k.pem --url URL [--token T]

run "certbound <command> --help" for the options of a command`,
  start: `usage: certbound start -c FILE [--init-certs] [--no-watch]

  -c, --config FILE   the gateway.yml to run (default ./gateway.yml)
  --init-certs        first write a dev PKI to certs/ next to the config if it has no ca.crt (demo)
  --no-watch          do not reload when the config file or a listener's certificate, key or client CA
                      changes (watching is on by default; SIGHUP and POST /config always reload)

A reload validates the whole config and applies it atomically, or changes nothing and logs why.
signals: SIGHUP reloads the config file; SIGTERM/SIGINT stop accepting, drain in-flight requests
(gateway.limits.drain_timeout) and exit 0.`,
  validate: `usage: certbound validate -c FILE

  exit 0 and a one-line summary, or exit 1 and every error found, each with file:line:col, code and key path.`,
  certs: `usage: certbound certs --out DIR [--hosts localhost,127.0.0.1]

  writes ca.crt/.key, server.crt/.key (SANs from --hosts), client1.crt/.key and client2.crt/.key
  (CN=client1 / CN=client2, O=Example Org) — EC P-256, keys 0600. An existing CA in DIR is reused.
  For development and tests only.`,
  'hash-secret': `usage: echo -n "$SECRET" | certbound hash-secret

  prints a scrypt hash for authorization_server.clients[].client_secret_hash`,
  dpop: DPOP_HELP,
}

function out (s: string): void { process.stdout.write(s + '\n') }
function err (s: string): void { process.stderr.write(s + '\n') }

async function main (argv: string[]): Promise<number> {
  const cmd = argv[0]
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') { out(HELP.main); return cmd === undefined ? 1 : 0 }
  if (cmd === '--version' || cmd === '-v') { out(VERSION); return 0 }
  const rest = argv.slice(1)
  if (rest.includes('--help') || rest.includes('-h')) {
    if (HELP[cmd] === undefined) { err(`unknown command "${cmd}"\n\n${HELP.main}`); return 1 }
    out(HELP[cmd]); return 0
  }
  switch (cmd) {
    case 'start': return await start(rest)
    case 'validate': return await validate(rest)
    case 'certs': return await certs(rest)
    case 'hash-secret': return await hashSecretCmd()
    case 'dpop': return await dpopCommand(rest, out, err)
    default: err(`unknown command "${cmd}"\n\n${HELP.main}`); return 1
  }
}

function configArg (rest: string[], extra: Record<string, { type: 'boolean' | 'string', default?: boolean }> = {}) {
  return parseArgs({ args: rest, options: { config: { type: 'string', short: 'c', default: 'gateway.yml' }, ...extra }, allowPositionals: false, allowNegative: true, strict: true }).values as { config: string } & Record<string, string | boolean | undefined>
}

async function validate (rest: string[]): Promise<number> {
  const { config } = configArg(rest)
  try {
    const cfg = await Gateway.check(config)
    const plugins = cfg.pluginEntries.length
    out(`${config}: OK — ${cfg.listeners.length} listener(s), ${cfg.services.length} service(s), ${cfg.routes.length} route(s), ${plugins} plugin(s)${Object.keys(cfg.sections).length > 0 ? `, ${Object.keys(cfg.sections).join(', ')}` : ''}; config hash ${cfg.hash}`)
    return 0
  } catch (e) {
    if (e instanceof ConfigError) { err(formatDiagnostics(e.file, e.diagnostics)); return 1 }
    throw e
  }
}

async function certs (rest: string[]): Promise<number> {
  const { values } = parseArgs({ args: rest, options: { out: { type: 'string', short: 'o' }, hosts: { type: 'string', default: 'localhost,127.0.0.1' } }, strict: true })
  if (values.out === undefined) { err(HELP.certs); return 1 }
  const { writeDevPki } = await import('./pki/dev-pki.js')
  const r = await writeDevPki(values.out, { hosts: values.hosts!.split(',').map(h => h.trim()).filter(h => h !== '') })
  out(`wrote ${r.files.length === 0 ? 'nothing (all files exist)' : r.files.join(', ')} in ${resolve(values.out)}`)
  return 0
}

async function hashSecretCmd (): Promise<number> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  const secret = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  if (secret === '') { err('hash-secret: no secret on stdin'); return 1 }
  const { hashSecret } = await import('./authorization-server/secret-hash.js')
  out(await hashSecret(secret))
  return 0
}

async function start (rest: string[]): Promise<number> {
  const v = configArg(rest, { 'init-certs': { type: 'boolean' }, watch: { type: 'boolean', default: true } })
  const config = v.config
  const watch = v.watch !== false
  if (v['init-certs'] === true) {
    const dir = join(dirname(resolve(config)), 'certs')
    if (!existsSync(join(dir, 'ca.crt'))) {
      const { writeDevPki } = await import('./pki/dev-pki.js')
      const r = await writeDevPki(dir, { hosts: ['localhost', '127.0.0.1'] })
      err(`certbound: wrote a dev PKI to ${dir} (${r.files.length} files)`)
    }
  }
  const cluster = (await import('node:cluster')).default
  if (cluster.isWorker && process.env.CERTBOUND_WORKER === '1') {
    const { runWorker } = await import('./cluster.js')
    await runWorker(config)
    return await new Promise<number>(() => { /* runs until the primary stops it */ })
  }
  let gw: Gateway
  try {
    // read once: the text validated here is the text every worker runs (unreadable: check() reports CB_CFG_FILE)
    let read: string | undefined
    try { read = readFileSync(config, 'utf8') } catch { read = undefined }
    const cfg = await Gateway.check(config, { configText: read })
    const text = read ?? readFileSync(config, 'utf8')
    if (cfg.settings.workers > 0) {
      const { runPrimary } = await import('./cluster.js')
      const { createLogger } = await import('./observability/logger.js')
      cluster.schedulingPolicy = cluster.SCHED_NONE
      await runPrimary(config, cfg, createLogger({ level: cfg.settings.log_level }), { text, watch })
      return await new Promise<number>(() => { /* runs until a signal */ })
    }
    gw = await Gateway.start({ configFile: config, configText: text, watchConfig: watch, defaultMetrics: true })
    if (v['init-certs'] === true) {
      const { demoHint } = await import('./demo-hint.js')
      const hint = demoHint(gw, config)
      if (hint !== undefined) err(hint)
    }
  } catch (e) {
    if (e instanceof ConfigError) { err(formatDiagnostics(e.file, e.diagnostics)); return 1 }
    err(`certbound: cannot start: ${(e as Error).message}`)
    return 1
  }
  let stopping = false
  const stop = (sig: string) => {
    if (stopping) return
    stopping = true
    gw.logger.info({ signal: sig, lifecycle: true }, 'stopping: draining in-flight requests')
    // the log gets a bounded time to drain (EXIT_FLUSH_MS): a stalled stdout reader must not keep a stopped gateway
    gw.close().then(() => 0, () => 1).then(code => drainLogs(gw.logger).then(() => process.exit(code)))
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => { void gw.reload() })
  return await new Promise<number>(() => { /* runs until a signal */ })
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (e: unknown) => {
  err(`certbound: ${(e as Error).stack ?? String(e)}`)
  process.exitCode = 1
})
