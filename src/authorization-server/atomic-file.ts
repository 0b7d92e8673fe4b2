import { randomBytes } from 'node:crypto'
import { mkdir, open, link, rename, unlink, readFile } from 'node:fs/promises'
import { dirname, basename, join } from 'node:path'

/**
 * Write a file so readers see either the old or the new content, never a torn one: write a temp file
 * (mode 0600) in the same directory, fsync it, then rename over the target. With `exclusive`, link instead
 * of rename, so that when two processes (workers) race to create the file the first wins and the other gets
 * EEXIST and reads the winner's content.
 */
export async function writeFileAtomic (file: string, data: string, opts: { exclusive?: boolean } = {}): Promise<void> {
  const dir = dirname(file)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(data, 'utf8')
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    if (opts.exclusive === true) {
      await link(tmp, file)
      await unlink(tmp)
    } else {
      await rename(tmp, file)
    }
  } catch (err) {
    await unlink(tmp).catch(() => undefined)
    throw err
  }
}

/** Read a JSON file; undefined if it does not exist. */
export async function readJsonFile (file: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return JSON.parse(text) as unknown
}
