import { parseArgs, type ParseArgsConfig } from 'node:util'
import { existsSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { Gateway, VERSION } from './gateway.js'
import { drainLogs } from './observability/logger.js'
import { ConfigError, formatDiagnostics } from './config/diagnostic.js'
import { readConfigTexts } from './config/files.js'
import { DPOP_HELP, dpopCommand } from './dpop-cli.js'
import { parseArgsMessage } from './cli-args.js'
import { holdStopSignals } from './runtime/stop-signals.js'

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
  start: `usage: certbound start [-c FILE|DIR]... [--init-certs] [--no-watch]

  -c, --config FILE   the gateway.yml to run (default ./gateway.yml). Repeat it, or name a directory (every
                      *.yml / *.yaml in it, sorted), to merge several files as decK does: entity lists are
                      concatenated, names must be unique across files. Files may also follow as arguments.
  --init-certs        first write a dev PKI to certs/ next to the config if it has no ca.crt (demo)
  --no-watch          do not reload when the config file or a listener's certificate, key or client CA
                      changes (watching is on by default; SIGHUP and POST /config always reload)

A reload validates the whole config and applies it atomically, or changes nothing and logs why.
signals: SIGHUP reloads the config file; SIGTERM/SIGINT stop accepting, drain in-flight requests
(gateway.limits.drain_timeout) and exit 0.`,
  validate: `usage: certbound validate [-c FILE|DIR]... [FILE|DIR]...

  -c, --config FILE   a config file or a directory of them (repeatable; merged as decK merges them)

  Writes nothing (no state_dir, no key). Exit 0 and a one-line summary, or exit 1 and every error found, each with file:line:col, code and key path.`,
  certs: `usage: certbound certs --out DIR [--hosts localhost,127.0.0.1]

  writes ca.crt/.key, server.crt/.key (SANs from --hosts), client1.crt/.key and client2.crt/.key
  (CN=client1 / CN=client2, O=Example Org) — EC P-256, keys 0600. An existing CA in DIR is reused.
  For development and tests only.`,
  'hash-secret': `usage: echo -n "$SECRET" | certbound hash-secret

  prints a scrypt hash for authorization_server.clients[].client_secret_hash`,
  dpop: DPOP_HELP,
}

/** The one-line usage printed with an argument error. */
const USAGE: Record<string, string> = {
  main: 'certbound <start|validate|certs|hash-secret|dpop> [options] (certbound --help)',
  start: 'certbound start [-c FILE|DIR]... [--init-certs] [--no-watch]',
  validate: 'certbound validate [-c FILE|DIR]... [FILE|DIR]...',
  certs: 'certbound certs --out DIR [--hosts localhost,127.0.0.1]',
  'hash-secret': 'echo -n "$SECRET" | certbound hash-secret',
  dpop: 'certbound dpop --new-key KEY.pem | --key KEY.pem --url URL [--method M] [--token T] [--nonce N]',
}

function out (s: string): void { process.stdout.write(s + '\n') }
function err (s: string): void { process.stderr.write(s + '\n') }

/** A wrong command line: one line on stderr and exit status 2 (as getopt tools do), never a stack trace. */
class UsageError extends Error {
  constructor (readonly command: string, message: string) { super(message) }
}

function usageLine (e: UsageError): string {
  return `certbound${e.command === 'main' ? '' : ' ' + e.command}: ${e.message} (usage: ${USAGE[e.command] ?? USAGE.main})`
}

/** node:util parseArgs, its TypeErrors (ERR_PARSE_ARGS_*) turned into UsageErrors. */
function parse<T extends ParseArgsConfig> (command: string, config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config)
  } catch (e) {
    const msg = parseArgsMessage(e)
    if (msg === undefined) throw e
    throw new UsageError(command, msg)
  }
}

