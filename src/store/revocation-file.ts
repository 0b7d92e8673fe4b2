import { readJsonFile, writeFileAtomic } from '../authorization-server/atomic-file.js'

/**
 * The memory backend's revocation file: `{"revocations": {"<id>": <until, epoch ms>}}`, written atomically (0600).
 * A file in the authorization server's older format (`{"revoked": {"<jti>": <exp, s>}}`) reads as empty here:
 * the authorization server migrates its entries (it knows how its ids are derived) before handing the file over.
 */
export interface RevocationFileBody { revocations: Record<string, number> }

/** Live entries of `file` (absent: none). Throws on a file that is not ours. */
export async function readRevocationFile (file: string, now: number): Promise<Map<string, number>> {
  const raw = await readJsonFile(file) as Partial<RevocationFileBody> & { revoked?: unknown } | undefined
  const out = new Map<string, number>()
  if (raw === undefined) return out
  if (raw === null || typeof raw !== 'object') throw new Error(`${file}: expected {"revocations": {"<id>": <until ms>}}`)
  if (raw.revocations === undefined && raw.revoked !== undefined) return out
  if (raw.revocations === null || typeof raw.revocations !== 'object') throw new Error(`${file}: expected {"revocations": {"<id>": <until ms>}}`)
  for (const [id, until] of Object.entries(raw.revocations)) if (typeof until === 'number' && until > now) out.set(id, until)
  return out
}

export async function writeRevocationFile (file: string, entries: ReadonlyMap<string, number>, now: number): Promise<void> {
  const revocations: Record<string, number> = {}
  for (const [id, until] of entries) if (until > now) revocations[id] = until
  await writeFileAtomic(file, JSON.stringify({ revocations } satisfies RevocationFileBody) + '\n')
}
