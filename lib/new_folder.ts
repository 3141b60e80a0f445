/**
 * Write a new folder of files so that, whatever happens (an error, a kill, a
 * power cut), readers see either no folder or the whole folder: the files go
 * into a hidden temporary folder, are flushed to disk (fsync), and the folder
 * is renamed into place, after which its parent is flushed too. Temporary
 * folders left by a killed writer are removed by the next write into the same
 * parent. Has no TensorFlow.js dependency, so a crash test can start it fast.
 *
 * @module
 */

/** Prefix and suffix of the temporary folders, e.g. `.mnist_model_x.tmp-1234-…`. */
const TEMP_PATTERN = /^\..+\.tmp-(\d+)-[0-9a-f]{8}$/;
/**
 * A temporary folder whose writer cannot be checked (no `/proc`) is stale
 * after this long; a save takes milliseconds.
 */
const STALE_MS = 60 * 60 * 1000;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Flush a file or folder to disk. */
async function fsync(path: string): Promise<void> {
  using file = await Deno.open(path, { read: true });
  await file.sync();
}

/** Whether process `pid` is alive; `undefined` when this cannot be told. */
async function processAlive(pid: number): Promise<boolean | undefined> {
  if (pid === Deno.pid) return true;
  try {
    await Deno.lstat(`/proc/${pid}`);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return (await exists("/proc/self")) ? false : undefined;
    }
    return undefined; // no permission to read /proc, or no /proc at all
  }
}

/**
 * Remove the temporary folders in `parent` whose writer is gone: its process
 * has exited (Linux's `/proc`), or, where that cannot be checked, the folder
 * is over an hour old. A folder being written by a live process is left alone.
 */
async function removeStaleTemps(parent: string): Promise<void> {
  for await (const entry of Deno.readDir(parent)) {
    const match = TEMP_PATTERN.exec(entry.name);
    if (!match || !entry.isDirectory) continue;
    const path = `${parent}/${entry.name}`;
    const alive = await processAlive(Number(match[1]));
    if (alive === true) continue;
    if (alive === undefined) {
      const { mtime } = await Deno.lstat(path);
      if (mtime === null || Date.now() - mtime.getTime() < STALE_MS) continue;
    }
    await Deno.remove(path, { recursive: true }).catch(() => {});
  }
}

/**
 * Create `parent/name` (or `name_2`, `name_3`, … if taken) holding `files`,
 * atomically and durably. Folders and files get the modes a plain `mkdir`
 * and `writeFile` give under the process's umask (not the 0700 of a
 * temporary folder), so other users can read them where the umask allows.
 * Internal.
 *
 * @param parent The parent folder; created if missing.
 * @param name The folder's name.
 * @param files File name → bytes.
 * @returns The path of the new folder.
 */
export async function writeNewFolder(
  parent: string,
  name: string,
  files: Readonly<Record<string, Uint8Array>>,
): Promise<string> {
  await Deno.mkdir(parent, { recursive: true });
  await removeStaleTemps(parent);
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(16).padStart(8, "0");
  const temp = `${parent}/.${name}.tmp-${Deno.pid}-${random}`;
  await Deno.mkdir(temp);
  try {
    for (const [file, bytes] of Object.entries(files)) {
      using handle = await Deno.open(`${temp}/${file}`, { write: true, createNew: true });
      for (let written = 0; written < bytes.length;) {
        written += await handle.write(bytes.subarray(written));
      }
      await handle.sync();
    }
    await fsync(temp);
    for (let i = 1;; i++) {
      const path = i === 1 ? `${parent}/${name}` : `${parent}/${name}_${i}`;
      if (await exists(path)) continue;
      try {
        await Deno.rename(temp, path);
      } catch (error) {
        if (await exists(path)) continue; // another writer took the name just now
        throw error;
      }
      await fsync(parent);
      return path;
    }
  } catch (error) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw error;
  }
}