async function main (argv: string[]): Promise<number> {
  const cmd = argv[0]
  if (cmd === undefined) { err(HELP.main); return 2 }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') { out(HELP.main); return 0 }
  if (cmd === '--version' || cmd === '-v') { out(VERSION); return 0 }
  const rest = argv.slice(1)
  if (HELP[cmd] === undefined) throw new UsageError('main', `unknown command "${cmd}"`)
  if (rest.includes('--help') || rest.includes('-h')) { out(HELP[cmd]); return 0 }
  switch (cmd) {
    case 'start': return await start(rest)
    case 'validate': return await validate(rest)
    case 'certs': return await certs(rest)
    case 'dpop': return await dpopCommand(rest, out, err)
    default: return await hashSecretCmd(rest)
  }
}

/** `-c` (repeatable) and positional files or directories; ./gateway.yml when neither is given. */
function configArg (command: string, rest: string[], extra: Record<string, { type: 'boolean' | 'string', default?: boolean }> = {}): { config: string[], flags: Record<string, string | boolean | undefined> } {
  const { values, positionals } = parse(command, { args: rest, options: { config: { type: 'string', short: 'c', multiple: true }, ...extra }, allowPositionals: true, allowNegative: true, strict: true })
  const given = [...((values.config as string[] | undefined) ?? []), ...positionals]
  for (const c of given) if (c === '') throw new UsageError(command, 'a config path may not be empty')
  return { flags: values as Record<string, string | boolean | undefined>, config: given.length > 0 ? given : ['gateway.yml'] }
}

const shownConfig = (paths: readonly string[]): string => paths.join(', ')

async function validate (rest: string[]): Promise<number> {
  const { config } = configArg('validate', rest)
  try {
    const cfg = await Gateway.check(config, { dryRun: true })
    const plugins = cfg.pluginEntries.length
    const files = cfg.files.length > 1 ? ` (${cfg.files.length} files)` : ''
    // a Kong file has no listeners (kong.conf has them): say where this one would listen, and that it is plain HTTP
    const given = (cfg.source.merged?.gateway as { listen?: unknown } | undefined)?.listen
    if (given === undefined) err(`certbound: note: no gateway.listen, so the gateway listens on ${cfg.listeners.map(l => l.address).join(', ')} over plain HTTP; add a gateway: section with listen[].tls for HTTPS and client certificates`)
    out(`${shownConfig(config)}${files}: OK — ${cfg.listeners.length} listener(s), ${cfg.services.length} service(s), ${cfg.routes.length} route(s), ${plugins} plugin(s), ${cfg.consumers.length} consumer(s)${Object.keys(cfg.sections).length > 0 ? `, ${Object.keys(cfg.sections).join(', ')}` : ''}; config hash ${cfg.hash}`)
    return 0
  } catch (e) {
    if (e instanceof ConfigError) { err(formatDiagnostics(e.files, e.diagnostics)); return 1 }
    throw e
  }
}

async function certs (rest: string[]): Promise<number> {
  const { values, positionals } = parse('certs', { args: rest, options: { out: { type: 'string', short: 'o' }, hosts: { type: 'string' } }, allowPositionals: true, strict: true })
  if (positionals.length > 0) throw new UsageError('certs', `unexpected argument "${positionals[0]}"`)
  if (values.out === undefined || values.out === '') throw new UsageError('certs', '--out DIR is required')
  let isFile = false
  try { isFile = !statSync(values.out).isDirectory() } catch { /* absent: created */ }
  if (isFile) throw new UsageError('certs', `--out ${values.out} exists and is not a directory`)
  const hosts = (values.hosts ?? 'localhost,127.0.0.1').split(',').map(h => h.trim()).filter(h => h !== '')
  if (hosts.length === 0) throw new UsageError('certs', '--hosts needs at least one name')
  const { writeDevPki } = await import('./pki/dev-pki.js')
  const r = await writeDevPki(values.out, { hosts })
  const dir = resolve(values.out)
  out(`wrote ${r.files.length === 0 ? 'nothing' : r.files.join(', ')} in ${dir}`)
  if (r.kept.length > 0) {
    const files = r.kept.map(k => `${k}.crt/.key`).join(', ')
    // an existing server certificate keeps its old names: say so, or --hosts looks applied when it is not
    const serverNote = r.kept.includes('server') && values.hosts !== undefined ? `; server.crt keeps its old names, not --hosts ${values.hosts}` : ''
    out(`kept existing ${files}${serverNote}. To regenerate one, delete its .crt and .key and run again (deleting ca.crt/.key makes a new CA: every certificate must then be reissued)`)
  }
  return 0
}

async function hashSecretCmd (rest: string[]): Promise<number> {
  if (rest.length > 0) throw new UsageError('hash-secret', `unexpected argument "${rest[0]}": the secret is read from stdin, never from the command line`)
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  const secret = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  if (secret === '') { err('hash-secret: no secret on stdin'); return 1 }
  const { hashSecret } = await import('./authorization-server/secret-hash.js')
  out(await hashSecret(secret))
  return 0
}

async function start (rest: string[]): Promise<number> {
  const v = configArg('start', rest, { 'init-certs': { type: 'boolean' }, watch: { type: 'boolean', default: true } })
  const config = v.config
  const watch = v.flags.watch !== false
  // --init-certs writes certs/ next to the first config file (inside it, when it is a directory)
  let base = dirname(resolve(config[0]))
  try { if (statSync(config[0]).isDirectory()) base = resolve(config[0]) } catch { /* reported when loading */ }
  if (v.flags['init-certs'] === true) {
    const dir = join(base, 'certs')
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
  // from here a SIGTERM or SIGINT is remembered, and acted on once the gateway has started (never a bare kill)
  const held = holdStopSignals()
  let gw: Gateway
  try {
    // read once: the texts validated here are the texts every worker runs (unreadable: CB_CFG_FILE, every file named)
    const text = readConfigTexts(config)
    const cfg = await Gateway.check(config, { configText: text })
    if (cfg.settings.workers > 0) {
      const { runPrimary } = await import('./cluster.js')
      const { createLogger } = await import('./observability/logger.js')
      // the kernel spreads connections over the workers' shared listening socket; node's own switch
      // NODE_CLUSTER_SCHED_POLICY=rr (the primary accepts and hands each connection over) is honoured, for
      // measuring the two against each other (bench/multicore.sh, bench/README.md)
      if (process.env.NODE_CLUSTER_SCHED_POLICY !== 'rr') cluster.schedulingPolicy = cluster.SCHED_NONE
      await runPrimary(config, cfg, createLogger({ level: cfg.settings.log_level }), { text, watch, held })
      return await new Promise<number>(() => { /* runs until a signal */ })
    }
    gw = await Gateway.start({ configFile: config, configText: text, watchConfig: watch, defaultMetrics: true })
    if (v.flags['init-certs'] === true) {
      const { demoHint } = await import('./demo-hint.js')
      const hint = demoHint(gw, join(base, 'gateway.yml'))
      if (hint !== undefined) err(hint)
    }
  } catch (e) {
    if (e instanceof ConfigError) { err(formatDiagnostics(e.files, e.diagnostics)); return 1 }
    err(`certbound: cannot start: ${(e as Error).message}`)
    return 1
  }
  let stopping = false
  const stop = (sig: NodeJS.Signals): void => {
    if (stopping) return
    stopping = true
    gw.logger.info({ signal: sig, lifecycle: true }, 'stopping: draining in-flight requests')
    // the log gets a bounded time to drain (EXIT_FLUSH_MS): a stalled stdout reader must not keep a stopped gateway
    gw.close().then(() => 0, () => 1).then(code => drainLogs(gw.logger).then(() => process.exit(code)))
  }
  process.on('SIGHUP', () => { void gw.reload() })
  held.release(stop)
  return await new Promise<number>(() => { /* runs until a signal */ })
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (e: unknown) => {
  if (e instanceof UsageError) { err(usageLine(e)); process.exitCode = 2; return }
  // a fault outside the config (a full disk, a permission): its message, not a stack; CERTBOUND_DEBUG=1 for the stack
  err(`certbound: ${process.env.CERTBOUND_DEBUG === '1' ? ((e as Error).stack ?? String(e)) : ((e as Error).message ?? String(e))}`)
  process.exitCode = 1
})
